//! The in-memory store, for tests: the same contract as the embedded store (`tests/contract.rs`), with
//! nothing on disk.
//!
//! The whole state is one immutable value behind an `Arc`: a snapshot is a clone of the `Arc`, a batch
//! edits a private copy and its commit swaps the copy in. Copying costs O(size) per batch, which is
//! nothing at test sizes and keeps every guarantee (atomic batches, consistent snapshots) obvious.

use std::collections::{BTreeMap, HashMap};
use std::io::{Cursor, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use winsignal_core::hash::hash_bytes;
use winsignal_core::{Kind, Record, Ts};

use crate::error::{Result, StoreError};
use crate::segment::PendingEvents;
use crate::state::check_name;
use crate::{
    Batch, Column, EventChange, EventChanges, Events, Flag, JournalEntry, JournalQuery, LoadId,
    LoadInfo, LoadSpec, LoadStats, LogPosition, ModelInfo, ModelRecord, NamedState, PutOutcome,
    QuarantinedRow, RecordChange, RowOrigin, Snapshot, StateUpdate, StateWriter, Store, StoreRead,
    StoredEvent, StoredRecord,
};

/// A store that lives in memory and is gone when dropped.
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<Arc<Data>>,
    /// Held by the open batch: one writer at a time.
    writer: Mutex<()>,
    states: Mutex<HashMap<String, (String, Arc<[u8]>)>>,
    /// Held through an `update_state`, so updates do not interleave.
    updates: Mutex<()>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn current(&self) -> Arc<Data> {
        Arc::clone(&lock(&self.data))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change is a swap of a complete value, so a panic cannot leave a half-made one behind.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A load as held: listed once finished.
#[derive(Clone)]
struct HeldLoad {
    info: LoadInfo,
    finished: bool,
}

#[derive(Clone)]
struct HeldEvent {
    kind: Kind,
    event: StoredEvent,
    position: LogPosition,
    supersedes: Option<u64>,
}

#[derive(Clone, Default)]
struct Data {
    position: LogPosition,
    next_seq: u64,
    loads: BTreeMap<LoadId, HeldLoad>,
    /// Every version of every entity record, oldest first, with the batch that wrote it.
    records: BTreeMap<(Kind, String), Vec<(StoredRecord, LogPosition)>>,
    /// Every event version in seq order.
    events: Vec<HeldEvent>,
    /// seq → the seq that replaced it.
    superseded: HashMap<u64, u64>,
    /// (kind, key) → (content hash, seq) of the current version.
    event_index: HashMap<(Kind, String), (u64, u64)>,
    quarantine: Vec<QuarantinedRow>,
    flags: Vec<Flag>,
    overlays: BTreeMap<(Kind, String), Vec<(String, String)>>,
    models: Vec<ModelInfo>,
    model_bodies: HashMap<String, Vec<u8>>,
    /// Journal streams, each in the order appended.
    journal: BTreeMap<String, Vec<JournalEntry>>,
}

fn event_kinds_wanted(kinds: &[Kind], kind: Kind) -> bool {
    kinds.contains(&kind)
}

impl StoreRead for Data {
    fn position(&self) -> Result<LogPosition> {
        Ok(self.position)
    }

    fn loads(&self) -> Result<Vec<LoadInfo>> {
        Ok(self
            .loads
            .values()
            .filter(|l| l.finished)
            .map(|l| l.info.clone())
            .collect())
    }

    fn records(&self, kind: Kind) -> Result<Vec<StoredRecord>> {
        Ok(self
            .records
            .range((kind, String::new())..)
            .take_while(|((k, _), _)| *k == kind)
            .filter_map(|(_, versions)| versions.last().map(|(r, _)| r.clone()))
            .collect())
    }

    fn versions(&self, kind: Kind, id: &str) -> Result<Vec<StoredRecord>> {
        if kind.is_event() {
            let mut out: Vec<StoredRecord> = self
                .events
                .iter()
                .filter(|e| e.kind == kind && e.event.key == id)
                .map(|e| StoredRecord {
                    kind,
                    id: e.event.key.clone(),
                    version: 0,
                    current: !self.superseded.contains_key(&e.event.seq),
                    origin: e.event.origin.clone(),
                    content_hash: e.event.content_hash,
                    record: e.event.record.clone(),
                })
                .collect();
            out.sort_by_key(|r| (r.origin.load_id, r.origin.line));
            for (i, r) in out.iter_mut().enumerate() {
                r.version = i as u64 + 1;
            }
            return Ok(out);
        }
        Ok(self
            .records
            .get(&(kind, id.to_string()))
            .map(|versions| versions.iter().map(|(r, _)| r.clone()).collect())
            .unwrap_or_default())
    }

    fn events(&self, kinds: &[Kind]) -> Result<Events<'_>> {
        let mut current: Vec<StoredEvent> = self
            .events
            .iter()
            .filter(|e| {
                event_kinds_wanted(kinds, e.kind) && !self.superseded.contains_key(&e.event.seq)
            })
            .map(|e| e.event.clone())
            .collect();
        current.sort_by_key(|e| (e.ts, e.seq));
        Ok(Box::new(current.into_iter().map(Ok)))
    }

    fn event_counts(&self) -> Result<Vec<(Kind, u64)>> {
        Ok([
            Kind::Activities,
            Kind::ProductEvents,
            Kind::MarketingTouches,
        ]
        .into_iter()
        .map(|kind| {
            let n = self
                .events
                .iter()
                .filter(|e| e.kind == kind && !self.superseded.contains_key(&e.event.seq))
                .count();
            (kind, n as u64)
        })
        .collect())
    }

    fn quarantine(&self, load_id: Option<LoadId>) -> Result<Vec<QuarantinedRow>> {
        let mut rows: Vec<QuarantinedRow> = self
            .quarantine
            .iter()
            .filter(|q| load_id.is_none_or(|l| q.load_id == l))
            .cloned()
            .collect();
        rows.sort_by_key(|q| (q.load_id, q.line));
        Ok(rows)
    }

    fn flags(&self) -> Result<Vec<Flag>> {
        let mut flags = self.flags.clone();
        flags.sort_by_key(|f| (f.load_id, f.line));
        Ok(flags)
    }

    fn models(&self, kind: Option<&str>) -> Result<Vec<ModelInfo>> {
        Ok(self
            .models
            .iter()
            .filter(|m| kind.is_none_or(|k| m.kind == k))
            .cloned()
            .collect())
    }

    fn model(&self, model_id: &str) -> Result<Option<ModelRecord>> {
        let Some(info) = self.models.iter().find(|m| m.model_id == model_id) else {
            return Ok(None);
        };
        Ok(Some(ModelRecord {
            model_id: info.model_id.clone(),
            kind: info.kind.clone(),
            summary: info.summary.clone(),
            body: self.model_bodies.get(model_id).cloned().unwrap_or_default(),
        }))
    }

    fn events_since(&self, after: LogPosition, kinds: &[Kind]) -> Result<EventChanges<'_>> {
        let changes: Vec<EventChange> = self
            .events
            .iter()
            .filter(|e| e.position > after && event_kinds_wanted(kinds, e.kind))
            .map(|e| EventChange {
                position: e.position,
                supersedes: e.supersedes,
                event: e.event.clone(),
            })
            .collect();
        Ok(Box::new(changes.into_iter().map(Ok)))
    }

    fn records_since(&self, after: LogPosition) -> Result<Vec<RecordChange>> {
        let mut changes: Vec<RecordChange> = self
            .records
            .values()
            .flatten()
            .filter(|(_, position)| *position > after)
            .map(|(record, position)| RecordChange {
                position: *position,
                replaces: (record.version > 1).then(|| record.version - 1),
                record: record.clone(),
            })
            .collect();
        // As the embedded store orders them: kinds by name, ids bytewise.
        changes.sort_by(|a, b| {
            let key = |c: &RecordChange| {
                (
                    c.position,
                    c.record.kind.as_str(),
                    c.record.id.clone(),
                    c.record.version,
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(changes)
    }

    fn events_by_seq(&self, seqs: &[u64]) -> Result<Vec<StoredEvent>> {
        let mut wanted = seqs.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        Ok(wanted
            .into_iter()
            .filter_map(|seq| {
                self.events
                    .binary_search_by_key(&seq, |e| e.event.seq)
                    .ok()
                    .map(|i| self.events[i].event.clone())
            })
            .collect())
    }

    fn journal(&self, stream: &str, query: &JournalQuery) -> Result<Vec<JournalEntry>> {
        Ok(self
            .journal
            .get(stream)
            .map_or(&[][..], |v| &v[..])
            .iter()
            .filter(|e| e.seq > query.after)
            .filter(|e| query.key.as_deref().is_none_or(|k| e.key == k))
            .take(query.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    fn journal_latest(&self, stream: &str) -> Result<Vec<JournalEntry>> {
        let mut latest: BTreeMap<&str, &JournalEntry> = BTreeMap::new();
        for e in self.journal.get(stream).map_or(&[][..], |v| &v[..]) {
            latest.insert(&e.key, e);
        }
        Ok(latest.into_values().cloned().collect())
    }
}

/// Reads on a shared state: a snapshot, or the store's latest state for one call.
struct MemorySnapshot(Arc<Data>);

impl Snapshot for MemorySnapshot {}

/// Forwards every read to the state a value holds.
macro_rules! forward_reads {
    ($ty:ty, |$s:ident| $data:expr) => {
        impl StoreRead for $ty {
            fn position(&$s) -> Result<LogPosition> {
                $data.position()
            }
            fn loads(&$s) -> Result<Vec<LoadInfo>> {
                $data.loads()
            }
            fn records(&$s, kind: Kind) -> Result<Vec<StoredRecord>> {
                $data.records(kind)
            }
            fn versions(&$s, kind: Kind, id: &str) -> Result<Vec<StoredRecord>> {
                $data.versions(kind, id)
            }
            fn events(&$s, kinds: &[Kind]) -> Result<Events<'_>> {
                let all: Vec<_> = $data.events(kinds)?.collect();
                Ok(Box::new(all.into_iter()))
            }
            fn event_counts(&$s) -> Result<Vec<(Kind, u64)>> {
                $data.event_counts()
            }
            fn quarantine(&$s, load_id: Option<LoadId>) -> Result<Vec<QuarantinedRow>> {
                $data.quarantine(load_id)
            }
            fn flags(&$s) -> Result<Vec<Flag>> {
                $data.flags()
            }
            fn models(&$s, kind: Option<&str>) -> Result<Vec<ModelInfo>> {
                $data.models(kind)
            }
            fn model(&$s, model_id: &str) -> Result<Option<ModelRecord>> {
                $data.model(model_id)
            }
            fn events_since(&$s, after: LogPosition, kinds: &[Kind]) -> Result<EventChanges<'_>> {
                let all: Vec<_> = $data.events_since(after, kinds)?.collect();
                Ok(Box::new(all.into_iter()))
            }
            fn records_since(&$s, after: LogPosition) -> Result<Vec<RecordChange>> {
                $data.records_since(after)
            }
            fn events_by_seq(&$s, seqs: &[u64]) -> Result<Vec<StoredEvent>> {
                $data.events_by_seq(seqs)
            }
            fn journal(&$s, stream: &str, query: &JournalQuery) -> Result<Vec<JournalEntry>> {
                $data.journal(stream, query)
            }
            fn journal_latest(&$s, stream: &str) -> Result<Vec<JournalEntry>> {
                $data.journal_latest(stream)
            }
        }
    };
}

forward_reads!(MemorySnapshot, |self| self.0);
forward_reads!(MemoryStore, |self| self.current());

impl Store for MemoryStore {
    fn append(&self, stream: &str, at: Ts, entries: &[(String, Vec<u8>)]) -> Result<Vec<u64>> {
        let mut data = lock(&self.data);
        let next = Arc::make_mut(&mut data);
        let held = next.journal.entry(stream.to_string()).or_default();
        let last = held.last().map_or(0, |e| e.seq);
        let mut seqs = Vec::with_capacity(entries.len());
        for (i, (key, body)) in entries.iter().enumerate() {
            let seq = last + 1 + i as u64;
            held.push(JournalEntry {
                stream: stream.to_string(),
                seq,
                key: key.clone(),
                at,
                body: body.clone(),
            });
            seqs.push(seq);
        }
        Ok(seqs)
    }

    fn append_linked(
        &self,
        stream: &str,
        at: Ts,
        key: &str,
        make: &mut dyn FnMut(Option<&JournalEntry>) -> Vec<u8>,
    ) -> Result<u64> {
        let mut data = lock(&self.data);
        let next = Arc::make_mut(&mut data);
        let held = next.journal.entry(stream.to_string()).or_default();
        let body = make(held.last());
        let seq = held.last().map_or(0, |e| e.seq) + 1;
        held.push(JournalEntry {
            stream: stream.to_string(),
            seq,
            key: key.to_string(),
            at,
            body,
        });
        Ok(seq)
    }

    fn begin(&self) -> Result<Box<dyn Batch + '_>> {
        let writer = lock(&self.writer);
        let data = (*self.current()).clone();
        Ok(Box::new(MemoryBatch {
            store: self,
            _writer: writer,
            data,
            loads: Vec::new(),
            scratch: Vec::new(),
        }))
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        Ok(Box::new(MemorySnapshot(self.current())))
    }

    fn put_model(&self, model: &ModelRecord) -> Result<bool> {
        let mut data = lock(&self.data);
        if data.models.iter().any(|m| m.model_id == model.model_id) {
            return Ok(false);
        }
        let next = Arc::make_mut(&mut data);
        next.models.push(ModelInfo {
            seq: next.models.len() as u64 + 1,
            model_id: model.model_id.clone(),
            kind: model.kind.clone(),
            summary: model.summary.clone(),
        });
        next.model_bodies
            .insert(model.model_id.clone(), model.body.clone());
        Ok(true)
    }

    fn put_state(&self, name: &str, key: &str, write: &mut StateWriter<'_>) -> Result<()> {
        check_name(name)?;
        let mut bytes = Vec::new();
        write(&mut bytes as &mut dyn Write).map_err(|source| StoreError::Io {
            path: format!("memory:state/{name}").into(),
            source,
        })?;
        lock(&self.states).insert(name.to_string(), (key.to_string(), bytes.into()));
        Ok(())
    }

    fn update_state(&self, name: &str, key: &str, update: &mut StateUpdate<'_>) -> Result<()> {
        check_name(name)?;
        let _updating = lock(&self.updates);
        let bytes = update(self.state(name)?).map_err(|source| StoreError::Io {
            path: format!("memory:state/{name}").into(),
            source,
        })?;
        self.put_state(name, key, &mut |w| w.write_all(&bytes))
    }

    fn state(&self, name: &str) -> Result<Option<NamedState>> {
        check_name(name)?;
        Ok(lock(&self.states).get(name).map(|(key, bytes)| NamedState {
            key: key.clone(),
            len: bytes.len() as u64,
            origin: format!("memory:state/{name}"),
            bytes: Box::new(Cursor::new(Arc::clone(bytes))),
        }))
    }
}

/// A batch: a private copy of the state, swapped in by commit.
struct MemoryBatch<'a> {
    store: &'a MemoryStore,
    _writer: MutexGuard<'a, ()>,
    data: Data,
    loads: Vec<LoadId>,
    scratch: Vec<u8>,
}

impl MemoryBatch<'_> {
    /// An event's kind, key and content hash, computed as the embedded store computes them.
    fn event_identity(&mut self, record: &Record) -> Result<(Kind, Ts, String, u64)> {
        let (kind, ts, content_hash) = PendingEvents::encode_body(record, &mut self.scratch)?;
        let key = record
            .natural_key()
            .unwrap_or_else(|| format!("h:{}", winsignal_core::hash::hex(content_hash)));
        Ok((kind, ts, key, content_hash))
    }

    /// An entity record's id and content hash, computed as the embedded store computes them.
    fn record_identity(record: &Record) -> Result<(String, u64)> {
        let body =
            serde_json::to_string(record).map_err(|e| StoreError::Internal(e.to_string()))?;
        let content_hash = hash_bytes(body.as_bytes());
        let id = record
            .natural_key()
            .unwrap_or_else(|| format!("h:{}", winsignal_core::hash::hex(content_hash)));
        Ok((id, content_hash))
    }

    /// The position this batch's writes get when it commits.
    fn next_position(&self) -> LogPosition {
        LogPosition(self.data.position.0 + 1)
    }
}

impl Batch for MemoryBatch<'_> {
    fn start_load(&mut self, spec: &LoadSpec) -> Result<LoadId> {
        let load_id = self.data.loads.keys().next_back().map_or(1, |l| l + 1);
        self.data.loads.insert(
            load_id,
            HeldLoad {
                info: LoadInfo {
                    load_id,
                    source: spec.source.clone(),
                    format: spec.format.clone(),
                    path: spec.path.clone(),
                    file_hash: spec.file_hash.clone(),
                    file_bytes: spec.file_bytes,
                    identity: spec.identity.clone(),
                    recipe: spec.recipe.clone(),
                    started_at: Ts::now(),
                    finished_at: Ts::now(),
                    columns: Vec::new(),
                    kinds: Vec::new(),
                    stats: LoadStats::default(),
                },
                finished: false,
            },
        );
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
        let origin = RowOrigin {
            load_id,
            line,
            source_record_id: source_record_id.map(str::to_string),
        };
        let position = self.next_position();
        let kind = record.kind();
        if kind.is_event() {
            let (kind, ts, key, content_hash) = self.event_identity(record)?;
            let seq = self.data.next_seq.max(1);
            let previous = self.data.event_index.get(&(kind, key.clone())).copied();
            let (outcome, supersedes) = match previous {
                Some((h, _)) if h == content_hash => return Ok(PutOutcome::Unchanged),
                Some((_, old_seq)) => {
                    self.data.superseded.insert(old_seq, seq);
                    (PutOutcome::Updated, Some(old_seq))
                }
                None => (PutOutcome::New, None),
            };
            self.data
                .event_index
                .insert((kind, key.clone()), (content_hash, seq));
            self.data.next_seq = seq + 1;
            self.data.events.push(HeldEvent {
                kind,
                event: StoredEvent {
                    seq,
                    ts,
                    key,
                    origin,
                    content_hash,
                    record: record.clone(),
                },
                position,
                supersedes,
            });
            return Ok(outcome);
        }
        let (id, content_hash) = Self::record_identity(record)?;
        let versions = self.data.records.entry((kind, id.clone())).or_default();
        let (version, outcome) = match versions.last_mut() {
            Some((held, _)) if held.content_hash == content_hash => {
                return Ok(PutOutcome::Unchanged)
            }
            Some((held, _)) => {
                held.current = false;
                (held.version + 1, PutOutcome::Updated)
            }
            None => (1, PutOutcome::New),
        };
        versions.push((
            StoredRecord {
                kind,
                id,
                version,
                current: true,
                origin,
                content_hash,
                record: record.clone(),
            },
            position,
        ));
        Ok(outcome)
    }

    fn quarantine(&mut self, row: &QuarantinedRow) -> Result<()> {
        let mut row = row.clone();
        row.raw = crate::quarantine_raw(&row.raw);
        self.data.quarantine.push(row);
        Ok(())
    }

    fn flag(&mut self, flag: &Flag) -> Result<()> {
        self.data.flags.push(flag.clone());
        Ok(())
    }

    fn current(&mut self, kind: Kind, id: &str) -> Result<Option<Record>> {
        if kind.is_event() {
            return Err(StoreError::Internal(format!(
                "current({kind}): events have no single current version to update"
            )));
        }
        Ok(self
            .data
            .records
            .get(&(kind, id.to_string()))
            .and_then(|versions| versions.last())
            .map(|(r, _)| r.record.clone()))
    }

    fn holds(&mut self, record: &Record) -> Result<bool> {
        let kind = record.kind();
        if kind.is_event() {
            let (kind, _, key, content_hash) = self.event_identity(record)?;
            return Ok(self
                .data
                .event_index
                .get(&(kind, key))
                .is_some_and(|(h, _)| *h == content_hash));
        }
        let (id, content_hash) = Self::record_identity(record)?;
        Ok(self
            .data
            .records
            .get(&(kind, id))
            .and_then(|versions| versions.last())
            .is_some_and(|(r, _)| r.content_hash == content_hash))
    }

    fn set_overlay(&mut self, kind: Kind, id: &str, source: &str, fields: &str) -> Result<()> {
        let overlays = self
            .data
            .overlays
            .entry((kind, id.to_string()))
            .or_default();
        if overlays.iter().any(|(s, f)| s == source && f == fields) {
            // Unchanged: it keeps its place in the order.
            return Ok(());
        }
        overlays.retain(|(s, _)| s != source);
        overlays.push((source.to_string(), fields.to_string()));
        Ok(())
    }

    fn overlays(&mut self, kind: Kind, id: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .data
            .overlays
            .get(&(kind, id.to_string()))
            .cloned()
            .unwrap_or_default())
    }

    fn finish_load(
        &mut self,
        load_id: LoadId,
        columns: &[Column],
        kinds: &[Kind],
        stats: &LoadStats,
    ) -> Result<()> {
        let load =
            self.data.loads.get_mut(&load_id).ok_or_else(|| {
                StoreError::Internal(format!("finish_load({load_id}): no such load"))
            })?;
        load.info.finished_at = Ts::now();
        load.info.columns = columns.to_vec();
        load.info.kinds = kinds.to_vec();
        load.info.stats = stats.clone();
        load.finished = true;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        self.data.position = self.next_position();
        let mut shared = lock(&self.store.data);
        // Models are saved outside batches: keep the ones saved while this batch was open.
        self.data.models = shared.models.clone();
        self.data.model_bodies = shared.model_bodies.clone();
        *shared = Arc::new(std::mem::take(&mut self.data));
        Ok(())
    }
}
