//! The win model: an explainable boosting machine on closed deals at their landmarks, trained before a
//! time cutoff, calibrated on the most recent part of the training period when it needs it, evaluated
//! on the deals closed after the cutoff against two baselines (stage-only win rates and a regularised
//! logistic regression), and saved as a versioned artifact with everything needed to score and explain.

use crate::dataset::{self, Column, Excluded, Split, Table};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use winsignal_core::time::MS_PER_DAY;
use winsignal_core::{Outcome, Ts};
use winsignal_features::catalog::Catalog;
use winsignal_features::snapshot::{Snapshot, Timing};
use winsignal_features::Context;
use winsignal_learn::metrics::{self, ReliabilityBin};
use winsignal_learn::{ebm, logreg, sigmoid, Calibration, Ebm, EbmParams, LogRegParams};

/// The artifact's schema version (bumped on incompatible change).
pub const SCHEMA: u32 = 1;

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Share of the closed deals (the latest to close) held out for evaluation.
    pub test_share: f64,
    /// Share of the training deals (the latest to close before the cutoff) used to check and correct
    /// calibration.
    pub calibration_share: f64,
    pub ebm: EbmParams,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            test_share: 0.2,
            calibration_share: 0.2,
            ebm: EbmParams::default(),
        }
    }
}

/// Accuracy of probabilities on a set of rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: usize,
    pub won: usize,
    pub auc: Option<f64>,
    pub brier: f64,
    pub log_loss: f64,
    /// Logistic regression of the outcome on the logit of the prediction: 1 and 0 when calibrated.
    pub calibration_slope: Option<f64>,
    pub calibration_intercept: Option<f64>,
    /// The intercept with the slope fixed at 1 ("calibration in the large"): 0 when the average
    /// prediction equals the win rate.
    pub calibration_in_the_large: Option<f64>,
}

fn measure(p: &[f64], y: &[bool]) -> Metrics {
    let cal = metrics::calibration_slope_intercept(p, y).ok();
    Metrics {
        rows: p.len(),
        won: y.iter().filter(|w| **w).count(),
        auc: metrics::auc(p, y).ok(),
        brier: metrics::brier(p, y).unwrap_or(f64::NAN),
        log_loss: metrics::log_loss(p, y).unwrap_or(f64::NAN),
        calibration_slope: cal.as_ref().map(|c| c.slope),
        calibration_intercept: cal.as_ref().map(|c| c.intercept),
        calibration_in_the_large: cal.as_ref().map(|c| c.intercept_in_the_large),
    }
}

/// The evaluation on the holdout: the model and its baselines on the same rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The saved model (calibrated when calibration was needed).
    pub model: Metrics,
    /// The boosting machine before calibration.
    pub uncalibrated: Metrics,
    /// Win rate of the stage the deal was in, from the training deals: what most teams use.
    pub stage_only: Metrics,
    /// L2-regularised logistic regression on the same columns.
    pub logistic: Metrics,
    /// The saved model per segment (segments with both outcomes among the test rows).
    pub by_segment: BTreeMap<String, Metrics>,
    /// Test rows in ten bins of predicted probability: mean predicted against observed win rate.
    pub reliability: Vec<ReliabilityBin>,
}

/// What the model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedOn {
    pub catalog: String,
    /// `id@version` of every definition the catalog holds.
    pub versions: Vec<String>,
    pub excluded: Vec<Excluded>,
    /// Deals closed before this trained the model...
    pub calibration_from: Ts,
    /// ...those closed from `calibration_from` until this checked (and corrected) calibration...
    pub cutoff: Ts,
    /// ...and those closed from `cutoff` until `latest_close` (the high-water mark) tested it.
    pub latest_close: Ts,
    pub rows_train: usize,
    pub rows_calibration: usize,
    pub rows_test: usize,
    pub deals_train: usize,
    pub deals_test: usize,
}

/// The remaining days to close of won deals from entering a stage: percentiles 0, 1, …, 100.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloseTimes {
    pub stage: String,
    pub won_deals: usize,
    pub percentiles: Vec<f64>,
}

