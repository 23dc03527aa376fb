//! The model registry: which win model serves, which wait, who approved them, and the record of every
//! change, so "which model was active at time T, approved by whom" is one read.
//!
//! A saved win model moves through stages: **candidate** (trained, not approved), **approved** (by
//! someone other than whoever trained it, with a reason), **active** (the one every command and the
//! server score with; exactly one), **retired** (was active and was replaced, or set aside). The stages
//! are not stored: they are folded from the transitions, kept in order in the store's journal stream
//! [`STREAM`] (keyed by model id), which every reader of the store sees, snapshots included. Each
//! transition is also written to the audit log.
//!
//! The rules, each in one place here:
//! - **Two people.** [`approve`] refuses the person who trained the model ([`person`]: a command run
//!   on this machine as `local:alice` and the API user `alice` are one person).
//! - **The gate.** [`activate`] compares the candidate with the active model on the latest holdout of
//!   the data as it is now ([`gate`]) and refuses a candidate worse beyond [`TOLERANCES`] unless the
//!   caller overrides with a reason, which is recorded.
//! - **Rollback** reactivates the model that was active before the current one, in one step, without
//!   a gate (it served before).
//! - **Training makes candidates.** A workspace's first win model is active as trained (there is
//!   nothing to compare it with, and nothing scores without it) unless the policy says otherwise; a
//!   later one is a candidate, unless the policy's auto-approve rule (e.g. "at least 95 % of the active
//!   model's AUC") passes, which approves and activates it in the rule's name.
//! - A workspace trained before stages were recorded has no activation: its latest saved model is the
//!   active one ([`Registry::implicit`]) until the first transition records it.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use winsignal_core::Ts;
use winsignal_features::snapshot;
use winsignal_score::model::{self, Metrics, WinModel};
use winsignal_store::{JournalQuery, Store, StoreRead};

use crate::{Progress, Refusal};

/// The journal stream of stage transitions, keyed by model id.
pub const STREAM: &str = "model-stages";

/// The named state holding the registry's policy.
pub const POLICY: &str = "model-policy";

/// The named state whose update lock orders transitions: each is checked against the registry as it is
/// and appended with no other transition in between, in this process or another.
const LOCK: &str = "model-stages-lock";

macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err(Refusal::Rule(format!($($arg)*)).into())
    };
}

macro_rules! bad_request {
    ($($arg:tt)*) => {
        return Err(Refusal::BadRequest(format!($($arg)*)).into())
    };
}

/// Where a win model is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Candidate,
    Approved,
    Active,
    Retired,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Candidate => "candidate",
            Stage::Approved => "approved",
            Stage::Active => "active",
            Stage::Retired => "retired",
        }
    }
}

/// What a transition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Trained,
    Approved,
    Activated,
    RolledBack,
    Retired,
}

impl Action {
    /// Whether the transition makes its model the active one (an activation or a rollback to it).
    pub fn activates(self) -> bool {
        matches!(self, Action::Activated | Action::RolledBack)
    }

    fn audit_action(self) -> &'static str {
        match self {
            Action::Trained => "model.candidate",
            Action::Approved => "model.approve",
            Action::Activated => "model.activate",
            Action::RolledBack => "model.rollback",
            Action::Retired => "model.retire",
        }
    }
}

/// One change of a model's stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transition {
    /// Its number in the registry's journal (1 for the first).
    #[serde(default)]
    pub seq: u64,
    pub at: Ts,
    /// Who: an API user, `local:<account>` for a command run on the machine, or `rule:<name>` for the
    /// policy's rules.
    pub actor: String,
    pub model_id: String,
    pub action: Action,
    pub reason: String,
    /// For an activation or rollback: the model that was active before (none for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// For an activation: the gate's comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// For an activation whose gate failed: why it was activated anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_reason: Option<String>,
}

/// How much worse than the active model a candidate may be on the latest holdout and still be
/// activated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerances {
    /// The candidate's AUC may be at most this much lower.
    pub auc_drop: f64,
    /// Its Brier score at most this much higher.
    pub brier_rise: f64,
    /// Its calibration slope at most this much further from 1.
    pub slope_gap: f64,
}

/// The documented tolerances (docs/governance.md): an AUC drop of 0.02 is about the holdout's own
/// noise at a few hundred deals; a Brier rise of 0.01 is about a tenth of a typical win model's Brier
/// score; a slope 0.1 further from 1 is where a reliability curve visibly bends.
pub const TOLERANCES: Tolerances = Tolerances {
    auc_drop: 0.02,
    brier_rise: 0.01,
    slope_gap: 0.1,
};

