//! Where winsignal keeps what it ingested and everything it must remember: the [`Store`] trait every
//! caller uses, with two implementations that pass the same contract suite (`tests/contract.rs`):
//! [`EmbeddedStore`], which needs no server (SQLite for records, loads, quarantine and models, a log of
//! time-sorted segment files for high-volume events, checksummed files for named state), and
//! [`MemoryStore`], for tests.
//!
//! Writes go through a [`Batch`]: nothing a batch wrote is visible until [`Batch::commit`], and a batch
//! that is dropped, or a process killed mid-batch, leaves the store exactly as it was. Every committed
//! batch advances the store's [`LogPosition`]. Reads go through [`StoreRead`]: on a [`Snapshot`] they
//! all see one committed state; on the store itself each call sees the latest one.

mod embedded;
mod error;
mod memory;
mod segment;
mod state;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use winsignal_core::{Kind, Record, Ts, ValueType};

pub use embedded::EmbeddedStore;
pub use error::{ErrorKind, Result, StoreError};
pub use memory::MemoryStore;

pub type LoadId = u64;

/// A column of a loaded source as seen by one load, for schema drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
}

/// What a load is, given when it starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSpec {
    /// Stable name of the source, e.g. `salesforce:Opportunity`; drift is tracked per source.
    pub source: String,
    /// Connector: `canonical`, `salesforce`, `segment` or `mapping`.
    pub format: String,
    /// The file as given by the user.
    pub path: String,
    /// Hex hash of the file's bytes.
    pub file_hash: String,
    pub file_bytes: u64,
    /// Hex hash of everything that shapes the load's result: the file's bytes, the connector and its
    /// version, the kind or object read, and the bytes of any mapping or config file. Two loads with the
    /// same identity read the same rows into the same records.
    pub identity: String,
    /// What went into `identity`, part by part (e.g. `connector`, `file`, `mapping`), so it can be shown.
    pub recipe: BTreeMap<String, String>,
}

/// Counts for one load. Invariant: `rows_read == accepted + quarantined` and
/// `accepted == new + updated + unchanged`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadStats {
    pub rows_read: u64,
    pub accepted: u64,
    pub new: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub quarantined: u64,
    pub flagged: u64,
}

/// A finished load as recorded in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadInfo {
    pub load_id: LoadId,
    pub source: String,
    pub format: String,
    pub path: String,
    pub file_hash: String,
    pub file_bytes: u64,
    /// See [`LoadSpec::identity`]; empty for loads recorded before identities were kept.
    #[serde(default)]
    pub identity: String,
    #[serde(default)]
    pub recipe: BTreeMap<String, String>,
    pub started_at: Ts,
    pub finished_at: Ts,
    pub columns: Vec<Column>,
    pub kinds: Vec<Kind>,
    pub stats: LoadStats,
}

/// What [`Batch::put`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    New,
    /// A new version of a record already held; the previous version is kept for `trace`.
    Updated,
    /// Identical to the current version: nothing written.
    Unchanged,
}

/// Where a stored record or event came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowOrigin {
    pub load_id: LoadId,
    pub line: u64,
    pub source_record_id: Option<String>,
}

/// One version of a record, with its provenance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRecord {
    pub kind: Kind,
    pub id: String,
    pub version: u64,
    pub current: bool,
    pub origin: RowOrigin,
    pub content_hash: u64,
    pub record: Record,
}

/// One event as read back in event-time order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Global arrival order; breaks ties between events at the same time.
    pub seq: u64,
    pub ts: Ts,
    pub key: String,
    pub origin: RowOrigin,
    pub content_hash: u64,
    pub record: Record,
}

/// A row refused by a load, with everything needed to find and fix it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuarantinedRow {
    pub load_id: LoadId,
    pub line: u64,
    pub kind: Option<Kind>,
    pub record_id: Option<String>,
    pub reasons: Vec<String>,
    /// The raw row as read (invalid UTF-8 shown lossily), cut at 4 KiB.
    pub raw: String,
}

/// A row that was accepted but has something a user should know (duplicate id, won without amount…).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flag {
    pub load_id: LoadId,
    pub line: u64,
    pub kind: Kind,
    pub record_id: Option<String>,
    pub code: String,
    pub message: String,
}

/// A saved model: an immutable artifact under its content hash, with a short JSON summary (what it was
/// trained on, its metrics) that listings show without reading the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The content hash of `body`.
    pub model_id: String,
    /// What the model predicts, e.g. `win`.
    pub kind: String,
    pub summary: String,
    pub body: Vec<u8>,
}

