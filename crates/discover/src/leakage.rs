//! Leakage at the level of the source column: a field split into several yes/no definitions, a
//! catalog control, or the deal's account, checked as a whole — all its levels together, whether it is
//! filled in at all, whether it is filled in for one outcome only, and whether it looks recorded at the
//! close — because a leak spread over several definitions (or hidden in a control) escapes the
//! per-definition checks.
//!
//! Every check looks at each deal once, at its first landmark: the columns checked here are fields of
//! the opportunity or its account, which the snapshots read at their latest value whatever the
//! landmark, so one row per deal is the honest count (and stops deals that reach many landmarks from
//! weighing more). No IO; the thresholds are argued in docs/methodology.md ("Leakage").

use crate::quantile::auc;
use serde::Serialize;
use std::collections::BTreeMap;
use winsignal_core::Outcome as O;
use winsignal_features::catalog::{Catalog, Control, Entity, Reads};
use winsignal_features::snapshot::{ControlValue, Snapshot};

/// A whole column separating won from lost at least this well (AUC of the value, or of its levels'
/// cross-fitted win rates) is flagged.
pub const COLUMN_AUC: f64 = 0.90;
/// `behaviours suggest` comments out a column separating won from lost this well on its own (a
/// starting catalog is read by someone deciding what to keep: real behaviours rarely reach it alone,
/// and a value recorded with the outcome often does not reach [`COLUMN_AUC`] either — the length of
/// the last call in the bank marketing data has AUC 0.81).
pub const REVIEW_AUC: f64 = 0.75;
/// Filled in on at least this share of one outcome's deals and at most `1 −` it of the other's.
pub const MISSINGNESS_SHARE: f64 = 0.90;
/// Of the deals with (or without) the column, at least this share have one outcome...
pub const ONE_OUTCOME_SHARE: f64 = 0.98;
/// ...the other outcome being at most this fraction of its rate among all closed deals...
pub const ONE_OUTCOME_RATIO: f64 = 0.2;
/// ...and there are at least this many such deals.
pub const MIN_GROUP: usize = 30;
/// Fewest won and fewest lost deals for any check to run.
pub const MIN_EACH: usize = 10;
/// A column filled in on at least this share of closed deals...
pub const AT_CLOSE_FILLED: f64 = 0.5;
/// ...and on at most this fraction of that share among open deals (at least `MIN_GROUP` of them)...
pub const AT_CLOSE_RATIO: f64 = 0.5;
/// ...that goes with the outcome at least this well is flagged as recorded at the close.
pub const AT_CLOSE_AUC: f64 = 0.70;
/// Pseudo-count pulling a level's win rate towards the overall rate in the cross-fitted encoding.
const SMOOTHING: f64 = 2.0;

/// A column whose values may be recorded because of the outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnFlag {
    /// The control's column name (`log_amount`, `opportunity_tags`) when the column is a control, the
    /// attribute as the catalog writes it (`opportunity.tags`) otherwise, or `account` for the deal's
    /// account itself.
    pub column: String,
    /// The first check it failed, in the order `column_auc`, `one_outcome_only`, `missingness`,
    /// `recorded_at_close` (`evidence` has a sentence for every check it failed).
    pub kind: &'static str,
    /// How well the column on its own separates won from lost (0.5: not at all), when measurable.
    pub auc: Option<f64>,
    pub evidence: String,
    /// Ids of the definitions that read the column.
    pub definitions: Vec<String>,
    /// Whether the column is one of the catalog's controls.
    pub control: bool,
}

/// What a column holds for one deal.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Missing,
    Number(f64),
    Level(String),
}

struct Column {
    /// Attribute key (`opportunity.amount`) shared by a control and the definitions reading it.
    key: String,
    name: String,
    control: Option<usize>,
    /// `(value index, level)` of yes/no definitions reading one value of the column.
    levels: Vec<(usize, String)>,
    /// Value index of a definition reading the column's value itself.
    number: Option<usize>,
    definitions: Vec<String>,
    /// Whether the column is the deal's account (present or not).
    account: bool,
}

