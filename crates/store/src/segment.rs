//! Event segments: immutable files of events sorted by (time, arrival), read back by a k-way merge.
//!
//! Layout: `MAGIC`, then frames `[u32 len][u8 kind][i64 ts][u64 seq][len bytes of postcard payload]`,
//! then a key block of `(key_hash, content_hash, seq)` triples (what ingest needs to deduplicate
//! without decoding events), then a footer `[u64 n_events][u64 key_block_offset][MAGIC]`.
//! The frame header lets a reader skip kinds and superseded events without decoding them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use winsignal_core::{Activity, Kind, MarketingTouch, ProductEvent, Record, Ts};

use crate::error::{io_err, Result, StoreError};
use crate::{RowOrigin, StoredEvent};

const MAGIC: &[u8; 8] = b"WSSEG001";
const FRAME_HEADER: usize = 4 + 1 + 8 + 8;
const FOOTER: usize = 8 + 8 + 8;

/// Serialises exactly like [`EventBody`] (same variants, same order) without cloning the event.
#[derive(Serialize)]
enum EventBodyRef<'a> {
    Activity(&'a Activity),
    Product(&'a ProductEvent),
    Touch(&'a MarketingTouch),
}

/// The provenance part of [`Payload`]; postcard writes struct fields back to back, so these bytes
/// followed by the body's bytes are exactly a serialised `Payload`.
#[derive(Serialize)]
struct PayloadHead<'a> {
    key: &'a str,
    load_id: u64,
    line: u64,
    source_record_id: &'a Option<String>,
    content_hash: u64,
}

#[derive(Serialize, Deserialize)]
enum EventBody {
    Activity(Activity),
    Product(ProductEvent),
    Touch(MarketingTouch),
}

#[derive(Serialize, Deserialize)]
struct Payload {
    key: String,
    load_id: u64,
    line: u64,
    source_record_id: Option<String>,
    content_hash: u64,
    body: EventBody,
}

pub(crate) fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Activities => 1,
        Kind::ProductEvents => 2,
        Kind::MarketingTouches => 3,
        _ => 0,
    }
}

fn kind_of_code(code: u8) -> Option<Kind> {
    match code {
        1 => Some(Kind::Activities),
        2 => Some(Kind::ProductEvents),
        3 => Some(Kind::MarketingTouches),
        _ => None,
    }
}

/// The key triple kept per event for deduplication.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyEntry {
    pub key_hash: u64,
    pub content_hash: u64,
    pub seq: u64,
}

/// Events of one batch waiting to be written, already encoded.
#[derive(Default)]
pub(crate) struct PendingEvents {
    frames: Vec<(i64, u64, usize, usize)>,
    keys: Vec<KeyEntry>,
    bytes: Vec<u8>,
}

impl PendingEvents {
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn approx_bytes(&self) -> usize {
        self.bytes.len() + self.frames.len() * 56
    }

    /// The kind, time, canonical body bytes and content hash of an event record.
    pub fn encode_body(record: &Record) -> Result<(Kind, Ts, Vec<u8>, u64)> {
        let (kind, ts, body) = match record {
            Record::Activities(a) => (Kind::Activities, a.occurred_at, EventBodyRef::Activity(a)),
            Record::ProductEvents(p) => {
                (Kind::ProductEvents, p.occurred_at, EventBodyRef::Product(p))
            }
            Record::MarketingTouches(t) => (
                Kind::MarketingTouches,
                t.occurred_at,
                EventBodyRef::Touch(t),
            ),
            other => {
                return Err(StoreError::Internal(format!(
                    "{} is not an event kind",
                    other.kind()
                )))
            }
        };
        let body_bytes =
            postcard::to_stdvec(&body).map_err(|e| StoreError::Internal(e.to_string()))?;
        let content_hash = winsignal_core::hash::hash_bytes(&body_bytes);
        Ok((kind, ts, body_bytes, content_hash))
    }