/// One entry of an append-only journal the store keeps (a deal's score history; later the webhook
/// outbox and the audit log): numbered in the order appended, within its stream, from 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub stream: String,
    pub seq: u64,
    /// What the entry is about (a deal's id): entries of one key are read together.
    pub key: String,
    /// When it was appended.
    pub at: Ts,
    pub body: Vec<u8>,
}

/// Which entries of a journal stream to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalQuery {
    /// Only entries of this key.
    pub key: Option<String>,
    /// Only entries numbered after this one.
    pub after: u64,
    /// At most this many, the earliest first.
    pub limit: Option<usize>,
}

/// A model as listed: everything but its body, with the order it was saved in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// 1 for the first model saved in the store, then 2, 3, …
    pub seq: u64,
    pub model_id: String,
    pub kind: String,
    pub summary: String,
}

/// A point in the store's log of committed batches: how many batches had committed when a state was
/// read (for a workspace written before positions were kept, each of its earlier loads counts as one
/// batch). Every committed [`Batch`] advances it by one, under the store's write lock, so positions are
/// totally ordered and a state is fully described by its position. Saving a model or a named state
/// does not advance it: those are not part of the log.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition(pub u64);

impl LogPosition {
    /// Before the first batch: everything in the store was committed after it.
    pub const START: LogPosition = LogPosition(0);
}

impl std::fmt::Display for LogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An event version as [`StoreRead::events_since`] gives it: in commit order, saying which earlier
/// version of the same key (kind and id) it replaces, so an incremental consumer can take the old one
/// out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventChange {
    /// The batch that committed this version.
    pub position: LogPosition,
    /// The `seq` of the version this one replaces; `None` for a key seen for the first time.
    pub supersedes: Option<u64>,
    pub event: StoredEvent,
}

/// An entity record version as [`StoreRead::records_since`] gives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordChange {
    /// The batch that committed this version.
    pub position: LogPosition,
    /// The version this one replaces (`record.version - 1`); `None` for a new record.
    pub replaces: Option<u64>,
    pub record: StoredRecord,
}

/// A named state as read back by [`Store::state`].
pub struct NamedState {
    /// What the state was built from, as given to [`Store::put_state`].
    pub key: String,
    /// How many bytes `bytes` gives (to size a buffer that reads them all).
    pub len: u64,
    /// Where it is kept, for messages (the file, for the embedded store).
    pub origin: String,
    /// The bytes as written. They are checked as they are read: the read that reaches the end fails
    /// with [`std::io::ErrorKind::InvalidData`] if they are not the bytes that were written, so read
    /// to the end (e.g. `read_to_end`) before trusting what was decoded.
    pub bytes: Box<dyn Read + Send>,
}

impl std::fmt::Debug for NamedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedState")
            .field("key", &self.key)
            .field("len", &self.len)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// A stream of stored events, in the order the method returning it documents.
pub type Events<'a> = Box<dyn Iterator<Item = Result<StoredEvent>> + Send + 'a>;
/// A stream of event changes in commit order.
pub type EventChanges<'a> = Box<dyn Iterator<Item = Result<EventChange>> + Send + 'a>;

