//! Rep scorecards: each rep's win rate, cycle time and deal size adjusted for the deals they were given
//! and pooled toward the average rep (empirical Bayes), their adoption of the behaviours that go with
//! winning against their team and the best quarter of reps, and coaching priorities ranked by the wins
//! they could add to the rep's open pipeline. Methods: docs/methodology.md, "Rep scorecards".

use crate::{Error, Result};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use winsignal_core::Outcome;
use winsignal_discover::{Discovery, Finding, Interval};
use winsignal_features::catalog::Catalog;
use winsignal_features::snapshot::{ControlValue, Snapshot};
use winsignal_learn::sigmoid;
use winsignal_stats::linalg::cholesky;
use winsignal_stats::logit::{self, LogitOptions};
use winsignal_stats::{ols, FitError, Matrix};

/// The version of the [`Scorecards`] JSON (bumped on incompatible change).
pub const SCHEMA: u32 = 1;

/// Category levels with fewer deals than this are pooled into "(other)" in the deal-mix models (as in
/// discovery).
pub const MIN_LEVEL: usize = 30;

/// Reps with fewer snapshots than this at a behaviour's landmark do not count towards its top quartile:
/// a rate from a handful of deals says little about what good reps reach.
pub const MIN_ADOPTION_DEALS: usize = 10;

/// Fewest closed deals, and fewest wins and losses, for the win-rate model.
pub const MIN_CLOSED: usize = 20;

/// Fewest closed deals a rep needs to be ranked by win rate.
pub const MIN_RANKED_CLOSED: usize = 10;

/// Fewest wins, and fewest losses, a rep needs to be ranked by win rate: a rep who has never lost (or
/// never won) has shown no win rate to compare, only how few deals they closed.
pub const MIN_RANKED_WINS: usize = 3;
pub const MIN_RANKED_LOSSES: usize = 3;

/// Adjusted win rates closer than this (a ten-thousandth of a percentage point) are equal: the reps
/// share a rank. Pooling with no spread between reps gives every rep exactly the same rate.
pub const TIE_TOLERANCE: f64 = 1e-6;

pub const CAVEAT: &str = "Rates are adjusted for the deal mix (the listed controls) and pulled toward \
the average rep in proportion to how little data each rep has; what the controls do not capture \
(territory, inherited relationships, luck) still shows in them. Behaviour effects are associations in \
historical deals, not proof that doing more of a behaviour causes wins.";

/// One opportunity, as scorecards need it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deal {
    pub opportunity_id: String,
    pub rep_id: Option<String>,
    pub outcome: Outcome,
    pub amount: Option<f64>,
    /// Days from creation to close, for closed deals.
    pub days_to_close: Option<f64>,
    /// The deal-mix controls, in catalog order, as at the deal's first landmark.
    pub controls: Vec<ControlValue>,
}

/// A rep as the rep records describe them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepRecord {
    pub rep_id: String,
    pub name: Option<String>,
    pub team: Option<String>,
    pub manager_id: Option<String>,
}

/// One [`Deal`] per opportunity, from its earliest snapshot (its controls, outcome and amount, and the
/// days from creation to close: the snapshot's age plus its days to close). In opportunity id order.
pub fn deals_from_snapshots(snapshots: &[Snapshot]) -> Vec<Deal> {
    let mut first: BTreeMap<&str, &Snapshot> = BTreeMap::new();
    for s in snapshots {
        let slot = first.entry(s.opportunity_id.as_str()).or_insert(s);
        if s.age_days < slot.age_days {
            *slot = s;
        }
    }
    first
        .into_values()
        .map(|s| Deal {
            opportunity_id: s.opportunity_id.clone(),
            rep_id: s.rep_id.clone(),
            outcome: s.outcome,
            amount: s.amount,
            days_to_close: s.days_to_close.map(|d| d + s.age_days),
            controls: s.controls.clone(),
        })
        .collect()
}

/// Everything `winsignal reps` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Scorecards {
    pub schema: u32,
    /// The win rate of the average rep on the whole team's closed deals: the centre adjusted win rates
    /// are pulled toward, and the line a rep is above or below. When win rates per rep are not
    /// comparable ([`RankingRule::comparable`]), the deal-mix model's rate with no rep effect.
    pub mean_win_rate: f64,
    /// The deal-mix model of winning and how much reps differ beyond it.
    pub win_model: MixModel,
    /// The win model with the behaviours added (absent when no behaviour is significant for winning).
    pub beyond_behaviours_model: Option<MixModel>,
    /// The same for days to close of won deals (absent without enough won deals with a close date).
    pub cycle_model: Option<MixModel>,
    /// The same for the amount of won deals (absent without enough won deals with an amount).
    pub size_model: Option<MixModel>,
    /// The behaviours significant for winning that adoption and coaching are about.
    pub behaviours: Vec<CoachedBehaviour>,
    pub teams: Vec<TeamSummary>,
    /// Who is ranked and how ties are decided.
    pub ranking: RankingRule,
    /// What about the data makes the ranks weaker or impossible, most serious first (empty when
    /// nothing does). Printed above the scorecards.
    pub warnings: Vec<Warning>,
    /// Every rep with at least one deal: ranked reps best adjusted win rate first (tied reps by rep
    /// id), then reps without a rank by rep id.
    pub reps: Vec<RepCard>,
    pub caveat: &'static str,
}

/// The rule behind `rank`: the thresholds and the tie tolerance, as numbers.
#[derive(Debug, Clone, Serialize)]
pub struct RankingRule {
    /// False when win rates per rep cannot be compared at all (every lost deal, or every won deal,
    /// lacks a rep): then no rep is ranked and no adjusted win rate is given.
    pub comparable: bool,
    /// A rep needs at least this many closed deals, wins and losses to be ranked.
    pub min_closed: usize,
    pub min_wins: usize,
    pub min_losses: usize,
    /// Adjusted win rates closer than this share a rank.
    pub tie_tolerance: f64,
    /// Reps ranked (of the whole sales force, also when `reps` is filtered).
    pub ranked: usize,
    /// Every ranked rep has the same rank (the between-rep spread is 0, or the rates are equal).
    pub all_tied: bool,
}

/// A problem with the data that affects every rep's card.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    /// `losses_without_rep`, `wins_without_rep`, `closed_deals_without_rep`, `rep_recorded_unevenly`,
    /// `reps_tied` or `no_rep_ranked`.
    pub code: &'static str,
    pub text: String,
}

/// A deal-mix model and the spread of reps around it.
#[derive(Debug, Clone, Serialize)]
pub struct MixModel {
    /// `win` (logistic regression of won/lost), `cycle_time` (linear regression of log days from
    /// creation to close, won deals) or `deal_size` (linear regression of log amount, won deals).
    pub outcome: &'static str,
    /// Deals in the model.
    pub n: usize,
    /// Controls in the model.
    pub adjusted_for: Vec<String>,
    /// Control columns left out (constant, a combination of others, or a level with one outcome only).
    pub dropped: Vec<String>,
    /// The fit was Firth-penalised because the plain logistic fit separated.
    pub penalised: bool,
    /// The average rep on the whole team's deal mix: win rate, median days to close, or median amount.
    pub average_rep: f64,
    /// The spread of true rep effects beyond the mix (standard deviation on the model's scale: log
    /// odds, log days, log amount), estimated by the method of moments; 0 means the differences
    /// between reps are no larger than chance would give.
    pub between_rep_sd: f64,
}

