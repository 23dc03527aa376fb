//! `behaviours suggest`: a starting catalog written from the workspace's own attributes.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Result};
use winsignal_discover::leakage::{suspect_columns_at, ColumnFlag, REVIEW_AUC};
use winsignal_features::catalog::{self, Entity};
use winsignal_features::levels::{self, Profile, MAX_LEVELS, MIN_LEVEL_DEALS};
use winsignal_features::{snapshot, Context};
use winsignal_store::{Store, StoreRead};

use crate::catalogs::{is_placeholder, resolve};
use crate::text::n;
use crate::Progress;

/// One attribute as `suggest` sees it.
struct Candidate {
    id: String,
    attribute: String,
    name: String,
    markers: Vec<String>,
    profile: Profile,
    /// `levels`, `value` (continuous) or `flag` (boolean yes/no); `None` when it is left out.
    shape: Option<&'static str>,
    /// Why it is left out (or commented out).
    left_out: Option<String>,
}

/// A starting catalog for a workspace and what went into it.
pub struct Suggestion {
    /// The catalog (TOML), which parses.
    pub text: String,
    /// Attributes looked at.
    pub attributes: usize,
    /// Definitions kept (not left out, not commented out as a leakage suspect).
    pub kept: usize,
    /// Controls kept.
    pub controls: usize,
    /// Leakage suspects commented out.
    pub suspects: usize,
}

/// A starting catalog from the workspace's attributes: one definition per attribute (categorical ones
/// split into their levels), placeholder values (and `missing`) declared missing, the controls that
/// vary, and leakage suspects commented out with the reason. `data` names the workspace in the text.
pub fn suggest(
    store: &dyn Store,
    data: &Path,
    missing: &[String],
    progress: &mut dyn Progress,
) -> Result<Suggestion> {
    let snapshot = store.snapshot()?;
    let read: &dyn StoreRead = &*snapshot;
    let ctx = Context::from_store(read)?;
    if ctx.opps.is_empty() {
        bail!(
            "the workspace {} has no opportunities; ingest a file first (`winsignal ingest FILE --mapping MAPPING.toml`)",
            data.display()
        );
    }
    let n_opps = ctx.opps.len();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for (entity, names) in [
        (Entity::Opportunity, custom_names(&ctx, Entity::Opportunity)),
        (Entity::Account, custom_names(&ctx, Entity::Account)),
    ] {
        for name in names {
            let attribute = catalog::AttributeRef {
                entity,
                name: name.clone(),
            };
            let raw = levels::profile(&ctx, &attribute, missing);
            let mut markers: Vec<String> = missing.to_vec();
            for l in &raw.levels {
                if is_placeholder(&l.label)
                    && !markers.iter().any(|m| m.eq_ignore_ascii_case(&l.label))
                {
                    markers.push(l.label.clone());
                }
            }
            let profile = levels::profile(&ctx, &attribute, &markers);
            let (shape, left_out) = shape_of(&profile);
            let id = unique_id(&name, entity, shape == Some("levels"), &ids);
            ids.push(id.clone());
            candidates.push(Candidate {
                id,
                attribute: format!("{}.{name}", entity.as_str()),
                name,
                markers,
                profile,
                shape,
                left_out,
            });
        }
    }
    if !candidates.iter().any(|c| c.shape.is_some()) {
        let reasons: Vec<String> = candidates
            .iter()
            .map(|c| format!("{}: {}", c.attribute, c.left_out.as_deref().unwrap_or("")))
            .collect();
        bail!(
            "no attribute of the {} opportunities in {} can become a definition{}; the built-in catalog reads activities, product events, touches, tickets and transcripts instead (`winsignal behaviours list`)",
            n(n_opps as u64),
            data.display(),
            if reasons.is_empty() {
                " (they have no custom attributes)".to_string()
            } else {
                format!(" ({})", reasons.join("; "))
            }
        );
    }
    let controls = named_controls(&ctx);
    let no_time = ctx.opps.iter().all(|o| o.stages.is_empty())
        && read.event_counts()?.iter().all(|(_, k)| *k == 0);

    // The leakage checks need snapshots: the draft catalog (every candidate) is computed once.
    let draft = catalog_text(&candidates, &controls, no_time, &[], data, n_opps);
    let flags: Vec<ColumnFlag> =
        if candidates.iter().any(|c| c.shape.is_some()) || !controls.is_empty() {
            let parsed = catalog::parse(&draft, "suggested catalog").map_err(|e| {
                anyhow::anyhow!("internal error: the suggested catalog does not parse ({e})")
            })?;
            let resolved = resolve(read, &parsed, &ctx)?;
            let engine = crate::pipeline::replay(store, read, ctx.clone(), progress)?;
            let horizon = snapshot::horizon(&engine);
            let snaps = snapshot::snapshots(&engine, &resolved, horizon, &mut |d, t| {
                progress.phase("computing snapshots", d, t)
            });
            suspect_columns_at(&resolved, &snaps, REVIEW_AUC)
        } else {
            Vec::new()
        };
    let text = catalog_text(&candidates, &controls, no_time, &flags, data, n_opps);
    // What is written must be a valid catalog.
    catalog::parse(&text, "suggested catalog").map_err(|e| {
        anyhow::anyhow!("internal error: the suggested catalog does not parse ({e})")
    })?;
    Ok(Suggestion {
        kept: count_kept(&candidates, &flags),
        attributes: candidates.len(),
        controls: controls
            .iter()
            .filter(|c| !flagged_control(&flags, c))
            .count(),
        suspects: flags.len(),
        text,
    })
}