/// A significant adjusted effect on winning, from the discovery run at training time: the evidence
/// next-best actions and coaching prompts cite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectEvidence {
    pub behaviour: String,
    pub version: u32,
    pub title: String,
    pub landmark: String,
    pub odds_ratio: f64,
    pub low: f64,
    pub high: f64,
    pub q: f64,
    /// Average marginal effect in percentage points.
    pub ame_points: Option<f64>,
    pub win_rate_with: Option<f64>,
    pub win_rate_without: Option<f64>,
    pub n_with: usize,
    pub n_without: usize,
}

/// The significant, leakage-free adjusted win effects of a discovery, in its order.
pub fn evidence(d: &winsignal_discover::Discovery) -> Vec<EffectEvidence> {
    d.findings
        .iter()
        .filter(|f| {
            f.outcome == winsignal_discover::Outcome::Win && f.significant && f.leakage.is_none()
        })
        .filter_map(|f| {
            let e = f.effect.as_ref()?;
            Some(EffectEvidence {
                behaviour: f.behaviour.clone(),
                version: f.version,
                title: f.title.clone(),
                landmark: f.landmark.clone(),
                odds_ratio: e.estimate,
                low: e.low,
                high: e.high,
                q: e.q,
                ame_points: e.ame_pp.as_ref().map(|a| a.estimate),
                win_rate_with: f.raw.with,
                win_rate_without: f.raw.without,
                n_with: f.n_with,
                n_without: f.n_without,
            })
        })
        .collect()
}

/// The saved model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinModel {
    pub schema: u32,
    pub kind: String,
    pub trained_on: TrainedOn,
    pub options: TrainOptions,
    pub columns: Vec<Column>,
    /// The calibrated boosting machine (the one that scores).
    pub ebm: Ebm,
    /// The recalibration applied to the boosting machine, if the check found it needed.
    pub calibration: Option<Calibration>,
    /// Calibration of the uncalibrated machine on the calibration deals, which decided the above.
    pub calibration_check: Metrics,
    /// Whether the detected pairs were kept: they must rank the calibration deals better than the main
    /// effects alone (absent when the fit found no pairs, and in models saved before the check).
    #[serde(default)]
    pub pairs_check: Option<PairsCheck>,
    pub evaluation: Evaluation,
    /// Win rate per stage among the training deals (the stage-only baseline).
    pub stage_rates: BTreeMap<String, f64>,
    pub overall_rate: f64,
    /// For each yes/no behaviour: the median measure of training rows where it is present (what
    /// "doing it" means when the model is asked for a deal's uplift).
    pub present_values: BTreeMap<String, f64>,
    pub close_times: Vec<CloseTimes>,
    /// Significant adjusted win effects (discovery at training time), for actions and coaching.
    pub evidence: Vec<EffectEvidence>,
}

impl WinModel {
    /// The artifact's bytes (deterministic JSON) and its id, the hash of those bytes.
    pub fn to_artifact(&self) -> Result<(String, Vec<u8>)> {
        let bytes = serde_json::to_vec(self).map_err(|e| Error::Learn(e.to_string()))?;
        let id = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes));
        Ok((id, bytes))
    }

    pub fn from_artifact(bytes: &[u8]) -> Result<WinModel> {
        let m: WinModel = serde_json::from_slice(bytes)
            .map_err(|e| Error::Mismatch(format!("the saved model is not readable: {e}")))?;
        if m.schema != SCHEMA {
            return Err(Error::Mismatch(format!(
                "the saved model has schema {}; this build reads {SCHEMA}: train again",
                m.schema
            )));
        }
        Ok(m)
    }
}

/// The out-of-time check of the pairwise interactions (on the calibration deals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairsCheck {
    /// Pairs the fit detected and boosted.
    pub pairs: usize,
    /// AUC on the calibration deals with the pairs, and with the main effects only.
    pub auc_with: Option<f64>,
    pub auc_without: Option<f64>,
    /// Whether the saved model keeps them.
    pub kept: bool,
}

/// Whether a check of calibration calls for a correction: slope off 1 or the average off the win rate
/// by more than this (both on the logit scale).
const CALIBRATION_TOLERANCE: f64 = 0.05;

