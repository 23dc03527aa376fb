//! Bookings per period, forecast from the deals themselves: what was won so far in the period, what the
//! open deals are expected to bring (P(win) from the win model × the chance a won deal closes within the
//! period, from the time won deals took from the deal's stage, × the amount), and what deals not created
//! yet are expected to bring (the recent creation rate × what such deals brought within the same span).
//! The timing is learned as of `as_of` from the deals that were open at weekly points at least half a
//! year (and the horizon) before it and were won: how long they took from there, by the stage they were
//! in and how long they had been in it. Deals open at a point are the population a forecast is about.
//!
//! The distribution comes from simulating every deal (and the deals to come) many times with a fixed
//! seed; every deal's expected share is kept, so the total can be taken apart.
//!
//! Point in time: given `as_of`, nothing here reads a close, an outcome or a deal created at or after
//! it (a deal closed later counts as open then). The amounts are the deals' current ones.
//!
//! The baseline beside it is the stage-weighted pipeline: the same, with each open deal's P(win) replaced
//! by the historical win rate of deals that reached its stage (the timing and the deals to come are the
//! same for both, so the two differ only in how likely each deal is to be won).

use std::collections::BTreeMap;

use chrono::Datelike;
use serde::Serialize;
use winsignal_core::rng::Rng;
use winsignal_core::time::MS_PER_DAY;
use winsignal_core::{is_commit_category, CrmForecast, Outcome, Ts};
use winsignal_features::context::{Context, OppInfo};

use crate::explain::DealScore;

/// Calendar periods bookings are counted in (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Month,
    Quarter,
}

impl std::str::FromStr for PeriodKind {
    type Err = String;

    fn from_str(s: &str) -> Result<PeriodKind, String> {
        match s {
            "month" => Ok(PeriodKind::Month),
            "quarter" => Ok(PeriodKind::Quarter),
            _ => Err(format!("period {s:?}: expected month or quarter")),
        }
    }
}

/// One period: `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// `2026-Q2` or `2026-06`.
    pub label: String,
    pub start: Ts,
    pub end: Ts,
}

impl PeriodKind {
    fn months(self) -> u32 {
        match self {
            PeriodKind::Month => 1,
            PeriodKind::Quarter => 3,
        }
    }

    /// The period holding `t`.
    pub fn containing(self, t: Ts) -> Period {
        let d = t.to_datetime();
        let first = (d.month() - 1) / self.months() * self.months() + 1;
        self.starting(d.year(), first)
    }

    /// The period after `p`.
    pub fn after(self, p: &Period) -> Period {
        let d = p.end.to_datetime();
        self.starting(d.year(), d.month())
    }

    fn starting(self, year: i32, month: u32) -> Period {
        let (ny, nm) = if month + self.months() > 12 {
            (year + 1, month + self.months() - 12)
        } else {
            (year, month + self.months())
        };
        let label = match self {
            PeriodKind::Month => format!("{year:04}-{month:02}"),
            PeriodKind::Quarter => format!("{year:04}-Q{}", (month - 1) / 3 + 1),
        };
        Period {
            label,
            start: Ts::from_ymd(year, month, 1).unwrap_or(Ts(0)),
            end: Ts::from_ymd(ny, nm, 1).unwrap_or(Ts(0)),
        }
    }
}

/// What a forecast is made with.
#[derive(Debug, Clone)]
pub struct ForecastOptions {
    pub kind: PeriodKind,
    /// How many periods, the one holding `as_of` first.
    pub periods: usize,
    pub simulations: usize,
    pub seed: u64,
    /// How much all deals' chances move together in one simulation: the standard deviation of a shock
    /// to every deal's log-odds shared by all of them (0: deals are independent).
    pub shared_shock: f64,
    /// How far back the creation rate and the deals that show what new deals bring are taken from.
    pub history_days: f64,
    /// Other shared shocks to draw ranges for as well (a quarter of the simulations each), for the
    /// back-test to choose among ([`Forecast::ranges`]).
    pub other_shocks: Vec<f64>,
    /// When the data were taken: a forecast as of a later time reads the deals' current CRM forecast
    /// fields, an earlier one only what their history shows then ([`OppInfo::crm_at`]).
    pub data_end: Option<Ts>,
    /// How far (in log-odds) every open deal's P(win) is moved before it is used: what the back-test
    /// found the win model's chances of the deals open at a point need to match how such deals ended
    /// (0 until a back-test measured it).
    pub logit_shift: f64,
}

impl Default for ForecastOptions {
    fn default() -> ForecastOptions {
        ForecastOptions {
            kind: PeriodKind::Quarter,
            periods: 3,
            simulations: 4000,
            seed: 7,
            shared_shock: 0.0,
            history_days: 365.0,
            other_shocks: Vec::new(),
            data_end: None,
            logit_shift: 0.0,
        }
    }
}

/// One period's forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodForecast {
    #[serde(flatten)]
    pub period: Period,
    /// Won in the period before `as_of` (only the first period has any).
    pub closed_won: f64,
    /// What the deals open at `as_of` are expected to bring in the period.
    pub open_expected: f64,
    /// What deals created after `as_of` are expected to bring in the period.
    pub new_expected: f64,
    /// `closed_won + open_expected + new_expected`.
    pub expected: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    /// The stage-weighted pipeline's figure for the period (see the module's text).
    pub stage_weighted: f64,
    /// The pipeline weighted as the CRM weighs it: won so far, plus each open deal's amount × the CRM's
    /// probability when its expected close date falls in the period (an overdue date in the first).
    /// Deals without a probability take their stage's historical rate, deals without a date the
    /// model's timing. `None` when no open deal has a CRM probability.
    pub crm_weighted: Option<f64>,
    /// The commit roll-up: won so far, plus the amount of the open deals in the commit forecast
    /// category expected to close in the period. `None` when no open deal has a forecast category.
    pub commit: Option<f64>,
    /// The period's committed amount: the open deals in the commit category (every open deal when the
    /// data have no categories) whose expected close date falls in the period. `None` when no open
    /// deal has an expected close date.
    pub committed: Option<f64>,
    /// Slip: the expected share of `committed` that closes won in the next period instead
    /// (P(win) × P(closing then if won), from the model and the timing). `None` without a committed
    /// amount.
    pub slip: Option<f64>,
}

/// One open deal's part in the forecast.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DealShare {
    pub opportunity_id: String,
    pub stage: Option<String>,
    /// The amount counted: the deal's own, or the median won deal's when it has none
    /// (`amount_imputed`); none when no won deal shows one either.
    pub amount: Option<f64>,
    pub amount_imputed: bool,
    pub p_win: f64,
    /// P(won and closed within each period), in the order of [`Forecast::periods`].
    pub p_in_period: Vec<f64>,
    /// `amount × p_in_period`, per period.
    pub expected: Vec<f64>,
    /// Where the timing came from: `close_date` (how the CRM's expected close dates about as far ahead
    /// turned out for won deals), `stage` (won deals' times from the deal's stage), `age` (won
    /// deals' times from creation, the deal's stage having too few), `none` (too few won deals at all).
    pub timing: &'static str,
    /// The CRM's forecast fields as known at `as_of`.
    pub expected_close_at: Option<Ts>,
    pub crm_probability: Option<f64>,
    pub forecast_category: Option<String>,
    /// The period (index into [`Forecast::periods`]) whose committed amount the deal is part of.
    pub committed_in: Option<usize>,
}

/// The forecast of every period, with the open deals' shares (largest share of the first period
/// first) and what limits it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    pub as_of: Ts,
    pub kind: PeriodKind,
    pub periods: Vec<PeriodForecast>,
    pub deals: Vec<DealShare>,
    /// Deals created per day over the history window, and how many won deals show what they bring.
    pub creation_per_day: f64,
    pub new_deal_examples: usize,
    /// How many simulations the ranges are from.
    pub simulations: usize,
    /// The shared shock the ranges were drawn with ([`ForecastOptions::shared_shock`]).
    pub shared_shock: f64,
    /// The shift every open deal's P(win) was moved by ([`ForecastOptions::logit_shift`]).
    pub logit_shift: f64,
    /// For each of [`ForecastOptions::other_shocks`]: the shock, and each period's (P10, P90) with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<(f64, Vec<(f64, f64)>)>,
    /// What changed since an earlier forecast ([`changes`]), when one was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    pub notes: Vec<String>,
}

