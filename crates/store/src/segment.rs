//! Event segments: immutable files of events sorted by (time, arrival), read back by a k-way merge.
//!
//! Layout: `MAGIC`, then frames `[u32 len][u8 kind][i64 ts][u64 seq][len bytes of postcard payload]`,
//! then a key block of `(key_hash, content_hash, seq)` triples (what ingest needs to deduplicate
//! without decoding events), then a footer `[u64 n_events][u64 key_block_offset][MAGIC]`.
//! The frame header lets a reader skip kinds and superseded events without decoding them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use winsignal_core::hash::U64Set;
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
    source_record_id: Option<&'a str>,
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

/// Pending bytes are kept in blocks of this size: appending never moves what is already there, and
/// the blocks are reused from one spill to the next (fresh memory costs a page fault per 4 KiB).
const BLOCK_BYTES: usize = 4 << 20;

/// Where one pending event's bytes are: (time, seq, block, start, end); the bytes are the kind code
/// followed by the payload.
type PendingFrame = (i64, u64, u32, u32, u32);

/// Events of one batch waiting to be written, already encoded.
#[derive(Default)]
pub(crate) struct PendingEvents {
    frames: Vec<PendingFrame>,
    keys: Vec<KeyEntry>,
    blocks: Vec<Vec<u8>>,
    /// The block being filled; blocks after it are empty, kept for reuse.
    current: usize,
    used_bytes: usize,
    head: Vec<u8>,
}

impl PendingEvents {
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn approx_bytes(&self) -> usize {
        self.used_bytes + self.frames.len() * 56
    }

    /// A block with room for `n` more bytes, chosen without moving any block's contents.
    fn block_for(&mut self, n: usize) -> usize {
        if let Some(block) = self.blocks.get(self.current) {
            if block.capacity() - block.len() >= n {
                return self.current;
            }
            self.current += 1;
        }
        while let Some(block) = self.blocks.get(self.current) {
            if block.capacity() >= n {
                return self.current;
            }
            self.current += 1;
        }
        self.blocks.push(Vec::with_capacity(n.max(BLOCK_BYTES)));
        self.current = self.blocks.len() - 1;
        self.current
    }

    /// Encodes an event record's canonical body into `scratch` (replacing what it held) and returns its
    /// kind, time and content hash.
    pub fn encode_body(record: &Record, scratch: &mut Vec<u8>) -> Result<(Kind, Ts, u64)> {
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
        let mut buf = std::mem::take(scratch);
        buf.clear();
        *scratch =
            postcard::to_extend(&body, buf).map_err(|e| StoreError::Internal(e.to_string()))?;
        let content_hash = winsignal_core::hash::hash_bytes(scratch);
        Ok((kind, ts, content_hash))
    }

