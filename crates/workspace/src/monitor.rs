//! `winsignal monitor drift`: whether the deals of recent windows still look like the deals a win model
//! was trained on, feature by feature, with the sample-size-aware test and alarm rule of
//! [`winsignal_stats::drift`].
//!
//! The training sample of a feature is its value at every landmark snapshot of the deals that trained
//! the model (closed before its `calibration_from`); a window's sample is its value at every landmark
//! snapshot taken in the window (of any deal), the windows running back from the end of the data.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;
use winsignal_core::time::MS_PER_DAY;
use winsignal_core::{Outcome, Ts};
use winsignal_features::snapshot;
use winsignal_stats::drift::{psi_test_clustered, Rule};
use winsignal_store::Store;

use crate::scoring::ModelReading;
use crate::Progress;

/// How many bins a feature's training values are cut into (deciles).
const BINS: usize = 10;

/// One feature in one window.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureDrift {
    pub feature: String,
    pub psi: f64,
    pub p_value: f64,
    pub alarm: bool,
    /// The share of the window's and the training values that are missing (undefined).
    pub missing_window: f64,
    pub missing_training: f64,
}

/// How much one term of the model moves the window's scores against the training snapshots: its mean
/// contribution (log-odds) in each, and the difference. The differences of all terms add up to the
/// shift of the mean log-odds: how much of the score moved because each feature moved.
#[derive(Debug, Clone, Serialize)]
pub struct ContributionShift {
    pub term: String,
    pub training: f64,
    pub window: f64,
    pub shift: f64,
}

/// One window: its span, how many snapshots it holds, its features (the largest PSI first), the score
/// distribution tested the same way, and the terms whose contributions moved most.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub from: Ts,
    pub until: Ts,
    pub snapshots: usize,
    pub alarms: Vec<String>,
    pub features: Vec<FeatureDrift>,
    /// P(win) of the window's snapshots against the training snapshots' (feature `p_win`); None for an
    /// empty window. Alarms by the features' rule.
    pub score: Option<FeatureDrift>,
    /// The shift of the mean log-odds: the sum of every term's `shift`.
    pub logit_shift: f64,
    /// The ten terms with the largest shifts, largest first.
    pub contributions: Vec<ContributionShift>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub model_id: String,
    pub training_snapshots: usize,
    /// Features compared (those with a value in training).
    pub features_tested: usize,
    pub alpha: f64,
    pub min_psi: f64,
    /// The most recent window first.
    pub windows: Vec<Window>,
    pub notes: Vec<String>,
}

/// The model `model_id` (the active one when `None`) with `catalog` (its own when `None`), the engine
/// over the store as it is now, and every landmark snapshot up to the end of the data: what both
/// monitors read.
pub(crate) fn model_snapshots<'s>(
    store: &'s dyn Store,
    catalog: Option<&Path>,
    model_id: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<(
    ModelReading<'s>,
    winsignal_features::Engine,
    Vec<snapshot::Snapshot>,
)> {
    let mut m = ModelReading::open(store, catalog, model_id)?;
    let entities = std::mem::take(&mut m.ctx);
    let checkpoint = std::mem::take(&mut m.checkpoint);
    let engine = crate::pipeline::replay_with(store, &*m.snapshot, entities, checkpoint, progress)?;
    let end = snapshot::horizon(&engine);
    let snaps = snapshot::snapshots(&engine, &m.catalog, end, &mut |d, t| {
        progress.phase("computing snapshots", d, t)
    });
    progress.finish();
    Ok((m, engine, snaps))
}

/// Compares `windows` windows of `window_days` days each, back from the end of the data, with the
/// training data of the model `model_id` (the active win model when `None`).
pub fn drift(
    store: &dyn Store,
    catalog: Option<&Path>,
    model_id: Option<&str>,
    window_days: u32,
    windows: usize,
    progress: &mut dyn Progress,
) -> Result<Drift> {
    if window_days == 0 || windows == 0 {
        bail!("give a window of at least one day and at least one window");
    }
    let (m, engine, snaps) = model_snapshots(store, catalog, model_id, progress)?;
    drift_of(&m, &engine, &snaps, window_days, windows)
}

