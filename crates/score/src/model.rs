//! The win model: candidates (stage-only rates, a regularised logistic regression, explainable boosting
//! machines with and without pairs) fitted on closed deals at their landmarks before a cutoff, the best
//! on the most recent part of the training period kept (near-ties to the simpler) and refitted on every
//! training deal, recalibrated only when a cross-fitted check says it helps, evaluated on the held-out
//! deals against two baselines (stage-only win rates and a regularised logistic regression), checked for
//! results too good to be true, and saved as a versioned artifact with everything needed to score and
//! explain. Every candidate is an additive table ([`Ebm`]), so scores and explanations do not depend on
//! which one won.

use crate::dataset::{self, Column, Excluded, Split, SplitInfo, Table};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use winsignal_core::time::MS_PER_DAY;
use winsignal_core::{Outcome, Ts};
use winsignal_features::catalog::Catalog;
use winsignal_features::snapshot::{Snapshot, Timing};
use winsignal_features::Context;
use winsignal_learn::bins::{Binning, MISSING_BIN};
use winsignal_learn::ebm::{ModelFeature, Term};
use winsignal_learn::logreg::Encoding;
use winsignal_learn::metrics::{self, ReliabilityBin};
use winsignal_learn::{
    ebm, logreg, sigmoid, Calibration, Dataset, Ebm, EbmParams, FeatureValues, LogReg, LogRegParams,
};

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
    /// Return a model even when [`WinModel::refusal`] finds it too good to be true or a metric
    /// undefined (the warnings stay). Not saved with the model.
    #[serde(default, skip_serializing)]
    pub allow_suspect: bool,
    /// Keep the columns discovery's leakage checks flag ([`winsignal_discover::suspect_columns`]); by
    /// default they are left out of the model (listed in `excluded` with their evidence).
    #[serde(default)]
    pub keep_suspect_columns: bool,
    /// Columns the store's version history shows being written at the close
    /// ([`winsignal_discover::changed_at_close`]), left out like the other flagged columns.
    #[serde(skip)]
    pub history_flags: Vec<winsignal_discover::ColumnFlag>,
    /// Closed deals without a snapshot ([`winsignal_features::snapshot::unobserved`]): not in the
    /// model's rows; said in the `closed_deals_left_out` warning.
    #[serde(skip)]
    pub unobserved: winsignal_features::snapshot::Unobserved,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            test_share: 0.2,
            calibration_share: 0.2,
            ebm: EbmParams::default(),
            allow_suspect: false,
            keep_suspect_columns: false,
            history_flags: Vec::new(),
            unobserved: Default::default(),
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
    /// The saved model (recalibrated when that helped).
    pub model: Metrics,
    /// The saved model before recalibration.
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
    /// What the holdout really is (by close date, or the fallback and why).
    #[serde(default)]
    pub split: SplitInfo,
    /// Closed deals left out of training and evaluation because a reviewer said their data are wrong
    /// (the latest review decision on the deal has the reason `wrong_data`), by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out_by_review: Vec<String>,
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
    /// The TOML of the catalog it was trained with: `score`, `explain` and `report` use it when no
    /// `--catalog` is given (absent from models saved before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_toml: Option<String>,
    pub options: TrainOptions,
    pub columns: Vec<Column>,
    /// The model that scores, recalibrated when that helped: the chosen candidate as an additive table
    /// (a boosting machine, or the logistic regression or stage-only rates tabulated over bins).
    pub ebm: Ebm,
    /// The recalibration applied, if the cross-fitted check found that it helps.
    pub calibration: Option<Calibration>,
    /// Calibration of the chosen model before recalibration on the calibration deals.
    pub calibration_check: Metrics,
    /// Whether recalibration was applied, and the held-out numbers that decided it.
    #[serde(default)]
    pub recalibration: Option<RecalibrationCheck>,
    /// The candidates compared on the calibration deals and the one kept.
    #[serde(default)]
    pub selection: Option<Selection>,
    /// What the user must read before trusting the model, most serious first (see [`Warning`]).
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// The columns most likely behind a suspiciously good model: largest own holdout AUC first.
    #[serde(default)]
    pub suspects: Vec<Suspect>,
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
    /// Behaviours whose action this model does not offer although their effect is significant:
    /// reps judged it not relevant on most of the deals they gave feedback on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions_withheld: Vec<WithheldAction>,
}

/// A behaviour whose action is withheld, with the feedback that withheld it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WithheldAction {
    pub behaviour: String,
    /// Deals with feedback on its action, and those whose latest verdict was `not_relevant`.
    pub deals: usize,
    pub not_relevant: usize,
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

/// A holdout AUC at or above this is refused as too good to be true: sales outcomes are not that
/// predictable from what is known before the close, so such a model has almost surely learned a column
/// recorded with or after the outcome (a leak). See docs/methodology.md.
pub const AUC_CEILING: f64 = 0.97;