/// The rows the win model is fitted, calibrated and tested on, as [`train`] splits them.
pub struct Tables<'s> {
    pub split: Split,
    /// Where the calibration slice starts (the latest `calibration_share` of the training deals).
    pub calibration_from: dataset::OrderKey,
    /// One snapshot per training deal before the calibration slice: what the boosting machine fits on.
    pub fit: Table<'s>,
    /// Every snapshot of the calibration slice's deals.
    pub calibration: Table<'s>,
    /// Every snapshot of every training deal (fit and calibration): what the baselines fit on.
    pub train_all: Table<'s>,
    /// Every snapshot of the held-out deals.
    pub test: Table<'s>,
    pub excluded: Vec<dataset::Excluded>,
    /// The model's columns, in order.
    pub columns: Vec<Column>,
}

/// Splits the closed deals' snapshots into the tables [`train`] uses (the same rows, for
/// `winsignal train --export` and the benchmarks against other libraries).
pub fn tables<'s>(
    ctx: &Context,
    catalog: &Catalog,
    snaps: &'s [Snapshot],
    timing: &[Timing],
    opts: &TrainOptions,
) -> Result<Tables<'s>> {
    let split: Split = dataset::split(ctx, opts.test_share)?;
    let key = |s: &Snapshot| -> Option<dataset::OrderKey> {
        ctx.opportunity(&s.opportunity_id).map(|i| {
            (
                dataset::ordered_by(&ctx.opps[i as usize]),
                s.opportunity_id.clone(),
            )
        })
    };
    let closed: Vec<(&Snapshot, dataset::OrderKey)> = snaps
        .iter()
        .filter(|s| s.outcome != Outcome::Open)
        .filter_map(|s| key(s).map(|k| (s, k)))
        .collect();
    // The calibration slice: the last `calibration_share` of the training deals in holdout order.
    let mut train_keys: Vec<&dataset::OrderKey> = closed
        .iter()
        .map(|(_, k)| k)
        .filter(|k| **k < split.cutoff)
        .collect();
    train_keys.sort();
    train_keys.dedup();
    let at = ((train_keys.len() as f64) * (1.0 - opts.calibration_share)).floor() as usize;
    let calibration_from: dataset::OrderKey = train_keys
        .get(at.min(train_keys.len().saturating_sub(1)))
        .map_or_else(|| split.cutoff.clone(), |k| (*k).clone());
    let pick = |keep: &dyn Fn(&dataset::OrderKey) -> bool| -> Vec<&Snapshot> {
        closed
            .iter()
            .filter(|(_, c)| keep(c))
            .map(|(s, _)| *s)
            .collect()
    };
    // One snapshot per deal to fit on: the boosting machine stops each bag on a random validation
    // split of its rows, and a deal's other snapshots in that split would be near-copies of its
    // training rows — validation loss would keep falling as the model memorises deals. The snapshot
    // is chosen by a hash of the deal, its landmark and the seed (every landmark stays represented).
    let fit_rows = one_per_deal(pick(&|c| *c < calibration_from), opts.ebm.seed);
    let cal_rows = pick(&|c| *c >= calibration_from && *c < split.cutoff);
    let train_rows = pick(&|c| *c < split.cutoff);
    let test_rows = pick(&|c| *c >= split.cutoff);
    for (name, rows) in [
        ("training", &fit_rows),
        ("calibration", &cal_rows),
        ("test", &test_rows),
    ] {
        let won = rows.iter().filter(|s| s.outcome == Outcome::Won).count();
        if won < 10 || rows.len() - won < 10 {
            return Err(Error::NotEnoughData(format!(
                "the {name} period has {won} won and {} lost snapshots; at least 10 of each are needed",
                rows.len() - won
            )));
        }
    }
    let (columns, excluded) = dataset::columns(catalog, snaps, timing);
    let fit = dataset::table(ctx, &columns, fit_rows)?;
    let cal = dataset::table(ctx, &columns, cal_rows)?;
    let train_all = dataset::table(ctx, &columns, train_rows)?;
    let test = dataset::table(ctx, &columns, test_rows)?;
    Ok(Tables {
        split,
        calibration_from,
        fit,
        calibration: cal,
        train_all,
        test,
        excluded,
        columns,
    })
}