/// The candidate against the active model on the latest holdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gate {
    /// What the holdout is, in words.
    pub holdout: String,
    pub holdout_deals: usize,
    pub holdout_snapshots: usize,
    pub candidate_id: String,
    pub candidate: Metrics,
    /// None when no model is active (nothing to compare with: the gate passes).
    pub active_id: Option<String>,
    pub active: Option<Metrics>,
    pub tolerances: Tolerances,
    /// Each way the candidate is worse beyond a tolerance, in words; empty when it passes.
    pub failures: Vec<String>,
    pub passed: bool,
}

/// The registry's rules a workspace may set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The workspace's first win model is active as trained (the default), or waits as a candidate.
    pub first_model_active: bool,
    /// Approve and activate a newly trained model in the rule's name when its AUC on the latest holdout
    /// is at least this share of the active model's and it passes the gate (None: off, the default).
    pub auto_approve_min_auc_ratio: Option<f64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            first_model_active: true,
            auto_approve_min_auc_ratio: None,
        }
    }
}

/// One win model as the registry sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelState {
    pub model_id: String,
    /// The order it was saved in (1 for the first model of the store).
    pub saved: u64,
    pub stage: Stage,
    /// Who trained it (none for a model saved before stages were recorded).
    pub trained_by: Option<String>,
    pub trained_at: Option<Ts>,
    pub approved_by: Option<String>,
    pub approved_at: Option<Ts>,
    pub approval_reason: Option<String>,
    /// When it last became active (none if it never was).
    pub activated_at: Option<Ts>,
    /// Its training summary, as `train --json` printed it.
    pub summary: serde_json::Value,
}

/// Every win model with its stage, and every transition in order.
#[derive(Debug, Clone, Serialize)]
pub struct Registry {
    /// Oldest saved first.
    pub models: Vec<ModelState>,
    pub active: Option<String>,
    /// True when no activation is recorded and the active model is the latest saved (a workspace
    /// trained before stages were recorded).
    pub implicit: bool,
    pub transitions: Vec<Transition>,
}

impl Registry {
    /// When a model was last trained (the latest `trained` transition), by any process.
    pub fn last_trained_at(&self) -> Option<Ts> {
        self.transitions
            .iter()
            .filter(|t| t.action == Action::Trained)
            .map(|t| t.at)
            .max()
    }

