//! `winsignal demo`: the demo run by [`winsignal_workspace::demo`], printed step by step: what came in,
//! the top findings, the win model, the deals most at risk and one rep's coaching card.

use std::path::Path;

use anyhow::Result;
use clap::Args;
use winsignal_demo::{DemoConfig, Layout};
use winsignal_workspace::demo::{DemoObserver, DemoStep};
use winsignal_workspace::models::Trained;

use crate::output::n;
use crate::progress::Bar;

#[derive(Args)]
pub struct DemoArgs {
    /// Random seed: the same seed gives byte-identical files and results.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Size relative to the default company (about 40 reps, 2,000 accounts, 8,000 opportunities,
    /// 500k activities, 3M product events). 0.05 gives a quick small demo.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Write every file in the canonical format instead of Salesforce + Segment + canonical.
    #[arg(long)]
    pub canonical: bool,
    /// Generate a clean company, without the deliberately bad rows, orphans and duplicates.
    #[arg(long)]
    pub no_mess: bool,
}

pub fn run(data: &Path, quiet: bool, args: &DemoArgs) -> Result<()> {
    let cfg = DemoConfig {
        seed: args.seed,
        scale: args.scale,
        layout: if args.canonical {
            Layout::Canonical
        } else {
            Layout::Mixed
        },
        mess: !args.no_mess,
    };
    let mut printer = Printer {
        quiet,
        seed: args.seed,
        scale: args.scale,
        most_at_risk: None,
    };
    let mut bar = Bar::new(quiet);
    winsignal_workspace::demo::run(data, &cfg, &mut printer, &mut bar)?;
    bar.finish();
    let scoring_hint = match &printer.most_at_risk {
        Some(id) => format!(
            "`winsignal score` for every open deal's chance of winning, `winsignal explain {id}` for \
             why the deal most at risk scores as it does and what to do next, "
        ),
        // No model: the lines above said why; there is nothing to score with.
        None => String::new(),
    };
    println!(
        "\nNext: open the report in a browser, {scoring_hint}`winsignal reps` for every rep's \
         scorecard, `winsignal discover` for every finding (`--json` for all the numbers), \
         `winsignal quality` for the full data-quality report, `winsignal trace opportunity <id>` for \
         provenance, `winsignal snapshots --out snapshots.parquet` for the analysis table, \
         `winsignal explain-feature <opportunity> exec_engaged` for the events behind a value."
    );
    Ok(())
}

/// Prints each step of the demo as it is done.
struct Printer {
    quiet: bool,
    seed: u64,
    scale: f64,
    /// The open deal most at risk, named in the closing hint.
    most_at_risk: Option<String>,
}

impl Printer {
    fn say(&self, s: String) {
        if !self.quiet {
            eprintln!("{s}");
        }
    }
}