/// [`drift`] of the model `m` read, over `engine` and its landmark snapshots `snaps`.
pub(crate) fn drift_of(
    m: &ModelReading<'_>,
    engine: &winsignal_features::Engine,
    snaps: &[snapshot::Snapshot],
    window_days: u32,
    windows: usize,
) -> Result<Drift> {
    let end = snapshot::horizon(engine);
    let ctx = engine.context();
    let trained_before = m.model.trained_on.calibration_from;
    let training: Vec<&snapshot::Snapshot> = snaps
        .iter()
        .filter(|s| {
            ctx.opportunity(&s.opportunity_id).is_some_and(|o| {
                let o = &ctx.opps[o as usize];
                o.outcome != Outcome::Open && o.closed.is_some_and(|c| c < trained_before)
            })
        })
        .collect();
    let names: Vec<&str> = m.catalog.behaviours.iter().map(|d| d.id.as_str()).collect();
    let column = |rows: &[&snapshot::Snapshot], k: usize| -> Vec<f64> {
        rows.iter()
            .map(|s| s.values.get(k).copied().unwrap_or(f64::NAN))
            .collect()
    };
    let missing = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().filter(|x| x.is_nan()).count() as f64 / v.len() as f64
        }
    };
    // A landmark snapshot's cluster: its deal's account (whose attributes every snapshot of its deals
    // shares), else the deal; a snapshot of an unknown deal is a cluster of its own. The test divides
    // by the samples' effective sizes (`psi_test_clustered`).
    let cluster = |i: usize, s: &snapshot::Snapshot| -> u64 {
        match ctx.opportunity(&s.opportunity_id) {
            Some(o) if ctx.opps[o as usize].account != winsignal_features::context::NONE => {
                u64::from(ctx.opps[o as usize].account)
            }
            Some(o) => (1 << 32) | u64::from(o),
            None => (2 << 32) | i as u64,
        }
    };
    let clusters = |rows: &[&snapshot::Snapshot]| -> Vec<u64> {
        rows.iter()
            .enumerate()
            .map(|(i, s)| cluster(i, s))
            .collect()
    };
    let training_clusters = clusters(&training);
    let reference: Vec<Vec<f64>> = (0..names.len()).map(|k| column(&training, k)).collect();
    let tested: Vec<usize> = (0..names.len())
        .filter(|&k| reference[k].iter().any(|v| !v.is_nan()))
        .collect();
    let rule = Rule::default();
    let mut notes = Vec::new();
    let split = &m.model.trained_on.split;
    if split.kind != winsignal_score::dataset::SplitKind::Time {
        notes.push(format!(
            "the model was not trained on the deals closed before a date (its holdout is {}), so which snapshots trained it cannot be told: drift is not measured",
            split.description
        ));
    } else if training.is_empty() {
        notes.push(format!(
            "no snapshot of a deal closed before {} (the model's training data) is in the workspace: drift is not measured",
            trained_before.to_date_string()
        ));
    }
    if !notes.is_empty() {
        return Ok(Drift {
            model_id: m.id.clone(),
            training_snapshots: 0,
            features_tested: 0,
            alpha: rule.alpha,
            min_psi: rule.min_psi,
            windows: Vec::new(),
            notes,
        });
    }
    let (training_p, training_contributions) =
        winsignal_score::model::probabilities_and_mean_contributions(
            &m.model,
            ctx,
            training.clone(),
        )?;
    let term_names: Vec<&str> = m
        .model
        .ebm
        .terms()
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let span = i64::from(window_days) * MS_PER_DAY;
    let mut out = Vec::with_capacity(windows);
    for w in 0..windows as i64 {
        let until = Ts(end.0 + 1 - w * span);
        let from = Ts(until.0 - span);
        let rows: Vec<&snapshot::Snapshot> = snaps
            .iter()
            .filter(|s| s.as_of >= from && s.as_of < until)
            .collect();
        let window_clusters = clusters(&rows);
        let mut features: Vec<FeatureDrift> = tested
            .iter()
            .filter_map(|&k| {
                let window = column(&rows, k);
                let t = psi_test_clustered(
                    &reference[k],
                    &training_clusters,
                    &window,
                    &window_clusters,
                    BINS,
                )?;
                Some(FeatureDrift {
                    feature: names[k].to_string(),
                    psi: t.psi,
                    p_value: t.p_value,
                    alarm: rule.alarms(&t, tested.len()),
                    missing_window: missing(&window),
                    missing_training: missing(&reference[k]),
                })
            })
            .collect();
        features.sort_by(|a, b| {
            b.psi
                .total_cmp(&a.psi)
                .then_with(|| a.feature.cmp(&b.feature))
        });
        let (window_p, window_contributions) =
            winsignal_score::model::probabilities_and_mean_contributions(
                &m.model,
                ctx,
                rows.clone(),
            )?;
        let score = psi_test_clustered(
            &training_p,
            &training_clusters,
            &window_p,
            &window_clusters,
            BINS,
        )
        .map(|t| FeatureDrift {
            feature: "p_win".into(),
            psi: t.psi,
            p_value: t.p_value,
            alarm: rule.alarms(&t, tested.len()),
            missing_window: 0.0,
            missing_training: 0.0,
        });
        let mut contributions: Vec<ContributionShift> = if rows.is_empty() {
            Vec::new()
        } else {
            term_names
                .iter()
                .zip(training_contributions.iter().zip(&window_contributions))
                .map(|(term, (t, w))| ContributionShift {
                    term: term.to_string(),
                    training: *t,
                    window: *w,
                    shift: w - t,
                })
                .collect()
        };
        let logit_shift = contributions.iter().map(|c| c.shift).sum();
        contributions.sort_by(|a, b| {
            b.shift
                .abs()
                .total_cmp(&a.shift.abs())
                .then_with(|| a.term.cmp(&b.term))
        });
        contributions.truncate(10);
        let mut alarms: Vec<String> = features
            .iter()
            .filter(|f| f.alarm)
            .map(|f| f.feature.clone())
            .collect();
        if score.as_ref().is_some_and(|s| s.alarm) {
            alarms.push("p_win".into());
        }
        if rows.is_empty() {
            notes.push(format!(
                "no snapshot was taken from {} to {}: that window is not compared",
                from.to_date_string(),
                until.to_date_string()
            ));
        }
        out.push(Window {
            from,
            until,
            snapshots: rows.len(),
            alarms,
            features,
            score,
            logit_shift,
            contributions,
        });
    }
    Ok(Drift {
        model_id: m.id.clone(),
        training_snapshots: training.len(),
        features_tested: tested.len(),
        alpha: rule.alpha,
        min_psi: rule.min_psi,
        windows: out,
        notes,
    })
}