/// A behaviour that goes with winning, where it is measured and the evidence.
#[derive(Debug, Clone, Serialize)]
pub struct CoachedBehaviour {
    pub behaviour: String,
    pub title: String,
    /// The landmark adoption is measured at: of the landmarks where the behaviour is significant for
    /// winning, the one with the most closed deals analysed.
    pub landmark: String,
    /// True when the behaviour goes with winning (more is better), false when with losing.
    pub helps: bool,
    /// Adoption over every rep's deals at the landmark.
    pub adoption: Option<f64>,
    /// What the best quarter of reps reach: the 75th percentile of reps' adoption (25th for a
    /// behaviour that goes with losing), over reps with at least [`MIN_ADOPTION_DEALS`] deals there.
    pub top_quartile: Option<f64>,
    pub evidence: Evidence,
}

/// The discovery finding behind a behaviour.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub landmark: String,
    /// Adjusted odds ratio of winning with the behaviour, with its 95 % interval.
    pub odds_ratio: Interval,
    /// Adjusted average marginal effect on the win probability, percentage points, with its interval.
    pub ame_pp: Interval,
    pub q: f64,
    /// Closed deals analysed, with and without the behaviour.
    pub n: usize,
    pub n_with: usize,
    pub n_without: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamSummary {
    /// The team name (`(no team)` for reps without one in the rep records).
    pub team: String,
    pub reps: usize,
    pub closed: usize,
    pub won: usize,
    pub win_rate: Option<f64>,
    /// The team's reps' adjusted win rates, averaged with their closed deals as weights.
    pub adjusted_win_rate: Option<f64>,
}

/// One rep's scorecard.
#[derive(Debug, Clone, Serialize)]
pub struct RepCard {
    pub rep_id: String,
    pub name: Option<String>,
    pub team: Option<String>,
    pub manager_id: Option<String>,
    /// 1 for the best adjusted win rate; reps with equal rates share a rank (the next rank skips:
    /// 1, 1, 3). Absent for reps who do not meet [`RankingRule`] (see `unranked_reason`).
    pub rank: Option<usize>,
    /// The rank is shared with at least one other rep (shown as `=1`).
    pub rank_tied: bool,
    /// The ranks this rep could have given the 95 % intervals: from 1 + the reps whose interval lies
    /// wholly above theirs to the ranked reps minus those whose interval lies wholly below.
    pub rank_range: Option<[usize; 2]>,
    /// Why the rep has no rank, in words (absent when ranked).
    pub unranked_reason: Option<String>,
    pub deals: usize,
    pub closed: usize,
    pub won: usize,
    pub open: usize,
    /// Won / closed, unadjusted.
    pub win_rate: Option<f64>,
    pub win: Option<WinScore>,
    /// 1 for the best win rate beyond behaviours, ties shared as for `rank`; absent when the rep has
    /// no `rank` or there are no coached behaviours.
    pub rank_beyond_behaviours: Option<usize>,
    pub rank_beyond_behaviours_tied: bool,
    /// The win rate adjusted for deal mix and for the behaviours in [`Scorecards::behaviours`] the
    /// rep's deals showed, pooled: what the rep adds that the measured behaviours do not explain.
    pub beyond_behaviours: Option<WinScore>,
    pub cycle: Option<ContinuousScore>,
    pub deal_size: Option<ContinuousScore>,
    /// Adoption of each behaviour in [`Scorecards::behaviours`], in the same order.
    pub adoption: Vec<RepAdoption>,
    /// Behaviours where the rep is below the best quarter of reps, most expected extra wins first.
    pub coaching: Vec<Priority>,
}

/// The rep's win rate adjusted for deal mix and pooled toward the average rep.
#[derive(Debug, Clone, Serialize)]
pub struct WinScore {
    /// Wins the deal-mix model expects from the rep's closed deals.
    pub expected_wins: f64,
    pub observed_wins: usize,
    /// Observed / expected.
    pub ratio: f64,
    /// The same ratio after pooling: the wins the pooled rep effect gives on the rep's deals / expected.
    pub ratio_pooled: f64,
    /// The win rate this rep would have on the whole team's deal mix, pooled, with its 95 % interval.
    pub adjusted_win_rate: Interval,
    /// The rep's pooled effect on the log odds of winning, relative to the deal-mix model.
    pub log_odds: Interval,
    /// How far the rep's own estimate was pulled toward the average rep (0 = not at all, 1 = entirely).
    pub shrinkage: f64,
}

/// Days to close or amount of the rep's won deals, adjusted for deal mix and pooled.
#[derive(Debug, Clone, Serialize)]
pub struct ContinuousScore {
    /// Won deals measured.
    pub n: usize,
    /// Median of the rep's won deals, unadjusted.
    pub raw_median: f64,
    /// The median this rep would have on the whole team's won-deal mix, pooled, with its 95 % interval.
    pub adjusted: Interval,
    /// The same as a multiple of the average rep's.
    pub ratio: Interval,
    pub shrinkage: f64,
}

/// A rep's adoption of one behaviour at its landmark.
#[derive(Debug, Clone, Serialize)]
pub struct RepAdoption {
    pub behaviour: String,
    pub landmark: String,
    /// The rep's deals at the landmark where the behaviour is defined.
    pub n: usize,
    pub rate: Option<f64>,
    /// The rep's team (every rep's deals when the team is unknown).
    pub team: Option<f64>,
    pub top_quartile: Option<f64>,
}

/// One coaching priority.
#[derive(Debug, Clone, Serialize)]
pub struct Priority {
    pub behaviour: String,
    pub title: String,
    pub landmark: String,
    pub rep_adoption: f64,
    pub top_quartile: f64,
    /// Top quartile − the rep's adoption (always positive).
    pub gap: f64,
    pub open_deals: usize,
    /// Gap × the behaviour's average marginal effect: extra wins per deal at top-quartile adoption.
    pub extra_wins_per_deal: f64,
    /// Extra wins per deal × open deals.
    pub expected_extra_wins: f64,
    pub evidence: Evidence,
    pub text: String,
}

/// A category or numeric control column of the deal-mix design.
struct MixDesign {
    x: Matrix,
    adjusted_for: Vec<String>,
    dropped: Vec<String>,
}

