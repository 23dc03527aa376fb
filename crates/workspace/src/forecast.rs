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
use winsignal_score::forecast::{self, Forecast, ForecastOptions, PeriodKind, Scenario};
use winsignal_score::model::{self, TrainOptions};
use winsignal_store::Store;

use crate::scoring::ModelReading;
use crate::Progress;

/// The named state the back-test leaves for the forecast: the shared shock its ranges need.
pub const CALIBRATION: &str = "forecast-calibration";

/// The named state holding the last back-test whole, for the report.
pub const LAST_BACKTEST: &str = "forecast-backtest";

/// The last back-test saved in the workspace, if any.
pub fn last_backtest(store: &dyn Store) -> Result<Option<Backtest>> {
    match store.state(LAST_BACKTEST)? {
        Some(state) => Ok(Some(crate::access::read_json_state(
            state,
            "forecast back-test",
        )?)),
        None => Ok(None),
    }
}

/// What the last back-test found the ranges need, kept for the forecasts after it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Calibration {
    pub kind: PeriodKind,
    /// The shared shock to every deal's log-odds whose ranges held the actuals closest to 80 % of
    /// the time.
    pub shared_shock: f64,
    /// The share of the back-test's actuals inside P10–P90 with it, and how many points that is of.
    pub coverage: f64,
    pub points: usize,
    pub made_at: Ts,
    /// The log-odds shift that made the win model's chances of the deals open at the back-test's
    /// points add up to what they won ([`forecast::calibration_shift`]).
    #[serde(default)]
    pub logit_shift: f64,
}

/// The forecast as of `as_of` of the deals open then, scored with `model` on `engine` ([`calibrated`]),
/// with what changed since the same forecast a week before. Returns it with the options it was made
/// with. `winsignal forecast` and the live service both make it here.
pub fn make(
    store: &dyn Store,
    engine: &winsignal_features::Engine,
    catalog: &winsignal_features::Catalog,
    model: &model::WinModel,
    as_of: Ts,
    opts: &ForecastOptions,
) -> Result<(Forecast, ForecastOptions)> {
    let (_, scored, _) = crate::scoring::scores(engine, catalog, model, Some(as_of), None)?;
    let opts = ForecastOptions {
        data_end: Some(snapshot::horizon(engine)),
        ..opts.clone()
    };
    let (mut f, opts) = calibrated(store, engine.context(), &scored, as_of, &opts)?;
    let week_before = Ts(as_of.0 - 7 * MS_PER_DAY);
    if let Ok((_, earlier, _)) =
        crate::scoring::scores(engine, catalog, model, Some(week_before), None)
    {
        let rates = forecast::stage_win_rates(engine.context(), week_before);
        let before = forecast::forecast(engine.context(), &earlier, &rates, week_before, &opts);
        f.changes = Some(forecast::changes(&before, &f, 10));
    }
    Ok((f, opts))
}

/// The forecast of `scored` (the deals open at `as_of`, scored then) on entities `ctx`, its ranges drawn
/// with the shared shock the last back-test of these periods found in `read` (independent deals when
/// there was none; a note says which). Returns it with the options it was made with.
pub fn calibrated(
    read: &dyn Store,
    ctx: &Context,
    scored: &[winsignal_score::explain::DealScore],
    as_of: Ts,
    opts: &ForecastOptions,
) -> Result<(Forecast, ForecastOptions)> {
    let rates = forecast::stage_win_rates(ctx, as_of);
    let calibration: Option<Calibration> = match read.state(CALIBRATION)? {
        Some(state) => Some(crate::access::read_json_state(
            state,
            "forecast calibration",
        )?),
        None => None,
    };
    let calibration = calibration.filter(|c| c.kind == opts.kind);
    let opts = ForecastOptions {
        shared_shock: calibration
            .as_ref()
            .map_or(opts.shared_shock, |c| c.shared_shock),
        logit_shift: calibration
            .as_ref()
            .map_or(opts.logit_shift, |c| c.logit_shift),
        ..opts.clone()
    };
    let mut f = forecast::forecast(ctx, scored, &rates, as_of, &opts);
    f.notes.push(match &calibration {
        Some(c) => format!(
            "the ranges move every deal's chances together by a shared shock of {} (log-odds), which held {:.0} % of {} back-test actuals in P10–P90 (back-test of {})",
            c.shared_shock,
            100.0 * c.coverage,
            c.points,
            c.made_at.to_date_string()
        ),
        None => "the ranges treat the deals as independent, which is too narrow when they move together; `forecast --backtest` measures how much they do and later forecasts use it".into(),
    });
    if let Some(c) = calibration.as_ref().filter(|c| c.logit_shift != 0.0) {
        f.notes.push(format!(
            "every open deal's P(win) is the win model's moved by {:+.2} in log-odds: the back-test of {} found that deals open at a point won {} often than the model said",
            c.logit_shift,
            c.made_at.to_date_string(),
            if c.logit_shift < 0.0 { "less" } else { "more" }
        ));
    }
    Ok((f, opts))
}