fn count_kept(candidates: &[Candidate], flags: &[ColumnFlag]) -> usize {
    candidates
        .iter()
        .filter(|c| c.shape.is_some() && flag_of(flags, c).is_none())
        .count()
}

/// The custom attribute names of an entity's records (opportunities, or the accounts of opportunities).
fn custom_names(ctx: &Context, entity: Entity) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    match entity {
        Entity::Opportunity => ctx.opps.iter().for_each(|o| {
            names.extend(o.attrs.keys().cloned());
        }),
        Entity::Account => ctx
            .opps
            .iter()
            .filter_map(|o| ctx.accounts.get(o.account as usize))
            .for_each(|a| names.extend(a.attrs.keys().cloned())),
    }
    names.into_iter().collect()
}

/// How an attribute becomes a definition, or why it does not.
fn shape_of(p: &Profile) -> (Option<&'static str>, Option<String>) {
    if p.present < MIN_LEVEL_DEALS {
        return (
            None,
            Some(format!(
                "only {} deal{} ha{} a value",
                p.present,
                if p.present == 1 { "" } else { "s" },
                if p.present == 1 { "s" } else { "ve" }
            )),
        );
    }
    if p.levels.len() < 2 {
        return (None, Some("every deal has the same value".into()));
    }
    if p.is_numeric() || p.dates == p.present {
        return (Some("value"), None);
    }
    if p.booleans == p.present {
        return (Some("flag"), None);
    }
    let kept = p
        .levels
        .iter()
        .filter(|l| l.deals >= MIN_LEVEL_DEALS)
        .count();
    if kept == 0 || (p.levels.len() > MAX_LEVELS && 2 * p.levels.len() > p.present) {
        return (
            None,
            Some(format!(
                "{} distinct values over {} deals ({} held by {MIN_LEVEL_DEALS}+ deals): an identifier or free text, not a category",
                n(p.levels.len() as u64),
                n(p.present as u64),
                kept
            )),
        );
    }
    (Some("levels"), None)
}

/// A snake_case id for an attribute, not taken and not a reserved column name (a categorical
/// definition may take one: its columns are its levels).
fn unique_id(name: &str, entity: Entity, categorical: bool, taken: &[String]) -> String {
    let mut id = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('_') {
            id.push('_');
        }
    }
    let mut id = id.trim_matches('_').to_string();
    if id.is_empty() || !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        id = format!("attr_{id}");
    }
    if entity == Entity::Account {
        id = format!("account_{id}");
    }
    let reserved = |s: &str| !categorical && catalog::is_reserved_id(s);
    let base = if reserved(&id) {
        format!("{id}_attr")
    } else {
        id
    };
    let mut id = base.clone();
    let mut k = 2;
    while taken.contains(&id) {
        id = format!("{base}_{k}");
        k += 1;
    }
    id
}

