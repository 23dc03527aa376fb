//! `winsignal forecast`: bookings per period from the open deals scored with the win model
//! ([`winsignal_score::forecast`]), and the back-test that checks it on the workspace's own history —
//! at every weekly point, everything recomputed as it was known then, the model trained again on the
//! deals closed before the point's period began — against the stage-weighted pipeline.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use winsignal_core::time::MS_PER_DAY;
use winsignal_core::{Outcome, Ts};
use winsignal_features::context::Context;
use winsignal_features::snapshot;
use winsignal_score::forecast::{self, Forecast, ForecastOptions, PeriodKind};
use winsignal_score::model::{self, TrainOptions};
use winsignal_store::Store;

use crate::scoring::ModelReading;
use crate::Progress;

/// The forecast as of `as_of` (the end of the data when `None`) with the model `model_id` (the active
/// win model when `None`).
pub fn forecast_at(
    store: &dyn Store,
    catalog: Option<&Path>,
    model_id: Option<&str>,
    as_of: Option<Ts>,
    opts: &ForecastOptions,
    progress: &mut dyn Progress,
) -> Result<(String, Forecast)> {
    let mut m = ModelReading::open(store, catalog, model_id)?;
    let entities = std::mem::take(&mut m.ctx);
    let checkpoint = std::mem::take(&mut m.checkpoint);
    let engine = crate::pipeline::replay_with(store, &*m.snapshot, entities, checkpoint, progress)?;
    progress.finish();
    let (as_of, scored, _) = crate::scoring::scores(&engine, &m.catalog, &m.model, as_of, None)?;
    let ctx = engine.context();
    let rates = forecast::stage_win_rates(ctx, as_of);
    let f = forecast::forecast(ctx, &scored, &rates, as_of, opts);
    Ok((m.id, f))
}

/// One weekly point of the back-test: the forecast of the period holding it, as made then, and what
/// was booked in that period.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub as_of: Ts,
    pub period: String,
    /// 1 for a point in the period's first seven days, and so on.
    pub week: u32,
    pub actual: f64,
    /// Of `actual`: booked before the point, by the deals open at it, by deals created after it.
    pub actual_before: f64,
    pub actual_open: f64,
    pub actual_new: f64,
    pub expected: f64,
    /// Of `expected`: won before the point (exact), expected of the open deals, of deals to come.
    pub closed_won: f64,
    pub open_expected: f64,
    pub new_expected: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    pub stage_weighted: f64,
    pub open_deals: usize,
    /// The model's training deals all closed before this (the period's start).
    pub trained_before: Ts,
}

