//! Event segments: immutable files of events sorted by (time, arrival), read back by a k-way merge.
//!
//! Layout (format 2, magic `WSSEG002`, the only one written), all integers little-endian:
//!
//! ```text
//! MAGIC
//! block*          [u32 body_len][u32 n_frames][u64 block_checksum][body_len bytes of frames]
//!   frame           [u32 len][u8 kind][i64 ts][u64 seq][len bytes of postcard payload]
//! key block       n_events × [u64 key_hash][u64 content_hash][u64 seq]
//! footer          [u64 n_events][u64 key_block_offset][u64 key_block_checksum][u64 footer_checksum][MAGIC]
//! ```
//!
//! The frame header lets a reader skip kinds and superseded events without decoding them. The key block
//! is what ingest needs to deduplicate without decoding events.
//!
//! Every byte is covered by a check, so a damaged segment is an error, never a different answer:
//! - a block's checksum is `xxh3_64_with_seed(frames, seed = body_len << 32 | n_frames)`, so it covers
//!   the block's own header too; a reader reads a whole block (about 64 KiB of frames), verifies it and
//!   only then hands out anything from it;
//! - the key block's checksum, `xxh3_64(key block)`, is in the footer and is verified before a key is
//!   used;
//! - the footer's checksum is `xxh3_64` of the footer's first 24 bytes, and both magics must match.
//!
//! xxh3 hashes many GB/s, so verifying costs little next to decoding (BENCHMARKS.md, "Checksums").
//!
//! Format 1 (magic `WSSEG001`, written before 2026-12-05) is still read, unverified, as it always was:
//! `MAGIC`, the frames back to back with no blocks, the same key block, then the footer
//! `[u64 n_events][u64 key_block_offset][MAGIC]`. Only format 2 is written, so a workspace's old segments
//! are checked again once they are rewritten; nothing rewrites them today.

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
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed, Xxh3};

use crate::error::{io_err, Result, StoreError};
use crate::{RowOrigin, StoredEvent};

/// The format written: frames in checksummed blocks, a checksummed key block and footer.
const MAGIC: &[u8; 8] = b"WSSEG002";
/// The first format: no checksums; read, never written.
const MAGIC_V1: &[u8; 8] = b"WSSEG001";
const FRAME_HEADER: usize = 4 + 1 + 8 + 8;
const BLOCK_HEADER: usize = 4 + 4 + 8;
const KEY_ENTRY: u64 = 24;
const FOOTER: usize = 8 + 8 + 8 + 8 + 8;
const FOOTER_V1: usize = 8 + 8 + 8;
/// A block is closed before a frame would take it past this many bytes (a larger frame gets a block of
/// its own): small enough that a merge over many segments holds little, large enough that the per-block
/// work (a read, a hash set-up) vanishes.
const BLOCK_TARGET_BYTES: usize = 64 << 10;

/// The seed of a block's checksum: the block header's own fields, so that a damaged header fails too.
fn block_seed(body_len: u32, n_frames: u32) -> u64 {
    (u64::from(body_len) << 32) | u64::from(n_frames)
}

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
    /// The block of frames being written, reused from one block and spill to the next.
    out_block: Vec<u8>,
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
        let mut block = std::mem::take(&mut self.out_block);
        block.clear();
        let mut n_in_block = 0u32;
        let mut header = [0u8; FRAME_HEADER];
        for &(ts, seq, at, start, end) in &self.frames {
            let bytes = &self.blocks[at as usize][start as usize..end as usize];
            let payload = &bytes[1..];
            if !block.is_empty() && block.len() + FRAME_HEADER + payload.len() > BLOCK_TARGET_BYTES
            {
                key_offset += write_block(&mut w, path, &block, n_in_block)?;
                block.clear();
                n_in_block = 0;
            }
            let len = u32::try_from(payload.len())
                .map_err(|_| StoreError::Internal("an event over 4 GiB".into()))?;
            header[0..4].copy_from_slice(&len.to_le_bytes());
            header[4] = bytes[0];
            header[5..13].copy_from_slice(&ts.to_le_bytes());
            header[13..21].copy_from_slice(&seq.to_le_bytes());
            block.extend_from_slice(&header);
            block.extend_from_slice(payload);
            n_in_block += 1;
        }
        if !block.is_empty() {
            key_offset += write_block(&mut w, path, &block, n_in_block)?;
        }
        self.out_block = block;
        let mut keys = Xxh3::new();
        let mut entry = [0u8; KEY_ENTRY as usize];
        for k in &self.keys {
            entry[0..8].copy_from_slice(&k.key_hash.to_le_bytes());
            entry[8..16].copy_from_slice(&k.content_hash.to_le_bytes());
            entry[16..24].copy_from_slice(&k.seq.to_le_bytes());
            keys.update(&entry);
            write(&mut w, &entry)?;
        }
        let n = self.frames.len() as u64;
        let mut footer = [0u8; FOOTER];
        footer[0..8].copy_from_slice(&n.to_le_bytes());
        footer[8..16].copy_from_slice(&key_offset.to_le_bytes());
        footer[16..24].copy_from_slice(&keys.digest().to_le_bytes());
        let footer_checksum = xxh3_64(&footer[0..24]);
        footer[24..32].copy_from_slice(&footer_checksum.to_le_bytes());
        footer[32..40].copy_from_slice(MAGIC);
        write(&mut w, &footer)?;
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

