//! One load: a file read by a connector into a store batch, with its counts, flags and schema. Keeps the
//! invariant rows read = accepted + quarantined, and flags what was accepted with a caveat.

use std::collections::HashMap;
use std::path::Path;

use winsignal_core::hash::ContentHasher;
use winsignal_core::{Kind, Record, Ts};
use winsignal_store::{
    Batch, Column, Flag, LoadId, LoadInfo, LoadSpec, LoadStats, PutOutcome, QuarantinedRow,
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
    /// The earlier load of a byte-identical file from the same source, when this one repeated it.
    pub identical_to: Option<LoadId>,
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
    seen_keys: winsignal_core::hash::U64Set,
    last_stage: HashMap<String, Ts>,
    progress: &'p mut ProgressFn<'p>,
    /// Quarantined rows per field and deals per outcome, for the load's warnings.
    pub tally: crate::loud::Tally,
    /// Set when the same source already loaded a byte-identical file: rows are read and counted, but
    /// nothing is written again (so duplicates inside a file cannot churn versions on reload).
    pub identical_to: Option<LoadId>,
}

/// Hex hash and size of a file's bytes.
pub fn file_fingerprint(path: &Path) -> Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(read_err(path))?;
    let mut h = ContentHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(read_err(path))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.field(&buf[..n]);
    }
    Ok((winsignal_core::hash::hex(h.finish()), total))
}

impl<'b, 'p> LoadContext<'b, 'p> {
    pub fn start(
        batch: &'b mut dyn Batch,
        previous_loads: &[LoadInfo],
        source: &str,
        format: &str,
        path: &Path,
        now: Ts,
        progress: &'p mut ProgressFn<'p>,
    ) -> Result<Self> {
        let (file_hash, file_bytes) = file_fingerprint(path)?;
        // A byte-identical earlier load makes this one a no-op, unless a later load of the same source
        // wrote something since (an older export loaded again must bring its versions back).
        let identical_to = previous_loads
            .iter()
            .rposition(|l| l.source == source && l.file_hash == file_hash)
            .filter(|&i| {
                previous_loads[i + 1..]
                    .iter()
                    .all(|l| l.source != source || l.stats.new + l.stats.updated == 0)
            })
            .map(|i| previous_loads[i].load_id);
        let shown = path.display().to_string();
        let spec = LoadSpec {
            source: source.into(),
            format: format.into(),
            path: shown.clone(),
            file_hash,
            file_bytes,
        };
        let load_id = batch.start_load(&spec)?;
        Ok(LoadContext {
            batch,
            load_id,
            source: source.into(),
            path: shown,
            now,
            stats: LoadStats::default(),
            kinds: Vec::new(),
            seen_keys: Default::default(),
            last_stage: HashMap::new(),
            progress,
            tally: Default::default(),
            identical_to,
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
        if self.identical_to.is_some() {
            return Ok(());
        }
        self.seen_keys
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
        self.stats.rows_read += 1;
        self.stats.accepted += 1;
        self.tally.accepted(records);
        if self.identical_to.is_some() {
            for record in records {
                self.note_kind(record.kind());
            }
            self.stats.unchanged += 1;
            return Ok(());
        }
        let mut best = PutOutcome::Unchanged;
        let mut flags: Vec<(Kind, Option<String>, String, String)> = Vec::new();
        for (record_idx, record) in records.iter().enumerate() {
            let kind = record.kind();
            self.note_kind(kind);
            let key = record.natural_key_ref();
            if let Some(k) = &key {
                let mut h = ContentHasher::new();
                h.field(kind.as_str().as_bytes()).field(k.as_bytes());
                if !self.seen_keys.insert(h.finish()) {
                    flags.push((
                        kind,
                        Some(k.to_string()),
                        "duplicate_id".into(),
                        format!("{} {k} appears more than once in this load; the later row is the current version", kind.singular()),
                    ));
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
            let outcome = self
                .batch
                .put(self.load_id, line, source_record_id, record)?;
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
        if self.identical_to.is_some() {
            // Already quarantined, with the same reasons, by the identical earlier load.
            return Ok(());
        }
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
            source: self.source,
            path: self.path,
            kinds,
            warnings: self.tally.warnings(self.stats.rows_read),
            stats: self.stats,
        })
    }
}