    /// Appends one event: its frame is the provenance head followed by the body bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn push_event(
        &mut self,
        kind: Kind,
        ts: Ts,
        seq: u64,
        key: &str,
        load_id: u64,
        line: u64,
        source_record_id: Option<&str>,
        body: &[u8],
        entry: KeyEntry,
    ) -> Result<()> {
        let head = PayloadHead {
            key,
            load_id,
            line,
            source_record_id,
            content_hash: entry.content_hash,
        };
        let mut head_bytes = std::mem::take(&mut self.head);
        head_bytes.clear();
        head_bytes.push(kind_code(kind));
        self.head = postcard::to_extend(&head, head_bytes)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let n = self.head.len() + body.len();
        let at = self.block_for(n);
        let block = &mut self.blocks[at];
        let start = block.len();
        block.extend_from_slice(&self.head);
        block.extend_from_slice(body);
        let too_big = || StoreError::Internal("an event over 4 GiB".into());
        self.frames.push((
            ts.0,
            seq,
            u32::try_from(at).map_err(|_| too_big())?,
            u32::try_from(start).map_err(|_| too_big())?,
            u32::try_from(block.len()).map_err(|_| too_big())?,
        ));
        self.used_bytes += n;
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
        let mut header = [0u8; FRAME_HEADER];
        for &(ts, seq, block, start, end) in &self.frames {
            let bytes = &self.blocks[block as usize][start as usize..end as usize];
            let payload = &bytes[1..];
            header[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
            header[4] = bytes[0];
            header[5..13].copy_from_slice(&ts.to_le_bytes());
            header[13..21].copy_from_slice(&seq.to_le_bytes());
            write(&mut w, &header)?;
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
        // Kept allocated for the next spill: growing fresh buffers again costs page faults and copies.
        self.frames.clear();
        self.keys.clear();
        for block in &mut self.blocks {
            block.clear();
        }
        self.current = 0;
        self.used_bytes = 0;
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
    /// Offset of the next byte to read, and of the end of the frames (the key block).
    pos: u64,
    frames_end: u64,
    kinds: [bool; 4],
}

/// Where a frame sits in a [`RawBatch`], and what its header said.
struct RawFrame {
    ts: i64,
    seq: u64,
    kind: Kind,
    segment: u32,
    start: usize,
    end: usize,
}

/// Frames in merged order with their payloads back to back, waiting to be decoded.
#[derive(Default)]
struct RawBatch {
    bytes: Vec<u8>,
    frames: Vec<RawFrame>,
}

impl SegmentReader {
    fn open(path: &Path, kinds: [bool; 4]) -> Result<Self> {
        let (mut f, _, n, key_offset) = open_with_footer(path)?;
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
            pos: MAGIC.len() as u64,
            frames_end: key_offset,
            kinds,
        })
    }

    /// Reads up to the payload of the next frame of a wanted kind whose seq is not superseded, and
    /// returns its (time, seq, kind, payload length); [`SegmentReader::take_payload`] reads the payload.
    fn next_header(&mut self, superseded: &U64Set) -> Result<Option<(i64, u64, Kind, usize)>> {
        let mut header = [0u8; FRAME_HEADER];
        while self.remaining > 0 {
            self.remaining -= 1;
            self.reader
                .read_exact(&mut header)
                .map_err(io_err(&self.path))?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let code = header[4];
            let mut word = [0u8; 8];
            word.copy_from_slice(&header[5..13]);
            let ts = i64::from_le_bytes(word);
            word.copy_from_slice(&header[13..21]);
            let seq = u64::from_le_bytes(word);
            let kind = kind_of_code(code)
                .ok_or_else(|| corrupt(&self.path, format!("unknown kind code {code}")))?;
            self.pos += (FRAME_HEADER + len) as u64;
            if self.pos > self.frames_end {
                return Err(corrupt(
                    &self.path,
                    format!("a frame of {len} bytes runs past the end of the frames"),
                ));
            }
            if !self.kinds[code as usize] || (!superseded.is_empty() && superseded.contains(&seq)) {
                self.reader
                    .seek_relative(len as i64)
                    .map_err(io_err(&self.path))?;
                continue;
            }
            return Ok(Some((ts, seq, kind, len)));
        }
        Ok(None)
    }

    /// Appends the payload of the frame whose header was just read to `out`.
    fn take_payload(&mut self, len: usize, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start + len, 0);
        self.reader
            .read_exact(&mut out[start..])
            .map_err(io_err(&self.path))
    }
}