impl Column {
    fn cell(&self, s: &Snapshot) -> Cell {
        if self.account {
            return match s.account_id {
                Some(_) => Cell::Level("(present)".into()),
                None => Cell::Missing,
            };
        }
        if let Some(i) = self.control {
            return match s.controls.get(i) {
                Some(ControlValue::Number(x)) if x.is_finite() => Cell::Number(*x),
                Some(ControlValue::Text(t)) => Cell::Level(t.clone()),
                _ => Cell::Missing,
            };
        }
        if !self.levels.is_empty() {
            let mut missing = false;
            for (v, level) in &self.levels {
                match s.values.get(*v) {
                    Some(x) if *x == 1.0 => return Cell::Level(level.clone()),
                    Some(x) if x.is_nan() => missing = true,
                    None => missing = true,
                    _ => {}
                }
            }
            return if missing {
                Cell::Missing
            } else {
                Cell::Level("(other)".into())
            };
        }
        match self.number.and_then(|v| s.values.get(v)) {
            Some(x) if x.is_finite() => Cell::Number(*x),
            _ => Cell::Missing,
        }
    }
}

/// The attribute a named control reads, as `entity.name` (names as [`winsignal_features`]'s context
/// resolves them), so that a control and the definitions reading the same field are one column.
fn control_key(c: &Control) -> String {
    match c {
        Control::Segment => "account.segment".into(),
        Control::LogEmployees => "account.employees".into(),
        Control::Industry => "account.industry".into(),
        Control::OpportunityType => "opportunity.type".into(),
        Control::LeadSource => "opportunity.lead_source".into(),
        Control::LogAmount => "opportunity.amount".into(),
        Control::CreationQuarter => "creation_quarter".into(),
        Control::Attribute(a) => attribute_key(a.entity, &a.name),
    }
}

fn attribute_key(entity: Entity, name: &str) -> String {
    let name = match (entity, name) {
        (Entity::Opportunity, "opportunity_type") => "type",
        _ => name,
    };
    format!("{}.{name}", entity.as_str())
}

fn columns(catalog: &Catalog) -> Vec<Column> {
    let mut out: Vec<Column> = catalog
        .controls
        .iter()
        .enumerate()
        .map(|(i, c)| Column {
            key: control_key(c),
            name: c.column(),
            control: Some(i),
            levels: Vec::new(),
            number: None,
            definitions: Vec::new(),
            account: false,
        })
        .collect();
    for (v, def) in catalog.behaviours.iter().enumerate() {
        let Reads::Attribute {
            attribute, equals, ..
        } = &def.reads
        else {
            continue;
        };
        // The pooled level of a categorical definition is one more level of the column.
        let equals = match &def.level {
            Some(l) => Some(l.level.clone()),
            None => equals.clone(),
        };
        let key = attribute_key(attribute.entity, &attribute.name);
        let at = match out.iter().position(|c| c.key == key) {
            Some(at) => at,
            None => {
                out.push(Column {
                    name: format!("{}.{}", attribute.entity.as_str(), attribute.name),
                    key,
                    control: None,
                    levels: Vec::new(),
                    number: None,
                    definitions: Vec::new(),
                    account: false,
                });
                out.len() - 1
            }
        };
        let col = &mut out[at];
        match equals {
            Some(level) => col.levels.push((v, level)),
            None => col.number = col.number.or(Some(v)),
        }
        if !col.definitions.contains(&def.id) {
            col.definitions.push(def.id.clone());
        }
    }
    out.push(Column {
        key: "account".into(),
        name: "account".into(),
        control: None,
        levels: Vec::new(),
        number: None,
        definitions: Vec::new(),
        account: true,
    });
    out
}

/// Every column of the catalog (attributes its definitions read, its controls, and the deal's account)
/// that may be recorded because of the outcome, with the evidence in words; in catalog order (controls
/// first). Discovery leaves flagged controls out of its models and marks the findings of the
/// definitions that read a flagged column; a win model should do the same (see docs/methodology.md).
pub fn suspect_columns(catalog: &Catalog, snaps: &[Snapshot]) -> Vec<ColumnFlag> {
    suspect_columns_at(catalog, snaps, COLUMN_AUC)
}