    /// The registry as `read` holds it.
    pub fn read(read: &dyn StoreRead) -> Result<Registry> {
        let saved = read.models(Some("win"))?;
        let transitions: Vec<Transition> = read
            .journal(STREAM, &JournalQuery::default())?
            .into_iter()
            .map(|e| {
                let mut t: Transition = serde_json::from_slice(&e.body).with_context(|| {
                    format!("model stage entry {} of {} cannot be read", e.seq, e.key)
                })?;
                t.seq = e.seq;
                Ok(t)
            })
            .collect::<Result<_>>()?;
        let mut models: Vec<ModelState> = saved
            .iter()
            .map(|m| ModelState {
                model_id: m.model_id.clone(),
                saved: m.seq,
                stage: Stage::Candidate,
                trained_by: None,
                trained_at: None,
                approved_by: None,
                approved_at: None,
                approval_reason: None,
                activated_at: None,
                summary: serde_json::from_str(&m.summary).unwrap_or(serde_json::Value::Null),
            })
            .collect();
        let index: BTreeMap<String, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.model_id.clone(), i))
            .collect();
        let mut active: Option<String> = None;
        for t in &transitions {
            let Some(&i) = index.get(&t.model_id) else {
                continue;
            };
            match t.action {
                Action::Trained => {
                    let m = &mut models[i];
                    m.trained_by = Some(t.actor.clone());
                    m.trained_at = Some(t.at);
                }
                Action::Approved => {
                    let m = &mut models[i];
                    m.approved_by = Some(t.actor.clone());
                    m.approved_at = Some(t.at);
                    m.approval_reason = Some(t.reason.clone());
                    if m.stage != Stage::Active {
                        m.stage = Stage::Approved;
                    }
                }
                Action::Activated | Action::RolledBack => {
                    if let Some(before) = active.as_ref().and_then(|a| index.get(a)) {
                        models[*before].stage = Stage::Retired;
                    }
                    models[i].stage = Stage::Active;
                    models[i].activated_at = Some(t.at);
                    active = Some(t.model_id.clone());
                }
                Action::Retired => models[i].stage = Stage::Retired,
            }
        }
        let implicit = active.is_none() && !models.is_empty();
        if implicit {
            let last = models.len() - 1;
            models[last].stage = Stage::Active;
            active = Some(models[last].model_id.clone());
        }
        Ok(Registry {
            models,
            active,
            implicit,
            transitions,
        })
    }

    /// One model by id, or by a prefix of at least 6 characters that only it has.
    pub fn model(&self, id: &str) -> Result<&ModelState> {
        if let Some(m) = self.models.iter().find(|m| m.model_id == id) {
            return Ok(m);
        }
        let prefixed: Vec<&ModelState> = if id.len() >= 6 {
            self.models
                .iter()
                .filter(|m| m.model_id.starts_with(id))
                .collect()
        } else {
            Vec::new()
        };
        if prefixed.len() > 1 {
            return Err(Refusal::NotFound(format!(
                "{id:?} begins {} model ids; give more of it",
                prefixed.len()
            ))
            .into());
        }
        prefixed.first().copied().ok_or_else(|| {
            let ids: Vec<&str> = self.models.iter().map(|m| m.model_id.as_str()).collect();
            Refusal::NotFound(format!(
                "no win model {id:?} in this workspace; the win models are: {}",
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            ))
            .into()
        })
    }

    /// The transition that last made `model_id` active (none if it never was, as recorded).
    pub fn last_activation_of(&self, model_id: &str) -> Option<&Transition> {
        self.transitions
            .iter()
            .rev()
            .find(|t| t.model_id == model_id && t.action.activates())
    }

    /// The transition that made the current active model active (none when it is [`Registry::implicit`]).
    fn last_activation(&self) -> Option<&Transition> {
        self.transitions.iter().rev().find(|t| t.action.activates())
    }

    /// Which model was active at `at`, who made it active, and who had approved it then.
    pub fn active_at(&self, at: Ts) -> ActiveAt {
        let activation = self
            .transitions
            .iter()
            .rev()
            .filter(|t| t.at <= at)
            .find(|t| t.action.activates())
            .cloned();
        let approval = activation.as_ref().and_then(|a| {
            self.transitions
                .iter()
                .rev()
                .filter(|t| t.seq < a.seq && t.model_id == a.model_id)
                .find(|t| t.action == Action::Approved)
                .cloned()
        });
        let note = match &activation {
            None if self.implicit => Some(
                "no activation is recorded in this workspace: its active model is the latest \
                 trained, and when it became so is not known"
                    .to_string(),
            ),
            None => Some("no model was active then".to_string()),
            Some(a) if approval.is_none() => {
                let first = self
                    .transitions
                    .iter()
                    .find(|t| t.model_id == a.model_id && t.action.activates());
                Some(match first {
                    Some(f) if f.actor.starts_with("rule:") => format!(
                        "{} has no approval: it became active by the rule {} ({})",
                        a.model_id, f.actor, f.reason
                    ),
                    _ => format!("{} has no recorded approval", a.model_id),
                })
            }
            Some(_) => None,
        };
        ActiveAt {
            at,
            model_id: activation.as_ref().map(|a| a.model_id.clone()),
            activation,
            approval,
            note,
        }
    }
}

/// The answer to "which model was active at T, approved by whom".
#[derive(Debug, Clone, Serialize)]
pub struct ActiveAt {
    pub at: Ts,
    pub model_id: Option<String>,
    /// The transition that made it active.
    pub activation: Option<Transition>,
    /// The approval it had then (none for a first model active as trained, or a legacy workspace).
    pub approval: Option<Transition>,
    pub note: Option<String>,
}

/// The person behind an actor: `local:alice` and `alice` are both `alice`.
pub fn person(actor: &str) -> &str {
    actor.strip_prefix("local:").unwrap_or(actor)
}

/// The registry's policy (its default when none was set).
pub fn policy(store: &dyn Store) -> Result<Policy> {
    match store.state(POLICY)? {
        Some(state) => crate::access::read_json_state(state, "model policy"),
        None => Ok(Policy::default()),
    }
}