/// A column is named as a suspect when its own holdout AUC reaches this, or its share of the model's
/// importance reaches [`SUSPECT_SHARE`].
pub const SUSPECT_SOLO_AUC: f64 = 0.8;
pub const SUSPECT_SHARE: f64 = 0.25;

/// Candidates whose AUC on the calibration deals is within this of the best count as tied with it; the
/// simplest of them is kept.
pub const NEAR_TIE: f64 = 0.005;

/// The candidates in order of simplicity (the first of a near-tie wins).
pub const CANDIDATES: [&str; 5] = [
    "stage_only",
    "logistic",
    "ebm_regularised",
    "ebm_mains",
    "ebm_pairs",
];

/// One candidate model, fitted on the training deals before the calibration slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// One of [`CANDIDATES`].
    pub name: String,
    pub description: String,
    /// On the calibration deals, before any recalibration.
    pub calibration: Metrics,
    pub chosen: bool,
}

/// Which candidate was kept, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub candidates: Vec<Candidate>,
    pub chosen: String,
    pub reason: String,
}

/// The decision to recalibrate: only when the calibration is off *and* a map fitted on one half of the
/// calibration deals (in holdout order) improves the log loss of the other half, both ways round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecalibrationCheck {
    /// The slope or the calibration in the large is off by more than 0.05 on the calibration deals.
    pub off: bool,
    /// Log loss and Brier score of the calibration deals as the model predicts them...
    pub log_loss_as_is: f64,
    pub brier_as_is: f64,
    /// ...and with each half recalibrated by the map fitted on the other half (absent when a half
    /// lacks one outcome or the check found nothing off).
    pub log_loss_cross_fitted: Option<f64>,
    pub brier_cross_fitted: Option<f64>,
    pub applied: bool,
    pub reason: String,
}

/// Something the user must read before trusting the model. `code` is stable (docs/cli.md lists them);
/// `refuses` marks the warnings that stop `train` from saving unless it is told to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub code: String,
    pub message: String,
    /// The columns the warning is about (suspected leaks), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    pub refuses: bool,
}

/// A column that may explain a suspiciously good model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    pub column: String,
    /// Its share of the model's importance (terms with the column; a pair's importance split evenly).
    pub importance_share: f64,
    /// AUC on the test deals of the column's own main effect alone, as a ranking either way round
    /// (the larger of AUC and 1 − AUC; absent when the model has no main effect for it).
    pub solo_auc: Option<f64>,
}

impl WinModel {
    /// Why this model must not be saved (its refusing warnings, the suspected columns named), if it
    /// must not.
    pub fn refusal(&self) -> Option<String> {
        let refusing: Vec<&str> = self
            .warnings
            .iter()
            .filter(|w| w.refuses)
            .map(|w| w.message.as_str())
            .collect();
        if refusing.is_empty() {
            None
        } else {
            Some(refusing.join(" "))
        }
    }
}

/// The rows the win model is fitted, calibrated and tested on, as [`train`] splits them.
pub struct Tables<'s> {
    pub split: Split,
    /// Where the calibration slice starts (the latest `calibration_share` of the training deals).
    pub calibration_from: dataset::OrderKey,
    /// One snapshot per training deal before the calibration slice: what the boosting machine fits on.
    pub fit: Table<'s>,
    /// Every snapshot of the training deals before the calibration slice: what the logistic and
    /// stage-only candidates fit on.
    pub fit_all: Table<'s>,
    /// Every snapshot of the calibration slice's deals, in holdout order.
    pub calibration: Table<'s>,
    /// Every snapshot of every training deal (fit and calibration): what the baselines fit on.
    pub train_all: Table<'s>,
    /// Every snapshot of the held-out deals.
    pub test: Table<'s>,
    pub excluded: Vec<dataset::Excluded>,
    /// The model's columns, in order.
    pub columns: Vec<Column>,
}

/// The closed deals' snapshots of the latest holdout of the data as it is now: the deals at or after the
/// cutoff of [`dataset::split`] with `test_share` (the latest to close, for a time split). What two models
/// are compared on before one replaces the other (the registry's gate).
pub fn latest_holdout<'s>(
    ctx: &Context,
    snaps: &'s [Snapshot],
    test_share: f64,
) -> Result<(Split, Vec<&'s Snapshot>)> {
    let split = dataset::split(ctx, test_share)?;
    let rows = snaps
        .iter()
        .filter(|s| s.outcome != Outcome::Open)
        .filter(|s| {
            ctx.opportunity(&s.opportunity_id)
                .and_then(|i| split.key(i))
                .is_some_and(|k| *k >= split.cutoff)
        })
        .collect();
    Ok((split, rows))
}

/// How accurate the model's served probabilities are on `snaps` (closed deals' snapshots computed with
/// the model's catalog): the same figures as its holdout evaluation.
pub fn evaluate(model: &WinModel, ctx: &Context, snaps: Vec<&Snapshot>) -> Result<Metrics> {
    let (p, won) = probabilities(model, ctx, snaps)?;
    Ok(measure(&p, &won))
}