/// What moved a forecast since an earlier one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changes {
    /// When the earlier forecast was made as of.
    pub since: Ts,
    /// Each period both forecasts cover: expected then and now.
    pub periods: Vec<PeriodChange>,
    /// The deals whose expected part of the first period both cover moved most, largest move first.
    pub deals: Vec<DealChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodChange {
    pub label: String,
    pub expected_before: f64,
    pub expected_now: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DealChange {
    pub opportunity_id: String,
    pub before: f64,
    pub now: f64,
    /// `new` (not open before), `closed` (open before, not now: won, lost or gone) or `moved`.
    pub what: &'static str,
}

/// What moved `now` since `before` (an earlier forecast of the same kind): the periods both cover, and
/// the `top` deals whose expected part of the first of them moved most. A deal won since leaves the
/// open deals and enters the bookings so far.
pub fn changes(before: &Forecast, now: &Forecast, top: usize) -> Changes {
    let periods: Vec<PeriodChange> = now
        .periods
        .iter()
        .filter_map(|p| {
            let b = before
                .periods
                .iter()
                .find(|b| b.period.label == p.period.label)?;
            Some(PeriodChange {
                label: p.period.label.clone(),
                expected_before: b.expected,
                expected_now: p.expected,
            })
        })
        .collect();
    let mut deals = Vec::new();
    if let Some(first) = periods.first() {
        let at = |f: &Forecast| f.periods.iter().position(|p| p.period.label == first.label);
        let (kb, kn) = (at(before), at(now));
        let parts = |f: &Forecast, k: Option<usize>| -> BTreeMap<String, f64> {
            f.deals
                .iter()
                .map(|d| (d.opportunity_id.clone(), k.map_or(0.0, |k| d.expected[k])))
                .collect()
        };
        let (b, n) = (parts(before, kb), parts(now, kn));
        let ids: std::collections::BTreeSet<&String> = b.keys().chain(n.keys()).collect();
        for id in ids {
            let (was, is) = (b.get(id), n.get(id));
            let what = match (was, is) {
                (None, Some(_)) => "new",
                (Some(_), None) => "closed",
                _ => "moved",
            };
            let (was, is) = (was.copied().unwrap_or(0.0), is.copied().unwrap_or(0.0));
            if (is - was).abs() > 1e-9 {
                deals.push(DealChange {
                    opportunity_id: id.clone(),
                    before: was,
                    now: is,
                    what,
                });
            }
        }
        deals.sort_by(|x, y| {
            (y.now - y.before)
                .abs()
                .total_cmp(&(x.now - x.before).abs())
                .then_with(|| x.opportunity_id.cmp(&y.opportunity_id))
        });
        deals.truncate(top);
    }
    Changes {
        since: before.as_of,
        periods,
        deals,
    }
}

/// A deal's remaining days to close if won: a sample (from its stage's won deals, or from creation).
struct Timing {
    remaining: Vec<f64>,
    source: &'static str,
}

/// The forecast as of `as_of` for the open deals scored then (`scored`, each as of `as_of`), the entities
/// (`ctx`, read point in time as the module says), and the historical win rate by stage for the
/// baseline ([`stage_win_rates`]).
pub fn forecast(
    ctx: &Context,
    scored: &[DealScore],
    stage_rates: &BTreeMap<String, f64>,
    as_of: Ts,
    opts: &ForecastOptions,
) -> Forecast {
    let mut periods = vec![opts.kind.containing(as_of)];
    while periods.len() < opts.periods.max(1) {
        let next = opts.kind.after(&periods[periods.len() - 1]);
        periods.push(next);
    }
    let horizon_end = periods[periods.len() - 1].end;
    let day = MS_PER_DAY as f64;
    // Days from `as_of` to each period's bounds (the first period's start is before it: 0).
    let bounds: Vec<(f64, f64)> = periods
        .iter()
        .map(|p| {
            (
                ((p.start.0 - as_of.0) as f64 / day).max(0.0),
                (p.end.0 - as_of.0) as f64 / day,
            )
        })
        .collect();
    let known = |o: &OppInfo| o.closed.filter(|c| *c < as_of);
    let mut notes = Vec::new();
    let span = (horizon_end.0 - as_of.0) as f64 / day;
    let durations = Durations::learn(ctx, as_of, span, opts.history_days);

    // Deals without an amount are valued at the median won deal known then (as the risk ranking values
    // them), so a CRM that fills the amount only at the close still gets a forecast.
    let median_won = {
        let mut won: Vec<f64> = ctx
            .opps
            .iter()
            .filter(|o| o.outcome == Outcome::Won && known(o).is_some())
            .filter_map(|o| o.amount.filter(|a| a.is_finite() && *a > 0.0))
            .collect();
        won.sort_by(f64::total_cmp);
        match won.len() {
            0 => None,
            n if n % 2 == 1 => Some(won[n / 2]),
            n => Some(0.5 * (won[n / 2 - 1] + won[n / 2])),
        }
    };
    // The open deals, with the CRM's forecast fields as known then.
    let categorised = scored
        .iter()
        .filter_map(|d| crm_of(ctx, d, as_of, opts.data_end))
        .any(|c| c.forecast_category.is_some());
    // The period an expected close date falls in: an overdue date in the first.
    let period_of = |t: Ts| periods.iter().position(|p| t < p.end);
    let mut deals = Vec::with_capacity(scored.len());
    let mut timings = Vec::with_capacity(scored.len());
    let mut without_amount = 0usize;
    for d in scored {
        let crm = crm_of(ctx, d, as_of, opts.data_end)
            .cloned()
            .unwrap_or_default();
        let expected_in = crm.expected_close_at.and_then(period_of);
        let committed_in = expected_in.filter(|_| !categorised || crm.is_commit());
        let timing = durations.timing_of(ctx, d, as_of, opts.data_end);
        let p_win = shifted(d.p_win, opts.logit_shift);
        let p_in_period: Vec<f64> = bounds
            .iter()
            .map(|&(lo, hi)| p_win * share_within(&timing.remaining, lo, hi))
            .collect();
        let own = d.amount.filter(|a| a.is_finite() && *a > 0.0);
        if own.is_none() {
            without_amount += 1;
        }
        let amount = own.or(median_won);
        deals.push(DealShare {
            opportunity_id: d.opportunity_id.clone(),
            stage: d.stage.clone(),
            amount,
            amount_imputed: own.is_none() && amount.is_some(),
            p_win,
            expected: p_in_period
                .iter()
                .map(|p| p * amount.unwrap_or(0.0))
                .collect(),
            p_in_period,
            timing: timing.source,
            expected_close_at: crm.expected_close_at,
            crm_probability: crm.probability,
            forecast_category: crm.forecast_category,
            committed_in,
        });
        timings.push(timing);
    }
    if scored.is_empty() {
        notes.push(format!(
            "no deal is open at {}: the forecast is what was won so far and what new deals usually bring",
            as_of.to_date_string()
        ));
    }
    if median_won.is_none() {
        notes.push(format!(
            "no deal won before {} has an amount: there are no bookings to forecast (map an amount column to the deals)",
            as_of.to_date_string()
        ));
    }
    match (without_amount, median_won) {
        (0, _) => {}
        (n, Some(m)) => notes.push(format!(
            "{n} of {} open deals have no amount; each is valued at the median won deal's, {m:.0}",
            scored.len()
        )),
        (n, None) => notes.push(format!(
            "{n} open deals have no amount; they add nothing to the forecast"
        )),
    }
    let no_timing = deals.iter().filter(|d| d.timing == "none").count();
    if no_timing > 0 {
        notes.push(format!(
            "{no_timing} open deals have no close timing (fewer than 5 won deals to learn it from); they add nothing"
        ));
    }

    // Deals to come: the creation rate over the history window, and what deals created at least a
    // horizon before `as_of` brought within each span after their creation (their outcome within the
    // horizon is known).
    let first = ctx.opps.iter().map(|o| o.created).min().unwrap_or(as_of);
    let window = opts
        .history_days
        .min((as_of.0 - first.0) as f64 / day)
        .max(0.0);
    let created_recently = ctx
        .opps
        .iter()
        .filter(|o| o.created < as_of && (as_of.0 - o.created.0) as f64 / day <= window)
        .count();
    let creation_per_day = if window > 0.0 {
        created_recently as f64 / window
    } else {
        0.0
    };
    // (amount if won within the horizon, days from creation to close).
    let examples: Vec<(f64, f64)> = ctx
        .opps
        .iter()
        .filter(|o| {
            let age = (as_of.0 - o.created.0) as f64 / day;
            age >= span && age <= span + window
        })
        .map(|o| {
            let won = o.outcome == Outcome::Won && known(o).is_some();
            let lag = known(o).map_or(f64::INFINITY, |c| (c.0 - o.created.0) as f64 / day);
            let amount = o
                .amount
                .filter(|a| a.is_finite() && *a > 0.0)
                .unwrap_or(0.0);
            (if won && lag <= span { amount } else { 0.0 }, lag)
        })
        .collect();
    if examples.is_empty() && span > 0.0 {
        notes.push(
            "no deal was created early enough to show what new deals bring within the horizon; deals to come add nothing"
                .into(),
        );
    }
    // A deal created at `as_of + c` (c uniform in [0, span)) and won `lag` days later lands in a period
    // when c + lag falls in it: the expected amount per period, exactly.
    let new_expected: Vec<f64> = bounds
        .iter()
        .map(|&(lo, hi)| {
            if examples.is_empty() {
                return 0.0;
            }
            let per_example: f64 = examples
                .iter()
                .filter(|e| e.0 > 0.0)
                .map(|&(amount, lag)| {
                    // The creation times c in [0, span) with lo <= c + lag < hi.
                    let from = (lo - lag).max(0.0);
                    let to = (hi - lag).min(span);
                    amount * (to - from).max(0.0)
                })
                .sum::<f64>()
                / examples.len() as f64;
            creation_per_day * per_example
        })
        .collect();

    let closed_won: f64 = ctx
        .opps
        .iter()
        .filter(|o| o.outcome == Outcome::Won)
        .filter_map(|o| known(o).map(|c| (c, o.amount)))
        .filter(|(c, _)| *c >= periods[0].start)
        .filter_map(|(_, a)| a.filter(|a| a.is_finite() && *a > 0.0))
        .sum();
    let won_undated = ctx
        .opps
        .iter()
        .filter(|o| o.outcome == Outcome::Won && o.closed.is_none() && o.created < as_of)
        .count();
    if won_undated > 0 {
        notes.push(format!(
            "{won_undated} deals marked won have no close date: they are in no period's bookings"
        ));
    }
    let won_unvalued = ctx
        .opps
        .iter()
        .filter(|o| o.outcome == Outcome::Won)
        .filter(|o| known(o).is_some_and(|c| c >= periods[0].start))
        .filter(|o| o.amount.is_none_or(|a| !a.is_finite() || a <= 0.0))
        .count();
    if won_unvalued > 0 {
        notes.push(format!(
            "{won_unvalued} deals won in {} so far have no amount; they add nothing to its bookings",
            periods[0].label
        ));
    }

    // The baseline: the same, each deal's P(win) its stage's historical rate.
    let overall = {
        let closed: Vec<&OppInfo> = ctx.opps.iter().filter(|o| known(o).is_some()).collect();
        let won = closed.iter().filter(|o| o.outcome == Outcome::Won).count();
        if closed.is_empty() {
            0.0
        } else {
            won as f64 / closed.len() as f64
        }
    };
    let stage_weighted: Vec<f64> = (0..bounds.len())
        .map(|k| {
            let open: f64 = deals
                .iter()
                .filter(|d| d.p_win > 0.0)
                .map(|d| {
                    let rate = d
                        .stage
                        .as_ref()
                        .and_then(|s| stage_rates.get(s))
                        .copied()
                        .unwrap_or(overall);
                    d.expected[k] / d.p_win * rate
                })
                .sum();
            open + new_expected[k] + if k == 0 { closed_won } else { 0.0 }
        })
        .collect();

    let crm = crm_baselines(
        &deals,
        &timings,
        &bounds,
        &periods,
        stage_rates,
        overall,
        closed_won,
        opts.kind.after(&periods[periods.len() - 1]),
        as_of,
    );
    if !deals.is_empty() && crm.iter().all(|c| c.committed.is_none()) {
        notes.push(
            "no open deal has the CRM's expected close date: there is no committed amount, so no slip".into(),
        );
    }
    let undated_commits = deals
        .iter()
        .filter(|d| d.expected_close_at.is_none())
        .filter(|d| {
            d.forecast_category
                .as_deref()
                .is_some_and(is_commit_category)
        })
        .count();
    if undated_commits > 0 {
        notes.push(format!(
            "{undated_commits} open deals in the commit category have no expected close date; the commit roll-up leaves them out"
        ));
    }

    // The distribution.
    let sims = simulate(
        &deals,
        &timings,
        &bounds,
        &examples,
        creation_per_day,
        span,
        opts,
    );
    let closed_in = |k: usize| if k == 0 { closed_won } else { 0.0 };
    let ranges: Vec<(f64, Vec<(f64, f64)>)> = opts
        .other_shocks
        .iter()
        .map(|&shock| {
            let other = ForecastOptions {
                shared_shock: shock,
                simulations: (opts.simulations / 4).max(100),
                seed: opts.seed ^ shock.to_bits(),
                ..opts.clone()
            };
            let sims = simulate(
                &deals,
                &timings,
                &bounds,
                &examples,
                creation_per_day,
                span,
                &other,
            );
            let per_period = (0..bounds.len())
                .map(|k| {
                    let v = sorted(sims.iter().map(|s| s[k] + closed_in(k)));
                    (quantile(&v, 0.1), quantile(&v, 0.9))
                })
                .collect();
            (shock, per_period)
        })
        .collect();
    let out: Vec<PeriodForecast> = periods
        .into_iter()
        .enumerate()
        .map(|(k, period)| {
            let open_expected: f64 = deals.iter().map(|d| d.expected[k]).sum();
            let closed = if k == 0 { closed_won } else { 0.0 };
            let totals = sorted(sims.iter().map(|s| s[k] + closed));
            let q = |p: f64| quantile(&totals, p);
            PeriodForecast {
                period,
                closed_won: closed,
                open_expected,
                new_expected: new_expected[k],
                expected: closed + open_expected + new_expected[k],
                p10: q(0.1),
                p50: q(0.5),
                p90: q(0.9),
                stage_weighted: stage_weighted[k],
                crm_weighted: crm[k].weighted,
                commit: crm[k].commit,
                committed: crm[k].committed,
                slip: crm[k].slip,
            }
        })
        .collect();
    deals.sort_by(|a, b| {
        b.expected[0]
            .total_cmp(&a.expected[0])
            .then_with(|| a.opportunity_id.cmp(&b.opportunity_id))
    });
    Forecast {
        as_of,
        kind: opts.kind,
        periods: out,
        deals,
        creation_per_day,
        new_deal_examples: examples.len(),
        simulations: opts.simulations.max(1),
        shared_shock: opts.shared_shock,
        logit_shift: opts.logit_shift,
        ranges,
        changes: None,
        notes,
    }
}

/// The CRM's forecast fields of a scored deal as known at `as_of`.
fn crm_of<'c>(
    ctx: &'c Context,
    d: &DealScore,
    as_of: Ts,
    data_end: Option<Ts>,
) -> Option<&'c CrmForecast> {
    let o = ctx.opportunity(&d.opportunity_id)?;
    ctx.opps[o as usize].crm_at(as_of, data_end)
}

