//! The embedded store: a workspace directory holding `store.sqlite` (records, loads, quarantine, flags,
//! schemas, models, the segment catalog), `events/` (time-sorted event segments) and `state/` (named
//! state files, see `state.rs`).
//!
//! Atomicity: a batch writes its segments to temporary files, fsyncs and renames them, and registers
//! them in the same SQLite transaction as everything else. Segment files that no committed transaction
//! registered are invisible and removed by the next writer, so a killed process leaves nothing behind.
//! A registered segment is never deleted or rewritten, which is what lets a snapshot keep reading the
//! segments its catalog listed while other batches commit (a future compaction must keep that true for
//! as long as a snapshot may read them). See docs/decisions/0001-embedded-store.md for why events are
//! not SQLite rows.
//!
//! Connections: each batch and each snapshot opens a connection of its own (a batch holds SQLite's
//! write lock through an IMMEDIATE transaction, a snapshot a read transaction, which in WAL mode sees
//! one committed state however long it lasts); single reads of the latest state and model saves share
//! one connection behind a mutex.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use winsignal_core::hash::{hash_bytes, ContentHasher, U64Map, U64Set};
use winsignal_core::{Kind, Record, Ts};

use crate::error::{io_err, Result, StoreError};
use crate::segment::{kind_code, read_keys, KeyEntry, MergedEvents, PendingEvents};
use crate::{
    Batch, Column, EventChange, EventChanges, Events, Flag, JournalEntry, JournalQuery, LoadId,
    LoadInfo, LoadSpec, LoadStats, LogPosition, ModelInfo, ModelRecord, NamedState, PutOutcome,
    QuarantinedRow, RecordChange, RowOrigin, Snapshot, StateUpdate, StateWriter, Store, StoreRead,
    StoredEvent, StoredRecord,
};

/// Bumped when the on-disk layout changes so that older builds must not write it. 2: log positions
/// (`meta.position`, `loads.position`, `segments.position`) and the seq range of each segment
/// (`segments.min_seq`, `max_seq`); a format-1 workspace is migrated when it is opened.
const FORMAT_VERSION: i64 = 2;
/// Pending events are spilled to a segment beyond this many bytes, bounding a load's memory.
const SPILL_BYTES: usize = 128 << 20;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS loads(
    load_id INTEGER PRIMARY KEY, source TEXT NOT NULL, format TEXT NOT NULL, path TEXT NOT NULL,
    file_hash TEXT NOT NULL, file_bytes INTEGER NOT NULL, started_at INTEGER NOT NULL,
    finished_at INTEGER, columns TEXT, kinds TEXT, stats TEXT);