/// How far the AUC estimated from probabilities alone may be from the realised AUC on the latest
/// holdout for the estimate to be trusted (the goal for the estimate before labels).
pub const ESTIMATE_TOLERANCE: f64 = 0.03;

/// At least this many won and this many lost snapshots before realised figures are given.
pub const MIN_OUTCOMES: usize = 10;

/// Realised figures of a set of closed deals' snapshots, with the estimate made from the probabilities
/// alone (as if the outcomes were not known yet).
#[derive(Debug, Clone, Serialize)]
pub struct Realised {
    pub deals: usize,
    pub snapshots: usize,
    /// None when fewer than [`MIN_OUTCOMES`] won or lost snapshots (see the notes).
    pub metrics: Option<winsignal_score::model::Metrics>,
    pub estimated_auc: Option<f64>,
    pub estimated_brier: Option<f64>,
}

/// The open deals now: the figures to expect once their outcomes arrive, if the model is calibrated.
#[derive(Debug, Clone, Serialize)]
pub struct Expected {
    pub as_of: Ts,
    pub deals: usize,
    pub estimated_auc: Option<f64>,
    pub estimated_brier: Option<f64>,
    /// The mean P(win): the share of the open deals expected to be won.
    pub expected_win_rate: Option<f64>,
}

/// What people said of the model's scores and actions: the review queue's decisions on its score
/// changes, and reps' feedback on its actions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HumanVerdicts {
    /// Review items on score changes of this model, and how many were decided each way.
    pub review_items: usize,
    pub accepted: usize,
    pub edited: usize,
    pub rejected: usize,
    /// Decisions (edits or rejections) whose reason code blames the model (`model_error`).
    pub model_error: usize,
    /// Feedback on this model's actions: done, and not relevant.
    pub actions_done: usize,
    pub actions_not_relevant: usize,
    /// Edited deals (of any model) that have closed since: how many, and the Brier score of the
    /// reviewers' corrected P(win) beside the model's P(win) they corrected, on those outcomes — whether
    /// the corrections were right. None when no edited deal has closed.
    pub edits_closed: usize,
    pub edits_reviewer_brier: Option<f64>,
    pub edits_model_brier: Option<f64>,
}