/// The shared shocks the back-test tries.
const SHOCKS: [f64; 8] = [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5];

/// The forecast as of `as_of` (the end of the data when `None`) with the model `model_id` (the active
/// win model when `None`), its ranges drawn with the shared shock the last back-test of these periods
/// found (independent deals when there was none), and each scenario `(behaviour, share)`.
pub fn forecast_at(
    store: &dyn Store,
    catalog: Option<&Path>,
    model_id: Option<&str>,
    as_of: Option<Ts>,
    opts: &ForecastOptions,
    scenarios: &[(String, f64)],
    progress: &mut dyn Progress,
) -> Result<(String, Forecast, Vec<Scenario>)> {
    let mut m = ModelReading::open(store, catalog, model_id)?;
    let entities = std::mem::take(&mut m.ctx);
    let checkpoint = std::mem::take(&mut m.checkpoint);
    let engine = crate::pipeline::replay_with(store, &*m.snapshot, entities, checkpoint, progress)?;
    progress.finish();
    let as_of = as_of.unwrap_or_else(|| snapshot::horizon(&engine).plus_millis(1));
    let (f, opts) = make(store, &engine, &m.catalog, &m.model, as_of, opts)?;
    let mut out = Vec::new();
    if !scenarios.is_empty() {
        let snaps = winsignal_score::dataset::open_snapshots(&engine, &m.catalog, as_of);
        for (behaviour, share) in scenarios {
            let ups = winsignal_score::explain::uplifts(
                &m.model, &m.catalog, &engine, &snaps, behaviour,
            )?;
            let by_deal = snaps
                .iter()
                .zip(ups)
                .filter_map(|(s, u)| u.map(|u| (s.opportunity_id.clone(), u)))
                .collect();
            out.push(forecast::scenario(&f, behaviour, &by_deal, *share, &opts));
        }
    }
    Ok((m.id, f, out))
}

/// One weekly point of the back-test: the forecast of the period holding it, as made then, and what
/// was booked in that period.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
    /// The shared shock P10 and P90 were drawn with: chosen on the points of the periods before this
    /// one (0 for the first), so the coverage measured is out of sample.
    pub shared_shock: f64,
    /// The shift of every open deal's P(win) (log-odds) this point's forecast used: learned on the deals
    /// open at the points of earlier periods, at least a quarter before this period, that had closed by
    /// its start (0 while fewer than 100 had).
    #[serde(default)]
    pub logit_shift: f64,
    pub stage_weighted: f64,
    /// The CRM's own figures as known at the point ([`forecast::PeriodForecast`]).
    #[serde(default)]
    pub crm_weighted: Option<f64>,
    #[serde(default)]
    pub commit: Option<f64>,
    #[serde(default)]
    pub committed: Option<f64>,
    /// The expected share of `committed` closing won in the next period, and the share that did.
    #[serde(default)]
    pub slip: Option<f64>,
    #[serde(default)]
    pub slip_actual: Option<f64>,
    pub open_deals: usize,
    /// The model's training deals all closed before this (the period's start).
    pub trained_before: Ts,
}