/// The design of a deal-mix model: intercept, then each control — categories as dummies against the
/// most common level with rare levels pooled, numbers as they are with the average for missing values
/// and a missing indicator — without constant or collinear columns. With a 0/1 `outcome`, a dummy whose
/// deals all have the same outcome is left out (its coefficient would be infinite).
fn mix_design(
    rows: &[&[ControlValue]],
    names: &[String],
    skip: &[&str],
    outcome: Option<&[f64]>,
) -> MixDesign {
    let n = rows.len();
    let mut cols: Vec<(String, String, Vec<f64>)> =
        vec![("(intercept)".into(), String::new(), vec![1.0; n])];
    let mut dropped = Vec::new();
    for (j, name) in names.iter().enumerate() {
        if skip.contains(&name.as_str()) {
            continue;
        }
        let values: Vec<&ControlValue> = rows
            .iter()
            .map(|r| r.get(j).unwrap_or(&ControlValue::Missing))
            .collect();
        let numeric = values.iter().any(|v| matches!(v, ControlValue::Number(_)))
            && values.iter().all(|v| !matches!(v, ControlValue::Text(_)));
        let encoded = if numeric {
            encode_numeric(name, &values)
        } else {
            encode_categorical(name, &values)
        };
        for (col, v) in encoded {
            let first = v.first().copied().unwrap_or(0.0);
            let separates = outcome.is_some_and(|y| {
                v.iter().all(|x| *x == 0.0 || *x == 1.0) && {
                    let mut level = (0..n).filter(|i| v[*i] == 1.0).map(|i| y[i]);
                    level.next().is_some_and(|f| level.all(|x| x == f))
                }
            });
            if v.iter().all(|x| *x == first) {
                dropped.push(col);
            } else if separates {
                dropped.push(format!("{col} (every deal has the same outcome)"));
            } else {
                cols.push((col, name.clone(), v));
            }
        }
    }
    let k = cols.len();
    let mut data = Vec::with_capacity(n * k);
    for i in 0..n {
        data.extend(cols.iter().map(|c| c.2[i]));
    }
    let full = Matrix::from_rows(n, k, data);
    let gram = full.weighted_gram(None);
    // Drop columns that are combinations of earlier ones, one at a time (never the intercept).
    let mut alive: Vec<usize> = (0..k).collect();
    loop {
        let m = alive.len();
        let mut sub = Matrix::zeros(m, m);
        for (a, &ja) in alive.iter().enumerate() {
            for (b, &jb) in alive.iter().enumerate() {
                *sub.get_mut(a, b) = gram.get(ja, jb);
            }
        }
        match cholesky(&sub) {
            Err(FitError::Singular { column }) if column > 0 => {
                dropped.push(cols[alive[column]].0.clone());
                alive.remove(column);
            }
            _ => break,
        }
    }
    let mut adjusted_for: Vec<String> = Vec::new();
    for &j in &alive {
        let control = &cols[j].1;
        if !control.is_empty() && !adjusted_for.contains(control) {
            adjusted_for.push(control.clone());
        }
    }
    let x = if alive.len() == k {
        full
    } else {
        let mut data = Vec::with_capacity(n * alive.len());
        for i in 0..n {
            data.extend(alive.iter().map(|&j| full.get(i, j)));
        }
        Matrix::from_rows(n, alive.len(), data)
    };
    MixDesign {
        x,
        adjusted_for,
        dropped,
    }
}

fn encode_numeric(name: &str, values: &[&ControlValue]) -> Vec<(String, Vec<f64>)> {
    let number = |v: &ControlValue| match v {
        ControlValue::Number(x) if x.is_finite() => Some(*x),
        _ => None,
    };
    let present: Vec<f64> = values.iter().filter_map(|v| number(v)).collect();
    if present.is_empty() {
        return Vec::new();
    }
    let mean = present.iter().sum::<f64>() / present.len() as f64;
    let mut out = vec![(
        name.to_string(),
        values.iter().map(|v| number(v).unwrap_or(mean)).collect(),
    )];
    if present.len() < values.len() {
        out.push((
            format!("{name} (missing)"),
            values
                .iter()
                .map(|v| if number(v).is_some() { 0.0 } else { 1.0 })
                .collect(),
        ));
    }
    out
}

fn encode_categorical(name: &str, values: &[&ControlValue]) -> Vec<(String, Vec<f64>)> {
    let label = |v: &ControlValue| match v {
        ControlValue::Text(t) => t.clone(),
        ControlValue::Number(x) => x.to_string(),
        ControlValue::Missing => "(missing)".to_string(),
    };
    let mut labels: Vec<String> = values.iter().map(|v| label(v)).collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    labels
        .iter()
        .for_each(|l| *counts.entry(l.clone()).or_default() += 1);
    const OTHER: &str = "(other)";
    for l in labels.iter_mut() {
        if counts[l.as_str()] < MIN_LEVEL {
            *l = OTHER.to_string();
        }
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    labels
        .iter()
        .for_each(|l| *counts.entry(l.clone()).or_default() += 1);
    // The most common level is the reference (ties to the first name); a small "(other)" joins it.
    let Some(reference) = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(l, _)| l.clone())
    else {
        return Vec::new();
    };
    if counts.get(OTHER).is_some_and(|c| *c < MIN_LEVEL) {
        labels
            .iter_mut()
            .filter(|l| *l == OTHER)
            .for_each(|l| *l = reference.clone());
        counts.remove(OTHER);
    }
    counts
        .keys()
        .filter(|l| **l != reference)
        .map(|level| {
            (
                format!("{name}={level}"),
                labels
                    .iter()
                    .map(|l| if l == level { 1.0 } else { 0.0 })
                    .collect(),
            )
        })
        .collect()
}

/// The normal–normal pooling of per-rep estimates: the centre `mu` (with its variance) and the
/// between-rep variance `tau2`, by DerSimonian and Laird's method of moments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pooling {
    pub mu: f64,
    pub mu_var: f64,
    pub tau2: f64,
}

/// Pools `(estimate, sampling variance)` pairs (variances must be positive and finite).
pub fn pool(estimates: &[(f64, f64)]) -> Pooling {
    let usable: Vec<(f64, f64)> = estimates
        .iter()
        .copied()
        .filter(|(e, v)| e.is_finite() && v.is_finite() && *v > 0.0)
        .collect();
    if usable.is_empty() {
        return Pooling {
            mu: 0.0,
            mu_var: f64::INFINITY,
            tau2: 0.0,
        };
    }
    let w: Vec<f64> = usable.iter().map(|(_, v)| 1.0 / v).collect();
    let sw: f64 = w.iter().sum();
    let fixed = usable.iter().zip(&w).map(|((e, _), w)| w * e).sum::<f64>() / sw;
    let q: f64 = usable
        .iter()
        .zip(&w)
        .map(|((e, _), w)| w * (e - fixed) * (e - fixed))
        .sum();
    let sw2: f64 = w.iter().map(|w| w * w).sum();
    let df = usable.len() as f64 - 1.0;
    let tau2 = if usable.len() > 1 {
        ((q - df) / (sw - sw2 / sw)).max(0.0)
    } else {
        0.0
    };
    let ws: Vec<f64> = usable.iter().map(|(_, v)| 1.0 / (v + tau2)).collect();
    let sws: f64 = ws.iter().sum();
    Pooling {
        mu: usable.iter().zip(&ws).map(|((e, _), w)| w * e).sum::<f64>() / sws,
        mu_var: 1.0 / sws,
        tau2,
    }
}