/// Decodes one frame's payload.
fn decode(path: &Path, frame: &RawFrame, payload: &[u8]) -> Result<StoredEvent> {
    let p: Payload = postcard::from_bytes(payload).map_err(|e| corrupt(path, e.to_string()))?;
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

/// Merges many segments' frames into (ts, seq) order, without decoding them.
struct FrameMerge {
    readers: Vec<SegmentReader>,
    /// The next frame of each segment with one left: (time, seq, segment, kind, payload length); its
    /// payload is the next thing its reader reads.
    heap: BinaryHeap<Reverse<(i64, u64, usize, Kind, usize)>>,
    superseded: U64Set,
}

impl FrameMerge {
    fn open(paths: &[PathBuf], kinds: &[Kind], superseded: U64Set) -> Result<Self> {
        let mut wanted = [false; 4];
        for k in kinds {
            wanted[kind_code(*k) as usize] = true;
        }
        wanted[0] = false;
        let mut me = FrameMerge {
            readers: Vec::with_capacity(paths.len()),
            heap: BinaryHeap::new(),
            superseded,
        };
        for (i, p) in paths.iter().enumerate() {
            let mut reader = SegmentReader::open(p, wanted)?;
            if let Some((ts, seq, kind, len)) = reader.next_header(&me.superseded)? {
                me.heap.push(Reverse((ts, seq, i, kind, len)));
            }
            me.readers.push(reader);
        }
        Ok(me)
    }

    /// Moves up to `n` frames, in order, into `batch`; returns how many.
    fn fill(&mut self, batch: &mut RawBatch, n: usize) -> Result<usize> {
        let mut moved = 0;
        while moved < n {
            let Some(mut top) = self.heap.peek_mut() else {
                break;
            };
            let Reverse((ts, seq, i, kind, len)) = *top;
            let reader = &mut self.readers[i];
            let start = batch.bytes.len();
            reader.take_payload(len, &mut batch.bytes)?;
            batch.frames.push(RawFrame {
                ts,
                seq,
                kind,
                segment: i as u32,
                start,
                end: batch.bytes.len(),
            });
            // Replacing the top sifts once; a pop and a push would sift twice.
            match reader.next_header(&self.superseded)? {
                Some((ts, seq, kind, len)) => *top = Reverse((ts, seq, i, kind, len)),
                None => {
                    std::collections::binary_heap::PeekMut::pop(top);
                }
            }
            moved += 1;
        }
        Ok(moved)
    }
}

/// Frames per batch handed from the merging thread to a decoding thread.
const DECODE_BATCH: usize = 2048;

enum Job {
    Decode(RawBatch),
    Fail(StoreError),
    End,
}

enum Decoded {
    Events(Vec<StoredEvent>),
    Fail(StoreError),
    End,
}

/// Events of many segments in (ts, seq) order. One thread reads and merges the frames; decoding, the
/// bulk of the work, is spread over worker threads that take batches in turn, and the batches are
/// handed out in the order they were merged, so the stream is exactly the sequential merge.
pub(crate) struct MergedEvents {
    outputs: Vec<Receiver<Decoded>>,
    /// Where emptied event vectors go back to, one per slot (each decoding thread, then the merging one).
    spent: Vec<SyncSender<Vec<StoredEvent>>>,
    next_output: usize,
    /// The batch being handed out, last event first; and the worker it came from.
    current: Vec<StoredEvent>,
    current_from: usize,
    finished: bool,
}

fn spawn_err(e: std::io::Error) -> StoreError {
    StoreError::Internal(format!("cannot start an event reader thread: {e}"))
}

/// Decodes batches for one output slot.
struct Decoder {
    paths: Arc<Vec<PathBuf>>,
    /// Event vectors the reader has emptied, back for reuse.
    spent: Receiver<Vec<StoredEvent>>,
}

impl Decoder {
    /// Decodes a batch and empties it for reuse.
    fn decode(&self, batch: &mut RawBatch) -> Decoded {
        // Last event first, so that the reader pops them off the end in order and can hand the
        // emptied vector back.
        let mut events = self
            .spent
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(DECODE_BATCH));
        let decoded = batch.frames.iter().rev().try_for_each(|f| {
            events.push(decode(
                &self.paths[f.segment as usize],
                f,
                &batch.bytes[f.start..f.end],
            )?);
            Ok(())
        });
        batch.bytes.clear();
        batch.frames.clear();
        match decoded {
            Ok(()) => Decoded::Events(events),
            Err(e) => Decoded::Fail(e),
        }
    }
}

