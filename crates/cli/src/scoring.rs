//! `winsignal train`, `score` and `explain`: the win model, per-deal scores with their explanations,
//! next-best actions and coaching, and the lineage of every factor.

use crate::features::{compute, replay, CatalogArg};
use crate::output::n;
use crate::progress::Bar;
use crate::Global;
use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use winsignal_core::Ts;
use winsignal_features::snapshot;
use winsignal_features::{Catalog, Context};
use winsignal_score::explain::{self, DealScore};
use winsignal_score::model::{self, Metrics, TrainOptions, WinModel};
use winsignal_store::{ModelRecord, Store};

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

/// The summary saved beside a model (what `models` listings show), and what `train --json` prints.
#[derive(Serialize)]
struct Summary<'a> {
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
    seconds: f64,
}

impl<'a> Summary<'a> {
    fn of(m: &'a WinModel, id: Option<&'a str>, new: bool, seconds: f64) -> Summary<'a> {
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
            seconds,
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
    let c = compute(store, catalog, &global.data, global.quiet)?;
    let ctx = Context::from_store(store)?;
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
    let t = match train_and_save(store, &ctx, &c, &discovery, &opts) {
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
        let tables = model::tables(&ctx, &c.catalog, &c.snapshots, &c.timing, &opts)?;
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
    let summary = Summary::of(m, Some(id), new, fit_seconds);
    if args.json {
        return crate::output::print_json(&summary);
    }
    print_training(m, id, new, fit_seconds, started.elapsed().as_secs_f64());
    Ok(())
}

/// A win model trained and saved in the store.
pub struct Trained {
    pub id: String,
    /// False when the store already held this very model (same data and seed).
    pub new: bool,
    pub model: WinModel,
    pub fit_seconds: f64,
}

/// Trains the win model on the computed snapshots, with next-best-action evidence from `discovery` (its
/// win findings), and saves it in the store with its summary — unless it is refused (a [`Refused`]
/// error: too good to be true or a metric undefined, and `opts.allow_suspect` not set).
pub fn train_and_save(
    store: &mut dyn Store,
    ctx: &Context,
    c: &crate::features::Computed,
    discovery: &winsignal_discover::Discovery,
    opts: &TrainOptions,
) -> Result<Trained> {
    let fit_started = std::time::Instant::now();
    let m = model::train(
        ctx,
        &c.catalog,
        &c.snapshots,
        &c.timing,
        model::evidence(discovery),
        opts,
    )?;
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
    Ok(Trained {
        id,
        new,
        model: m,
        fit_seconds,
    })
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

/// The model to score with: the one named, or the latest win model.
pub fn load_model(store: &dyn Store, id: Option<&str>) -> Result<(String, WinModel)> {
    let id = match id {
        Some(id) => id.to_string(),
        None => match store.models(Some("win"))?.pop() {
            Some(m) => m.model_id,
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

fn parse_date(text: &str) -> Result<Ts> {
    Ts::parse(text).with_context(|| {
        format!("--as-of {text:?}: expected a date (YYYY-MM-DD) or an RFC 3339 time")
    })
}

/// Scores every deal open at `as_of` (the end of the data when not given).
pub fn scores(
    engine: &winsignal_features::Engine<'_>,
    catalog: &Catalog,
    model: &WinModel,
    as_of: Option<&str>,
    only: Option<&str>,
) -> Result<(Ts, Vec<DealScore>, f64)> {
    let as_of = match as_of {
        Some(t) => parse_date(t)?,
        None => snapshot::horizon(engine).plus_millis(1),
    };
    let started = std::time::Instant::now();
    let mut snaps = winsignal_score::dataset::open_snapshots(engine, catalog, as_of);
    if let Some(id) = only {
        snaps.retain(|s| s.opportunity_id == id);
    }
    let scored = explain::score(model, catalog, engine, &snaps)?;
    Ok((as_of, scored, started.elapsed().as_secs_f64()))
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
    let (id, model) = load_model(store, args.model.as_deref())?;
    let catalog = args.catalog.load_for(&id, &model)?;
    let ctx = Context::from_store(store)?;
    let catalog =
        crate::behaviours::resolve_for(store, &catalog, &ctx, &model.trained_on.versions)?;
    let mut bar = Bar::new(global.quiet);
    let engine = replay(store, &ctx, &global.data, &mut bar)?;
    bar.finish();
    let (as_of, scored, seconds) = scores(&engine, &catalog, &model, args.as_of.as_deref(), None)?;
    let out = ScoresOut {
        model_id: &id,
        as_of: as_of.to_rfc3339(),
        deals: &scored,
        risk: explain::rank_by_risk(&scored),
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
    print_at_risk(&scored, as_of, args.top);
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

#[derive(Serialize)]
struct FactorLineage<'a> {
    term: &'a str,
    definition: Option<String>,
    contributions: Vec<winsignal_features::lineage::Contribution>,
}

#[derive(Serialize)]
struct ExplainOut<'a> {
    model_id: &'a str,
    deal: &'a DealScore,
    lineage: Vec<FactorLineage<'a>>,
}

pub fn run_explain(global: &Global, store: &dyn Store, args: &ExplainArgs) -> Result<()> {
    let (id, model) = load_model(store, args.model.as_deref())?;
    let catalog = args.catalog.load_for(&id, &model)?;
    let ctx = Context::from_store(store)?;
    let catalog =
        crate::behaviours::resolve_for(store, &catalog, &ctx, &model.trained_on.versions)?;
    let wanted = winsignal_core::sfdc::to_18(&args.opportunity);
    let Some(opp) = ctx
        .opportunity(&args.opportunity)
        .or_else(|| ctx.opportunity(&wanted))
    else {
        bail!(
            "no opportunity with id {:?} in {}",
            args.opportunity,
            global.data.display()
        );
    };
    let opp_id = ctx.opps[opp as usize].id.clone();
    let mut bar = Bar::new(global.quiet);
    let engine = replay(store, &ctx, &global.data, &mut bar)?;
    bar.finish();
    let (as_of, scored, _) = scores(
        &engine,
        &catalog,
        &model,
        args.as_of.as_deref(),
        Some(&opp_id),
    )?;
    let Some(deal) = scored.first() else {
        let o = &ctx.opps[opp as usize];
        bail!(
            "{opp_id} was not open at {} (created {}, {}): explain it with --as-of a date when it was open",
            as_of.to_rfc3339(),
            o.created.to_date_string(),
            o.closed
                .map_or("never closed".to_string(), |c| format!("closed {}", c.to_date_string()))
        );
    };
    // The events behind every definition among the factors, traced to their source rows.
    let mut lineage = Vec::new();
    // Each definition once, even when it is in a main term and in pairs.
    let mut traced: Vec<&str> = Vec::new();
    for f in &deal.factors {
        for name in f.term.split(" × ") {
            if traced.contains(&name) {
                continue;
            }
            traced.push(name);
            let Some(def) = catalog.behaviours.iter().find(|d| d.id == name) else {
                continue;
            };
            let mut ex = winsignal_features::lineage::explain(&engine, def, opp, as_of);
            winsignal_features::lineage::attach_origins(store, &mut ex.contributions)?;
            lineage.push(FactorLineage {
                term: name_ref(&deal.factors, name),
                definition: Some(format!("{}@{}: {}", def.id, def.version, def.description)),
                contributions: ex.contributions,
            });
        }
    }
    let out = ExplainOut {
        model_id: &id,
        deal,
        lineage,
    };
    if args.json {
        return crate::output::print_json(&out);
    }
    print_deal(&out);
    Ok(())
}

/// `name` borrowed from the factor that holds it (so the output borrows one place).
fn name_ref<'a>(factors: &'a [explain::Factor], name: &str) -> &'a str {
    factors
        .iter()
        .flat_map(|f| f.term.split(" × "))
        .find(|n| *n == name)
        .unwrap_or("")
}

/// The factors `explain` prints: those moving P(win) by half a point or more, the ten largest.
fn shown_factors(d: &DealScore) -> impl Iterator<Item = &explain::Factor> {
    d.factors.iter().filter(|f| f.points.abs() >= 0.5).take(10)
}

fn print_deal(out: &ExplainOut<'_>) {
    let d = out.deal;
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
    let events = |l: &&FactorLineage<'_>| l.contributions.len();
    let shown_lineage: Vec<&FactorLineage<'_>> = out
        .lineage
        .iter()
        .filter(|l| shown.contains(&l.term))
        .collect();
    let all: usize = out.lineage.iter().map(|l| events(&l)).sum();
    println!(
        "\nLineage: {} events behind the {} behaviours and features shown above; {all} behind all {} in the score (`--json` lists each with its source file and line).",
        shown_lineage.iter().map(events).sum::<usize>(),
        shown_lineage.len(),
        out.lineage.len()
    );
}

/// The discovery whose significant win effects `train` saves in the model as the evidence of next-best
/// actions: winning only, without rules.
pub fn evidence_discovery(c: &crate::features::Computed) -> Result<winsignal_discover::Discovery> {
    Ok(winsignal_discover::discover(
        &c.catalog,
        &c.snapshots,
        &winsignal_discover::Options {
            outcomes: vec![winsignal_discover::Outcome::Win],
            rules: false,
            timing: c.timing.clone(),
            history_flags: c.history_flags.clone(),
            ..Default::default()
        },
    )?)
}

/// The open deals most at risk first, as `print_at_risk` lists them (the rule:
/// `explain::rank_by_risk`).
pub fn by_risk(scored: &[DealScore]) -> Vec<&DealScore> {
    explain::rank_by_risk(scored)
        .deals
        .iter()
        .map(|r| &scored[r.index])
        .collect()
}

/// The factor pulling a deal's P(win) down the most, as `print_at_risk` names it.
pub fn biggest_drag(d: &DealScore) -> Option<&explain::Factor> {
    d.factors
        .iter()
        // A factor that rounds to 0 points is not shown as a drag ("-0").
        .filter(|f| f.logit < 0.0 && f.points <= -0.5)
        .max_by(|a, b| b.logit.total_cmp(&a.logit))
}
