//! One load: a file read by a connector into a store batch, with its counts, flags and schema. Keeps the
//! invariant rows read = accepted + quarantined, and flags what was accepted with a caveat.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use winsignal_core::hash::{ContentHasher, U64Map};
use winsignal_core::{Kind, Record, Ts};
use winsignal_store::{
    Batch, Column, Flag, LoadId, LoadSpec, LoadStats, PutOutcome, QuarantinedRow, StoreRead,
};

use crate::error::{read_err, Result};

/// Progress of the file being loaded, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub file: &'a str,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub rows: u64,
}

pub type ProgressFn<'a> = dyn FnMut(Progress<'_>) + 'a;

/// What one load did, as reported to the user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub load_id: LoadId,
    /// The latest earlier load of the same source with the same identity (same file bytes, connector
    /// and version, kind, mapping and config), when there is one. Informational: the rows were read and
    /// checked against the store all the same.
    pub identical_to: Option<LoadId>,
    /// See [`LoadRecipe`].
    pub identity: String,
    pub source: String,
    pub path: String,
    pub kinds: Vec<Kind>,
    pub stats: LoadStats,
    /// A large share of the rows quarantined for one field or one outcome (see [`crate::loud`]).
    pub warnings: Vec<crate::loud::LoadWarning>,
}

pub struct LoadContext<'b, 'p> {
    pub batch: &'b mut dyn Batch,
    pub load_id: LoadId,
    pub source: String,
    pub path: String,
    pub now: Ts,
    stats: LoadStats,
    kinds: Vec<Kind>,
    /// Ids read so far in this ingest, shared by its loads.
    ids: &'p mut SeenIds,
    last_stage: HashMap<String, Ts>,
    progress: &'p mut ProgressFn<'p>,
    /// Quarantined rows per field and deals per outcome, for the load's warnings.
    pub tally: crate::loud::Tally,
    /// The overlays the next accepted row sets, `(kind, id, fields)` (an update output's row; see
    /// [`crate::overlay`]): written with its records, dropped if the row is refused.
    pub next_overlays: Vec<(Kind, String, String)>,
    /// The latest earlier load of this source with the same identity (see [`LoadReport::identical_to`]).
    pub identical_to: Option<LoadId>,
    identity: String,
}

/// Everything besides the rows that shapes what a load makes of a file: the connector and its version,
/// the kind or object read, the bytes of a mapping or config file. With the file's own hash (added by
/// [`LoadContext::start`]) it is the load's identity, kept with the load (`quality --json`).
#[derive(Debug, Clone)]
pub struct LoadRecipe {
    parts: BTreeMap<String, String>,
}

impl LoadRecipe {
    pub fn new(connector: &str) -> Self {
        let mut parts = BTreeMap::new();
        parts.insert("connector".into(), connector.to_string());
        parts.insert(
            "connector_version".into(),
            crate::sources::CONNECTOR_VERSION.to_string(),
        );
        parts.insert("winsignal".into(), env!("CARGO_PKG_VERSION").to_string());
        LoadRecipe { parts }
    }

    /// Adds one part, e.g. `("kind", "accounts")`.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.parts.insert(name.to_string(), value.into());
        self
    }

    /// Adds a settings file by the hash of its bytes (`none` when there is no such file).
    pub fn with_file(self, name: &str, path: Option<&Path>) -> Result<Self> {
        let value = match path {
            Some(p) => file_fingerprint(p)?.0,
            None => "none".to_string(),
        };
        Ok(self.with(name, value))
    }

    fn identity(&self) -> String {
        let mut h = ContentHasher::new();
        for (name, value) in &self.parts {
            h.field(name.as_bytes()).field(value.as_bytes());
        }
        winsignal_core::hash::hex(h.finish())
    }
}

/// The ids read so far in one ingest, across its files, so that an id is taken from one row only:
/// the first row with an id wins, a later row repeating it exactly is the same record (accepted as
/// unchanged), and a later row giving it other values is quarantined, naming the first. A row making
/// several records (a mapping's outputs, such as a deal and the account named on every deal row) is
/// refused only when all of them were read before and one differs; otherwise those read before keep
/// their first values (a repeat with other values is noted) and the new ones are written.
#[derive(Debug, Default)]
pub struct SeenIds {
    /// The files of the ingest, in load order.
    files: Vec<String>,
    /// Key hash of every record read → where it was first read (file ordinal and line, packed).
    read: U64Map<u64>,
}

/// What an earlier row of the ingest already gave of a row's records.
enum Claim {
    /// Something new: the row is written.
    New,
    /// Exactly what earlier rows gave (a repeated line, a resent Segment message): already held.
    Repeat,
    /// Other values for an id an earlier row gave: the row is quarantined with this reason.
    Conflict(String),
}