CREATE TABLE IF NOT EXISTS records(
    kind TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, current INTEGER NOT NULL,
    load_id INTEGER NOT NULL, line INTEGER NOT NULL, source_record_id TEXT, content_hash INTEGER NOT NULL,
    body TEXT NOT NULL, PRIMARY KEY(kind, id, version)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_current ON records(kind, current, id);
CREATE INDEX IF NOT EXISTS records_load ON records(load_id);
CREATE TABLE IF NOT EXISTS quarantine(
    load_id INTEGER NOT NULL, line INTEGER NOT NULL, kind TEXT, record_id TEXT, reasons TEXT NOT NULL,
    raw TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS quarantine_load ON quarantine(load_id);
CREATE TABLE IF NOT EXISTS flags(
    load_id INTEGER NOT NULL, line INTEGER NOT NULL, kind TEXT NOT NULL, record_id TEXT, code TEXT NOT NULL,
    message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments(
    segment_id INTEGER PRIMARY KEY, load_id INTEGER NOT NULL, file TEXT NOT NULL UNIQUE,
    n_events INTEGER NOT NULL, n_activities INTEGER NOT NULL, n_product_events INTEGER NOT NULL,
    n_marketing_touches INTEGER NOT NULL, min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS superseded(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, by_seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS superseded_by ON superseded(by_seq);
CREATE TABLE IF NOT EXISTS overlays(
    kind TEXT NOT NULL, id TEXT NOT NULL, source TEXT NOT NULL, fields TEXT NOT NULL,
    PRIMARY KEY(kind, id, source));
CREATE TABLE IF NOT EXISTS models(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, model_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    summary TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS journal(
    stream TEXT NOT NULL, seq INTEGER NOT NULL, key TEXT NOT NULL, at INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY(stream, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS journal_key ON journal(stream, key, seq);
";

/// Columns added after the first release of the store format: old workspaces get them on open.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("loads", "identity", "TEXT"),
    ("loads", "recipe", "TEXT"),
    ("loads", "position", "INTEGER"),
    ("segments", "position", "INTEGER"),
    ("segments", "min_seq", "INTEGER"),
    ("segments", "max_seq", "INTEGER"),
];

/// How long a writer waits for another process's write to finish by default.
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

/// The store in a workspace directory.
pub struct EmbeddedStore {
    dir: PathBuf,
    /// For single reads of the latest state; batches and snapshots open their own.
    conn: Mutex<Connection>,
    /// For single writes (journal appends, models). Not `conn`: a write waits for another writer's
    /// lock holding its connection, and that writer (a batch of this handle, on another thread) may be
    /// reading the latest state meanwhile.
    writer: Mutex<Connection>,
    /// Connections of finished batches and snapshots, for the next.
    spare: Spare,
    /// How long a write waits for another process's write to finish before giving up.
    lock_wait: Duration,
    /// With [`EmbeddedStore::keep_event_index`], the event index the last batch of this handle
    /// committed with, kept for the next batch: a long-running writer (the server) then does not read
    /// every segment's keys for each batch (about 0.4 s at the demo's scale 1). Used only when nothing
    /// was committed since (by the position and the next sequence number, read under the write lock).
    /// Off by default: a command that writes once would only hold the index's memory (about 1 GB at
    /// the demo's scale 10) through the rest of its work.
    event_index: Option<Arc<Mutex<Option<CachedIndex>>>>,
    /// Whether this handle's first batch removed the segments interrupted loads left: once is enough
    /// (they are never read, being unregistered), and reading the segment directory at every batch
    /// costs a server that commits hundreds of times a second.
    swept: std::sync::atomic::AtomicBool,
}

/// See [`EmbeddedStore::event_index`].
struct CachedIndex {
    position: LogPosition,
    next_seq: u64,
    index: U64Map<(u64, u64)>,
}

fn event_dir(dir: &Path) -> PathBuf {
    dir.join("events")
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("store.sqlite")
}

fn key_hash(kind: Kind, key: &str) -> u64 {
    let mut h = ContentHasher::new();
    h.field(&[kind_code(kind)]).field(key.as_bytes());
    h.finish()
}

/// A SQLite failure in the store's own terms: a lock held by another writer is [`StoreError::Busy`]
/// (after waiting `waited`), a read snapshot overtaken by a write is a conflict, a damaged file is
/// corrupt, anything else a backend failure in SQLite's words.
fn db_error(e: rusqlite::Error, dir: &Path, waited: Duration) -> StoreError {
    let path = dir.to_path_buf();
    let Some(code) = e.sqlite_error() else {
        return StoreError::Backend {
            path,
            message: e.to_string(),
        };
    };
    let message = e.to_string();
    if code.extended_code == rusqlite::ffi::SQLITE_BUSY_SNAPSHOT {
        return StoreError::Conflict { path, message };
    }
    match code.code {
        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
            StoreError::Busy {
                path,
                waited_s: waited.as_secs(),
            }
        }
        rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase => {
            StoreError::CorruptDatabase { path, message }
        }
        _ => StoreError::Backend { path, message },
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Puts SQLite's errors into the store's terms, naming the workspace.
trait Sql<T> {
    fn sql(self, dir: &Path) -> Result<T>;
}

impl<T> Sql<T> for rusqlite::Result<T> {
    fn sql(self, dir: &Path) -> Result<T> {
        self.map_err(|e| db_error(e, dir, Duration::ZERO))
    }
}

/// Opens a connection to the workspace's database with the store's settings.
fn connect(dir: &Path, lock_wait: Duration) -> Result<Connection> {
    let conn = Connection::open(db_path(dir)).sql(dir)?;
    conn.busy_timeout(lock_wait).sql(dir)?;
    conn.pragma_update(None, "synchronous", "FULL").sql(dir)?;
    conn.pragma_update(None, "foreign_keys", "OFF").sql(dir)?;
    Ok(conn)
}

/// Connections a handle's batches and snapshots gave back, for the next to use: opening one costs
/// reading the schema (at hundreds of commits a second, 4 % of a server's time). Each is given back
/// outside any transaction, with no lock held.
#[derive(Clone, Default)]
struct Spare(Arc<Mutex<Vec<Connection>>>);

/// How many connections a handle keeps to use again.
const SPARE_CONNECTIONS: usize = 4;

impl Spare {
    /// A connection waiting at most `lock_wait` for another writer: one given back, or a new one.
    fn take(&self, dir: &Path, lock_wait: Duration) -> Result<Connection> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match kept {
            Some(conn) => {
                conn.busy_timeout(lock_wait).sql(dir)?;
                Ok(conn)
            }
            None => connect(dir, lock_wait),
        }
    }

    /// Keeps `conn` for the next use, outside a transaction (it is closed when that cannot be told).
    fn give(&self, conn: Connection) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if conn.is_autocommit() && kept.len() < SPARE_CONNECTIONS {
            kept.push(conn);
        }
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while the connection was held left no transaction open (reads roll theirs back as they
    // unwind), so the connection is still good.
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EmbeddedStore {
    /// Whether the workspace at `dir` holds the named state `name`, found without opening the store
    /// (which would create or migrate it): for a caller deciding whether `dir` is its to open.
    pub fn has_state(dir: &Path, name: &str) -> bool {
        crate::state::check_name(name).is_ok()
            && crate::state::state_file(&crate::state::state_dir(dir), name).is_file()
    }

    /// Opens (creating if needed) the workspace at `dir`, migrating an older store format.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(event_dir(dir)).map_err(io_err(dir))?;
        let conn = connect(dir, DEFAULT_LOCK_WAIT)?;
        let busy = |e: rusqlite::Error| db_error(e, dir, DEFAULT_LOCK_WAIT);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(busy)?;
        if needs_migration(&conn, dir)? {
            migrate(&conn, dir)?;
        }
        Ok(EmbeddedStore {
            dir: dir.to_path_buf(),
            conn: Mutex::new(conn),
            writer: Mutex::new(connect(dir, DEFAULT_LOCK_WAIT)?),
            spare: Spare::default(),
            lock_wait: DEFAULT_LOCK_WAIT,
            event_index: None,
            swept: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Keeps the event index between this handle's batches (see [`EmbeddedStore::event_index`]): for
    /// a process that writes many small batches.
    pub fn keep_event_index(&mut self) {
        self.event_index
            .get_or_insert_with(|| Arc::new(Mutex::new(None)));
    }

    /// Reads the event index now, for the next batch (with [`EmbeddedStore::keep_event_index`]; does
    /// nothing otherwise): a server does it before it says it is ready, so that its first write is as
    /// quick as the others (the index takes about 1 s to read at the demo's scale 1).
    pub fn warm_event_index(&self) -> Result<()> {
        if self.event_index.is_none() {
            return Ok(());
        }
        let mut batch = self.open_batch()?;
        batch.load_event_index()?;
        if let (Some(index), Some(cache)) = (batch.event_index.take(), &batch.cache) {
            *cache.lock().unwrap_or_else(PoisonError::into_inner) = Some(CachedIndex {
                position: batch.position,
                next_seq: batch.next_seq,
                index,
            });
        }
        // Dropped: rolled back, nothing written.
        Ok(())
    }

    /// A batch: the write lock taken (waiting for another writer as [`EmbeddedStore::set_lock_wait`]
    /// says), the transaction begun.
    fn open_batch(&self) -> Result<EmbeddedBatch> {
        let dir = &self.dir;
        let conn = self.spare.take(dir, Duration::ZERO)?;
        // A quick try first, so that a user kept waiting by another writer is told why at once.
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {}
            Err(e) if is_busy(&e) => {
                tracing::warn!(
                    workspace = %dir.display(),
                    wait_s = self.lock_wait.as_secs(),
                    "Another writer holds this workspace (another process, or a single write of this one); waiting for it to finish."
                );
                conn.busy_timeout(self.lock_wait).sql(dir)?;
                conn.execute_batch("BEGIN IMMEDIATE")
                    .map_err(|e| db_error(e, dir, self.lock_wait))?;
            }
            Err(e) => return Err(db_error(e, dir, self.lock_wait)),
        }
        conn.busy_timeout(self.lock_wait).sql(dir)?;
        let mut batch = EmbeddedBatch {
            dir: dir.clone(),
            conn: Some(conn),
            spare: self.spare.clone(),
            open: true,
            loads: Vec::new(),
            position: LogPosition::START,
            event_index: None,
            pending: PendingEvents::default(),
            scratch: Vec::new(),
            written: Vec::new(),
            next_seq: 1,
            pending_seqs: None,
            batch_tag: format!("{}-{}", std::process::id(), Ts::now().0),
            n_spills: 0,
            pending_counts: [0; 4],
            cache: self.event_index.clone(),
        };
        // From here on, dropping the batch rolls the transaction back.
        if !self.swept.swap(true, std::sync::atomic::Ordering::Relaxed) {
            remove_unregistered_segments(batch.conn()?, dir)?;
        }
        let next_seq: Option<String> = batch
            .conn()?
            .query_row("SELECT value FROM meta WHERE key='next_seq'", [], |r| {
                r.get(0)
            })
            .optional()
            .sql(dir)?;
        batch.next_seq = next_seq.and_then(|v| v.parse().ok()).unwrap_or(1);
        batch.position = log_position(batch.conn()?, dir)?;
        let cached = batch
            .cache
            .as_ref()
            .and_then(|c| c.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(c) = cached {
            if c.position == batch.position && c.next_seq == batch.next_seq {
                batch.event_index = Some(c.index);
            }
        }
        Ok(batch)
    }

    /// How long a write waits for another process writing this workspace before it fails with
    /// [`StoreError::Busy`] (default 30 s).
    pub fn set_lock_wait(&mut self, wait: Duration) -> Result<()> {
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        conn.busy_timeout(wait).sql(&self.dir)?;
        let writer = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        writer.busy_timeout(wait).sql(&self.dir)?;
        self.lock_wait = wait;
        Ok(())
    }

    /// Runs `read` on the latest committed state, in a read transaction of its own.
    fn latest<T>(&self, read: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        let conn = lock(&self.conn);
        let tx = conn.unchecked_transaction().sql(&self.dir)?;
        let out = read(&Reader {
            dir: &self.dir,
            conn: &tx,
        })?;
        tx.finish().sql(&self.dir)?;
        Ok(out)
    }
}

/// Whether the database lacks tables, columns or values this build writes (a new workspace or an
/// older format); refuses a newer format. Reads only, so opening a current workspace never waits for
/// a writer.
fn needs_migration(conn: &Connection, dir: &Path) -> Result<bool> {
    let has_meta: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .sql(dir)?
        > 0;
    if !has_meta {
        return Ok(true);
    }
    let version = format_version(conn, dir)?;
    check_not_newer(version, dir)?;
    // Tables added since without changing the format (older builds neither read nor mind them) are
    // made by the migration's `SCHEMA` too.
    let has_added: bool = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master
             WHERE (type='table' AND name IN ('journal'))
                OR (type='index' AND name IN ('loads_identity', 'loads_position', 'segments_position'))",
            [],
            |r| r.get::<_, i64>(0),
        )
        .sql(dir)?
        == ADDED_TABLES;
    Ok(version != Some(FORMAT_VERSION) || !has_added)
}

/// How many tables and indexes were added after format 2 without a new format (the table `journal`,
/// the indexes of [`ADDED_INDEXES`]).
const ADDED_TABLES: i64 = 4;

/// Indexes on columns added after format 2. A server commits hundreds of times a second, each commit
/// a load with its own segment: what it asks of every commit (the loads and segments since a
/// position, an earlier load of the same identity) must not read them all.
const ADDED_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS loads_identity ON loads(source, identity, load_id);
CREATE INDEX IF NOT EXISTS loads_position ON loads(position);
CREATE INDEX IF NOT EXISTS segments_position ON segments(position);
";

fn format_version(conn: &Connection, dir: &Path) -> Result<Option<i64>> {
    let found: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key='format_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .sql(dir)?;
    Ok(found.and_then(|v| v.parse::<i64>().ok()))
}

fn check_not_newer(version: Option<i64>, dir: &Path) -> Result<()> {
    match version {
        Some(v) if v > FORMAT_VERSION => Err(StoreError::NewerFormat {
            path: db_path(dir),
            found: v,
            supported: FORMAT_VERSION,
        }),
        _ => Ok(()),
    }
}

/// Brings the database to this build's format in one write transaction: tables, added columns, log
/// positions for loads and segments written before positions existed (each earlier load counts as
/// one batch, in load order) and each old segment's seq range.
fn migrate(conn: &Connection, dir: &Path) -> Result<()> {
    let busy = |e: rusqlite::Error| db_error(e, dir, DEFAULT_LOCK_WAIT);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(busy)?;
    let migrated = (|| {
        conn.execute_batch(SCHEMA).sql(dir)?;
        // Another process may have migrated while this one waited for the lock.
        check_not_newer(format_version(conn, dir)?, dir)?;
        add_missing_columns(conn).sql(dir)?;
        // On columns added after format 2, so made here and not in `SCHEMA`.
        conn.execute_batch(ADDED_INDEXES).sql(dir)?;
        conn.execute_batch(
            "UPDATE loads SET position = load_id WHERE position IS NULL;
             UPDATE segments SET position =
                 (SELECT COALESCE(loads.position, segments.load_id) FROM loads WHERE loads.load_id = segments.load_id)
             WHERE position IS NULL;
             UPDATE segments SET position = load_id WHERE position IS NULL;
             INSERT OR IGNORE INTO meta(key, value)
                 SELECT 'position', CAST(COALESCE(MAX(position), 0) AS TEXT) FROM loads;",
        )
        .sql(dir)?;
        fill_segment_seq_ranges(conn, dir)?;
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('format_version', ?1)",
            [FORMAT_VERSION.to_string()],
        )
        .sql(dir)?;
        Ok(())
    })();
    match migrated {
        Ok(()) => conn.execute_batch("COMMIT").map_err(busy),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Adds the columns of [`ADDED_COLUMNS`] a table lacks (older builds read columns by name).
fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, decl) in ADDED_COLUMNS {
        let mut stmt = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
        let have = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<HashSet<String>>>()?;
        if !have.contains(*column) {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

/// Records the seq range of segments written before ranges were kept, from their key blocks. A
/// segment that cannot be read keeps no range: lookups by seq then read it whole, and report the
/// damage if they need it.
fn fill_segment_seq_ranges(conn: &Connection, dir: &Path) -> Result<()> {
    let mut stmt = conn
        .prepare("SELECT segment_id, file FROM segments WHERE min_seq IS NULL")
        .sql(dir)?;
    let missing = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .sql(dir)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .sql(dir)?;
    let mut keys = Vec::new();
    for (segment_id, file) in missing {
        keys.clear();
        let path = event_dir(dir).join(&file);
        if let Err(e) = read_keys(&path, &mut keys) {
            tracing::warn!(file = %path.display(), error = %e, "Cannot read a segment's key block to index it by seq.");
            continue;
        }
        let min = keys.iter().map(|k| k.seq).min();
        let max = keys.iter().map(|k| k.seq).max();
        if let (Some(min), Some(max)) = (min, max) {
            conn.execute(
                "UPDATE segments SET min_seq = ?2, max_seq = ?3 WHERE segment_id = ?1",
                params![segment_id, min as i64, max as i64],
            )
            .sql(dir)?;
        }
    }
    Ok(())
}

/// Segment file names in the order they were committed.
fn registered_segments(conn: &Connection, dir: &Path) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare("SELECT file FROM segments ORDER BY segment_id")
        .sql(dir)?;
    let files = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .sql(dir)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .sql(dir)?;
    Ok(files)
}

/// Sequence numbers of event versions replaced by later ones.
fn superseded_seqs(conn: &Connection, dir: &Path) -> Result<U64Set> {
    let mut stmt = conn.prepare("SELECT seq FROM superseded").sql(dir)?;
    let seqs = stmt
        .query_map([], |r| r.get::<_, i64>(0))
        .sql(dir)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .sql(dir)?;
    Ok(seqs.into_iter().map(|s| s as u64).collect())
}

fn log_position(conn: &Connection, dir: &Path) -> Result<LogPosition> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key='position'", [], |r| {
            r.get(0)
        })
        .optional()
        .sql(dir)?;
    match value {
        None => Ok(LogPosition::START),
        Some(v) => v
            .parse()
            .map(LogPosition)
            .map_err(|_| StoreError::CorruptDatabase {
                path: db_path(dir),
                message: format!("the log position {v:?} is not a number"),
            }),
    }
}

fn parse_kind(s: &str) -> Result<Kind> {
    s.parse::<Kind>()
        .map_err(|e| StoreError::Internal(format!("stored kind {s:?}: {e}")))
}

fn decode_record(kind: &str, id: &str, body: &str) -> Result<Record> {
    serde_json::from_str(body).map_err(|e| StoreError::CorruptRecord {
        kind: kind.into(),
        id: id.into(),
        reason: e.to_string(),
    })
}

fn row_to_stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecordRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get::<_, i64>(3)? != 0,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

type RawRecordRow = (
    String,
    String,
    i64,
    bool,
    i64,
    i64,
    Option<String>,
    i64,
    String,
);

fn stored_from_raw(raw: RawRecordRow) -> Result<StoredRecord> {
    let (kind, id, version, current, load_id, line, source_record_id, hash, body) = raw;
    let record = decode_record(&kind, &id, &body)?;
    Ok(StoredRecord {
        kind: parse_kind(&kind)?,
        id,
        version: version as u64,
        current,
        origin: RowOrigin {
            load_id: load_id as u64,
            line: line as u64,
            source_record_id,
        },
        content_hash: hash as u64,
        record,
    })
}

/// The read queries, on one connection; run inside a read transaction, they all see one state.
struct Reader<'c> {
    dir: &'c Path,
    conn: &'c Connection,
}

/// A load's row as read back.
type RawLoadRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
);

impl Reader<'_> {
    fn segment_paths(&self) -> Result<Vec<PathBuf>> {
        let files = registered_segments(self.conn, self.dir)?;
        Ok(files
            .into_iter()
            .map(|f| event_dir(self.dir).join(f))
            .collect())
    }

    /// Runs a query whose rows map straight to values.
    fn rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).sql(self.dir)?;
        let rows = stmt
            .query_map(params, map)
            .sql(self.dir)?
            .collect::<rusqlite::Result<Vec<T>>>()
            .sql(self.dir)?;
        Ok(rows)
    }

    fn position(&self) -> Result<LogPosition> {
        log_position(self.conn, self.dir)
    }

    fn identical_load(&self, source: &str, identity: &str) -> Result<Option<LoadId>> {
        let found = self.rows(
            "SELECT load_id FROM loads WHERE source = ?1 AND identity = ?2 AND finished_at IS NOT NULL
             ORDER BY load_id DESC LIMIT 1",
            params![source, identity],
            |r| r.get::<_, i64>(0),
        )?;
        Ok(found.first().map(|&id| id as LoadId))
    }

    fn loads(&self) -> Result<Vec<LoadInfo>> {
        let rows: Vec<RawLoadRow> = self.rows(
            "SELECT load_id, source, format, path, file_hash, file_bytes, started_at, finished_at, columns, kinds, stats,
                    COALESCE(identity, ''), COALESCE(recipe, '{}')
             FROM loads WHERE finished_at IS NOT NULL ORDER BY load_id",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                    r.get(12)?,
                ))
            },
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (
                id,
                source,
                format,
                path,
                file_hash,
                bytes,
                started,
                finished,
                columns,
                kinds,
                stats,
                identity,
                recipe,
            ) = row;
            let bad = |what: &str, e: serde_json::Error| StoreError::CorruptDatabase {
                path: db_path(self.dir),
                message: format!("load {id} {what}: {e}"),
            };
            out.push(LoadInfo {
                load_id: id as u64,
                source,
                format,
                path,
                file_hash,
                file_bytes: bytes as u64,
                identity,
                recipe: serde_json::from_str(&recipe).map_err(|e| bad("recipe", e))?,
                started_at: Ts(started),
                finished_at: Ts(finished),
                columns: serde_json::from_str(&columns).map_err(|e| bad("columns", e))?,
                kinds: serde_json::from_str(&kinds).map_err(|e| bad("kinds", e))?,
                stats: serde_json::from_str(&stats).map_err(|e| bad("stats", e))?,
            });
        }
        Ok(out)
    }

    fn records(&self, kind: Kind) -> Result<Vec<StoredRecord>> {
        let raws = self.rows(
            "SELECT kind, id, version, current, load_id, line, source_record_id, content_hash, body
             FROM records WHERE kind = ?1 AND current = 1 ORDER BY id",
            [kind.as_str()],
            row_to_stored,
        )?;
        raws.into_iter().map(stored_from_raw).collect()
    }

    fn each_record(
        &self,
        kind: Kind,
        each: &mut dyn FnMut(StoredRecord) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT kind, id, version, current, load_id, line, source_record_id, content_hash, body
                 FROM records WHERE kind = ?1 AND current = 1 ORDER BY id",
            )
            .sql(self.dir)?;
        let rows = stmt
            .query_map([kind.as_str()], row_to_stored)
            .sql(self.dir)?;
        for raw in rows {
            each(stored_from_raw(raw.sql(self.dir)?)?)?;
        }
        Ok(())
    }

    fn versions(&self, kind: Kind, id: &str) -> Result<Vec<StoredRecord>> {
        if kind.is_event() {
            let paths = self.segment_paths()?;
            let superseded = superseded_seqs(self.conn, self.dir)?;
            let mut out = Vec::new();
            for ev in MergedEvents::open(&paths, &[kind], U64Set::default())? {
                let ev = ev?;
                if ev.key == id {
                    out.push(StoredRecord {
                        kind,
                        id: ev.key,
                        version: 0,
                        current: !superseded.contains(&ev.seq),
                        origin: ev.origin,
                        content_hash: ev.content_hash,
                        record: ev.record,
                    });
                }
            }
            out.sort_by_key(|r| (r.origin.load_id, r.origin.line));
            for (i, r) in out.iter_mut().enumerate() {
                r.version = i as u64 + 1;
            }
            return Ok(out);
        }
        let raws = self.rows(
            "SELECT kind, id, version, current, load_id, line, source_record_id, content_hash, body
             FROM records WHERE kind = ?1 AND id = ?2 ORDER BY version",
            params![kind.as_str(), id],
            row_to_stored,
        )?;
        raws.into_iter().map(stored_from_raw).collect()
    }

    fn events(&self, kinds: &[Kind]) -> Result<Events<'static>> {
        let paths = self.segment_paths()?;
        let superseded = superseded_seqs(self.conn, self.dir)?;
        Ok(Box::new(MergedEvents::open(&paths, kinds, superseded)?))
    }

    fn event_counts(&self) -> Result<Vec<(Kind, u64)>> {
        let (a, p, t): (i64, i64, i64) = self.conn.query_row(
            "SELECT COALESCE(SUM(n_activities),0), COALESCE(SUM(n_product_events),0), COALESCE(SUM(n_marketing_touches),0) FROM segments",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        ).sql(self.dir)?;
        let mut out = Vec::new();
        for (kind, total) in [
            (Kind::Activities, a),
            (Kind::ProductEvents, p),
            (Kind::MarketingTouches, t),
        ] {
            let gone: i64 = self
                .conn
                .query_row(
                    "SELECT COUNT(*) FROM superseded WHERE kind = ?1",
                    [kind.as_str()],
                    |r| r.get(0),
                )
                .sql(self.dir)?;
            out.push((kind, (total - gone).max(0) as u64));
        }
        Ok(out)
    }

    fn quarantine(&self, load_id: Option<LoadId>) -> Result<Vec<QuarantinedRow>> {
        let rows = self.rows(
            "SELECT load_id, line, kind, record_id, reasons, raw FROM quarantine
             WHERE (?1 IS NULL OR load_id = ?1) ORDER BY load_id, line",
            [load_id.map(|l| l as i64)],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (load_id, line, kind, record_id, reasons, raw) in rows {
            out.push(QuarantinedRow {
                load_id: load_id as u64,
                line: line as u64,
                kind: kind.as_deref().map(parse_kind).transpose()?,
                record_id,
                reasons: serde_json::from_str(&reasons).map_err(|e| {
                    StoreError::CorruptDatabase {
                        path: db_path(self.dir),
                        message: format!("quarantined row {load_id}:{line}: {e}"),
                    }
                })?,
                raw,
            });
        }
        Ok(out)
    }

    fn flags(&self) -> Result<Vec<Flag>> {
        let rows = self.rows(
            "SELECT load_id, line, kind, record_id, code, message FROM flags ORDER BY load_id, line",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            },
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for (load_id, line, kind, record_id, code, message) in rows {
            out.push(Flag {
                load_id: load_id as u64,
                line: line as u64,
                kind: parse_kind(&kind)?,
                record_id,
                code,
                message,
            });
        }
        Ok(out)
    }

    fn models(&self, kind: Option<&str>) -> Result<Vec<ModelInfo>> {
        self.rows(
            "SELECT seq, model_id, kind, summary FROM models WHERE ?1 IS NULL OR kind = ?1 ORDER BY seq",
            [kind],
            |r| {
                Ok(ModelInfo {
                    seq: r.get::<_, i64>(0)? as u64,
                    model_id: r.get(1)?,
                    kind: r.get(2)?,
                    summary: r.get(3)?,
                })
            },
        )
    }

    fn model(&self, model_id: &str) -> Result<Option<ModelRecord>> {
        self.conn
            .query_row(
                "SELECT model_id, kind, summary, body FROM models WHERE model_id = ?1",
                [model_id],
                |r| {
                    Ok(ModelRecord {
                        model_id: r.get(0)?,
                        kind: r.get(1)?,
                        summary: r.get(2)?,
                        body: r.get(3)?,
                    })
                },
            )
            .optional()
            .sql(self.dir)
    }

    /// Positions of the loads committed after `after`.
    fn load_positions_after(&self, after: LogPosition) -> Result<BTreeMap<u64, LogPosition>> {
        let rows = self.rows(
            "SELECT load_id, position FROM loads WHERE position > ?1",
            [after.0 as i64],
            |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    LogPosition(r.get::<_, i64>(1)? as u64),
                ))
            },
        )?;
        Ok(rows.into_iter().collect())
    }

    fn events_since(&self, after: LogPosition, kinds: &[Kind]) -> Result<Vec<EventChange>> {
        let files = self.rows(
            "SELECT file FROM segments WHERE position > ?1 ORDER BY segment_id",
            [after.0 as i64],
            |r| r.get::<_, String>(0),
        )?;
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let paths: Vec<PathBuf> = files.iter().map(|f| event_dir(self.dir).join(f)).collect();
        let positions = self.load_positions_after(after)?;
        let mut changes = Vec::new();
        for event in MergedEvents::open(&paths, kinds, U64Set::default())? {
            let event = event?;
            let position = positions
                .get(&event.origin.load_id)
                .copied()
                .ok_or_else(|| StoreError::CorruptDatabase {
                    path: db_path(self.dir),
                    message: format!(
                        "event {} names load {}, which the catalog does not place in the log",
                        event.seq, event.origin.load_id
                    ),
                })?;
            changes.push(EventChange {
                position,
                supersedes: None,
                event,
            });
        }
        changes.sort_unstable_by_key(|c| c.event.seq);
        let first_seq = changes.first().map_or(0, |c| c.event.seq);
        let replaced: U64Map<u64> = self
            .rows(
                "SELECT by_seq, seq FROM superseded WHERE by_seq >= ?1",
                [first_seq as i64],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )?
            .into_iter()
            .collect();
        for change in &mut changes {
            change.supersedes = replaced.get(&change.event.seq).copied();
        }
        Ok(changes)
    }

    fn records_since(&self, after: LogPosition) -> Result<Vec<RecordChange>> {
        // Loads first (CROSS JOIN fixes the order): they are few, and the records of the loads since are
        // found through `records_load`, where the planner's own choice scanned every record (70 ms on
        // the scale-1 demo for a catch-up with no records at all).
        let rows = self.rows(
            "SELECT r.kind, r.id, r.version, r.current, r.load_id, r.line, r.source_record_id, r.content_hash, r.body,
                    l.position
             FROM loads l CROSS JOIN records r ON r.load_id = l.load_id
             WHERE l.position > ?1
             ORDER BY l.position, r.kind, r.id, r.version",
            [after.0 as i64],
            |r| Ok((row_to_stored(r)?, r.get::<_, i64>(9)?)),
        )?;
        rows.into_iter()
            .map(|(raw, position)| {
                let record = stored_from_raw(raw)?;
                Ok(RecordChange {
                    position: LogPosition(position as u64),
                    replaces: (record.version > 1).then(|| record.version - 1),
                    record,
                })
            })
            .collect()
    }

    fn events_by_seq(&self, seqs: &[u64]) -> Result<Vec<StoredEvent>> {
        let mut wanted = seqs.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        // Only segments whose seq range holds a wanted number (or whose range is unknown) are read.
        let segments = self.rows(
            "SELECT file, min_seq, max_seq FROM segments ORDER BY segment_id",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            },
        )?;
        let holds_wanted = |min: u64, max: u64| {
            let from = wanted.partition_point(|&s| s < min);
            wanted.get(from).is_some_and(|&s| s <= max)
        };
        let paths: Vec<PathBuf> = segments
            .into_iter()
            .filter(|(_, min, max)| match (min, max) {
                (Some(min), Some(max)) => holds_wanted(*min as u64, *max as u64),
                _ => true,
            })
            .map(|(file, _, _)| event_dir(self.dir).join(file))
            .collect();
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let all = [
            Kind::Activities,
            Kind::ProductEvents,
            Kind::MarketingTouches,
        ];
        let mut out = Vec::with_capacity(wanted.len());
        for event in MergedEvents::open(&paths, &all, U64Set::default())? {
            let event = event?;
            if wanted.binary_search(&event.seq).is_ok() {
                out.push(event);
            }
        }
        out.sort_unstable_by_key(|e| e.seq);
        Ok(out)
    }

    fn journal(&self, stream: &str, query: &JournalQuery) -> Result<Vec<JournalEntry>> {
        self.rows(
            "SELECT stream, seq, key, at, body FROM journal
             WHERE stream = ?1 AND (?2 IS NULL OR key = ?2) AND seq > ?3 ORDER BY seq LIMIT ?4",
            params![
                stream,
                query.key,
                query.after.min(i64::MAX as u64) as i64,
                query.limit.map_or(-1, |l| l.min(i64::MAX as usize) as i64)
            ],
            row_to_journal,
        )
    }

    fn journal_latest(&self, stream: &str) -> Result<Vec<JournalEntry>> {
        self.rows(
            "SELECT j.stream, j.seq, j.key, j.at, j.body FROM journal j
             JOIN (SELECT key, MAX(seq) AS seq FROM journal WHERE stream = ?1 GROUP BY key) m
               ON j.key = m.key AND j.seq = m.seq
             WHERE j.stream = ?1 ORDER BY j.key",
            [stream],
            row_to_journal,
        )
    }
}