impl Pooling {
    /// The pooled estimate of one unit: `(mean, variance, shrinkage)`. The variance adds the
    /// uncertainty of the centre, so a unit pulled all the way to it is not given a zero-width interval.
    pub fn posterior(&self, estimate: f64, var: f64) -> (f64, f64, f64) {
        let shrinkage = if self.tau2 > 0.0 && var.is_finite() {
            var / (var + self.tau2)
        } else {
            1.0
        };
        let mean = self.mu + (1.0 - shrinkage) * (estimate - self.mu);
        let own = if var.is_finite() {
            var * (1.0 - shrinkage)
        } else {
            self.tau2
        };
        (mean, own + shrinkage * shrinkage * self.mu_var, shrinkage)
    }
}

/// A rep's log-odds shift δ over the deal-mix predictions `eta` (outcomes `y`), by Firth's penalised
/// likelihood (finite even when every deal was won or lost), with its variance `1 / Σ p (1 − p)`.
pub fn rep_log_odds(eta: &[f64], y: &[f64]) -> (f64, f64) {
    let score = |d: f64| {
        let (mut u, mut info, mut dinfo) = (0.0, 0.0, 0.0);
        for (e, y) in eta.iter().zip(y) {
            let p = sigmoid(e + d);
            let w = p * (1.0 - p);
            u += y - p;
            info += w;
            dinfo += w * (1.0 - 2.0 * p);
        }
        (u + 0.5 * dinfo / info.max(1e-300), info)
    };
    let (mut lo, mut hi) = (-20.0, 20.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if score(mid).0 > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let d = 0.5 * (lo + hi);
    (d, 1.0 / score(d).1.max(1e-300))
}

const Z95: f64 = 1.959_963_984_540_054;

fn interval(mean: f64, var: f64, f: impl Fn(f64) -> f64) -> Interval {
    let sd = var.max(0.0).sqrt();
    Interval {
        estimate: f(mean),
        low: f(mean - Z95 * sd),
        high: f(mean + Z95 * sd),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// The `p`-quantile with linear interpolation between order statistics (type 7).
fn quantile(mut v: Vec<f64>, p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let h = (v.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    Some(v[lo] + (h - lo as f64) * (v[hi] - v[lo]))
}

/// One pooled outcome: the model, its reference mix and each rep's pooled effect.
struct RepEffects {
    model: MixModel,
    /// The reference mix. Win models: the linear predictor of every closed deal, in deal order.
    /// Continuous outcomes: one value, the mean log outcome over the won deals.
    reference: Vec<f64>,
    /// `rep → (pooled effect, its variance, shrinkage)`.
    effects: HashMap<String, (f64, f64, f64)>,
}

/// A win model: the logistic regression of won/lost on `rows` (the deal-mix controls, and for
/// `win_beyond_behaviours` the behaviours too), each rep's Firth log-odds shift over it, pooled.
fn win_effects(
    outcome: &'static str,
    names: &[String],
    rows: &[&[ControlValue]],
    closed: &[&Deal],
) -> Result<RepEffects> {
    let y: Vec<f64> = closed
        .iter()
        .map(|d| if d.outcome == Outcome::Won { 1.0 } else { 0.0 })
        .collect();
    let won = y.iter().filter(|v| **v == 1.0).count();
    if closed.len() < MIN_CLOSED || won < 10 || closed.len() - won < 10 {
        return Err(Error::NotEnoughData(format!(
            "rep scorecards need at least {MIN_CLOSED} closed deals with 10 wins and 10 losses; \
             found {} closed, {won} won",
            closed.len()
        )));
    }
    let design = mix_design(rows, names, &[], Some(&y));
    let plain = logit::fit(&y, &design.x, None, &LogitOptions::default());
    let (fit, penalised) = match plain {
        Ok(f) => (f, false),
        Err(_) => (
            logit::fit(
                &y,
                &design.x,
                None,
                &LogitOptions {
                    firth: true,
                    ..LogitOptions::default()
                },
            )
            .map_err(|e| Error::Learn(format!("the {outcome} model: {e}")))?,
            true,
        ),
    };
    let eta: Vec<f64> = (0..design.x.rows())
        .map(|i| winsignal_stats::linalg::dot(design.x.row(i), &fit.est.beta))
        .collect();
    let mut by_rep: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for (i, d) in closed.iter().enumerate() {
        if let Some(r) = &d.rep_id {
            let e = by_rep.entry(r.as_str()).or_default();
            e.0.push(eta[i]);
            e.1.push(y[i]);
        }
    }
    let raw: Vec<(&str, f64, f64)> = by_rep
        .iter()
        .map(|(r, (eta, y))| {
            let (d, v) = rep_log_odds(eta, y);
            (*r, d, v)
        })
        .collect();
    let pooling = pool(&raw.iter().map(|(_, d, v)| (*d, *v)).collect::<Vec<_>>());
    let effects = raw
        .iter()
        .map(|(r, d, v)| (r.to_string(), pooling.posterior(*d, *v)))
        .collect();
    let average_rep = eta.iter().map(|e| sigmoid(e + pooling.mu)).sum::<f64>() / eta.len() as f64;
    Ok(RepEffects {
        model: MixModel {
            outcome,
            n: closed.len(),
            adjusted_for: design.adjusted_for,
            dropped: design.dropped,
            penalised,
            average_rep,
            between_rep_sd: pooling.tau2.sqrt(),
        },
        reference: eta,
        effects,
    })
}

/// A rep's [`WinScore`] under a win model (`effects.reference` holds the model's linear predictor of
/// every closed deal, in the order of `closed`).
fn win_score(effects: &RepEffects, closed: &[&Deal], rep: &str, won: usize) -> Option<WinScore> {
    let &(mean, var, shrinkage) = effects.effects.get(rep)?;
    let eta = &effects.reference;
    let mine: Vec<f64> = closed
        .iter()
        .zip(eta)
        .filter(|(d, _)| d.rep_id.as_deref() == Some(rep))
        .map(|(_, e)| *e)
        .collect();
    let expected: f64 = mine.iter().map(|e| sigmoid(*e)).sum();
    let pooled: f64 = mine.iter().map(|e| sigmoid(e + mean)).sum();
    let on_mix = |d: f64| eta.iter().map(|e| sigmoid(e + d)).sum::<f64>() / eta.len() as f64;
    Some(WinScore {
        expected_wins: expected,
        observed_wins: won,
        ratio: won as f64 / expected,
        ratio_pooled: pooled / expected,
        adjusted_win_rate: interval(mean, var, on_mix),
        log_odds: interval(mean, var, |d| d),
        shrinkage,
    })
}

/// A continuous outcome of won deals (log days, log amount): the deal-mix regression, each rep's mean
/// residual with the pooled within-rep variance over their count, pooled across reps.
fn continuous_effects(
    outcome: &'static str,
    control_names: &[String],
    deals: &[(&Deal, f64)],
    skip: &[&str],
) -> Option<RepEffects> {
    let y: Vec<f64> = deals.iter().map(|(_, y)| *y).collect();
    let rows: Vec<&[ControlValue]> = deals.iter().map(|(d, _)| d.controls.as_slice()).collect();
    let design = mix_design(&rows, control_names, skip, None);
    if deals.len() < MIN_CLOSED || deals.len() <= design.x.cols() + 1 {
        return None;
    }
    let fit = ols::fit(&y, &design.x, None).ok()?;
    let mut by_rep: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for ((d, _), e) in deals.iter().zip(&fit.residuals) {
        if let Some(r) = &d.rep_id {
            by_rep.entry(r.as_str()).or_default().push(*e);
        }
    }
    let mut within = 0.0;
    let mut counted = 0usize;
    for e in by_rep.values() {
        let m = e.iter().sum::<f64>() / e.len() as f64;
        within += e.iter().map(|x| (x - m) * (x - m)).sum::<f64>();
        counted += e.len();
    }
    let dof = counted.saturating_sub(by_rep.len());
    let sigma2 = if dof > 0 {
        within / dof as f64
    } else {
        fit.residuals.iter().map(|e| e * e).sum::<f64>() / fit.residuals.len() as f64
    };
    let raw: Vec<(&str, f64, f64)> = by_rep
        .iter()
        .map(|(r, e)| {
            (
                *r,
                e.iter().sum::<f64>() / e.len() as f64,
                sigma2 / e.len() as f64,
            )
        })
        .collect();
    let pooling = pool(&raw.iter().map(|(_, d, v)| (*d, *v)).collect::<Vec<_>>());
    let mean_y = y.iter().sum::<f64>() / y.len() as f64;
    Some(RepEffects {
        model: MixModel {
            outcome,
            n: deals.len(),
            adjusted_for: design.adjusted_for,
            dropped: design.dropped,
            penalised: false,
            average_rep: (mean_y + pooling.mu).exp(),
            between_rep_sd: pooling.tau2.sqrt(),
        },
        reference: vec![mean_y],
        effects: raw
            .iter()
            .map(|(r, d, v)| (r.to_string(), pooling.posterior(*d, *v)))
            .collect(),
    })
}

fn continuous_score(effects: &RepEffects, rep: &str, raw: Vec<f64>) -> Option<ContinuousScore> {
    let (mean, var, shrinkage) = *effects.effects.get(rep)?;
    let base = effects.reference.first().copied().unwrap_or(0.0);
    // e^μ: the average rep's shift, so that `ratio` compares with the average rep, not the model.
    let mu_shift = (effects.model.average_rep.ln() - base).exp();
    Some(ContinuousScore {
        n: raw.len(),
        raw_median: median(raw),
        adjusted: interval(mean, var, |d| (base + d).exp()),
        ratio: interval(mean, var, |d| d.exp() / mu_shift),
        shrinkage,
    })
}

/// The behaviours discovery found significant for winning (estimated, yes/no, with an average
/// marginal effect, not flagged as leakage), each at the landmark where its evidence is strongest
/// (smallest p-value; ties to more closed deals analysed, then the landmark name) — the landmark the
/// discovery report shows the behaviour at; in catalog order.
fn coached_findings<'d>(catalog: &Catalog, discovery: &'d Discovery) -> Vec<(usize, &'d Finding)> {
    let flag_index: HashMap<&str, usize> = catalog
        .behaviours
        .iter()
        .filter(|d| d.is_behaviour())
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let mut best: BTreeMap<usize, &Finding> = BTreeMap::new();
    for f in &discovery.findings {
        let usable = f.outcome == winsignal_discover::Outcome::Win
            && f.kind == "yes_no"
            && f.significant
            && f.leakage.is_none()
            && f.effect.as_ref().is_some_and(|e| e.ame_pp.is_some());
        let Some(&i) = flag_index.get(f.behaviour.as_str()) else {
            continue;
        };
        if !usable {
            continue;
        }
        let p = |f: &Finding| f.effect.as_ref().map_or(f64::INFINITY, |e| e.p);
        best.entry(i)
            .and_modify(|b| {
                let better = p(f) < p(b)
                    || (p(f) == p(b) && (f.n > b.n || (f.n == b.n && f.landmark < b.landmark)));
                if better {
                    *b = f;
                }
            })
            .or_insert(f);
    }
    best.into_iter().collect()
}

fn evidence(f: &Finding) -> Option<Evidence> {
    let e = f.effect.as_ref()?;
    Some(Evidence {
        landmark: f.landmark.clone(),
        odds_ratio: Interval {
            estimate: e.estimate,
            low: e.low,
            high: e.high,
        },
        ame_pp: e.ame_pp?,
        q: e.q,
        n: f.n,
        n_with: f.n_with,
        n_without: f.n_without,
    })
}

/// Yes / defined counts of one behaviour at one landmark, by rep.
fn adoption_by_rep<'s>(
    snapshots: &'s [Snapshot],
    landmark: &str,
    flag: usize,
) -> BTreeMap<&'s str, (usize, usize)> {
    let mut out: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for s in snapshots.iter().filter(|s| s.landmark == landmark) {
        let (Some(rep), Some(Some(yes))) = (&s.rep_id, s.flags.get(flag)) else {
            continue;
        };
        let e = out.entry(rep.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(*yes);
    }
    out
}

fn rate(defined: usize, yes: usize) -> Option<f64> {
    (defined > 0).then(|| yes as f64 / defined as f64)
}

fn pct(x: f64) -> String {
    format!("{:.0} %", 100.0 * x)
}

/// Warnings about how reps are recorded on closed deals, and whether win rates per rep can be
/// compared at all: not when every lost deal (or every won deal) lacks a rep, since every rep would
/// then have won (or lost) everything they closed.
fn data_warnings(closed: &[&Deal]) -> (Vec<Warning>, bool) {
    let count = |outcome: Outcome, with_rep: bool| {
        closed
            .iter()
            .filter(|d| d.outcome == outcome && (!with_rep || d.rep_id.is_some()))
            .count()
    };
    let (won, lost) = (count(Outcome::Won, false), count(Outcome::Lost, false));
    let (won_rep, lost_rep) = (count(Outcome::Won, true), count(Outcome::Lost, true));
    let mut warnings = Vec::new();
    if lost_rep == 0 && won_rep > 0 {
        warnings.push(Warning {
            code: "losses_without_rep",
            text: format!(
                "lost deals carry no rep ({lost} lost deals, none with a rep): win rates per rep \
                 cannot be compared, so no rep is ranked and no adjusted win rate is given"
            ),
        });
    }
    if won_rep == 0 && lost_rep > 0 {
        warnings.push(Warning {
            code: "wins_without_rep",
            text: format!(
                "won deals carry no rep ({won} won deals, none with a rep): win rates per rep \
                 cannot be compared, so no rep is ranked and no adjusted win rate is given"
            ),
        });
    }
    if won_rep == 0 && lost_rep == 0 && won + lost > 0 {
        warnings.push(Warning {
            code: "closed_deals_without_rep",
            text: format!(
                "no closed deal carries a rep ({} closed deals): win rates per rep cannot be compared, \
                 so no rep is ranked and no adjusted win rate is given",
                won + lost
            ),
        });
    }
    let comparable = won_rep > 0 && lost_rep > 0;
    if comparable {
        let (share_won, share_lost) = (won_rep as f64 / won as f64, lost_rep as f64 / lost as f64);
        if share_won.min(share_lost) < 0.5 * share_won.max(share_lost) {
            warnings.push(Warning {
                code: "rep_recorded_unevenly",
                text: format!(
                    "a rep is recorded on {} of won deals but {} of lost deals: every rep's win \
                     rate is biased {} by how the rep field was filled",
                    pct(share_won),
                    pct(share_lost),
                    if share_won > share_lost {
                        "upward"
                    } else {
                        "downward"
                    }
                ),
            });
        }
    }
    (warnings, comparable)
}

/// Why a rep with `closed` closed deals, `won` of them won, gets no rank (none when they get one).
fn unranked_reason(
    comparable: bool,
    warnings: &[Warning],
    closed: usize,
    won: usize,
) -> Option<String> {
    if !comparable {
        return Some(warnings.first().map_or_else(
            || "win rates per rep cannot be compared in this data".to_string(),
            |w| w.text.clone(),
        ));
    }
    let lost = closed - won;
    if closed == 0 {
        return Some("no closed deals yet".into());
    }
    if closed >= MIN_RANKED_CLOSED && won >= MIN_RANKED_WINS && lost >= MIN_RANKED_LOSSES {
        return None;
    }
    let what = if lost == 0 {
        format!("never lost a deal ({closed} closed, all won)")
    } else if won == 0 {
        format!("never won a deal ({closed} closed, all lost)")
    } else {
        format!("{closed} closed deals, {won} won and {lost} lost")
    };
    Some(format!(
        "{what}: a rank needs at least {MIN_RANKED_CLOSED} closed deals with {MIN_RANKED_WINS} wins \
         and {MIN_RANKED_LOSSES} losses"
    ))
}

/// A rank with ties and the ranks the intervals allow.
struct Ranked {
    rank: usize,
    tied: bool,
    range: [usize; 2],
}

/// Competition ranks (1, 1, 3) of `(index, rate with its interval)`, highest estimate first: a rate
/// within [`TIE_TOLERANCE`] of the first of a group of equal rates shares its rank. With each, the
/// range of ranks the 95 % intervals allow. Returned best first, tied reps in input order.
fn competition_ranks(entries: &[(usize, Interval)]) -> Vec<(usize, Ranked)> {
    let mut order: Vec<&(usize, Interval)> = entries.iter().collect();
    order.sort_by(|a, b| b.1.estimate.total_cmp(&a.1.estimate).then(a.0.cmp(&b.0)));
    let m = order.len();
    let mut out: Vec<(usize, Ranked)> = Vec::with_capacity(m);
    let mut lead = (f64::INFINITY, 0usize);
    for (pos, (i, rate)) in order.iter().enumerate() {
        if (lead.0 - rate.estimate).abs() > TIE_TOLERANCE {
            lead = (rate.estimate, pos + 1);
        }
        let above = entries.iter().filter(|(_, o)| o.low > rate.high).count();
        let below = entries.iter().filter(|(_, o)| o.high < rate.low).count();
        out.push((
            *i,
            Ranked {
                rank: lead.1,
                tied: false,
                range: [1 + above, m - below],
            },
        ));
    }
    for k in 0..out.len() {
        let r = out[k].1.rank;
        let shared = out.iter().filter(|(_, o)| o.rank == r).count() > 1;
        out[k].1.tied = shared;
    }
    out
}

/// Computes every rep's scorecard. `deals` gives each opportunity once (see [`deals_from_snapshots`]);
/// `snapshots` give adoption; `discovery` the behaviours significant for winning and their effects;
/// `reps` names, teams and managers (reps without a record still get a card).
pub fn scorecards(
    catalog: &Catalog,
    snapshots: &[Snapshot],
    discovery: &Discovery,
    deals: &[Deal],
    reps: &[RepRecord],
) -> Result<Scorecards> {
    let control_names: Vec<String> = catalog.controls.iter().map(|c| c.column()).collect();
    let closed: Vec<&Deal> = deals
        .iter()
        .filter(|d| d.outcome != Outcome::Open)
        .collect();
    let closed_rows: Vec<&[ControlValue]> = closed.iter().map(|d| d.controls.as_slice()).collect();
    let win = win_effects("win", &control_names, &closed_rows, &closed)?;
    let won_days: Vec<(&Deal, f64)> = deals
        .iter()
        .filter(|d| d.outcome == Outcome::Won)
        .filter_map(|d| d.days_to_close.map(|t| (d, t.max(0.5).ln())))
        .collect();
    let cycle = continuous_effects("cycle_time", &control_names, &won_days, &[]);
    let won_amounts: Vec<(&Deal, f64)> = deals
        .iter()
        .filter(|d| d.outcome == Outcome::Won)
        .filter_map(|d| d.amount.filter(|a| *a > 0.0).map(|a| (d, a.ln())))
        .collect();
    let size = continuous_effects("deal_size", &control_names, &won_amounts, &["log_amount"]);

    let (warnings, comparable) = data_warnings(&closed);
    let mut win = win;
    if !comparable {
        // Pooled rep effects are meaningless here: the average rep is the team's deal mix as it is.
        let eta = &win.reference;
        win.model.average_rep =
            eta.iter().map(|e| sigmoid(*e)).sum::<f64>() / eta.len().max(1) as f64;
    }

    let record: HashMap<&str, &RepRecord> = reps.iter().map(|r| (r.rep_id.as_str(), r)).collect();
    let team_of = |rep: &str| record.get(rep).and_then(|r| r.team.clone());
    // Every rep with a deal, with their deals.
    let mut rep_deals: BTreeMap<&str, Vec<&Deal>> = BTreeMap::new();
    for d in deals {
        if let Some(r) = &d.rep_id {
            rep_deals.entry(r.as_str()).or_default().push(d);
        }
    }

    // Behaviours: adoption by rep at their landmark, the team rates and the top quartile.
    struct Coached<'a> {
        flag: usize,
        finding: &'a Finding,
        evidence: Evidence,
        helps: bool,
        by_rep: BTreeMap<&'a str, (usize, usize)>,
        by_team: BTreeMap<Option<String>, (usize, usize)>,
        top_quartile: Option<f64>,
    }
    let mut coached: Vec<Coached> = Vec::new();
    for (flag, finding) in coached_findings(catalog, discovery) {
        let Some(evidence) = evidence(finding) else {
            continue;
        };
        let helps = evidence.ame_pp.estimate > 0.0;
        let by_rep = adoption_by_rep(snapshots, &finding.landmark, flag);
        let mut by_team: BTreeMap<Option<String>, (usize, usize)> = BTreeMap::new();
        for (rep, (n, yes)) in &by_rep {
            let e = by_team.entry(team_of(rep)).or_default();
            e.0 += n;
            e.1 += yes;
        }
        let rates: Vec<f64> = by_rep
            .values()
            .filter(|(n, _)| *n >= MIN_ADOPTION_DEALS)
            .filter_map(|(n, yes)| rate(*n, *yes))
            .collect();
        let top_quartile = quantile(rates, if helps { 0.75 } else { 0.25 });
        coached.push(Coached {
            flag,
            finding,
            evidence,
            helps,
            by_rep,
            by_team,
            top_quartile,
        });
    }

    // The same win model with the coached behaviours added (yes/no at their landmark, missing when
    // the deal closed before it): what a rep adds beyond deal mix and the measured behaviours.
    let skill = if coached.is_empty() {
        None
    } else {
        let landmarks: Vec<&str> = coached
            .iter()
            .map(|c| c.finding.landmark.as_str())
            .collect();
        let at: HashMap<(&str, &str), &Snapshot> = snapshots
            .iter()
            .filter(|s| landmarks.contains(&s.landmark.as_str()))
            .map(|s| ((s.opportunity_id.as_str(), s.landmark.as_str()), s))
            .collect();
        let rows: Vec<Vec<ControlValue>> = closed
            .iter()
            .map(|d| {
                let mut row = d.controls.clone();
                row.resize(control_names.len(), ControlValue::Missing);
                row.extend(coached.iter().map(|c| {
                    let key = (d.opportunity_id.as_str(), c.finding.landmark.as_str());
                    match at
                        .get(&key)
                        .and_then(|s| s.flags.get(c.flag).copied().flatten())
                    {
                        Some(yes) => ControlValue::Number(if yes { 1.0 } else { 0.0 }),
                        None => ControlValue::Missing,
                    }
                }));
                row
            })
            .collect();
        let refs: Vec<&[ControlValue]> = rows.iter().map(|r| r.as_slice()).collect();
        let mut names = control_names.clone();
        names.extend(coached.iter().map(|c| c.finding.behaviour.clone()));
        win_effects("win_beyond_behaviours", &names, &refs, &closed).ok()
    };

    let mut cards: Vec<RepCard> = Vec::new();
    for (rep, mine) in &rep_deals {
        let rec = record.get(rep);
        let team = rec.and_then(|r| r.team.clone());
        let closed_n = mine.iter().filter(|d| d.outcome != Outcome::Open).count();
        let won = mine.iter().filter(|d| d.outcome == Outcome::Won).count();
        let open = mine.len() - closed_n;
        let (adjusted, beyond_behaviours) = if comparable {
            (
                win_score(&win, &closed, rep, won),
                skill.as_ref().and_then(|k| win_score(k, &closed, rep, won)),
            )
        } else {
            (None, None)
        };
        let unranked_reason = unranked_reason(comparable, &warnings, closed_n, won);
        let raw_days: Vec<f64> = mine
            .iter()
            .filter(|d| d.outcome == Outcome::Won)
            .filter_map(|d| d.days_to_close)
            .collect();
        let raw_amounts: Vec<f64> = mine
            .iter()
            .filter(|d| d.outcome == Outcome::Won)
            .filter_map(|d| d.amount.filter(|a| *a > 0.0))
            .collect();
        let mut adoption = Vec::new();
        let mut coaching = Vec::new();
        for c in &coached {
            let (n, yes) = c.by_rep.get(rep).copied().unwrap_or((0, 0));
            let team_rate = match &team {
                Some(_) => c.by_team.get(&team).and_then(|(n, y)| rate(*n, *y)),
                None => {
                    let (n, y) = c
                        .by_rep
                        .values()
                        .fold((0, 0), |a, (n, y)| (a.0 + n, a.1 + y));
                    rate(n, y)
                }
            };
            let mine_rate = rate(n, yes);
            adoption.push(RepAdoption {
                behaviour: c.finding.behaviour.clone(),
                landmark: c.finding.landmark.clone(),
                n,
                rate: mine_rate,
                team: team_rate,
                top_quartile: c.top_quartile,
            });
            let (Some(r), Some(top), true) = (mine_rate, c.top_quartile, c.helps) else {
                continue;
            };
            let gap = top - r;
            if gap <= 0.0 {
                continue;
            }
            let per_deal = gap * c.evidence.ame_pp.estimate / 100.0;
            let e = &c.evidence;
            coaching.push(Priority {
                behaviour: c.finding.behaviour.clone(),
                title: c.finding.title.clone(),
                landmark: c.finding.landmark.clone(),
                rep_adoption: r,
                top_quartile: top,
                gap,
                open_deals: open,
                extra_wins_per_deal: per_deal,
                expected_extra_wins: per_deal * open as f64,
                text: format!(
                    "{} at {}: {} of your deals vs {} for the best quarter of reps. Deals with it win \
                     {:.1} percentage points more often (95 % CI {:.1} to {:.1}; odds ×{:.2}, n = {}); \
                     at top-quartile adoption your {} open deals would bring about {:.1} more wins.",
                    c.finding.title,
                    c.finding.landmark,
                    pct(r),
                    pct(top),
                    e.ame_pp.estimate,
                    e.ame_pp.low,
                    e.ame_pp.high,
                    e.odds_ratio.estimate,
                    e.n,
                    open,
                    per_deal * open as f64
                ),
                evidence: c.evidence.clone(),
            });
        }
        coaching.sort_by(|a, b| {
            b.expected_extra_wins
                .total_cmp(&a.expected_extra_wins)
                .then(b.extra_wins_per_deal.total_cmp(&a.extra_wins_per_deal))
                .then(a.behaviour.cmp(&b.behaviour))
        });
        cards.push(RepCard {
            rep_id: rep.to_string(),
            name: rec.and_then(|r| r.name.clone()),
            team,
            manager_id: rec.and_then(|r| r.manager_id.clone()),
            rank: None,
            rank_tied: false,
            rank_range: None,
            unranked_reason,
            deals: mine.len(),
            closed: closed_n,
            won,
            open,
            win_rate: rate(closed_n, won),
            win: adjusted,
            rank_beyond_behaviours: None,
            rank_beyond_behaviours_tied: false,
            beyond_behaviours,
            cycle: cycle
                .as_ref()
                .and_then(|c| continuous_score(c, rep, raw_days)),
            deal_size: size
                .as_ref()
                .and_then(|s| continuous_score(s, rep, raw_amounts)),
            adoption,
            coaching,
        });
    }
    // Ranks by adjusted win rate, then the same for the rate beyond behaviours, among the reps who
    // meet the ranking rule; the rest keep their scores but get no rank.
    let ranked: Vec<(usize, Interval)> = cards
        .iter()
        .enumerate()
        .filter(|(_, c)| c.unranked_reason.is_none())
        .filter_map(|(i, c)| c.win.as_ref().map(|w| (i, w.adjusted_win_rate)))
        .collect();
    for (i, r) in competition_ranks(&ranked) {
        cards[i].rank = Some(r.rank);
        cards[i].rank_tied = r.tied;
        cards[i].rank_range = Some(r.range);
    }
    let ranked_beyond: Vec<(usize, Interval)> = cards
        .iter()
        .enumerate()
        .filter(|(_, c)| c.rank.is_some())
        .filter_map(|(i, c)| {
            c.beyond_behaviours
                .as_ref()
                .map(|w| (i, w.adjusted_win_rate))
        })
        .collect();
    for (i, r) in competition_ranks(&ranked_beyond) {
        cards[i].rank_beyond_behaviours = Some(r.rank);
        cards[i].rank_beyond_behaviours_tied = r.tied;
    }
    cards.sort_by(|a, b| match (a.rank, b.rank) {
        (Some(x), Some(y)) => x.cmp(&y).then(a.rep_id.cmp(&b.rep_id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.rep_id.cmp(&b.rep_id),
    });
    let mut warnings = warnings;
    let n_ranked = ranked.len();
    let all_tied = n_ranked > 1 && cards.iter().all(|c| c.rank.is_none_or(|r| r == 1));
    if all_tied {
        let why = if win.model.between_rep_sd == 0.0 {
            "the spread between reps beyond the deal mix is estimated at 0"
        } else {
            "their adjusted win rates are equal"
        };
        warnings.push(Warning {
            code: "reps_tied",
            text: format!(
                "reps do not differ more than chance would make them ({why}): all {n_ranked} ranked \
                 reps are tied at =1"
            ),
        });
    }
    if comparable && n_ranked == 0 && cards.iter().any(|c| c.closed > 0) {
        warnings.push(Warning {
            code: "no_rep_ranked",
            text: format!(
                "no rep has at least {MIN_RANKED_CLOSED} closed deals with {MIN_RANKED_WINS} wins and \
                 {MIN_RANKED_LOSSES} losses: no rep is ranked"
            ),
        });
    }

    let mut teams: BTreeMap<String, TeamSummary> = BTreeMap::new();
    let mut weighted: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for c in &cards {
        let name = c.team.clone().unwrap_or_else(|| "(no team)".into());
        let t = teams.entry(name.clone()).or_insert_with(|| TeamSummary {
            team: name.clone(),
            reps: 0,
            closed: 0,
            won: 0,
            win_rate: None,
            adjusted_win_rate: None,
        });
        t.reps += 1;
        t.closed += c.closed;
        t.won += c.won;
        if let Some(w) = &c.win {
            let e = weighted.entry(name).or_default();
            e.0 += w.adjusted_win_rate.estimate * c.closed as f64;
            e.1 += c.closed as f64;
        }
    }
    for (name, t) in teams.iter_mut() {
        t.win_rate = rate(t.closed, t.won);
        t.adjusted_win_rate = weighted
            .get(name)
            .filter(|(_, w)| *w > 0.0)
            .map(|(s, w)| s / w);
    }

    let behaviours = coached
        .iter()
        .map(|c| {
            let (n, yes) = c
                .by_rep
                .values()
                .fold((0, 0), |a, (n, y)| (a.0 + n, a.1 + y));
            CoachedBehaviour {
                behaviour: c.finding.behaviour.clone(),
                title: c.finding.title.clone(),
                landmark: c.finding.landmark.clone(),
                helps: c.helps,
                adoption: rate(n, yes),
                top_quartile: c.top_quartile,
                evidence: c.evidence.clone(),
            }
        })
        .collect();
    Ok(Scorecards {
        schema: SCHEMA,
        mean_win_rate: win.model.average_rep,
        win_model: win.model,
        beyond_behaviours_model: skill.map(|k| k.model),
        cycle_model: cycle.map(|c| c.model),
        size_model: size.map(|s| s.model),
        behaviours,
        teams: teams.into_values().collect(),
        ranking: RankingRule {
            comparable,
            min_closed: MIN_RANKED_CLOSED,
            min_wins: MIN_RANKED_WINS,
            min_losses: MIN_RANKED_LOSSES,
            tie_tolerance: TIE_TOLERANCE,
            ranked: n_ranked,
            all_tied,
        },
        warnings,
        reps: cards,
        caveat: CAVEAT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_matches_statsmodels() {
        // statsmodels 0.15.0:
        // combine_effects([0, 1, 2, 0.3, -0.4], [0.1, 0.1, 0.2, 0.05, 0.3], method_re="dl")
        // gives tau2 = 0.44764705882352945, mean_effect_re = 0.5831565624577129 and
        // sd_eff_w_re² = 0.11705457343104803.
        let p = pool(&[(0.0, 0.1), (1.0, 0.1), (2.0, 0.2), (0.3, 0.05), (-0.4, 0.3)]);
        assert!((p.tau2 - 0.447_647_058_823_529_45).abs() < 1e-12, "{p:?}");
        assert!((p.mu - 0.583_156_562_457_712_9).abs() < 1e-12, "{p:?}");
        assert!((p.mu_var - 0.117_054_573_431_048_03).abs() < 1e-12, "{p:?}");
    }

    #[test]
    fn pooling_matches_the_dersimonian_laird_formula() {
        // Three units; Q = Σ w (e − ē_w)², τ² = (Q − 2) / (Σw − Σw²/Σw), computed by hand.
        let p = pool(&[(0.0, 0.1), (1.0, 0.1), (2.0, 0.2)]);
        let w = [10.0, 10.0, 5.0];
        let e = [0.0, 1.0, 2.0];
        let sw: f64 = w.iter().sum();
        let fixed = (0.0 * 10.0 + 10.0 + 2.0 * 5.0) / sw;
        let q: f64 = w
            .iter()
            .zip(e)
            .map(|(w, e)| w * (e - fixed) * (e - fixed))
            .sum();
        let tau2 = (q - 2.0) / (sw - (100.0 + 100.0 + 25.0) / sw);
        assert!((p.tau2 - tau2).abs() < 1e-12, "{p:?} vs {tau2}");
        // Identical estimates: no spread, everything pulled to the centre.
        let same = pool(&[(0.5, 0.1), (0.5, 0.2), (0.5, 0.3)]);
        assert_eq!(same.tau2, 0.0);
        let (mean, var, shrink) = same.posterior(0.5, 0.1);
        assert!((mean - 0.5).abs() < 1e-12 && var > 0.0 && shrink == 1.0);
    }

    #[test]
    fn firth_rep_effect_is_finite_when_every_deal_was_won() {
        // Six deals at p = ½, all won: the Firth estimate solves 6 − 6p + ½ (1 − 2p) = 0, p = 13/14.
        let (d, v) = rep_log_odds(&[0.0; 6], &[1.0; 6]);
        let p: f64 = 13.0 / 14.0;
        assert!((d - (p / (1.0 - p)).ln()).abs() < 1e-9, "{d}");
        assert!((v - 1.0 / (6.0 * p * (1.0 - p))).abs() < 1e-9);
        // Half won: no shift.
        let (d, _) = rep_log_odds(&[0.0; 4], &[1.0, 0.0, 1.0, 0.0]);
        assert!(d.abs() < 1e-9);
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile(vec![0.0, 1.0, 2.0, 3.0, 4.0], 0.75), Some(3.0));
        assert_eq!(quantile(vec![0.0, 1.0], 0.75), Some(0.75));
        assert_eq!(quantile(Vec::new(), 0.5), None);
    }
}
