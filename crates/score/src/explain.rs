//! Per-deal scores: P(win) with its exact additive explanation, the expected close window, next-best
//! actions ranked by the model's uplift for this deal, and coaching prompts built from the evidence;
//! and [`rank_by_risk`], the one rule that orders open deals "most at risk" first.

use crate::dataset::{self, ColumnSource};
use crate::model::WinModel;
use crate::{Error, Result};
use serde::Serialize;
use winsignal_core::parallel::{share_out, ITEMS_PER_THREAD};
use winsignal_core::time::MS_PER_DAY;
use winsignal_core::Ts;
use winsignal_features::catalog::{Catalog, Reads};
use winsignal_features::context::NONE;
use winsignal_features::eval::View;
use winsignal_features::snapshot::{ControlValue, Snapshot};
use winsignal_features::Engine;
use winsignal_learn::sigmoid;
use winsignal_learn::Value;

/// One term's share of a deal's score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    /// The model term (a column, or `a × b` for a pair).
    pub term: String,
    /// The term's position in the model: adding the factors' `logit`s to the intercept in this order
    /// gives the deal's `logit` bit for bit.
    pub term_index: usize,
    /// The deal's value(s) in words, e.g. `yes (2)`, `Enterprise`, `34 days`.
    pub value: String,
    /// Exact contribution to the logit (the logits of the factors and the intercept add up to the
    /// deal's logit).
    pub logit: f64,
    /// What the factor moves P(win) by, in percentage points: the probability with every factor minus
    /// the probability with this one at the average deal's (zero) contribution.
    pub points: f64,
    /// A sentence such as `Executive engaged: yes (2) → +9 pts`.
    pub text: String,
}

/// Evidence behind an action, from discovery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub landmark: String,
    pub odds_ratio: f64,
    pub low: f64,
    pub high: f64,
    pub q: f64,
    pub win_rate_with: Option<f64>,
    pub win_rate_without: Option<f64>,
    pub n_with: usize,
    pub n_without: usize,
}

/// A concrete person to act with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub contact_id: String,
    pub title: Option<String>,
    pub seniority: String,
}

/// A behaviour the deal lacks, with a significant positive effect at its stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    pub behaviour: String,
    pub version: u32,
    pub title: String,
    /// P(win) with the behaviour done (its typical measure among deals that do it) minus P(win) now, in
    /// percentage points, from the model for this deal.
    pub uplift_points: f64,
    pub evidence: Evidence,
    /// People at the account the behaviour could involve who are not yet engaged on the deal, most
    /// senior first (empty when the behaviour is not about people).
    pub targets: Vec<Target>,
    /// A coaching prompt built from the evidence.
    pub coaching: String,
}

/// The expected close window of a deal, if it is won.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloseWindow {
    pub stage: String,
    /// Quartiles of the close date among won deals that had spent as long in this stage.
    pub early: Ts,
    pub median: Ts,
    pub late: Ts,
    /// P(won by the end of 30, 60 and 90 days from the score date).
    pub p_won_by: Vec<(u32, f64)>,
    /// How many won deals the stage's close times come from.
    pub won_deals: usize,
}

/// One scored deal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DealScore {
    pub opportunity_id: String,
    pub account_id: Option<String>,
    pub rep_id: Option<String>,
    pub as_of: Ts,
    pub stage: Option<String>,
    pub age_days: f64,
    /// Days from the deal's last activity, stage entry or creation to `as_of`
    /// ([`Engine::last_activity`]): how long it has been idle.
    pub idle_days: f64,
    pub amount: Option<f64>,
    pub p_win: f64,
    pub logit: f64,
    pub intercept: f64,
    /// Every term's contribution, largest magnitude first.
    pub factors: Vec<Factor>,
    pub close: Option<CloseWindow>,
    pub actions: Vec<Action>,
}