/// Accuracy over the points of one week of the period (or all of them).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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
    /// The same for the CRM-weighted pipeline and the commit roll-up, over the points that have them.
    #[serde(default)]
    pub crm_weighted_mape: Option<f64>,
    #[serde(default)]
    pub crm_weighted_bias: Option<f64>,
    #[serde(default)]
    pub commit_mape: Option<f64>,
    #[serde(default)]
    pub commit_bias: Option<f64>,
    /// Over the points with a committed amount: the mean expected slip, the mean actual slip and
    /// the mean absolute difference between them (shares of the committed amount).
    #[serde(default)]
    pub slip_points: usize,
    #[serde(default)]
    pub slip_expected: Option<f64>,
    #[serde(default)]
    pub slip_actual: Option<f64>,
    #[serde(default)]
    pub slip_error: Option<f64>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Backtest {
    pub kind: PeriodKind,
    /// The shared shock chosen on every point, which later forecasts use.
    pub shared_shock: f64,
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
        data_end: Some(end),
        shared_shock: 0.0,
        other_shocks: SHOCKS[1..].to_vec(),
        ..opts.clone()
    };
    // Each point's (P10, P90) for every shock of SHOCKS, and its actual.
    let mut ranges: Vec<(Vec<(f64, f64)>, f64)> = Vec::new();
    let mut period = opts.kind.containing(from);
    if period.start < from {
        period = opts.kind.after(&period);
    }
    let mut points = Vec::new();
    let mut notes = Vec::new();
    // Every deal scored at a point: (the point, the deal, its logit, the amount counted).
    let mut seen: Vec<(Ts, String, f64, f64)> = Vec::new();
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
        // The shock for this period's ranges, chosen on the points before it.
        let shock = choose_shock(&ranges).0;
        // The shift of the chances, learned on the deals of earlier points known by the period's start.
        let shift = learn_shift(ctx, &seen, period.start);
        let point_opts = ForecastOptions {
            logit_shift: shift,
            ..point_opts.clone()
        };
        let mut t = period.start;
        let mut this_period = Vec::new();
        while t < period.end {
            let part = |keep: &dyn Fn(&(Ts, Ts, f64)) -> bool| -> f64 {
                booked.iter().filter(|b| keep(b)).map(|b| b.2).sum()
            };
            let open = winsignal_score::dataset::open_snapshots(&engine, catalog, t);
            let scored = winsignal_score::explain::score(&model, catalog, &engine, &open)?;
            let rates = forecast::stage_win_rates(ctx, t);
            let f = forecast::forecast(ctx, &scored, &rates, t, &point_opts);
            let amounts: std::collections::HashMap<&str, f64> = f
                .deals
                .iter()
                .map(|d| (d.opportunity_id.as_str(), d.amount.unwrap_or(0.0)))
                .collect();
            seen.extend(scored.iter().map(|d| {
                let amount = amounts
                    .get(d.opportunity_id.as_str())
                    .copied()
                    .unwrap_or(0.0);
                let logit = (d.p_win / (1.0 - d.p_win)).ln();
                (t, d.opportunity_id.clone(), logit, amount)
            }));
            let p = &f.periods[0];
            let mut by_shock = vec![(p.p10, p.p90)];
            by_shock.extend(f.ranges.iter().map(|(_, r)| r[0]));
            let next = opts.kind.after(&period);
            let slip_actual = p.committed.filter(|c| *c > 0.0).map(|c| {
                f.deals
                    .iter()
                    .filter(|d| d.committed_in == Some(0))
                    .filter(|d| {
                        ctx.opportunity(&d.opportunity_id).is_some_and(|o| {
                            let o = &ctx.opps[o as usize];
                            o.outcome == Outcome::Won
                                && o.closed.is_some_and(|c| c >= next.start && c < next.end)
                        })
                    })
                    .filter_map(|d| d.amount)
                    .fold(0.0, |a, b| a + b)
                    / c
            });
            let chosen = SHOCKS.iter().position(|s| *s == shock).unwrap_or(0);
            let (p10, p90) = by_shock[chosen];
            this_period.push((by_shock, actual));
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
                p10,
                p50: p.p50,
                p90,
                shared_shock: shock,
                logit_shift: shift,
                stage_weighted: p.stage_weighted,
                crm_weighted: p.crm_weighted,
                commit: p.commit,
                committed: p.committed,
                slip: p.slip,
                slip_actual,
                open_deals: scored.len(),
                trained_before: period.start,
            });
            t = Ts(t.0 + 7 * day);
        }
        ranges.extend(this_period);
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
    let (shared_shock, coverage) = choose_shock(&ranges);
    if !points.is_empty() {
        let calibration = Calibration {
            kind: opts.kind,
            shared_shock,
            coverage,
            points: points.len(),
            made_at: Ts::now(),
            logit_shift: learn_shift(ctx, &seen, Ts(end.0 + 1)),
        };
        let body = serde_json::to_vec(&calibration)?;
        store.put_state(CALIBRATION, "", &mut |w| w.write_all(&body))?;
    }
    let b = Backtest {
        kind: opts.kind,
        shared_shock,
        points,
        by_week,
        overall,
        notes,
        seconds: started.elapsed().as_secs_f64(),
    };
    if !b.points.is_empty() {
        let body = serde_json::to_vec(&b)?;
        store.put_state(LAST_BACKTEST, "", &mut |w| w.write_all(&body))?;
    }
    Ok(b)
}