const LINE_BITS: u32 = 44;

fn pack_place(file: usize, line: u64) -> u64 {
    ((file as u64) << LINE_BITS) | (line & ((1 << LINE_BITS) - 1))
}

impl SeenIds {
    /// Where a packed place is, in words: `line 3 of this file` or `line 3 of other.csv`.
    fn describe(&self, place: u64, this_file: usize) -> String {
        let file = (place >> LINE_BITS) as usize;
        let line = place & ((1 << LINE_BITS) - 1);
        if file == this_file {
            format!("line {line} of this file")
        } else {
            let path = self.files.get(file).map_or("another file", String::as_str);
            format!("line {line} of {path} (read earlier in this ingest)")
        }
    }
}

fn key_hash(kind: Kind, key: &str) -> u64 {
    let mut h = ContentHasher::new();
    h.field(kind.as_str().as_bytes()).field(key.as_bytes());
    h.finish()
}

/// Hex hash and size of a file's bytes.
pub fn file_fingerprint(path: &Path) -> Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(read_err(path))?;
    let mut h = ContentHasher::new();
    // Hashed in pieces of 1 MiB, each a field. Reserved, not zeroed: a small file touches only the
    // pages it fills (zeroing the whole MiB cost a server committing hundreds of small loads a second
    // 3 % of its time). `read_to_end` also fills each piece whole when a read comes back short.
    let mut buf = Vec::with_capacity(FINGERPRINT_PIECE as usize);
    let mut total = 0u64;
    loop {
        buf.clear();
        let n = (&mut f)
            .take(FINGERPRINT_PIECE)
            .read_to_end(&mut buf)
            .map_err(read_err(path))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.field(&buf);
    }
    Ok((winsignal_core::hash::hex(h.finish()), total))
}

/// The size of the pieces a file is hashed in ([`file_fingerprint`]): part of every load's identity.
const FINGERPRINT_PIECE: u64 = 1 << 20;