/// For each deal of `snaps` (in their order): P(win) if it did `behaviour` (at the measure typical of
/// deals that do it, as next-best actions are priced) minus P(win) now, from the model — `None` for a
/// deal that already does it or whose measure is unknown. An error when the behaviour is not a yes/no
/// behaviour of the model.
pub fn uplifts(
    model: &WinModel,
    catalog: &Catalog,
    engine: &Engine,
    snaps: &[Snapshot],
    behaviour: &str,
) -> Result<Vec<Option<f64>>> {
    check_catalog(model, catalog)?;
    let flag = catalog
        .behaviours
        .iter()
        .filter(|d| d.is_behaviour())
        .position(|d| d.id == behaviour);
    let (Some(flag), Some(&present), Some(at)) = (
        flag,
        model.present_values.get(behaviour),
        model
            .ebm
            .features()
            .iter()
            .position(|c| c.name == behaviour),
    ) else {
        let known: Vec<&str> = model.present_values.keys().map(String::as_str).collect();
        return Err(Error::Mismatch(format!(
            "behaviour {behaviour:?} is not a yes/no behaviour of the win model; it has: {}",
            known.join(", ")
        )));
    };
    let table = dataset::table(engine.context(), &model.columns, snaps.iter().collect())?;
    let learn = |e: winsignal_learn::Error| Error::Learn(e.to_string());
    let mut out = Vec::with_capacity(snaps.len());
    for (row, s) in snaps.iter().enumerate() {
        if s.flags.get(flag).copied().flatten() != Some(false) {
            out.push(None);
            continue;
        }
        let mut values = row_values(model, &table, row);
        let now = model.ebm.score_values(&values).map_err(learn)?.probability;
        values[at] = Value::Number(present);
        let done = model.ebm.score_values(&values).map_err(learn)?.probability;
        out.push(Some(done - now));
    }
    Ok(out)
}

/// Row `row` of `table` as the model's features read it, in their order (missing where the table has
/// no such column).
fn row_values<'t>(model: &WinModel, table: &'t dataset::Table<'_>, row: usize) -> Vec<Value<'t>> {
    model
        .ebm
        .features()
        .iter()
        .map(|f| {
            table
                .data
                .feature(&f.name)
                .map_or(Value::Missing, |c| c.values.value(row))
        })
        .collect()
}

/// A deal's P(win) and every term's exact contribution, without the words: what telling whether a
/// deal's score moved needs. [`score`] adds the explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub opportunity_id: String,
    pub account_id: Option<String>,
    pub rep_id: Option<String>,
    pub as_of: Ts,
    pub stage: Option<String>,
    pub age_days: f64,
    /// As [`DealScore::idle_days`].
    pub idle_days: f64,
    pub amount: Option<f64>,
    pub p_win: f64,
    pub logit: f64,
    /// Each model term's contribution to the logit, in the model's term order.
    pub contributions: Vec<f64>,
}