fn into_changes<'a>(changes: Vec<EventChange>) -> EventChanges<'a> {
    Box::new(changes.into_iter().map(Ok))
}

impl StoreRead for EmbeddedStore {
    fn position(&self) -> Result<LogPosition> {
        self.latest(|r| r.position())
    }
    fn loads(&self) -> Result<Vec<LoadInfo>> {
        self.latest(|r| r.loads())
    }
    fn identical_load(&self, source: &str, identity: &str) -> Result<Option<LoadId>> {
        self.latest(|r| r.identical_load(source, identity))
    }
    fn records(&self, kind: Kind) -> Result<Vec<StoredRecord>> {
        self.latest(|r| r.records(kind))
    }
    fn each_record(
        &self,
        kind: Kind,
        each: &mut dyn FnMut(StoredRecord) -> Result<()>,
    ) -> Result<()> {
        self.latest(|r| r.each_record(kind, each))
    }
    fn versions(&self, kind: Kind, id: &str) -> Result<Vec<StoredRecord>> {
        self.latest(|r| r.versions(kind, id))
    }
    fn events(&self, kinds: &[Kind]) -> Result<Events<'_>> {
        self.latest(|r| r.events(kinds))
    }
    fn event_counts(&self) -> Result<Vec<(Kind, u64)>> {
        self.latest(|r| r.event_counts())
    }
    fn quarantine(&self, load_id: Option<LoadId>) -> Result<Vec<QuarantinedRow>> {
        self.latest(|r| r.quarantine(load_id))
    }
    fn flags(&self) -> Result<Vec<Flag>> {
        self.latest(|r| r.flags())
    }
    fn models(&self, kind: Option<&str>) -> Result<Vec<ModelInfo>> {
        self.latest(|r| r.models(kind))
    }
    fn model(&self, model_id: &str) -> Result<Option<ModelRecord>> {
        self.latest(|r| r.model(model_id))
    }
    fn events_since(&self, after: LogPosition, kinds: &[Kind]) -> Result<EventChanges<'_>> {
        self.latest(|r| r.events_since(after, kinds))
            .map(into_changes)
    }
    fn records_since(&self, after: LogPosition) -> Result<Vec<RecordChange>> {
        self.latest(|r| r.records_since(after))
    }
    fn events_by_seq(&self, seqs: &[u64]) -> Result<Vec<StoredEvent>> {
        self.latest(|r| r.events_by_seq(seqs))
    }
    fn journal(&self, stream: &str, query: &JournalQuery) -> Result<Vec<JournalEntry>> {
        self.latest(|r| r.journal(stream, query))
    }
    fn journal_latest(&self, stream: &str) -> Result<Vec<JournalEntry>> {
        self.latest(|r| r.journal_latest(stream))
    }
}