/// The named controls whose field has at least two values over the workspace's opportunities.
fn named_controls(ctx: &Context) -> Vec<&'static str> {
    let mut out = Vec::new();
    let account = |o: &winsignal_features::context::OppInfo| ctx.accounts.get(o.account as usize);
    let varies = |values: Vec<String>| {
        let mut v = values;
        let present = v.len();
        v.sort();
        v.dedup();
        present >= MIN_LEVEL_DEALS && v.len() >= 2
    };
    let text = |f: &dyn Fn(&winsignal_features::context::OppInfo) -> Option<String>| {
        varies(
            ctx.opps
                .iter()
                .filter_map(f)
                .filter(|s| !s.trim().is_empty())
                .collect(),
        )
    };
    if text(&|o| ctx.segment_of(o.account)) {
        out.push("segment");
    }
    if text(&|o| account(o).and_then(|a| a.employees).map(|e| format!("{e}"))) {
        out.push("log_employees");
    }
    if text(&|o| account(o).and_then(|a| a.industry.clone())) {
        out.push("industry");
    }
    if text(&|o| o.opp_type.clone()) {
        out.push("opportunity_type");
    }
    if text(&|o| o.lead_source.clone()) {
        out.push("lead_source");
    }
    if text(&|o| o.amount.filter(|a| *a >= 0.0).map(|a| format!("{a}"))) {
        out.push("log_amount");
    }
    if text(&|o| {
        let d = o.created.to_date_string();
        Some(format!(
            "{}Q{}",
            &d[..4],
            (d[5..7].parse::<u32>().unwrap_or(1) - 1) / 3 + 1
        ))
    }) {
        out.push("creation_quarter");
    }
    out
}

fn flagged_control(flags: &[ColumnFlag], control: &str) -> bool {
    flags.iter().any(|f| f.control && f.column == control)
}

/// The leakage flag of a candidate's column, if any.
fn flag_of<'a>(flags: &'a [ColumnFlag], c: &Candidate) -> Option<&'a ColumnFlag> {
    flags.iter().find(|f| {
        f.column == c.attribute
            || f.definitions
                .iter()
                .any(|d| d == &c.id || d.split_once('=').is_some_and(|(parent, _)| parent == c.id))
    })
}

fn toml_string(s: &str) -> String {
    // A TOML basic string is a JSON string minus a few escapes JSON does not use; serde_json's
    // escaping is valid TOML.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn title_of(name: &str) -> String {
    let words: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => name.to_string(),
    }
}