impl MergedEvents {
    pub fn open(paths: &[PathBuf], kinds: &[Kind], superseded: U64Set) -> Result<Self> {
        let mut merge = FrameMerge::open(paths, kinds, superseded)?;
        let paths: Arc<Vec<PathBuf>> = Arc::new(paths.to_vec());
        // Batches go round the slots in turn: one per decoding thread, and a last one for the merging
        // thread itself, which decodes a share so that no core waits on another.
        let workers = std::thread::available_parallelism().map_or(1, |n| (n.get() - 1).clamp(1, 3));
        let mut inputs = Vec::with_capacity(workers);
        let mut outputs = Vec::with_capacity(workers + 1);
        let mut spent_vecs = Vec::with_capacity(workers + 1);
        let decoder = |spent_vecs: &mut Vec<SyncSender<Vec<StoredEvent>>>| {
            let (spent_tx, spent) = sync_channel::<Vec<StoredEvent>>(4);
            spent_vecs.push(spent_tx);
            Decoder {
                paths: Arc::clone(&paths),
                spent,
            }
        };
        // Raw buffers decoded elsewhere go back to the merging thread, sparing fresh allocations.
        let (recycle, reuse) = sync_channel::<RawBatch>(2 * workers + 2);
        for w in 0..workers {
            let (job_tx, job_rx) = sync_channel::<Job>(2);
            let (out_tx, out_rx) = sync_channel::<Decoded>(2);
            let decoder = decoder(&mut spent_vecs);
            let recycle = recycle.clone();
            std::thread::Builder::new()
                .name(format!("winsignal-decode-{w}"))
                .spawn(move || {
                    for job in job_rx {
                        let out = match job {
                            Job::Decode(mut batch) => {
                                let out = decoder.decode(&mut batch);
                                let _ = recycle.try_send(batch);
                                out
                            }
                            Job::Fail(e) => Decoded::Fail(e),
                            Job::End => Decoded::End,
                        };
                        if out_tx.send(out).is_err() {
                            return;
                        }
                    }
                })
                .map_err(spawn_err)?;
            inputs.push(job_tx);
            outputs.push(out_rx);
        }
        drop(recycle);
        let own = decoder(&mut spent_vecs);
        let (own_tx, own_rx) = sync_channel::<Decoded>(2);
        outputs.push(own_rx);
        std::thread::Builder::new()
            .name("winsignal-merge".into())
            .spawn(move || {
                let mut turn = 0;
                let mut own_batch = RawBatch::default();
                loop {
                    let mine = turn == inputs.len();
                    let mut batch = if mine {
                        std::mem::take(&mut own_batch)
                    } else {
                        reuse.try_recv().unwrap_or_default()
                    };
                    let job = match merge.fill(&mut batch, DECODE_BATCH) {
                        Ok(0) => Job::End,
                        Ok(_) => Job::Decode(batch),
                        Err(e) => Job::Fail(e),
                    };
                    let last = !matches!(job, Job::Decode(_));
                    // A closed channel means the reader was dropped: stop quietly.
                    let sent = if mine {
                        let out = match job {
                            Job::Decode(mut batch) => {
                                let out = own.decode(&mut batch);
                                own_batch = batch;
                                out
                            }
                            Job::Fail(e) => Decoded::Fail(e),
                            Job::End => Decoded::End,
                        };
                        own_tx.send(out).is_ok()
                    } else {
                        inputs[turn].send(job).is_ok()
                    };
                    if !sent || last {
                        return;
                    }
                    turn = (turn + 1) % (inputs.len() + 1);
                }
            })
            .map_err(spawn_err)?;
        Ok(MergedEvents {
            outputs,
            spent: spent_vecs,
            next_output: 0,
            current: Vec::new(),
            current_from: 0,
            finished: false,
        })
    }
}

impl Iterator for MergedEvents {
    type Item = Result<StoredEvent>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.current.pop() {
                return Some(Ok(e));
            }
            if self.finished {
                return None;
            }
            if self.current.capacity() > 0 {
                let _ = self.spent[self.current_from].try_send(std::mem::take(&mut self.current));
            }
            self.current_from = self.next_output;
            let got = self.outputs[self.next_output].recv();
            self.next_output = (self.next_output + 1) % self.outputs.len();
            match got {
                Ok(Decoded::Events(events)) => self.current = events,
                Ok(Decoded::End) => self.finished = true,
                Ok(Decoded::Fail(e)) => {
                    self.finished = true;
                    return Some(Err(e));
                }
                Err(_) => {
                    self.finished = true;
                    return Some(Err(StoreError::Internal(
                        "an event reader thread stopped before the end of the log".into(),
                    )));
                }
            }
        }
    }
}