impl Assessment {
    /// Whether `other` has the same P(win) and every term's contribution the same, to the bit.
    pub fn same_score(&self, other: &Assessment) -> bool {
        self.p_win.to_bits() == other.p_win.to_bits()
            && self.contributions.len() == other.contributions.len()
            && self
                .contributions
                .iter()
                .zip(&other.contributions)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

/// P(win) and the terms' contributions of the open deals of `snaps` (as [`score`] computes them,
/// without the explanation), in their order; the deals are shared out among the machine's cores when
/// there are enough of them (each deal's score is its own).
pub fn assess(
    model: &WinModel,
    catalog: &Catalog,
    engine: &Engine,
    snaps: &[Snapshot],
) -> Result<Vec<Assessment>> {
    check_catalog(model, catalog)?;
    let table = dataset::table(engine.context(), &model.columns, snaps.iter().collect())?;
    let mut rows: Vec<usize> = (0..snaps.len()).collect();
    share_out(&mut rows, ITEMS_PER_THREAD, |&mut row| {
        assessment(
            model,
            engine,
            &table,
            row,
            &snaps[row],
            &row_values(model, &table, row),
        )
    })
    .into_iter()
    .collect()
}

/// Row `row` of `table` (the deal `s`) scored.
fn assessment(
    model: &WinModel,
    engine: &Engine,
    table: &dataset::Table<'_>,
    row: usize,
    s: &Snapshot,
    values: &[Value<'_>],
) -> Result<Assessment> {
    let scored = model
        .ebm
        .score_values(values)
        .map_err(|e| Error::Learn(e.to_string()))?;
    Ok(Assessment {
        opportunity_id: s.opportunity_id.clone(),
        account_id: s.account_id.clone(),
        rep_id: s.rep_id.clone(),
        as_of: s.as_of,
        stage: table.rows[row].stage.clone(),
        age_days: s.age_days,
        idle_days: engine
            .context()
            .opportunity(&s.opportunity_id)
            .map_or(0.0, |o| {
                let last = engine.last_activity(o, s.as_of);
                ((s.as_of.0 - last.0) as f64 / MS_PER_DAY as f64).max(0.0)
            }),
        amount: s.amount,
        p_win: scored.probability,
        logit: scored.logit,
        contributions: scored.contributions,
    })
}

/// Scores the open deals of `snaps` (snapshots as of one date, from [`dataset::open_snapshots`]).
pub fn score(
    model: &WinModel,
    catalog: &Catalog,
    engine: &Engine,
    snaps: &[Snapshot],
) -> Result<Vec<DealScore>> {
    check_catalog(model, catalog)?;
    let table = dataset::table(engine.context(), &model.columns, snaps.iter().collect())?;
    let titles: Vec<String> = model
        .ebm
        .terms()
        .iter()
        .map(|t| title_of(catalog, &t.name))
        .collect();
    let mut out = Vec::with_capacity(snaps.len());
    for (row, s) in snaps.iter().enumerate() {
        let values = row_values(model, &table, row);
        let a = assessment(model, engine, &table, row, s, &values)?;
        let mut factors: Vec<Factor> = model
            .ebm
            .terms()
            .iter()
            .zip(&a.contributions)
            .enumerate()
            .map(|(term_index, (t, c))| {
                let value = t
                    .features
                    .iter()
                    .map(|f| {
                        describe(
                            model,
                            catalog,
                            s,
                            &model.ebm.features()[*f].name,
                            values[*f],
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" and ");
                let points = 100.0 * (a.p_win - sigmoid(a.logit - c));
                let title = &titles[term_index];
                Factor {
                    text: format!("{title}: {value} → {points:+.0} pts"),
                    term: t.name.clone(),
                    term_index,
                    value,
                    logit: *c,
                    points,
                }
            })
            .collect();
        factors.sort_by(|a, b| {
            b.logit
                .abs()
                .total_cmp(&a.logit.abs())
                .then(a.term.cmp(&b.term))
        });
        let stage = a.stage.as_deref();
        let actions = actions(model, catalog, engine, s, stage, &values, a.p_win)?;
        let close = close_window(model, engine, s, stage, a.p_win);
        out.push(DealScore {
            opportunity_id: a.opportunity_id,
            account_id: a.account_id,
            rep_id: a.rep_id,
            as_of: a.as_of,
            stage: a.stage,
            age_days: a.age_days,
            idle_days: a.idle_days,
            amount: a.amount,
            p_win: a.p_win,
            logit: a.logit,
            intercept: model.ebm.intercept(),
            factors,
            close,
            actions,
        });
    }
    Ok(out)
}

/// Refuses to score with a catalog whose definitions differ from the model's.
/// What "most at risk" is measured by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskBasis {
    /// Amount × P(loss): the money expected to be lost.
    AmountAtRisk,
    /// P(loss) = 1 − P(win) alone: too few open deals have an amount to weigh them by it.
    PLoss,
}

impl RiskBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskBasis::AmountAtRisk => "amount_at_risk",
            RiskBasis::PLoss => "p_loss",
        }
    }
}

/// One open deal in risk order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskedDeal {
    /// The deal's position in the scored deals given to [`rank_by_risk`].
    #[serde(skip)]
    pub index: usize,
    pub opportunity_id: String,
    /// 1 − P(win).
    pub p_loss: f64,
    /// The amount the ranking used: the deal's own, the median when `amount_imputed`, none when the
    /// basis is `p_loss`.
    pub amount_used: Option<f64>,
    pub amount_imputed: bool,
    /// `amount_used` × `p_loss` (none when the basis is `p_loss`).
    pub amount_at_risk: Option<f64>,
}

/// The open deals, most at risk first, and the rule that ordered them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiskRanking {
    pub basis: RiskBasis,
    pub open_deals: usize,
    /// Open deals with an amount (positive and finite).
    pub with_amount: usize,
    /// The amount given to deals without one when the basis is `amount_at_risk` (the median of the
    /// open deals' amounts); none when every deal has one or the basis is `p_loss`.
    pub missing_amount_valued_at: Option<f64>,
    /// The rule in words, as the outputs print it ("the 15 most at risk (amount × chance of losing)").
    pub note: String,
    pub deals: Vec<RiskedDeal>,
}