/// Reading the store. On a [`Snapshot`] every call sees the same committed state, however many calls
/// are made and whatever other writers commit meanwhile; on a [`Store`] each call sees the latest
/// committed state on its own (two calls may see two states).
pub trait StoreRead {
    /// The position of the state read: every batch committed at or before it, none after.
    fn position(&self) -> Result<LogPosition>;
    fn loads(&self) -> Result<Vec<LoadInfo>>;
    /// The latest finished load of `source` with this identity (see [`LoadSpec::identity`]), if any:
    /// what ingest asks before each load, so a store with many loads (a server makes one per commit)
    /// should answer without reading them all.
    fn identical_load(&self, source: &str, identity: &str) -> Result<Option<LoadId>> {
        Ok(self
            .loads()?
            .into_iter()
            .rev()
            .find(|l| l.source == source && l.identity == identity)
            .map(|l| l.load_id))
    }
    /// Current versions of every record of an entity kind, in id order.
    fn records(&self, kind: Kind) -> Result<Vec<StoredRecord>>;
    /// The same records as [`StoreRead::records`], handed over one at a time: for a reader that keeps
    /// only part of each (a large kind's whole list is hundreds of megabytes: 0.56 GB of product users
    /// at the demo's scale 10).
    fn each_record(
        &self,
        kind: Kind,
        each: &mut dyn FnMut(StoredRecord) -> Result<()>,
    ) -> Result<()> {
        for r in self.records(kind)? {
            each(r)?;
        }
        Ok(())
    }
    /// Every version of one record (entities and events), oldest first.
    fn versions(&self, kind: Kind, id: &str) -> Result<Vec<StoredRecord>>;
    /// Current events of the given kinds in event-time order (ties by arrival).
    fn events(&self, kinds: &[Kind]) -> Result<Events<'_>>;
    /// Number of current events per kind: activities, product events, marketing touches.
    fn event_counts(&self) -> Result<Vec<(Kind, u64)>>;
    fn quarantine(&self, load_id: Option<LoadId>) -> Result<Vec<QuarantinedRow>>;
    fn flags(&self) -> Result<Vec<Flag>>;
    /// Every saved model of a kind (every kind when `None`), oldest first.
    fn models(&self, kind: Option<&str>) -> Result<Vec<ModelInfo>>;
    /// One saved model by id.
    fn model(&self, model_id: &str) -> Result<Option<ModelRecord>>;
    /// Every event version of the given kinds committed after `after` (up to this state), in commit
    /// (`seq`) order, including versions that a later one in the stream replaces: applying the stream
    /// in order, taking out each change's `supersedes`, turns the events current at `after` into the
    /// events current now.
    fn events_since(&self, after: LogPosition, kinds: &[Kind]) -> Result<EventChanges<'_>>;
    /// Every entity record version committed after `after` (up to this state), by position, then kind
    /// name, id (bytewise) and version; like [`StoreRead::events_since`] it includes versions replaced later.
    fn records_since(&self, after: LogPosition) -> Result<Vec<RecordChange>>;
    /// The events with these sequence numbers (current or replaced), in `seq` order; unknown numbers
    /// are left out. Reads only the part of the log that holds them.
    fn events_by_seq(&self, seqs: &[u64]) -> Result<Vec<StoredEvent>>;
    /// Entries of a journal stream, in the order appended (see [`JournalQuery`]).
    fn journal(&self, stream: &str, query: &JournalQuery) -> Result<Vec<JournalEntry>>;
    /// The latest entry of every key of a journal stream, by key.
    fn journal_latest(&self, stream: &str) -> Result<Vec<JournalEntry>>;
}

/// One committed state of the store, read as many times as needed (see [`StoreRead`]). Holding one
/// open keeps that state readable (for the embedded store, it holds a SQLite read transaction: the
/// write-ahead log cannot be folded back past it), so keep it for one command, not for ever.
pub trait Snapshot: StoreRead + Send + Sync {}

/// Writes a named state's bytes (see [`Store::put_state`]).
pub type StateWriter<'a> = dyn FnMut(&mut dyn Write) -> std::io::Result<()> + 'a;

/// Makes a named state's new bytes from its current state (see [`Store::update_state`]).
pub type StateUpdate<'a> = dyn FnMut(Option<NamedState>) -> std::io::Result<Vec<u8>> + 'a;