/// Writes one block of frames with its header and checksum; returns the bytes written.
fn write_block(w: &mut impl Write, path: &Path, body: &[u8], n_frames: u32) -> Result<u64> {
    let body_len = u32::try_from(body.len())
        .map_err(|_| StoreError::Internal("an event over 4 GiB".into()))?;
    let mut header = [0u8; BLOCK_HEADER];
    header[0..4].copy_from_slice(&body_len.to_le_bytes());
    header[4..8].copy_from_slice(&n_frames.to_le_bytes());
    let checksum = xxh3_64_with_seed(body, block_seed(body_len, n_frames));
    header[8..16].copy_from_slice(&checksum.to_le_bytes());
    w.write_all(&header).map_err(io_err(path))?;
    w.write_all(body).map_err(io_err(path))?;
    Ok((BLOCK_HEADER + body.len()) as u64)
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptSegment {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Which layout a segment file has (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `WSSEG001`: frames back to back, no checksums.
    Unchecked,
    /// `WSSEG002`: checksummed blocks of frames, key block and footer.
    Checked,
}

/// What a segment's footer says, verified when the format has checksums.
struct Footer {
    format: Format,
    n_events: u64,
    key_offset: u64,
    /// The key block's checksum (format 2 only).
    key_checksum: Option<u64>,
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Opens a segment and checks its magics and footer (its checksum, and that the key block fills the
/// space between the frames and the footer); the file is left positioned after the leading magic.
fn open_segment(path: &Path) -> Result<(File, Footer)> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let len = f.metadata().map_err(io_err(path))?.len();
    if len < (MAGIC.len() + FOOTER_V1) as u64 {
        return Err(corrupt(path, format!("too short ({len} bytes)")));
    }
    f.seek(SeekFrom::End(-(MAGIC.len() as i64)))
        .map_err(io_err(path))?;
    let mut magic = [0u8; 8];
    f.read_exact(&mut magic).map_err(io_err(path))?;
    let (format, footer_len) = match &magic {
        m if m == MAGIC => (Format::Checked, FOOTER),
        m if m == MAGIC_V1 => (Format::Unchecked, FOOTER_V1),
        _ => {
            return Err(corrupt(
                path,
                format!(
                    "the last 8 bytes (at byte {}) are not a segment footer's magic",
                    len - 8
                ),
            ))
        }
    };
    if len < (MAGIC.len() + footer_len) as u64 {
        return Err(corrupt(path, format!("too short ({len} bytes)")));
    }
    let footer_at = len - footer_len as u64;
    f.seek(SeekFrom::Start(footer_at)).map_err(io_err(path))?;
    let mut footer = [0u8; FOOTER];
    let footer = &mut footer[..footer_len];
    f.read_exact(footer).map_err(io_err(path))?;
    let key_checksum = match format {
        Format::Unchecked => None,
        Format::Checked => {
            if xxh3_64(&footer[0..24]) != u64_at(footer, 24) {
                return Err(corrupt(
                    path,
                    format!("the footer at byte {footer_at} fails its checksum"),
                ));
            }
            Some(u64_at(footer, 16))
        }
    };
    let n_events = u64_at(footer, 0);
    let key_offset = u64_at(footer, 8);
    let keys_fit = n_events
        .checked_mul(KEY_ENTRY)
        .and_then(|k| k.checked_add(key_offset))
        .is_some_and(|end| end == footer_at);
    if !keys_fit || key_offset < MAGIC.len() as u64 {
        return Err(corrupt(
            path,
            format!(
                "the footer's key block ({n_events} keys at byte {key_offset}) does not match the file length {len}"
            ),
        ));
    }
    f.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
    f.read_exact(&mut magic).map_err(io_err(path))?;
    if magic != footer[footer_len - 8..] {
        return Err(corrupt(
            path,
            "the magic at byte 0 does not match the footer's",
        ));
    }
    Ok((
        f,
        Footer {
            format,
            n_events,
            key_offset,
            key_checksum,
        },
    ))
}

/// Reads the key block of a segment, verified against the footer's checksum before any key is used.
pub(crate) fn read_keys(path: &Path, out: &mut Vec<KeyEntry>) -> Result<()> {
    let (mut f, footer) = open_segment(path)?;
    f.seek(SeekFrom::Start(footer.key_offset))
        .map_err(io_err(path))?;
    let n_bytes = usize::try_from(footer.n_events * KEY_ENTRY)
        .map_err(|_| corrupt(path, "the key block is too large for this machine"))?;
    let mut buf = vec![0u8; n_bytes];
    f.read_exact(&mut buf).map_err(io_err(path))?;
    if let Some(expected) = footer.key_checksum {
        if xxh3_64(&buf) != expected {
            return Err(corrupt(
                path,
                format!(
                    "the key block at byte {} fails its checksum",
                    footer.key_offset
                ),
            ));
        }
    }
    out.reserve(footer.n_events as usize);
    for c in buf.chunks_exact(KEY_ENTRY as usize) {
        out.push(KeyEntry {
            key_hash: u64_at(c, 0),
            content_hash: u64_at(c, 8),
            seq: u64_at(c, 16),
        });
    }
    Ok(())
}

/// Sequential reader over one segment's frames.
struct SegmentReader {
    path: PathBuf,
    reader: BufReader<File>,
    format: Format,
    /// Frames the footer says the segment holds, and how many have been read.
    n_events: u64,
    frames_read: u64,
    /// Offset of the next byte to read, and of the end of the frames (the key block).
    pos: u64,
    frames_end: u64,
    kinds: [bool; 4],
    /// Format 2: the verified block being read, where its next unread byte is, its frames left and
    /// where it starts in the file.
    block: Vec<u8>,
    cursor: usize,
    block_frames_left: u32,
    block_at: u64,
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

/// A frame header's (len, kind code, ts, seq).
fn parse_frame_header(header: &[u8]) -> (usize, u8, i64, u64) {
    (
        u32_at(header, 0) as usize,
        header[4],
        u64_at(header, 5) as i64,
        u64_at(header, 13),
    )
}

impl SegmentReader {
    fn open(path: &Path, kinds: [bool; 4]) -> Result<Self> {
        let (f, footer) = open_segment(path)?;
        // Format 2 reads whole blocks straight into the block buffer (the kernel's read-ahead buffers
        // the file); format 1 reads a frame header at a time, which wants a buffer.
        let capacity = match footer.format {
            Format::Checked => 0,
            Format::Unchecked => 1 << 20,
        };
        let reader = BufReader::with_capacity(capacity, f);
        Ok(SegmentReader {
            path: path.to_path_buf(),
            reader,
            format: footer.format,
            n_events: footer.n_events,
            frames_read: 0,
            pos: MAGIC.len() as u64,
            frames_end: footer.key_offset,
            kinds,
            block: Vec::new(),
            cursor: 0,
            block_frames_left: 0,
            block_at: 0,
        })
    }

    /// Reads up to the payload of the next frame of a wanted kind whose seq is not superseded, and
    /// returns its (time, seq, kind, payload length); [`SegmentReader::take_payload`] reads the payload.
    fn next_header(&mut self, superseded: &U64Set) -> Result<Option<(i64, u64, Kind, usize)>> {
        match self.format {
            Format::Checked => self.next_header_checked(superseded),
            Format::Unchecked => self.next_header_unchecked(superseded),
        }
    }

    fn wanted(&self, code: u8, seq: u64, superseded: &U64Set) -> bool {
        self.kinds[code as usize] && (superseded.is_empty() || !superseded.contains(&seq))
    }

    fn next_header_checked(
        &mut self,
        superseded: &U64Set,
    ) -> Result<Option<(i64, u64, Kind, usize)>> {
        loop {
            if self.block_frames_left == 0 {
                if self.cursor != self.block.len() {
                    return Err(corrupt(
                        &self.path,
                        format!(
                            "the block at byte {} holds bytes after its last frame",
                            self.block_at
                        ),
                    ));
                }
                if !self.next_block()? {
                    return Ok(None);
                }
                continue;
            }
            self.block_frames_left -= 1;
            let at = self.cursor;
            let Some(header) = self.block.get(at..at + FRAME_HEADER) else {
                return Err(self.frame_overruns(at));
            };
            let (len, code, ts, seq) = parse_frame_header(header);
            let payload_end = at + FRAME_HEADER + len;
            if payload_end > self.block.len() {
                return Err(self.frame_overruns(at));
            }
            let kind = kind_of_code(code).ok_or_else(|| {
                corrupt(
                    &self.path,
                    format!(
                        "unknown kind code {code} in the frame at byte {}",
                        self.block_at + (BLOCK_HEADER + at) as u64
                    ),
                )
            })?;
            self.frames_read += 1;
            if !self.wanted(code, seq, superseded) {
                self.cursor = payload_end;
                continue;
            }
            self.cursor = at + FRAME_HEADER;
            return Ok(Some((ts, seq, kind, len)));
        }
    }

    fn frame_overruns(&self, at: usize) -> StoreError {
        corrupt(
            &self.path,
            format!(
                "the frame at byte {} runs past the end of its block",
                self.block_at + (BLOCK_HEADER + at) as u64
            ),
        )
    }

    /// Reads the next block of frames and verifies it; false at the end of the frames.
    fn next_block(&mut self) -> Result<bool> {
        if self.pos == self.frames_end {
            if self.frames_read != self.n_events {
                return Err(corrupt(
                    &self.path,
                    format!(
                        "the footer counts {} events, the blocks hold {}",
                        self.n_events, self.frames_read
                    ),
                ));
            }
            return Ok(false);
        }
        let at = self.pos;
        let past_end = || {
            corrupt(
                &self.path,
                format!(
                    "the block at byte {at} runs past the end of the frames (byte {})",
                    self.frames_end
                ),
            )
        };
        if at + BLOCK_HEADER as u64 > self.frames_end {
            return Err(past_end());
        }
        let mut header = [0u8; BLOCK_HEADER];
        self.reader
            .read_exact(&mut header)
            .map_err(io_err(&self.path))?;
        let body_len = u32_at(&header, 0);
        let n_frames = u32_at(&header, 4);
        let checksum = u64_at(&header, 8);
        let end = at + (BLOCK_HEADER as u64) + u64::from(body_len);
        if end > self.frames_end {
            return Err(past_end());
        }
        self.block.clear();
        self.block.resize(body_len as usize, 0);
        self.reader
            .read_exact(&mut self.block)
            .map_err(io_err(&self.path))?;
        if xxh3_64_with_seed(&self.block, block_seed(body_len, n_frames)) != checksum {
            self.block.clear();
            return Err(corrupt(
                &self.path,
                format!("the block of frames at byte {at} fails its checksum"),
            ));
        }
        self.pos = end;
        self.block_at = at;
        self.cursor = 0;
        self.block_frames_left = n_frames;
        Ok(true)
    }

    /// Format 1: frame headers read one by one from the file, unverified.
    fn next_header_unchecked(
        &mut self,
        superseded: &U64Set,
    ) -> Result<Option<(i64, u64, Kind, usize)>> {
        let mut header = [0u8; FRAME_HEADER];
        while self.frames_read < self.n_events {
            self.frames_read += 1;
            self.reader
                .read_exact(&mut header)
                .map_err(io_err(&self.path))?;
            let (len, code, ts, seq) = parse_frame_header(&header);
            let kind = kind_of_code(code)
                .ok_or_else(|| corrupt(&self.path, format!("unknown kind code {code}")))?;
            self.pos += (FRAME_HEADER + len) as u64;
            if self.pos > self.frames_end {
                return Err(corrupt(
                    &self.path,
                    format!("a frame of {len} bytes runs past the end of the frames"),
                ));
            }
            if !self.wanted(code, seq, superseded) {
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
        match self.format {
            Format::Checked => {
                // `next_header_checked` checked that the payload lies inside the block.
                let payload = self
                    .block
                    .get(self.cursor..self.cursor + len)
                    .ok_or_else(|| self.frame_overruns(self.cursor.saturating_sub(FRAME_HEADER)))?;
                out.extend_from_slice(payload);
                self.cursor += len;
                Ok(())
            }
            Format::Unchecked => {
                let start = out.len();
                out.resize(start + len, 0);
                self.reader
                    .read_exact(&mut out[start..])
                    .map_err(io_err(&self.path))
            }
        }
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