/// Orders open deals most at risk first, by one rule:
/// - every open deal has an amount (positive, finite): by amount × P(loss), the money expected to be
///   lost (`amount_at_risk`);
/// - at least half have one: the same, with the others valued at the median amount of those that have
///   one (so among them the order is by P(loss));
/// - fewer than half have one (or none): by P(loss) = 1 − P(win) alone (`p_loss`), since weighing a
///   few deals by amount would rank the rest by nothing.
///
/// Ties go to the higher P(loss), then the larger amount, then the opportunity id; the id never orders
/// deals that differ in risk.
pub fn rank_by_risk(scored: &[DealScore]) -> RiskRanking {
    let amount = |d: &DealScore| d.amount.filter(|a| a.is_finite() && *a > 0.0);
    let mut amounts: Vec<f64> = scored.iter().filter_map(amount).collect();
    let (open_deals, with_amount) = (scored.len(), amounts.len());
    let basis = if 2 * with_amount >= open_deals {
        RiskBasis::AmountAtRisk
    } else {
        RiskBasis::PLoss
    };
    let valued_at = (basis == RiskBasis::AmountAtRisk && with_amount < open_deals).then(|| {
        amounts.sort_by(f64::total_cmp);
        let m = amounts.len() / 2;
        if amounts.len() % 2 == 1 {
            amounts[m]
        } else {
            0.5 * (amounts[m - 1] + amounts[m])
        }
    });
    let mut deals: Vec<RiskedDeal> = scored
        .iter()
        .enumerate()
        .map(|(index, d)| {
            let p_loss = 1.0 - d.p_win;
            let (amount_used, amount_imputed) = match basis {
                RiskBasis::PLoss => (None, false),
                RiskBasis::AmountAtRisk => match amount(d) {
                    Some(a) => (Some(a), false),
                    None => (valued_at, true),
                },
            };
            RiskedDeal {
                index,
                opportunity_id: d.opportunity_id.clone(),
                p_loss,
                amount_used,
                amount_imputed,
                amount_at_risk: amount_used.map(|a| a * p_loss),
            }
        })
        .collect();
    let own_amount = |r: &RiskedDeal| amount(&scored[r.index]).unwrap_or(0.0);
    deals.sort_by(|a, b| {
        let risk = |r: &RiskedDeal| r.amount_at_risk.unwrap_or(r.p_loss);
        risk(b)
            .total_cmp(&risk(a))
            .then(b.p_loss.total_cmp(&a.p_loss))
            .then(own_amount(b).total_cmp(&own_amount(a)))
            .then(a.opportunity_id.cmp(&b.opportunity_id))
    });
    let without = open_deals - with_amount;
    let note = match (basis, valued_at) {
        (RiskBasis::PLoss, _) if with_amount == 0 => {
            "chance of losing, 1 − P(win), alone: no open deal has an amount".to_string()
        }
        (RiskBasis::PLoss, _) => format!(
            "chance of losing, 1 − P(win), alone: only {with_amount} of {open_deals} open deals \
             have an amount"
        ),
        (RiskBasis::AmountAtRisk, Some(v)) => format!(
            "amount × chance of losing; the {without} of {open_deals} open deals without an amount \
             valued at the median amount, {v:.0}"
        ),
        (RiskBasis::AmountAtRisk, None) => "amount × chance of losing".to_string(),
    };
    RiskRanking {
        basis,
        open_deals,
        with_amount,
        missing_amount_valued_at: valued_at,
        note,
        deals,
    }
}

fn check_catalog(model: &WinModel, catalog: &Catalog) -> Result<()> {
    for c in &model.columns {
        if let ColumnSource::Definition { id, version, index } = &c.source {
            let here = catalog.behaviours.get(*index);
            if here.is_none_or(|d| d.id != *id || d.version != *version) {
                let remedy = if model.catalog_toml.is_some() {
                    "leave out --catalog to score with the catalog the model was trained with (it is kept in the model), or train again with this one".to_string()
                } else {
                    format!(
                        "pass the catalog the model was trained with, {:?}, with --catalog FILE, or train again with this one",
                        model.trained_on.catalog
                    )
                };
                return Err(Error::Mismatch(format!(
                    "the model was trained with {id}@{version} as definition {index}, which catalog {:?} does not have there: {remedy}",
                    catalog.name
                )));
            }
        }
    }
    Ok(())
}

