//! The embedded store: a workspace directory holding `store.sqlite` (records, loads, quarantine, flags,
//! schemas, the segment catalog) and `events/` (time-sorted event segments).
//!
//! Atomicity: a batch writes its segments to temporary files, fsyncs and renames them, and registers
//! them in the same SQLite transaction as everything else. Segment files that no committed transaction
//! registered are invisible and removed by the next writer, so a killed process leaves nothing behind.
//! See docs/decisions/0001-embedded-store.md for why events are not SQLite rows.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use winsignal_core::hash::{hash_bytes, ContentHasher, U64Map, U64Set};
use winsignal_core::{Kind, Record, Ts};

use crate::error::{io_err, is_busy, Result, StoreError};
use crate::segment::{kind_code, read_keys, KeyEntry, MergedEvents, PendingEvents};
use crate::{
    Batch, Column, Flag, LoadId, LoadInfo, LoadSpec, LoadStats, ModelInfo, ModelRecord, PutOutcome,
    QuarantinedRow, RowOrigin, Store, StoredEvent, StoredRecord,
};

/// Bumped when the on-disk layout changes incompatibly.
const FORMAT_VERSION: i64 = 1;
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
CREATE TABLE IF NOT EXISTS overlays(
    kind TEXT NOT NULL, id TEXT NOT NULL, source TEXT NOT NULL, fields TEXT NOT NULL,
    PRIMARY KEY(kind, id, source));
CREATE TABLE IF NOT EXISTS models(
    seq INTEGER PRIMARY KEY AUTOINCREMENT, model_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
    summary TEXT NOT NULL, body BLOB NOT NULL);
";

/// How long a writer waits for another process's write to finish by default.
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);

/// The store in a workspace directory.
pub struct EmbeddedStore {
    dir: PathBuf,
    conn: Connection,
    /// How long a write waits for another process's write to finish before giving up.
    lock_wait: Duration,
}

fn event_dir(dir: &Path) -> PathBuf {
    dir.join("events")
}

fn key_hash(kind: Kind, key: &str) -> u64 {
    let mut h = ContentHasher::new();
    h.field(&[kind_code(kind)]).field(key.as_bytes());
    h.finish()
}

