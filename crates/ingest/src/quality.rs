//! The quality report: what came in, what was refused and why, what was accepted with a caveat, how
//! well each source's records matched accounts (and which did not), orphans, and schema drift between
//! loads of the same source. Everything in it is computed from the store, so it is always current.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use winsignal_core::{Kind, Record, ValueType};
use winsignal_store::{Flag, LoadInfo, LoadStats, QuarantinedRow, StoreRead, StoredRecord};

use crate::error::Result;
use crate::resolve::Resolver;

const EXAMPLES: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    pub loads: Vec<LoadLine>,
    /// Current records and events per kind.
    pub totals: BTreeMap<String, u64>,
    pub quarantine: QuarantineSummary,
    pub flags: Vec<CodeCount>,
    pub identity: Vec<MatchRate>,
    pub unmatched: Vec<Unmatched>,
    pub orphans: Vec<Orphans>,
    pub drift: Vec<Drift>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadLine {
    pub load_id: u64,
    pub source: String,
    pub path: String,
    pub finished_at: String,
    /// What shaped the load's result besides the rows, hashed (see `recipe`); empty for loads recorded
    /// before identities were kept.
    pub identity: String,
    /// The parts of `identity`: connector, connector_version, winsignal, file (hash of the file's bytes),
    /// and as they apply kind, syntax, object, mapping and salesforce_config (hashes of those files' bytes).
    pub recipe: BTreeMap<String, String>,
    /// Whether this is the latest load of its source and file: only the latest counts in the quarantine
    /// totals, since it alone says what the file holds now.
    pub current: bool,
    #[serde(flatten)]
    pub stats: LoadStats,
    /// rows_read == accepted + quarantined.
    pub balanced: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuarantineSummary {
    /// Rows refused by the current loads (the latest load of each source and file): a file loaded
    /// three times with one bad row counts it once.
    pub total: u64,
    /// Rows read by the current loads: `total` is out of this.
    pub rows_read: u64,
    /// Rows refused by earlier loads of a source and file loaded again since (kept for `trace` and
    /// history, not counted in `total`).
    pub in_earlier_loads: u64,
    pub by_reason: Vec<CodeCount>,
    pub examples: Vec<QuarantineExample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuarantineExample {
    pub file: String,
    pub line: u64,
    pub kind: Option<Kind>,
    pub record_id: Option<String>,
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CodeCount {
    pub code: String,
    pub count: u64,
    /// An example message.
    pub example: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MatchRate {
    pub source: String,
    pub kind: Kind,
    pub total: u64,
    pub matched: u64,
    pub rate: f64,
    pub by_method: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unmatched {
    pub source: String,
    pub kind: Kind,
    pub count: u64,
    /// Ids (or identifying values) of the first few, with what they carried.
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Orphans {
    pub kind: Kind,
    pub field: String,
    pub refers_to: Kind,
    pub count: u64,
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub source: String,
    pub load_id: u64,
    pub previous_load_id: u64,
    pub added: Vec<String>,
    pub missing: Vec<String>,
    pub retyped: Vec<Retyped>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Retyped {
    pub column: String,
    pub from: ValueType,
    pub to: ValueType,
}

/// The shape of a reason without its particular values, so like reasons count together.
fn reason_class(reason: &str) -> String {
    for prefix in [
        "malformed JSON",
        "ragged row",
        "not valid UTF-8",
        "duplicate id",
        "unmatched quote",
        "row over",
        "line over",
    ] {
        if reason.starts_with(prefix) {
            return prefix.to_string();
        }
    }
    for (marker, label) in [
        (" is in the future", "in the future"),
        (" is before 1990", "before 1990"),
    ] {
        if reason.contains(marker) {
            let field_end = reason.find(':').unwrap_or(reason.len());
            return format!("{}: {label}", &reason[..field_end]);
        }
    }
    let cut = [", found", " (bad byte", ": \"", "; left empty"]
        .iter()
        .filter_map(|p| reason.find(p))
        .min();
    match cut {
        Some(i) => reason[..i].to_string(),
        None => reason.to_string(),
    }
}

fn count_codes<'a>(items: impl Iterator<Item = (String, &'a str)>) -> Vec<CodeCount> {
    let mut map: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for (code, msg) in items {
        let e = map.entry(code).or_insert((0, msg.to_string()));
        e.0 += 1;
    }
    let mut v: Vec<CodeCount> = map
        .into_iter()
        .map(|(code, (count, example))| CodeCount {
            code,
            count,
            example,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.code.cmp(&b.code)));
    v
}

pub fn report(store: &dyn StoreRead) -> Result<QualityReport> {
    let loads = store.loads()?;
    let source_of: HashMap<u64, &LoadInfo> = loads.iter().map(|l| (l.load_id, l)).collect();
    let quarantined = store.quarantine(None)?;
    let flags = store.flags()?;
    let resolver = crate::resolve::resolver_from_store(store)?;

    let mut totals = BTreeMap::new();
    let mut entity_records: Vec<StoredRecord> = Vec::new();
    for kind in Kind::ALL.into_iter().filter(|k| !k.is_event()) {
        let recs = store.records(kind)?;
        totals.insert(kind.to_string(), recs.len() as u64);
        entity_records.extend(recs);
    }
    for (kind, n) in store.event_counts()? {
        totals.insert(kind.to_string(), n);
    }

    // Match rates and unmatched lists, per source and kind.
    let mut rates: BTreeMap<(String, Kind), (u64, u64, BTreeMap<String, u64>, Vec<String>)> =
        BTreeMap::new();
    let mut tally = |source: &str, kind: Kind, record: &Record, id: &str| {
        if !Resolver::needs_account(kind) {
            return;
        }
        let e = rates.entry((source.to_string(), kind)).or_default();
        e.0 += 1;
        match resolver.account_of(record) {
            Some((_, how)) => {
                e.1 += 1;
                *e.2.entry(how.as_str().to_string()).or_default() += 1;
            }
            None if e.3.len() < EXAMPLES => e.3.push(describe_unmatched(record, id)),
            None => {}
        }
    };
    let src = |load_id: u64| {
        source_of
            .get(&load_id)
            .map_or("unknown", |l| l.source.as_str())
    };
    // A row's notes describe what the store holds while a record the row wrote is current (notes are
    // written with new and updated records only): the rows behind current records, among those noted.
    let noted_rows: HashSet<(u64, u64)> = flags.iter().map(|f| (f.load_id, f.line)).collect();
    let mut held_rows: HashSet<(u64, u64)> = HashSet::new();
    let mut hold = |origin: &winsignal_store::RowOrigin| {
        let row = (origin.load_id, origin.line);
        if noted_rows.contains(&row) {
            held_rows.insert(row);
        }
    };
    for r in &entity_records {
        tally(src(r.origin.load_id), r.kind, &r.record, &r.id);
        hold(&r.origin);
    }
    for ev in store.events(&[
        Kind::Activities,
        Kind::ProductEvents,
        Kind::MarketingTouches,
    ])? {
        let ev = ev?;
        tally(
            src(ev.origin.load_id),
            ev.record.kind(),
            &ev.record,
            &ev.key,
        );
        hold(&ev.origin);
    }
    let mut identity = Vec::new();
    let mut unmatched = Vec::new();
    for ((source, kind), (total, matched, by_method, examples)) in rates {
        identity.push(MatchRate {
            source: source.clone(),
            kind,
            total,
            matched,
            rate: if total == 0 {
                1.0
            } else {
                matched as f64 / total as f64
            },
            by_method,
        });
        if matched < total {
            unmatched.push(Unmatched {
                source,
                kind,
                count: total - matched,
                examples,
            });
        }
    }

    let orphans = orphans(&entity_records, &resolver, store)?;
    let drift = drift(&loads);
    let current = current_loads(&loads, &quarantined);
    let n_all = quarantined.len() as u64;
    let counted: HashSet<u64> = current.values().map(|c| c.rows_from).collect();
    let quarantined: Vec<QuarantinedRow> = quarantined
        .into_iter()
        .filter(|q| counted.contains(&q.load_id))
        .collect();
    let quarantine = QuarantineSummary {
        total: quarantined.len() as u64,
        rows_read: current
            .values()
            .filter_map(|c| source_of.get(&c.load_id))
            .map(|l| l.stats.rows_read)
            .sum(),
        in_earlier_loads: n_all - quarantined.len() as u64,
        by_reason: count_codes(quarantined.iter().flat_map(|q: &QuarantinedRow| {
            q.reasons.iter().map(|r| (reason_class(r), r.as_str()))
        })),
        examples: quarantined
            .iter()
            .take(25)
            .map(|q| QuarantineExample {
                file: source_of
                    .get(&q.load_id)
                    .map_or_else(String::new, |l| l.path.clone()),
                line: q.line,
                kind: q.kind,
                record_id: q.record_id.clone(),
                reasons: q.reasons.clone(),
            })
            .collect(),
    };
    let flags = count_codes(
        current_flags(&flags, &held_rows, &loads, &current)
            .map(|f: &Flag| (f.code.clone(), f.message.as_str())),
    );
    let loads = loads
        .iter()
        .map(|l| LoadLine {
            load_id: l.load_id,
            source: l.source.clone(),
            path: l.path.clone(),
            finished_at: l.finished_at.to_rfc3339(),
            identity: l.identity.clone(),
            recipe: l.recipe.clone(),
            current: current.values().any(|c| c.load_id == l.load_id),
            stats: l.stats.clone(),
            balanced: l.stats.rows_read == l.stats.accepted + l.stats.quarantined,
        })
        .collect();
    Ok(QualityReport {
        loads,
        totals,
        quarantine,
        flags,
        identity,
        unmatched,
        orphans,
        drift,
    })
}

/// The notes that describe what the store holds now: a row's notes while a record the row wrote is
/// current (a deal updated three times with the same caveat counts once), and a file's own notes (its
/// unused columns, on the header line) from its current load, or from the earlier load with the same
/// identity that the current one repeated without writing them again.
fn current_flags<'a>(
    flags: &'a [Flag],
    held_rows: &'a HashSet<(u64, u64)>,
    loads: &'a [LoadInfo],
    current: &'a HashMap<(String, String), CurrentLoad>,
) -> impl Iterator<Item = &'a Flag> + 'a {
    let load_of: HashMap<u64, &LoadInfo> = loads.iter().map(|l| (l.load_id, l)).collect();
    // The identity of a load, or for loads recorded before identities were kept, its file's hash.
    let same_result = |a: &LoadInfo, b: &LoadInfo| {
        let id = |l: &LoadInfo| {
            if l.identity.is_empty() {
                format!("file:{}", l.file_hash)
            } else {
                l.identity.clone()
            }
        };
        id(a) == id(b)
    };
    let mut header_notes_seen: HashSet<(String, String, String)> = HashSet::new();
    let mut keep: Vec<bool> = vec![false; flags.len()];
    // Newest first, so that of a file's repeated header notes the latest one is kept.
    for (i, f) in flags.iter().enumerate().rev() {
        if held_rows.contains(&(f.load_id, f.line)) {
            keep[i] = true;
            continue;
        }
        if f.record_id.is_some() || f.line != 1 {
            continue;
        }
        let Some(load) = load_of.get(&f.load_id) else {
            continue;
        };
        let file = (load.source.clone(), file_key(&load.path));
        let is_current = current
            .get(&file)
            .and_then(|c| load_of.get(&c.load_id))
            .is_some_and(|c| same_result(c, load));
        if is_current && header_notes_seen.insert((file.0, file.1, f.code.clone())) {
            keep[i] = true;
        }
    }
    flags.iter().zip(keep).filter_map(|(f, k)| k.then_some(f))
}

/// The latest load of one source and file, and the load whose quarantined rows stand for it.
struct CurrentLoad {
    load_id: u64,
    /// The load itself, except for a load from before every load stored its own quarantined rows (it
    /// repeated a byte-identical earlier load and stored none): then the latest load of the same file
    /// that did.
    rows_from: u64,
}

/// A loaded file's path as a key: spelt without `.` components and repeated separators, so that
/// `./accounts.csv` and `accounts.csv` are one file. (A relative and an absolute spelling of one file
/// stay two: the directory an earlier ingest ran in is not stored.)
fn file_key(path: &str) -> String {
    std::path::Path::new(path)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect::<std::path::PathBuf>()
        .display()
        .to_string()
}

/// The current load of every (source, file): the latest, since a file loaded again replaces what was
/// read from it before.
fn current_loads(
    loads: &[LoadInfo],
    quarantined: &[QuarantinedRow],
) -> HashMap<(String, String), CurrentLoad> {
    let with_rows: HashSet<u64> = quarantined.iter().map(|q| q.load_id).collect();
    let mut out: HashMap<(String, String), CurrentLoad> = HashMap::new();
    for (i, l) in loads.iter().enumerate() {
        let rows_from = if l.stats.quarantined > 0 && !with_rows.contains(&l.load_id) {
            loads[..i]
                .iter()
                .rev()
                .find(|e| {
                    e.source == l.source
                        && file_key(&e.path) == file_key(&l.path)
                        && e.file_hash == l.file_hash
                        && with_rows.contains(&e.load_id)
                })
                .map_or(l.load_id, |e| e.load_id)
        } else {
            l.load_id
        };
        out.insert(
            (l.source.clone(), file_key(&l.path)),
            CurrentLoad {
                load_id: l.load_id,
                rows_from,
            },
        );
    }
    out
}

fn describe_unmatched(record: &Record, id: &str) -> String {
    let mut parts = Vec::new();
    let mut push = |name: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{name}={v}"));
        }
    };
    match record {
        Record::Contacts(c) => {
            push("account_id", &c.account_id);
            push("email", &c.email);
        }
        Record::ProductEvents(e) => {
            push("group", &e.account_id);
            push("user", &e.user_id);
            push("email", &e.user_email);
        }
        Record::ProductUsers(u) => {
            push("group", &u.group_id);
            push("domain", &u.group_domain);
            push("email", &u.email);
        }
        Record::MarketingTouches(t) => {
            push("contact_id", &t.contact_id);
            push("email", &t.email);
        }
        Record::SupportTickets(t) => {
            push("contact_id", &t.contact_id);
            push("email", &t.requester_email);
        }
        Record::Activities(a) => {
            push("account_id", &a.account_id);
            push("opportunity_id", &a.opportunity_id);
        }
        Record::Opportunities(o) => push("account_id", &o.account_id),
        _ => {}
    }
    if parts.is_empty() {
        format!("{id} (no account, contact or e-mail given)")
    } else {
        format!("{id} ({})", parts.join(", "))
    }
}

fn orphans(records: &[StoredRecord], r: &Resolver, store: &dyn StoreRead) -> Result<Vec<Orphans>> {
    let mut found: BTreeMap<(Kind, &'static str, Kind), (u64, Vec<String>)> = BTreeMap::new();
    let mut hit = |kind: Kind, field: &'static str, to: Kind, what: String| {
        let e = found.entry((kind, field, to)).or_default();
        e.0 += 1;
        if e.1.len() < EXAMPLES {
            e.1.push(what);
        }
    };
    let opp_created: HashMap<&str, winsignal_core::Ts> = records
        .iter()
        .filter_map(|s| match &s.record {
            Record::Opportunities(o) => Some((o.opportunity_id.as_str(), o.created_at)),
            _ => None,
        })
        .collect();
    let known_rep = |id: &str| r.rep(id).is_some();
    for s in records {
        match &s.record {
            Record::Contacts(c) => {
                if let Some(a) = c.account_id.as_deref().filter(|a| r.account(a).is_none()) {
                    hit(
                        Kind::Contacts,
                        "account_id",
                        Kind::Accounts,
                        format!("{} → {a}", c.contact_id),
                    );
                }
            }
            Record::Accounts(a) => {
                if let Some(p) = a
                    .parent_account_id
                    .as_deref()
                    .filter(|p| r.account(p).is_none())
                {
                    hit(
                        Kind::Accounts,
                        "parent_account_id",
                        Kind::Accounts,
                        format!("{} → {p}", a.account_id),
                    );
                }
            }
            Record::Reps(p) => {
                if let Some(m) = p.manager_id.as_deref().filter(|m| !known_rep(m)) {
                    hit(
                        Kind::Reps,
                        "manager_id",
                        Kind::Reps,
                        format!("{} → {m}", p.rep_id),
                    );
                }
            }
            Record::Opportunities(o) => {
                if let Some(a) = o.account_id.as_deref().filter(|a| r.account(a).is_none()) {
                    hit(
                        Kind::Opportunities,
                        "account_id",
                        Kind::Accounts,
                        format!("{} → {a}", o.opportunity_id),
                    );
                }
                if let Some(p) = o.rep_id.as_deref().filter(|p| !known_rep(p)) {
                    hit(
                        Kind::Opportunities,
                        "rep_id",
                        Kind::Reps,
                        format!("{} → {p}", o.opportunity_id),
                    );
                }
            }
            Record::StageHistory(h) => match opp_created.get(h.opportunity_id.as_str()) {
                None if !r.opportunity_exists(&h.opportunity_id) => hit(
                    Kind::StageHistory,
                    "opportunity_id",
                    Kind::Opportunities,
                    h.opportunity_id.clone(),
                ),
                Some(created) if h.entered_at.0 + 86_400_000 < created.0 => hit(
                    Kind::StageHistory,
                    "entered_at",
                    Kind::Opportunities,
                    format!(
                        "{} entered {} before the deal was created",
                        h.opportunity_id, h.stage
                    ),
                ),
                _ => {}
            },
            Record::OpportunityContacts(c) => {
                if !r.opportunity_exists(&c.opportunity_id) {
                    hit(
                        Kind::OpportunityContacts,
                        "opportunity_id",
                        Kind::Opportunities,
                        c.opportunity_id.clone(),
                    );
                }
                if !r.contact_exists(&c.contact_id) {
                    hit(
                        Kind::OpportunityContacts,
                        "contact_id",
                        Kind::Contacts,
                        c.contact_id.clone(),
                    );
                }
            }
            Record::Transcripts(t) => {
                if let Some(o) = t
                    .opportunity_id
                    .as_deref()
                    .filter(|o| !r.opportunity_exists(o))
                {
                    hit(
                        Kind::Transcripts,
                        "opportunity_id",
                        Kind::Opportunities,
                        format!("{} → {o}", t.call_id),
                    );
                }
            }
            Record::SupportTickets(t) => {
                if let Some(a) = t.account_id.as_deref().filter(|a| r.account(a).is_none()) {
                    hit(
                        Kind::SupportTickets,
                        "account_id",
                        Kind::Accounts,
                        format!("{} → {a}", t.ticket_id),
                    );
                }
            }
            _ => {}
        }
    }
    let mut seen_missing_opps: HashSet<String> = HashSet::new();
    for ev in store.events(&[Kind::Activities])? {
        let ev = ev?;
        if let Record::Activities(a) = &ev.record {
            if let Some(o) = a
                .opportunity_id
                .as_deref()
                .filter(|o| !r.opportunity_exists(o))
            {
                seen_missing_opps.insert(o.to_string());
                hit(
                    Kind::Activities,
                    "opportunity_id",
                    Kind::Opportunities,
                    format!("{} → {o}", a.activity_id),
                );
            }
            if let Some(p) = a.rep_id.as_deref().filter(|p| !known_rep(p)) {
                hit(
                    Kind::Activities,
                    "rep_id",
                    Kind::Reps,
                    format!("{} → {p}", a.activity_id),
                );
            }
        }
    }
    Ok(found
        .into_iter()
        .map(|((kind, field, refers_to), (count, examples))| Orphans {
            kind,
            field: field.into(),
            refers_to,
            count,
            examples,
        })
        .collect())
}

fn drift(loads: &[LoadInfo]) -> Vec<Drift> {
    let mut last: HashMap<&str, &LoadInfo> = HashMap::new();
    let mut out = Vec::new();
    for l in loads {
        if let Some(prev) = last.get(l.source.as_str()) {
            let old: HashMap<&str, ValueType> = prev
                .columns
                .iter()
                .map(|c| (c.name.as_str(), c.value_type))
                .collect();
            let new: HashMap<&str, ValueType> = l
                .columns
                .iter()
                .map(|c| (c.name.as_str(), c.value_type))
                .collect();
            let added: Vec<String> = l
                .columns
                .iter()
                .filter(|c| !old.contains_key(c.name.as_str()))
                .map(|c| c.name.clone())
                .collect();
            let missing: Vec<String> = prev
                .columns
                .iter()
                .filter(|c| !new.contains_key(c.name.as_str()))
                .map(|c| c.name.clone())
                .collect();
            let retyped: Vec<Retyped> = l
                .columns
                .iter()
                .filter_map(|c| {
                    let was = *old.get(c.name.as_str())?;
                    // An all-empty column says nothing about the type either way.
                    (was != c.value_type
                        && was != ValueType::Empty
                        && c.value_type != ValueType::Empty)
                        .then(|| Retyped {
                            column: c.name.clone(),
                            from: was,
                            to: c.value_type,
                        })
                })
                .collect();
            if !added.is_empty() || !missing.is_empty() || !retyped.is_empty() {
                out.push(Drift {
                    source: l.source.clone(),
                    load_id: l.load_id,
                    previous_load_id: prev.load_id,
                    added,
                    missing,
                    retyped,
                });
            }
        }
        last.insert(&l.source, l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reasons_group_without_their_lines_and_sizes() {
        assert_eq!(
            reason_class("unmatched quote: the quote opening field `name` (column 2) on line 7 is never closed (it runs to the end of the file); read as a stray quote, so line 7 alone is quarantined and reading resumes at line 8"),
            "unmatched quote"
        );
        assert_eq!(
            reason_class("row over 16 MiB (17000000 bytes): not read"),
            "row over"
        );
        assert_eq!(
            reason_class("line over 16 MiB (17000000 bytes): not read"),
            "line over"
        );
    }

    #[test]
    fn reasons_group_without_their_values() {
        assert_eq!(
            reason_class("field `created_at`: expected an RFC 3339 timestamp with offset or a date (YYYY-MM-DD), found \"31/02/2025\""),
            "field `created_at`: expected an RFC 3339 timestamp with offset or a date (YYYY-MM-DD)"
        );
        assert_eq!(
            reason_class("field `occurred_at`: \"2031-01-01\" is in the future (now is x)"),
            "field `occurred_at`: in the future"
        );
        assert_eq!(
            reason_class("missing required field `ticket_id`"),
            "missing required field `ticket_id`"
        );
    }
}