fn title_of(catalog: &Catalog, name: &str) -> String {
    name.split(" × ")
        .map(|n| {
            catalog
                .behaviours
                .iter()
                .find(|d| d.id == n)
                .map_or_else(|| n.replace('_', " "), |d| d.title.clone())
        })
        .collect::<Vec<_>>()
        .join(" × ")
}

fn describe(model: &WinModel, catalog: &Catalog, s: &Snapshot, name: &str, v: Value<'_>) -> String {
    let column = model.columns.iter().find(|c| c.name == name);
    let number = |x: f64| {
        if x.fract() == 0.0 && x.abs() < 1e9 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    };
    match (column.map(|c| &c.source), v) {
        (_, Value::Missing) => "unknown".into(),
        (Some(ColumnSource::Definition { index, .. }), Value::Number(x)) => {
            match catalog.behaviours.get(*index).and_then(|d| d.threshold) {
                Some(t) => match t.test(x) {
                    Some(true) => format!("yes ({})", number(x)),
                    _ => format!("no ({})", number(x)),
                },
                None => number(x),
            }
        }
        (Some(ColumnSource::Age), Value::Number(x)) => format!("{x:.0} days"),
        (Some(ColumnSource::Control { index, .. }), Value::Number(x)) => {
            // Log controls read better as the amount itself.
            let raw = s.controls.get(*index);
            match (name.starts_with("log_"), raw) {
                (true, Some(ControlValue::Number(l))) => number(l.exp_m1().round()),
                _ => number(x),
            }
        }
        (_, Value::Number(x)) => number(x),
        (_, Value::Category(c)) => c.to_string(),
    }
}

