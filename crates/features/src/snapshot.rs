//! Analysis snapshots: each opportunity at each landmark, with every feature computed from what was
//! known strictly before the landmark, the controls, and the outcome known later.

use crate::catalog::{Catalog, Control};
use crate::context::{Context, NONE};
use crate::engine::Engine;
use crate::eval::{evaluate, View};
use serde::Serialize;
use winsignal_core::time::MS_PER_DAY;
use winsignal_core::{AttrValue, Outcome, Ts};

/// One opportunity at one landmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landmark {
    pub opp: u32,
    pub as_of: Ts,
    /// Index into [`Landmarks::names`].
    pub name: u32,
}

/// The landmarks of every opportunity, in (opportunity, time) order.
#[derive(Debug, Clone, Default)]
pub struct Landmarks {
    pub names: Vec<String>,
    pub items: Vec<Landmark>,
}

/// Landmarks: each stage entered (from stage history; an opportunity without stage history gets one at
/// creation) and each fixed age — only those before the close and not after `horizon` (the end of data).
pub fn landmarks(ctx: &Context, catalog: &Catalog, horizon: Ts) -> Landmarks {
    let mut names: Vec<String> = Vec::new();
    let name_id = |n: String, names: &mut Vec<String>| match names.iter().position(|x| *x == n) {
        Some(i) => i as u32,
        None => {
            names.push(n);
            (names.len() - 1) as u32
        }
    };
    let mut items = Vec::new();
    let mut order: Vec<u32> = (0..ctx.opps.len() as u32).collect();
    order.sort_by(|a, b| ctx.opps[*a as usize].id.cmp(&ctx.opps[*b as usize].id));
    for opp in order {
        let o = &ctx.opps[opp as usize];
        let open_at = |t: Ts| o.closed.is_none_or(|c| t < c) && t <= horizon;
        let mut mine: Vec<(Ts, String)> = Vec::new();
        if catalog.landmarks.stages {
            if o.stages.is_empty() {
                mine.push((o.created, "created".into()));
            }
            let mut seen: Vec<&str> = Vec::new();
            for (t, stage) in &o.stages {
                let repeat = seen.iter().filter(|s| **s == stage.as_str()).count();
                seen.push(stage);
                let name = if repeat == 0 {
                    format!("stage:{stage}")
                } else {
                    format!("stage:{stage}#{}", repeat + 1)
                };
                mine.push((*t, name));
            }
        }
        for &d in &catalog.landmarks.ages_days {
            mine.push((o.created.plus_days(d as f64), format!("age:{d}d")));
        }
        mine.retain(|(t, _)| open_at(*t));
        mine.sort();
        for (t, n) in mine {
            let name = name_id(n, &mut names);
            items.push(Landmark {
                opp,
                as_of: t,
                name,
            });
        }
    }
    Landmarks { names, items }
}

/// Closed deals without a landmark before their close, so without a snapshot: discovery and training
/// cannot use them. Almost always deals closed the moment they were created (a date-only export whose
/// deal was opened and closed the same day) or before; also a deal whose every stage entry is dated
/// after its close. Counted so that every command that leaves them out can say so.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Unobserved {
    pub won: u64,
    pub lost: u64,
    /// Of those, how many closed at or before their creation time.
    pub closed_at_creation: u64,
    /// Up to five of their ids, in id order.
    pub examples: Vec<String>,
}

impl Unobserved {
    pub fn deals(&self) -> u64 {
        self.won + self.lost
    }

    /// One sentence for a summary, or `None` when no closed deal was left out.
    pub fn sentence(&self) -> Option<String> {
        (self.deals() > 0).then(|| {
            format!(
                "{} closed deal{} ({} won, {} lost) left out: no landmark before the close ({} closed at or before their creation, e.g. the same day in a date-only export); e.g. {}",
                self.deals(),
                if self.deals() == 1 { "" } else { "s" },
                self.won,
                self.lost,
                self.closed_at_creation,
                self.examples.join(", ")
            )
        })
    }
}

/// The closed deals [`landmarks`] gives no landmark ([`Unobserved`]).
pub fn unobserved(ctx: &Context, lms: &Landmarks) -> Unobserved {
    let mut seen = vec![false; ctx.opps.len()];
    for l in &lms.items {
        seen[l.opp as usize] = true;
    }
    let mut out = Unobserved::default();
    let mut ids: Vec<&str> = Vec::new();
    for (o, _) in ctx.opps.iter().zip(&seen).filter(|(_, s)| !**s) {
        let Some(closed) = o.closed else { continue };
        match o.outcome {
            Outcome::Won => out.won += 1,
            Outcome::Lost => out.lost += 1,
            Outcome::Open => continue,
        }
        if closed <= o.created {
            out.closed_at_creation += 1;
        }
        ids.push(&o.id);
    }
    ids.sort_unstable();
    out.examples = ids.iter().take(5).map(|s| s.to_string()).collect();
    out
}