/// One period's figures from the CRM's own forecast fields ([`PeriodForecast`]).
#[derive(Default, Clone, Copy)]
struct CrmFigures {
    weighted: Option<f64>,
    commit: Option<f64>,
    committed: Option<f64>,
    slip: Option<f64>,
}

/// The CRM-weighted pipeline, the commit roll-up, the committed amount and its expected slip of each
/// period (see [`PeriodForecast`]); `after` is the period following the last, for the last one's slip.
#[allow(clippy::too_many_arguments)]
fn crm_baselines(
    deals: &[DealShare],
    timings: &[Timing],
    bounds: &[(f64, f64)],
    periods: &[Period],
    stage_rates: &BTreeMap<String, f64>,
    overall: f64,
    closed_won: f64,
    after: Period,
    as_of: Ts,
) -> Vec<CrmFigures> {
    let day = MS_PER_DAY as f64;
    let after = (
        (after.start.0 - as_of.0) as f64 / day,
        (after.end.0 - as_of.0) as f64 / day,
    );
    let in_period = |d: &DealShare, k: usize| {
        d.expected_close_at
            .is_some_and(|t| t < periods[k].end && (k == 0 || t >= periods[k].start))
    };
    let with_probability = deals.iter().any(|d| d.crm_probability.is_some());
    let categorised = deals.iter().any(|d| d.forecast_category.is_some());
    let dated = deals.iter().any(|d| d.expected_close_at.is_some());
    (0..bounds.len())
        .map(|k| {
            let closed = if k == 0 { closed_won } else { 0.0 };
            let amount = |d: &DealShare| d.amount.unwrap_or(0.0);
            let weighted = with_probability.then(|| {
                closed
                    + deals
                        .iter()
                        .zip(timings)
                        .map(|(d, t)| {
                            let rate = d.crm_probability.map_or_else(
                                || {
                                    d.stage
                                        .as_ref()
                                        .and_then(|s| stage_rates.get(s))
                                        .copied()
                                        .unwrap_or(overall)
                                },
                                |p| p / 100.0,
                            );
                            let when = match d.expected_close_at {
                                Some(_) => f64::from(u8::from(in_period(d, k))),
                                None => share_within(&t.remaining, bounds[k].0, bounds[k].1),
                            };
                            amount(d) * rate * when
                        })
                        .sum::<f64>()
            });
            let commit = categorised.then(|| {
                closed
                    + deals
                        .iter()
                        .filter(|d| d.committed_in == Some(k))
                        .map(amount)
                        .sum::<f64>()
            });
            let committed_deals = || {
                deals
                    .iter()
                    .zip(timings)
                    .filter(|(d, _)| d.committed_in == Some(k))
            };
            let committed = dated.then(|| committed_deals().map(|(d, _)| amount(d)).sum::<f64>());
            let next = bounds.get(k + 1).copied().unwrap_or(after);
            let slip = committed.filter(|c| *c > 0.0).map(|c| {
                committed_deals()
                    .map(|(d, t)| amount(d) * d.p_win * share_within(&t.remaining, next.0, next.1))
                    .sum::<f64>()
                    / c
            });
            CrmFigures {
                weighted,
                commit,
                committed,
                slip,
            }
        })
        .collect()
}