/// One committed state of an embedded store: a connection of its own holding a read transaction,
/// begun with the read of the log position, which fixes the state every later query sees.
struct EmbeddedSnapshot {
    dir: PathBuf,
    /// Given back to `spare` when the snapshot is dropped.
    conn: Mutex<Option<Connection>>,
    position: LogPosition,
    spare: Spare,
}

impl EmbeddedSnapshot {
    fn open(dir: &Path, lock_wait: Duration, spare: &Spare) -> Result<Self> {
        let conn = spare.take(dir, lock_wait)?;
        conn.execute_batch("BEGIN DEFERRED").sql(dir)?;
        // In WAL mode the first read fixes the state a read transaction sees.
        let position = log_position(&conn, dir)?;
        Ok(EmbeddedSnapshot {
            dir: dir.to_path_buf(),
            conn: Mutex::new(Some(conn)),
            position,
            spare: spare.clone(),
        })
    }

    fn read<T>(&self, read: impl FnOnce(&Reader<'_>) -> Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(conn) = conn.as_ref() else {
            return Err(StoreError::Internal("snapshot already dropped".into()));
        };
        read(&Reader {
            dir: &self.dir,
            conn,
        })
    }
}

impl Drop for EmbeddedSnapshot {
    fn drop(&mut self) {
        let conn = self.conn.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(conn) = conn.take() {
            if conn.execute_batch("ROLLBACK").is_ok() {
                self.spare.give(conn);
            }
        }
    }
}