/// The storage behind winsignal. Callers see only this trait, so a PostgreSQL implementation can
/// replace the embedded one without touching them.
///
/// Writer discipline: any number of readers and snapshots, and at most one open [`Batch`] per store
/// at a time, across threads and processes. The backend enforces it: [`Store::begin`] waits for the
/// batch that holds the write lock to end (the embedded store takes SQLite's write lock with an
/// IMMEDIATE transaction on a connection of its own, and gives up with [`StoreError::Busy`] after its
/// lock wait). Do not call `begin` on a thread that already holds an open batch of the same store:
/// it waits for itself. Saving a model or a named state is a write of its own, outside batches.
pub trait Store: StoreRead + Send + Sync {
    /// Starts an atomic write batch, waiting for any other open batch to end.
    fn begin(&self) -> Result<Box<dyn Batch + '_>>;
    /// One consistent state to read: the latest committed one when called.
    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>>;
    /// Saves a model; saving one whose id is already stored changes nothing (artifacts are immutable).
    /// Returns whether it was new.
    fn put_model(&self, model: &ModelRecord) -> Result<bool>;
    /// Replaces the named state `name` (a checkpoint, the behaviour registry…) with the bytes `write`
    /// writes and the `key` saying what they were built from. The bytes are streamed (they can be
    /// hundreds of MB) and carry a checksum; the old state stays readable until the new one is
    /// complete, and a failed write (an error from `write` included) leaves it in place. Names are
    /// letters, digits, `-`, `_` and `.`, not starting with `.`.
    fn put_state(&self, name: &str, key: &str, write: &mut StateWriter<'_>) -> Result<()>;
    /// The latest named state `name`, if one was saved.
    fn state(&self, name: &str) -> Result<Option<NamedState>>;
    /// Reads the named state `name` and replaces it with the bytes `update` makes of it (given `None`
    /// when there is none yet), with no other `update_state` of this workspace in between, in this
    /// process or another: a read-modify-write, for state that concurrent commands add to (the
    /// behaviour registry). Waits for another update as long as [`Store::begin`] waits for another
    /// batch, then gives up with [`StoreError::Busy`]. An error from `update` leaves the state as it
    /// was and is returned as [`StoreError::Io`].
    fn update_state(&self, name: &str, key: &str, update: &mut StateUpdate<'_>) -> Result<()>;
    /// Appends entries `(key, body)` to a journal stream, at time `at`, all or none; returns their
    /// numbers. Appends from any number of threads or processes get distinct, increasing numbers.
    /// Not part of the log: it does not move the log position.
    fn append(&self, stream: &str, at: Ts, entries: &[(String, Vec<u8>)]) -> Result<Vec<u64>>;
    /// Appends one entry to a journal stream whose body `make` builds from the stream's last entry
    /// (`None` when it has none), with no other append to the stream in between, in this process or
    /// another: for entries that link to the one before (the audit log's hash chain). Returns its number.
    fn append_linked(
        &self,
        stream: &str,
        at: Ts,
        key: &str,
        make: &mut dyn FnMut(Option<&JournalEntry>) -> Vec<u8>,
    ) -> Result<u64>;
}

/// An atomic set of loads. Dropping it without [`Batch::commit`] discards everything and releases the
/// write lock. A batch reads its own writes (`current`, `holds`, `overlays`); other readers see none of
/// them until it commits.
pub trait Batch {
    fn start_load(&mut self, spec: &LoadSpec) -> Result<LoadId>;
    /// Writes a record or event (deduplicated against what the store holds and this batch wrote).
    fn put(
        &mut self,
        load_id: LoadId,
        origin_line: u64,
        source_record_id: Option<&str>,
        record: &Record,
    ) -> Result<PutOutcome>;
    fn quarantine(&mut self, row: &QuarantinedRow) -> Result<()>;
    fn flag(&mut self, flag: &Flag) -> Result<()>;
    /// The current version of an entity record (not an event) as this batch sees it: what the store
    /// holds, with what this batch wrote so far. For loads that update records field by field.
    fn current(&mut self, kind: Kind, id: &str) -> Result<Option<Record>>;
    /// Whether the current version of the record's key (record or event), as this batch sees it, is
    /// exactly this record: what [`Batch::put`] would call `Unchanged`, without writing anything.
    fn holds(&mut self, record: &Record) -> Result<bool>;
    /// Records the fields an update source sets on a record (a JSON object of canonical field names;
    /// `attrs` for custom attributes), replacing that source's earlier overlay of the record. A changed
    /// overlay moves to the end of the order; an unchanged one keeps its place.
    fn set_overlay(&mut self, kind: Kind, id: &str, source: &str, fields: &str) -> Result<()>;
    /// Every source's overlay of a record, `(source, fields)`, oldest first.
    fn overlays(&mut self, kind: Kind, id: &str) -> Result<Vec<(String, String)>>;
    /// A hint that about `n` more events are coming, so that room can be made once instead of growing
    /// step by step. Changes nothing a reader sees.
    fn expect_events(&mut self, n: u64) -> Result<()> {
        let _ = n;
        Ok(())
    }
    fn finish_load(
        &mut self,
        load_id: LoadId,
        columns: &[Column],
        kinds: &[Kind],
        stats: &LoadStats,
    ) -> Result<()>;
    /// Makes everything the batch wrote visible at once, as the next [`LogPosition`], and releases the
    /// write lock. On an error nothing was committed.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// The raw row as a quarantine keeps it: cut at 4 KiB (on a character boundary), marked with `…`.
pub(crate) fn quarantine_raw(raw: &str) -> String {
    const MAX: usize = 4096;
    if raw.len() <= MAX {
        return raw.to_string();
    }
    let mut cut = MAX;
    while !raw.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut kept = raw[..cut].to_string();
    kept.push('…');
    kept
}