fn human_verdicts(
    read: &dyn winsignal_store::StoreRead,
    ctx: &winsignal_features::Context,
    model_id: &str,
) -> Result<HumanVerdicts> {
    let mut h = HumanVerdicts::default();
    let (mut reviewer, mut model) = (0.0, 0.0);
    for (deal, d) in crate::review::overrides(read)? {
        let outcome = ctx.opportunity(&deal).map(|o| ctx.opps[o as usize].outcome);
        let won = match outcome {
            Some(Outcome::Won) => 1.0,
            Some(Outcome::Lost) => 0.0,
            _ => continue,
        };
        let (Some(corrected), Some(p)) = (d.corrected_p_win, d.p_win) else {
            continue;
        };
        h.edits_closed += 1;
        reviewer += (corrected - won) * (corrected - won);
        model += (p - won) * (p - won);
    }
    if h.edits_closed > 0 {
        h.edits_reviewer_brier = Some(reviewer / h.edits_closed as f64);
        h.edits_model_brier = Some(model / h.edits_closed as f64);
    }
    for r in crate::review::queue(read)? {
        if r.item
            .change
            .as_ref()
            .is_none_or(|c| c.model_id != model_id)
        {
            continue;
        }
        h.review_items += 1;
        if let Some(d) = r.decision {
            match d.verdict {
                crate::review::Verdict::Accept => h.accepted += 1,
                crate::review::Verdict::Edit => h.edited += 1,
                crate::review::Verdict::Reject => h.rejected += 1,
            }
            if d.reason_code == "model_error" {
                h.model_error += 1;
            }
        }
    }
    for f in crate::feedback::list(read, None)? {
        if f.model_id == model_id {
            match f.verdict {
                crate::feedback::Verdict::Done => h.actions_done += 1,
                crate::feedback::Verdict::NotRelevant => h.actions_not_relevant += 1,
            }
        }
    }
    Ok(h)
}