impl Snapshot for EmbeddedSnapshot {}

impl StoreRead for EmbeddedSnapshot {
    fn position(&self) -> Result<LogPosition> {
        Ok(self.position)
    }
    fn loads(&self) -> Result<Vec<LoadInfo>> {
        self.read(|r| r.loads())
    }
    fn identical_load(&self, source: &str, identity: &str) -> Result<Option<LoadId>> {
        self.read(|r| r.identical_load(source, identity))
    }
    fn records(&self, kind: Kind) -> Result<Vec<StoredRecord>> {
        self.read(|r| r.records(kind))
    }
    fn each_record(
        &self,
        kind: Kind,
        each: &mut dyn FnMut(StoredRecord) -> Result<()>,
    ) -> Result<()> {
        self.read(|r| r.each_record(kind, each))
    }
    fn versions(&self, kind: Kind, id: &str) -> Result<Vec<StoredRecord>> {
        self.read(|r| r.versions(kind, id))
    }
    fn events(&self, kinds: &[Kind]) -> Result<Events<'_>> {
        self.read(|r| r.events(kinds))
    }
    fn event_counts(&self) -> Result<Vec<(Kind, u64)>> {
        self.read(|r| r.event_counts())
    }
    fn quarantine(&self, load_id: Option<LoadId>) -> Result<Vec<QuarantinedRow>> {
        self.read(|r| r.quarantine(load_id))
    }
    fn flags(&self) -> Result<Vec<Flag>> {
        self.read(|r| r.flags())
    }
    fn models(&self, kind: Option<&str>) -> Result<Vec<ModelInfo>> {
        self.read(|r| r.models(kind))
    }
    fn model(&self, model_id: &str) -> Result<Option<ModelRecord>> {
        self.read(|r| r.model(model_id))
    }
    fn events_since(&self, after: LogPosition, kinds: &[Kind]) -> Result<EventChanges<'_>> {
        self.read(|r| r.events_since(after, kinds))
            .map(into_changes)
    }
    fn records_since(&self, after: LogPosition) -> Result<Vec<RecordChange>> {
        self.read(|r| r.records_since(after))
    }
    fn events_by_seq(&self, seqs: &[u64]) -> Result<Vec<StoredEvent>> {
        self.read(|r| r.events_by_seq(seqs))
    }
    fn journal(&self, stream: &str, query: &JournalQuery) -> Result<Vec<JournalEntry>> {
        self.read(|r| r.journal(stream, query))
    }
    fn journal_latest(&self, stream: &str) -> Result<Vec<JournalEntry>> {
        self.read(|r| r.journal_latest(stream))
    }
}

