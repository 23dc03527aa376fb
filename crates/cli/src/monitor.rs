//! `winsignal monitor`: whether recent deals still look like the ones the win model was trained on.
//! The test and the alarm rule live in `winsignal_stats::drift`, the windows in
//! `winsignal_workspace::monitor`; this prints.

use anyhow::Result;
use clap::Subcommand;
use winsignal_store::Store;

use crate::features::CatalogArg;
use crate::progress::Bar;
use crate::{output, Global};

#[derive(Subcommand)]
pub enum MonitorCommand {
    /// Feature drift: each feature's values at the landmark snapshots of each recent window against
    /// those of the deals that trained the model, by the population stability index with a p-value
    /// for the sizes at hand (effective sizes: an account's snapshots are alike, so they count as
    /// fewer draws). A feature alarms when its p-value is below 1 % split over the features
    /// and its PSI is at least 0.1 (docs/monitoring.md).
    Drift {
        /// Days per window.
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        window: u32,
        /// How many windows, back from the end of the data.
        #[arg(long, value_name = "N", default_value_t = 3)]
        windows: usize,
        /// The model to compare with (default: the active win model).
        #[arg(long, value_name = "ID")]
        model: Option<String>,
        #[command(flatten)]
        catalog: CatalogArg,
        /// Print as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Live performance: the win model's AUC, Brier score and calibration on the latest holdout and on
    /// the deals closed since it was trained, each beside the estimate made from its probabilities alone
    /// (confidence-based, before outcomes arrive), the estimate for the deals open now, and a
    /// recommendation to roll back when live AUC (since activation, else since training) falls below
    /// the gate's floor.
    Performance {
        /// The model to measure (default: the active win model).
        #[arg(long, value_name = "ID")]
        model: Option<String>,
        /// Print as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// One monitoring pass for alerts, as `serve --monitor-every` runs it: the active win model's live
    /// performance and the drift of the latest window, in one replay. Records an alert when live AUC
    /// falls below the floor (with the rollback recommendation) or features drift, again when what
    /// drifts changes, and a resolution when the condition ends; webhooks with `--on alert` are sent
    /// them by `winsignal serve`. Keeps the figures for `/metrics`. Run it from a scheduler.
    Check {
        /// Days in the window compared with the training data.
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        window: u32,
        /// Print as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// The monitoring alerts firing now (recorded by `monitor check` or the service's pass).
    Alerts {
        /// Print as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(global: &Global, store: &dyn Store, command: MonitorCommand) -> Result<()> {
    match command {
        MonitorCommand::Drift {
            window,
            windows,
            model,
            catalog,
            json,
        } => {
            let mut bar = Bar::new(global.quiet);
            let d = winsignal_workspace::monitor::drift(
                store,
                catalog.catalog.as_deref(),
                model.as_deref(),
                window,
                windows,
                &mut bar,
            )?;
            if json {
                return output::print_json(&d);
            }
            if d.windows.is_empty() {
                for n in &d.notes {
                    println!("Note: {n}.");
                }
                return Ok(());
            }
            println!(
                "Feature drift against model {} ({} training snapshots, {} features; alarm: p < {} / {} and PSI ≥ {}):",
                d.model_id, d.training_snapshots, d.features_tested, d.alpha, d.features_tested, d.min_psi
            );
            for w in &d.windows {
                println!(
                    "\n{} to {}: {} snapshots; {}",
                    w.from.to_date_string(),
                    w.until.to_date_string(),
                    w.snapshots,
                    if w.alarms.is_empty() {
                        "no alarm".to_string()
                    } else {
                        format!("ALARM on {}", w.alarms.join(", "))
                    }
                );
                if let Some(f) = &w.score {
                    println!(
                        "  score (P(win))           PSI {:>6.3}  p {:>9.2e}; mean log-odds {:+.3} against training{}",
                        f.psi,
                        f.p_value,
                        w.logit_shift,
                        if f.alarm { "  ALARM" } else { "" }
                    );
                }
                let moved: Vec<String> = w
                    .contributions
                    .iter()
                    .take(3)
                    .map(|c| format!("{} {:+.3}", c.term, c.shift))
                    .collect();
                if !moved.is_empty() {
                    println!("  moved the score most (log-odds): {}", moved.join(", "));
                }
                for f in w.features.iter().take(5) {
                    println!(
                        "  {:<24} PSI {:>6.3}  p {:>9.2e}  missing {:>5.1}% (training {:>5.1}%){}",
                        f.feature,
                        f.psi,
                        f.p_value,
                        100.0 * f.missing_window,
                        100.0 * f.missing_training,
                        if f.alarm { "  ALARM" } else { "" }
                    );
                }
            }
            for n in &d.notes {
                println!("Note: {n}.");
            }
            Ok(())
        }
        MonitorCommand::Check { window, json } => {
            let mut bar = Bar::new(global.quiet);
            let c = winsignal_workspace::alerts::check(store, window, &mut bar);
            drop(bar);
            let c = c?;
            if json {
                return output::print_json(&serde_json::json!({
                    "figures": c.figures,
                    "recorded": c.recorded.iter().map(|(seq, a)| serde_json::json!({"seq": seq, "alert": a})).collect::<Vec<_>>(),
                    "firing": c.firing,
                }));
            }
            let f = &c.figures;
            let f3 = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
            println!(
                "Win model {}: live AUC {} (floor {}); holdout AUC {} (estimated {}); open deals' AUC estimated {}{}.",
                f.model_id,
                f3(f.live_auc),
                f3(f.auc_floor),
                f3(f.holdout_auc),
                f3(f.holdout_estimated_auc),
                f3(f.open_estimated_auc),
                if f.estimate_trusted { "" } else { " (not trusted)" }
            );
            match (f.window_from, f.window_until) {
                (Some(from), Some(until)) => println!(
                    "Window {} to {}: {} snapshots, score PSI {}, {} of {} features alarming.",
                    from.to_date_string(),
                    until.to_date_string(),
                    f.window_snapshots,
                    f3(f.score_psi),
                    f.features.iter().filter(|x| x.alarm).count(),
                    f.features.len()
                ),
                _ => println!("Drift: not measured (see `winsignal monitor drift`)."),
            }
            for n in c.performance.notes.iter().chain(&c.drift.notes) {
                println!("Note: {n}.");
            }
            if c.recorded.is_empty() {
                println!("No alert started, changed or ended.");
            }
            for (seq, a) in &c.recorded {
                println!("Recorded alert {seq} ({}): {}.", state(a), a.summary);
                if let Some(r) = &a.recommendation {
                    println!("  RECOMMENDATION: {r}.");
                }
            }
            println!("{} alert(s) firing.", c.firing.len());
            Ok(())
        }
        MonitorCommand::Alerts { json } => {
            let firing = winsignal_workspace::alerts::firing(store)?;
            if json {
                return output::print_json(&firing);
            }
            if firing.is_empty() {
                println!("No alert firing.");
            }
            for a in &firing {
                println!(
                    "{} since {}: {}.",
                    a.key,
                    a.checked_at.to_rfc3339(),
                    a.summary
                );
                if let Some(r) = &a.recommendation {
                    println!("  RECOMMENDATION: {r}.");
                }
            }
            Ok(())
        }
        MonitorCommand::Performance { model, json } => {
            let mut bar = Bar::new(global.quiet);
            let p = winsignal_workspace::monitor::performance(store, model.as_deref(), &mut bar);
            drop(bar);
            let p = p?;
            if json {
                return output::print_json(&p);
            }
            let f3 = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
            let f4 = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.4}"));
            println!(
                "Win model {}: holdout AUC when trained {}, floor {}.",
                p.model_id,
                f3(p.trained_auc),
                f3(p.auc_floor)
            );
            println!(
                "{:<40} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6}",
                "", "deals", "snapshots", "AUC", "est.", "Brier", "est.", "slope"
            );
            let since = format!("closed after {}", p.since.to_date_string());
            let activated = p
                .activated_at
                .map(|t| format!("closed since activation ({})", t.to_date_string()));
            let mut rows = vec![
                ("latest holdout", &p.holdout),
                (since.as_str(), &p.since_training),
            ];
            if let (Some(name), Some(r)) = (activated.as_deref(), p.since_activation.as_ref()) {
                rows.push((name, r));
            }
            if let Some(r) = p.served.as_ref() {
                rows.push(("served live (last score before close)", r));
            }
            for (name, r) in rows {
                let m = r.metrics.as_ref();
                println!(
                    "{:<40} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6}",
                    name,
                    r.deals,
                    r.snapshots,
                    f3(m.and_then(|m| m.auc)),
                    f3(r.estimated_auc),
                    f4(m.map(|m| m.brier)),
                    f4(r.estimated_brier),
                    m.and_then(|m| m.calibration_slope)
                        .map_or("–".to_string(), |v| format!("{v:.2}"))
                );
            }
            let o = &p.open_now;
            println!(
                "{:<40} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6}",
                "open now (estimate only)",
                o.deals,
                o.deals,
                "",
                f3(o.estimated_auc),
                "",
                f4(o.estimated_brier),
                ""
            );
            println!("Holdout: {}.", p.holdout_description);
            if p.estimate_trusted {
                println!(
                    "The estimate from probabilities alone came within {} of the realised AUC on the holdout.",
                    winsignal_workspace::monitor::ESTIMATE_TOLERANCE
                );
            }
            let h = &p.human;
            if h.review_items > 0 || h.actions_done + h.actions_not_relevant > 0 {
                println!(
                    "People: {} review items on its score changes ({} accepted, {} edited, {} rejected; {} blamed on the model); its actions marked done {} times, not relevant {} times.",
                    h.review_items, h.accepted, h.edited, h.rejected, h.model_error, h.actions_done, h.actions_not_relevant
                );
            }
            if let (Some(reviewer), Some(model)) = (h.edits_reviewer_brier, h.edits_model_brier) {
                println!(
                    "Of the deals reviewers edited, {} have closed: Brier score of the corrections {reviewer:.4}, of the model's P(win) they corrected {model:.4} ({}).",
                    h.edits_closed,
                    if reviewer < model { "the reviewers were closer" } else { "the model was as close or closer" }
                );
            }
            if let Some(r) = &p.recommendation {
                println!("RECOMMENDATION: {r}.");
            }
            for n in &p.notes {
                println!("Note: {n}.");
            }
            Ok(())
        }
    }
}

fn state(a: &winsignal_workspace::alerts::Alert) -> &'static str {
    match a.state {
        winsignal_workspace::alerts::State::Firing => "firing",
        winsignal_workspace::alerts::State::Resolved => "resolved",
    }
}
