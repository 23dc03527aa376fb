//! The win model in the store: training and saving (or refusing) it with its summary; which saved
//! model is active is the registry's ([`crate::registry`]).

use anyhow::{bail, Result};
use serde::Serialize;
use winsignal_score::model::{self, TrainOptions, WinModel};
use winsignal_store::{ModelRecord, Store, StoreRead};

use crate::pipeline::Computed;
use crate::Progress;

/// The summary saved beside a model (what `models` listings show), and what `train --json` prints.
#[derive(Serialize)]
pub struct Summary<'a> {
    /// Absent when the model was refused (not saved).
    model_id: Option<&'a str>,
    kind: &'a str,
    new: bool,
    /// False when the model was refused: too good to be true or a metric undefined (see `warnings`).
    saved: bool,
    /// Most serious first; `refuses: true` ones stop `train` unless `--allow-suspect` is given.
    warnings: &'a [model::Warning],
    catalog: &'a str,
    trained_on: &'a model::TrainedOn,
    calibrated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    recalibration: Option<&'a model::RecalibrationCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    selection: Option<&'a model::Selection>,
    evaluation: &'a model::Evaluation,
    suspects: &'a [model::Suspect],
    #[serde(skip_serializing_if = "Option::is_none")]
    pairs_check: Option<&'a model::PairsCheck>,
    /// Behaviours whose actions are withheld on reps' feedback (absent when none).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    actions_withheld: &'a [model::WithheldAction],
    seconds: f64,
    /// What training did to the registry (printed by `train`, not saved with the model).
    #[serde(skip_serializing_if = "Option::is_none")]
    registry: Option<&'a crate::registry::Registered>,
}

impl<'a> Summary<'a> {
    pub fn of(m: &'a WinModel, id: Option<&'a str>, new: bool, seconds: f64) -> Summary<'a> {
        Summary {
            model_id: id,
            kind: &m.kind,
            new,
            saved: id.is_some(),
            warnings: &m.warnings,
            catalog: &m.trained_on.catalog,
            trained_on: &m.trained_on,
            calibrated: m.calibration.is_some(),
            recalibration: m.recalibration.as_ref(),
            selection: m.selection.as_ref(),
            evaluation: &m.evaluation,
            suspects: &m.suspects,
            pairs_check: m.pairs_check.as_ref(),
            actions_withheld: &m.actions_withheld,
            seconds,
            registry: None,
        }
    }

    /// The summary with what training did to the registry.
    pub fn registered(self, r: Option<&'a crate::registry::Registered>) -> Summary<'a> {
        Summary {
            registry: r,
            ..self
        }
    }
}

/// A trained model `train` would not save (see [`WinModel::refusal`]).
#[derive(Debug)]
pub struct Refused {
    pub model: Box<WinModel>,
    pub reason: String,
    pub fit_seconds: f64,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the win model was not saved. {} Fix or leave out the suspected columns (a catalog without them, or `recorded = \"at_outcome\"`), or pass --allow-suspect to save it anyway",
            self.reason
        )
    }
}

impl std::error::Error for Refused {}

/// A win model trained and saved in the store.
pub struct Trained {
    pub id: String,
    /// False when the store already held this very model (same data and seed).
    pub new: bool,
    /// What saving it did to the registry (None for a model the store already held).
    pub registered: Option<crate::registry::Registered>,
    pub model: WinModel,
    pub fit_seconds: f64,
}

/// The catalog scheduled retraining uses: `given` (`serve --catalog`), else the active win model's own
/// (what it was trained with), else the built-in one.
pub fn retrain_catalog(
    store: &dyn Store,
    given: Option<&winsignal_features::Catalog>,
) -> Result<winsignal_features::Catalog> {
    if let Some(c) = given {
        return Ok(c.clone());
    }
    match active_win_model(store)? {
        Some((id, model)) => crate::pipeline::catalog_for_model(None, &id, &model),
        None => Ok(winsignal_features::catalog::default_catalog()),
    }
}

/// Retrains the win model on the store as it is now with `catalog` and the default options (as
/// `winsignal train` without options) and saves it: a candidate, or whatever the registry's policy makes
/// of it. What `serve --retrain-every` runs.
pub fn retrain(
    store: &dyn Store,
    catalog: winsignal_features::Catalog,
    actor: &str,
    progress: &mut dyn Progress,
) -> Result<Trained> {
    let c = crate::pipeline::compute(store, catalog, progress)?;
    let discovery = crate::scoring::evidence_discovery(&c)?;
    let opts = TrainOptions {
        history_flags: c.history_flags.clone(),
        unobserved: c.unobserved.clone(),
        ..Default::default()
    };
    train_and_save(store, &c, &discovery, &opts, actor)
}

