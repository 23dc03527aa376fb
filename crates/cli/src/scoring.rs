//! `winsignal train`, `score` and `explain`: the win model, per-deal scores with their explanations,
//! next-best actions and coaching, and the lineage of every factor.

use crate::features::{compute, CatalogArg};
use crate::output::n;
use crate::progress::Bar;
use crate::Global;
use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use winsignal_core::Ts;
use winsignal_score::explain::{self, DealScore};
use winsignal_score::model::{self, Metrics, TrainOptions, WinModel};
use winsignal_store::Store;
use winsignal_workspace::audit;
use winsignal_workspace::models::{train_and_save, Refused, Summary};
use winsignal_workspace::scoring::{biggest_drag, evidence_discovery, Explained, FactorLineage};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub catalog: CatalogArg,
    /// Seed of the boosting machine's bagging (the same data and seed give a byte-identical model).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share of the closed deals, the latest to close, held out to evaluate the model.
    #[arg(long, default_value_t = 0.2, value_name = "SHARE")]
    pub test_share: f64,
    /// Print the saved model's summary (id, what it was trained on, metrics) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the exact rows the model is fitted, calibrated and tested on to FILE (CSV: split,
    /// y, one column per feature) and FILE.meta.json (which columns are categorical), to fit other
    /// libraries on the same split (bench/model.py).
    #[arg(long, value_name = "FILE.csv")]
    pub export: Option<PathBuf>,
    /// Save the model even when it looks too good to be true (holdout AUC at or above 0.97) or a metric
    /// is undefined; without it such a model is refused (exit 1, nothing saved, suspected columns named).
    #[arg(long)]
    pub allow_suspect: bool,
    /// Keep the columns discovery flags as possible leakage (a column that on its own separates won
    /// from lost, is filled in for one outcome only, or mostly on closed deals); by default they are
    /// left out of the model and listed with their evidence.
    #[arg(long)]
    pub keep_suspect_columns: bool,
}

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    pub catalog: crate::features::ModelCatalogArg,
    /// Score the deals open at this date (RFC 3339 or YYYY-MM-DD) from what was known before it; the
    /// default is the end of the data (the latest thing that happened).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Only open deals (the default and, for now, the only choice: closed deals have their outcome).
    #[arg(long)]
    pub open: bool,
    /// Score with this saved model (an id from `train`); the latest win model by default.
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// Print every score as JSON on stdout (schema in docs/cli.md).
    #[arg(long, conflicts_with = "out")]
    pub json: bool,
    /// Write every score as JSON to this file instead.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How many deals to list, most at risk first (amount × chance of losing; the chance of losing
    /// alone when most open deals have no amount) (text output).
    #[arg(long, default_value_t = 15)]
    pub top: usize,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The opportunity to explain (Salesforce ids in either form).
    pub opportunity: String,
    #[command(flatten)]
    pub catalog: crate::features::ModelCatalogArg,
    /// Explain the deal as it stood at this date (it must have been open then).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<String>,
    /// Explain with this saved model; the latest win model by default.
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// Print the explanation, with every factor's events and source rows, as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_train(global: &Global, store: &mut dyn Store, args: &TrainArgs) -> Result<()> {
    if !(args.test_share > 0.0 && args.test_share < 0.9) {
        bail!(
            "--test-share {} is not a share of the deals to hold out: give a number above 0 and below 0.9",
            args.test_share
        );
    }
    if let Some(out) = &args.export {
        crate::output::check_out_dir(out, "--export")?;
    }
    let catalog = args.catalog.load()?;
    let started = std::time::Instant::now();
    let c = compute(store, catalog, global.quiet)?;
    if !global.quiet {
        eprintln!("running discovery for the evidence of next-best actions…");
    }
    let discovery = evidence_discovery(&c)?;
    if !global.quiet {
        eprintln!(
            "training the win model on {} snapshots…",
            n(c.snapshots.len() as u64)
        );
    }
    let opts = TrainOptions {
        test_share: args.test_share,
        ebm: winsignal_learn::EbmParams {
            seed: args.seed,
            ..Default::default()
        },
        allow_suspect: args.allow_suspect,
        keep_suspect_columns: args.keep_suspect_columns,
        history_flags: c.history_flags.clone(),
        unobserved: c.unobserved.clone(),
        ..Default::default()
    };
    let t = match train_and_save(store, &c, &discovery, &opts, &audit::local_actor()) {
        Ok(t) => t,
        Err(e) => {
            if let Some(r) = e.downcast_ref::<Refused>() {
                if args.json {
                    crate::output::print_json(&Summary::of(&r.model, None, false, r.fit_seconds))?;
                } else {
                    print_warnings(&r.model);
                }
            }
            return Err(e);
        }
    };
    if let Some(out) = &args.export {
        let tables = model::tables(&c.ctx, &c.catalog, &c.snapshots, &c.timing, &opts)?;
        crate::train_export::write(out, &tables, &c.catalog.name, args.seed)?;
        if !global.quiet {
            eprintln!(
                "wrote the model's rows to {} (train {}, calibration {}, test {}) and {}",
                out.display(),
                n(tables.fit.rows.len() as u64),
                n(tables.calibration.rows.len() as u64),
                n(tables.test.rows.len() as u64),
                crate::train_export::meta_path(out).display()
            );
        }
    }
    let (m, id, new, fit_seconds) = (&t.model, &t.id, t.new, t.fit_seconds);
    let summary = Summary::of(m, Some(id), new, fit_seconds).registered(t.registered.as_ref());
    if args.json {
        return crate::output::print_json(&summary);
    }
    print_training(m, id, new, fit_seconds, started.elapsed().as_secs_f64());
    if let Some(r) = &t.registered {
        println!("Stage: {}: {}.", r.stage.as_str(), r.why);
    }
    Ok(())
}

