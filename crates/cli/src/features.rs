//! `snapshots`, `behaviours`, `explain-feature` and `graph`: the feature engine from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use winsignal_core::Ts;
use winsignal_features::catalog::{self, Catalog, Control};
use winsignal_features::snapshot::{self, ControlValue, Snapshot};
use winsignal_store::Store;

use crate::progress::Bar;
use crate::Global;

#[derive(Args)]
pub struct CatalogArg {
    /// Behaviour catalog (TOML); the built-in default catalog when omitted.
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

impl CatalogArg {
    pub fn load(&self) -> Result<Catalog> {
        match &self.catalog {
            None => Ok(catalog::default_catalog()),
            Some(p) => load_catalog(p),
        }
    }
}

/// `--catalog` where a saved model is applied (`score`, `explain`, `report`).
#[derive(Args)]
pub struct ModelCatalogArg {
    /// Behaviour catalog (TOML); when omitted, the catalog the win model was trained with (kept in the
    /// model; the built-in default when there is no model, or for models saved before catalogs were
    /// kept).
    #[arg(long, value_name = "FILE")]
    pub catalog: Option<PathBuf>,
}

use winsignal_workspace::pipeline::load_catalog;

#[derive(Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    catalog: CatalogArg,
    /// Print every snapshot as JSON on stdout (schema in docs/cli.md).
    #[arg(long, conflicts_with = "out")]
    json: bool,
    /// Write the snapshots to FILE.csv or FILE.parquet (the catalog versions go in FILE.meta.json for CSV and
    /// in the file's metadata for Parquet).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum BehavioursCommand {
    /// Every definition in the catalog: id, version, yes/no, continuous or categorical, what it reads.
    List {
        #[command(flatten)]
        catalog: CatalogArg,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One definition in full.
    Show {
        /// The definition's id, e.g. exec_engaged.
        id: String,
        #[command(flatten)]
        catalog: CatalogArg,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate a catalog file; errors name the line and field.
    Check {
        /// The catalog to check.
        file: PathBuf,
    },
    /// Write a starting catalog from the workspace's attributes: one definition per attribute
    /// (categorical ones split into their levels), placeholder values declared missing, the controls
    /// that vary, and leakage suspects commented out with the reason.
    Suggest(crate::behaviours::SuggestArgs),
}

#[derive(Args)]
pub struct ExplainArgs {
    /// The opportunity id (Salesforce ids in either form).
    opportunity: String,
    /// The behaviour or feature id, e.g. exec_engaged.
    feature: String,
    /// The landmark: a name as in `snapshots` (created, stage:Discovery, age:30d) or an RFC 3339 time.
    /// Default: the opportunity's latest landmark.
    #[arg(long, value_name = "L")]
    landmark: Option<String>,
    #[command(flatten)]
    catalog: CatalogArg,
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum GraphCommand {
    /// An account's neighbourhood: family, contacts by seniority, deals, reps, product users, tickets.
    Account {
        /// The account id (Salesforce ids in either form).
        id: String,
        /// Print as JSON, with every edge.
        #[arg(long)]
        json: bool,
    },
}

pub use winsignal_workspace::pipeline::Computed;
use winsignal_workspace::pipeline::Reading;

/// The whole feature pass ([`winsignal_workspace::compute`]) with a progress bar on a terminal.
pub fn compute(store: &dyn Store, catalog: Catalog, quiet: bool) -> Result<Computed> {
    let mut bar = Bar::new(quiet);
    let c = winsignal_workspace::compute(store, catalog, &mut bar)?;
    bar.finish();
    Ok(c)
}

pub fn run_snapshots(global: &Global, store: &dyn Store, args: &SnapshotsArgs) -> Result<()> {
    let catalog = args.catalog.load()?;
    let c = compute(store, catalog, global.quiet)?;
    if args.json {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::new(stdout.lock());
        serde_json::to_writer(&mut w, &snapshots_json(&c))?;
        writeln!(w)?;
        return Ok(());
    }
    if let Some(out) = &args.out {
        match out
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => write_csv(&c, out)?,
            Some("parquet") => crate::parquet_out::write(&c, out)?,
            _ => bail!(
                "--out {}: expected a file name ending in .csv or .parquet",
                out.display()
            ),
        }
        if !global.quiet {
            eprintln!("wrote {} snapshots to {}", c.snapshots.len(), out.display());
        }
    }
    print_summary(&c);
    Ok(())
}

pub fn print_summary(c: &Computed) {
    let opps: std::collections::BTreeSet<&str> = c
        .snapshots
        .iter()
        .map(|s| s.opportunity_id.as_str())
        .collect();
    let behaviours = c
        .catalog
        .behaviours
        .iter()
        .filter(|d| d.is_behaviour())
        .count();
    println!(
        "{} events replayed onto the records; {} snapshots of {} opportunities; {} behaviours and {} \
         continuous features (catalog {}); data ends {}",
        c.events,
        c.snapshots.len(),
        opps.len(),
        behaviours,
        c.catalog.behaviours.len() - behaviours,
        c.catalog.name,
        c.horizon.to_rfc3339()
    );
    let skipped: u64 = c.unattributed.values().sum();
    if skipped > 0 {
        let parts: Vec<String> = c
            .unattributed
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        println!(
            "  not tied to any deal or account (left out of features): {}",
            parts.join(", ")
        );
    }
    if let Some(line) = c.unobserved.sentence() {
        println!("  {line}");
    }
    println!("\nBehaviour adoption (share of snapshots where the behaviour is defined and yes):");
    for a in snapshot::adoption(&c.catalog, &c.snapshots) {
        let rate = a
            .rate
            .map_or("—".to_string(), |r| format!("{:5.1}%", 100.0 * r));
        let undefined = c.snapshots.len() as u64 - a.defined;
        let note = if undefined > 0 {
            format!("  (undefined in {undefined})")
        } else {
            String::new()
        };
        println!("  {:<22} v{:<2} {rate:>7}{note}", a.id, a.version);
    }
}

fn number(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}

fn control_json(v: &ControlValue) -> Value {
    match v {
        ControlValue::Number(x) => number(*x),
        ControlValue::Text(t) => json!(t),
        ControlValue::Missing => Value::Null,
    }
}

fn catalog_json(c: &Catalog) -> Value {
    json!({
        "name": c.name,
        "definitions": c.behaviours.iter().map(|d| json!({
            "id": d.id, "version": d.version, "fingerprint": d.fingerprint(), "behaviour": d.is_behaviour(),
        })).collect::<Vec<_>>(),
        "controls": c.controls.iter().map(Control::column).collect::<Vec<_>>(),
        "landmarks": c.landmarks,
    })
}

fn snapshots_json(c: &Computed) -> Value {
    let rows: Vec<Value> = c
        .snapshots
        .iter()
        .map(|s| {
            let mut controls = Map::new();
            for (ctl, v) in c.catalog.controls.iter().zip(&s.controls) {
                controls.insert(ctl.column(), control_json(v));
            }
            let mut behaviours = Map::new();
            let mut features = Map::new();
            let mut flags = s.flags.iter();
            for (d, v) in c.catalog.behaviours.iter().zip(&s.values) {
                features.insert(d.id.clone(), number(*v));
                if d.is_behaviour() {
                    behaviours.insert(d.id.clone(), json!(flags.next().copied().flatten()));
                }
            }
            json!({
                "opportunity_id": s.opportunity_id, "landmark": s.landmark, "as_of": s.as_of.to_rfc3339(),
                "age_days": number(s.age_days), "account_id": s.account_id, "rep_id": s.rep_id, "controls": controls,
                "behaviours": behaviours, "measures": features, "outcome": s.outcome.as_str(),
                "days_to_close": s.days_to_close.map(number), "days_observed": number(s.days_observed),
                "amount": s.amount.map(number),
            })
        })
        .collect();
    json!({ "catalog": catalog_json(&c.catalog), "horizon": c.horizon.to_rfc3339(), "snapshots": rows })
}

/// Column names of the flat snapshot table (CSV and Parquet).
pub fn columns(c: &Catalog) -> Vec<String> {
    let mut cols: Vec<String> = [
        "opportunity_id",
        "landmark",
        "as_of",
        "age_days",
        "account_id",
        "rep_id",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    cols.extend(c.controls.iter().map(Control::column));
    for d in &c.behaviours {
        cols.push(d.id.clone());
        if d.is_behaviour() {
            cols.push(format!("{}_measure", d.id));
        }
    }
    cols.extend(
        ["outcome", "won", "days_to_close", "days_observed", "amount"]
            .iter()
            .map(|s| s.to_string()),
    );
    cols
}

/// One cell of the flat table.
pub enum Cell<'a> {
    Text(&'a str),
    Owned(String),
    Number(f64),
    /// A UTC time in milliseconds (a timestamp column in Parquet, RFC 3339 text in CSV).
    Time(i64),
    Null,
}

/// The flat row for one snapshot, matching [`columns`].
pub fn row<'a>(c: &'a Catalog, s: &'a Snapshot) -> Vec<Cell<'a>> {
    let opt = |v: &'a Option<String>| v.as_deref().map_or(Cell::Null, Cell::Text);
    let num = |v: f64| {
        if v.is_finite() {
            Cell::Number(v)
        } else {
            Cell::Null
        }
    };
    let mut r = vec![
        Cell::Text(&s.opportunity_id),
        Cell::Text(&s.landmark),
        Cell::Owned(s.as_of.to_rfc3339()),
        num(s.age_days),
        opt(&s.account_id),
        opt(&s.rep_id),
    ];
    for v in &s.controls {
        r.push(match v {
            ControlValue::Number(x) => num(*x),
            ControlValue::Text(t) => Cell::Text(t),
            ControlValue::Missing => Cell::Null,
        });
    }
    let mut flags = s.flags.iter();
    for (d, v) in c.behaviours.iter().zip(&s.values) {
        if d.is_behaviour() {
            r.push(
                flags
                    .next()
                    .copied()
                    .flatten()
                    .map_or(Cell::Null, |b| Cell::Number(b as u8 as f64)),
            );
        }
        r.push(num(*v));
    }
    r.push(Cell::Text(s.outcome.as_str()));
    r.push(match s.outcome {
        winsignal_core::Outcome::Won => Cell::Number(1.0),
        winsignal_core::Outcome::Lost => Cell::Number(0.0),
        winsignal_core::Outcome::Open => Cell::Null,
    });
    r.push(s.days_to_close.map_or(Cell::Null, num));
    r.push(num(s.days_observed));
    r.push(s.amount.map_or(Cell::Null, num));
    r
}

fn write_csv(c: &Computed, out: &Path) -> Result<()> {
    crate::output::write_atomically(out, |file| {
        let mut w = csv::Writer::from_writer(file);
        write_rows(c, &mut w)?;
        Ok(w.flush()?)
    })?;
    let meta = out.with_extension("meta.json");
    let text = serde_json::to_string_pretty(&json!({
        "catalog": catalog_json(&c.catalog), "horizon": c.horizon.to_rfc3339(), "rows": c.snapshots.len(),
        "columns": columns(&c.catalog),
    }))?;
    crate::output::write_atomically(&meta, |w| Ok(w.write_all(text.as_bytes())?))
}

/// The header and every snapshot of [`write_csv`].
fn write_rows<W: Write>(c: &Computed, w: &mut csv::Writer<W>) -> Result<()> {
    w.write_record(columns(&c.catalog))?;
    for s in &c.snapshots {
        let cells = row(&c.catalog, s);
        let fields: Vec<std::borrow::Cow<'_, str>> = cells
            .iter()
            .map(|cell| match cell {
                Cell::Text(t) => crate::output::spreadsheet_safe(t),
                Cell::Owned(t) => crate::output::spreadsheet_safe(t),
                Cell::Number(x) => std::borrow::Cow::Owned(format_number(*x)),
                Cell::Time(t) => std::borrow::Cow::Owned(Ts(*t).to_rfc3339()),
                Cell::Null => std::borrow::Cow::Borrowed(""),
            })
            .collect();
        w.write_record(fields.iter().map(|f| f.as_ref()))?;
    }
    Ok(())
}

/// Shortest round-trip text of a number; whole numbers without a decimal point.
fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

pub fn run_behaviours(cmd: &BehavioursCommand) -> Result<()> {
    match cmd {
        BehavioursCommand::List { catalog, json } => {
            let c = catalog.load()?;
            if *json {
                return crate::output::print_json(&c);
            }
            println!("{} — {} definitions", c.name, c.behaviours.len());
            println!(
                "  {:<26} {:<4} {:<10} {:<18} {:<18} aggregate / threshold",
                "id", "ver", "type", "reads", "window"
            );
            for d in &c.behaviours {
                let kind = if d.is_behaviour() {
                    "yes/no"
                } else if d.is_categorical() {
                    "categorical"
                } else {
                    "continuous"
                };
                let agg = match d.threshold {
                    Some(t) => format!("{} {t}", d.aggregate.name()),
                    None => d.aggregate.name().to_string(),
                };
                println!(
                    "  {:<26} v{:<3} {:<10} {:<18} {:<18} {agg}",
                    d.id,
                    d.version,
                    kind,
                    d.reads.kind_name(),
                    d.window.to_string()
                );
            }
            Ok(())
        }
        BehavioursCommand::Show { id, catalog, json } => {
            let c = catalog.load()?;
            let Some(d) = c.behaviours.iter().find(|d| d.id == *id) else {
                let ids: Vec<&str> = c.behaviours.iter().map(|d| d.id.as_str()).collect();
                bail!(
                    "no definition {id:?} in {}; the catalog has: {}",
                    c.name,
                    ids.join(", ")
                );
            };
            if *json {
                let mut v = serde_json::to_value(d)?;
                v["fingerprint"] = json!(d.fingerprint());
                return crate::output::print_json(&v);
            }
            println!("{} (version {}) — {}", d.id, d.version, d.title);
            println!("  {}", d.description);
            println!("  family:     {}", d.family);
            println!(
                "  type:       {}",
                if d.is_behaviour() {
                    "yes/no behaviour"
                } else if d.is_categorical() {
                    "categorical: one yes/no behaviour per level of the data"
                } else {
                    "continuous feature"
                }
            );
            println!("  reads:      {}", serde_json::to_string(&d.reads)?);
            println!("  window:     {}", d.window);
            println!("  aggregate:  {}", serde_json::to_string(&d.aggregate)?);
            if let Some(t) = d.threshold {
                println!("  threshold:  {t}");
            }
            println!(
                "  fingerprint {} (catalog {}, line {})",
                d.fingerprint(),
                c.name,
                d.line
            );
            Ok(())
        }
        BehavioursCommand::Suggest(_) => {
            bail!("internal error: `behaviours suggest` needs the workspace (run through main)")
        }
        BehavioursCommand::Check { file } => {
            let c = load_catalog(file)?;
            let behaviours = c.behaviours.iter().filter(|d| d.is_behaviour()).count();
            let categorical = c.behaviours.iter().filter(|d| d.is_categorical()).count();
            let categorical = if categorical > 0 {
                format!(", {categorical} categorical (one yes/no behaviour per level of the data)")
            } else {
                String::new()
            };
            println!(
                "{}: valid — {} behaviours, {} continuous features{categorical}, {} controls, landmarks: stages {}, ages {:?} days",
                file.display(),
                behaviours,
                c.behaviours.len() - behaviours - c.behaviours.iter().filter(|d| d.is_categorical()).count(),
                c.controls.len(),
                if c.landmarks.stages { "on" } else { "off" },
                c.landmarks.ages_days
            );
            Ok(())
        }
    }
}

pub fn run_explain(global: &Global, store: &dyn Store, args: &ExplainArgs) -> Result<()> {
    let mut bar = Bar::new(global.quiet);
    let out = winsignal_workspace::lineage::explain_feature(
        store,
        &args.catalog.load()?,
        &args.opportunity,
        &args.feature,
        args.landmark.as_deref(),
        &global.data,
        &mut bar,
    )?;
    let (def, ex) = (&out.definition, &out);
    if args.json {
        return crate::output::print_json(&out);
    }
    let value = out
        .value
        .map_or("undefined".to_string(), |v| format!("{v}"));
    let yes = match (def.threshold, ex.behaviour) {
        (Some(t), Some(b)) => format!(" → {} ({t})", if b { "yes" } else { "no" }),
        (Some(t), None) => format!(" → undefined ({t})"),
        _ => String::new(),
    };
    println!(
        "{} v{} for {} at {} ({}): {value}{yes}",
        def.id, def.version, out.opportunity_id, out.landmark, out.as_of
    );
    println!("  {}", def.description);
    if ex.contributions.is_empty() {
        println!("  computed from no events (nothing matched before the landmark)");
    }
    for c in &ex.contributions {
        let at = c.at.map_or(String::new(), |t| t.to_rfc3339());
        let origin = c
            .origin
            .as_ref()
            .map_or("(no source row found)".to_string(), |o| {
                format!(
                    "{} {}:{}{}",
                    o.source,
                    o.file,
                    o.line,
                    o.source_record_id
                        .as_ref()
                        .map_or(String::new(), |i| format!(" id {i}"))
                )
            });
        println!(
            "  weight {:<7} {:<18} {:<24} {} ← {origin}",
            format!("{:.4}", c.weight),
            c.kind.singular(),
            at,
            c.id.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

pub fn run_graph(global: &Global, store: &dyn Store, cmd: &GraphCommand) -> Result<()> {
    let GraphCommand::Account { id, json } = cmd;
    let reading = Reading::open(store)?;
    let Some(account) = reading.ctx.account(id) else {
        bail!("no account with id {id:?} in {}", global.data.display());
    };
    let engine = reading.engine(&mut Bar::new(global.quiet))?;
    let n = winsignal_features::graph::neighbourhood(&engine, account);
    if *json {
        return crate::output::print_json(&n);
    }
    println!(
        "account {} {}",
        n.account_id,
        n.name.as_deref().unwrap_or("")
    );
    println!(
        "  segment {}, industry {}",
        n.segment.as_deref().unwrap_or("—"),
        n.industry.as_deref().unwrap_or("—")
    );
    println!(
        "  parent: {}   children: {}",
        n.parent.as_deref().unwrap_or("none"),
        if n.children.is_empty() {
            "none".into()
        } else {
            n.children.join(", ")
        }
    );
    let seniority: Vec<String> = n
        .contacts_by_seniority
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "  contacts: {}",
        if seniority.is_empty() {
            "none".into()
        } else {
            seniority.join(", ")
        }
    );
    let opps: Vec<String> = n
        .opportunities
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "  opportunities: {}   reps: {}",
        if opps.is_empty() {
            "none".into()
        } else {
            opps.join(", ")
        },
        n.reps.join(", ")
    );
    println!(
        "  product users: {} ({} events)   tickets: {} ({} open)",
        n.product_users, n.product_events, n.tickets, n.tickets_open
    );
    println!("  edges ({}):", n.edges.len());
    for e in n.edges.iter().take(40) {
        println!(
            "    {} —{}→ {}{}{}",
            e.from,
            e.relation,
            e.to,
            e.since
                .as_ref()
                .map_or(String::new(), |s| format!(" since {s}")),
            e.detail
                .as_ref()
                .map_or(String::new(), |d| format!(" ({d})"))
        );
    }
    if n.edges.len() > 40 {
        println!(
            "    … {} more (--json lists every edge)",
            n.edges.len() - 40
        );
    }
    Ok(())
}