/// Sets the policy, by `actor`, recorded in the audit log.
pub fn set_policy(store: &dyn Store, actor: &str, policy: &Policy) -> Result<()> {
    if let Some(r) = policy.auto_approve_min_auc_ratio {
        if !(r.is_finite() && r > 0.0 && r <= 1.5) {
            bad_request!(
                "the auto-approve AUC ratio {r} is not a share between 0 and 1.5 (e.g. 0.95)"
            );
        }
    }
    crate::access::change_json_state(store, POLICY, "model policy", |p: &mut Policy| {
        *p = policy.clone();
        Ok(())
    })?;
    crate::audit::record(
        store,
        actor,
        "config.model_policy",
        POLICY,
        serde_json::to_value(policy)?,
    )?;
    Ok(())
}

/// Appends the transition `make` builds from the registry as it is now, with no other transition in
/// between; `make` may refuse. Records it in the audit log.
fn transition(
    store: &dyn Store,
    make: impl FnOnce(&Registry) -> Result<Transition>,
) -> Result<Transition> {
    let made =
        crate::access::change_json_state(store, LOCK, "model stages lock", |n: &mut u64| {
            let registry = Registry::read(store)?;
            let mut t = make(&registry)?;
            let body = serde_json::to_vec(&t)?;
            t.seq = store.append(STREAM, t.at, &[(t.model_id.clone(), body)])?[0];
            *n += 1;
            Ok(t)
        })?;
    let mut details = serde_json::json!({ "reason": made.reason, "stage_entry": made.seq });
    if let Some(p) = &made.previous {
        details["previous"] = p.clone().into();
    }
    if let Some(o) = &made.override_reason {
        details["override_reason"] = o.clone().into();
    }
    if let Some(g) = &made.gate {
        details["gate_passed"] = g.passed.into();
        details["gate_failures"] = serde_json::to_value(&g.failures)?;
    }
    crate::audit::record(
        store,
        &made.actor,
        made.action.audit_action(),
        &made.model_id,
        details,
    )?;
    Ok(made)
}

fn needs_reason(reason: &str, what: &str) -> Result<()> {
    if reason.trim().is_empty() {
        bad_request!("give a reason to {what} (it is kept in the registry and the audit log)");
    }
    Ok(())
}

/// What training a new model did to the registry.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    /// The model's stage after training.
    pub stage: Stage,
    /// Why it is in that stage, in words.
    pub why: String,
}