impl<'b, 'p> LoadContext<'b, 'p> {
    /// Starts a load. Every row is read, checked and compared with the store, also when an earlier load
    /// had the same identity: a row counts as accepted only once the store holds its records.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        batch: &'b mut dyn Batch,
        store: &dyn StoreRead,
        source: &str,
        recipe: LoadRecipe,
        path: &Path,
        shown: String,
        now: Ts,
        ids: &'p mut SeenIds,
        progress: &'p mut ProgressFn<'p>,
    ) -> Result<Self> {
        let (file_hash, file_bytes) = file_fingerprint(path)?;
        let recipe = recipe.with("file", file_hash.clone());
        let identity = recipe.identity();
        let identical_to = store.identical_load(source, &identity)?;
        let format = recipe.parts.get("connector").cloned().unwrap_or_default();
        let spec = LoadSpec {
            source: source.into(),
            format,
            path: shown.clone(),
            file_hash,
            file_bytes,
            identity: identity.clone(),
            recipe: recipe.parts,
        };
        ids.files.push(shown.clone());
        let load_id = batch.start_load(&spec)?;
        Ok(LoadContext {
            batch,
            load_id,
            source: source.into(),
            path: shown,
            now,
            stats: LoadStats::default(),
            kinds: Vec::new(),
            ids,
            last_stage: HashMap::new(),
            progress,
            tally: Default::default(),
            next_overlays: Vec::new(),
            identical_to,
            identity,
        })
    }

    pub fn progress(&mut self, bytes_done: u64, bytes_total: u64) {
        if self.stats.rows_read.is_multiple_of(65_536) {
            (self.progress)(Progress {
                file: &self.path,
                bytes_done,
                bytes_total,
                rows: self.stats.rows_read,
            });
        }
    }

    /// A hint that about `n` more rows of events are coming: room is made for them once.
    pub fn expect_event_rows(&mut self, n: u64) -> Result<()> {
        self.ids
            .read
            .reserve(usize::try_from(n).unwrap_or(usize::MAX));
        self.batch.expect_events(n)?;
        Ok(())
    }

    pub fn stats(&self) -> &LoadStats {
        &self.stats
    }

    fn note_kind(&mut self, kind: Kind) {
        if !self.kinds.contains(&kind) {
            self.kinds.push(kind);
        }
    }

    /// Writes the records one source row produced (one or more) and the notes it carries.
    pub fn accept(
        &mut self,
        line: u64,
        source_record_id: Option<&str>,
        records: &[Record],
        notes: &[(String, String)],
    ) -> Result<()> {
        let own_overlays = std::mem::take(&mut self.next_overlays);
        match self.claim_row(line, records)? {
            Claim::New => {}
            Claim::Repeat => {
                self.stats.rows_read += 1;
                self.stats.accepted += 1;
                self.stats.unchanged += 1;
                self.tally.accepted(records);
                for record in records {
                    self.note_kind(record.kind());
                }
                return Ok(());
            }
            Claim::Conflict(reason) => return self.refuse_duplicate(line, records, reason),
        }
        self.stats.rows_read += 1;
        self.stats.accepted += 1;
        self.tally.accepted(records);
        let this_file = self.ids.files.len() - 1;
        let mut best = PutOutcome::Unchanged;
        let mut flags: Vec<(Kind, Option<String>, String, String)> = Vec::new();
        for (record_idx, record) in records.iter().enumerate() {
            let kind = record.kind();
            self.note_kind(kind);
            let key = record.natural_key_ref();
            // A row's notes describe the row: they go with its first record only.
            if record_idx == 0 {
                for (code, message) in notes {
                    flags.push((
                        kind,
                        key.as_deref().map(str::to_string),
                        code.clone(),
                        message.clone(),
                    ));
                }
            }
            if let (Some(k), true) = (&key, records.len() > 1) {
                // One of several records a row makes (a mapping's deal and the account named on every
                // deal row): the first values read in this ingest stand, so that a reload cannot make
                // versions flip between rows.
                let kh = key_hash(kind, k);
                match self.ids.read.get(&kh).copied() {
                    Some(_) if self.holds_as_written(record)? => continue,
                    Some(p) => {
                        flags.push((
                            kind,
                            Some(k.to_string()),
                            "duplicate_id".into(),
                            format!(
                                "{} {k} is also made by {} with other values; those are kept",
                                kind.singular(),
                                self.ids.describe(p, this_file)
                            ),
                        ));
                        continue;
                    }
                    None => {
                        self.ids.read.insert(kh, pack_place(this_file, line));
                    }
                }
            }
            if let Record::StageHistory(s) = record {
                if let Some(prev) = self
                    .last_stage
                    .insert(s.opportunity_id.clone(), s.entered_at)
                {
                    if s.entered_at < prev {
                        flags.push((
                            kind,
                            Some(s.opportunity_id.clone()),
                            "stage_out_of_order".into(),
                            format!("stage {} entered at {} is earlier than the previous row for this deal ({prev})", s.stage, s.entered_at),
                        ));
                    }
                }
            }
            let own = own_overlays
                .iter()
                .find(|(k, id, _)| *k == kind && key.as_deref() == Some(id.as_str()))
                .map(|(_, _, fields)| fields.as_str());
            let overlaid = self.overlaid(record, key.as_deref(), own)?;
            let outcome = self.batch.put(
                self.load_id,
                line,
                source_record_id,
                overlaid.as_ref().unwrap_or(record),
            )?;
            if let (Some(fields), Some(k)) = (own, key.as_deref()) {
                self.batch.set_overlay(kind, k, &self.source, fields)?;
            }
            best = match (best, outcome) {
                (_, PutOutcome::New) | (PutOutcome::New, _) => PutOutcome::New,
                (_, PutOutcome::Updated) | (PutOutcome::Updated, _) => PutOutcome::Updated,
                _ => PutOutcome::Unchanged,
            };
        }
        match best {
            PutOutcome::New => self.stats.new += 1,
            PutOutcome::Updated => self.stats.updated += 1,
            PutOutcome::Unchanged => self.stats.unchanged += 1,
        }
        if !flags.is_empty() {
            self.stats.flagged += 1;
        }
        // Flags describe the row as loaded; an unchanged reload does not repeat them.
        if best != PutOutcome::Unchanged {
            flags.dedup_by(|a, b| a.2 == b.2 && a.1 == b.1);
            for (kind, record_id, code, message) in flags {
                self.batch.flag(&Flag {
                    load_id: self.load_id,
                    line,
                    kind,
                    record_id,
                    code,
                    message,
                })?;
            }
        }
        Ok(())
    }

    /// Takes the row's id for it, or says what earlier rows of the ingest already gave. A row making
    /// several records conflicts only when every one of them was read before and one differs (a row
    /// naming an account already read, with a new deal, is new); its records are then checked one by
    /// one in [`Self::accept`].
    fn claim_row(&mut self, line: u64, records: &[Record]) -> Result<Claim> {
        let this_file = self.ids.files.len() - 1;
        let mut first = None;
        let mut names = Vec::new();
        for r in records {
            let Some(key) = r.natural_key_ref() else {
                return Ok(Claim::New);
            };
            let Some(&place) = self.ids.read.get(&key_hash(r.kind(), &key)) else {
                if records.len() == 1 {
                    self.ids
                        .read
                        .insert(key_hash(r.kind(), &key), pack_place(this_file, line));
                }
                return Ok(Claim::New);
            };
            first.get_or_insert(place);
            names.push(format!("{} {key}", r.kind().singular()));
        }
        let Some(place) = first else {
            return Ok(Claim::New);
        };
        for r in records {
            if !self.holds_as_written(r)? {
                let earlier = self.ids.describe(place, this_file);
                return Ok(Claim::Conflict(if records.len() == 1 {
                    format!(
                        "duplicate id: {} was already read from {earlier} with other values; the first row is kept",
                        names[0]
                    )
                } else {
                    format!(
                        "duplicate row: every record it makes ({}) was already read, the first from {earlier}, and not all with these values; the first row is kept",
                        names.join(", ")
                    )
                }));
            }
        }
        Ok(Claim::Repeat)
    }

    /// Quarantines a row whose id an earlier row of this ingest already gave. Its raw form is the
    /// records it made, as JSON (the row itself is at its line in the file).
    fn refuse_duplicate(&mut self, line: u64, records: &[Record], reason: String) -> Result<()> {
        let record_id = records.first().and_then(Record::natural_key);
        let raw = serde_json::to_string(records).unwrap_or_default();
        self.reject(
            line,
            records.first().map(Record::kind),
            record_id,
            vec![reason],
            raw,
        )
    }

    /// `record` with the update overlays held for it, the other sources' first and `own` last (see
    /// [`crate::overlay`]); `None` when they change nothing.
    /// Whether the store holds `record` as this load would write it: as it is, or with the update
    /// overlays of other sources on top (what `put` stores). An exact repeat of a row is then a repeat
    /// even after another file's update changed the record.
    fn holds_as_written(&mut self, record: &Record) -> Result<bool> {
        if self.batch.holds(record)? {
            return Ok(true);
        }
        let key = record.natural_key_ref().map(|k| k.to_string());
        match self.overlaid(record, key.as_deref(), None)? {
            Some(o) => Ok(self.batch.holds(&o)?),
            None => Ok(false),
        }
    }

    fn overlaid(
        &mut self,
        record: &Record,
        key: Option<&str>,
        own: Option<&str>,
    ) -> Result<Option<Record>> {
        let kind = record.kind();
        let Some(key) = key.filter(|_| crate::sources::mapping::update_key(kind).is_some()) else {
            return Ok(None);
        };
        let overlays = self.batch.overlays(kind, key)?;
        crate::overlay::apply(record, &overlays, &self.source, own).map_err(|e| {
            winsignal_store::StoreError::Internal(format!("{} {key}: {e}", kind.singular())).into()
        })
    }

    /// Quarantines one source row with all of its reasons.
    pub fn reject(
        &mut self,
        line: u64,
        kind: Option<Kind>,
        record_id: Option<String>,
        reasons: Vec<String>,
        raw: String,
    ) -> Result<()> {
        self.stats.rows_read += 1;
        self.stats.quarantined += 1;
        self.tally.rejected(line, &reasons);
        if let Some(k) = kind {
            self.note_kind(k);
        }
        tracing::debug!(file = %self.path, line, reasons = %reasons.join("; "), "Row quarantined.");
        self.batch.quarantine(&QuarantinedRow {
            load_id: self.load_id,
            line,
            kind,
            record_id,
            reasons,
            raw,
        })?;
        Ok(())
    }

    pub fn finish(self, columns: &[Column]) -> Result<LoadReport> {
        let mut kinds = self.kinds.clone();
        kinds.sort();
        self.batch
            .finish_load(self.load_id, columns, &kinds, &self.stats)?;
        (self.progress)(Progress {
            file: &self.path,
            bytes_done: 1,
            bytes_total: 1,
            rows: self.stats.rows_read,
        });
        Ok(LoadReport {
            load_id: self.load_id,
            identical_to: self.identical_to,
            identity: self.identity,
            source: self.source,
            path: self.path,
            kinds,
            warnings: self.tally.warnings(self.stats.rows_read),
            stats: self.stats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's fingerprint is its bytes hashed in whole pieces of 1 MiB, each a field, and its size:
    /// the same for a small file and for one of several pieces, so the loads' identities of files
    /// ingested before stay the same.
    #[test]
    fn a_file_is_fingerprinted_in_pieces_of_one_mebibyte() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for len in [0usize, 10, (1 << 20) - 1, 1 << 20, (5 << 19) + 3] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
            let mut want = ContentHasher::new();
            for piece in bytes.chunks(1 << 20) {
                want.field(piece);
            }
            let got = file_fingerprint(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                got,
                (winsignal_core::hash::hex(want.finish()), len as u64),
                "{len} bytes"
            );
        }
    }
}
