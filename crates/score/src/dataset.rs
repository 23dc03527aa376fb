//! The win model's tables: closed deals at their landmarks (to train and evaluate on) and open deals as
//! of a date (to score), with the same columns — every behaviour and feature of the catalog, the deal-mix
//! controls, the stage the deal was in and its age — and the time-based holdout split.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use winsignal_core::{Outcome, Ts};
use winsignal_features::catalog::{Catalog, Control, Recorded};
use winsignal_features::memo::Memo;
use winsignal_features::snapshot::{self, ControlValue, Landmark, Snapshot, Timing};
use winsignal_features::{Context, Engine};
use winsignal_learn::{Dataset, Feature};

/// The name of the stage column (the stage the deal was in at the snapshot).
pub const STAGE: &str = "stage";
/// The name of the age column (days since the deal was created).
pub const AGE: &str = "age_days";

/// What one column of the model is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum ColumnSource {
    /// A catalog definition's measure (`Snapshot::values[index]`).
    Definition {
        id: String,
        version: u32,
        index: usize,
    },
    /// A deal-mix control (`Snapshot::controls[index]`).
    Control {
        index: usize,
        numeric: bool,
    },
    Stage,
    Age,
}

/// A column of the model: its name (the feature name the learner sees) and its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(flatten)]
    pub source: ColumnSource,
}

/// Definitions left out of the model, with the reason (leakage would make the model learn the outcome).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Excluded {
    pub id: String,
    pub reason: String,
}

/// The columns of the model for a catalog, and what was left out.
pub fn columns(
    catalog: &Catalog,
    snaps: &[Snapshot],
    timing: &[Timing],
    keep_suspect: bool,
    history_flags: &[winsignal_discover::ColumnFlag],
) -> (Vec<Column>, Vec<Excluded>) {
    let mut out = Vec::new();
    let mut excluded = Vec::new();
    // Columns that may be recorded because of the outcome (discovery's column-level leakage checks, and
    // what the store's history shows written at the close): every definition reading one, and a flagged
    // control, stay out unless the caller keeps them.
    let flags = if keep_suspect {
        Vec::new()
    } else {
        let mut flags = winsignal_discover::suspect_columns(catalog, snaps);
        flags.extend(history_flags.iter().cloned());
        flags
    };
    let flagged_definition =
        |id: &str| flags.iter().find(|f| f.definitions.iter().any(|d| d == id));
    let flagged_control = |name: &str| flags.iter().find(|f| f.control && f.column == name);
    let leak_reason = |f: &winsignal_discover::ColumnFlag| {
        format!(
            "possible leakage of the column {}: {}",
            f.column, f.evidence
        )
    };
    for (index, d) in catalog.behaviours.iter().enumerate() {
        if let Some(f) = flagged_definition(&d.id) {
            excluded.push(Excluded {
                id: d.id.clone(),
                reason: leak_reason(f),
            });
            continue;
        }
        if d.recorded == Recorded::AtOutcome {
            excluded.push(Excluded {
                id: d.id.clone(),
                reason: "declared recorded at the outcome (leakage)".into(),
            });
            continue;
        }
        let late = timing
            .iter()
            .find(|t| t.id == d.id && t.version == d.version)
            .filter(|t| t.after >= 30)
            .and_then(Timing::share_only_after)
            .filter(|s| *s > 0.5);
        if let Some(share) = late {
            excluded.push(Excluded {
                id: d.id.clone(),
                reason: format!(
                    "happens mostly at or after the close ({:.0} % of the deals showing it only after)",
                    100.0 * share
                ),
            });
            continue;
        }
        out.push(Column {
            name: d.id.clone(),
            source: ColumnSource::Definition {
                id: d.id.clone(),
                version: d.version,
                index,
            },
        });
    }
    for (index, c) in catalog.controls.iter().enumerate() {
        // The creation quarter adjusts discovery for the period; as a predictor it only names periods
        // the model will never see again.
        if *c == Control::CreationQuarter {
            continue;
        }
        if let Some(f) = flagged_control(&c.column()) {
            excluded.push(Excluded {
                id: c.column(),
                reason: leak_reason(f),
            });
            continue;
        }
        let numeric = c.is_numeric() || {
            let mut present = snaps
                .iter()
                .filter_map(|s| s.controls.get(index))
                .filter(|v| !matches!(v, ControlValue::Missing))
                .peekable();
            present.peek().is_some() && present.all(|v| matches!(v, ControlValue::Number(_)))
        };
        out.push(Column {
            name: c.column(),
            source: ColumnSource::Control { index, numeric },
        });
    }
    out.push(Column {
        name: STAGE.into(),
        source: ColumnSource::Stage,
    });
    out.push(Column {
        name: AGE.into(),
        source: ColumnSource::Age,
    });
    (out, excluded)
}