/// Trains, calibrates and evaluates the win model on every closed deal's snapshots.
pub fn train(
    ctx: &Context,
    catalog: &Catalog,
    snaps: &[Snapshot],
    timing: &[Timing],
    evidence: Vec<EffectEvidence>,
    opts: &TrainOptions,
) -> Result<WinModel> {
    let Tables {
        split,
        calibration_from,
        fit,
        calibration: cal,
        train_all,
        test,
        excluded,
        columns,
    } = tables(ctx, catalog, snaps, timing, opts)?;
    let learn = |e: winsignal_learn::Error| Error::Learn(e.to_string());

    let fitted = ebm::fit(&fit.data, &fit.won, &opts.ebm).map_err(learn)?;
    // The pairs are kept only if they rank the calibration deals (later than every deal fitted on)
    // better than the main effects alone: interactions learned in one period can fail to carry over
    // to the next, and random validation splits inside the fit cannot see that.
    let pairs_check = if fitted.n_pairs() > 0 {
        let auc = |m: &Ebm| -> Result<Option<f64>> {
            let p = m.predict_proba(&cal.data).map_err(learn)?;
            Ok(metrics::auc(&p, &cal.won).ok())
        };
        let mains = fitted.without_pairs();
        let (with, without) = (auc(&fitted)?, auc(&mains)?);
        let kept = match (with, without) {
            (Some(w), Some(wo)) => w > wo,
            _ => true,
        };
        Some(PairsCheck {
            pairs: fitted.n_pairs(),
            auc_with: with,
            auc_without: without,
            kept,
        })
    } else {
        None
    };
    let raw = match &pairs_check {
        Some(c) if !c.kept => fitted.without_pairs(),
        _ => fitted,
    };
    let cal_logits = raw.predict_logit(&cal.data).map_err(learn)?;
    let cal_p: Vec<f64> = cal_logits.iter().map(|l| sigmoid(*l)).collect();
    let calibration_check = measure(&cal_p, &cal.won);
    let needs = match (
        calibration_check.calibration_slope,
        calibration_check.calibration_in_the_large,
    ) {
        (Some(slope), Some(large)) => {
            (slope - 1.0).abs() > CALIBRATION_TOLERANCE || large.abs() > CALIBRATION_TOLERANCE
        }
        _ => false,
    };
    let calibration = if needs {
        Some(Calibration::fit(&cal_logits, &cal.won).map_err(learn)?)
    } else {
        None
    };
    let model = match &calibration {
        Some(c) => raw.calibrated(c),
        None => raw.clone(),
    };

    // Baselines on the same split: stage-only rates and the regularised logistic regression, both
    // from every training deal (the model used the calibration deals too).
    let (stage_rates, overall_rate) = stage_rates(&train_all);
    let stage_p: Vec<f64> = test
        .rows
        .iter()
        .map(|r| {
            r.stage
                .as_ref()
                .and_then(|s| stage_rates.get(s))
                .copied()
                .unwrap_or(overall_rate)
        })
        .collect();
    let lr =
        logreg::fit(&train_all.data, &train_all.won, &LogRegParams::default()).map_err(learn)?;
    let lr_p = lr.predict_proba(&test.data).map_err(learn)?;
    let model_p = model.predict_proba(&test.data).map_err(learn)?;
    let raw_p = raw.predict_proba(&test.data).map_err(learn)?;
    let mut by_segment = BTreeMap::new();
    let mut segments: Vec<&str> = test
        .rows
        .iter()
        .filter_map(|r| r.segment.as_deref())
        .collect();
    segments.sort_unstable();
    segments.dedup();
    for seg in segments {
        let idx: Vec<usize> = (0..test.rows.len())
            .filter(|i| test.rows[*i].segment.as_deref() == Some(seg))
            .collect();
        let p: Vec<f64> = idx.iter().map(|i| model_p[*i]).collect();
        let y: Vec<bool> = idx.iter().map(|i| test.won[*i]).collect();
        if y.iter().any(|w| *w) && y.iter().any(|w| !*w) {
            by_segment.insert(seg.to_string(), measure(&p, &y));
        }
    }
    let evaluation = Evaluation {
        model: measure(&model_p, &test.won),
        uncalibrated: measure(&raw_p, &test.won),
        stage_only: measure(&stage_p, &test.won),
        logistic: measure(&lr_p, &test.won),
        by_segment,
        reliability: metrics::reliability_curve(&model_p, &test.won, 10).unwrap_or_default(),
    };
    let deals = |t: &Table<'_>| {
        let mut ids: Vec<&str> = t.rows.iter().map(|r| r.opportunity_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    Ok(WinModel {
        schema: SCHEMA,
        kind: "win".into(),
        trained_on: TrainedOn {
            catalog: catalog.name.clone(),
            versions: catalog
                .behaviours
                .iter()
                .map(|d| format!("{}@{}", d.id, d.version))
                .collect(),
            excluded,
            calibration_from: calibration_from.0,
            cutoff: split.cutoff.0,
            latest_close: split.latest_close,
            rows_train: fit.rows.len(),
            rows_calibration: cal.rows.len(),
            rows_test: test.rows.len(),
            deals_train: deals(&train_all),
            deals_test: deals(&test),
        },
        options: opts.clone(),
        present_values: present_values(catalog, &train_all),
        close_times: close_times(ctx, split.cutoff.0),
        columns,
        ebm: model,
        calibration,
        calibration_check,
        pairs_check,
        evaluation,
        stage_rates,
        overall_rate,
        evidence,
    })
}

fn one_per_deal(rows: Vec<&Snapshot>, seed: u64) -> Vec<&Snapshot> {
    let key = |s: &Snapshot| {
        xxhash_rust::xxh3::xxh3_64_with_seed(
            format!("{}\u{0}{}", s.opportunity_id, s.landmark).as_bytes(),
            seed,
        )
    };
    let mut chosen: BTreeMap<&str, (u64, &Snapshot)> = BTreeMap::new();
    for s in rows {
        let k = key(s);
        let slot = chosen.entry(s.opportunity_id.as_str()).or_insert((k, s));
        if k < slot.0 {
            *slot = (k, s);
        }
    }
    chosen.into_values().map(|(_, s)| s).collect()
}

fn stage_rates(t: &Table<'_>) -> (BTreeMap<String, f64>, f64) {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (r, won) in t.rows.iter().zip(&t.won) {
        let c = counts
            .entry(r.stage.clone().unwrap_or_else(|| "(none)".into()))
            .or_default();
        c.0 += 1;
        c.1 += usize::from(*won);
    }
    let overall = t.won.iter().filter(|w| **w).count() as f64 / t.won.len().max(1) as f64;
    let rates = counts
        .into_iter()
        .map(|(s, (n, w))| (s, w as f64 / n as f64))
        .collect();
    (rates, overall)
}

