//! Where winsignal keeps what it ingested: the [`Store`] trait every caller uses, and the embedded
//! implementation ([`EmbeddedStore`]) that needs no server: SQLite for records, loads, quarantine and
//! schemas, and a log of time-sorted segment files for high-volume events.
//!
//! Writes go through a [`Batch`]: nothing a batch wrote is visible until [`Batch::commit`], and a batch
//! that is dropped, or a process killed mid-batch, leaves the store exactly as it was.

mod embedded;
mod error;
mod segment;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use winsignal_core::{Kind, Record, Ts, ValueType};

pub use embedded::EmbeddedStore;
pub use error::{Result, StoreError};

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

/// A model as listed: everything but its body, with the order it was saved in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// 1 for the first model saved in the store, then 2, 3, …
    pub seq: u64,
    pub model_id: String,
    pub kind: String,
    pub summary: String,
}

/// The storage behind winsignal. Callers see only this trait, so a PostgreSQL implementation can
/// replace the embedded one without touching them.
pub trait Store {
    /// Starts an atomic write batch.
    fn begin(&mut self) -> Result<Box<dyn Batch + '_>>;
    fn loads(&self) -> Result<Vec<LoadInfo>>;
    /// Current versions of every record of an entity kind, in id order.
    fn records(&self, kind: Kind) -> Result<Vec<StoredRecord>>;
    /// Every version of one record (entities and events), oldest first.
    fn versions(&self, kind: Kind, id: &str) -> Result<Vec<StoredRecord>>;
    /// Current events of the given kinds in event-time order (ties by arrival).
    fn events(
        &self,
        kinds: &[Kind],
    ) -> Result<Box<dyn Iterator<Item = Result<StoredEvent>> + Send + '_>>;
    /// Number of current events per kind.
    fn event_counts(&self) -> Result<Vec<(Kind, u64)>>;
    fn quarantine(&self, load_id: Option<LoadId>) -> Result<Vec<QuarantinedRow>>;
    fn flags(&self) -> Result<Vec<Flag>>;
    /// Saves a model; saving one whose id is already stored changes nothing (artifacts are immutable).
    /// Returns whether it was new.
    fn put_model(&mut self, model: &ModelRecord) -> Result<bool>;
    /// Every saved model of a kind (every kind when `None`), oldest first.
    fn models(&self, kind: Option<&str>) -> Result<Vec<ModelInfo>>;
    /// One saved model by id.
    fn model(&self, model_id: &str) -> Result<Option<ModelRecord>>;
}

/// An atomic set of loads. Dropping it without [`Batch::commit`] discards everything.
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
    fn commit(self: Box<Self>) -> Result<()>;
}
