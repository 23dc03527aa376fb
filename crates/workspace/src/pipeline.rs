//! The feature pipeline: the engine state for the store as it is now (from the workspace's checkpoint
//! or a replay), and the whole feature pass — every opportunity at every landmark — that discovery,
//! training, scorecards and the report read.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use winsignal_core::Ts;
use winsignal_features::catalog::{self, Catalog};
use winsignal_features::engine::Engine;
use winsignal_features::registry::Registry;
use winsignal_features::snapshot::{self, Snapshot};
use winsignal_features::Context;
use winsignal_store::Store;

use crate::Progress;

/// A catalog file, parsed; errors name the file, line and field.
pub fn load_catalog(path: &Path) -> Result<Catalog> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(catalog::parse(&text, &path.display().to_string())?)
}

/// The catalog a saved model is applied with: `path` when given, else the one the model was trained
/// with, else — for a model saved before catalogs were kept — the built-in default.
pub fn catalog_for_model(
    path: Option<&Path>,
    model_id: &str,
    model: &winsignal_score::model::WinModel,
) -> Result<Catalog> {
    match (path, &model.catalog_toml) {
        (Some(p), _) => load_catalog(p),
        (None, Some(text)) => Ok(catalog::parse(
            text,
            &format!("the catalog of model {model_id}"),
        )?),
        (None, None) => Ok(catalog::default_catalog()),
    }
}

/// The engine state for the store as it is now: restored from the workspace's saved checkpoint when
/// that was taken of exactly this store (same loads, same event counts, same state format), otherwise
/// replayed from every event (with progress) and saved for next time. A checkpoint that cannot be read
/// or saved only costs time: the state is replayed, never guessed.
pub fn replay<'c>(
    store: &dyn Store,
    ctx: &'c Context,
    data: &Path,
    progress: &mut dyn Progress,
) -> Result<Engine<'c>> {
    let counts = store.event_counts()?;
    let key = checkpoint_key(store, &counts)?;
    let path = data.join("cache").join("engine-state.bin");
    if let Some(engine) = restore_checkpoint(ctx, &path, &key) {
        return Ok(engine);
    }
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    progress.phase("replaying events", 0, total);
    let engine = Engine::replay(ctx, store, &mut |n| {
        progress.phase("replaying events", n, total)
    })?;
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
    /// The entities the snapshots were computed from (the same read as the events).
    pub ctx: Context,
}

pub fn compute(
    store: &dyn Store,
    catalog: Catalog,
    data: &Path,
    progress: &mut dyn Progress,
) -> Result<Computed> {
    let registry = Registry::load(data).map_err(anyhow::Error::msg)?;
    let conflicts = registry.conflicts(&catalog);
    if !conflicts.is_empty() {
        bail!("{}", conflicts.join("\n"));
    }
    progress.phase("reading entities", 0, 1);
    let ctx = Context::from_store(store)?;
    crate::fault::point("pipeline:after-entities");
    // Categorical definitions split into their levels; the registry records the catalog as written.
    let declared = catalog;
    let catalog = crate::catalogs::resolve(store, &declared, &ctx)?;
    let engine = replay(store, &ctx, data, progress)?;
    let horizon = snapshot::horizon(&engine);
    let snapshots = snapshot::snapshots(&engine, &catalog, horizon, &mut |d, t| {
        progress.phase("computing snapshots", d, t)
    });
    let timing = snapshot::timing(&engine, &catalog);
    let unobserved = snapshot::unobserved(&ctx, &snapshot::landmarks(&ctx, &catalog, horizon));
    let history_flags = winsignal_discover::changed_at_close(&catalog, &deal_history(store)?);
    let mut registry = registry;
    registry
        .record(&declared, data)
        .map_err(anyhow::Error::msg)?;
    let (events, unattributed) = (engine.state.applied, engine.state.unattributed.clone());
    drop(engine);
    Ok(Computed {
        ctx,
        events,
        unattributed,
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
