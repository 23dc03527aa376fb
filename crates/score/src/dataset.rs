//! The win model's tables: closed deals at their landmarks (to train and evaluate on) and open deals as
//! of a date (to score), with the same columns — every behaviour and feature of the catalog, the deal-mix
//! controls, the stage the deal was in and its age — and the time-based holdout split.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use winsignal_core::{Outcome, Ts};
use winsignal_features::catalog::{Catalog, Control, Recorded};
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
) -> (Vec<Column>, Vec<Excluded>) {
    let mut out = Vec::new();
    let mut excluded = Vec::new();
    for (index, d) in catalog.behaviours.iter().enumerate() {
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

/// The time-based holdout: closed deals in order of their close (then of their id, so that deals closed
/// at the same moment — or data without dates — still split in a fixed order); the first part trains,
/// the rest tests. Deals without a close date are placed by their creation date.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The first test deal's place in that order.
    pub cutoff: OrderKey,
    /// The latest close date in the data (the training data's high-water mark).
    pub latest_close: Ts,
}

/// A closed deal's place in the holdout order.
pub type OrderKey = (Ts, String);

/// Chooses the cutoff so that about `test_share` of the closed deals are at or after it.
pub fn split(ctx: &Context, test_share: f64) -> Result<Split> {
    let mut keys: Vec<OrderKey> = ctx
        .opps
        .iter()
        .filter(|o| o.outcome != Outcome::Open)
        .map(|o| (ordered_by(o), o.id.clone()))
        .collect();
    keys.sort();
    if keys.len() < 100 {
        return Err(Error::NotEnoughData(format!(
            "{} closed deals; the win model needs at least 100",
            keys.len()
        )));
    }
    let at = ((keys.len() as f64) * (1.0 - test_share)).floor() as usize;
    let at = at.clamp(1, keys.len() - 1);
    Ok(Split {
        latest_close: keys[keys.len() - 1].0,
        cutoff: keys.swap_remove(at),
    })
}

/// Where a closed deal falls in time for the holdout: its close date, or its creation date when the data
/// have no close date (a list of marketing calls with their results, say).
pub fn ordered_by(o: &winsignal_features::context::OppInfo) -> Ts {
    o.closed.unwrap_or(o.created)
}

/// Snapshots of every open deal as of `as_of` (from everything known strictly before it), with the
/// landmark named `now`.
pub fn open_snapshots(engine: &Engine<'_>, catalog: &Catalog, as_of: Ts) -> Vec<Snapshot> {
    let ctx = engine.ctx;
    let names = vec!["now".to_string()];
    let mut order: Vec<u32> = (0..ctx.opps.len() as u32)
        .filter(|i| {
            let o = &ctx.opps[*i as usize];
            o.created < as_of && is_open_at(o, as_of)
        })
        .collect();
    order.sort_by(|a, b| ctx.opps[*a as usize].id.cmp(&ctx.opps[*b as usize].id));
    order
        .into_iter()
        .map(|opp| {
            let lm = Landmark {
                opp,
                as_of,
                name: 0,
            };
            snapshot::snapshot(engine, catalog, &names, &lm, as_of)
        })
        .collect()
}

/// Open at `as_of`: not closed before it (a deal closed later was open then, whatever its outcome now).
fn is_open_at(o: &winsignal_features::context::OppInfo, as_of: Ts) -> bool {
    match o.closed {
        Some(c) => c >= as_of,
        None => o.outcome == Outcome::Open,
    }
}