fn metrics_row(name: &str, m: &Metrics) -> String {
    let opt = |v: Option<f64>, d: usize| v.map_or("–".into(), |v| format!("{v:.d$}"));
    format!(
        "  {name:<36} {:>6} {:>7.4} {:>8.4} {:>6} {:>7}",
        opt(m.auc, 3),
        m.brier,
        m.log_loss,
        opt(m.calibration_slope, 2),
        opt(m.calibration_in_the_large, 2),
    )
}

/// The model's warnings, most serious first (printed before anything else about it).
pub fn print_warnings(m: &WinModel) {
    for w in &m.warnings {
        println!(
            "{} [{}] {}",
            if w.refuses { "REFUSED:" } else { "Warning:" },
            w.code,
            w.message
        );
    }
    if !m.warnings.is_empty() {
        println!();
    }
}

pub fn print_training(m: &WinModel, id: &str, new: bool, fit_seconds: f64, total_seconds: f64) {
    print_warnings(m);
    let t = &m.trained_on;
    let chosen = m
        .selection
        .as_ref()
        .map_or("boosting machine", |s| s.chosen.as_str());
    println!(
        "Win model {id} {} ({} catalog; {chosen}).",
        if new {
            "saved"
        } else {
            "already saved (same data and seed)"
        },
        t.catalog
    );
    println!("Holdout: {}.", t.split.description);
    for w in &m.actions_withheld {
        println!(
            "Action withheld: {} (reps judged it not relevant on {} of the {} deals they gave feedback on).",
            w.behaviour, w.not_relevant, w.deals
        );
    }
    if !t.left_out_by_review.is_empty() {
        println!(
            "Left out: {} closed deals whose data a reviewer said are wrong (wrong_data): {}.",
            t.left_out_by_review.len(),
            match t.left_out_by_review.len() {
                n if n > 5 => format!(
                    "{} and {} more",
                    t.left_out_by_review[..5].join(", "),
                    n - 5
                ),
                _ => t.left_out_by_review.join(", "),
            }
        );
    }
    // A recalibrated model is kept as fitted (its correction was fitted to those predictions).
    let recalibrated = m.recalibration.as_ref().is_some_and(|r| r.applied);
    let kept_all = if recalibrated {
        "the kept one left as fitted (it was recalibrated)".to_string()
    } else {
        "the kept one refitted on all of them".to_string()
    };
    match t.split.kind {
        winsignal_score::dataset::SplitKind::Time => println!(
            "Candidates fitted on {} snapshots (one per deal) of deals closed before {}, compared and calibration checked on {} closed {} – {}, {}; tested on {} snapshots of {} deals closed {} – {}.",
            n(t.rows_train as u64),
            t.calibration_from.to_date_string(),
            n(t.rows_calibration as u64),
            t.calibration_from.to_date_string(),
            t.cutoff.to_date_string(),
            if recalibrated {
                kept_all.clone()
            } else {
                format!(
                    "the kept one refitted on every deal closed before {}",
                    t.cutoff.to_date_string()
                )
            },
            n(t.rows_test as u64),
            n(t.deals_test as u64),
            t.cutoff.to_date_string(),
            t.latest_close.to_date_string()
        ),
        winsignal_score::dataset::SplitKind::CreationTime => println!(
            "Candidates fitted on {} snapshots (one per deal) of deals created before {}, compared and calibration checked on {} created {} – {}, {kept_all}; tested on {} snapshots of {} deals created from {}.",
            n(t.rows_train as u64),
            t.calibration_from.to_date_string(),
            n(t.rows_calibration as u64),
            t.calibration_from.to_date_string(),
            t.cutoff.to_date_string(),
            n(t.rows_test as u64),
            n(t.deals_test as u64),
            t.cutoff.to_date_string(),
        ),
        winsignal_score::dataset::SplitKind::StratifiedHash => println!(
            "Candidates fitted on {} snapshots (one per deal), compared and calibration checked on {}, {kept_all}; tested on {} snapshots of {} deals (deals assigned by a hash of their id, not by date).",
            n(t.rows_train as u64),
            n(t.rows_calibration as u64),
            n(t.rows_test as u64),
            n(t.deals_test as u64),
        ),
    }
    for e in &t.excluded {
        println!("Left out {}: {}.", e.id, e.reason);
    }
    if let Some(sel) = &m.selection {
        println!("\nCandidates on the calibration deals (fitted on the earlier training deals):");
        println!(
            "  {:<36} {:>6} {:>7} {:>8} {:>6} {:>7}",
            "candidate", "AUC", "Brier", "log loss", "slope", "in-large"
        );
        for c in &sel.candidates {
            let name = format!("{}{}", if c.chosen { "* " } else { "  " }, c.name);
            println!("{}", metrics_row(&name, &c.calibration));
        }
        println!("Kept {}: {}.", sel.chosen, sel.reason);
    }
    let check = &m.calibration_check;
    let opt = |v: Option<f64>, signed: bool| match v {
        Some(v) if signed => format!("{v:+.2}"),
        Some(v) => format!("{v:.2}"),
        None => "undefined".into(),
    };
    println!(
        "Calibration check: slope {}, calibration in the large {} → {}.",
        opt(check.calibration_slope, false),
        opt(check.calibration_in_the_large, true),
        match (&m.calibration, &m.recalibration) {
            (Some(c), Some(r)) => format!(
                "recalibrated (slope {:.3}, intercept {:+.3}): {}",
                c.slope, c.intercept, r.reason
            ),
            (Some(c), None) => format!(
                "recalibrated (slope {:.3}, intercept {:+.3})",
                c.slope, c.intercept
            ),
            (None, Some(r)) => format!("not recalibrated: {}", r.reason),
            (None, None) => "no correction needed".into(),
        }
    );
    if let Some(p) = &m.pairs_check {
        let auc = |a: Option<f64>| a.map_or("–".into(), |a| format!("{a:.3}"));
        println!(
            "Pairwise interactions: {} detected; AUC on the calibration deals {} with them, {} without → {}.",
            p.pairs,
            auc(p.auc_with),
            auc(p.auc_without),
            if p.kept { "kept" } else { "left out" }
        );
    }
    let e = &m.evaluation;
    println!(
        "\nHoldout ({} snapshots, {} won):",
        n(e.model.rows as u64),
        n(e.model.won as u64)
    );
    println!(
        "  {:<36} {:>6} {:>7} {:>8} {:>6} {:>7}",
        "model", "AUC", "Brier", "log loss", "slope", "in-large"
    );
    println!(
        "{}",
        metrics_row(&format!("win model ({chosen}, saved)"), &e.model)
    );
    println!("{}", metrics_row("… before calibration", &e.uncalibrated));
    println!("{}", metrics_row("logistic regression (L2)", &e.logistic));
    println!("{}", metrics_row("stage-only win rates", &e.stage_only));
    for (seg, m) in &e.by_segment {
        println!("{}", metrics_row(&format!("segment {seg}"), m));
    }
    println!("\nReliability (test rows by decile of predicted P(win)):");
    for b in &e.reliability {
        println!(
            "  predicted {:>5.1} %   observed {:>5.1} %   n = {}",
            100.0 * b.mean_predicted,
            100.0 * b.observed_rate,
            n(b.n as u64)
        );
    }
    let mut terms: Vec<&winsignal_learn::ebm::Term> = m.ebm.terms().iter().collect();
    terms.sort_by(|a, b| b.importance.total_cmp(&a.importance));
    let top: Vec<String> = terms
        .iter()
        .take(8)
        .map(|t| format!("{} ({:.2})", t.name, t.importance))
        .collect();
    println!(
        "\nMost important terms (mean |logit contribution|): {}.",
        top.join(", ")
    );
    println!(
        "Fitted in {fit_seconds:.1} s ({total_seconds:.1} s with the feature pass and discovery)."
    );
}

