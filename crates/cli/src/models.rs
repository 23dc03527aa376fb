//! `winsignal models`: the win models with their stages, and the registry's steps: approve, activate
//! (after the gate), roll back, retire, the policy, and which model was active when. The rules live in
//! `winsignal_workspace::registry`; this parses and prints. The actor is the account running the
//! command (`local:<account>`), as in the audit log.

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use winsignal_core::Ts;
use winsignal_store::Store;
use winsignal_workspace::audit;
use winsignal_workspace::registry::{self, Gate, Registry, Transition};

use crate::progress::Bar;
use crate::{output, Global};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Every win model, oldest first: id, stage, who trained and approved it, holdout AUC and Brier.
    List {
        /// Print as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// One model: its stage, who trained and approved it, its holdout figures and its transitions.
    Show {
        /// The model's id (or a prefix of at least 6 characters only it has).
        id: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a candidate. Refused to whoever trained it (two-person rule).
    Approve {
        id: String,
        /// Why it may serve (kept in the registry and the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Make an approved model the active one, after the gate: it is compared with the active model on
    /// the latest holdout and refused if worse beyond the tolerances (AUC 0.02 lower, Brier 0.01 higher,
    /// calibration slope 0.1 further from 1) unless --override gives a reason. A running `winsignal
    /// serve` switches to it within a second and rescores the open deals.
    Activate {
        id: String,
        #[arg(long)]
        reason: String,
        /// Activate even though the gate refuses, for this reason (recorded).
        #[arg(long = "override", value_name = "REASON")]
        override_reason: Option<String>,
        /// Print the transition, with the gate's figures, as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the model that was active before the current one active again (no gate: it served
    /// before).
    Rollback {
        #[arg(long)]
        reason: String,
    },
    /// Set a model that is not active aside.
    Retire {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// The gate's comparison of a model with the active one on the latest holdout, without activating.
    Gate {
        id: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Which model was active at a time (default now), who activated it and who had approved it.
    Active {
        /// RFC 3339 or YYYY-MM-DD (a date means its first instant, UTC).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show or set the registry's policy: whether a workspace's first model is active as trained, and
    /// the auto-approve rule for retrained models.
    Policy {
        /// The first win model of the workspace: active as trained (the default), or a candidate.
        #[arg(long, value_name = "STAGE")]
        first_model: Option<FirstModel>,
        /// Approve and activate a newly trained model when its AUC on the latest holdout is at least
        /// this share of the active model's and it passes the gate (e.g. 0.95).
        #[arg(long, value_name = "SHARE", conflicts_with = "no_auto_approve")]
        auto_approve_min_auc_ratio: Option<f64>,
        /// Turn the auto-approve rule off.
        #[arg(long)]
        no_auto_approve: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FirstModel {
    Active,
    Candidate,
}

pub fn run(global: &Global, store: &dyn Store, command: ModelsCommand) -> Result<()> {
    let actor = audit::local_actor();
    match command {
        ModelsCommand::List { json } => {
            let r = Registry::read(store)?;
            if json {
                return output::print_json(&serde_json::json!({
                    "active": r.active,
                    "implicit": r.implicit,
                    "models": r.models,
                }));
            }
            if r.models.is_empty() {
                println!("No win model yet: run `winsignal train`.");
                return Ok(());
            }
            println!(
                "{:<32}  {:<9}  {:<18} {:<18} {:>6} {:>7}",
                "model", "stage", "trained by", "approved by", "AUC", "Brier"
            );
            for m in &r.models {
                let eval = &m.summary["evaluation"]["model"];
                println!(
                    "{:<32}  {:<9}  {:<18} {:<18} {:>6} {:>7}",
                    m.model_id,
                    m.stage.as_str(),
                    m.trained_by.as_deref().unwrap_or("–"),
                    m.approved_by.as_deref().unwrap_or("–"),
                    figure(&eval["auc"], 3),
                    figure(&eval["brier"], 4),
                );
            }
            if r.implicit {
                println!(
                    "No activation is recorded: the latest trained model is active until one is."
                );
            }
            Ok(())
        }
        ModelsCommand::Show { id, json } => {
            let r = Registry::read(store)?;
            let m = r.model(&id)?;
            let transitions: Vec<&Transition> = r
                .transitions
                .iter()
                .filter(|t| t.model_id == m.model_id)
                .collect();
            if json {
                return output::print_json(&serde_json::json!({
                    "model": m,
                    "transitions": transitions,
                }));
            }
            println!("Win model {} — {}.", m.model_id, m.stage.as_str());
            let eval = &m.summary["evaluation"]["model"];
            println!(
                "Holdout when trained: AUC {}, Brier {}, calibration slope {} ({}).",
                figure(&eval["auc"], 3),
                figure(&eval["brier"], 4),
                figure(&eval["calibration_slope"], 2),
                m.summary["trained_on"]["split"]["description"]
                    .as_str()
                    .unwrap_or("holdout not described")
            );
            for t in transitions {
                print_transition(t);
            }
            Ok(())
        }
        ModelsCommand::Approve { id, reason } => {
            let t = registry::approve(store, &id, &actor, &reason)?;
            print_transition(&t);
            Ok(())
        }
        ModelsCommand::Activate {
            id,
            reason,
            override_reason,
            json,
        } => {
            let mut bar = Bar::new(global.quiet);
            let t = registry::activate(
                store,
                &id,
                &actor,
                &reason,
                override_reason.as_deref(),
                &mut bar,
            );
            drop(bar);
            let t = t?;
            if json {
                return output::print_json(&t);
            }
            if let Some(g) = &t.gate {
                print_gate(g);
                if g.passed && override_reason.is_some() {
                    println!("The gate passes: the override was not needed and is not recorded.");
                }
            }
            print_transition(&t);
            Ok(())
        }
        ModelsCommand::Rollback { reason } => {
            let t = registry::rollback(store, &actor, &reason)?;
            print_transition(&t);
            Ok(())
        }
        ModelsCommand::Retire { id, reason } => {
            let t = registry::retire(store, &id, &actor, &reason)?;
            print_transition(&t);
            Ok(())
        }
        ModelsCommand::Gate { id, json } => {
            let mut bar = Bar::new(global.quiet);
            let g = registry::gate(store, &id, &mut bar);
            drop(bar);
            let g = g?;
            if json {
                return output::print_json(&g);
            }
            print_gate(&g);
            Ok(())
        }
        ModelsCommand::Active { at, json } => {
            let at = match at {
                Some(text) => Ts::parse(&text).with_context(|| {
                    format!("--at {text:?}: expected a date (YYYY-MM-DD) or an RFC 3339 time")
                })?,
                None => Ts::now(),
            };
            let a = Registry::read(store)?.active_at(at);
            if json {
                return output::print_json(&a);
            }
            match (&a.model_id, &a.activation) {
                (Some(id), Some(act)) => {
                    println!("At {}, {id} was active.", at.to_rfc3339());
                    println!(
                        "Activated by {} at {}: {}.",
                        act.actor,
                        act.at.to_rfc3339(),
                        act.reason
                    );
                    match &a.approval {
                        Some(ap) => println!(
                            "Approved by {} at {}: {}.",
                            ap.actor,
                            ap.at.to_rfc3339(),
                            ap.reason
                        ),
                        None => println!(
                            "No approval{}.",
                            a.note
                                .as_deref()
                                .map_or(String::new(), |n| format!(": {n}"))
                        ),
                    }
                }
                _ => println!(
                    "At {}: {}.",
                    at.to_rfc3339(),
                    a.note.as_deref().unwrap_or("no model was active")
                ),
            }
            Ok(())
        }
        ModelsCommand::Policy {
            first_model,
            auto_approve_min_auc_ratio,
            no_auto_approve,
            json,
        } => {
            let mut p = registry::policy(store)?;
            let changing =
                first_model.is_some() || auto_approve_min_auc_ratio.is_some() || no_auto_approve;
            if let Some(f) = first_model {
                p.first_model_active = matches!(f, FirstModel::Active);
            }
            if let Some(r) = auto_approve_min_auc_ratio {
                p.auto_approve_min_auc_ratio = Some(r);
            }
            if no_auto_approve {
                p.auto_approve_min_auc_ratio = None;
            }
            if changing {
                registry::set_policy(store, &actor, &p).context("setting the model policy")?;
            }
            if json {
                return output::print_json(&p);
            }
            println!(
                "First model: {}.",
                if p.first_model_active {
                    "active as trained"
                } else {
                    "a candidate, like every other"
                }
            );
            match p.auto_approve_min_auc_ratio {
                Some(r) => println!(
                    "Auto-approve: a retrained model whose AUC on the latest holdout is at least {:.0} % of the active model's, and that passes the gate, is approved and activated by the rule.",
                    r * 100.0
                ),
                None => println!(
                    "Auto-approve: off (a retrained model is a candidate until approved and activated)."
                ),
            }
            Ok(())
        }
    }
}

/// A figure of a model's summary with `decimals` decimals, or "–" when it is undefined.
fn figure(v: &serde_json::Value, decimals: usize) -> String {
    v.as_f64().map_or("–".into(), |v| format!("{v:.decimals$}"))
}

fn print_transition(t: &Transition) {
    let what = match t.action {
        registry::Action::Trained => "trained",
        registry::Action::Approved => "approved",
        registry::Action::Activated => "activated",
        registry::Action::RolledBack => "made active again by rollback",
        registry::Action::Retired => "retired",
    };
    let mut line = format!(
        "{}  {} {what} by {}: {}",
        t.at.to_rfc3339(),
        t.model_id,
        t.actor,
        t.reason
    );
    if let Some(p) = &t.previous {
        line.push_str(&format!(" (replacing {p})"));
    }
    if let Some(o) = &t.override_reason {
        line.push_str(&format!(" [gate overridden: {o}]"));
    }
    println!("{line}");
}

fn print_gate(g: &Gate) {
    println!("Latest holdout: {}.", g.holdout);
    let fmt = |m: &winsignal_score::model::Metrics| {
        format!(
            "AUC {}, Brier {:.4}, calibration slope {}",
            m.auc.map_or("–".into(), |v| format!("{v:.3}")),
            m.brier,
            m.calibration_slope
                .map_or("–".into(), |v| format!("{v:.2}"))
        )
    };
    println!("  candidate {}: {}", g.candidate_id, fmt(&g.candidate));
    match (&g.active_id, &g.active) {
        (Some(id), Some(a)) => println!("  active    {id}: {}", fmt(a)),
        _ => println!("  no active model to compare with"),
    }
    if g.passed {
        println!("The gate passes.");
    } else {
        println!("The gate refuses: {}.", g.failures.join("; "));
    }
}