/// A control's value at a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ControlValue {
    Number(f64),
    Text(String),
    Missing,
}

/// One row of the analysis table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub opportunity_id: String,
    pub landmark: String,
    pub as_of: Ts,
    /// Days from the opportunity's creation to the landmark.
    pub age_days: f64,
    pub account_id: Option<String>,
    pub rep_id: Option<String>,
    pub controls: Vec<ControlValue>,
    /// The measure of every definition, in catalog order (NaN when undefined).
    pub values: Vec<f64>,
    /// Yes/no of every behaviour (definitions with a threshold), in catalog order; None when undefined.
    pub flags: Vec<Option<bool>>,
    pub outcome: Outcome,
    /// Days from the landmark to the close, for closed deals.
    pub days_to_close: Option<f64>,
    /// Days from the landmark to the close or, for open deals, to the end of data (censoring time).
    pub days_observed: f64,
    pub amount: Option<f64>,
}

/// Computes one snapshot.
pub fn snapshot(
    engine: &Engine,
    catalog: &Catalog,
    names: &[String],
    lm: &Landmark,
    horizon: Ts,
) -> Snapshot {
    let view = View::new(engine, lm.opp, lm.as_of.0);
    let values = catalog
        .behaviours
        .iter()
        .map(|def| evaluate(def, &view, &mut |_, _| {}))
        .collect();
    assemble(engine, catalog, names, lm, horizon, values)
}

/// [`snapshot`] of each of `lms`, in their order, with the definitions' values from `memo`: only what
/// changed since a deal's last snapshot from it is read, and the snapshots are the same, to the bit.
/// The deals are shared out among the machine's cores ([`crate::memo::Memo::values_of`]).
pub fn snapshots_memo(
    engine: &Engine,
    catalog: &Catalog,
    names: &[String],
    lms: &[Landmark],
    horizon: Ts,
    memo: &mut crate::memo::Memo,
) -> Vec<Snapshot> {
    let deals: Vec<(u32, i64)> = lms.iter().map(|lm| (lm.opp, lm.as_of.0)).collect();
    let values = memo.values_of(engine, catalog, &deals);
    lms.iter()
        .zip(values)
        .map(|(lm, values)| assemble(engine, catalog, names, lm, horizon, values))
        .collect()
}

fn assemble(
    engine: &Engine,
    catalog: &Catalog,
    names: &[String],
    lm: &Landmark,
    horizon: Ts,
    values: Vec<f64>,
) -> Snapshot {
    let ctx = engine.context();
    let o = &ctx.opps[lm.opp as usize];
    let flags = catalog
        .behaviours
        .iter()
        .zip(&values)
        .filter_map(|(def, v)| def.threshold.map(|t| t.test(*v)))
        .collect();
    let end = o.closed.unwrap_or(horizon);
    Snapshot {
        opportunity_id: o.id.clone(),
        landmark: names[lm.name as usize].clone(),
        as_of: lm.as_of,
        age_days: ((lm.as_of.0 - o.created.0) as f64 / MS_PER_DAY as f64).max(0.0),
        account_id: (o.account != NONE).then(|| ctx.accounts[o.account as usize].id.clone()),
        rep_id: o.rep.clone(),
        controls: catalog
            .controls
            .iter()
            .map(|c| control(ctx, lm.opp, c))
            .collect(),
        values,
        flags,
        outcome: o.outcome,
        days_to_close: o
            .closed
            .map(|c| (c.0 - lm.as_of.0) as f64 / MS_PER_DAY as f64),
        days_observed: ((end.0 - lm.as_of.0) as f64 / MS_PER_DAY as f64).max(0.0),
        amount: o.amount,
    }
}

fn control(ctx: &Context, opp: u32, c: &Control) -> ControlValue {
    let o = &ctx.opps[opp as usize];
    let account = (o.account != NONE).then(|| &ctx.accounts[o.account as usize]);
    let text = |s: Option<&String>| {
        s.map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map_or(ControlValue::Missing, |s| ControlValue::Text(s.to_string()))
    };
    let log = |x: Option<f64>| {
        x.filter(|x| *x >= 0.0).map_or(ControlValue::Missing, |x| {
            ControlValue::Number((1.0 + x).ln())
        })
    };
    match c {
        Control::Segment => text(ctx.segment_of(o.account).as_ref()),
        Control::LogEmployees => log(account.and_then(|a| a.employees)),
        Control::Industry => text(account.and_then(|a| a.industry.as_ref())),
        Control::OpportunityType => text(o.opp_type.as_ref()),
        Control::LeadSource => text(o.lead_source.as_ref()),
        Control::LogAmount => log(o.amount),
        Control::CreationQuarter => {
            use chrono::Datelike;
            let d = o.created.to_datetime();
            ControlValue::Text(format!("{}Q{}", d.year(), (d.month() - 1) / 3 + 1))
        }
        Control::Attribute(a) => match ctx.attribute(opp, a.entity, &a.name) {
            Some(AttrValue::Number(x)) => ControlValue::Number(x),
            Some(AttrValue::Boolean(b)) => ControlValue::Text(b.to_string()),
            Some(AttrValue::Date(d)) => ControlValue::Text(d.to_date_string()),
            Some(AttrValue::Text(t)) => text(Some(&t)),
            None => ControlValue::Missing,
        },
    }
}