/// The model's served probabilities on `snaps` (computed with the model's catalog), with whether each
/// snapshot's deal was won (false for open deals too).
pub fn probabilities(
    model: &WinModel,
    ctx: &Context,
    snaps: Vec<&Snapshot>,
) -> Result<(Vec<f64>, Vec<bool>)> {
    let t = dataset::table(ctx, &model.columns, snaps)?;
    let p = model.ebm.predict_proba(&t.data).map_err(learn_err)?;
    Ok((p, t.won))
}

/// The model on `snaps` (computed with its catalog): each snapshot's served probability, and the mean
/// contribution (log-odds) of each of the model's terms over them, in term order ([`Ebm::terms`]); empty
/// for no snapshot.
pub fn probabilities_and_mean_contributions(
    model: &WinModel,
    ctx: &Context,
    snaps: Vec<&Snapshot>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let terms = model.ebm.terms().len();
    if snaps.is_empty() {
        return Ok((Vec::new(), vec![0.0; terms]));
    }
    let t = dataset::table(ctx, &model.columns, snaps)?;
    let p = model.ebm.predict_proba(&t.data).map_err(learn_err)?;
    let mut sums = vec![0.0; terms];
    for row in 0..t.rows.len() {
        let c = model.ebm.contributions(&t.data, row).map_err(learn_err)?;
        for (s, c) in sums.iter_mut().zip(c) {
            *s += c;
        }
    }
    let n = t.rows.len() as f64;
    Ok((p, sums.into_iter().map(|s| s / n).collect()))
}

/// Accuracy of probabilities `p` against outcomes `won` (the figures of a model's evaluation).
pub fn metrics(p: &[f64], won: &[bool]) -> Metrics {
    measure(p, won)
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
    let closed: Vec<(&Snapshot, dataset::OrderKey)> = snaps
        .iter()
        .filter(|s| s.outcome != Outcome::Open)
        .filter_map(|s| {
            let i = ctx.opportunity(&s.opportunity_id)?;
            split.key(i).map(|k| (s, k.clone()))
        })
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
    let fit_all_rows = pick(&|c| *c < calibration_from);
    let fit_rows = one_per_deal(fit_all_rows.clone(), opts.ebm.seed);
    let mut cal_keyed: Vec<(&Snapshot, &dataset::OrderKey)> = closed
        .iter()
        .filter(|(_, c)| *c >= calibration_from && *c < split.cutoff)
        .map(|(s, c)| (*s, c))
        .collect();
    cal_keyed.sort_by(|a, b| a.1.cmp(b.1).then_with(|| a.0.landmark.cmp(&b.0.landmark)));
    let cal_rows: Vec<&Snapshot> = cal_keyed.into_iter().map(|(s, _)| s).collect();
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
    let (columns, excluded) = dataset::columns(
        catalog,
        snaps,
        timing,
        opts.keep_suspect_columns,
        &opts.history_flags,
    );
    let fit = dataset::table(ctx, &columns, fit_rows)?;
    let fit_all = dataset::table(ctx, &columns, fit_all_rows)?;
    let cal = dataset::table(ctx, &columns, cal_rows)?;
    let train_all = dataset::table(ctx, &columns, train_rows)?;
    let test = dataset::table(ctx, &columns, test_rows)?;
    Ok(Tables {
        split,
        calibration_from,
        fit,
        fit_all,
        calibration: cal,
        train_all,
        test,
        excluded,
        columns,
    })
}

fn learn_err(e: winsignal_learn::Error) -> Error {
    Error::Learn(e.to_string())
}

/// The settings of the regularised boosting machine: fewer bins, smaller trees with larger leaves, no
/// pairs.
fn regularised(p: &EbmParams) -> EbmParams {
    EbmParams {
        max_bins: p.max_bins.min(32),
        min_samples_leaf: p.min_samples_leaf.max(50),
        max_leaves: 2,
        interactions: 0,
        ..p.clone()
    }
}

