//! `winsignal demo`: generate the demo company, ingest it through every connector, summarise, find what
//! wins, train the win model, and end with the deals most at risk and one rep's coaching card.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use winsignal_core::Ts;
use winsignal_demo::{DemoConfig, Layout};
use winsignal_ingest::{Format, IngestRequest};
use winsignal_score::model::TrainOptions;
use winsignal_store::EmbeddedStore;

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

const MARKER: &str = "demo.json";

/// Salesforce custom fields of the demo export that carry canonical fields.
const DEMO_SALESFORCE_CONFIG: &str = r#"# Custom fields of the demo org, mapped onto canonical fields.
[fields.Account]
Segment__c = "segment"

[fields.Task]
Direction__c = "direction"

[fields.Event]
Status__c = "status"
"#;

fn prepare_workspace(data: &Path) -> Result<()> {
    if data.join("store.sqlite").exists() {
        if !data.join(MARKER).exists() {
            bail!(
                "{} already holds a workspace that is not a demo; pass --data with another directory (demo replaces its workspace)",
                data.display()
            );
        }
        std::fs::remove_dir_all(data)
            .with_context(|| format!("removing the earlier demo in {}", data.display()))?;
    }
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    Ok(())
}

pub fn run(data: &Path, quiet: bool, args: &DemoArgs) -> Result<()> {
    if !(args.scale > 0.0 && args.scale <= 100.0) {
        bail!(
            "--scale must be between 0 (exclusive) and 100, found {}",
            args.scale
        );
    }
    prepare_workspace(data)?;
    let input = data.join("demo-input");
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
    let say = |s: String| {
        if !quiet {
            eprintln!("{s}");
        }
    };
    let mut bar = Bar::new(quiet);
    let t0 = Instant::now();
    let manifest = winsignal_demo::generate(&cfg, &input, &mut |what: &str, rows: u64| {
        bar.phase(&format!("generating {what}"), rows % 1000, 1000)
    })
    .context("generating the demo company")?;
    bar.finish();
    let gen_s = t0.elapsed().as_secs_f64();
    say(format!(
        "Generated the demo company (seed {}, scale {}) in {gen_s:.1} s under {}",
        args.seed,
        args.scale,
        input.display()
    ));

    let config_path = input.join("salesforce-config.toml");
    std::fs::write(&config_path, DEMO_SALESFORCE_CONFIG)
        .with_context(|| format!("writing {}", config_path.display()))?;

    let mut store = EmbeddedStore::open(data)?;
    let t1 = Instant::now();
    let mut requests: Vec<IngestRequest> = Vec::new();
    let mut salesforce_dirs: Vec<PathBuf> = Vec::new();
    for f in &manifest.files {
        let path = input.join(&f.path);
        match f.format.as_str() {
            "salesforce" => {
                let dir = path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| input.clone());
                if !salesforce_dirs.contains(&dir) {
                    salesforce_dirs.push(dir.clone());
                    let mut req = IngestRequest::new(dir);
                    req.format = Some(Format::Salesforce);
                    req.salesforce_config = Some(config_path.clone());
                    requests.push(req);
                }
            }
            "segment" => {
                let mut req = IngestRequest::new(path);
                req.format = Some(Format::Segment);
                requests.push(req);
            }
            _ => {
                let mut req = IngestRequest::new(path);
                req.format = Some(Format::Canonical);
                req.kind = f.kind.as_deref().map(str::parse).transpose()?;
                requests.push(req);
            }
        }
    }
    let mut loads = Vec::new();
    let mut bar = Bar::new(quiet);
    for mut req in requests {
        req.now = Ts::now();
        let report = winsignal_ingest::ingest(&mut store, &req, &mut |p| bar.update(p))?;
        loads.extend(report.loads);
    }
    bar.finish();
    let ingest_s = t1.elapsed().as_secs_f64();
    let rows: u64 = loads.iter().map(|l| l.stats.rows_read).sum();
    let quarantined: u64 = loads.iter().map(|l| l.stats.quarantined).sum();
    let injected: u64 = manifest.files.iter().map(|f| f.injected_bad_rows).sum();
    std::fs::write(data.join(MARKER), serde_json::to_string_pretty(&manifest)?)?;

    let report = winsignal_ingest::quality::report(&store)?;
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
    for l in &loads {
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

    let t2 = Instant::now();
    let computed =
        crate::features::compute(&store, winsignal_features::default_catalog(), data, quiet)?;
    say(format!(
        "\nComputed behaviours and features in {:.1} s.",
        t2.elapsed().as_secs_f64()
    ));
    println!();
    crate::features::print_summary(&computed);

    let t3 = Instant::now();
    let discovery = winsignal_discover::discover(
        &computed.catalog,
        &computed.snapshots,
        &winsignal_discover::Options {
            timing: computed.timing.clone(),
            history_flags: computed.history_flags.clone(),
            ..winsignal_discover::Options::default()
        },
    )?;
    say(format!(
        "\nRan discovery in {:.1} s.",
        t3.elapsed().as_secs_f64()
    ));
    println!();
    crate::discover::print_findings(&discovery, 8);

    // The win model, trained as `winsignal train` trains it (the same evidence, options and seed, so
    // the same model), so that `score` and `explain` work right after the demo.
    let t4 = Instant::now();
    let ctx = winsignal_features::Context::from_store(&store)?;
    let evidence = crate::scoring::evidence_discovery(&computed)?;
    let trained = match crate::scoring::train_and_save(
        &mut store,
        &ctx,
        &computed,
        &evidence,
        &TrainOptions::default(),
    ) {
        Ok(t) => Some(t),
        // Too few closed deals (a very small --scale) leaves the demo without a model, not failed.
        Err(e) if e.downcast_ref::<winsignal_score::Error>().is_some() => {
            println!("\nNo win model: {e:#}.");
            None
        }
        Err(e) => return Err(e),
    };
    let mut scored = None;
    if let Some(t) = &trained {
        say(format!(
            "\nTrained the win model in {:.1} s.",
            t4.elapsed().as_secs_f64()
        ));
        println!();
        print_model_quality(t);
        let mut bar = Bar::new(quiet);
        let engine = crate::features::replay(&store, &ctx, data, &mut bar)?;
        bar.finish();
        let (as_of, deals, _) =
            crate::scoring::scores(&engine, &computed.catalog, &t.model, None, None)?;
        println!();
        crate::scoring::print_at_risk(&deals, as_of, 5);
        scored = Some((as_of, deals));
    }

    let cards = crate::reps::all_scorecards(&store, &computed, &discovery)?;
    println!();
    match crate::reps::most_to_gain(&cards) {
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
            crate::reps::print_card(&cards, card);
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

    let quality = winsignal_ingest::quality::report(&store)?;
    let report = data.join("report.html");
    crate::report::write(
        &report,
        &discovery,
        &computed,
        &quality,
        &crate::report::Scoring {
            model: match (&trained, &scored) {
                (Some(t), Some((as_of, deals))) => Some(crate::report::ModelScores {
                    id: &t.id,
                    model: &t.model,
                    scores: Ok((*as_of, deals)),
                }),
                _ => None,
            },
            cards: &cards,
        },
    )?;
    println!("\nThe report: {}", report.display());
    let scoring_hint = match scored.as_ref().and_then(|(_, s)| {
        crate::scoring::by_risk(s).first().map(|d| &d.opportunity_id)
    }) {
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

/// The win model's holdout quality in two lines (`winsignal train` prints it in full).
fn print_model_quality(t: &crate::scoring::Trained) {
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