/// [`suspect_columns`] with another threshold for the column's AUC (`column_auc` checks).
pub fn suspect_columns_at(
    catalog: &Catalog,
    snaps: &[Snapshot],
    column_auc: f64,
) -> Vec<ColumnFlag> {
    // Each deal once, at its first landmark.
    let mut first: BTreeMap<&str, &Snapshot> = BTreeMap::new();
    for s in snaps {
        first
            .entry(s.opportunity_id.as_str())
            .and_modify(|f| {
                if s.age_days
                    .total_cmp(&f.age_days)
                    .then_with(|| f.landmark.cmp(&s.landmark))
                    .is_lt()
                {
                    *f = s;
                }
            })
            .or_insert(s);
    }
    let closed: Vec<&Snapshot> = first
        .values()
        .copied()
        .filter(|s| s.outcome != O::Open)
        .collect();
    let open: Vec<&Snapshot> = first
        .values()
        .copied()
        .filter(|s| s.outcome == O::Open)
        .collect();
    let won: Vec<bool> = closed.iter().map(|s| s.outcome == O::Won).collect();
    let n_won = won.iter().filter(|w| **w).count();
    if n_won < MIN_EACH || closed.len() - n_won < MIN_EACH {
        return Vec::new();
    }
    let halves: Vec<bool> = closed.iter().map(|s| half(&s.opportunity_id)).collect();
    columns(catalog)
        .into_iter()
        .filter_map(|col| {
            let cells: Vec<Cell> = closed.iter().map(|s| col.cell(s)).collect();
            let open_cells: Vec<Cell> = open.iter().map(|s| col.cell(s)).collect();
            check(&col, &cells, &open_cells, &won, &halves, column_auc)
        })
        .collect()
}

/// One closed opportunity as the store's versions of it show it over time: when each version was loaded
/// and the opportunity's fields in it (`amount`, `type`, `lead_source` and custom attributes by name;
/// an empty field is absent).
#[derive(Debug, Clone, PartialEq)]
pub struct DealHistory {
    pub opportunity_id: String,
    pub closed_at: winsignal_core::Ts,
    pub versions: Vec<(winsignal_core::Ts, BTreeMap<String, String>)>,
}

/// A field that changed between the last version loaded before the close and the latest loaded at or
/// after it, on at least this share of the deals the store saw on both sides of their close...
pub const HISTORY_SHARE: f64 = 0.5;

/// The opportunity columns of the catalog (fields its definitions read, its controls) whose value the
/// store's history shows being filled in or changed at the close: for deals with a version loaded before
/// their close and one loaded at or after it (exports taken over time), on at least half of them (and
/// at least 30) the field differs between the two — it is written when the deal closes, so a model
/// would learn the outcome from it. `kind` is `changed_at_close`. Data loaded once (no version before
/// any close) give nothing to check.
pub fn changed_at_close(catalog: &Catalog, deals: &[DealHistory]) -> Vec<ColumnFlag> {
    columns(catalog)
        .into_iter()
        .filter_map(|col| {
            let field = col.key.strip_prefix("opportunity.")?;
            let (mut seen, mut changed, mut filled) = (0usize, 0usize, 0usize);
            for d in deals {
                let before = d.versions.iter().filter(|(at, _)| *at < d.closed_at).max_by_key(|(at, _)| *at);
                let after = d.versions.iter().filter(|(at, _)| *at >= d.closed_at).max_by_key(|(at, _)| *at);
                let (Some((_, before)), Some((_, after))) = (before, after) else {
                    continue;
                };
                seen += 1;
                let (b, a) = (before.get(field), after.get(field));
                if b != a && a.is_some() {
                    changed += 1;
                    filled += usize::from(b.is_none());
                }
            }
            (seen >= MIN_GROUP && changed as f64 >= HISTORY_SHARE * seen as f64).then(|| ColumnFlag {
                column: col.name.clone(),
                kind: "changed_at_close",
                auc: None,
                evidence: format!(
                    "{} was set or changed at the close on {} of the {seen} closed deals the store holds a version of from before and from after their close ({filled} of them empty before): it is written when the deal closes",
                    col.key,
                    percent(changed, seen)
                ),
                definitions: col.definitions.clone(),
                control: col.control.is_some(),
            })
        })
        .collect()
}

/// Which half of the deals an opportunity is in for the cross-fitted encoding (the same split as the
/// rules').
fn half(opportunity_id: &str) -> bool {
    xxhash_rust::xxh3::xxh3_64(opportunity_id.as_bytes()) & 1 == 0
}