/// Records a newly saved win model as a candidate trained by `actor`, then applies the policy: the
/// workspace's first model is activated as trained (unless the policy says not to), and the
/// auto-approve rule, when set, is tried against the active model.
pub fn register_trained(
    store: &dyn Store,
    model_id: &str,
    actor: &str,
    progress: &mut dyn Progress,
) -> Result<Registered> {
    let policy = policy(store)?;
    let before = Registry::read(store)?;
    // A workspace trained before stages were recorded: its active model is recorded first, so the new
    // one does not replace it by being the latest.
    if before.implicit {
        let legacy = before
            .models
            .iter()
            .rev()
            .find(|m| m.model_id != model_id)
            .map(|m| m.model_id.clone());
        if let Some(legacy) = legacy {
            transition(store, |r| {
                if !r.implicit {
                    bail!("the registry changed while the model was being recorded; train again");
                }
                Ok(Transition {
                    seq: 0,
                    at: Ts::now(),
                    actor: "rule:before-stages".into(),
                    model_id: legacy.clone(),
                    action: Action::Activated,
                    reason: "the active model before stages were recorded (the latest trained)"
                        .into(),
                    previous: None,
                    gate: None,
                    override_reason: None,
                })
            })?;
        }
    }
    transition(store, |_| {
        Ok(Transition {
            seq: 0,
            at: Ts::now(),
            actor: actor.to_string(),
            model_id: model_id.to_string(),
            action: Action::Trained,
            reason: "trained".into(),
            previous: None,
            gate: None,
            override_reason: None,
        })
    })?;
    let now = Registry::read(store)?;
    let Some(active) = now.active.clone().filter(|a| a != model_id) else {
        if !policy.first_model_active {
            return Ok(Registered {
                stage: Stage::Candidate,
                why: "the workspace's first win model waits for approval (the policy's \
                      first_model_active is off)"
                    .into(),
            });
        }
        transition(store, |r| {
            // The model itself is the implicit active one (the latest saved) until this is recorded.
            if r.active.is_some() && !r.implicit {
                bail!("another model became active meanwhile; this one stays a candidate");
            }
            Ok(Transition {
                seq: 0,
                at: Ts::now(),
                actor: "rule:first-model".into(),
                model_id: model_id.to_string(),
                action: Action::Activated,
                reason: format!(
                    "the workspace's first win model, trained by {actor}: nothing to compare it \
                     with, and nothing scores without one"
                ),
                previous: None,
                gate: None,
                override_reason: None,
            })
        })?;
        return Ok(Registered {
            stage: Stage::Active,
            why: "the workspace's first win model is active as trained".into(),
        });
    };
    let Some(ratio) = policy.auto_approve_min_auc_ratio else {
        return Ok(Registered {
            stage: Stage::Candidate,
            why: format!(
                "{active} stays active until someone other than {} approves and \
                 activates this one (`winsignal models approve`, `models activate`)",
                person(actor)
            ),
        });
    };
    let g = gate(store, model_id, progress)?;
    let auc = |m: Option<&Metrics>| m.and_then(|m| m.auc);
    let (Some(c), Some(a)) = (auc(Some(&g.candidate)), auc(g.active.as_ref())) else {
        return Ok(Registered {
            stage: Stage::Candidate,
            why: "the auto-approve rule needs both models' AUC on the latest \
                  holdout, and one is undefined"
                .into(),
        });
    };
    if c < ratio * a || !g.passed {
        let mut why = format!(
            "its AUC on the latest holdout, {c:.3}, is {} {:.0} % of the active \
             model's {a:.3}",
            if c < ratio * a { "below" } else { "at least" },
            ratio * 100.0
        );
        if !g.passed {
            why.push_str(&format!(
                ", and it fails the gate: {}",
                g.failures.join("; ")
            ));
        }
        return Ok(Registered {
            stage: Stage::Candidate,
            why,
        });
    }
    let reason = format!(
        "auto-approve rule: AUC {c:.3} on the latest holdout is at least {:.0} % of the active \
         model's {a:.3}, and the gate passes",
        ratio * 100.0
    );
    transition(store, |_| {
        Ok(Transition {
            seq: 0,
            at: Ts::now(),
            actor: "rule:auto-approve".into(),
            model_id: model_id.to_string(),
            action: Action::Approved,
            reason: reason.clone(),
            previous: None,
            gate: None,
            override_reason: None,
        })
    })?;
    transition(store, |r| {
        if r.active.as_deref() != Some(active.as_str()) {
            bail!("the active model changed while the gate was computed; activate it by hand");
        }
        Ok(Transition {
            seq: 0,
            at: Ts::now(),
            actor: "rule:auto-approve".into(),
            model_id: model_id.to_string(),
            action: Action::Activated,
            reason: reason.clone(),
            previous: Some(active.clone()),
            gate: Some(g.clone()),
            override_reason: None,
        })
    })?;
    Ok(Registered {
        stage: Stage::Active,
        why: reason,
    })
}

/// Approves a candidate, by `actor`, with a reason: refused to the person who trained it.
pub fn approve(store: &dyn Store, model_id: &str, actor: &str, reason: &str) -> Result<Transition> {
    needs_reason(reason, "approve a model")?;
    transition(store, |r| {
        let m = r.model(model_id)?;
        let model_id = m.model_id.as_str();
        if let (Some(by), Some(at)) = (&m.approved_by, m.approved_at) {
            refuse!(
                "{model_id} was already approved by {by} at {}",
                at.to_rfc3339()
            );
        }
        if m.stage == Stage::Active {
            refuse!("{model_id} is the active model; there is nothing to approve");
        }
        match &m.trained_by {
            Some(trainer) if person(trainer) == person(actor) => refuse!(
                "two-person rule: {} trained {model_id}, so someone else must approve it",
                person(trainer)
            ),
            _ => {}
        }
        Ok(Transition {
            seq: 0,
            at: Ts::now(),
            actor: actor.to_string(),
            model_id: model_id.to_string(),
            action: Action::Approved,
            reason: reason.to_string(),
            previous: None,
            gate: None,
            override_reason: None,
        })
    })
}