fn catalog_text(
    candidates: &[Candidate],
    controls: &[&str],
    no_time: bool,
    flags: &[ColumnFlag],
    data: &std::path::Path,
    n_opps: usize,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# A starting catalog for the workspace {}, written by `winsignal behaviours suggest` from the\n\
         # attributes of its {} opportunities: one definition per attribute (categorical ones split into\n\
         # their levels when computed, levels held by fewer than {MIN_LEVEL_DEALS} deals pooled as \"(other)\").\n\
         # Read it before use: keep what is a behaviour or a fact known before the outcome, drop what is\n\
         # not; leakage suspects are commented out with the reason. docs/behaviours.md describes the format.",
        data.display(),
        n(n_opps as u64)
    );
    s.push_str("name = \"suggested\"\n\n");
    let kept: Vec<&&str> = controls
        .iter()
        .filter(|c| !flagged_control(flags, c))
        .collect();
    s.push_str(
        "# Controls: the deal-mix fields of the canonical model that vary in this workspace. Add an\n\
         # attribute that describes the mix rather than a behaviour as \"opportunity.<name>\".\n",
    );
    for c in controls.iter().filter(|c| flagged_control(flags, c)) {
        if let Some(f) = flags.iter().find(|f| f.control && f.column == **c) {
            let _ = writeln!(s, "# Left out as a leakage suspect: {c}: {}", f.evidence);
        }
    }
    // Flags on no definition or control of this catalog (the deal's account): worth knowing.
    for f in flags.iter().filter(|f| {
        !f.control
            && !candidates
                .iter()
                .any(|c| c.shape.is_some() && flag_of(std::slice::from_ref(*f), c).is_some())
    }) {
        let _ = writeln!(
            s,
            "# Also flagged by the leakage checks: {}: {}",
            f.column, f.evidence
        );
    }
    let list: Vec<String> = kept.iter().map(|c| toml_string(c)).collect();
    let _ = writeln!(s, "controls = [{}]\n", list.join(", "));
    s.push_str("[landmarks]\n");
    if no_time {
        s.push_str(
            "# No opportunity has stage history and there are no activities or events: one landmark per\n\
             # deal, at its creation.\nstages = true\nages_days = []\n",
        );
    } else {
        s.push_str("stages = true\nages_days = [14, 30, 60]\n");
    }
    for c in candidates {
        s.push('\n');
        let Some(shape) = c.shape else {
            let _ = writeln!(
                s,
                "# {} left out: {}.",
                c.attribute,
                c.left_out.as_deref().unwrap_or("")
            );
            continue;
        };
        let flag = flag_of(flags, c);
        let mut body = String::new();
        let p = &c.profile;
        let missing_note = if c.markers.is_empty() {
            String::new()
        } else {
            format!(
                "; {} deals hold a placeholder, read as missing",
                n(p.marked_missing as u64)
            )
        };
        let (description, aggregate, threshold) = match shape {
            "levels" => {
                let (kept, pooled) = levels::split(p);
                (
                    format!(
                        "{}, one yes/no behaviour per level ({} levels in the data: {} with {MIN_LEVEL_DEALS}+ deals, {} pooled; {} of {} deals have a value{missing_note}).",
                        c.attribute,
                        p.levels.len(),
                        kept.len(),
                        pooled.len(),
                        n(p.present as u64),
                        n(n_opps as u64)
                    ),
                    "levels",
                    None,
                )
            }
            "flag" => (
                format!(
                    "Whether {} is true ({} of {} deals have a value{missing_note}).",
                    c.attribute,
                    n(p.present as u64),
                    n(n_opps as u64)
                ),
                "value",
                Some("== 1"),
            ),
            _ => (
                format!(
                    "{}{} (continuous; {} of {} deals have a value{missing_note}).",
                    c.attribute,
                    if p.dates == p.present {
                        ", as days before the landmark"
                    } else {
                        ""
                    },
                    n(p.present as u64),
                    n(n_opps as u64)
                ),
                "value",
                None,
            ),
        };
        let _ = writeln!(body, "[[behaviour]]");
        let _ = writeln!(body, "id = {}", toml_string(&c.id));
        let _ = writeln!(body, "version = 1");
        let _ = writeln!(body, "family = \"attributes\"");
        let _ = writeln!(body, "title = {}", toml_string(&title_of(&c.name)));
        let _ = writeln!(body, "description = {}", toml_string(&description));
        let markers = if c.markers.is_empty() {
            String::new()
        } else {
            let m: Vec<String> = c.markers.iter().map(|m| toml_string(m)).collect();
            format!(", missing = [{}]", m.join(", "))
        };
        let _ = writeln!(
            body,
            "reads = {{ kind = \"attribute\", attribute = {}{markers} }}",
            toml_string(&c.attribute)
        );
        let _ = writeln!(body, "aggregate = \"{aggregate}\"");
        if let Some(t) = threshold {
            let _ = writeln!(body, "threshold = \"{t}\"");
        }
        match flag {
            None => s.push_str(&body),
            Some(f) => {
                let _ = writeln!(
                    s,
                    "# Leakage suspect, commented out ({}): {}",
                    f.kind, f.evidence
                );
                s.push_str("# If it is known before the outcome, uncomment it; if it is recorded only once the outcome is\n# known, leave it out (or keep it with recorded = \"at_outcome\" to see it flagged).\n");
                for line in body.lines() {
                    let _ = writeln!(s, "# {line}");
                }
            }
        }
    }
    s
}