/// How the win model does on outcomes, and what to expect of the deals still open.
#[derive(Debug, Clone, Serialize)]
pub struct Performance {
    pub model_id: String,
    /// The AUC of the model's holdout when it was trained, and the floor below which live AUC asks for
    /// a rollback (that AUC less the registry gate's tolerance).
    pub trained_auc: Option<f64>,
    pub auc_floor: Option<f64>,
    /// The latest holdout of the data as it is now (the registry's gate uses the same): realised
    /// figures beside the estimate from the probabilities alone, so the estimator's own error is seen.
    pub holdout: Realised,
    pub holdout_description: String,
    /// Deals closed after the model's training data ended (`trained_on.latest_close`): the outcomes
    /// that arrived since it was trained.
    pub since_training: Realised,
    pub since: Ts,
    /// Deals closed since the model was last made active (`activated_at`, the registry's record); None
    /// for a model never recorded as activated.
    pub since_activation: Option<Realised>,
    pub activated_at: Option<Ts>,
    /// The scores the live service served: for each closed deal, the last P(win) this model gave it in
    /// the score history (what reps saw before the outcome), against the outcome. None when the history
    /// holds no score of this model for a closed deal.
    pub served: Option<Realised>,
    pub open_now: Expected,
    /// Whether the estimate from probabilities alone came within [`ESTIMATE_TOLERANCE`] of the realised
    /// AUC on the latest holdout (false when either is undefined): only then is the estimate for the
    /// open deals worth reading.
    pub estimate_trusted: bool,
    /// The review queue's decisions on this model's score changes and reps' feedback on its actions.
    pub human: HumanVerdicts,
    /// The AUC the recommendation reads: on the deals closed since activation when it can be measured
    /// there, else since training (None when neither has enough outcomes).
    pub live_auc: Option<f64>,
    /// The model a rollback would restore, when live AUC is below the floor and this model is active
    /// with an earlier one to return to.
    pub rollback_to: Option<String>,
    /// Roll back, and to which model, when live AUC is below the floor with enough outcomes.
    pub recommendation: Option<String>,
    pub notes: Vec<String>,
}

fn realised(
    model: &winsignal_score::model::WinModel,
    ctx: &winsignal_features::Context,
    rows: Vec<&snapshot::Snapshot>,
    what: &str,
    notes: &mut Vec<String>,
) -> Result<Realised> {
    use winsignal_learn::metrics::{expected_auc, expected_brier};
    let mut deals: Vec<&str> = rows.iter().map(|s| s.opportunity_id.as_str()).collect();
    deals.sort_unstable();
    deals.dedup();
    let (deals, snapshots) = (deals.len(), rows.len());
    if rows.is_empty() {
        notes.push(format!("{what}: no deal closed, nothing to measure"));
        return Ok(Realised {
            deals,
            snapshots,
            metrics: None,
            estimated_auc: None,
            estimated_brier: None,
        });
    }
    let (p, won) = winsignal_score::model::probabilities(model, ctx, rows)?;
    let n_won = won.iter().filter(|w| **w).count();
    let enough = n_won >= MIN_OUTCOMES && won.len() - n_won >= MIN_OUTCOMES;
    if !enough {
        notes.push(format!(
            "{what}: {n_won} won and {} lost snapshots, fewer than {MIN_OUTCOMES} of each: no realised figures yet",
            won.len() - n_won
        ));
    }
    Ok(Realised {
        deals,
        snapshots,
        metrics: enough.then(|| winsignal_score::model::metrics(&p, &won)),
        estimated_auc: expected_auc(&p).ok(),
        estimated_brier: expected_brier(&p).ok(),
    })
}

