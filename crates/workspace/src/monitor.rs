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
use winsignal_stats::drift::{psi_test, Rule};
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

/// One window: its span, how many snapshots it holds, and its features, the largest PSI first.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub from: Ts,
    pub until: Ts,
    pub snapshots: usize,
    pub alarms: Vec<String>,
    pub features: Vec<FeatureDrift>,
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
    let mut m = ModelReading::open(store, catalog, model_id)?;
    let entities = std::mem::take(&mut m.ctx);
    let checkpoint = std::mem::take(&mut m.checkpoint);
    let engine = crate::pipeline::replay_with(store, &*m.snapshot, entities, checkpoint, progress)?;
    let end = snapshot::horizon(&engine);
    let snaps = snapshot::snapshots(&engine, &m.catalog, end, &mut |d, t| {
        progress.phase("computing snapshots", d, t)
    });
    progress.finish();
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
            model_id: m.id,
            training_snapshots: 0,
            features_tested: 0,
            alpha: rule.alpha,
            min_psi: rule.min_psi,
            windows: Vec::new(),
            notes,
        });
    }
    let span = i64::from(window_days) * MS_PER_DAY;
    let mut out = Vec::with_capacity(windows);
    for w in 0..windows as i64 {
        let until = Ts(end.0 + 1 - w * span);
        let from = Ts(until.0 - span);
        let rows: Vec<&snapshot::Snapshot> = snaps
            .iter()
            .filter(|s| s.as_of >= from && s.as_of < until)
            .collect();
        let mut features: Vec<FeatureDrift> = tested
            .iter()
            .filter_map(|&k| {
                let window = column(&rows, k);
                let t = psi_test(&reference[k], &window, BINS)?;
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
        let alarms = features
            .iter()
            .filter(|f| f.alarm)
            .map(|f| f.feature.clone())
            .collect();
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
        });
    }
    Ok(Drift {
        model_id: m.id,
        training_snapshots: training.len(),
        features_tested: tested.len(),
        alpha: rule.alpha,
        min_psi: rule.min_psi,
        windows: out,
        notes,
    })
}