/// Fits every candidate on the deals before the calibration slice and keeps the best on the calibration
/// deals: the highest AUC, or among those within [`NEAR_TIE`] of it the simplest ([`CANDIDATES`] order).
fn select(
    fit: &Table<'_>,
    fit_all: &Table<'_>,
    cal: &Table<'_>,
    p: &EbmParams,
) -> Result<(Selection, Ebm, usize)> {
    let mut fitted: Vec<(&str, String, Ebm)> = Vec::new();
    fitted.push((
        "stage_only",
        "the stage's win rate among the deals fitted on".into(),
        stage_table(fit_all)?,
    ));
    let lr =
        logreg::fit(&fit_all.data, &fit_all.won, &LogRegParams::default()).map_err(learn_err)?;
    fitted.push((
        "logistic",
        format!(
            "L2-regularised logistic regression (C = 1) on every column, tabulated over {} bins per number",
            p.max_bins
        ),
        tabulate_logistic(&lr, &fit_all.data, p.max_bins)?,
    ));
    let reg_params = regularised(p);
    fitted.push((
        "ebm_regularised",
        format!(
            "boosting machine without pairs, {} bins, trees of {} leaves of at least {} rows",
            reg_params.max_bins, reg_params.max_leaves, reg_params.min_samples_leaf
        ),
        ebm::fit(&fit.data, &fit.won, &reg_params).map_err(learn_err)?,
    ));
    let full = ebm::fit(&fit.data, &fit.won, p).map_err(learn_err)?;
    let n_pairs = full.n_pairs();
    fitted.push((
        "ebm_mains",
        "boosting machine, main effects only".into(),
        full.without_pairs(),
    ));
    if full.n_pairs() > 0 {
        fitted.push((
            "ebm_pairs",
            format!(
                "boosting machine with {} pairwise interactions",
                full.n_pairs()
            ),
            full,
        ));
    }
    let mut candidates = Vec::with_capacity(fitted.len());
    for (name, description, m) in &fitted {
        let p_cal = m.predict_proba(&cal.data).map_err(learn_err)?;
        candidates.push(Candidate {
            name: (*name).into(),
            description: description.clone(),
            calibration: measure(&p_cal, &cal.won),
            chosen: false,
        });
    }
    let best = candidates
        .iter()
        .filter_map(|c| c.calibration.auc)
        .fold(f64::NEG_INFINITY, f64::max);
    // Without any AUC (cannot happen with both outcomes among the calibration deals), the full machine.
    let at = candidates
        .iter()
        .position(|c| c.calibration.auc.is_some_and(|a| a >= best - NEAR_TIE))
        .unwrap_or(candidates.len() - 1);
    candidates[at].chosen = true;
    let chosen = candidates[at].name.clone();
    let auc = |c: &Candidate| c.calibration.auc.map_or("–".into(), |a| format!("{a:.3}"));
    let reason = if candidates[at].calibration.auc == Some(best) {
        format!(
            "the highest AUC on the calibration deals ({}); simpler candidates were more than {NEAR_TIE} behind",
            auc(&candidates[at])
        )
    } else {
        format!(
            "the simplest candidate within {NEAR_TIE} of the highest AUC on the calibration deals ({} against {best:.3})",
            auc(&candidates[at])
        )
    };
    let model = fitted.swap_remove(at).2;
    Ok((
        Selection {
            candidates,
            chosen,
            reason,
        },
        model,
        n_pairs,
    ))
}

/// The candidate named `name` fitted on every training deal (`train_all`; the boosting machines on one
/// snapshot per deal of it).
fn refit(
    name: &str,
    ctx: &Context,
    columns: &[Column],
    train_all: &Table<'_>,
    p: &EbmParams,
) -> Result<Ebm> {
    let per_deal = || -> Result<Table<'_>> {
        let rows = one_per_deal(train_all.snapshots.clone(), p.seed);
        dataset::table(ctx, columns, rows)
    };
    match name {
        "stage_only" => stage_table(train_all),
        "logistic" => {
            let lr = logreg::fit(&train_all.data, &train_all.won, &LogRegParams::default())
                .map_err(learn_err)?;
            tabulate_logistic(&lr, &train_all.data, p.max_bins)
        }
        "ebm_regularised" => {
            let t = per_deal()?;
            ebm::fit(&t.data, &t.won, &regularised(p)).map_err(learn_err)
        }
        "ebm_mains" => {
            let t = per_deal()?;
            let mains = EbmParams {
                interactions: 0,
                ..p.clone()
            };
            ebm::fit(&t.data, &t.won, &mains).map_err(learn_err)
        }
        _ => {
            let t = per_deal()?;
            ebm::fit(&t.data, &t.won, p).map_err(learn_err)
        }
    }
}

/// Recalibrates only when the check finds the calibration off and recalibration helps held-out rows:
/// the calibration deals cut in two halves (by deal, in holdout order), each half recalibrated by the
/// map fitted on the other, must have a lower log loss than as predicted.
///
/// `logits` are the model's on the calibration rows, `deals` each row's deal, rows in holdout order.
pub fn recalibration(
    logits: &[f64],
    won: &[bool],
    deals: &[&str],
) -> Result<(RecalibrationCheck, Option<Calibration>)> {
    let p: Vec<f64> = logits.iter().map(|l| sigmoid(*l)).collect();
    let check = measure(&p, won);
    let log_loss_as_is = metrics::log_loss(&p, won).unwrap_or(f64::NAN);
    let brier_as_is = metrics::brier(&p, won).unwrap_or(f64::NAN);
    let off = match (check.calibration_slope, check.calibration_in_the_large) {
        (Some(slope), Some(large)) => {
            (slope - 1.0).abs() > CALIBRATION_TOLERANCE || large.abs() > CALIBRATION_TOLERANCE
        }
        _ => false,
    };
    let mut out = RecalibrationCheck {
        off,
        log_loss_as_is,
        brier_as_is,
        log_loss_cross_fitted: None,
        brier_cross_fitted: None,
        applied: false,
        reason: String::new(),
    };
    if !off {
        out.reason = "the calibration deals found it calibrated (slope and calibration in the large within 0.05)".into();
        return Ok((out, None));
    }
    let cross = cross_fitted(logits, won, deals);
    let Some(cross_p) = cross else {
        out.reason = "a half of the calibration deals has only one outcome, so the benefit of recalibrating cannot be checked; left as fitted".into();
        return Ok((out, None));
    };
    let ll = metrics::log_loss(&cross_p, won).unwrap_or(f64::NAN);
    let brier = metrics::brier(&cross_p, won).unwrap_or(f64::NAN);
    out.log_loss_cross_fitted = Some(ll);
    out.brier_cross_fitted = Some(brier);
    if ll < log_loss_as_is {
        out.applied = true;
        out.reason = format!(
            "recalibrating improved held-out log loss ({log_loss_as_is:.4} → {ll:.4} cross-fitted over the two halves of the calibration deals)"
        );
        let c = Calibration::fit(logits, won).map_err(learn_err)?;
        Ok((out, Some(c)))
    } else {
        out.reason = format!(
            "the calibration looked off but recalibrating did not improve held-out log loss ({log_loss_as_is:.4} as is, {ll:.4} cross-fitted), so it was not applied"
        );
        Ok((out, None))
    }
}