/// Trains the win model on the computed snapshots, with next-best-action evidence from `discovery` (its
/// win findings), and saves it in the store with its summary — unless it is refused (a [`Refused`]
/// error: too good to be true or a metric undefined, and `opts.allow_suspect` not set).
pub fn train_and_save(
    store: &dyn Store,
    c: &Computed,
    discovery: &winsignal_discover::Discovery,
    opts: &TrainOptions,
    actor: &str,
) -> Result<Trained> {
    let fit_started = std::time::Instant::now();
    // Closed deals whose data a reviewer said are wrong are left out (open deals train nothing).
    let flagged = crate::review::wrong_data_deals(store)?;
    let left_out: Vec<String> = flagged
        .into_iter()
        .filter(|d| {
            c.snapshots
                .iter()
                .any(|s| &s.opportunity_id == d && s.outcome != winsignal_core::Outcome::Open)
        })
        .collect();
    let kept: Vec<winsignal_features::snapshot::Snapshot>;
    let snapshots = if left_out.is_empty() {
        &c.snapshots
    } else {
        kept = c
            .snapshots
            .iter()
            .filter(|s| left_out.binary_search(&s.opportunity_id).is_err())
            .cloned()
            .collect();
        &kept
    };
    // Actions reps judged not relevant on most deals are not offered by the new model.
    let withheld = crate::feedback::withheld(store)?;
    let mut evidence = model::evidence(discovery);
    // The evidence holds a behaviour once per landmark where it is significant: listed once.
    let mut actions_withheld: Vec<model::WithheldAction> = Vec::new();
    evidence.retain(
        |e| match withheld.iter().find(|w| w.behaviour == e.behaviour) {
            Some(w) => {
                if !actions_withheld.iter().any(|a| a.behaviour == w.behaviour) {
                    actions_withheld.push(model::WithheldAction {
                        behaviour: w.behaviour.clone(),
                        deals: w.deals,
                        not_relevant: w.not_relevant,
                    });
                }
                false
            }
            None => true,
        },
    );
    let mut m = model::train(&c.ctx, &c.catalog, snapshots, &c.timing, evidence, opts)?;
    m.trained_on.left_out_by_review = left_out;
    m.actions_withheld = actions_withheld;
    let fit_seconds = fit_started.elapsed().as_secs_f64();
    if let Some(reason) = m.refusal() {
        if !opts.allow_suspect {
            return Err(Refused {
                model: Box::new(m),
                reason,
                fit_seconds,
            }
            .into());
        }
    }
    let (id, body) = m.to_artifact()?;
    let summary = Summary::of(&m, Some(&id), true, fit_seconds);
    let new = store.put_model(&ModelRecord {
        model_id: id.clone(),
        kind: m.kind.clone(),
        summary: serde_json::to_string(&summary)?,
        body,
    })?;
    crate::audit::record(
        store,
        actor,
        "model.train",
        &id,
        serde_json::json!({
            "kind": m.kind,
            "new": new,
            "holdout_auc": m.evaluation.model.auc,
            "holdout_brier": m.evaluation.model.brier,
        }),
    )?;
    let registered = if new {
        Some(crate::registry::register_trained(
            store,
            &id,
            actor,
            &mut crate::Silent,
        )?)
    } else {
        None
    };
    Ok(Trained {
        id,
        new,
        registered,
        model: m,
        fit_seconds,
    })
}

/// The active win model ([`active_win_model_id`]) with its body.
pub fn active_win_model(store: &dyn StoreRead) -> Result<Option<(String, WinModel)>> {
    match active_win_model_id(store)? {
        Some(id) => Ok(Some(load_model(store, Some(&id))?)),
        None => Ok(None),
    }
}

/// The id of the active win model, as the registry's stages say ([`crate::registry`]). Every command
/// and the server ask here (or through [`active_win_model`]).
pub fn active_win_model_id(store: &dyn StoreRead) -> Result<Option<String>> {
    Ok(crate::registry::Registry::read(store)?.active)
}

/// The model to score with: the one named, or the active win model ([`active_win_model`]).
pub fn load_model(store: &dyn StoreRead, id: Option<&str>) -> Result<(String, WinModel)> {
    let id = match id {
        Some(id) => id.to_string(),
        None => match active_win_model(store)? {
            Some(active) => return Ok(active),
            None => bail!("no win model in this workspace yet: run `winsignal train` first"),
        },
    };
    let Some(record) = store.model(&id)? else {
        let ids: Vec<String> = store
            .models(Some("win"))?
            .into_iter()
            .map(|m| m.model_id)
            .collect();
        bail!(
            "no model {id:?} in this workspace; the win models are: {}",
            if ids.is_empty() {
                "none".into()
            } else {
                ids.join(", ")
            }
        );
    };
    Ok((id, WinModel::from_artifact(&record.body)?))
}