fn parse_date(text: &str) -> Result<Ts> {
    Ts::parse(text).with_context(|| {
        format!("--as-of {text:?}: expected a date (YYYY-MM-DD) or an RFC 3339 time")
    })
}

#[derive(Serialize)]
struct ScoresOut<'a> {
    model_id: &'a str,
    as_of: String,
    deals: &'a [DealScore],
    /// The open deals most at risk first, and the rule (`basis`) that ordered them.
    risk: explain::RiskRanking,
}

pub fn run_score(global: &Global, store: &dyn Store, args: &ScoreArgs) -> Result<()> {
    let as_of = args.as_of.as_deref().map(parse_date).transpose()?;
    let mut bar = Bar::new(global.quiet);
    let s = winsignal_workspace::scoring::score_open_deals(
        store,
        &global.data,
        args.catalog.catalog.as_deref(),
        args.model.as_deref(),
        as_of,
        None,
        &mut bar,
    )?;
    let (id, as_of, scored, seconds) = (&s.model_id, s.as_of, &s.deals, s.seconds);
    let out = ScoresOut {
        model_id: id,
        as_of: as_of.to_rfc3339(),
        deals: scored,
        risk: explain::rank_by_risk(scored),
    };
    if args.json {
        return crate::output::print_json(&out);
    }
    if let Some(path) = &args.out {
        crate::output::write_atomically(path, |w| {
            serde_json::to_writer(&mut *w, &out)?;
            writeln!(w)?;
            Ok(())
        })?;
        if !global.quiet {
            eprintln!("wrote {} scores to {}", scored.len(), path.display());
        }
        return Ok(());
    }
    if !global.quiet {
        eprintln!("scored {} open deals in {seconds:.2} s", scored.len());
    }
    print_at_risk(scored, as_of, args.top);
    Ok(())
}