impl Store for EmbeddedStore {
    fn begin(&self) -> Result<Box<dyn Batch + '_>> {
        Ok(Box::new(self.open_batch()?))
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        Ok(Box::new(EmbeddedSnapshot::open(
            &self.dir,
            self.lock_wait,
            &self.spare,
        )?))
    }

    fn put_model(&self, model: &ModelRecord) -> Result<bool> {
        let changed = lock(&self.writer)
            .execute(
                "INSERT OR IGNORE INTO models(model_id, kind, summary, body) VALUES(?1, ?2, ?3, ?4)",
                params![model.model_id, model.kind, model.summary, model.body],
            )
            .map_err(|e| db_error(e, &self.dir, self.lock_wait))?;
        Ok(changed == 1)
    }

    fn put_state(&self, name: &str, key: &str, write: &mut StateWriter<'_>) -> Result<()> {
        crate::state::write(&crate::state::state_dir(&self.dir), name, key, write)
    }

    fn state(&self, name: &str) -> Result<Option<NamedState>> {
        crate::state::read(&crate::state::state_dir(&self.dir), name)
    }

    fn update_state(&self, name: &str, key: &str, update: &mut StateUpdate<'_>) -> Result<()> {
        let dir = crate::state::state_dir(&self.dir);
        crate::state::update(&self.dir, &dir, self.lock_wait, name, key, update)
    }

    fn append(&self, stream: &str, at: Ts, entries: &[(String, Vec<u8>)]) -> Result<Vec<u64>> {
        let conn = lock(&self.writer);
        let fail = |e: rusqlite::Error| db_error(e, &self.dir, self.lock_wait);
        // Immediate: the numbers read and written under the database's write lock, so appends from
        // other processes cannot take the same ones.
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(fail)?;
        let last: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM journal WHERE stream = ?1",
                [stream],
                |r| r.get(0),
            )
            .map_err(fail)?;
        let mut seqs = Vec::with_capacity(entries.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO journal(stream, seq, key, at, body) VALUES(?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(fail)?;
            for (i, (key, body)) in entries.iter().enumerate() {
                let seq = last + 1 + i as i64;
                insert
                    .execute(params![stream, seq, key, at.0, body])
                    .map_err(fail)?;
                seqs.push(seq as u64);
            }
        }
        tx.commit().map_err(fail)?;
        Ok(seqs)
    }

    fn append_linked(
        &self,
        stream: &str,
        at: Ts,
        key: &str,
        make: &mut dyn FnMut(Option<&JournalEntry>) -> Vec<u8>,
    ) -> Result<u64> {
        let conn = lock(&self.writer);
        let fail = |e: rusqlite::Error| db_error(e, &self.dir, self.lock_wait);
        // Immediate, as `append`: the last entry is read under the write lock it is appended under.
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(fail)?;
        let last = tx
            .query_row(
                "SELECT stream, seq, key, at, body FROM journal WHERE stream = ?1 ORDER BY seq DESC LIMIT 1",
                [stream],
                row_to_journal,
            )
            .optional()
            .map_err(fail)?;
        let seq = last.as_ref().map_or(0, |e| e.seq) + 1;
        let body = make(last.as_ref());
        tx.execute(
            "INSERT INTO journal(stream, seq, key, at, body) VALUES(?1, ?2, ?3, ?4, ?5)",
            params![stream, seq as i64, key, at.0, body],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(seq)
    }
}

fn row_to_journal(r: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        stream: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        key: r.get(2)?,
        at: Ts(r.get(3)?),
        body: r.get(4)?,
    })
}