/// One row of a table: which deal, when, and (for closed deals) how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowInfo {
    pub opportunity_id: String,
    pub landmark: String,
    pub as_of: Ts,
    pub stage: Option<String>,
    pub segment: Option<String>,
    pub rep_id: Option<String>,
    pub account_id: Option<String>,
    pub outcome: Outcome,
    pub closed_at: Option<Ts>,
}

/// Rows, their columns as a learner's data set, and the labels (won) of closed rows.
pub struct Table<'s> {
    pub rows: Vec<RowInfo>,
    pub snapshots: Vec<&'s Snapshot>,
    pub data: Dataset,
    pub won: Vec<bool>,
}

/// The stage a deal was in at `as_of`: the last stage entered at or before it.
pub fn stage_at(ctx: &Context, opp: u32, as_of: Ts) -> Option<String> {
    ctx.opps.get(opp as usize).and_then(|o| {
        o.stages
            .iter()
            .take_while(|(t, _)| *t <= as_of)
            .last()
            .map(|(_, s)| s.clone())
    })
}

/// Builds the table of `snaps` (in the order given) with `columns`.
pub fn table<'s>(ctx: &Context, columns: &[Column], snaps: Vec<&'s Snapshot>) -> Result<Table<'s>> {
    let segment_index = columns.iter().find_map(|c| match &c.source {
        ColumnSource::Control { index, .. } if c.name == "segment" => Some(*index),
        _ => None,
    });
    let rows: Vec<RowInfo> = snaps
        .iter()
        .map(|s| {
            let opp = ctx.opportunity(&s.opportunity_id);
            let o = opp.and_then(|i| ctx.opps.get(i as usize));
            RowInfo {
                opportunity_id: s.opportunity_id.clone(),
                landmark: s.landmark.clone(),
                as_of: s.as_of,
                stage: opp.and_then(|i| stage_at(ctx, i, s.as_of)),
                segment: segment_index.and_then(|i| match s.controls.get(i) {
                    Some(ControlValue::Text(t)) => Some(t.clone()),
                    _ => None,
                }),
                rep_id: s.rep_id.clone(),
                account_id: s.account_id.clone(),
                outcome: s.outcome,
                closed_at: o.and_then(|o| o.closed),
            }
        })
        .collect();
    let features = columns
        .iter()
        .map(|c| match &c.source {
            ColumnSource::Definition { index, .. } => Feature::numeric(
                &c.name,
                snaps
                    .iter()
                    .map(|s| s.values.get(*index).copied().filter(|v| v.is_finite()))
                    .collect(),
            ),
            ColumnSource::Control {
                index,
                numeric: true,
            } => Feature::numeric(
                &c.name,
                snaps
                    .iter()
                    .map(|s| match s.controls.get(*index) {
                        Some(ControlValue::Number(x)) if x.is_finite() => Some(*x),
                        _ => None,
                    })
                    .collect(),
            ),
            ColumnSource::Control {
                index,
                numeric: false,
            } => Feature::categorical(
                &c.name,
                snaps
                    .iter()
                    .map(|s| match s.controls.get(*index) {
                        Some(ControlValue::Text(t)) => Some(t.clone()),
                        Some(ControlValue::Number(x)) => Some(format!("{x}")),
                        _ => None,
                    })
                    .collect(),
            ),
            ColumnSource::Stage => {
                Feature::categorical(&c.name, rows.iter().map(|r| r.stage.clone()).collect())
            }
            ColumnSource::Age => {
                Feature::numeric(&c.name, snaps.iter().map(|s| Some(s.age_days)).collect())
            }
        })
        .collect();
    let data = Dataset::new(features).map_err(|e| Error::Learn(e.to_string()))?;
    let won = snaps.iter().map(|s| s.outcome == Outcome::Won).collect();
    Ok(Table {
        rows,
        snapshots: snaps,
        data,
        won,
    })
}