/// The open deals most at risk, by `explain::rank_by_risk`'s rule, which the header states.
pub fn print_at_risk(scored: &[DealScore], as_of: Ts, top: usize) {
    let ranking = explain::rank_by_risk(scored);
    let order: Vec<&DealScore> = ranking.deals.iter().map(|r| &scored[r.index]).collect();
    println!(
        "{} open deals as of {}; the {} most at risk ({}):",
        n(scored.len() as u64),
        as_of.to_date_string(),
        top.min(scored.len()),
        ranking.note
    );
    let shown: Vec<(&DealScore, String)> = order
        .iter()
        .take(top)
        .map(|d| {
            let drag =
                biggest_drag(d).map_or(String::new(), |f| format!("{} {:+.0}", f.term, f.points));
            (*d, drag)
        })
        .collect();
    // The drag column is as wide as its longest entry (pair terms are long), so actions line up.
    let width = shown
        .iter()
        .map(|(_, drag)| drag.chars().count())
        .max()
        .unwrap_or(0)
        .max("biggest drag".len());
    println!(
        "  {:<20} {:<14} {:>10} {:>6}  {:<width$}  next best action",
        "opportunity", "stage", "amount", "P(win)", "biggest drag"
    );
    for (d, drag) in &shown {
        let action = d.actions.first().map_or("–".to_string(), |a| {
            format!("{} (+{:.0} pts)", a.title, a.uplift_points)
        });
        println!(
            "  {:<20} {:<14} {:>10} {:>5.0}%  {:<width$}  {}",
            d.opportunity_id,
            d.stage.as_deref().unwrap_or("–"),
            d.amount.map_or("–".into(), |a| n(a.round() as u64)),
            100.0 * d.p_win,
            drag,
            action
        );
    }
}