/// The last P(win) model `model_id` served each deal now closed (the live score history), against the
/// outcomes.
fn served(
    read: &dyn winsignal_store::StoreRead,
    ctx: &winsignal_features::Context,
    model_id: &str,
    notes: &mut Vec<String>,
) -> Result<Option<Realised>> {
    use winsignal_learn::metrics::{expected_auc, expected_brier};
    let mut last: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for e in read.journal(
        crate::live::SCORE_HISTORY,
        &winsignal_store::JournalQuery::default(),
    )? {
        let c: crate::live::ScoreChange = serde_json::from_slice(&e.body).map_err(|err| {
            anyhow::anyhow!("score history entry {} cannot be read: {err}", e.seq)
        })?;
        if let (true, Some(p)) = (c.model_id == model_id, c.after) {
            last.insert(c.opportunity_id, p);
        }
    }
    let (mut p, mut won) = (Vec::new(), Vec::new());
    for (deal, score) in last {
        let outcome = ctx.opportunity(&deal).map(|o| ctx.opps[o as usize].outcome);
        match outcome {
            Some(Outcome::Won) => won.push(true),
            Some(Outcome::Lost) => won.push(false),
            _ => continue,
        }
        p.push(score);
    }
    if p.is_empty() {
        return Ok(None);
    }
    let n_won = won.iter().filter(|w| **w).count();
    let enough = n_won >= MIN_OUTCOMES && won.len() - n_won >= MIN_OUTCOMES;
    if !enough {
        notes.push(format!(
            "the scores the live service served: {n_won} won and {} lost deals, fewer than {MIN_OUTCOMES} of each: no realised figures yet",
            won.len() - n_won
        ));
    }
    Ok(Some(Realised {
        deals: p.len(),
        snapshots: p.len(),
        metrics: enough.then(|| winsignal_score::model::metrics(&p, &won)),
        estimated_auc: expected_auc(&p).ok(),
        estimated_brier: expected_brier(&p).ok(),
    }))
}