/// Deletes segment files no committed batch registered (left by a killed or failed writer).
/// Runs only inside a write transaction, so no other writer can be mid-batch.
fn remove_unregistered_segments(conn: &Connection, dir: &Path) -> Result<()> {
    let registered: HashSet<String> = registered_segments(conn, dir)?.into_iter().collect();
    let edir = event_dir(dir);
    for entry in fs::read_dir(&edir).map_err(io_err(&edir))? {
        let entry = entry.map_err(io_err(&edir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !registered.contains(&name) {
            tracing::warn!(file = %name, "Removing an event segment left by an interrupted load.");
            fs::remove_file(entry.path()).map_err(io_err(entry.path()))?;
        }
    }
    Ok(())
}

struct WrittenSegment {
    tmp: PathBuf,
    file: String,
    load_id: LoadId,
    n: u64,
    counts: [u64; 4],
    min_ts: i64,
    max_ts: i64,
    /// The first and last seq of its events (a batch numbers its events consecutively).
    min_seq: u64,
    max_seq: u64,
}

/// A batch on a connection of its own, inside an IMMEDIATE transaction (SQLite's write lock).
struct EmbeddedBatch {
    dir: PathBuf,
    /// Given back to `spare` when the batch ends.
    conn: Option<Connection>,
    spare: Spare,
    /// Whether the transaction is still open (until commit).
    open: bool,
    /// Loads started by this batch, placed at the batch's position when it commits.
    loads: Vec<LoadId>,
    /// The position of the state the batch started from; committing makes it one more.
    position: LogPosition,
    /// key hash → (content hash, seq) of every current event; loaded on the first event put.
    event_index: Option<U64Map<(u64, u64)>>,
    pending: PendingEvents,
    /// The body of the event being written, reused from one event to the next.
    scratch: Vec<u8>,
    pending_counts: [u64; 4],
    written: Vec<WrittenSegment>,
    next_seq: u64,
    /// The seq range of the pending events.
    pending_seqs: Option<(u64, u64)>,
    batch_tag: String,
    n_spills: u64,
    /// Where the index goes when the batch commits, if it is kept (see [`EmbeddedStore::event_index`]).
    cache: Option<Arc<Mutex<Option<CachedIndex>>>>,
}

impl EmbeddedBatch {
    fn conn(&self) -> Result<&Connection> {
        match &self.conn {
            Some(conn) if self.open => Ok(conn),
            _ => Err(StoreError::Internal("batch already committed".into())),
        }
    }

    fn load_event_index(&mut self) -> Result<()> {
        if self.event_index.is_some() {
            return Ok(());
        }
        let files = registered_segments(self.conn()?, &self.dir)?;
        let superseded = superseded_seqs(self.conn()?, &self.dir)?;
        let mut keys = Vec::new();
        for f in files {
            read_keys(&event_dir(&self.dir).join(f), &mut keys)?;
        }
        let mut index = U64Map::with_capacity_and_hasher(keys.len() + 1024, Default::default());
        for k in keys {
            if !superseded.contains(&k.seq) {
                index.insert(k.key_hash, (k.content_hash, k.seq));
            }
        }
        self.event_index = Some(index);
        Ok(())
    }

    fn flush_events(&mut self, load_id: LoadId) -> Result<()> {
        if self.pending.len() == 0 {
            return Ok(());
        }
        self.n_spills += 1;
        let file = format!(
            "seg-{load_id:08}-{}-{:04}.wsseg",
            self.batch_tag, self.n_spills
        );
        let tmp = event_dir(&self.dir).join(format!(".tmp-{file}"));
        let (n, min_ts, max_ts) = self.pending.write_sorted(&tmp)?;
        let (min_seq, max_seq) = self.pending_seqs.take().unwrap_or_default();
        self.written.push(WrittenSegment {
            tmp,
            file,
            load_id,
            n,
            counts: std::mem::take(&mut self.pending_counts),
            min_ts,
            max_ts,
            min_seq,
            max_seq,
        });
        Ok(())
    }

    fn put_event(
        &mut self,
        load_id: LoadId,
        line: u64,
        source_record_id: Option<&str>,
        record: &Record,
    ) -> Result<PutOutcome> {
        self.load_event_index()?;
        let (kind, ts, content_hash) = PendingEvents::encode_body(record, &mut self.scratch)?;
        // Events without an id are keyed by their content, so an identical row is the same event.
        let key = record
            .natural_key_ref()
            .unwrap_or_else(|| format!("h:{}", winsignal_core::hash::hex(content_hash)).into());
        let kh = key_hash(kind, &key);
        let seq = self.next_seq;
        let previous = self
            .event_index
            .as_ref()
            .and_then(|index| index.get(&kh).copied());
        let outcome = match previous {
            Some((h, _)) if h == content_hash => return Ok(PutOutcome::Unchanged),
            Some((_, old_seq)) => {
                self.conn()?
                    .prepare_cached(
                        "INSERT OR REPLACE INTO superseded(seq, kind, by_seq) VALUES(?1, ?2, ?3)",
                    )
                    .sql(&self.dir)?
                    .execute(params![old_seq as i64, kind.as_str(), seq as i64])
                    .sql(&self.dir)?;
                PutOutcome::Updated
            }
            None => PutOutcome::New,
        };
        if let Some(index) = self.event_index.as_mut() {
            index.insert(kh, (content_hash, seq));
        }
        self.next_seq += 1;
        self.pending_seqs = Some(match self.pending_seqs {
            Some((first, _)) => (first, seq),
            None => (seq, seq),
        });
        let entry = KeyEntry {
            key_hash: kh,
            content_hash,
            seq,
        };
        self.pending.push_event(
            kind,
            ts,
            seq,
            &key,
            load_id,
            line,
            source_record_id,
            &self.scratch,
            entry,
        )?;
        self.pending_counts[kind_code(kind) as usize] += 1;
        if self.pending.approx_bytes() > SPILL_BYTES {
            self.flush_events(load_id)?;
        }
        Ok(outcome)
    }
}

impl Batch for EmbeddedBatch {
    fn expect_events(&mut self, n: u64) -> Result<()> {
        self.load_event_index()?;
        if let Some(index) = self.event_index.as_mut() {
            index.reserve(usize::try_from(n).unwrap_or(usize::MAX));
        }
        Ok(())
    }

    fn start_load(&mut self, spec: &LoadSpec) -> Result<LoadId> {
        let dir = &self.dir;
        self.conn()?.execute(
            "INSERT INTO loads(source, format, path, file_hash, file_bytes, started_at, identity, recipe)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                spec.source,
                spec.format,
                spec.path,
                spec.file_hash,
                spec.file_bytes as i64,
                Ts::now().0,
                spec.identity,
                erased::Json::json(&spec.recipe)?
            ],
        ).sql(dir)?;
        let load_id = self.conn()?.last_insert_rowid() as u64;
        self.loads.push(load_id);
        Ok(load_id)
    }

    fn put(
        &mut self,
        load_id: LoadId,
        line: u64,
        source_record_id: Option<&str>,
        record: &Record,
    ) -> Result<PutOutcome> {
        let kind = record.kind();
        if kind.is_event() {
            return self.put_event(load_id, line, source_record_id, record);
        }
        let body =
            serde_json::to_string(record).map_err(|e| StoreError::Internal(e.to_string()))?;
        let content_hash = hash_bytes(body.as_bytes());
        let id = record
            .natural_key()
            .unwrap_or_else(|| format!("h:{}", winsignal_core::hash::hex(content_hash)));
        let dir = &self.dir;
        let conn = self.conn()?;
        let current: Option<(i64, i64)> = conn
            .prepare_cached("SELECT version, content_hash FROM records WHERE kind = ?1 AND id = ?2 AND current = 1")
            .sql(dir)?
            .query_row(params![kind.as_str(), id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .sql(dir)?;
        let (version, outcome) = match current {
            Some((_, h)) if h as u64 == content_hash => return Ok(PutOutcome::Unchanged),
            Some((v, _)) => {
                conn.prepare_cached(
                    "UPDATE records SET current = 0 WHERE kind = ?1 AND id = ?2 AND version = ?3",
                )
                .sql(dir)?
                .execute(params![kind.as_str(), id, v])
                .sql(dir)?;
                (v + 1, PutOutcome::Updated)
            }
            None => (1, PutOutcome::New),
        };
        conn.prepare_cached(
            "INSERT INTO records(kind, id, version, current, load_id, line, source_record_id, content_hash, body)
             VALUES(?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8)",
        )
        .sql(dir)?
        .execute(params![
            kind.as_str(),
            id,
            version,
            load_id as i64,
            line as i64,
            source_record_id,
            content_hash as i64,
            body
        ])
        .sql(dir)?;
        Ok(outcome)
    }

    fn holds(&mut self, record: &Record) -> Result<bool> {
        let kind = record.kind();
        if kind.is_event() {
            self.load_event_index()?;
            let (_, _, content_hash) = PendingEvents::encode_body(record, &mut self.scratch)?;
            let key = record
                .natural_key_ref()
                .unwrap_or_else(|| format!("h:{}", winsignal_core::hash::hex(content_hash)).into());
            let held = self
                .event_index
                .as_ref()
                .and_then(|index| index.get(&key_hash(kind, &key)).copied());
            return Ok(held.is_some_and(|(h, _)| h == content_hash));
        }
        let body =
            serde_json::to_string(record).map_err(|e| StoreError::Internal(e.to_string()))?;
        let content_hash = hash_bytes(body.as_bytes());
        let id = record
            .natural_key()
            .unwrap_or_else(|| format!("h:{}", winsignal_core::hash::hex(content_hash)));
        let held: Option<i64> = self
            .conn()?
            .prepare_cached(
                "SELECT content_hash FROM records WHERE kind = ?1 AND id = ?2 AND current = 1",
            )
            .sql(&self.dir)?
            .query_row(params![kind.as_str(), id], |r| r.get(0))
            .optional()
            .sql(&self.dir)?;
        Ok(held.is_some_and(|h| h as u64 == content_hash))
    }

    fn current(&mut self, kind: Kind, id: &str) -> Result<Option<Record>> {
        if kind.is_event() {
            return Err(StoreError::Internal(format!(
                "current({kind}): events have no single current version to update"
            )));
        }
        let body: Option<String> = self
            .conn()?
            .prepare_cached("SELECT body FROM records WHERE kind = ?1 AND id = ?2 AND current = 1")
            .sql(&self.dir)?
            .query_row(params![kind.as_str(), id], |r| r.get(0))
            .optional()
            .sql(&self.dir)?;
        body.map(|b| decode_record(kind.as_str(), id, &b))
            .transpose()
    }

    fn set_overlay(&mut self, kind: Kind, id: &str, source: &str, fields: &str) -> Result<()> {
        let dir = &self.dir;
        let conn = self.conn()?;
        let held: Option<String> = conn
            .prepare_cached(
                "SELECT fields FROM overlays WHERE kind = ?1 AND id = ?2 AND source = ?3",
            )
            .sql(dir)?
            .query_row(params![kind.as_str(), id, source], |r| r.get(0))
            .optional()
            .sql(dir)?;
        if held.as_deref() == Some(fields) {
            // Unchanged: it keeps its place in the order.
            return Ok(());
        }
        conn.prepare_cached("DELETE FROM overlays WHERE kind = ?1 AND id = ?2 AND source = ?3")
            .sql(dir)?
            .execute(params![kind.as_str(), id, source])
            .sql(dir)?;
        conn.prepare_cached(
            "INSERT INTO overlays(kind, id, source, fields) VALUES(?1, ?2, ?3, ?4)",
        )
        .sql(dir)?
        .execute(params![kind.as_str(), id, source, fields])
        .sql(dir)?;
        Ok(())
    }

    fn overlays(&mut self, kind: Kind, id: &str) -> Result<Vec<(String, String)>> {
        let dir = &self.dir;
        let rows = self
            .conn()?
            .prepare_cached(
                "SELECT source, fields FROM overlays WHERE kind = ?1 AND id = ?2 ORDER BY rowid",
            )
            .sql(dir)?
            .query_map(params![kind.as_str(), id], |r| Ok((r.get(0)?, r.get(1)?)))
            .sql(dir)?
            .collect::<rusqlite::Result<Vec<(String, String)>>>()
            .sql(dir)?;
        Ok(rows)
    }

    fn quarantine(&mut self, row: &QuarantinedRow) -> Result<()> {
        let reasons =
            serde_json::to_string(&row.reasons).map_err(|e| StoreError::Internal(e.to_string()))?;
        let raw = crate::quarantine_raw(&row.raw);
        self.conn()?
            .prepare_cached("INSERT INTO quarantine(load_id, line, kind, record_id, reasons, raw) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")
            .sql(&self.dir)?
            .execute(params![
                row.load_id as i64,
                row.line as i64,
                row.kind.map(Kind::as_str),
                row.record_id,
                reasons,
                raw
            ])
            .sql(&self.dir)?;
        Ok(())
    }

    fn flag(&mut self, flag: &Flag) -> Result<()> {
        self.conn()?
            .prepare_cached("INSERT INTO flags(load_id, line, kind, record_id, code, message) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")
            .sql(&self.dir)?
            .execute(params![
                flag.load_id as i64,
                flag.line as i64,
                flag.kind.as_str(),
                flag.record_id,
                flag.code,
                flag.message
            ])
            .sql(&self.dir)?;
        Ok(())
    }

    fn finish_load(
        &mut self,
        load_id: LoadId,
        columns: &[Column],
        kinds: &[Kind],
        stats: &LoadStats,
    ) -> Result<()> {
        self.flush_events(load_id)?;
        let js = |v: &dyn erased::Json| v.json();
        self.conn()?.execute(
            "UPDATE loads SET finished_at = ?2, columns = ?3, kinds = ?4, stats = ?5 WHERE load_id = ?1",
            params![load_id as i64, Ts::now().0, js(&columns.to_vec())?, js(&kinds.to_vec())?, js(stats)?],
        ).sql(&self.dir)?;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let dir = self.dir.clone();
        let edir = event_dir(&dir);
        let position = LogPosition(self.position.0 + 1);
        // Events put after the last finish_load (or without one) still belong to the batch.
        if let Some(&last) = self.loads.last() {
            self.flush_events(last)?;
        }
        for seg in &self.written {
            let target = edir.join(&seg.file);
            fs::rename(&seg.tmp, &target).map_err(io_err(&target))?;
            self.conn()?.execute(
                "INSERT INTO segments(load_id, file, n_events, n_activities, n_product_events, n_marketing_touches, min_ts, max_ts,
                                      position, min_seq, max_seq)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    seg.load_id as i64,
                    seg.file,
                    seg.n as i64,
                    seg.counts[1] as i64,
                    seg.counts[2] as i64,
                    seg.counts[3] as i64,
                    seg.min_ts,
                    seg.max_ts,
                    position.0 as i64,
                    seg.min_seq as i64,
                    seg.max_seq as i64
                ],
            ).sql(&dir)?;
        }
        for &load_id in &self.loads {
            self.conn()?
                .execute(
                    "UPDATE loads SET position = ?2 WHERE load_id = ?1",
                    params![load_id as i64, position.0 as i64],
                )
                .sql(&dir)?;
        }
        self.conn()?
            .execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES('next_seq', ?1), ('position', ?2)",
                [self.next_seq.to_string(), position.0.to_string()],
            )
            .sql(&dir)?;
        if let Ok(d) = fs::File::open(&edir) {
            // Make the renames durable before the transaction that publishes them.
            let _ = d.sync_all();
        }
        fault_point("before-commit");
        let written = std::mem::take(&mut self.written);
        if let Err(e) = self.conn()?.execute_batch("COMMIT") {
            for seg in written {
                let _ = fs::remove_file(edir.join(seg.file));
            }
            return Err(db_error(e, &dir, Duration::ZERO));
        }
        self.open = false;
        if let (Some(index), Some(cache)) = (self.event_index.take(), &self.cache) {
            *cache.lock().unwrap_or_else(PoisonError::into_inner) = Some(CachedIndex {
                position,
                next_seq: self.next_seq,
                index,
            });
        }
        Ok(())
    }
}

impl Drop for EmbeddedBatch {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.open {
                let _ = conn.execute_batch("ROLLBACK");
            }
            self.spare.give(conn);
        }
        for seg in &self.written {
            let _ = fs::remove_file(&seg.tmp);
        }
    }
}

/// A test hook, compiled in only with the `fault-injection` feature: with `WINSIGNAL_FAULT=pause:<point>`
/// the process announces the point on stderr and sleeps, so a test can kill it there.
#[cfg(feature = "fault-injection")]
fn fault_point(point: &str) {
    if let Ok(v) = std::env::var("WINSIGNAL_FAULT") {
        if v.strip_prefix("pause:") == Some(point) {
            tracing::warn!("WINSIGNAL_FAULT reached {point}");
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
fn fault_point(_point: &str) {}

mod erased {
    //! Serialises the small JSON columns of the loads table.
    use crate::error::{Result, StoreError};

    pub trait Json {
        fn json(&self) -> Result<String>;
    }

    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<String> {
            serde_json::to_string(self).map_err(|e| StoreError::Internal(e.to_string()))
        }
    }
}