/// The end of the data: the latest time anything happened (entities, completed or logged activities,
/// product events, touches, tickets). Meetings booked into the future do not extend it.
pub fn horizon(engine: &Engine) -> Ts {
    engine.horizon()
}

/// Every snapshot, in (opportunity id, time) order.
pub fn snapshots(
    engine: &Engine,
    catalog: &Catalog,
    horizon: Ts,
    progress: &mut dyn FnMut(u64, u64),
) -> Vec<Snapshot> {
    let lms = landmarks(engine.context(), catalog, horizon);
    let total = lms.items.len() as u64;
    let mut out = Vec::with_capacity(lms.items.len());
    for (i, lm) in lms.items.iter().enumerate() {
        out.push(snapshot(engine, catalog, &lms.names, lm, horizon));
        if i % 4096 == 0 {
            progress(i as u64, total);
        }
    }
    progress(total, total);
    out
}

/// Adoption of each behaviour over a set of snapshots.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Adoption {
    pub id: String,
    pub version: u32,
    /// Snapshots where the behaviour is defined.
    pub defined: u64,
    pub yes: u64,
    /// yes / defined (NaN written as null when nothing is defined).
    pub rate: Option<f64>,
}

pub fn adoption(catalog: &Catalog, snaps: &[Snapshot]) -> Vec<Adoption> {
    let behaviours: Vec<_> = catalog
        .behaviours
        .iter()
        .filter(|d| d.is_behaviour())
        .collect();
    behaviours
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let defined = snaps.iter().filter(|s| s.flags[i].is_some()).count() as u64;
            let yes = snaps.iter().filter(|s| s.flags[i] == Some(true)).count() as u64;
            Adoption {
                id: d.id.clone(),
                version: d.version,
                defined,
                yes,
                rate: (defined > 0).then(|| yes as f64 / defined as f64),
            }
        })
        .collect()
}

/// When a behaviour shows up relative to the close, over the closed deals: how many show it a week
/// after their close, and how many of those did not show it at the close. A behaviour most deals only
/// show after the close (an onboarding kickoff, a signed order form) is leakage however it is
/// measured at a landmark: its presence says the deal closed, not what won it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    pub id: String,
    pub version: u32,
    /// Closed deals where the behaviour is present `AFTER_CLOSE_DAYS` days after the close.
    pub after: u64,
    /// Of those, deals where it was not present at the close (everything known strictly before it).
    pub only_after: u64,
}

/// How long after the close [`timing`] looks.
pub const AFTER_CLOSE_DAYS: i64 = 7;

impl Timing {
    /// The share of deals showing the behaviour after the close that did not show it at the close.
    pub fn share_only_after(&self) -> Option<f64> {
        (self.after > 0).then(|| self.only_after as f64 / self.after as f64)
    }
}

/// [`Timing`] of every yes/no behaviour of the catalog (catalog order), over the closed deals.
pub fn timing(engine: &Engine, catalog: &Catalog) -> Vec<Timing> {
    let behaviours: Vec<_> = catalog
        .behaviours
        .iter()
        .filter_map(|d| d.threshold.map(|t| (d, t)))
        .collect();
    let mut out: Vec<Timing> = behaviours
        .iter()
        .map(|(d, _)| Timing {
            id: d.id.clone(),
            version: d.version,
            after: 0,
            only_after: 0,
        })
        .collect();
    for (opp, o) in engine.context().opps.iter().enumerate() {
        let Some(closed) = o.closed else { continue };
        if o.outcome == Outcome::Open {
            continue;
        }
        let at_close = View::new(engine, opp as u32, closed.0);
        let later = View::new(engine, opp as u32, closed.0 + AFTER_CLOSE_DAYS * MS_PER_DAY);
        for ((d, threshold), t) in behaviours.iter().zip(out.iter_mut()) {
            if threshold.test(evaluate(d, &later, &mut |_, _| {})) != Some(true) {
                continue;
            }
            t.after += 1;
            if threshold.test(evaluate(d, &at_close, &mut |_, _| {})) != Some(true) {
                t.only_after += 1;
            }
        }
    }
    out
}