/// The model `model_id` (the active win model when `None`) on outcomes: its latest holdout (realised
/// and estimated), the deals closed since it was trained, and the estimate for the deals open now;
/// with a recommendation to roll back when live AUC falls below the gate's floor.
pub fn performance(
    store: &dyn Store,
    model_id: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<Performance> {
    let (m, engine, snaps) = model_snapshots(store, None, model_id, progress)?;
    performance_of(&m, &engine, &snaps)
}

/// [`performance`] of the model `m` read, over `engine` and its landmark snapshots `snaps`.
pub(crate) fn performance_of(
    m: &ModelReading<'_>,
    engine: &winsignal_features::Engine,
    snaps: &[snapshot::Snapshot],
) -> Result<Performance> {
    use winsignal_learn::metrics::{expected_auc, expected_brier};
    let registry = crate::registry::Registry::read(&*m.snapshot)?;
    let end = snapshot::horizon(engine);
    let ctx = engine.context();
    let model = &m.model;
    let mut notes = Vec::new();
    let (split, rows) =
        winsignal_score::model::latest_holdout(ctx, snaps, model.options.test_share)?;
    let holdout = realised(model, ctx, rows, "the latest holdout", &mut notes)?;
    let since = model.trained_on.latest_close;
    let after: Vec<&snapshot::Snapshot> = if model.trained_on.split.kind
        == winsignal_score::dataset::SplitKind::Time
    {
        snaps
            .iter()
            .filter(|s| s.outcome != Outcome::Open)
            .filter(|s| {
                ctx.opportunity(&s.opportunity_id).is_some_and(|o| {
                    winsignal_score::dataset::ordered_by(&ctx.opps[o as usize]) > since
                })
            })
            .collect()
    } else {
        notes.push(format!(
            "the model's holdout is {}, not by close date: which deals closed after its data cannot be told",
            model.trained_on.split.description
        ));
        Vec::new()
    };
    let time_split = model.trained_on.split.kind == winsignal_score::dataset::SplitKind::Time;
    let mut since_notes = Vec::new();
    let since_training = realised(
        model,
        ctx,
        after,
        &format!("deals closed after {}", since.to_date_string()),
        &mut since_notes,
    )?;
    if time_split {
        notes.append(&mut since_notes);
    }
    // The estimate assumes calibrated probabilities: where the holdout shows it missing the realised
    // AUC, it is not to be trusted for the open deals either.
    let estimate_trusted = match (
        holdout.metrics.as_ref().and_then(|m| m.auc),
        holdout.estimated_auc,
    ) {
        (Some(real), Some(est)) if (real - est).abs() > ESTIMATE_TOLERANCE => {
            notes.push(format!(
                "on the latest holdout the AUC estimated from the probabilities alone was {est:.3} against the realised {real:.3} (calibration slope {}): the model's probabilities are not calibrated well enough for the estimate before outcomes to be trusted",
                holdout
                    .metrics
                    .as_ref()
                    .and_then(|m| m.calibration_slope)
                    .map_or("undefined".to_string(), |s| format!("{s:.2}"))
            ));
            false
        }
        (Some(_), Some(_)) => true,
        _ => false,
    };
    // The deals closed since the model was last made active (in the registry's time: for a workspace
    // fed live, the same clock as the deals'; an export's deals all closed before).
    let activated_at = registry.last_activation_of(&m.id).map(|t| t.at);
    let since_activation = match activated_at {
        Some(at) => {
            let rows: Vec<&snapshot::Snapshot> = snaps
                .iter()
                .filter(|s| s.outcome != Outcome::Open)
                .filter(|s| {
                    ctx.opportunity(&s.opportunity_id)
                        .is_some_and(|o| ctx.opps[o as usize].closed.is_some_and(|c| c >= at))
                })
                .collect();
            Some(realised(
                model,
                ctx,
                rows,
                &format!(
                    "deals closed since the model was made active ({})",
                    at.to_rfc3339()
                ),
                &mut notes,
            )?)
        }
        None => None,
    };
    let served = served(&*m.snapshot, ctx, &m.id, &mut notes)?;
    let as_of = end.plus_millis(1);
    let open = winsignal_score::dataset::open_snapshots(engine, &m.catalog, as_of);
    let (p, _) = if open.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        winsignal_score::model::probabilities(model, ctx, open.iter().collect())?
    };
    let open_now = Expected {
        as_of,
        deals: p.len(),
        estimated_auc: expected_auc(&p).ok(),
        estimated_brier: expected_brier(&p).ok(),
        expected_win_rate: (!p.is_empty()).then(|| p.iter().sum::<f64>() / p.len() as f64),
    };
    let trained_auc = model.evaluation.model.auc;
    let auc_floor = trained_auc.map(|a| a - crate::registry::TOLERANCES.auc_drop);
    // Live AUC: since activation when it can be measured there, else since training.
    let live_auc = since_activation
        .as_ref()
        .and_then(|r| r.metrics.as_ref())
        .or(since_training.metrics.as_ref())
        .and_then(|x| x.auc);
    let below_floor = matches!((live_auc, auc_floor), (Some(live), Some(floor)) if live < floor);
    // A rollback restores the model active before this one, if this one is active now.
    let rollback_to = registry
        .last_activation_of(&m.id)
        .and_then(|t| t.previous.clone())
        .filter(|_| below_floor && registry.active.as_deref() == Some(m.id.as_str()));
    let recommendation = match (live_auc, auc_floor) {
        (Some(live), Some(floor)) if live < floor => {
            Some(match &rollback_to {
                Some(p) => format!(
                    "live AUC (on the deals closed since activation, or else since training) is {live:.3}, below the floor {floor:.3} (the holdout's {:.3} less {}): consider `winsignal models rollback` (to {p}) or retraining",
                    trained_auc.unwrap_or(f64::NAN),
                    crate::registry::TOLERANCES.auc_drop
                ),
                _ => format!(
                    "live AUC (on the deals closed since activation, or else since training) is {live:.3}, below the floor {floor:.3}: retrain, and activate the new model if it passes the gate"
                ),
            })
        }
        _ => None,
    };
    Ok(Performance {
        model_id: m.id.clone(),
        trained_auc,
        auc_floor,
        holdout,
        holdout_description: split.info.description.clone(),
        since_training,
        since,
        since_activation,
        activated_at,
        served,
        open_now,
        estimate_trusted,
        human: human_verdicts(&*m.snapshot, ctx, &m.id)?,
        live_auc,
        rollback_to,
        recommendation,
        notes,
    })
}