/// How far the chances of the deals scored at points (`seen`) must move to add up to what they won:
/// over the points at least a quarter before `before` whose deals closed before it (the outcome of a
/// deal still open then is not known, and a point much nearer would count only its quick closes).
fn learn_shift(ctx: &Context, seen: &[(Ts, String, f64, f64)], before: Ts) -> f64 {
    let settled = Ts(before.0 - 91 * MS_PER_DAY);
    let deals: Vec<(f64, f64, bool)> = seen
        .iter()
        .filter(|(t, ..)| *t < settled)
        .filter_map(|(_, id, logit, amount)| {
            let o = &ctx.opps[ctx.opportunity(id)? as usize];
            o.closed.filter(|c| *c < before)?;
            (o.outcome != Outcome::Open && logit.is_finite()).then_some((
                *logit,
                *amount,
                o.outcome == Outcome::Won,
            ))
        })
        .collect();
    forecast::calibration_shift(&deals, 100)
}

/// The shock of [`SHOCKS`] whose ranges held the actuals of `ranges` closest to 80 % of the time (the
/// smaller on a tie; 0 when there are none), with that coverage.
fn choose_shock(ranges: &[(Vec<(f64, f64)>, f64)]) -> (f64, f64) {
    if ranges.is_empty() {
        return (0.0, f64::NAN);
    }
    let coverage = |i: usize| {
        ranges
            .iter()
            .filter(|(r, actual)| {
                r.get(i)
                    .is_some_and(|(lo, hi)| actual >= lo && actual <= hi)
            })
            .count() as f64
            / ranges.len() as f64
    };
    let best = (0..SHOCKS.len())
        .min_by(|a, b| {
            (coverage(*a) - 0.8)
                .abs()
                .total_cmp(&(coverage(*b) - 0.8).abs())
                .then(a.cmp(b))
        })
        .unwrap_or(0);
    (SHOCKS[best], coverage(best))
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
    // The errors of an optional baseline, over the points that have it.
    let optional = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<f64> {
        booked
            .iter()
            .filter_map(|p| f(p).map(|v| (v - p.actual) / p.actual))
            .collect()
    };
    let crm = optional(&|p| p.crm_weighted);
    let commit = optional(&|p| p.commit);
    let slips: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.slip?, p.slip_actual?)))
        .collect();
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
        crm_weighted_mape: mean(crm.iter().map(|x| x.abs()).collect()),
        crm_weighted_bias: mean(crm),
        commit_mape: mean(commit.iter().map(|x| x.abs()).collect()),
        commit_bias: mean(commit),
        slip_points: slips.len(),
        slip_expected: mean(slips.iter().map(|s| s.0).collect()),
        slip_actual: mean(slips.iter().map(|s| s.1).collect()),
        slip_error: mean(slips.iter().map(|s| (s.0 - s.1).abs()).collect()),
    }
}