/// `p` moved by `shift` on the log-odds scale (a certainty stays one).
pub fn shifted(p: f64, shift: f64) -> f64 {
    if shift == 0.0 || p <= 0.0 || p >= 1.0 {
        return p;
    }
    1.0 / (1.0 + (-((p / (1.0 - p)).ln() + shift)).exp())
}

/// The shift (log-odds, within ±3) that makes the amount-weighted chances of `deals` —
/// `(logit, amount, won)` — add up to what they won: Σ amount × σ(logit + shift) = Σ amount × won.
/// 0 when there are fewer than `min` deals or no amount.
pub fn calibration_shift(deals: &[(f64, f64, bool)], min: usize) -> f64 {
    let total: f64 = deals.iter().map(|d| d.1).sum();
    if deals.len() < min || total <= 0.0 {
        return 0.0;
    }
    let won: f64 = deals.iter().filter(|d| d.2).map(|d| d.1).sum();
    let expected = |shift: f64| -> f64 {
        deals
            .iter()
            .map(|&(l, a, _)| a / (1.0 + (-(l + shift)).exp()))
            .sum()
    };
    let (mut lo, mut hi) = (-3.0f64, 3.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if expected(mid) < won {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The values in increasing order.
fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The `p` quantile of `sorted` (the nearest rank; 0 when there are none): how every range here is
/// read off its simulations.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The share of `remaining` in `[lo, hi)`.
fn share_within(remaining: &[f64], lo: f64, hi: f64) -> f64 {
    if remaining.is_empty() {
        return 0.0;
    }
    remaining.iter().filter(|d| **d >= lo && **d < hi).count() as f64 / remaining.len() as f64
}

/// At most how long before a forecast the weekly points timing is learned at end: by then nearly every
/// deal open at them that was going to be won has been, slow ones included. Shorter when won deals are
/// quick: the 90th percentile of their days from creation to close, known then (never less than the
/// horizon).
pub const SETTLED_DAYS: f64 = 180.0;

/// Days in a stage, in buckets: a deal's timing is learned from deals that had spent about as long in
/// the same stage.
const ELAPSED_BUCKETS: [f64; 6] = [7.0, 14.0, 30.0, 60.0, 120.0, f64::INFINITY];

/// How many past deals with an expected close date about as far ahead a deal's timing from its own
/// date needs (else the stage's timing is used).
const CLOSE_DATE_EXAMPLES: usize = 20;

/// Buckets of days to the CRM's expected close date: overdue (0), then up to 7, 14, 30, 60, 120 days
/// and more.
fn close_bucket(ahead: f64) -> usize {
    if ahead < 0.0 {
        0
    } else {
        1 + bucket(ahead)
    }
}

fn bucket(elapsed: f64) -> usize {
    ELAPSED_BUCKETS
        .iter()
        .position(|b| elapsed < *b)
        .unwrap_or(ELAPSED_BUCKETS.len() - 1)
}

/// How long deals that were open took to close when won, learned as of a date from the deals open at
/// weekly points in the past: by the stage they were in and how long they had been in it, and by age
/// alone. Deals open at a point are the population a forecast is about (a long deal is open at more
/// points than a quick one); learning from the deals that entered a stage instead was too quick on the
/// demo (it put 76 % of the won value of the deals open five weeks before a quarter's end into the
/// quarter, where 48 % came).
///
/// Where the CRM kept an expected close date, the same points also show how that date turned out:
/// by how far ahead it lay then, how many days after it the deal was won (overdue: how many days
/// after the point).
struct Durations {
    /// Bucket of days to the CRM's expected close ([`close_bucket`]) → days from that date to the won
    /// close (from the point, for the overdue bucket 0).
    by_close: BTreeMap<usize, Vec<f64>>,
    /// (stage, elapsed bucket) → remaining days of the won deals open at a point in that state.
    by_stage: BTreeMap<(String, usize), Vec<f64>>,
    /// Age bucket → remaining days of the won deals open at a point at that age.
    by_age: BTreeMap<usize, Vec<f64>>,
}

impl Durations {
    /// From the weekly points `settled` to `settled + window` days before `as_of` (`settled`: the
    /// horizon, at least [`SETTLED_DAYS`]): the deals open at each that were won before `as_of`.
    fn learn(ctx: &Context, as_of: Ts, span: f64, window: f64) -> Durations {
        let day = MS_PER_DAY as f64;
        let mut lags: Vec<f64> = ctx
            .opps
            .iter()
            .filter(|o| o.outcome == Outcome::Won)
            .filter_map(|o| {
                o.closed
                    .filter(|c| *c < as_of)
                    .map(|c| (c.0 - o.created.0) as f64 / day)
            })
            .collect();
        lags.sort_by(f64::total_cmp);
        let p90 = lags
            .get(((lags.len() as f64 - 1.0) * 0.9).round().max(0.0) as usize)
            .copied()
            .unwrap_or(SETTLED_DAYS);
        let latest = as_of.0 - (span.max(p90.min(SETTLED_DAYS)) * day) as i64;
        let weeks = (window / 7.0).floor() as i64;
        let mut by_close: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        let mut by_stage: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
        let mut by_age: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for o in &ctx.opps {
            let Some(closed) = o.closed.filter(|c| *c < as_of && o.outcome == Outcome::Won) else {
                continue;
            };
            for k in 0..=weeks {
                let t = latest - k * 7 * MS_PER_DAY;
                if !(o.created.0 < t && closed.0 >= t) {
                    continue;
                }
                let remaining = (closed.0 - t) as f64 / day;
                let age = (t - o.created.0) as f64 / day;
                by_age.entry(bucket(age)).or_default().push(remaining);
                let at = Ts(t);
                // The points are all in the past: only the history says what the CRM held then.
                if let Some(expected) = o.crm_at(at, None).and_then(|c| c.expected_close_at) {
                    let ahead = (expected.0 - t) as f64 / day;
                    let b = close_bucket(ahead);
                    let after = if b == 0 { remaining } else { remaining - ahead };
                    by_close.entry(b).or_default().push(after);
                }
                if let Some((entered, stage)) = o.stages.iter().rev().find(|(e, _)| *e < at) {
                    let elapsed = (t - entered.0) as f64 / day;
                    by_stage
                        .entry((stage.clone(), bucket(elapsed)))
                        .or_default()
                        .push(remaining);
                }
            }
        }
        Durations {
            by_close,
            by_stage,
            by_age,
        }
    }

    /// A deal's remaining days to close if won: from the deals that were in its stage about as long,
    /// else from the deals that were about as old; at least 5 values, or none.
    fn timing_of(&self, ctx: &Context, d: &DealScore, as_of: Ts, data_end: Option<Ts>) -> Timing {
        let day = MS_PER_DAY as f64;
        let opp = ctx
            .opportunity(&d.opportunity_id)
            .map(|o| &ctx.opps[o as usize]);
        let expected = opp
            .and_then(|o| o.crm_at(as_of, data_end))
            .and_then(|c| c.expected_close_at);
        if let Some(expected) = expected {
            let ahead = (expected.0 - as_of.0) as f64 / day;
            let b = close_bucket(ahead);
            if let Some(sample) = self
                .by_close
                .get(&b)
                .filter(|s| s.len() >= CLOSE_DATE_EXAMPLES)
            {
                let shift = if b == 0 { 0.0 } else { ahead };
                return Timing {
                    remaining: sample.iter().map(|x| (x + shift).max(0.0)).collect(),
                    source: "close_date",
                };
            }
        }
        if let (Some(stage), Some(o)) = (&d.stage, opp) {
            let entered = o
                .stages
                .iter()
                .rev()
                .find(|(t, s)| s == stage && *t < as_of)
                .map(|(t, _)| *t);
            if let Some(entered) = entered {
                let key = (stage.clone(), bucket((as_of.0 - entered.0) as f64 / day));
                if let Some(sample) = self.by_stage.get(&key).filter(|s| s.len() >= 5) {
                    return Timing {
                        remaining: sample.clone(),
                        source: "stage",
                    };
                }
            }
        }
        match self
            .by_age
            .get(&bucket(d.age_days))
            .filter(|s| s.len() >= 5)
        {
            Some(sample) => Timing {
                remaining: sample.clone(),
                source: "age",
            },
            None => Timing {
                remaining: Vec::new(),
                source: "none",
            },
        }
    }
}

/// What a scenario is, in words, wherever it is shown.
pub const SCENARIO_CAVEAT: &str = "an association-based projection from the win model, not a promise: \
deals that did this also differed in ways the model may not see, and reps doing it more may not get the \
same lift";

/// "If reps gained `behaviour` on `share` of the open deals that lack it": the change in each period's
/// bookings, from each such deal's uplift in P(win) by the win model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub behaviour: String,
    /// The share of the open deals lacking it that gain it, 0 to 1.
    pub share: f64,
    /// Open deals lacking it (whose uplift the model gives).
    pub deals_lacking: usize,
    /// Their mean uplift in P(win), in percentage points.
    pub mean_uplift_points: f64,
    pub periods: Vec<ScenarioPeriod>,
    pub caveat: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioPeriod {
    pub label: String,
    /// The change in expected bookings: share × Σ amount × uplift × P(closing in the period if won).
    pub expected_change: f64,
    /// The change's P10 and P90 over simulations of which deals gain it and how they end.
    pub p10: f64,
    pub p90: f64,
}

/// The scenario on forecast `f`, with `uplifts` (opportunity id → uplift in P(win), for the open deals
/// lacking the behaviour). Exactly zero when `share` is 0.
pub fn scenario(
    f: &Forecast,
    behaviour: &str,
    uplifts: &BTreeMap<String, f64>,
    share: f64,
    opts: &ForecastOptions,
) -> Scenario {
    let share = share.clamp(0.0, 1.0);
    // (amount, P(win), uplift, P(closing in each period if won)).
    let lacking: Vec<(f64, f64, f64, Vec<f64>)> = f
        .deals
        .iter()
        .filter_map(|d| {
            let up = *uplifts.get(&d.opportunity_id)?;
            let q = d
                .p_in_period
                .iter()
                .map(|p| if d.p_win > 0.0 { p / d.p_win } else { 0.0 })
                .collect();
            Some((d.amount.unwrap_or(0.0), d.p_win, up, q))
        })
        .collect();
    let n = f.periods.len();
    let expected: Vec<f64> = (0..n)
        .map(|k| {
            share
                * lacking
                    .iter()
                    .map(|(amount, _, up, q)| amount * up * q[k])
                    .sum::<f64>()
        })
        .collect();
    let mut rng = Rng::new(opts.seed ^ 0x5ce7_a410);
    let sims: Vec<Vec<f64>> = (0..opts.simulations.max(1))
        .map(|_| {
            let mut change = vec![0.0; n];
            for (amount, p, up, q) in &lacking {
                let gains = rng.f64() < share;
                let (u, v) = (rng.f64(), rng.f64());
                if !gains {
                    continue;
                }
                let before = u < *p;
                let after = u < (p + up).clamp(0.0, 1.0);
                if before == after {
                    continue;
                }
                // The period it closes in, if won.
                let mut acc = 0.0;
                if let Some(k) = q.iter().position(|x| {
                    acc += x;
                    v < acc
                }) {
                    change[k] += if after { *amount } else { -*amount };
                }
            }
            change
        })
        .collect();
    let periods = f
        .periods
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let v = sorted(sims.iter().map(|s| s[k]));
            let q = |x: f64| quantile(&v, x);
            ScenarioPeriod {
                label: p.period.label.clone(),
                expected_change: expected[k],
                p10: q(0.1),
                p90: q(0.9),
            }
        })
        .collect();
    Scenario {
        behaviour: behaviour.to_string(),
        share,
        deals_lacking: lacking.len(),
        mean_uplift_points: if lacking.is_empty() {
            0.0
        } else {
            100.0 * lacking.iter().map(|l| l.2).sum::<f64>() / lacking.len() as f64
        },
        periods,
        caveat: SCENARIO_CAVEAT,
    }
}

/// Totals per period over `opts.simulations` runs: each open deal won with its P(win) (moved by the
/// run's shared shock) and closing at a remaining time drawn from its timing; deals to come created as
/// a Poisson process at the creation rate over the horizon, each like an example drawn at random.
fn simulate(
    deals: &[DealShare],
    timings: &[Timing],
    bounds: &[(f64, f64)],
    examples: &[(f64, f64)],
    creation_per_day: f64,
    span: f64,
    opts: &ForecastOptions,
) -> Vec<Vec<f64>> {
    let mut rng = Rng::new(opts.seed);
    let period_of = |days: f64| bounds.iter().position(|&(lo, hi)| days >= lo && days < hi);
    let logit = |p: f64| {
        let p = p.clamp(1e-9, 1.0 - 1e-9);
        (p / (1.0 - p)).ln()
    };
    let new_deals = creation_per_day * span;
    (0..opts.simulations.max(1))
        .map(|_| {
            let mut totals = vec![0.0; bounds.len()];
            let shock = if opts.shared_shock > 0.0 {
                opts.shared_shock * rng.normal()
            } else {
                0.0
            };
            for (d, t) in deals.iter().zip(timings) {
                let p = if shock == 0.0 {
                    d.p_win
                } else {
                    1.0 / (1.0 + (-(logit(d.p_win) + shock)).exp())
                };
                let won = rng.f64() < p;
                let (Some(amount), false) = (d.amount, t.remaining.is_empty()) else {
                    continue;
                };
                if won {
                    let r = t.remaining[rng.below(t.remaining.len() as u64) as usize];
                    if let Some(k) = period_of(r) {
                        totals[k] += amount;
                    }
                }
            }
            if !examples.is_empty() && new_deals > 0.0 {
                for _ in 0..poisson(&mut rng, new_deals) {
                    let created = rng.f64() * span;
                    let (amount, lag) = examples[rng.below(examples.len() as u64) as usize];
                    if amount > 0.0 {
                        if let Some(k) = period_of(created + lag) {
                            totals[k] += amount;
                        }
                    }
                }
            }
            totals
        })
        .collect()
}

/// A Poisson draw (Knuth's method in pieces of mean at most 500, so it stays exact for large means).
fn poisson(rng: &mut Rng, mean: f64) -> u64 {
    let mut left = mean;
    let mut n = 0;
    while left > 0.0 {
        let m = left.min(500.0);
        left -= m;
        let limit = (-m).exp();
        let mut p = rng.f64();
        while p > limit {
            n += 1;
            p *= rng.f64();
        }
    }
    n
}

/// The historical win rate by stage, as known at `as_of`: among deals closed before it that entered a
/// stage (before their close), the share won. Stages with fewer than 10 such deals are left out (the
/// overall rate is used for them).
pub fn stage_win_rates(ctx: &Context, as_of: Ts) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in &ctx.opps {
        let Some(closed) = o.closed.filter(|c| *c < as_of) else {
            continue;
        };
        if o.outcome == Outcome::Open {
            continue;
        }
        let mut seen: Vec<&str> = o
            .stages
            .iter()
            .filter(|(t, _)| *t <= closed)
            .map(|(_, s)| s.as_str())
            .collect();
        seen.sort_unstable();
        seen.dedup();
        for s in seen {
            let c = counts.entry(s).or_default();
            c.0 += 1;
            c.1 += usize::from(o.outcome == Outcome::Won);
        }
    }
    counts
        .into_iter()
        .filter(|(_, (n, _))| *n >= 10)
        .map(|(s, (n, won))| (s.to_string(), won as f64 / n as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use winsignal_core::{Account, CrmForecast, Opportunity, Record, StageEntry};

    const DAY: i64 = MS_PER_DAY;

    fn opp(id: &str, created: i64, closed: Option<i64>, outcome: Outcome, amount: f64) -> Record {
        Record::Opportunities(Opportunity {
            opportunity_id: id.into(),
            account_id: Some("A1".into()),
            rep_id: None,
            name: None,
            opp_type: None,
            lead_source: None,
            amount: Some(amount),
            currency: None,
            created_at: Ts(created),
            closed_at: closed.map(Ts),
            outcome,
            stage: Some("Proposal".into()),
            crm: CrmForecast::default(),
            attrs: Default::default(),
        })
    }

    fn stage(id: &str, at: i64) -> Record {
        crm_row(id, at, CrmForecast::default())
    }

    /// A history row keeping the deal in Proposal, with the CRM's fields `crm`.
    fn crm_row(id: &str, at: i64, crm: CrmForecast) -> Record {
        Record::StageHistory(StageEntry {
            opportunity_id: id.into(),
            stage: "Proposal".into(),
            entered_at: Ts(at),
            crm,
        })
    }

    fn crm(close: i64, probability: f64, category: &str) -> CrmForecast {
        CrmForecast {
            expected_close_at: Some(Ts(close)),
            probability: Some(probability),
            forecast_category: Some(category.into()),
        }
    }

    /// A company whose won deals all closed 10 to 30 days after entering Proposal (101 of them, of no
    /// amount, long before), and `open` deals of 100 in Proposal since `as_of` - 5 days, as of the
    /// middle of a quarter.
    fn company(open: usize, extra: Vec<Record>) -> (Context, Vec<DealScore>, Ts) {
        let as_of = Ts::from_ymd(2025, 5, 15).unwrap();
        let mut records = vec![Record::Accounts(Account {
            account_id: "A1".into(),
            ..Account::default()
        })];
        for i in 0..=100 {
            let id = format!("H{i:04}");
            let entered = as_of.0 - 300 * DAY;
            let closed = entered + ((10.0 + 0.2 * i as f64) * DAY as f64) as i64;
            records.push(opp(
                &id,
                entered - 10 * DAY,
                Some(closed),
                Outcome::Won,
                0.0,
            ));
            records.push(stage(&id, entered));
        }
        let mut scored = Vec::new();
        for i in 0..open {
            let id = format!("O{i:04}");
            records.push(opp(&id, as_of.0 - 20 * DAY, None, Outcome::Open, 100.0));
            records.push(stage(&id, as_of.0 - 5 * DAY));
            scored.push(DealScore {
                opportunity_id: id,
                account_id: Some("A1".into()),
                rep_id: None,
                as_of,
                stage: Some("Proposal".into()),
                age_days: 20.0,
                idle_days: 5.0,
                amount: Some(100.0),
                p_win: 0.5,
                logit: 0.0,
                intercept: 0.0,
                factors: Vec::new(),
                close: None,
                actions: Vec::new(),
            });
        }
        records.extend(extra);
        (Context::from_records(&records), scored, as_of)
    }

    #[test]
    fn a_forecast_without_amounts_or_open_deals_says_so() {
        // The company's won deals have no amount (0), and no deal is open.
        let (ctx, _, as_of) = company(0, Vec::new());
        let f = forecast(
            &ctx,
            &[],
            &BTreeMap::new(),
            as_of,
            &ForecastOptions::default(),
        );
        let notes = f.notes.join("\n");
        assert!(notes.contains("no deal is open at 2025-05-15"), "{notes}");
        assert!(
            notes.contains("has an amount: there are no bookings to forecast"),
            "{notes}"
        );
        assert_eq!(f.periods[0].expected, 0.0);
    }

    #[test]
    fn periods_are_calendar_months_and_quarters() {
        let t = Ts::from_ymd(2025, 11, 10).unwrap();
        let q = PeriodKind::Quarter.containing(t);
        assert_eq!(q.label, "2025-Q4");
        assert_eq!(q.start, Ts::from_ymd(2025, 10, 1).unwrap());
        assert_eq!(q.end, Ts::from_ymd(2026, 1, 1).unwrap());
        assert_eq!(PeriodKind::Quarter.after(&q).label, "2026-Q1");
        let m = PeriodKind::Month.containing(t);
        assert_eq!(
            (m.label.as_str(), m.end),
            ("2025-11", Ts::from_ymd(2025, 12, 1).unwrap())
        );
        assert_eq!(
            PeriodKind::Month
                .after(&PeriodKind::Month.containing(Ts::from_ymd(2025, 12, 31).unwrap()))
                .label,
            "2026-01"
        );
    }

    #[test]
    fn a_deal_with_an_expected_close_date_is_timed_by_how_such_dates_turned_out() {
        let as_of = Ts::from_ymd(2025, 5, 15).unwrap().0;
        // 60 won deals of the year before, each closed 100 days after creation, whose CRM expected the
        // close 10 days earlier than it came.
        let mut extra = Vec::new();
        for i in 0..60 {
            let id = format!("S{i:03}");
            let created = as_of - (400 - i) * DAY;
            let closed = created + 100 * DAY;
            extra.push(opp(&id, created, Some(closed), Outcome::Won, 0.0));
            extra.push(crm_row(
                &id,
                created,
                crm(closed - 10 * DAY, 50.0, "Pipeline"),
            ));
        }
        // Open deals expected 40 and 20 days ahead (the quarter ends in 46).
        for (id, ahead) in [("N40", 40), ("N20", 20)] {
            extra.push(opp(id, as_of - 5 * DAY, None, Outcome::Open, 100.0));
            extra.push(crm_row(
                id,
                as_of - 5 * DAY,
                crm(as_of + ahead * DAY, 50.0, "Pipeline"),
            ));
        }
        let (ctx, mut scored, as_of) = company(1, extra);
        let template = scored.pop().unwrap();
        for id in ["N40", "N20"] {
            scored.push(DealScore {
                opportunity_id: id.into(),
                ..template.clone()
            });
        }
        let f = forecast(
            &ctx,
            &scored,
            &BTreeMap::new(),
            as_of,
            &ForecastOptions::default(),
        );
        let deal = |id: &str| f.deals.iter().find(|d| d.opportunity_id == id).unwrap();
        // 40 days ahead + 10 days late: the next quarter; 20 + 10: this one.
        for (id, in_first) in [("N40", false), ("N20", true)] {
            let d = deal(id);
            assert_eq!(d.timing, "close_date", "{d:?}");
            let expected = if in_first { [0.5, 0.0] } else { [0.0, 0.5] };
            assert_eq!(&d.p_in_period[..2], &expected, "{d:?}");
        }
    }

    #[test]
    fn the_calibration_shift_makes_the_chances_add_up_to_what_was_won() {
        // 200 deals the model gives 0.6 (logit 0.405), of which 40 % won: the shift takes them to 0.4.
        let deals: Vec<(f64, f64, bool)> = (0..200)
            .map(|i| ((0.6f64 / 0.4).ln(), 100.0, i % 5 < 2))
            .collect();
        let shift = calibration_shift(&deals, 100);
        assert!((shifted(0.6, shift) - 0.4).abs() < 1e-9, "{shift}");
        assert_eq!(calibration_shift(&deals[..50], 100), 0.0, "too few deals");
        assert_eq!(shifted(1.0, -1.0), 1.0);
        // The forecast uses the shifted chances.
        let (ctx, scored, as_of) = company(10, Vec::new());
        let opts = ForecastOptions {
            logit_shift: shift,
            ..ForecastOptions::default()
        };
        let f = forecast(&ctx, &scored, &BTreeMap::new(), as_of, &opts);
        assert!((f.deals[0].p_win - shifted(0.5, shift)).abs() < 1e-12);
    }

    #[test]
    fn won_deals_the_bookings_cannot_count_are_named_in_a_note() {
        let in_quarter = Ts::from_ymd(2025, 4, 20).unwrap().0;
        let (ctx, scored, as_of) = company(
            3,
            vec![
                opp("UNDATED", 0, None, Outcome::Won, 500.0),
                opp("UNVALUED", 0, Some(in_quarter), Outcome::Won, 0.0),
                opp("VALUED", 0, Some(in_quarter), Outcome::Won, 700.0),
            ],
        );
        let f = forecast(
            &ctx,
            &scored,
            &BTreeMap::new(),
            as_of,
            &ForecastOptions::default(),
        );
        assert_eq!(f.periods[0].closed_won, 700.0);
        let notes = f.notes.join("\n");
        assert!(
            notes.contains("1 deals marked won have no close date"),
            "{notes}"
        );
        assert!(
            notes.contains("1 deals won in 2025-Q2 so far have no amount"),
            "{notes}"
        );
    }

    #[test]
    fn the_crm_figures_read_its_fields_as_known_then() {
        let as_of = Ts::from_ymd(2025, 5, 15).unwrap().0;
        let extra = vec![
            // Expected this quarter, committed.
            crm_row(
                "O0000",
                as_of - 4 * DAY,
                crm(as_of + 10 * DAY, 60.0, "Commit"),
            ),
            // Expected next quarter.
            crm_row(
                "O0001",
                as_of - 4 * DAY,
                crm(as_of + 60 * DAY, 40.0, "Best Case"),
            ),
            // Overdue (it counts in this quarter), committed by Salesforce's API value; pushed out of
            // the quarter only after the forecast's date.
            crm_row(
                "O0002",
                as_of - 4 * DAY,
                crm(as_of - 3 * DAY, 80.0, "Forecast"),
            ),
            crm_row(
                "O0002",
                as_of + DAY,
                crm(as_of + 90 * DAY, 10.0, "Pipeline"),
            ),
            // A deal whose record holds the CRM's fields now, without a history of them.
            Record::Opportunities(Opportunity {
                crm: crm(as_of + 5 * DAY, 90.0, "Commit"),
                ..match opp("C1", as_of - 20 * DAY, None, Outcome::Open, 100.0) {
                    Record::Opportunities(o) => o,
                    _ => unreachable!(),
                }
            }),
            stage("C1", as_of - 5 * DAY),
        ];
        let (ctx, mut scored, as_of) = company(3, extra);
        scored.push(DealScore {
            opportunity_id: "C1".into(),
            ..scored[0].clone()
        });
        let run = |data_end: Option<Ts>| {
            let opts = ForecastOptions {
                data_end,
                ..ForecastOptions::default()
            };
            forecast(&ctx, &scored, &BTreeMap::new(), as_of, &opts)
        };
        // Without the time the data were taken, C1's current fields may postdate the forecast.
        let f = run(None);
        let figures = |f: &Forecast, k: usize| {
            let p = &f.periods[k];
            (p.crm_weighted, p.commit, p.committed)
        };
        // C1 has no probability then: its stage's rate (every earlier deal won: 1) and the timing
        // (every deal in Proposal closes within the quarter if won).
        assert_eq!(
            figures(&f, 0),
            (Some(60.0 + 80.0 + 100.0), Some(200.0), Some(200.0))
        );
        assert_eq!(figures(&f, 1), (Some(40.0), Some(0.0), Some(0.0)));
        let o2 = f
            .deals
            .iter()
            .find(|d| d.opportunity_id == "O0002")
            .unwrap();
        assert_eq!(o2.forecast_category.as_deref(), Some("Forecast"));
        assert_eq!(o2.committed_in, Some(0));
        // Slip: the committed deals' chance of closing won in the next quarter instead.
        let slip = |f: &Forecast| {
            f.deals
                .iter()
                .filter(|d| d.committed_in == Some(0))
                .map(|d| d.amount.unwrap() * d.p_in_period[1])
                .sum::<f64>()
                / f.periods[0].committed.unwrap()
        };
        assert_eq!(f.periods[0].slip, Some(slip(&f)));
        assert_eq!(f.periods[1].slip, None, "nothing committed next quarter");
        // Taken after the forecast's date, C1's current fields count.
        let f = run(Some(Ts(as_of.0 - DAY)));
        assert_eq!(
            figures(&f, 0),
            (Some(60.0 + 80.0 + 90.0), Some(300.0), Some(300.0))
        );
        // Without any of the CRM's fields there are none of its figures, and a note says why.
        let (ctx, scored, as_of) = company(3, Vec::new());
        let f = forecast(
            &ctx,
            &scored,
            &BTreeMap::new(),
            as_of,
            &ForecastOptions::default(),
        );
        assert_eq!(figures(&f, 0), (None, None, None));
        assert!(
            f.notes.iter().any(|n| n.contains("no slip")),
            "{:?}",
            f.notes
        );
    }

    #[test]
    fn the_forecast_is_the_sum_of_its_parts() {
        let won_before = opp(
            "W1",
            0,
            Some(Ts::from_ymd(2025, 4, 20).unwrap().0),
            Outcome::Won,
            700.0,
        );
        let (ctx, mut scored, as_of) = company(40, vec![won_before]);
        for (i, d) in scored.iter_mut().enumerate() {
            d.p_win = (i as f64 + 0.5) / 40.0;
            d.amount = Some(10.0 * (i + 1) as f64);
        }
        let f = forecast(
            &ctx,
            &scored,
            &BTreeMap::new(),
            as_of,
            &ForecastOptions::default(),
        );
        assert_eq!(f.periods.len(), 3);
        assert_eq!(f.periods[0].closed_won, 700.0);
        for (k, p) in f.periods.iter().enumerate() {
            let deals: f64 = f.deals.iter().map(|d| d.expected[k]).sum();
            assert!((p.open_expected - deals).abs() < 1e-9);
            assert!((p.expected - (p.closed_won + p.open_expected + p.new_expected)).abs() < 1e-9);
            assert!(p.p10 <= p.p50 && p.p50 <= p.p90, "{p:?}");
        }
        // Every open deal closes within the first period if won.
        let open: f64 = scored.iter().map(|d| d.p_win * d.amount.unwrap()).sum();
        assert!((f.periods[0].open_expected - open).abs() < 1e-6);
        assert_eq!(f.periods[1].open_expected, 0.0);
    }

    #[test]
    fn nothing_at_or_after_the_as_of_date_changes_the_forecast() {
        let (ctx, scored, as_of) = company(30, Vec::new());
        let opts = ForecastOptions::default();
        let before = forecast(&ctx, &scored, &BTreeMap::new(), as_of, &opts);
        // A huge deal created at the as-of time and won soon after, and an open deal's own close.
        let later = vec![
            opp("LATE", as_of.0, Some(as_of.0 + 3 * DAY), Outcome::Won, 1e9),
            opp(
                "O0000",
                as_of.0 - 20 * DAY,
                Some(as_of.0 + DAY),
                Outcome::Won,
                100.0,
            ),
            stage("LATE", as_of.0 + DAY),
        ];
        let (ctx_later, _, _) = company(30, later);
        let after = forecast(&ctx_later, &scored, &BTreeMap::new(), as_of, &opts);
        assert_eq!(before, after);
        assert_eq!(
            stage_win_rates(&ctx, as_of),
            stage_win_rates(&ctx_later, as_of)
        );
    }

    #[test]
    fn the_p10_p90_range_holds_the_outcome_as_often_as_it_claims() {
        // 200 independent deals of 100, each won with 0.5, all closing in the first period if won:
        // bookings are 100 × Binomial(200, 0.5) (mean 10,000, sd about 707).
        let (ctx, scored, as_of) = company(200, Vec::new());
        let f = forecast(
            &ctx,
            &scored,
            &BTreeMap::new(),
            as_of,
            &ForecastOptions::default(),
        );
        let p = &f.periods[0];
        assert!((p.expected - 10_000.0).abs() < 1e-6);
        // Binomial(200, 0.5): P10 = 91, P90 = 109, and P(91 <= X <= 109) = 0.821 (summed exactly from
        // the pmf with Python's math.comb: the first k whose cumulative probability reaches 0.1 and
        // 0.9), so 9,100 and 10,900, holding the outcome 82 % of the time.
        assert!((p.p10 - 9_100.0).abs() <= 100.0, "{p:?}");
        assert!((p.p90 - 10_900.0).abs() <= 100.0, "{p:?}");
        // Outcomes drawn from the same process fall in [P10, P90] about 80 % of the time.
        let mut rng = Rng::new(99);
        let trials = 2000;
        let inside = (0..trials)
            .filter(|_| {
                let booked = (0..200).filter(|_| rng.f64() < 0.5).count() as f64 * 100.0;
                booked >= p.p10 && booked <= p.p90
            })
            .count();
        let coverage = inside as f64 / trials as f64;
        assert!((0.78..=0.86).contains(&coverage), "coverage {coverage}");
    }

    #[test]
    fn a_scenario_is_zero_when_no_deal_gains_the_behaviour_and_its_expectation_otherwise() {
        let (ctx, scored, as_of) = company(100, Vec::new());
        let opts = ForecastOptions::default();
        let f = forecast(&ctx, &scored, &BTreeMap::new(), as_of, &opts);
        // Half the deals lack it, each gaining 0.2 in P(win).
        let uplifts: BTreeMap<String, f64> = scored
            .iter()
            .step_by(2)
            .map(|d| (d.opportunity_id.clone(), 0.2))
            .collect();
        let none = scenario(&f, "x", &uplifts, 0.0, &opts);
        assert_eq!(none.deals_lacking, 50);
        for p in &none.periods {
            assert_eq!((p.expected_change, p.p10, p.p90), (0.0, 0.0, 0.0), "{p:?}");
        }
        let half = scenario(&f, "x", &uplifts, 0.5, &opts);
        // 25 deals × 100 × 0.2, all closing in the first period if won.
        assert!(
            (half.periods[0].expected_change - 500.0).abs() < 1e-6,
            "{half:?}"
        );
        assert_eq!(half.periods[1].expected_change, 0.0);
        assert!(
            half.periods[0].p10 < 500.0 && half.periods[0].p90 > 500.0,
            "{half:?}"
        );
        assert!((half.mean_uplift_points - 20.0).abs() < 1e-9);
    }

    #[test]
    fn changes_name_the_deals_that_moved_the_forecast_and_add_up() {
        let (ctx, scored, as_of) = company(20, Vec::new());
        let opts = ForecastOptions::default();
        let before = forecast(&ctx, &scored, &BTreeMap::new(), as_of, &opts);
        // A week later: one deal gone, one new, one more likely.
        let mut later = scored[1..].to_vec();
        later[0].p_win = 0.9;
        let mut new = scored[0].clone();
        new.opportunity_id = "NEW1".into();
        new.p_win = 0.3;
        later.pop();
        later.push(new);
        let now = forecast(&ctx, &later, &BTreeMap::new(), as_of, &opts);
        let c = changes(&before, &now, usize::MAX);
        assert_eq!(c.periods.len(), 3);
        let moved: f64 = c.deals.iter().map(|d| d.now - d.before).sum();
        let open = now.periods[0].open_expected - before.periods[0].open_expected;
        assert!((moved - open).abs() < 1e-9, "{moved} {open}");
        let what = |id: &str| {
            c.deals
                .iter()
                .find(|d| d.opportunity_id == id)
                .map(|d| d.what)
        };
        assert_eq!(what("O0000"), Some("closed"));
        assert_eq!(what("O0001"), Some("moved"));
        assert_eq!(what("O0019"), Some("closed"));
        assert_eq!(what("NEW1"), Some("new"));
        assert!(changes(&before, &before, 10).deals.is_empty());
    }

    #[test]
    fn a_shared_shock_widens_the_range_without_moving_the_expectation() {
        let (ctx, scored, as_of) = company(200, Vec::new());
        let independent = forecast(
            &ctx,
            &scored,
            &BTreeMap::new(),
            as_of,
            &ForecastOptions::default(),
        );
        let shared = forecast(
            &ctx,
            &scored,
            &BTreeMap::new(),
            as_of,
            &ForecastOptions {
                shared_shock: 1.0,
                ..ForecastOptions::default()
            },
        );
        let (a, b) = (&independent.periods[0], &shared.periods[0]);
        assert_eq!(a.expected, b.expected);
        assert!(b.p90 - b.p10 > 3.0 * (a.p90 - a.p10), "{a:?} {b:?}");
    }
}