impl EmbeddedStore {
    /// Opens (creating if needed) the workspace at `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        fs::create_dir_all(event_dir(dir)).map_err(io_err(dir))?;
        let db = dir.join("store.sqlite");
        let conn = Connection::open(&db)?;
        conn.busy_timeout(DEFAULT_LOCK_WAIT)?;
        let busy = |e: rusqlite::Error| busy_error(e, dir, DEFAULT_LOCK_WAIT);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(busy)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        conn.execute_batch(SCHEMA).map_err(busy)?;
        add_missing_columns(&conn).map_err(busy)?;
        let found: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key='format_version'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match found.and_then(|v| v.parse::<i64>().ok()) {
            Some(v) if v > FORMAT_VERSION => {
                return Err(StoreError::NewerFormat {
                    path: db,
                    found: v,
                    supported: FORMAT_VERSION,
                })
            }
            Some(_) => {}
            None => {
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES('format_version', ?1)",
                    [FORMAT_VERSION.to_string()],
                )?;
            }
        }
        Ok(EmbeddedStore {
            dir: dir.to_path_buf(),
            conn,
            lock_wait: DEFAULT_LOCK_WAIT,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long a write waits for another process writing this workspace before it fails with
    /// [`StoreError::Busy`] (default 30 s).
    pub fn set_lock_wait(&mut self, wait: Duration) -> Result<()> {
        self.conn.busy_timeout(wait)?;
        self.lock_wait = wait;
        Ok(())
    }

    fn segment_paths(&self) -> Result<Vec<PathBuf>> {
        let files = registered_segments(&self.conn)?;
        Ok(files
            .into_iter()
            .map(|f| event_dir(&self.dir).join(f))
            .collect())
    }
}

/// Columns added after the first release of the store format: old workspaces get them, empty, on open
/// (older builds, reading columns by name, are unaffected).
fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('loads')")?;
    let have = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<HashSet<String>>>()?;
    for (column, decl) in [("identity", "TEXT"), ("recipe", "TEXT")] {
        if !have.contains(column) {
            conn.execute_batch(&format!("ALTER TABLE loads ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

/// A lock held by another process, in words; any other failure as it is.
fn busy_error(e: rusqlite::Error, dir: &Path, waited: Duration) -> StoreError {
    if is_busy(&e) {
        StoreError::Busy {
            path: dir.to_path_buf(),
            waited_s: waited.as_secs(),
        }
    } else {
        e.into()
    }
}

/// Segment file names in the order they were committed.
fn registered_segments(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT file FROM segments ORDER BY segment_id")?;
    let files = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(files)
}

/// Sequence numbers of event versions replaced by later ones.
fn superseded_seqs(conn: &Connection) -> Result<U64Set> {
    let mut stmt = conn.prepare("SELECT seq FROM superseded")?;
    let seqs = stmt
        .query_map([], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(seqs.into_iter().map(|s| s as u64).collect())
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

impl Store for EmbeddedStore {
    fn begin(&mut self) -> Result<Box<dyn Batch + '_>> {
        let dir = self.dir.clone();
        // A quick try first, so that a user kept waiting by another writer is told why at once.
        self.conn.busy_timeout(Duration::ZERO)?;
        let probe = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| tx.rollback());
        self.conn.busy_timeout(self.lock_wait)?;
        match probe {
            Ok(()) => {}
            Err(e) if is_busy(&e) => tracing::warn!(
                workspace = %dir.display(),
                wait_s = self.lock_wait.as_secs(),
                "Another process is writing this workspace; waiting for it to finish."
            ),
            Err(e) => return Err(e.into()),
        }
        let waited = self.lock_wait;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| busy_error(e, &dir, waited))?;
        remove_unregistered_segments(&tx, &dir)?;
        let next_seq: i64 = tx
            .query_row("SELECT value FROM meta WHERE key='next_seq'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        Ok(Box::new(EmbeddedBatch {
            dir,
            tx: Some(tx),
            event_index: None,
            pending: PendingEvents::default(),
            scratch: Vec::new(),
            written: Vec::new(),
            next_seq: next_seq as u64,
            batch_tag: format!("{}-{}", std::process::id(), Ts::now().0),
            n_spills: 0,
            pending_counts: [0; 4],
        }))
    }

    fn loads(&self) -> Result<Vec<LoadInfo>> {
        let mut stmt = self.conn.prepare(
            "SELECT load_id, source, format, path, file_hash, file_bytes, started_at, finished_at, columns, kinds, stats,
                    COALESCE(identity, ''), COALESCE(recipe, '{}')
             FROM loads WHERE finished_at IS NOT NULL ORDER BY load_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, String>(10)?,
                r.get::<_, String>(11)?,
                r.get::<_, String>(12)?,
            ))
        })?;
        let mut out = Vec::new();
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
            ) = row?;
            let bad = |what: &str, e: serde_json::Error| {
                StoreError::Internal(format!("load {id} {what}: {e}"))
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
        let mut stmt = self.conn.prepare(
            "SELECT kind, id, version, current, load_id, line, source_record_id, content_hash, body
             FROM records WHERE kind = ?1 AND current = 1 ORDER BY id",
        )?;
        let raws = stmt
            .query_map([kind.as_str()], row_to_stored)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(stored_from_raw).collect()
    }

    fn versions(&self, kind: Kind, id: &str) -> Result<Vec<StoredRecord>> {
        if kind.is_event() {
            let paths = self.segment_paths()?;
            let superseded = superseded_seqs(&self.conn)?;
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
        let mut stmt = self.conn.prepare(
            "SELECT kind, id, version, current, load_id, line, source_record_id, content_hash, body
             FROM records WHERE kind = ?1 AND id = ?2 ORDER BY version",
        )?;
        let raws = stmt
            .query_map(params![kind.as_str(), id], row_to_stored)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        raws.into_iter().map(stored_from_raw).collect()
    }

    fn events(
        &self,
        kinds: &[Kind],
    ) -> Result<Box<dyn Iterator<Item = Result<StoredEvent>> + Send + '_>> {
        let paths = self.segment_paths()?;
        let superseded = superseded_seqs(&self.conn)?;
        Ok(Box::new(MergedEvents::open(&paths, kinds, superseded)?))
    }

    fn event_counts(&self) -> Result<Vec<(Kind, u64)>> {
        let (a, p, t): (i64, i64, i64) = self.conn.query_row(
            "SELECT COALESCE(SUM(n_activities),0), COALESCE(SUM(n_product_events),0), COALESCE(SUM(n_marketing_touches),0) FROM segments",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let mut out = Vec::new();
        for (kind, total) in [
            (Kind::Activities, a),
            (Kind::ProductEvents, p),
            (Kind::MarketingTouches, t),
        ] {
            let gone: i64 = self.conn.query_row(
                "SELECT COUNT(*) FROM superseded WHERE kind = ?1",
                [kind.as_str()],
                |r| r.get(0),
            )?;
            out.push((kind, (total - gone).max(0) as u64));
        }
        Ok(out)
    }

    fn quarantine(&self, load_id: Option<LoadId>) -> Result<Vec<QuarantinedRow>> {
        let sql = "SELECT load_id, line, kind, record_id, reasons, raw FROM quarantine
                   WHERE (?1 IS NULL OR load_id = ?1) ORDER BY load_id, line";
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt.query_map([load_id.map(|l| l as i64)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (load_id, line, kind, record_id, reasons, raw) = row?;
            out.push(QuarantinedRow {
                load_id: load_id as u64,
                line: line as u64,
                kind: kind.as_deref().map(parse_kind).transpose()?,
                record_id,
                reasons: serde_json::from_str(&reasons)
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
                raw,
            });
        }
        Ok(out)
    }

    fn put_model(&mut self, model: &ModelRecord) -> Result<bool> {
        let changed = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO models(model_id, kind, summary, body) VALUES(?1, ?2, ?3, ?4)",
                rusqlite::params![model.model_id, model.kind, model.summary, model.body],
            )
            .map_err(|e| busy_error(e, &self.dir, self.lock_wait))?;
        Ok(changed == 1)
    }

    fn models(&self, kind: Option<&str>) -> Result<Vec<ModelInfo>> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, model_id, kind, summary FROM models WHERE ?1 IS NULL OR kind = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([kind], |r| {
            Ok(ModelInfo {
                seq: r.get::<_, i64>(0)? as u64,
                model_id: r.get(1)?,
                kind: r.get(2)?,
                summary: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn model(&self, model_id: &str) -> Result<Option<ModelRecord>> {
        Ok(self
            .conn
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
            .optional()?)
    }

    fn flags(&self) -> Result<Vec<Flag>> {
        let mut stmt =
            self.conn.prepare("SELECT load_id, line, kind, record_id, code, message FROM flags ORDER BY load_id, line")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (load_id, line, kind, record_id, code, message) = row?;
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
}

/// Deletes segment files no committed batch registered (left by a killed or failed writer).
/// Runs only inside a write transaction, so no other writer can be mid-batch.
fn remove_unregistered_segments(tx: &Transaction<'_>, dir: &Path) -> Result<()> {
    let registered: HashSet<String> = registered_segments(tx)?.into_iter().collect();
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
}

struct EmbeddedBatch<'a> {
    dir: PathBuf,
    tx: Option<Transaction<'a>>,
    /// key hash → (content hash, seq) of every current event; loaded on the first event put.
    event_index: Option<U64Map<(u64, u64)>>,
    pending: PendingEvents,
    /// The body of the event being written, reused from one event to the next.
    scratch: Vec<u8>,
    pending_counts: [u64; 4],
    written: Vec<WrittenSegment>,
    next_seq: u64,
    batch_tag: String,
    n_spills: u64,
}

impl<'a> EmbeddedBatch<'a> {
    fn tx(&self) -> Result<&Transaction<'a>> {
        self.tx
            .as_ref()
            .ok_or_else(|| StoreError::Internal("batch already committed".into()))
    }

    fn load_event_index(&mut self) -> Result<()> {
        if self.event_index.is_some() {
            return Ok(());
        }
        let files = registered_segments(self.tx()?)?;
        let superseded = superseded_seqs(self.tx()?)?;
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
        self.written.push(WrittenSegment {
            tmp,
            file,
            load_id,
            n,
            counts: std::mem::take(&mut self.pending_counts),
            min_ts,
            max_ts,
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
                self.tx()?.execute(
                    "INSERT OR REPLACE INTO superseded(seq, kind, by_seq) VALUES(?1, ?2, ?3)",
                    params![old_seq as i64, kind.as_str(), seq as i64],
                )?;
                PutOutcome::Updated
            }
            None => PutOutcome::New,
        };
        if let Some(index) = self.event_index.as_mut() {
            index.insert(kh, (content_hash, seq));
        }
        self.next_seq += 1;
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

impl Batch for EmbeddedBatch<'_> {
    fn expect_events(&mut self, n: u64) -> Result<()> {
        self.load_event_index()?;
        if let Some(index) = self.event_index.as_mut() {
            index.reserve(usize::try_from(n).unwrap_or(usize::MAX));
        }
        Ok(())
    }

    fn start_load(&mut self, spec: &LoadSpec) -> Result<LoadId> {
        self.tx()?.execute(
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
        )?;
        Ok(self.tx()?.last_insert_rowid() as u64)
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
        let current: Option<(i64, i64)> = self.tx()?
            .prepare_cached("SELECT version, content_hash FROM records WHERE kind = ?1 AND id = ?2 AND current = 1")?
            .query_row(params![kind.as_str(), id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (version, outcome) = match current {
            Some((_, h)) if h as u64 == content_hash => return Ok(PutOutcome::Unchanged),
            Some((v, _)) => {
                self.tx()?
            .prepare_cached("UPDATE records SET current = 0 WHERE kind = ?1 AND id = ?2 AND version = ?3")?
                    .execute(params![kind.as_str(), id, v])?;
                (v + 1, PutOutcome::Updated)
            }
            None => (1, PutOutcome::New),
        };
        self.tx()?
            .prepare_cached(
                "INSERT INTO records(kind, id, version, current, load_id, line, source_record_id, content_hash, body)
                 VALUES(?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                kind.as_str(),
                id,
                version,
                load_id as i64,
                line as i64,
                source_record_id,
                content_hash as i64,
                body
            ])?;
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
            .tx()?
            .prepare_cached(
                "SELECT content_hash FROM records WHERE kind = ?1 AND id = ?2 AND current = 1",
            )?
            .query_row(params![kind.as_str(), id], |r| r.get(0))
            .optional()?;
        Ok(held.is_some_and(|h| h as u64 == content_hash))
    }

    fn current(&mut self, kind: Kind, id: &str) -> Result<Option<Record>> {
        if kind.is_event() {
            return Err(StoreError::Internal(format!(
                "current({kind}): events have no single current version to update"
            )));
        }
        let body: Option<String> = self
            .tx()?
            .prepare_cached("SELECT body FROM records WHERE kind = ?1 AND id = ?2 AND current = 1")?
            .query_row(params![kind.as_str(), id], |r| r.get(0))
            .optional()?;
        body.map(|b| decode_record(kind.as_str(), id, &b))
            .transpose()
    }

    fn set_overlay(&mut self, kind: Kind, id: &str, source: &str, fields: &str) -> Result<()> {
        let tx = self.tx()?;
        let held: Option<String> = tx
            .prepare_cached(
                "SELECT fields FROM overlays WHERE kind = ?1 AND id = ?2 AND source = ?3",
            )?
            .query_row(params![kind.as_str(), id, source], |r| r.get(0))
            .optional()?;
        if held.as_deref() == Some(fields) {
            // Unchanged: it keeps its place in the order.
            return Ok(());
        }
        tx.prepare_cached("DELETE FROM overlays WHERE kind = ?1 AND id = ?2 AND source = ?3")?
            .execute(params![kind.as_str(), id, source])?;
        tx.prepare_cached("INSERT INTO overlays(kind, id, source, fields) VALUES(?1, ?2, ?3, ?4)")?
            .execute(params![kind.as_str(), id, source, fields])?;
        Ok(())
    }

    fn overlays(&mut self, kind: Kind, id: &str) -> Result<Vec<(String, String)>> {
        let rows = self
            .tx()?
            .prepare_cached(
                "SELECT source, fields FROM overlays WHERE kind = ?1 AND id = ?2 ORDER BY rowid",
            )?
            .query_map(params![kind.as_str(), id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
        Ok(rows)
    }

    fn quarantine(&mut self, row: &QuarantinedRow) -> Result<()> {
        let reasons =
            serde_json::to_string(&row.reasons).map_err(|e| StoreError::Internal(e.to_string()))?;
        let mut raw = row.raw.clone();
        if raw.len() > 4096 {
            let mut cut = 4096;
            while !raw.is_char_boundary(cut) {
                cut -= 1;
            }
            raw.truncate(cut);
            raw.push('…');
        }
        self.tx()?
            .prepare_cached("INSERT INTO quarantine(load_id, line, kind, record_id, reasons, raw) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")?
            .execute(params![
                row.load_id as i64,
                row.line as i64,
                row.kind.map(Kind::as_str),
                row.record_id,
                reasons,
                raw
            ])?;
        Ok(())
    }

    fn flag(&mut self, flag: &Flag) -> Result<()> {
        self.tx()?
            .prepare_cached("INSERT INTO flags(load_id, line, kind, record_id, code, message) VALUES(?1, ?2, ?3, ?4, ?5, ?6)")?
            .execute(params![
                flag.load_id as i64,
                flag.line as i64,
                flag.kind.as_str(),
                flag.record_id,
                flag.code,
                flag.message
            ])?;
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
        self.tx()?.execute(
            "UPDATE loads SET finished_at = ?2, columns = ?3, kinds = ?4, stats = ?5 WHERE load_id = ?1",
            params![load_id as i64, Ts::now().0, js(&columns.to_vec())?, js(&kinds.to_vec())?, js(stats)?],
        )?;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let edir = event_dir(&self.dir);
        for seg in &self.written {
            let target = edir.join(&seg.file);
            fs::rename(&seg.tmp, &target).map_err(io_err(&target))?;
            self.tx()?.execute(
                "INSERT INTO segments(load_id, file, n_events, n_activities, n_product_events, n_marketing_touches, min_ts, max_ts)
                 VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    seg.load_id as i64,
                    seg.file,
                    seg.n as i64,
                    seg.counts[1] as i64,
                    seg.counts[2] as i64,
                    seg.counts[3] as i64,
                    seg.min_ts,
                    seg.max_ts
                ],
            )?;
        }
        self.tx()?.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('next_seq', ?1)",
            [self.next_seq.to_string()],
        )?;
        if let Ok(dir) = fs::File::open(&edir) {
            // Make the renames durable before the transaction that publishes them.
            let _ = dir.sync_all();
        }
        fault_point("before-commit");
        let written = std::mem::take(&mut self.written);
        let tx = self
            .tx
            .take()
            .ok_or_else(|| StoreError::Internal("batch already committed".into()))?;
        if let Err(e) = tx.commit() {
            for seg in written {
                let _ = fs::remove_file(edir.join(seg.file));
            }
            return Err(e.into());
        }
        Ok(())
    }
}

impl Drop for EmbeddedBatch<'_> {
    fn drop(&mut self) {
        for seg in &self.written {
            let _ = fs::remove_file(&seg.tmp);
        }
    }
}

/// A test hook: with `WINSIGNAL_FAULT=pause:<point>` the process announces the point on stderr and
/// sleeps, so a test can kill it there. Never set in normal use.
fn fault_point(point: &str) {
    if let Ok(v) = std::env::var("WINSIGNAL_FAULT") {
        if v.strip_prefix("pause:") == Some(point) {
            tracing::warn!("WINSIGNAL_FAULT reached {point}");
            std::thread::sleep(std::time::Duration::from_secs(600));
        }
    }
}

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