pub fn run_explain(global: &Global, store: &dyn Store, args: &ExplainArgs) -> Result<()> {
    let as_of = args.as_of.as_deref().map(parse_date).transpose()?;
    let mut bar = Bar::new(global.quiet);
    let out = winsignal_workspace::scoring::explain_deal(
        store,
        &global.data,
        args.catalog.catalog.as_deref(),
        args.model.as_deref(),
        &args.opportunity,
        as_of,
        &mut bar,
    )?;
    if args.json {
        return crate::output::print_json(&out);
    }
    print_deal(&out);
    Ok(())
}

/// The factors `explain` prints: those moving P(win) by half a point or more, the ten largest.
fn shown_factors(d: &DealScore) -> impl Iterator<Item = &explain::Factor> {
    d.factors.iter().filter(|f| f.points.abs() >= 0.5).take(10)
}

fn print_deal(out: &Explained) {
    let d = &out.deal;
    println!(
        "{} — P(win) {:.0} % as of {} (model {}).",
        d.opportunity_id,
        100.0 * d.p_win,
        d.as_of.to_date_string(),
        &out.model_id[..12.min(out.model_id.len())]
    );
    println!(
        "Stage {}, {:.0} days old{}.",
        d.stage.as_deref().unwrap_or("unknown"),
        d.age_days,
        d.amount.map_or(String::new(), |a| format!(
            ", amount {}",
            n(a.round() as u64)
        ))
    );
    if let Some(c) = &d.close {
        let by: Vec<String> = c
            .p_won_by
            .iter()
            .map(|(days, p)| format!("{:.0} % within {days} days", 100.0 * p))
            .collect();
        println!(
            "If won, expected to close {} – {} (median {}; from {} won deals in {}). P(won by date): {}.",
            c.early.to_date_string(),
            c.late.to_date_string(),
            c.median.to_date_string(),
            c.won_deals,
            c.stage,
            by.join(", ")
        );
    }
    println!(
        "\nWhy (logit {:.3} = baseline {:.3} + the exact contributions of all {} factors; {} shown, those of half a point or more):",
        d.logit,
        d.intercept,
        d.factors.len(),
        shown_factors(d).count()
    );
    for f in shown_factors(d) {
        println!("  {}", f.text);
    }
    if d.actions.is_empty() {
        println!("\nNo next-best action: nothing with a significant positive effect at this stage is missing.");
    } else {
        println!("\nNext-best actions (by the model's uplift for this deal):");
        for a in &d.actions {
            let who: Vec<String> = a
                .targets
                .iter()
                .map(|t| {
                    format!(
                        "{} ({})",
                        t.contact_id,
                        t.title.as_deref().unwrap_or(&t.seniority)
                    )
                })
                .collect();
            println!(
                "  {} (+{:.1} pts){}",
                a.title,
                a.uplift_points,
                if who.is_empty() {
                    String::new()
                } else {
                    format!(" — with {}", who.join(", "))
                }
            );
            println!("    {}", a.coaching);
        }
    }
    // The lineage of the factors shown above, and of the whole score (which `--json` lists).
    let shown: Vec<&str> = shown_factors(d).flat_map(|f| f.term.split(" × ")).collect();
    let events = |l: &&FactorLineage| l.contributions.len();
    let shown_lineage: Vec<&FactorLineage> = out
        .lineage
        .iter()
        .filter(|l| shown.contains(&l.term.as_str()))
        .collect();
    let all: usize = out.lineage.iter().map(|l| events(&l)).sum();
    println!(
        "\nLineage: {} events behind the {} behaviours and features shown above; {all} behind all {} in the score (`--json` lists each with its source file and line).",
        shown_lineage.iter().map(events).sum::<usize>(),
        shown_lineage.len(),
        out.lineage.len()
    );
}