impl DemoObserver for Printer {
    fn step(&mut self, step: DemoStep<'_>) {
        match step {
            DemoStep::Generated { input, seconds, .. } => self.say(format!(
                "Generated the demo company (seed {}, scale {}) in {seconds:.1} s under {}",
                self.seed,
                self.scale,
                input.display()
            )),
            DemoStep::Ingested {
                manifest,
                loads,
                quality: report,
                seconds: ingest_s,
            } => {
                let args = self;
                let rows: u64 = loads.iter().map(|l| l.stats.rows_read).sum();
                let quarantined: u64 = loads.iter().map(|l| l.stats.quarantined).sum();
                let injected: u64 = manifest.files.iter().map(|f| f.injected_bad_rows).sum();
                println!("winsignal demo — seed {}, scale {}", args.seed, args.scale);
                println!(
                    "data window {} to {}",
                    manifest.data_start.to_date_string(),
                    manifest.data_end.to_date_string()
                );
                println!(
                    "\nIngested {} rows from {} files in {ingest_s:.1} s ({} rows/s)",
                    n(rows),
                    loads.len(),
                    n((rows as f64 / ingest_s.max(1e-9)) as u64)
                );
                println!(
                    "  {:<34} {:>10} {:>10} {:>11}",
                    "source", "rows", "accepted", "quarantined"
                );
                for l in loads.iter() {
                    println!(
                        "  {:<34} {:>10} {:>10} {:>11}",
                        l.source,
                        n(l.stats.rows_read),
                        n(l.stats.accepted),
                        n(l.stats.quarantined)
                    );
                }
                println!(
                    "\nQuarantined {} rows (the generator planted {} bad rows); top reasons:",
                    n(quarantined),
                    n(injected)
                );
                for c in report.quarantine.by_reason.iter().take(6) {
                    println!("  {:>6}  {}", n(c.count), c.code);
                }
                println!("\nRecords held:");
                for (kind, count) in &report.totals {
                    println!("  {kind:<22} {:>12}", n(*count));
                }
                println!("\nIdentity resolution (records tied to an account):");
                for m in report.identity.iter().filter(|m| m.total >= 100) {
                    println!(
                        "  {:<34} {:<18} {:>6.1}% of {}",
                        m.source,
                        m.kind.as_str(),
                        m.rate * 100.0,
                        n(m.total)
                    );
                }
                let orphans: u64 = report.orphans.iter().map(|o| o.count).sum();
                println!(
                    "\nKept and flagged: {} orphan references, {} accepted-with-a-note rows.",
                    n(orphans),
                    n(report.flags.iter().map(|f| f.count).sum())
                );
                println!(
                    "Planted strongest rep: {}; weakest: {} (ground truth in docs/demo.md).",
                    manifest.strongest_rep, manifest.weakest_rep
                );
            }
            DemoStep::Computed { computed, seconds } => {
                self.say(format!(
                    "\nComputed behaviours and features in {seconds:.1} s."
                ));
                println!();
                crate::features::print_summary(computed);
            }
            DemoStep::Discovered { discovery, seconds } => {
                self.say(format!("\nRan discovery in {seconds:.1} s."));
                println!();
                crate::discover::print_findings(discovery, 8);
            }
            DemoStep::NoModel { reason } => println!("\nNo win model: {reason}."),
            DemoStep::Trained { trained, seconds } => {
                self.say(format!("\nTrained the win model in {seconds:.1} s."));
                println!();
                print_model_quality(trained);
            }
            DemoStep::Scored { as_of, deals } => {
                println!();
                crate::scoring::print_at_risk(deals, as_of, 5);
                self.most_at_risk = winsignal_workspace::scoring::by_risk(deals)
                    .first()
                    .map(|d| d.opportunity_id.clone());
            }
            DemoStep::Coached { cards } => {
                println!();
                match winsignal_workspace::coaching::most_to_gain(cards) {
                    Some((card, priority)) => {
                        println!(
                            "Coaching card of {} ({}): of the {} reps, the one whose top coaching priority, {}, \
                             could add the most wins on the open pipeline ({:.1} expected).",
                            card.name.as_deref().unwrap_or("a rep"),
                            card.rep_id,
                            cards.reps.len(),
                            priority.title,
                            priority.expected_extra_wins
                        );
                        println!();
                        crate::reps::print_card(cards, card);
                    }
                    None if cards.behaviours.is_empty() => println!(
                        "No coaching card: no behaviour goes significantly with winning in this data, so there is \
                         nothing to coach on yet."
                    ),
                    None => println!(
                        "No coaching card: every rep is at or above the best quarter of reps on every behaviour \
                         that goes with winning."
                    ),
                }
            }
            DemoStep::Reported { path } => println!("\nThe report: {}", path.display()),
        }
    }
}

/// The win model's holdout quality in two lines (`winsignal train` prints it in full).
fn print_model_quality(t: &Trained) {
    let (m, on) = (&t.model.evaluation, &t.model.trained_on);
    let auc =
        |x: &winsignal_score::model::Metrics| x.auc.map_or("–".into(), |a| format!("{a:.3}"));
    println!(
        "Win model {} saved: on {} held-out snapshots of {} deals closed {} – {}, AUC {} \
         (logistic regression {}, stage-only win rates {}).",
        t.id,
        n(m.model.rows as u64),
        n(on.deals_test as u64),
        on.cutoff.to_date_string(),
        on.latest_close.to_date_string(),
        auc(&m.model),
        auc(&m.logistic),
        auc(&m.stage_only),
    );
    println!(
        "Calibration on the holdout: slope {:.2}, calibration in the large {:+.2} (1 and 0 when \
         calibrated){}.",
        m.model.calibration_slope.unwrap_or(f64::NAN),
        m.model.calibration_in_the_large.unwrap_or(f64::NAN),
        if t.model.calibration.is_some() {
            "; recalibrated on the deals closed just before the holdout"
        } else {
            ""
        }
    );
}