/// What the holdout really is: by close date, or (when the close dates cannot order the deals) by
/// creation date, or (when neither can) a stratified pseudo-random split by deal id. Shown to the user
/// and saved with the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitKind {
    /// Deals ordered by their close date: the latest to close are tested (an out-of-time test).
    Time,
    /// Deals ordered by their creation date, when the close dates cannot order them: the latest created
    /// are tested (out of time by cohort).
    CreationTime,
    /// Deals ordered by a hash of their id within each outcome, so that the same share of the won and
    /// of the lost deals is held out: not an out-of-time test.
    StratifiedHash,
}

/// The holdout as the user should read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    pub kind: SplitKind,
    /// One sentence saying what the split is, with dates for a time split.
    pub description: String,
    /// Why the split is not what it seems, or had to fall back (empty when all is well).
    pub warnings: Vec<String>,
}

impl Default for SplitInfo {
    /// What models saved before the split was described had: a time split.
    fn default() -> Self {
        SplitInfo {
            kind: SplitKind::Time,
            description: "by close date (saved before the split was described)".into(),
            warnings: Vec::new(),
        }
    }
}

/// The holdout: closed deals in a fixed order (see [`SplitKind`]; within equal times, by id); the
/// first part trains, the rest tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The first test deal's place in that order.
    pub cutoff: OrderKey,
    /// The latest close date in the data (the training data's high-water mark).
    pub latest_close: Ts,
    pub info: SplitInfo,
    /// Every closed deal's place in the order, by index in the context (`None` for open deals).
    keys: Vec<Option<OrderKey>>,
}

impl Split {
    /// A closed deal's place in the holdout order (by its index in the context).
    pub fn key(&self, opp: u32) -> Option<&OrderKey> {
        self.keys.get(opp as usize).and_then(Option::as_ref)
    }
}

/// A closed deal's place in the holdout order: a time (the close date for a time split, the epoch for
/// a hash split) and a tie-breaker (the deal id, prefixed by its stratified rank for a hash split).
pub type OrderKey = (Ts, String);

/// Closed deals without a close date, as a share of all closed deals, above which the time split is
/// abandoned: placing them anywhere in time is a guess that can move one outcome into the test period
/// (lost deals without a close date placed at their creation date left the test period with a win rate
/// of 15.6 % against 6.5 % in training).
pub const MAX_UNDATED_SHARE: f64 = 0.02;

/// The share of the closed deals that may share a single close date before the time split is abandoned
/// (beyond it, the split inside that date is by id, not by time).
pub const MAX_SAME_DATE_SHARE: f64 = 0.5;