/// Each half of the rows (split between deals, in the given order) recalibrated by the map fitted on
/// the other half; `None` when a half lacks an outcome or a fit fails.
fn cross_fitted(logits: &[f64], won: &[bool], deals: &[&str]) -> Option<Vec<f64>> {
    let mut distinct: Vec<&str> = deals.to_vec();
    distinct.dedup();
    let half_deals = distinct.len() / 2;
    let mut seen = 0usize;
    let mut boundary = deals.len();
    for (i, d) in deals.iter().enumerate() {
        if i == 0 || deals[i - 1] != *d {
            if seen == half_deals {
                boundary = i;
                break;
            }
            seen += 1;
        }
    }
    let (first, second) = (0..boundary, boundary..logits.len());
    let fit = |r: std::ops::Range<usize>| Calibration::fit(&logits[r.clone()], &won[r]).ok();
    let (on_first, on_second) = (fit(first.clone())?, fit(second.clone())?);
    let mut p = vec![0.0; logits.len()];
    for i in first {
        p[i] = on_second.apply_proba(logits[i]);
    }
    for i in second {
        p[i] = on_first.apply_proba(logits[i]);
    }
    Some(p)
}

/// The columns behind the model, by their own AUC on `data` (largest first), with their share of the
/// model's importance: where to look first when a model is too good to be true.
pub fn suspects(model: &Ebm, data: &Dataset, won: &[bool]) -> Result<Vec<Suspect>> {
    let total: f64 = model.terms().iter().map(|t| t.importance).sum();
    let mut out: Vec<Suspect> = Vec::new();
    for (f, feature) in model.features().iter().enumerate() {
        let share: f64 = model
            .terms()
            .iter()
            .filter(|t| t.features.contains(&f))
            .map(|t| t.importance / t.features.len() as f64)
            .sum::<f64>()
            / if total > 0.0 { total } else { 1.0 };
        let main = model.terms().iter().find(|t| t.features.as_slice() == [f]);
        let solo_auc = match (main, data.feature(&feature.name)) {
            (Some(t), Some(column)) => {
                let bins = feature
                    .bins
                    .bin_column(&feature.name, &column.values)
                    .map_err(learn_err)?;
                let p: Vec<f64> = bins
                    .iter()
                    .map(|b| sigmoid(t.scores.get(*b as usize).copied().unwrap_or(0.0)))
                    .collect();
                metrics::auc(&p, won).ok().map(|a| a.max(1.0 - a))
            }
            _ => None,
        };
        out.push(Suspect {
            column: feature.name.clone(),
            importance_share: share,
            solo_auc,
        });
    }
    out.sort_by(|a, b| {
        b.solo_auc
            .unwrap_or(0.0)
            .total_cmp(&a.solo_auc.unwrap_or(0.0))
            .then(b.importance_share.total_cmp(&a.importance_share))
            .then(a.column.cmp(&b.column))
    });
    Ok(out)
}

/// The metrics of `m` that are undefined (missing or not finite), by name.
fn undefined(m: &Metrics) -> Vec<&'static str> {
    let mut out = Vec::new();
    let bad = |v: Option<f64>| !v.is_some_and(f64::is_finite);
    if bad(m.auc) {
        out.push("AUC");
    }
    if !m.brier.is_finite() {
        out.push("Brier score");
    }
    if !m.log_loss.is_finite() {
        out.push("log loss");
    }
    if bad(m.calibration_slope) {
        out.push("calibration slope");
    }
    if bad(m.calibration_intercept) || bad(m.calibration_in_the_large) {
        out.push("calibration intercept");
    }
    out
}