    /// Appends one event: its frame is the provenance head followed by the body bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn push_event(
        &mut self,
        kind: Kind,
        ts: Ts,
        seq: u64,
        key: &str,
        origin: &RowOrigin,
        body: &[u8],
        entry: KeyEntry,
    ) -> Result<()> {
        let head = PayloadHead {
            key,
            load_id: origin.load_id,
            line: origin.line,
            source_record_id: &origin.source_record_id,
            content_hash: entry.content_hash,
        };
        let start = self.bytes.len();
        self.bytes.push(kind_code(kind));
        let bytes = std::mem::take(&mut self.bytes);
        self.bytes =
            postcard::to_extend(&head, bytes).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.bytes.extend_from_slice(body);
        self.frames.push((ts.0, seq, start, self.bytes.len()));
        self.keys.push(entry);
        Ok(())
    }

    /// Writes the pending events, sorted, to `path` (fsynced) and empties the buffer.
    /// Returns (n_events, min_ts, max_ts).
    pub fn write_sorted(&mut self, path: &Path) -> Result<(u64, i64, i64)> {
        self.frames.sort_unstable_by_key(|f| (f.0, f.1));
        let file = File::create(path).map_err(io_err(path))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let write = |w: &mut BufWriter<File>, b: &[u8]| w.write_all(b).map_err(io_err(path));
        write(&mut w, MAGIC)?;
        let mut key_offset = MAGIC.len() as u64;
        for &(ts, seq, start, end) in &self.frames {
            let kind = self.bytes[start];
            let payload = &self.bytes[start + 1..end];
            write(&mut w, &(payload.len() as u32).to_le_bytes())?;
            write(&mut w, &[kind])?;
            write(&mut w, &ts.to_le_bytes())?;
            write(&mut w, &seq.to_le_bytes())?;
            write(&mut w, payload)?;
            key_offset += (FRAME_HEADER + payload.len()) as u64;
        }
        for k in &self.keys {
            write(&mut w, &k.key_hash.to_le_bytes())?;
            write(&mut w, &k.content_hash.to_le_bytes())?;
            write(&mut w, &k.seq.to_le_bytes())?;
        }
        let n = self.frames.len() as u64;
        write(&mut w, &n.to_le_bytes())?;
        write(&mut w, &key_offset.to_le_bytes())?;
        write(&mut w, MAGIC)?;
        let file = w.into_inner().map_err(|e| StoreError::Io {
            path: path.into(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_err(path))?;
        let min = self.frames.first().map_or(0, |f| f.0);
        let max = self.frames.last().map_or(0, |f| f.0);
        *self = PendingEvents::default();
        Ok((n, min, max))
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptSegment {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Opens a segment and reads its footer: (file, length, n_events, key block offset).
fn open_with_footer(path: &Path) -> Result<(File, u64, u64, u64)> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    if len < (MAGIC.len() + FOOTER) as u64 {
        return Err(corrupt(path, "too short"));
    }
    f.seek(SeekFrom::End(-(FOOTER as i64)))
        .map_err(io_err(path))?;
    let mut footer = [0u8; FOOTER];
    f.read_exact(&mut footer).map_err(io_err(path))?;
    if &footer[16..24] != MAGIC {
        return Err(corrupt(path, "missing footer"));
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&footer[i..i + 8]);
        u64::from_le_bytes(b)
    };
    Ok((f, len, word(0), word(8)))
}

/// Reads the key block of a segment.
pub(crate) fn read_keys(path: &Path, out: &mut Vec<KeyEntry>) -> Result<()> {
    let (mut f, len, n, key_offset) = open_with_footer(path)?;
    if key_offset + n * 24 + FOOTER as u64 != len {
        return Err(corrupt(path, "key block does not match the file length"));
    }
    f.seek(SeekFrom::Start(key_offset)).map_err(io_err(path))?;
    let mut buf = vec![0u8; (n * 24) as usize];
    f.read_exact(&mut buf).map_err(io_err(path))?;
    out.reserve(n as usize);
    for c in buf.chunks_exact(24) {
        let word = |i: usize| {
            u64::from_le_bytes([
                c[i],
                c[i + 1],
                c[i + 2],
                c[i + 3],
                c[i + 4],
                c[i + 5],
                c[i + 6],
                c[i + 7],
            ])
        };
        out.push(KeyEntry {
            key_hash: word(0),
            content_hash: word(8),
            seq: word(16),
        });
    }
    Ok(())
}

/// Sequential reader over one segment's frames.
struct SegmentReader {
    path: PathBuf,
    reader: BufReader<File>,
    remaining: u64,
    kinds: [bool; 4],
    buf: Vec<u8>,
}

struct Frame {
    ts: i64,
    seq: u64,
    kind: Kind,
    payload: Vec<u8>,
}

impl SegmentReader {
    fn open(path: &Path, kinds: [bool; 4]) -> Result<Self> {
        let (mut f, _, n, _) = open_with_footer(path)?;
        f.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
        let mut reader = BufReader::with_capacity(1 << 20, f);
        let mut magic = [0u8; 8];
        reader.read_exact(&mut magic).map_err(io_err(path))?;
        if &magic != MAGIC {
            return Err(corrupt(path, "not a winsignal event segment"));
        }
        Ok(SegmentReader {
            path: path.to_path_buf(),
            reader,
            remaining: n,
            kinds,
            buf: Vec::new(),
        })
    }

    /// Next frame of a wanted kind whose seq is not superseded.
    fn next_frame(&mut self, superseded: &HashSet<u64>) -> Result<Option<Frame>> {
        let mut header = [0u8; FRAME_HEADER];
        while self.remaining > 0 {
            self.remaining -= 1;
            self.reader
                .read_exact(&mut header)
                .map_err(io_err(&self.path))?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let code = header[4];
            let ts = i64::from_le_bytes(
                header[5..13]
                    .try_into()
                    .map_err(|_| corrupt(&self.path, "frame"))?,
            );
            let seq = u64::from_le_bytes(
                header[13..21]
                    .try_into()
                    .map_err(|_| corrupt(&self.path, "frame"))?,
            );
            let kind = kind_of_code(code)
                .ok_or_else(|| corrupt(&self.path, format!("unknown kind code {code}")))?;
            if !self.kinds[code as usize] || superseded.contains(&seq) {
                self.reader
                    .seek_relative(len as i64)
                    .map_err(io_err(&self.path))?;
                continue;
            }
            self.buf.resize(len, 0);
            self.reader
                .read_exact(&mut self.buf)
                .map_err(io_err(&self.path))?;
            return Ok(Some(Frame {
                ts,
                seq,
                kind,
                payload: std::mem::take(&mut self.buf),
            }));
        }
        Ok(None)
    }
}

fn decode(path: &Path, frame: Frame) -> Result<StoredEvent> {
    let p: Payload =
        postcard::from_bytes(&frame.payload).map_err(|e| corrupt(path, e.to_string()))?;
    let record = match (frame.kind, p.body) {
        (Kind::Activities, EventBody::Activity(a)) => Record::Activities(a),
        (Kind::ProductEvents, EventBody::Product(e)) => Record::ProductEvents(e),
        (Kind::MarketingTouches, EventBody::Touch(t)) => Record::MarketingTouches(t),
        _ => return Err(corrupt(path, "frame kind does not match its payload")),
    };
    Ok(StoredEvent {
        seq: frame.seq,
        ts: Ts(frame.ts),
        key: p.key,
        origin: RowOrigin {
            load_id: p.load_id,
            line: p.line,
            source_record_id: p.source_record_id,
        },
        content_hash: p.content_hash,
        record,
    })
}

/// Merges many segments into one stream in (ts, seq) order.
pub(crate) struct MergedEvents {
    readers: Vec<SegmentReader>,
    heads: Vec<Option<Frame>>,
    heap: BinaryHeap<Reverse<(i64, u64, usize)>>,
    superseded: HashSet<u64>,
    failed: bool,
}

impl MergedEvents {
    pub fn open(paths: &[PathBuf], kinds: &[Kind], superseded: HashSet<u64>) -> Result<Self> {
        let mut wanted = [false; 4];
        for k in kinds {
            wanted[kind_code(*k) as usize] = true;
        }
        wanted[0] = false;
        let mut me = MergedEvents {
            readers: Vec::with_capacity(paths.len()),
            heads: Vec::new(),
            heap: BinaryHeap::new(),
            superseded,
            failed: false,
        };
        for p in paths {
            me.readers.push(SegmentReader::open(p, wanted)?);
        }
        for i in 0..me.readers.len() {
            let head = me.readers[i].next_frame(&me.superseded)?;
            if let Some(f) = &head {
                me.heap.push(Reverse((f.ts, f.seq, i)));
            }
            me.heads.push(head);
        }
        Ok(me)
    }

    fn advance(&mut self) -> Result<Option<StoredEvent>> {
        let Some(Reverse((_, _, i))) = self.heap.pop() else {
            return Ok(None);
        };
        let frame = self.heads[i]
            .take()
            .ok_or_else(|| StoreError::Internal("merge head missing".into()))?;
        let next = self.readers[i].next_frame(&self.superseded)?;
        if let Some(f) = &next {
            self.heap.push(Reverse((f.ts, f.seq, i)));
        }
        self.heads[i] = next;
        decode(&self.readers[i].path, frame).map(Some)
    }
}

impl Iterator for MergedEvents {
    type Item = Result<StoredEvent>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.advance() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
