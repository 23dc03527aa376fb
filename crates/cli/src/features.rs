//! `snapshots`, `behaviours`, `explain-feature` and `graph`: the feature engine from the command line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{json, Map, Value};
use winsignal_core::Ts;
use winsignal_features::catalog::{self, Catalog, Control};
use winsignal_features::engine::Engine;
use winsignal_features::registry::Registry;
use winsignal_features::snapshot::{self, ControlValue, Snapshot};
use winsignal_features::Context;
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

impl ModelCatalogArg {
    /// `--catalog`, or the built-in default (when there is no model to take the catalog from).
    pub fn load_default(&self) -> Result<Catalog> {
        match &self.catalog {
            Some(p) => load_catalog(p),
            None => Ok(catalog::default_catalog()),
        }
    }

    /// The catalog to apply `model` with: `--catalog` when given, else the one the model was trained
    /// with, else — for a model saved before catalogs were kept — the built-in default.
    pub fn load_for(
        &self,
        model_id: &str,
        model: &winsignal_score::model::WinModel,
    ) -> Result<Catalog> {
        match (&self.catalog, &model.catalog_toml) {
            (Some(p), _) => load_catalog(p),
            (None, Some(text)) => Ok(catalog::parse(
                text,
                &format!("the catalog of model {model_id}"),
            )?),
            (None, None) => Ok(catalog::default_catalog()),
        }
    }
}

fn load_catalog(path: &Path) -> Result<Catalog> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(catalog::parse(&text, &path.display().to_string())?)
}

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

/// The engine state for the store as it is now: restored from the workspace's saved checkpoint when
/// that was taken of exactly this store (same loads, same event counts, same state format), otherwise
/// replayed from every event (with progress) and saved for next time. A checkpoint that cannot be read
/// or saved only costs time: the state is replayed, never guessed.
pub fn replay<'c>(
    store: &dyn Store,
    ctx: &'c Context,
    data: &Path,
    bar: &mut Bar,
) -> Result<Engine<'c>> {
    let counts = store.event_counts()?;
    let key = checkpoint_key(store, &counts)?;
    let path = data.join("cache").join("engine-state.bin");
    if let Some(engine) = restore_checkpoint(ctx, &path, &key) {
        return Ok(engine);
    }
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    bar.phase("replaying events", 0, total);
    let engine = Engine::replay(ctx, store, &mut |n| bar.phase("replaying events", n, total))?;
    if let Err(e) = save_checkpoint(&engine, &path, &key) {
        tracing::warn!(path = %path.display(), error = %e, "Engine checkpoint not saved.");
    }
    Ok(engine)
}

/// What a checkpoint was taken of: the state format, the build, every finished load and the event
/// counts. Any ingest adds a load, so any change to the store changes the key.
fn checkpoint_key(store: &dyn Store, counts: &[(winsignal_core::Kind, u64)]) -> Result<String> {
    use std::fmt::Write as _;
    let mut key = format!(
        "winsignal {} engine state {}\n{counts:?}\n",
        env!("CARGO_PKG_VERSION"),
        winsignal_features::engine::STATE_FORMAT
    );
    for l in store.loads()? {
        let _ = writeln!(
            key,
            "{} {} {} {:?}",
            l.load_id, l.file_hash, l.finished_at, l.stats
        );
    }
    Ok(format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(key.as_bytes())
    ))
}

const CHECKPOINT_MAGIC: &[u8] = b"winsignal-engine-state ";

fn restore_checkpoint<'c>(ctx: &'c Context, path: &Path, key: &str) -> Option<Engine<'c>> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut r = std::io::BufReader::with_capacity(1 << 20, file);
    let mut header = vec![0u8; CHECKPOINT_MAGIC.len() + key.len() + 1];
    r.read_exact(&mut header).ok()?;
    if header != [CHECKPOINT_MAGIC, key.as_bytes(), b"\n"].concat() {
        return None;
    }
    let ignored = |why: &str| {
        tracing::warn!(path = %path.display(), reason = why, "Engine checkpoint ignored; replaying.");
        None
    };
    // Decoding from memory is several times faster than from a reader (postcard pulls varints a byte
    // at a time); only a very large checkpoint is streamed, to keep the peak memory down. Either way
    // the state's bytes must match the checksum after them: a damaged checkpoint is replayed, never
    // read as a different state.
    let in_memory = std::fs::metadata(path).is_ok_and(|m| m.len() < 1 << 30);
    let restored = if in_memory {
        let mut bytes = Vec::new();
        r.read_to_end(&mut bytes).ok()?;
        let Some(body_len) = bytes.len().checked_sub(CHECKSUM_BYTES) else {
            return ignored("it is shorter than its checksum");
        };
        let (body, sum) = bytes.split_at(body_len);
        if xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() != sum {
            return ignored("its checksum does not match its contents (the file is damaged)");
        }
        Engine::restore(ctx, body)
    } else {
        let mut hashed = Hashed::new(r);
        let restored = Engine::restore_from(ctx, &mut hashed);
        let sum = hashed.hasher.digest().to_le_bytes();
        let mut rest = Vec::new();
        if hashed.inner.read_to_end(&mut rest).is_err() || rest != sum {
            return ignored("its checksum does not match its contents (the file is damaged)");
        }
        restored
    };
    match restored {
        Ok(engine) => Some(engine),
        Err(e) => ignored(&e),
    }
}