/// Chooses the holdout so that about `test_share` of the closed deals are at or after the cutoff.
///
/// By close date when the close dates can order the deals. Otherwise — no close dates, most deals on
/// one close date, or more than [`MAX_UNDATED_SHARE`] of the closed deals without one — by creation date
/// (every deal alike, so which deals lack a close date cannot bias the split), or when most deals also
/// share one creation date, a stratified hash split; each fallback with a warning saying why. The few
/// undated deals a time split tolerates are placed at their last known stage change (else their
/// creation), with a warning.
pub fn split(ctx: &Context, test_share: f64) -> Result<Split> {
    let closed: Vec<u32> = (0..ctx.opps.len() as u32)
        .filter(|i| ctx.opps[*i as usize].outcome != Outcome::Open)
        .collect();
    if closed.len() < 100 {
        return Err(Error::NotEnoughData(format!(
            "{} closed deals; the win model needs at least 100",
            closed.len()
        )));
    }
    let n_closed = closed.len();
    let opp = |i: u32| &ctx.opps[i as usize];
    let undated: Vec<u32> = closed
        .iter()
        .copied()
        .filter(|i| opp(*i).closed.is_none())
        .collect();
    let undated_of = |outcome: Outcome| -> (usize, usize) {
        let all = closed
            .iter()
            .filter(|i| opp(**i).outcome == outcome)
            .count();
        let missing = undated
            .iter()
            .filter(|i| opp(**i).outcome == outcome)
            .count();
        (missing, all)
    };
    let mut dates: Vec<Ts> = closed.iter().filter_map(|i| opp(*i).closed).collect();
    dates.sort();
    let (largest_same_date, same_date) = largest_run(&dates);
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    let mut warnings = Vec::new();
    let fallback = if dates.is_empty() {
        Some(format!(
            "none of the {n_closed} closed deals has a close date, so no time-based holdout is possible"
        ))
    } else if largest_same_date as f64 > MAX_SAME_DATE_SHARE * n_closed as f64 {
        Some(format!(
            "{} of the {n_closed} closed deals ({:.0} %) share one close date ({}), so ordering by close date would split them by id, not by time",
            largest_same_date,
            pct(largest_same_date, n_closed),
            same_date.to_date_string()
        ))
    } else if undated.len() as f64 > MAX_UNDATED_SHARE * n_closed as f64 {
        let (won_missing, won) = undated_of(Outcome::Won);
        let (lost_missing, lost) = undated_of(Outcome::Lost);
        Some(format!(
            "{} of the {n_closed} closed deals ({:.1} %) have no close date ({:.1} % of the won, {:.1} % of the lost); placing them in time would be a guess that can move one outcome into the test period",
            undated.len(),
            pct(undated.len(), n_closed),
            pct(won_missing, won),
            pct(lost_missing, lost)
        ))
    } else {
        None
    };
    let latest_close = dates
        .last()
        .copied()
        .or_else(|| closed.iter().map(|i| opp(*i).created).max())
        .unwrap_or(Ts(0));
    let mut keys: Vec<Option<OrderKey>> = vec![None; ctx.opps.len()];
    let mut created: Vec<Ts> = closed.iter().map(|i| opp(*i).created).collect();
    created.sort();
    let (largest_same_created, _) = largest_run(&created);
    let by_creation = largest_same_created as f64 <= MAX_SAME_DATE_SHARE * n_closed as f64;
    let kind = match (&fallback, by_creation) {
        (None, _) => SplitKind::Time,
        (Some(_), true) => SplitKind::CreationTime,
        (Some(_), false) => SplitKind::StratifiedHash,
    };
    match kind {
        SplitKind::Time => {
            for i in &closed {
                let o = opp(*i);
                keys[*i as usize] = Some((ordered_by(o), o.id.clone()));
            }
            if !undated.is_empty() {
                let (won_missing, _) = undated_of(Outcome::Won);
                let (lost_missing, _) = undated_of(Outcome::Lost);
                warnings.push(format!(
                    "{} closed deals have no close date ({won_missing} won, {lost_missing} lost); they are placed at their last stage change (else their creation date)",
                    undated.len()
                ));
            }
        }
        SplitKind::CreationTime => {
            for i in &closed {
                let o = opp(*i);
                keys[*i as usize] = Some((o.created, o.id.clone()));
            }
            warnings.push(format!(
                "{}: the holdout orders every closed deal by its creation date instead (the latest created are tested)",
                fallback.clone().unwrap_or_default()
            ));
        }
        SplitKind::StratifiedHash => {
            // Within each outcome, deals ordered by a hash of their id; each gets the quantile of its
            // rank there, so both outcomes spread evenly over the order.
            for outcome in [Outcome::Won, Outcome::Lost] {
                let mut ranked: Vec<(u64, u32)> = closed
                    .iter()
                    .copied()
                    .filter(|i| opp(*i).outcome == outcome)
                    .map(|i| (xxhash_rust::xxh3::xxh3_64(opp(i).id.as_bytes()), i))
                    .collect();
                ranked.sort_unstable_by(|a, b| {
                    a.0.cmp(&b.0).then_with(|| opp(a.1).id.cmp(&opp(b.1).id))
                });
                let n = ranked.len() as f64;
                for (rank, (_, i)) in ranked.into_iter().enumerate() {
                    let quantile = ((rank as f64 + 0.5) / n * 1e12) as u64;
                    keys[i as usize] = Some((Ts(0), format!("{quantile:013}\u{0}{}", opp(i).id)));
                }
            }
            warnings.push(format!(
                "{}, and {largest_same_created} of them ({:.0} %) share one creation date: the holdout is a stratified pseudo-random split by deal id instead, which does not test the model on later deals",
                fallback.clone().unwrap_or_default(),
                pct(largest_same_created, n_closed)
            ));
        }
    }
    let mut order: Vec<&OrderKey> = keys.iter().flatten().collect();
    order.sort();
    let at = ((order.len() as f64) * (1.0 - test_share)).floor() as usize;
    let at = at.clamp(1, order.len() - 1);
    let cutoff = order[at].clone();
    let n_test = order.len() - at;
    let last = order.last().map_or(cutoff.0, |k| k.0);
    let description = match kind {
        SplitKind::Time => format!(
            "by close date: deals closed before {} train, the {n_test} closed from then to {} test",
            cutoff.0.to_date_string(),
            last.to_date_string()
        ),
        SplitKind::CreationTime => format!(
            "by creation date (the close dates cannot order the deals): deals created before {} train, the {n_test} created from then to {} test",
            cutoff.0.to_date_string(),
            last.to_date_string()
        ),
        SplitKind::StratifiedHash => format!(
            "a stratified pseudo-random split by deal id (no usable dates): {n_test} deals, {:.0} % of the won and of the lost, held out; not out of time",
            100.0 * test_share
        ),
    };
    let info = SplitInfo {
        kind,
        description,
        warnings,
    };
    Ok(Split {
        latest_close,
        cutoff,
        info,
        keys,
    })
}