/// The warnings of a trained model, most serious first.
fn warnings(
    evaluation: &Evaluation,
    check: &Metrics,
    suspects: &[Suspect],
    selection: &Selection,
    split: &SplitInfo,
    unobserved: &winsignal_features::snapshot::Unobserved,
) -> Vec<Warning> {
    // The columns to name: those that rank the outcome well on their own or carry a large share of
    // the model; failing any, the three with the highest own AUC.
    let mut likely: Vec<&Suspect> = suspects
        .iter()
        .filter(|s| {
            s.solo_auc.is_some_and(|a| a >= SUSPECT_SOLO_AUC) || s.importance_share >= SUSPECT_SHARE
        })
        .take(5)
        .collect();
    if likely.is_empty() {
        likely = suspects.iter().take(3).collect();
    }
    let named: Vec<String> = likely.iter().map(|s| s.column.clone()).collect();
    let named_list = named.join(", ");
    let describe = || -> String {
        likely
            .iter()
            .map(|s| {
                format!(
                    "{} (own AUC {}, {:.0} % of the importance)",
                    s.column,
                    s.solo_auc.map_or("–".into(), |a| format!("{a:.3}")),
                    100.0 * s.importance_share
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    if let Some(auc) = evaluation.model.auc.filter(|a| *a >= AUC_CEILING) {
        out.push(Warning {
            code: "too_good_to_be_true".into(),
            message: format!(
                "The holdout AUC is {auc:.3}, at or above the ceiling of {AUC_CEILING}: a win model this good almost surely reads a column recorded with or after the outcome. Suspected columns: {}.",
                describe()
            ),
            columns: named.clone(),
            refuses: true,
        });
    }
    let test = undefined(&evaluation.model);
    let cal = undefined(check);
    if !test.is_empty() || !cal.is_empty() {
        let mut parts = Vec::new();
        if !test.is_empty() {
            parts.push(format!("on the test deals: {}", test.join(", ")));
        }
        if !cal.is_empty() {
            parts.push(format!("on the calibration deals: {}", cal.join(", ")));
        }
        out.push(Warning {
            code: "undefined_metric".into(),
            message: format!(
                "Undefined metrics ({}): the predictions are degenerate (constant, or perfectly separating the outcomes). Suspected columns: {}.",
                parts.join("; "),
                named_list
            ),
            columns: named,
            refuses: true,
        });
    }
    for w in &split.warnings {
        out.push(Warning {
            code: "split".into(),
            message: format!("Holdout: {w}."),
            columns: Vec::new(),
            refuses: false,
        });
    }
    let stage = selection.candidates.iter().find(|c| c.name == "stage_only");
    let learned_best = selection
        .candidates
        .iter()
        .filter(|c| c.name != "stage_only")
        .filter_map(|c| c.calibration.auc)
        .fold(f64::NEG_INFINITY, f64::max);
    if let Some(stage_auc) = stage.and_then(|s| s.calibration.auc) {
        if selection.chosen == "stage_only" || learned_best <= stage_auc {
            out.push(Warning {
                code: "stage_only_not_beaten".into(),
                message: format!(
                    "Too few closed deals to beat the stage-only rates: on the calibration deals the best learned model's AUC is {learned_best:.3} against the stage-only win rates' {stage_auc:.3}{}.",
                    if selection.chosen == "stage_only" {
                        "; the stage-only rates are saved as the model"
                    } else {
                        ""
                    }
                ),
                columns: Vec::new(),
                refuses: false,
            });
        }
    }
    for (name, baseline) in [
        ("logistic baseline", &evaluation.logistic),
        ("stage-only win rates", &evaluation.stage_only),
    ] {
        if let (Some(m), Some(b)) = (evaluation.model.auc, baseline.auc) {
            if b > m + NEAR_TIE {
                out.push(Warning {
                    code: "baseline_better_on_test".into(),
                    message: format!(
                        "On the test deals the {name} (fitted on every training deal) rank better than the saved model: AUC {b:.3} against {m:.3}."
                    ),
                    columns: Vec::new(),
                    refuses: false,
                });
            }
        }
    }
    if let Some(sentence) = unobserved.sentence() {
        out.push(Warning {
            code: "closed_deals_left_out".into(),
            message: format!("{sentence}; the model is neither trained nor tested on them."),
            columns: Vec::new(),
            refuses: false,
        });
    }
    out
}

/// Trains, selects, calibrates and evaluates the win model on every closed deal's snapshots. The
/// returned model carries its warnings; [`WinModel::refusal`] says whether it must not be saved.
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
        fit_all,
        calibration: cal,
        train_all,
        test,
        excluded,
        columns,
    } = tables(ctx, catalog, snaps, timing, opts)?;

    // Interactions and flexible shapes learned in one period can fail to carry over to the next, and
    // random validation splits inside a fit cannot see that: the candidates are compared on the
    // calibration deals, later than every deal fitted on.
    let (selection, raw, n_pairs) = select(&fit, &fit_all, &cal, &opts.ebm)?;
    let pairs_check = selection
        .candidates
        .iter()
        .find(|c| c.name == "ebm_pairs")
        .map(|with| PairsCheck {
            pairs: n_pairs,
            auc_with: with.calibration.auc,
            auc_without: selection
                .candidates
                .iter()
                .find(|c| c.name == "ebm_mains")
                .and_then(|c| c.calibration.auc),
            kept: with.chosen,
        });
    let cal_logits = raw.predict_logit(&cal.data).map_err(learn_err)?;
    let cal_p: Vec<f64> = cal_logits.iter().map(|l| sigmoid(*l)).collect();
    let calibration_check = measure(&cal_p, &cal.won);
    let cal_deals: Vec<&str> = cal.rows.iter().map(|r| r.opportunity_id.as_str()).collect();
    let (recalibration, calibration) = recalibration(&cal_logits, &cal.won, &cal_deals)?;
    // Without a recalibration, the kept candidate is fitted again on every training deal, the
    // calibration slice included: the most recent deals before the test are the most like it, and the
    // logistic baseline sees them too. With one, the candidate stays as fitted: the map was fitted to
    // its predictions on deals it had not seen, and a model refitted on more deals is less
    // overconfident, so the same map would over-correct it (on the default demo it left the lowest
    // deciles of the holdout 5–6 points off the diagonal).
    let raw = if calibration.is_some() {
        raw
    } else {
        refit(&selection.chosen, ctx, &columns, &train_all, &opts.ebm)?
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
    let lr = logreg::fit(&train_all.data, &train_all.won, &LogRegParams::default())
        .map_err(learn_err)?;
    let lr_p = lr.predict_proba(&test.data).map_err(learn_err)?;
    let model_p = model.predict_proba(&test.data).map_err(learn_err)?;
    let raw_p = raw.predict_proba(&test.data).map_err(learn_err)?;
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
    let suspects = suspects(&model, &test.data, &test.won)?;
    let warnings = warnings(
        &evaluation,
        &calibration_check,
        &suspects,
        &selection,
        &split.info,
        &opts.unobserved,
    );
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
            split: split.info.clone(),
            left_out_by_review: Vec::new(),
        },
        catalog_toml: (!catalog.source.is_empty()).then(|| catalog.source.clone()),
        options: opts.clone(),
        present_values: present_values(catalog, &train_all),
        close_times: close_times(ctx, &split),
        columns,
        ebm: model,
        calibration,
        calibration_check,
        recalibration: Some(recalibration),
        selection: Some(selection),
        warnings,
        suspects: suspects.into_iter().take(5).collect(),
        pairs_check,
        evaluation,
        stage_rates,
        overall_rate,
        evidence,
        actions_withheld: Vec::new(),
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

/// An additive table over some of the columns of `data`: per feature its binning and each bin's logit
/// contribution; the tables are centred over the rows of `data` (their mean moved into the intercept)
/// and get the boosting machine's importance (mean absolute contribution), so the result reads like a
/// fitted machine.
fn additive_table(
    data: &Dataset,
    intercept: f64,
    shapes: Vec<(String, Binning, Vec<f64>)>,
) -> Result<Ebm> {
    let n_rows = data.n_rows();
    let mut intercept = intercept;
    let mut features = Vec::with_capacity(shapes.len());
    let mut terms = Vec::with_capacity(shapes.len());
    for (index, (name, bins, mut scores)) in shapes.into_iter().enumerate() {
        let column = data
            .feature(&name)
            .ok_or_else(|| Error::Learn(format!("no column `{name}` to tabulate")))?;
        let mut bin_counts = vec![0u64; bins.n_bins()];
        for b in bins.bin_column(&name, &column.values).map_err(learn_err)? {
            if let Some(c) = bin_counts.get_mut(b as usize) {
                *c += 1;
            }
        }
        let mean = bin_counts
            .iter()
            .zip(&scores)
            .map(|(&c, s)| c as f64 * s)
            .sum::<f64>()
            / n_rows.max(1) as f64;
        scores.iter_mut().for_each(|s| *s -= mean);
        intercept += mean;
        let importance = bin_counts
            .iter()
            .zip(&scores)
            .map(|(&c, s)| c as f64 * s.abs())
            .sum::<f64>()
            / n_rows.max(1) as f64;
        terms.push(Term {
            name: name.clone(),
            features: vec![index],
            errors: vec![0.0; scores.len()],
            scores,
            bin_counts,
            importance,
        });
        features.push(ModelFeature {
            name,
            interaction_bins: bins.clone(),
            bins,
        });
    }
    // The machine's serialised form is its only constructor outside the learner: it checks every
    // table against its feature's bins.
    let value = serde_json::json!({
        "features": features,
        "intercept": intercept,
        "terms": terms,
        "summary": { "n_rows": n_rows, "bags": [], "pair_ranking": [] },
    });
    serde_json::from_value(value).map_err(|e| Error::Learn(e.to_string()))
}

/// The stage-only win rates as an additive table over the stage column: each stage's win rate among
/// the rows of `t` (shrunk by half a deal each way, so no stage gets a certain outcome), the overall
/// rate for a missing or unseen stage.
fn stage_table(t: &Table<'_>) -> Result<Ebm> {
    let column = t
        .data
        .feature(dataset::STAGE)
        .ok_or_else(|| Error::Learn("no stage column".into()))?;
    let bins = Binning::learn(dataset::STAGE, &column.values, None, 2, 1).map_err(learn_err)?;
    let rows = bins
        .bin_column(dataset::STAGE, &column.values)
        .map_err(learn_err)?;
    let mut counts = vec![(0.0f64, 0.0f64); bins.n_bins()];
    for (b, won) in rows.iter().zip(&t.won) {
        if let Some(c) = counts.get_mut(*b as usize) {
            c.0 += 1.0;
            c.1 += f64::from(u8::from(*won));
        }
    }
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let n = t.won.len() as f64;
    let overall = (t.won.iter().filter(|w| **w).count() as f64 + 0.5) / (n + 1.0);
    let scores = counts
        .iter()
        .enumerate()
        .map(|(b, (n, w))| {
            if b == MISSING_BIN || *n == 0.0 {
                logit(overall)
            } else {
                logit((w + 0.5) / (n + 1.0))
            }
        })
        .collect();
    additive_table(
        &t.data,
        0.0,
        vec![(dataset::STAGE.to_string(), bins, scores)],
    )
}

/// The logistic regression as an additive table: categories and missing values exactly (one bin per
/// level, as the regression has one column per level), numbers by the regression's value at the mean
/// of the training values in each of at most `max_bins` quantile bins.
pub fn tabulate_logistic(lr: &LogReg, data: &Dataset, max_bins: usize) -> Result<Ebm> {
    #[derive(Deserialize)]
    struct Parts {
        encodings: Vec<Encoding>,
        coefficients: Vec<f64>,
    }
    let parts: Parts = serde_json::to_value(lr)
        .and_then(serde_json::from_value)
        .map_err(|e| Error::Learn(e.to_string()))?;
    let mut at = 0usize;
    let mut shapes = Vec::with_capacity(parts.encodings.len());
    for e in &parts.encodings {
        let coef = |k: usize| parts.coefficients.get(at + k).copied().unwrap_or(0.0);
        match e {
            Encoding::Numeric {
                name,
                mean,
                scale,
                missing_indicator,
            } => {
                let Some(column) = data.feature(name).map(|f| &f.values) else {
                    return Err(Error::Learn(format!("no column `{name}`")));
                };
                let FeatureValues::Numeric(values) = column else {
                    return Err(Error::Learn(format!("`{name}` is not numeric")));
                };
                let bins = Binning::learn(name, column, None, max_bins, 1).map_err(learn_err)?;
                let Binning::Numeric { cuts } = &bins else {
                    return Err(Error::Learn(format!("`{name}` binned as a category")));
                };
                let mut sums = vec![(0.0f64, 0usize); bins.n_bins()];
                for x in values.iter().flatten() {
                    let b = 1 + cuts.partition_point(|c| c <= x);
                    sums[b].0 += x;
                    sums[b].1 += 1;
                }
                let beta = coef(0);
                let scores = sums
                    .iter()
                    .enumerate()
                    .map(|(b, (sum, n))| {
                        if b == MISSING_BIN {
                            return if *missing_indicator { coef(1) } else { 0.0 };
                        }
                        let x = if *n > 0 {
                            sum / *n as f64
                        } else {
                            // An empty bin (cannot happen with cuts from these values): its edge.
                            cuts.get(b.saturating_sub(2).min(cuts.len().saturating_sub(1)))
                                .copied()
                                .unwrap_or(*mean)
                        };
                        beta * (x - mean) / scale
                    })
                    .collect();
                at += 1 + usize::from(*missing_indicator);
                shapes.push((name.clone(), bins, scores));
            }
            Encoding::Categorical {
                name,
                levels,
                other,
                missing,
            } => {
                let bins = Binning::Categorical {
                    levels: levels.clone(),
                };
                let mut scores = vec![0.0; bins.n_bins()];
                for k in 0..levels.len() {
                    scores[1 + k] = coef(k);
                }
                if *other {
                    scores[levels.len() + 1] = coef(levels.len());
                }
                if *missing {
                    scores[MISSING_BIN] = coef(levels.len() + usize::from(*other));
                }
                at += levels.len() + usize::from(*other) + usize::from(*missing);
                shapes.push((name.clone(), bins, scores));
            }
        }
    }
    additive_table(data, lr.intercept(), shapes)
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

/// Percentiles of days from entering each stage to the close, over the won training deals (before the
/// split's cutoff) with a close date.
fn close_times(ctx: &Context, split: &Split) -> Vec<CloseTimes> {
    let mut by_stage: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (i, o) in ctx.opps.iter().enumerate() {
        let training = split.key(i as u32).is_some_and(|k| *k < split.cutoff);
        let Some(closed) = o.closed.filter(|_| training && o.outcome == Outcome::Won) else {
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