/// Activates an approved model, by `actor`, with a reason, after the gate: a candidate worse than the
/// active model beyond [`TOLERANCES`] on the latest holdout is refused unless `override_reason` is given.
pub fn activate(
    store: &dyn Store,
    model_id: &str,
    actor: &str,
    reason: &str,
    override_reason: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<Transition> {
    needs_reason(reason, "activate a model")?;
    if override_reason.is_some_and(|o| o.trim().is_empty()) {
        bad_request!("an override needs its reason");
    }
    let model_id = {
        let r = Registry::read(store)?;
        let m = r.model(model_id)?;
        check_activatable(&r, m)?;
        m.model_id.clone()
    };
    let model_id = model_id.as_str();
    let g = gate(store, model_id, progress)?;
    transition(store, |r| {
        let m = r.model(model_id)?;
        check_activatable(r, m)?;
        if r.active != g.active_id {
            refuse!("the active model changed while the gate was computed; run the command again");
        }
        if !g.passed && override_reason.is_none() {
            refuse!(
                "the gate refuses {model_id}: on the latest holdout ({}) it is worse than the \
                 active model {} beyond the tolerances: {}. Retrain, or pass an override with its \
                 reason",
                g.holdout,
                g.active_id.as_deref().unwrap_or("-"),
                g.failures.join("; ")
            );
        }
        Ok(Transition {
            seq: 0,
            at: Ts::now(),
            actor: actor.to_string(),
            model_id: model_id.to_string(),
            action: Action::Activated,
            reason: reason.to_string(),
            previous: r.active.clone(),
            gate: Some(g.clone()),
            override_reason: if g.passed {
                None
            } else {
                override_reason.map(str::to_string)
            },
        })
    })
}

fn check_activatable(r: &Registry, m: &ModelState) -> Result<()> {
    if r.active.as_deref() == Some(m.model_id.as_str()) {
        refuse!("{} is already the active model", m.model_id);
    }
    if m.approved_by.is_none() {
        refuse!(
            "{} is not approved: someone other than {} approves it first (`winsignal models \
             approve`)",
            m.model_id,
            m.trained_by.as_deref().map_or("whoever trained it", person)
        );
    }
    Ok(())
}

/// Makes the model that was active before the current one active again, by `actor`, with a reason.
pub fn rollback(store: &dyn Store, actor: &str, reason: &str) -> Result<Transition> {
    needs_reason(reason, "roll back")?;
    transition(store, |r| {
        let Some(current) = r.active.clone() else {
            refuse!("no model is active; there is nothing to roll back");
        };
        let Some(previous) = r.last_activation().and_then(|t| t.previous.clone()) else {
            refuse!(
                "{current} was the first active model; there is no earlier one to roll back to"
            );
        };
        r.model(&previous)
            .with_context(|| format!("the model active before {current} is gone"))?;
        Ok(Transition {
            seq: 0,
            at: Ts::now(),
            actor: actor.to_string(),
            model_id: previous,
            action: Action::RolledBack,
            reason: reason.to_string(),
            previous: Some(current),
            gate: None,
            override_reason: None,
        })
    })
}

/// Retires a model that is not active (a candidate set aside, or an old model), by `actor`.
pub fn retire(store: &dyn Store, model_id: &str, actor: &str, reason: &str) -> Result<Transition> {
    needs_reason(reason, "retire a model")?;
    transition(store, |r| {
        let m = r.model(model_id)?;
        let model_id = m.model_id.as_str();
        if m.stage == Stage::Active {
            refuse!("{model_id} is the active model: activate another one or roll back first");
        }
        if m.stage == Stage::Retired {
            refuse!("{model_id} is already retired");
        }
        Ok(Transition {
            seq: 0,
            at: Ts::now(),
            actor: actor.to_string(),
            model_id: model_id.to_string(),
            action: Action::Retired,
            reason: reason.to_string(),
            previous: None,
            gate: None,
            override_reason: None,
        })
    })
}

/// Compares the model `candidate_id` with the active model on the latest holdout of the data as it is
/// now: the closed deals at or after the cutoff the candidate's own test share gives, every landmark
/// snapshot of theirs, each model applied with its own catalog.
pub fn gate(store: &dyn Store, candidate_id: &str, progress: &mut dyn Progress) -> Result<Gate> {
    let snapshot = store.snapshot()?;
    let registry = Registry::read(&*snapshot)?;
    let candidate_id = registry.model(candidate_id)?.model_id.clone();
    if registry.active.as_deref() == Some(candidate_id.as_str()) {
        refuse!("{candidate_id} is the active model; the gate compares another model with it");
    }
    let (cid, candidate) = crate::models::load_model(&*snapshot, Some(&candidate_id))?;
    let active = match registry.active.clone().filter(|a| *a != cid) {
        Some(a) => Some(crate::models::load_model(&*snapshot, Some(&a))?),
        None => None,
    };
    let (ctx, checkpoint) = crate::pipeline::entities(store, &*snapshot)?;
    let resolve = |id: &str, m: &WinModel| -> Result<winsignal_features::Catalog> {
        let declared = crate::pipeline::catalog_for_model(None, id, m)?;
        crate::catalogs::resolve_for(&*snapshot, &declared, &ctx, &m.trained_on.versions)
    };
    let candidate_catalog = resolve(&cid, &candidate)?;
    let active_catalog = match &active {
        Some((id, m)) => Some(resolve(id, m)?),
        None => None,
    };
    let engine = crate::pipeline::replay_with(store, &*snapshot, ctx, checkpoint, progress)?;
    let horizon = snapshot::horizon(&engine);
    let mut snaps_of = |catalog: &winsignal_features::Catalog| {
        snapshot::snapshots(&engine, catalog, horizon, &mut |d, t| {
            progress.phase("computing snapshots", d, t)
        })
    };
    let candidate_snaps = snaps_of(&candidate_catalog);
    let ctx = engine.context();
    let test_share = candidate.options.test_share;
    let (split, rows) = model::latest_holdout(ctx, &candidate_snaps, test_share)?;
    let mut deals: Vec<&str> = rows.iter().map(|s| s.opportunity_id.as_str()).collect();
    deals.sort_unstable();
    deals.dedup();
    let holdout_deals = deals.len();
    let holdout_snapshots = rows.len();
    let candidate_metrics = model::evaluate(&candidate, ctx, rows)?;
    let active_metrics = match (&active, &active_catalog) {
        (Some((_, m)), Some(catalog)) => {
            // Each model's own catalog: their definitions, and the levels they were trained on, may
            // differ.
            let snaps = snaps_of(catalog);
            let (_, rows) = model::latest_holdout(ctx, &snaps, test_share)?;
            Some(model::evaluate(m, ctx, rows)?)
        }
        _ => None,
    };
    progress.finish();
    let failures = match &active_metrics {
        Some(a) => gate_failures(&candidate_metrics, a, &TOLERANCES),
        None => Vec::new(),
    };
    Ok(Gate {
        holdout: format!(
            "{} ({holdout_snapshots} snapshots of the candidate's landmarks)",
            split.info.description
        ),
        holdout_deals,
        holdout_snapshots,
        candidate_id: cid,
        candidate: candidate_metrics,
        active_id: active.map(|(id, _)| id),
        active: active_metrics,
        tolerances: TOLERANCES,
        passed: failures.is_empty(),
        failures,
    })
}

/// Each way `c` is worse than `a` beyond the tolerances, in words. A figure undefined for the
/// candidate but defined for the active model counts as worse.
pub fn gate_failures(c: &Metrics, a: &Metrics, tol: &Tolerances) -> Vec<String> {
    let mut out = Vec::new();
    match (c.auc, a.auc) {
        (Some(c), Some(a)) if c < a - tol.auc_drop => out.push(format!(
            "AUC {c:.3} against {a:.3} (more than {} lower)",
            tol.auc_drop
        )),
        (None, Some(_)) => out.push("its AUC is undefined on the holdout".into()),
        _ => {}
    }
    if c.brier > a.brier + tol.brier_rise || (c.brier.is_nan() && !a.brier.is_nan()) {
        out.push(format!(
            "Brier {:.4} against {:.4} (more than {} higher)",
            c.brier, a.brier, tol.brier_rise
        ));
    }
    match (c.calibration_slope, a.calibration_slope) {
        (Some(cs), Some(as_)) if (cs - 1.0).abs() > (as_ - 1.0).abs() + tol.slope_gap => {
            out.push(format!(
                "calibration slope {cs:.2} against {as_:.2} (more than {} further from 1)",
                tol.slope_gap
            ))
        }
        (None, Some(_)) => out.push("its calibration slope is undefined on the holdout".into()),
        _ => {}
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use winsignal_store::{EmbeddedStore, ModelRecord};

    fn metrics(auc: Option<f64>, brier: f64, slope: Option<f64>) -> Metrics {
        Metrics {
            rows: 100,
            won: 30,
            auc,
            brier,
            log_loss: 0.5,
            calibration_slope: slope,
            calibration_intercept: Some(0.0),
            calibration_in_the_large: Some(0.0),
        }
    }

    #[test]
    fn the_gate_fails_a_candidate_worse_beyond_each_tolerance_and_only_then() {
        let active = metrics(Some(0.80), 0.150, Some(1.05));
        // Within every tolerance (just): passes.
        let close = metrics(Some(0.781), 0.159, Some(0.86));
        assert!(gate_failures(&close, &active, &TOLERANCES).is_empty());
        // Better: passes.
        let better = metrics(Some(0.85), 0.120, Some(1.0));
        assert!(gate_failures(&better, &active, &TOLERANCES).is_empty());
        // Each figure beyond its tolerance fails, named.
        let f = gate_failures(
            &metrics(Some(0.779), 0.150, Some(1.0)),
            &active,
            &TOLERANCES,
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].starts_with("AUC 0.779"), "{f:?}");
        let f = gate_failures(&metrics(Some(0.80), 0.161, Some(1.0)), &active, &TOLERANCES);
        assert!(f.len() == 1 && f[0].starts_with("Brier"), "{f:?}");
        let f = gate_failures(
            &metrics(Some(0.80), 0.150, Some(1.16)),
            &active,
            &TOLERANCES,
        );
        assert!(
            f.len() == 1 && f[0].starts_with("calibration slope"),
            "{f:?}"
        );
        // Undefined where the active model's is defined: worse.
        let f = gate_failures(&metrics(None, 0.150, None), &active, &TOLERANCES);
        assert_eq!(f.len(), 2, "{f:?}");
        // Against an active model whose figures are undefined, nothing is held against it.
        let undefined = metrics(None, 0.150, None);
        assert!(gate_failures(&close, &undefined, &TOLERANCES).is_empty());
    }

    fn save(store: &EmbeddedStore, id: &str) {
        store
            .put_model(&ModelRecord {
                model_id: id.into(),
                kind: "win".into(),
                summary: "{}".into(),
                body: id.as_bytes().to_vec(),
            })
            .unwrap();
    }

    #[test]
    fn a_workspace_trained_before_stages_keeps_its_active_model_when_a_new_one_is_trained() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
        assert_eq!(Registry::read(&store).unwrap().active, None);
        save(&store, "aaaaaaaa-old");
        save(&store, "bbbbbbbb-old");
        // No transition: the latest saved is active, and the registry says it is implicit.
        let r = Registry::read(&store).unwrap();
        assert!(r.implicit);
        assert_eq!(r.active.as_deref(), Some("bbbbbbbb-old"));
        assert_eq!(r.model("aaaaaaaa-old").unwrap().stage, Stage::Candidate);
        let at = r.active_at(Ts::now());
        assert!(at.note.unwrap().contains("no activation is recorded"));

        // A new model is recorded as a candidate after the old active one is recorded as active.
        save(&store, "cccccccc-new");
        let done =
            register_trained(&store, "cccccccc-new", "local:alice", &mut crate::Silent).unwrap();
        assert_eq!(done.stage, Stage::Candidate);
        let r = Registry::read(&store).unwrap();
        assert!(!r.implicit);
        assert_eq!(r.active.as_deref(), Some("bbbbbbbb-old"));
        assert_eq!(r.transitions[0].actor, "rule:before-stages");
        let new = r.model("cccccccc").unwrap();
        assert_eq!(new.stage, Stage::Candidate);
        assert_eq!(new.trained_by.as_deref(), Some("local:alice"));
        // A prefix shared by no other model finds it; too short or unknown ones do not.
        assert!(r.model("cccc").is_err());
        assert!(r.model("dddddddd").is_err());

        // The same person under the API's name is refused; another approves. Rollback from the first
        // recorded activation has nowhere to go.
        let e = approve(&store, "cccccccc-new", "alice", "ok").unwrap_err();
        assert!(matches!(
            e.downcast_ref::<Refusal>(),
            Some(Refusal::Rule(_))
        ));
        approve(&store, "cccccccc-new", "bob", "ok").unwrap();
        let e = approve(&store, "cccccccc-new", "carol", "again").unwrap_err();
        assert!(e.to_string().contains("already approved by bob"), "{e}");
        let e = rollback(&store, "bob", "why not").unwrap_err();
        assert!(e.to_string().contains("first active model"), "{e}");
        retire(&store, "aaaaaaaa-old", "bob", "superseded").unwrap();
        assert_eq!(
            Registry::read(&store)
                .unwrap()
                .model("aaaaaaaa")
                .unwrap()
                .stage,
            Stage::Retired
        );
    }
}