fn check(
    col: &Column,
    cells: &[Cell],
    open_cells: &[Cell],
    won: &[bool],
    halves: &[bool],
    auc_at: f64,
) -> Option<ColumnFlag> {
    let name = &col.name;
    let n = cells.len();
    let n_won = won.iter().filter(|w| **w).count();
    let n_lost = n - n_won;
    let base = n_won as f64 / n as f64;
    let present = |c: &Cell| *c != Cell::Missing;
    let numeric = cells.iter().any(|c| matches!(c, Cell::Number(_)))
        && !cells.iter().any(|c| matches!(c, Cell::Level(_)));
    let mut failed: Vec<(&'static str, String)> = Vec::new();

    // The column as a whole.
    let column_auc = if col.account {
        None
    } else if numeric {
        numeric_auc(cells, won)
    } else {
        encoded_auc(cells, won, halves)
    };
    if let Some(a) = column_auc.filter(|a| *a >= auc_at) {
        let mut s = format!("{name} alone separates won from lost with AUC {a:.2}");
        if col.levels.len() > 1 {
            let best = col
                .levels
                .iter()
                .map(|(_, level)| {
                    let is = |c: &Cell| matches!(c, Cell::Level(l) if l == level);
                    let w = cells.iter().zip(won).filter(|(c, w)| **w && is(c)).count();
                    let l = cells.iter().zip(won).filter(|(c, w)| !**w && is(c)).count();
                    0.5 + 0.5 * (w as f64 / n_won as f64 - l as f64 / n_lost as f64).abs()
                })
                .fold(0.5, f64::max);
            s.push_str(&format!(
                " (its {} yes/no levels one at a time reach at most AUC {best:.2})",
                col.levels.len()
            ));
        }
        if let Some(v) = telling_value(name, cells, won, base) {
            s.push_str("; ");
            s.push_str(&v);
        }
        failed.push(("column_auc", s));
    }

    // Filled in for one outcome only.
    for want_present in [true, false] {
        let group: Vec<bool> = cells
            .iter()
            .zip(won)
            .filter(|(c, _)| present(c) == want_present)
            .map(|(_, w)| *w)
            .collect();
        if group.len() < MIN_GROUP {
            continue;
        }
        let w = group.iter().filter(|w| **w).count();
        let rate = w as f64 / group.len() as f64;
        let outcome = if rate >= ONE_OUTCOME_SHARE && 1.0 - rate <= ONE_OUTCOME_RATIO * (1.0 - base)
        {
            Some(("won", group.len() - w, "lost"))
        } else if 1.0 - rate >= ONE_OUTCOME_SHARE && rate <= ONE_OUTCOME_RATIO * base {
            Some(("lost", w, "won"))
        } else {
            None
        };
        if let Some((major, minor_count, minor)) = outcome {
            let with = if col.account {
                if want_present {
                    "with an account"
                } else {
                    "without an account"
                }
            } else if want_present {
                "with a value of"
            } else {
                "without a value of"
            };
            let subject = if col.account {
                format!("of the {} closed deals {with}", group.len())
            } else {
                format!("of the {} closed deals {with} {name}", group.len())
            };
            let count = |outcome: &str| if outcome == "won" { n_won } else { n_lost };
            let share = if minor_count == 0 {
                format!(
                    "none was {minor} (against {} of all closed deals)",
                    percent(count(minor), n)
                )
            } else {
                format!(
                    "{} were {major} (against {} of all closed deals)",
                    percent(group.len() - minor_count, group.len()),
                    percent(count(major), n)
                )
            };
            failed.push(("one_outcome_only", format!("{subject}, {share}")));
        }
    }

    // Filled in on (nearly) every deal of one outcome and (nearly) none of the other.
    let filled = |want_won: bool| {
        cells
            .iter()
            .zip(won)
            .filter(|(c, w)| **w == want_won && present(c))
            .count()
    };
    let (share_won, share_lost) = (
        filled(true) as f64 / n_won as f64,
        filled(false) as f64 / n_lost as f64,
    );
    if share_won.max(share_lost) >= MISSINGNESS_SHARE
        && share_won.min(share_lost) <= 1.0 - MISSINGNESS_SHARE
    {
        let what = if col.account {
            "deals have an account".to_string()
        } else {
            format!("{name} is filled in")
        };
        failed.push((
            "missingness",
            format!(
                "{what} on {} of won deals and {} of lost deals",
                percent(filled(true), n_won),
                percent(filled(false), n_lost)
            ),
        ));
    }

    // Filled in on closed deals much more often than on open ones, and going with the outcome.
    if !col.account && open_cells.len() >= MIN_GROUP {
        let on_closed = cells.iter().filter(|c| present(c)).count();
        let on_open = open_cells.iter().filter(|c| present(c)).count();
        let (c, o) = (
            on_closed as f64 / n as f64,
            on_open as f64 / open_cells.len() as f64,
        );
        if let Some(a) = column_auc
            .filter(|a| *a >= AT_CLOSE_AUC && c >= AT_CLOSE_FILLED && o <= AT_CLOSE_RATIO * c)
        {
            failed.push((
                "recorded_at_close",
                format!(
                    "{name} is filled in on {} of closed deals but {} of open ones, as if recorded at the close, and it goes with the outcome (AUC {a:.2})",
                    percent(on_closed, n),
                    percent(on_open, open_cells.len())
                ),
            ));
        }
    }

    let kind = failed.first()?.0;
    Some(ColumnFlag {
        column: col.name.clone(),
        kind,
        auc: column_auc,
        evidence: failed
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        definitions: col.definitions.clone(),
        control: col.control.is_some(),
    })
}

/// AUC of a numeric column among the deals that have it, either direction.
fn numeric_auc(cells: &[Cell], won: &[bool]) -> Option<f64> {
    let (x, y): (Vec<f64>, Vec<bool>) = cells
        .iter()
        .zip(won)
        .filter_map(|(c, w)| match c {
            Cell::Number(x) => Some((*x, *w)),
            _ => None,
        })
        .unzip();
    let w = y.iter().filter(|w| **w).count();
    if w < MIN_EACH || y.len() - w < MIN_EACH {
        return None;
    }
    let a = auc(&x, &y);
    a.is_finite().then(|| a.max(1.0 - a))
}

/// AUC of a categorical column (missing as a level of its own): each deal is scored by its level's win
/// rate among the deals of the other half, so that a column of many small levels cannot score well by
/// remembering each deal's own outcome.
fn encoded_auc(cells: &[Cell], won: &[bool], halves: &[bool]) -> Option<f64> {
    let label = |c: &Cell| match c {
        Cell::Missing => "(missing)".to_string(),
        Cell::Number(x) => format!("{x}"),
        Cell::Level(l) => l.clone(),
    };
    // Per half: level → (deals, wins), and the half's overall rate.
    let mut counts: [BTreeMap<String, (usize, usize)>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let mut totals = [(0usize, 0usize); 2];
    for ((c, w), h) in cells.iter().zip(won).zip(halves) {
        let e = counts[*h as usize].entry(label(c)).or_default();
        e.0 += 1;
        e.1 += *w as usize;
        totals[*h as usize].0 += 1;
        totals[*h as usize].1 += *w as usize;
    }
    if totals.iter().any(|(n, _)| *n == 0) {
        return None;
    }
    let score: Vec<f64> = cells
        .iter()
        .zip(halves)
        .map(|(c, h)| {
            let other = !*h as usize;
            let prior = totals[other].1 as f64 / totals[other].0 as f64;
            let (n, w) = counts[other].get(&label(c)).copied().unwrap_or((0, 0));
            (w as f64 + SMOOTHING * prior) / (n as f64 + SMOOTHING)
        })
        .collect();
    let a = auc(&score, won);
    a.is_finite().then_some(a)
}

/// The value (or level) of the column whose deals are most one-sided, in words, when it holds at least
/// 10 % of the closed deals (and 10 deals) and at least 90 % of them have one outcome.
fn telling_value(name: &str, cells: &[Cell], won: &[bool], base: f64) -> Option<String> {
    let mut groups: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (c, w) in cells.iter().zip(won) {
        let key = match c {
            Cell::Missing => continue,
            Cell::Number(x) => format!("{}", (x * 1e6).round() / 1e6),
            Cell::Level(l) => format!("'{l}'"),
        };
        let e = groups.entry(key).or_default();
        e.0 += 1;
        e.1 += *w as usize;
    }
    let min = (cells.len() / 10).max(MIN_EACH);
    groups
        .into_iter()
        .filter(|(_, (n, _))| *n >= min)
        .map(|(value, (n, w))| {
            let rate = w as f64 / n as f64;
            let (outcome, k) = if rate >= base {
                ("won", w)
            } else {
                ("lost", n - w)
            };
            (value, n, outcome, k)
        })
        .filter(|(_, n, _, k)| *k as f64 >= 0.9 * *n as f64)
        .max_by(|a, b| {
            (a.3 as f64 / a.1 as f64)
                .total_cmp(&(b.3 as f64 / b.1 as f64))
                .then(a.1.cmp(&b.1))
        })
        .map(|(value, n, outcome, k)| {
            format!(
                "{} of the {n} closed deals with {name} = {value} were {outcome}",
                percent(k, n)
            )
        })
}

/// `k` of `n` as a whole percentage that never rounds to 0 % or 100 % unless it is exactly that.
fn percent(k: usize, n: usize) -> String {
    let p = 100.0 * k as f64 / n.max(1) as f64;
    if k > 0 && p < 1.0 {
        "under 1 %".into()
    } else if k < n && p > 99.0 {
        "over 99 %".into()
    } else {
        format!("{p:.0} %")
    }
}

/// The options discovery runs its models with: unless `keep_suspect`, the flagged controls join
/// `leave_out_controls`.
pub(crate) fn without_suspects(opts: &crate::Options, flags: &[ColumnFlag]) -> crate::Options {
    let mut out = opts.clone();
    if !opts.keep_suspect {
        for f in flags.iter().filter(|f| f.control) {
            if !out.leave_out_controls.contains(&f.column) {
                out.leave_out_controls.push(f.column.clone());
            }
        }
    }
    out
}

/// Marks the findings and rules of every definition that reads a flagged column with the column's
/// evidence (so that they stay out of the headlines), and lists flagged controls among each model's
/// dropped columns; nothing unless `keep_suspect` is off.
pub(crate) fn mark(
    flags: &[ColumnFlag],
    opts: &crate::Options,
    findings: &mut [crate::Finding],
    rules: &mut [crate::Rule],
) {
    if opts.keep_suspect {
        return;
    }
    let words = |f: &ColumnFlag| {
        format!(
            "possible leakage of the column {}: {}",
            f.column, f.evidence
        )
    };
    let add = |slot: &mut Option<String>, id: &str| {
        for f in flags
            .iter()
            .filter(|f| f.definitions.iter().any(|d| d == id))
        {
            *slot = Some(match slot.take() {
                Some(s) => format!("{s}; {}", words(f)),
                None => words(f),
            });
        }
    };
    for finding in findings.iter_mut() {
        add(&mut finding.leakage, &finding.behaviour);
        // Only models that were fitted list their columns.
        if finding.adjusted_for.is_empty() && finding.dropped.is_empty() {
            continue;
        }
        for f in flags.iter().filter(|f| f.control) {
            if finding.outcome == crate::Outcome::DealSize && f.column == "log_amount" {
                continue; // the outcome itself, never a control there
            }
            finding
                .dropped
                .push(format!("{} (possible leakage, see leakage[])", f.column));
        }
    }
    for rule in rules.iter_mut() {
        add(&mut rule.leakage, &rule.feature);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_per_deal_cannot_score_by_remembering_outcomes() {
        // Every deal its own level: in-sample level win rates would give AUC 1; cross-fitted, the
        // levels are never seen in the other half and every deal scores the other half's rate.
        let n = 400;
        let cells: Vec<Cell> = (0..n).map(|i| Cell::Level(format!("deal {i}"))).collect();
        let won: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let halves: Vec<bool> = (0..n).map(|i| half(&format!("opp-{i}"))).collect();
        let a = encoded_auc(&cells, &won, &halves).unwrap();
        assert!((a - 0.5).abs() < 0.1, "{a}");
    }

    #[test]
    fn percentages_never_round_to_all_or_none() {
        assert_eq!(percent(0, 10), "0 %");
        assert_eq!(percent(1, 1000), "under 1 %");
        assert_eq!(percent(999, 1000), "over 99 %");
        assert_eq!(percent(97, 100), "97 %");
    }
}