fn actions(
    model: &WinModel,
    catalog: &Catalog,
    engine: &Engine,
    s: &Snapshot,
    stage: Option<&str>,
    values: &[Value<'_>],
    p_now: f64,
) -> Result<Vec<Action>> {
    let Some(stage) = stage else {
        return Ok(Vec::new());
    };
    let landmark = format!("stage:{stage}");
    let mut flag = 0;
    let mut out = Vec::new();
    for d in &catalog.behaviours {
        if !d.is_behaviour() {
            continue;
        }
        let this_flag = flag;
        flag += 1;
        // Only behaviours the deal lacks...
        if s.flags.get(this_flag).copied().flatten() != Some(false) {
            continue;
        }
        // ...with a significant positive adjusted effect on winning at the deal's stage...
        let Some(e) = model.evidence.iter().find(|e| {
            e.landmark == landmark
                && e.behaviour == d.id
                && e.version == d.version
                && e.odds_ratio > 1.0
                && e.low > 1.0
        }) else {
            continue;
        };
        // ...ranked by the model's uplift for this deal.
        let Some(&present) = model.present_values.get(&d.id) else {
            continue;
        };
        let Some(at) = model.ebm.features().iter().position(|c| c.name == d.id) else {
            continue;
        };
        let mut done = values.to_vec();
        done[at] = Value::Number(present);
        let p_done = model
            .ebm
            .score_values(&done)
            .map_err(|e| Error::Learn(e.to_string()))?
            .probability;
        let evidence = Evidence {
            landmark: landmark.clone(),
            odds_ratio: e.odds_ratio,
            low: e.low,
            high: e.high,
            q: e.q,
            win_rate_with: e.win_rate_with,
            win_rate_without: e.win_rate_without,
            n_with: e.n_with,
            n_without: e.n_without,
        };
        let targets = targets(engine, d, s);
        let coaching = coaching(&d.title, stage, &evidence, &targets);
        out.push(Action {
            behaviour: d.id.clone(),
            version: d.version,
            title: d.title.clone(),
            uplift_points: 100.0 * (p_done - p_now),
            evidence,
            targets,
            coaching,
        });
    }
    out.sort_by(|a, b| {
        b.uplift_points
            .total_cmp(&a.uplift_points)
            .then(a.behaviour.cmp(&b.behaviour))
    });
    Ok(out)
}

/// Contacts at the deal's account that the behaviour is about and who are not engaged on the deal yet:
/// for a behaviour that reads activities with contacts of given seniorities, those seniorities; for one
/// about people in general (activities without a seniority filter, the graph), anyone, most senior first.
fn targets(engine: &Engine, d: &winsignal_features::Definition, s: &Snapshot) -> Vec<Target> {
    let ctx = engine.context();
    let seniorities = match &d.reads {
        Reads::Activities { filter, .. } => filter.seniority.clone(),
        Reads::Graph => Vec::new(),
        _ => return Vec::new(),
    };
    let Some(opp) = ctx.opportunity(&s.opportunity_id) else {
        return Vec::new();
    };
    let account = ctx.opps[opp as usize].account;
    if account == NONE {
        return Vec::new();
    }
    let engaged = View::new(engine, opp, s.as_of.0).engaged_contacts();
    let mut out: Vec<(usize, &str, Target)> = ctx.accounts[account as usize]
        .contacts
        .iter()
        .filter(|c| engaged.binary_search(c).is_err())
        .filter_map(|c| ctx.contacts.get(*c as usize))
        .filter(|c| seniorities.is_empty() || seniorities.contains(&c.seniority))
        .map(|c| {
            let rank = winsignal_features::seniority::Seniority::ALL
                .iter()
                .position(|x| *x == c.seniority)
                .unwrap_or(usize::MAX);
            (
                rank,
                c.id.as_str(),
                Target {
                    contact_id: c.id.clone(),
                    title: c.title.clone(),
                    seniority: c.seniority.as_str().to_string(),
                },
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    out.into_iter().take(3).map(|(_, _, t)| t).collect()
}

/// A coaching prompt from the evidence: what deals like this one that did it won, never more.
fn coaching(title: &str, stage: &str, e: &Evidence, targets: &[Target]) -> String {
    let rates = match (e.win_rate_with, e.win_rate_without) {
        (Some(a), Some(b)) => format!(
            " won {:.0} % of the time against {:.0} % without it (n = {} / {})",
            100.0 * a,
            100.0 * b,
            e.n_with,
            e.n_without
        ),
        _ => String::new(),
    };
    let who = match targets.first() {
        Some(t) => format!(
            " Start with {}{}.",
            t.contact_id,
            t.title
                .as_ref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        ),
        None => String::new(),
    };
    format!(
        "{title} is missing. Deals that had it on entering {stage}{rates}; adjusted for deal mix, the odds of winning were {:.1}× (95 % CI {:.1}–{:.1}). An association in past deals, not a guarantee.{who}",
        e.odds_ratio, e.low, e.high
    )
}

/// The close window if the deal is won: the remaining days of won deals that had spent at least as
/// long in the stage, and P(won by 30/60/90 days) = P(win) × P(closing by then | won).
fn close_window(
    model: &WinModel,
    engine: &Engine,
    s: &Snapshot,
    stage: Option<&str>,
    p_win: f64,
) -> Option<CloseWindow> {
    let stage = stage?;
    let times = model.close_times.iter().find(|c| c.stage == stage)?;
    let opp = engine.context().opportunity(&s.opportunity_id)?;
    let entered = engine.context().opps[opp as usize]
        .stages
        .iter()
        .rev()
        .find(|(t, st)| st == stage && *t <= s.as_of)?
        .0;
    let elapsed = (s.as_of.0 - entered.0) as f64 / MS_PER_DAY as f64;
    let remaining: Vec<f64> = times
        .percentiles
        .iter()
        .filter(|d| **d >= elapsed)
        .map(|d| d - elapsed)
        .collect();
    if remaining.len() < 5 {
        return None;
    }
    let q = |p: f64| remaining[((remaining.len() - 1) as f64 * p).round() as usize];
    let date = |days: f64| Ts(s.as_of.0 + (days * MS_PER_DAY as f64) as i64);
    let share_by = |days: f64| {
        remaining.iter().filter(|d| **d <= days).count() as f64 / remaining.len() as f64
    };
    Some(CloseWindow {
        stage: stage.to_string(),
        early: date(q(0.25)),
        median: date(q(0.5)),
        late: date(q(0.75)),
        p_won_by: [30u32, 60, 90]
            .iter()
            .map(|d| (*d, p_win * share_by(*d as f64)))
            .collect(),
        won_deals: times.won_deals,
    })
}