fn present_values(catalog: &Catalog, t: &Table<'_>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut flag = 0;
    for (index, d) in catalog.behaviours.iter().enumerate() {
        if !d.is_behaviour() {
            continue;
        }
        let mut values: Vec<f64> = t
            .snapshots
            .iter()
            .filter(|s| s.flags.get(flag).copied().flatten() == Some(true))
            .filter_map(|s| s.values.get(index).copied())
            .filter(|v| v.is_finite())
            .collect();
        flag += 1;
        if values.is_empty() {
            continue;
        }
        values.sort_by(f64::total_cmp);
        out.insert(d.id.clone(), values[values.len() / 2]);
    }
    out
}

/// Percentiles of days from entering each stage to the close, over deals won before `cutoff`.
fn close_times(ctx: &Context, cutoff: Ts) -> Vec<CloseTimes> {
    let mut by_stage: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for o in &ctx.opps {
        let Some(closed) = o
            .closed
            .filter(|c| *c < cutoff && o.outcome == Outcome::Won)
        else {
            continue;
        };
        for (t, stage) in &o.stages {
            if *t <= closed {
                by_stage
                    .entry(stage.as_str())
                    .or_default()
                    .push((closed.0 - t.0) as f64 / MS_PER_DAY as f64);
            }
        }
    }
    by_stage
        .into_iter()
        .filter(|(_, v)| v.len() >= 10)
        .map(|(stage, mut days)| {
            days.sort_by(f64::total_cmp);
            let percentiles = (0..=100)
                .map(|p| {
                    let at = (p as f64 / 100.0) * (days.len() - 1) as f64;
                    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
                    days[lo] + (days[hi] - days[lo]) * (at - lo as f64)
                })
                .collect();
            CloseTimes {
                stage: stage.to_string(),
                won_deals: days.len(),
                percentiles,
            }
        })
        .collect()
}
