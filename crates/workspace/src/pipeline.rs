//! The feature pipeline: the engine state for the store as it is now (from the workspace's checkpoint
//! or a replay), and the whole feature pass — every opportunity at every landmark — that discovery,
//! training, scorecards and the report read.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use winsignal_core::Ts;
use winsignal_features::catalog::{self, Catalog};
use winsignal_features::engine::{Checkpoint, Engine};
use winsignal_features::registry::Registry;
use winsignal_features::snapshot::{self, Snapshot};
use winsignal_features::Context;
use winsignal_store::{LogPosition, Store, StoreRead};

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

/// One consistent state of the store and its entities, for a command that reads the engine state
/// itself (`explain-feature`, `graph`, `export`, `accounts`): everything it reads comes from the same
/// snapshot.
pub struct Reading<'s> {
    store: &'s dyn Store,
    snapshot: Box<dyn winsignal_store::Snapshot + 's>,
    pub ctx: Context,
    /// The store's checkpoint, read while the entities were, for the first [`Reading::engine`].
    checkpoint: std::sync::Mutex<Option<Fetched>>,
}

impl<'s> Reading<'s> {
    /// A snapshot of the store as it is now, and its entities.
    pub fn open(store: &'s dyn Store) -> Result<Reading<'s>> {
        let snapshot = store.snapshot()?;
        let (ctx, checkpoint) = entities(store, &*snapshot)?;
        Ok(Reading {
            store,
            snapshot,
            ctx,
            checkpoint: std::sync::Mutex::new(Some(checkpoint)),
        })
    }

    /// The snapshot, for reading anything else of the same state.
    pub fn read(&self) -> &dyn StoreRead {
        &*self.snapshot
    }

    /// The engine state of this snapshot ([`replay`]), over its own copy of the entities.
    pub fn engine(&self, progress: &mut dyn Progress) -> Result<Engine> {
        let fetched = self
            .checkpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let checkpoint = fetched.unwrap_or_else(|| fetch_checkpoint(self.store));
        let engine = replay_with(
            self.store,
            &*self.snapshot,
            self.ctx.clone(),
            checkpoint,
            progress,
        )?;
        progress.finish();
        Ok(engine)
    }
}

/// The name of the engine checkpoint among the store's named states.
pub const CHECKPOINT: &str = "engine-state";

/// The engine state for the state `read` of the store (`ctx`: its entities). From the store's
/// checkpoint when there is one of this state format and build: taken at this very log position, it is
/// the state; taken at an earlier one, it is restored and only what was committed since is applied
/// ([`Engine::catch_up`]: new and changed entities, new event versions). Otherwise every event is
/// replayed (with progress). The checkpoint is saved after a replay, and after a catch-up that applied
/// many changes ([`CATCH_UP_SAVE`]), so catching up stays short. The checkpoint's bytes are checked
/// against their checksum as they are read: one that cannot be read, or is damaged, only costs the
/// replay and is never taken for another state.
pub fn replay(
    store: &dyn Store,
    read: &dyn StoreRead,
    ctx: Context,
    progress: &mut dyn Progress,
) -> Result<Engine> {
    replay_with(store, read, ctx, fetch_checkpoint(store), progress)
}

/// [`replay`] with the store's checkpoint already read (see [`entities`]).
pub fn replay_with(
    store: &dyn Store,
    read: &dyn StoreRead,
    ctx: Context,
    checkpoint: Fetched,
    progress: &mut dyn Progress,
) -> Result<Engine> {
    let position = read.position()?;
    let ctx = match checkpoint.0 {
        Some(checkpoint) if checkpoint.position() <= position => {
            match Engine::resume(*checkpoint, ctx) {
                Ok((engine, at)) if at == position => return Ok(engine),
                Ok((mut engine, at)) => {
                    progress.phase("applying what changed since the checkpoint", 0, 1);
                    crate::fault::point("pipeline:catch-up");
                    let before = engine.applied();
                    engine.catch_up(read, at)?;
                    if engine.applied() - before >= CATCH_UP_SAVE {
                        save_checkpoint(store, &engine, position);
                    }
                    return Ok(engine);
                }
                Err(e) => {
                    ignored(&e);
                    // The entities went into a checkpoint that could not be laid over them.
                    Context::from_store(read)?
                }
            }
        }
        // None, or taken of a later state than this snapshot (another command saved it meanwhile): not
        // ours.
        _ => ctx,
    };
    let total: u64 = read.event_counts()?.iter().map(|(_, n)| n).sum();
    progress.phase("replaying events", 0, total);
    let engine = Engine::replay(ctx, read, &mut |n| {
        progress.phase("replaying events", n, total)
    })?;
    save_checkpoint(store, &engine, position);
    Ok(engine)
}

/// The entities of `read`, and the store's checkpoint read and decoded on a second thread meanwhile:
/// the engine needs both, each takes a few hundred milliseconds on the scale-1 demo, and neither needs
/// the other. Pass both to [`replay_with`].
pub fn entities(store: &dyn Store, read: &dyn StoreRead) -> Result<(Context, Fetched)> {
    std::thread::scope(|s| {
        let fetching = s.spawn(|| fetch_checkpoint(store));
        let ctx = Context::from_store(read);
        let fetched = fetching
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok((ctx?, fetched))
    })
}

/// A catch-up that applied at least this many events and records saves a new checkpoint; a smaller
/// one is cheaper to apply again than the checkpoint is to write (about 215 MB for the scale-1 demo).
pub const CATCH_UP_SAVE: u64 = 50_000;

fn save_checkpoint(store: &dyn Store, engine: &Engine, position: LogPosition) {
    let saved = store.put_state(CHECKPOINT, &checkpoint_key(position), &mut |w| {
        engine
            .write_checkpoint(w, position)
            .map_err(std::io::Error::other)
    });
    if let Err(e) = saved {
        tracing::warn!(error = %e, "Engine checkpoint not saved.");
    }
}

/// What a checkpoint is: the state format and the build (a checkpoint of another is not read), then
/// the log position it was taken at (also inside the state).
fn checkpoint_key(position: LogPosition) -> String {
    format!("{}{position}", checkpoint_kind())
}

fn checkpoint_kind() -> String {
    format!(
        "winsignal {} engine state {} at log position ",
        env!("CARGO_PKG_VERSION"),
        winsignal_features::engine::STATE_FORMAT,
    )
}

/// The store's checkpoint, read and decoded, if there is a usable one of this state format and build
/// (see [`entities`]). The default is none: a replay.
#[derive(Default)]
pub struct Fetched(Option<Box<Checkpoint>>);

fn ignored(why: &str) {
    tracing::warn!(reason = why, "Engine checkpoint ignored; replaying.");
}

/// The store's checkpoint, if it is of this state format and build and reads back as written.
fn fetch_checkpoint(store: &dyn Store) -> Fetched {
    let state = match store.state(CHECKPOINT) {
        Ok(Some(state)) if state.key.starts_with(&checkpoint_kind()) => state,
        Ok(_) => return Fetched(None),
        Err(e) => {
            ignored(&e.to_string());
            return Fetched(None);
        }
    };
    // Read a part at a time, and to the end, where the checksum is checked: a damaged checkpoint is
    // an error here, never a state.
    let r = Checkpoint::read(state.bytes, state.len);
    match r {
        Ok(checkpoint) => Fetched(Some(Box::new(checkpoint))),
        Err(e) => {
            ignored(&e);
            Fetched(None)
        }
    }
}

/// The whole feature pass: entities, replay, every snapshot. Also used by `demo`.
pub struct Computed {
    pub catalog: Catalog,
    pub snapshots: Vec<Snapshot>,
    pub horizon: Ts,
    /// Events, support tickets and transcripts the engine state holds.
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

/// The whole feature pass on the store as it is now (one snapshot of it).
pub fn compute(
    store: &dyn Store,
    catalog: Catalog,
    progress: &mut dyn Progress,
) -> Result<Computed> {
    let snapshot = store.snapshot()?;
    compute_at(store, &*snapshot, catalog, progress)
}

/// The whole feature pass on the state `read` of the store (a snapshot the caller also reads other
/// things from).
pub fn compute_at(
    store: &dyn Store,
    read: &dyn StoreRead,
    catalog: Catalog,
    progress: &mut dyn Progress,
) -> Result<Computed> {
    let registry = load_registry(store)?;
    let conflicts = registry.conflicts(&catalog);
    if !conflicts.is_empty() {
        bail!("{}", conflicts.join("\n"));
    }
    progress.phase("reading entities", 0, 1);
    let (ctx, checkpoint) = entities(store, read)?;
    crate::fault::point("pipeline:after-entities");
    // Categorical definitions split into their levels; the registry records the catalog as written.
    let declared = catalog;
    let catalog = crate::catalogs::resolve(read, &declared, &ctx)?;
    let engine = replay_with(store, read, ctx, checkpoint, progress)?;
    let ctx = engine.context();
    let horizon = snapshot::horizon(&engine);
    let snapshots = snapshot::snapshots(&engine, &catalog, horizon, &mut |d, t| {
        progress.phase("computing snapshots", d, t)
    });
    let timing = snapshot::timing(&engine, &catalog);
    let unobserved = snapshot::unobserved(ctx, &snapshot::landmarks(ctx, &catalog, horizon));
    let history_flags = winsignal_discover::changed_at_close(&catalog, &deal_history(read)?);
    record_registry(store, &declared)?;
    // What the state holds, counted from the snapshot (the same however the state was reached: a
    // replay, a checkpoint, a catch-up that also applied versions replaced since).
    let events = read.event_counts()?.iter().map(|(_, n)| n).sum::<u64>()
        + read.records(winsignal_core::Kind::SupportTickets)?.len() as u64
        + read.records(winsignal_core::Kind::Transcripts)?.len() as u64;
    let unattributed = engine.unattributed().clone();
    let ctx = engine.into_context();
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
fn deal_history(store: &dyn StoreRead) -> Result<Vec<winsignal_discover::DealHistory>> {
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

/// The name of the behaviour registry among the store's named states.
pub const REGISTRY: &str = "behaviour-registry";

/// Which definition each `id@version` meant when results were computed (empty before the first).
fn load_registry(store: &dyn Store) -> Result<Registry> {
    match store.state(REGISTRY)? {
        Some(state) => read_registry(state),
        None => Ok(Registry::default()),
    }
}

/// A registry as the store holds it; a damaged one is an error naming where it is kept.
pub(crate) fn read_registry(mut state: winsignal_store::NamedState) -> Result<Registry> {
    let mut text = String::new();
    state
        .bytes
        .read_to_string(&mut text)
        .with_context(|| format!("reading the behaviour registry {}", state.origin))?;
    Registry::parse(&text)
        .map_err(|e| anyhow::anyhow!("the behaviour registry {} is damaged: {e}", state.origin))
}

/// Records the definitions of `declared` in the registry as it is now, not as this command read it
/// at its start: another command may have recorded others meanwhile (a read-modify-write under the
/// store's update lock, so neither loses the other's). Refuses if one of them was recorded meanwhile
/// with another meaning.
fn record_registry(store: &dyn Store, declared: &Catalog) -> Result<()> {
    let mut refused: Option<anyhow::Error> = None;
    let updated = store.update_state(REGISTRY, "", &mut |current| {
        let registry = match current.map(read_registry).transpose() {
            Ok(registry) => registry.unwrap_or_default(),
            Err(e) => {
                refused = Some(e);
                return Err(std::io::Error::other("the registry cannot be read"));
            }
        };
        let conflicts = registry.conflicts(declared);
        if !conflicts.is_empty() {
            refused = Some(anyhow::anyhow!("{}", conflicts.join("\n")));
            return Err(std::io::Error::other("a definition conflicts"));
        }
        let mut registry = registry;
        registry.record(declared);
        Ok(registry.to_json().into_bytes())
    });
    match refused {
        Some(e) => Err(e),
        None => Ok(updated?),
    }
}