/// Accuracy over the points of one week of the period (or all of them).
#[derive(Debug, Clone, Serialize)]
pub struct Accuracy {
    /// The week of the period, `None` for every point.
    pub week: Option<u32>,
    pub points: usize,
    /// Mean absolute percentage error of `expected` against the actual bookings.
    pub mape: Option<f64>,
    /// Mean of (forecast − actual) ÷ actual: above 0, forecasts too high.
    pub bias: Option<f64>,
    /// Share of points whose forecast was within 85–115 % of the actual.
    pub within_85_115: Option<f64>,
    /// Share of points whose actual fell in [P10, P90] (about 0.8 if the range says what it claims).
    pub coverage_p10_p90: Option<f64>,
    pub stage_weighted_mape: Option<f64>,
    pub stage_weighted_bias: Option<f64>,
    pub stage_weighted_within_85_115: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backtest {
    pub kind: PeriodKind,
    pub points: Vec<Point>,
    pub by_week: Vec<Accuracy>,
    pub overall: Accuracy,
    /// Periods left out, and why (too few closed deals to train on before them, for one).
    pub notes: Vec<String>,
    pub seconds: f64,
}

/// Back-tests the forecast of the period holding each weekly point from `from` (two years before the
/// end of the data when `None`, or a year after its start if later) to the last period that ended
/// within the data.
pub fn backtest(
    store: &dyn Store,
    catalog: Option<&Path>,
    model_id: Option<&str>,
    from: Option<Ts>,
    opts: &ForecastOptions,
    progress: &mut dyn Progress,
) -> Result<Backtest> {
    let started = std::time::Instant::now();
    let mut m = ModelReading::open(store, catalog, model_id)?;
    let entities = std::mem::take(&mut m.ctx);
    let checkpoint = std::mem::take(&mut m.checkpoint);
    let engine = crate::pipeline::replay_with(store, &*m.snapshot, entities, checkpoint, progress)?;
    let catalog = &m.catalog;
    let ctx = engine.context();
    let end = snapshot::horizon(&engine);
    let snaps = snapshot::snapshots(&engine, catalog, end, &mut |d, t| {
        progress.phase("computing snapshots", d, t)
    });
    let timing = snapshot::timing(&engine, catalog);
    progress.finish();
    let first = ctx.opps.iter().map(|o| o.created).min().unwrap_or(end);
    let day = MS_PER_DAY;
    let from = from.unwrap_or_else(|| Ts(end.0 - 730 * day).max(Ts(first.0 + 365 * day)));
    let point_opts = ForecastOptions {
        periods: 1,
        ..opts.clone()
    };
    let mut period = opts.kind.containing(from);
    if period.start < from {
        period = opts.kind.after(&period);
    }
    let mut points = Vec::new();
    let mut notes = Vec::new();
    while period.end <= end {
        let trained = train_before(ctx, catalog, &snaps, &timing, period.start);
        let model = match trained {
            Ok(model) => model,
            Err(e) => {
                notes.push(format!(
                    "{}: no model trained on the deals closed before it ({e})",
                    period.label
                ));
                period = opts.kind.after(&period);
                continue;
            }
        };
        let booked: Vec<(Ts, Ts, f64)> = ctx
            .opps
            .iter()
            .filter(|o| o.outcome == Outcome::Won)
            .filter_map(|o| {
                let c = o.closed.filter(|c| *c >= period.start && *c < period.end)?;
                let a = o.amount.filter(|a| a.is_finite() && *a > 0.0)?;
                Some((o.created, c, a))
            })
            .collect();
        let actual: f64 = booked.iter().map(|b| b.2).sum();
        let mut t = period.start;
        while t < period.end {
            let part = |keep: &dyn Fn(&(Ts, Ts, f64)) -> bool| -> f64 {
                booked.iter().filter(|b| keep(b)).map(|b| b.2).sum()
            };
            let open = winsignal_score::dataset::open_snapshots(&engine, catalog, t);
            let scored = winsignal_score::explain::score(&model, catalog, &engine, &open)?;
            let rates = forecast::stage_win_rates(ctx, t);
            let f = forecast::forecast(ctx, &scored, &rates, t, &point_opts);
            let p = &f.periods[0];
            points.push(Point {
                as_of: t,
                period: period.label.clone(),
                week: ((t.0 - period.start.0) / (7 * day)) as u32 + 1,
                actual,
                actual_before: part(&|b| b.1 < t),
                actual_open: part(&|b| b.1 >= t && b.0 < t),
                actual_new: part(&|b| b.1 >= t && b.0 >= t),
                expected: p.expected,
                closed_won: p.closed_won,
                open_expected: p.open_expected,
                new_expected: p.new_expected,
                p10: p.p10,
                p50: p.p50,
                p90: p.p90,
                stage_weighted: p.stage_weighted,
                open_deals: scored.len(),
                trained_before: period.start,
            });
            t = Ts(t.0 + 7 * day);
        }
        progress.phase("back-testing", points.len() as u64, 0);
        period = opts.kind.after(&period);
    }
    progress.finish();
    if points.is_empty() {
        notes.push(format!(
            "no {} starting on or after {} ended within the data (it ends {}); give an earlier --from",
            match opts.kind {
                PeriodKind::Month => "month",
                PeriodKind::Quarter => "quarter",
            },
            from.to_date_string(),
            end.to_date_string()
        ));
    }
    let mut weeks: Vec<u32> = points.iter().map(|p| p.week).collect();
    weeks.sort_unstable();
    weeks.dedup();
    let by_week = weeks
        .iter()
        .map(|&w| accuracy(Some(w), points.iter().filter(|p| p.week == w)))
        .collect();
    let overall = accuracy(None, points.iter());
    Ok(Backtest {
        kind: opts.kind,
        points,
        by_week,
        overall,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The win model as it would have been trained at `before`: on the deals closed before it, from their
/// snapshots before it, with the deals that closed later taken as open (no next-best-action evidence:
/// the back-test needs the chances only).
fn train_before(
    ctx: &Context,
    catalog: &winsignal_features::Catalog,
    snaps: &[winsignal_features::snapshot::Snapshot],
    timing: &[winsignal_features::snapshot::Timing],
    before: Ts,
) -> Result<model::WinModel> {
    let mut then = ctx.clone();
    for o in &mut then.opps {
        if o.closed.is_none_or(|c| c >= before) {
            o.closed = None;
            o.outcome = Outcome::Open;
        }
    }
    let known: Vec<winsignal_features::snapshot::Snapshot> = snaps
        .iter()
        .filter(|s| s.as_of < before)
        .filter(|s| {
            then.opportunity(&s.opportunity_id)
                .is_some_and(|o| then.opps[o as usize].outcome != Outcome::Open)
        })
        .cloned()
        .collect();
    Ok(model::train(
        &then,
        catalog,
        &known,
        timing,
        Vec::new(),
        &TrainOptions::default(),
    )?)
}

/// The accuracy of `points`: the percentage figures over the points with bookings (a period with none
/// has no percentage error), the coverage over all.
fn accuracy<'a>(week: Option<u32>, points: impl Iterator<Item = &'a Point>) -> Accuracy {
    let points: Vec<&Point> = points.collect();
    let booked: Vec<&&Point> = points.iter().filter(|p| p.actual > 0.0).collect();
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let err = |f: &dyn Fn(&Point) -> f64| -> Vec<f64> {
        booked
            .iter()
            .map(|p| (f(p) - p.actual) / p.actual)
            .collect()
    };
    let ours = err(&|p| p.expected);
    let base = err(&|p| p.stage_weighted);
    let within = |e: &[f64]| {
        mean(
            e.iter()
                .map(|x| f64::from(u8::from(x.abs() <= 0.15)))
                .collect(),
        )
    };
    Accuracy {
        week,
        points: points.len(),
        mape: mean(ours.iter().map(|x| x.abs()).collect()),
        bias: mean(ours.clone()),
        within_85_115: within(&ours),
        coverage_p10_p90: mean(
            points
                .iter()
                .map(|p| f64::from(u8::from(p.actual >= p.p10 && p.actual <= p.p90)))
                .collect(),
        ),
        stage_weighted_mape: mean(base.iter().map(|x| x.abs()).collect()),
        stage_weighted_bias: mean(base.clone()),
        stage_weighted_within_85_115: within(&base),
    }
}