/// The length of the longest run of equal values in sorted `v`, and that value.
fn largest_run(v: &[Ts]) -> (usize, Ts) {
    let (mut best, mut best_value, mut run) = (0usize, Ts(0), 0usize);
    for (k, d) in v.iter().enumerate() {
        run = if k > 0 && v[k - 1] == *d { run + 1 } else { 1 };
        if run > best {
            (best, best_value) = (run, *d);
        }
    }
    (best, best_value)
}

/// Where a closed deal falls in time for a time split: its close date, else its last stage change,
/// else its creation date (a time split tolerates only a few such deals, see [`split`]).
pub fn ordered_by(o: &winsignal_features::context::OppInfo) -> Ts {
    o.closed
        .or_else(|| o.stages.last().map(|(t, _)| *t))
        .unwrap_or(o.created)
}

/// Snapshots of every open deal as of `as_of` (from everything known strictly before it), with the
/// landmark named `now`.
pub fn open_snapshots(engine: &Engine, catalog: &Catalog, as_of: Ts) -> Vec<Snapshot> {
    let ctx = engine.context();
    open_snapshots_of(engine, catalog, as_of, 0..ctx.opps.len() as u32, None)
}

/// [`open_snapshots`] of the deals among `ids` (opportunity ids; unknown ones are left out; every open
/// deal when `None`), with the definitions' values from `memo` (see [`winsignal_features::memo`]): what
/// the live state rescores with, reading only the events that arrived since a deal's last rescore.
pub fn open_snapshots_remembered(
    engine: &Engine,
    catalog: &Catalog,
    as_of: Ts,
    ids: Option<&[String]>,
    memo: &mut Memo,
) -> Vec<Snapshot> {
    let ctx = engine.context();
    match ids {
        Some(ids) => {
            let slots: Vec<u32> = ids.iter().filter_map(|id| ctx.opportunity(id)).collect();
            open_snapshots_of(engine, catalog, as_of, slots.into_iter(), Some(memo))
        }
        None => open_snapshots_of(engine, catalog, as_of, 0..ctx.opps.len() as u32, Some(memo)),
    }
}

fn open_snapshots_of(
    engine: &Engine,
    catalog: &Catalog,
    as_of: Ts,
    slots: impl Iterator<Item = u32>,
    memo: Option<&mut Memo>,
) -> Vec<Snapshot> {
    let ctx = engine.context();
    let names = vec!["now".to_string()];
    let mut order: Vec<u32> = slots
        .filter(|i| {
            let o = &ctx.opps[*i as usize];
            o.created < as_of && is_open_at(o, as_of)
        })
        .collect();
    order.sort_by(|a, b| ctx.opps[*a as usize].id.cmp(&ctx.opps[*b as usize].id));
    order.dedup();
    let lms: Vec<Landmark> = order
        .into_iter()
        .map(|opp| Landmark {
            opp,
            as_of,
            name: 0,
        })
        .collect();
    match memo {
        Some(memo) => snapshot::snapshots_memo(engine, catalog, &names, &lms, as_of, memo),
        None => lms
            .iter()
            .map(|lm| snapshot::snapshot(engine, catalog, &names, lm, as_of))
            .collect(),
    }
}

/// Open at `as_of`: not closed before it (a deal closed later was open then, whatever its outcome now).
fn is_open_at(o: &winsignal_features::context::OppInfo, as_of: Ts) -> bool {
    match o.closed {
        Some(c) => c >= as_of,
        None => o.outcome == Outcome::Open,
    }
}