/// The checkpoint ends with the xxh3-64 of the state's bytes, little-endian.
const CHECKSUM_BYTES: usize = 8;

/// A reader or writer that hashes every byte passing through it.
struct Hashed<T> {
    inner: T,
    hasher: xxhash_rust::xxh3::Xxh3,
}

impl<T> Hashed<T> {
    fn new(inner: T) -> Self {
        Hashed {
            inner,
            hasher: xxhash_rust::xxh3::Xxh3::new(),
        }
    }
}

impl<R: std::io::Read> std::io::Read for Hashed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<W: Write> Write for Hashed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the checkpoint beside its final name and renames it into place, so a reader never sees half.
/// Layout: magic, key, newline, the state (postcard), the state's checksum.
fn save_checkpoint(engine: &Engine<'_>, path: &Path, key: &str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let partial = path.with_extension("bin.partial");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial)?);
    w.write_all(CHECKPOINT_MAGIC)?;
    w.write_all(key.as_bytes())?;
    w.write_all(b"\n")?;
    let mut hashed = Hashed::new(w);
    engine
        .write_checkpoint(&mut hashed)
        .map_err(anyhow::Error::msg)?;
    let sum = hashed.hasher.digest();
    let mut w = hashed.inner;
    w.write_all(&sum.to_le_bytes())?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

/// The whole feature pass: entities, replay, every snapshot. Also used by `demo`.
pub struct Computed {
    pub catalog: Catalog,
    pub snapshots: Vec<Snapshot>,
    pub horizon: Ts,
    pub events: u64,
    pub unattributed: std::collections::BTreeMap<String, u64>,
    /// When each behaviour shows up relative to the close (for the leakage check).
    pub timing: Vec<snapshot::Timing>,
    /// Columns the store's versions show being written at the close (for the leakage check).
    pub history_flags: Vec<winsignal_discover::ColumnFlag>,
    /// Closed deals without a snapshot (no landmark before their close), left out of everything.
    pub unobserved: snapshot::Unobserved,
}

pub fn compute(store: &dyn Store, catalog: Catalog, data: &Path, quiet: bool) -> Result<Computed> {
    let registry = Registry::load(data).map_err(anyhow::Error::msg)?;
    let conflicts = registry.conflicts(&catalog);
    if !conflicts.is_empty() {
        bail!("{}", conflicts.join("\n"));
    }
    let mut bar = Bar::new(quiet);
    bar.phase("reading entities", 0, 1);
    let ctx = Context::from_store(store)?;
    // Categorical definitions split into their levels; the registry records the catalog as written.
    let declared = catalog;
    let catalog = crate::behaviours::resolve(store, &declared, &ctx)?;
    let engine = replay(store, &ctx, data, &mut bar)?;
    let horizon = snapshot::horizon(&engine);
    let snapshots = snapshot::snapshots(&engine, &catalog, horizon, &mut |d, t| {
        bar.phase("computing snapshots", d, t)
    });
    let timing = snapshot::timing(&engine, &catalog);
    let unobserved = snapshot::unobserved(&ctx, &snapshot::landmarks(&ctx, &catalog, horizon));
    let history_flags = winsignal_discover::changed_at_close(&catalog, &deal_history(store)?);
    bar.finish();
    let mut registry = registry;
    registry
        .record(&declared, data)
        .map_err(anyhow::Error::msg)?;
    Ok(Computed {
        events: engine.state.applied,
        unattributed: engine.state.unattributed.clone(),
        catalog,
        snapshots,
        horizon,
        timing,
        history_flags,
        unobserved,
    })
}

/// Every closed opportunity the store holds more than one version of, with when each version was
/// loaded and its fields — when opportunities were loaded more than once (exports taken over time);
/// otherwise nothing, as there is no history to read.
fn deal_history(store: &dyn Store) -> Result<Vec<winsignal_discover::DealHistory>> {
    use winsignal_core::{AttrValue, Kind, Outcome, Record};
    let loads = store.loads()?;
    if loads
        .iter()
        .filter(|l| l.kinds.contains(&Kind::Opportunities))
        .count()
        < 2
    {
        return Ok(Vec::new());
    }
    let loaded_at: std::collections::BTreeMap<_, Ts> =
        loads.iter().map(|l| (l.load_id, l.started_at)).collect();
    let fields = |r: &Record| -> Option<std::collections::BTreeMap<String, String>> {
        let Record::Opportunities(o) = r else {
            return None;
        };
        let mut f = std::collections::BTreeMap::new();
        if let Some(a) = o.amount {
            f.insert("amount".to_string(), format!("{a}"));
        }
        if let Some(t) = &o.opp_type {
            f.insert("type".to_string(), t.clone());
        }
        if let Some(l) = &o.lead_source {
            f.insert("lead_source".to_string(), l.clone());
        }
        for (name, value) in &o.attrs {
            let text = match value {
                AttrValue::Number(x) => format!("{x}"),
                AttrValue::Boolean(b) => b.to_string(),
                AttrValue::Date(d) => d.0.to_string(),
                AttrValue::Text(t) => t.clone(),
            };
            f.insert(name.clone(), text);
        }
        Some(f)
    };
    let mut out = Vec::new();
    for current in store.records(Kind::Opportunities)? {
        let Record::Opportunities(o) = &current.record else {
            continue;
        };
        let (Some(closed_at), true) = (o.closed_at, o.outcome != Outcome::Open) else {
            continue;
        };
        if current.version < 2 {
            continue;
        }
        let mut versions = Vec::new();
        for v in store.versions(Kind::Opportunities, &current.id)? {
            if let (Some(at), Some(f)) = (loaded_at.get(&v.origin.load_id), fields(&v.record)) {
                versions.push((*at, f));
            }
        }
        versions.sort_by_key(|(at, _)| *at);
        out.push(winsignal_discover::DealHistory {
            opportunity_id: current.id.clone(),
            closed_at,
            versions,
        });
    }
    Ok(out)
}

pub fn run_snapshots(global: &Global, store: &dyn Store, args: &SnapshotsArgs) -> Result<()> {
    let catalog = args.catalog.load()?;
    let c = compute(store, catalog, &global.data, global.quiet)?;
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

#[derive(Serialize)]
struct ExplainOut<'a> {
    opportunity_id: &'a str,
    feature: &'a str,
    version: u32,
    landmark: String,
    as_of: String,
    value: Option<f64>,
    behaviour: Option<bool>,
    contributions: &'a [winsignal_features::lineage::Contribution],
}

pub fn run_explain(global: &Global, store: &dyn Store, args: &ExplainArgs) -> Result<()> {
    let ctx = Context::from_store(store)?;
    let catalog = crate::behaviours::resolve(store, &args.catalog.load()?, &ctx)?;
    let Some(def) = catalog.behaviours.iter().find(|d| d.id == args.feature) else {
        let ids: Vec<&str> = catalog.behaviours.iter().map(|d| d.id.as_str()).collect();
        bail!(
            "no feature {:?} in {}; the catalog has: {}",
            args.feature,
            catalog.name,
            ids.join(", ")
        );
    };
    let Some(opp) = ctx.opportunity(&args.opportunity) else {
        bail!(
            "no opportunity with id {:?} in {}",
            args.opportunity,
            global.data.display()
        );
    };
    let mut bar = Bar::new(global.quiet);
    let engine = replay(store, &ctx, &global.data, &mut bar)?;
    bar.finish();
    let horizon = snapshot::horizon(&engine);
    let lms = snapshot::landmarks(&ctx, &catalog, horizon);
    let mine: Vec<_> = lms.items.iter().filter(|l| l.opp == opp).collect();
    let (name, as_of) = match &args.landmark {
        None => match mine.last() {
            Some(l) => (lms.names[l.name as usize].clone(), l.as_of),
            None => bail!(
                "opportunity {} has no landmarks (it closed at creation or after the data ends)",
                args.opportunity
            ),
        },
        Some(l) => match mine.iter().find(|x| lms.names[x.name as usize] == *l) {
            Some(x) => (l.clone(), x.as_of),
            None => match Ts::parse(l) {
                Ok(t) => (format!("at {}", t.to_rfc3339()), t),
                Err(_) => {
                    let names: Vec<&str> = mine
                        .iter()
                        .map(|x| lms.names[x.name as usize].as_str())
                        .collect();
                    bail!(
                        "--landmark {l:?}: expected one of this opportunity's landmarks ({}) or an RFC 3339 time",
                        names.join(", ")
                    )
                }
            },
        },
    };
    let mut ex = winsignal_features::lineage::explain(&engine, def, opp, as_of);
    winsignal_features::lineage::attach_origins(store, &mut ex.contributions)?;
    let out = ExplainOut {
        opportunity_id: &ctx.opps[opp as usize].id,
        feature: &def.id,
        version: def.version,
        landmark: name,
        as_of: as_of.to_rfc3339(),
        value: ex.value.is_finite().then_some(ex.value),
        behaviour: ex.behaviour,
        contributions: &ex.contributions,
    };
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
    let ctx = Context::from_store(store)?;
    let Some(account) = ctx.account(id) else {
        bail!("no account with id {id:?} in {}", global.data.display());
    };
    let mut bar = Bar::new(global.quiet);
    let engine = replay(store, &ctx, &global.data, &mut bar)?;
    bar.finish();
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
