//! Event segments carry checksums: a flipped bit anywhere in a segment file is an error naming the file,
//! never a different answer, both for the events read back in time order (the k-way merge replay uses)
//! and for the keys a later load deduplicates against. Segments of the first, unchecked format still read.
#![allow(clippy::unwrap_used)]

mod common;
use common::spec;
use std::path::{Path, PathBuf};

use winsignal_core::{
    Activity, ActivityType, Kind, MarketingTouch, ProductEvent, Record, TouchKind, Ts,
};
use winsignal_store::{EmbeddedStore, LoadStats, PutOutcome, Store, StoreError, StoredEvent};

const KINDS: [Kind; 3] = [
    Kind::Activities,
    Kind::ProductEvents,
    Kind::MarketingTouches,
];

fn activity(id: &str, ts: i64, subject: &str) -> Record {
    Record::Activities(Activity {
        activity_id: id.into(),
        activity_type: ActivityType::Email,
        direction: None,
        status: None,
        rep_id: Some("R7".into()),
        account_id: Some("A1".into()),
        opportunity_id: None,
        contact_ids: vec!["C1".into(), "C2".into()],
        occurred_at: Ts(ts),
        created_at: None,
        duration_s: Some(30.0),
        subject: Some(subject.into()),
    })
}

fn product_event(i: u64, ts: i64, properties_len: usize) -> Record {
    Record::ProductEvents(ProductEvent {
        event_id: Some(format!("evt-{i:06}")),
        occurred_at: Ts(ts),
        event: ["Export Downloaded", "Report Created", "Query Run"][(i % 3) as usize].into(),
        user_id: Some(format!("u{}", i % 17)),
        user_email: None,
        account_id: Some(format!("ws_{:03}", i % 5)),
        account_domain: None,
        properties: Some(format!("{{\"note\":\"{}\"}}", "x".repeat(properties_len))),
    })
}

fn touch(ts: i64, campaign: &str) -> Record {
    Record::MarketingTouches(MarketingTouch {
        touch_id: None,
        occurred_at: Ts(ts),
        kind: TouchKind::WebinarAttended,
        contact_id: Some("C1".into()),
        email: Some("ana@example.com".into()),
        account_id: Some("A1".into()),
        channel: Some("webinar".into()),
        campaign: Some(campaign.into()),
        url: None,
    })
}

// The helpers are generic over `Store` so that they read through the trait, whichever of its
// supertraits a method lives in.

/// Writes the records as one committed load.
fn load<S: Store>(store: &mut S, records: &[Record]) {
    let mut batch = store.begin().unwrap();
    let load = batch.start_load(&spec("events.csv")).unwrap();
    for (i, r) in records.iter().enumerate() {
        batch.put(load, i as u64 + 2, None, r).unwrap();
    }
    batch
        .finish_load(load, &[], &KINDS, &LoadStats::default())
        .unwrap();
    batch.commit().unwrap();
}

/// Every event of every kind in time order.
fn all_events<S: Store>(store: &S) -> Result<Vec<StoredEvent>, StoreError> {
    store.events(&KINDS)?.collect()
}

/// Every event of every kind in time order, as text: equal text is an equal answer.
fn read_events<S: Store>(store: &S) -> Result<String, StoreError> {
    Ok(format!("{:?}", all_events(store)?))
}

/// What loading the records again would do (which goes through the stored key blocks to deduplicate);
/// the batch is dropped, so nothing is written.
fn reload_outcomes<S: Store>(
    store: &mut S,
    records: &[Record],
) -> Result<Vec<PutOutcome>, StoreError> {
    let mut batch = store.begin()?;
    let load = batch.start_load(&spec("events.csv"))?;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| batch.put(load, i as u64 + 2, None, r))
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wsseg"))
        .collect();
    files.sort();
    files
}

/// A store with two loads of events of every kind (the second updates one activity, so a superseded
/// version sits in the first segment), and the records of both loads.
fn two_loads(dir: &Path) -> (EmbeddedStore, Vec<Record>) {
    let mut store = EmbeddedStore::open(dir).unwrap();
    let first = vec![
        activity("a3", 3_000, "Pricing call"),
        activity("a1", 1_000, "Intro"),
        product_event(1, 2_000, 10),
        product_event(2, 2_000, 0),
        touch(1_500, "Spring webinar"),
        activity("a2", 2_500, "Demo"),
    ];
    let second = vec![
        activity("a2", 2_600, "Demo, moved"),
        product_event(3, 500, 40),
        touch(4_000, "Autumn webinar"),
        activity("a4", 2_000, "Follow-up"),
    ];
    load(&mut store, &first);
    load(&mut store, &second);
    (store, [first, second].concat())
}

/// Flips each chosen bit of `file` in turn and checks that reading the events and deduplicating a
/// reload either fail on this file or answer exactly as before; returns how many flips each read caught.
fn flip_bits<S: Store>(
    store: &mut S,
    records: &[Record],
    file: &Path,
    bits: impl Iterator<Item = usize>,
) -> (usize, usize, usize) {
    let expected_events = read_events(store).unwrap();
    let expected_outcomes = reload_outcomes(store, records).unwrap();
    let original = std::fs::read(file).unwrap();
    let (mut n_flips, mut caught_by_read, mut caught_by_reload) = (0, 0, 0);
    let is_this_file =
        |e: &StoreError| matches!(e, StoreError::CorruptSegment { path, .. } if path == file);
    for bit in bits {
        let mut damaged = original.clone();
        damaged[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(file, &damaged).unwrap();
        n_flips += 1;
        let read = read_events(store);
        match &read {
            Ok(events) => assert!(
                *events == expected_events,
                "bit {bit} of {}: the events read back differ",
                file.display()
            ),
            Err(e) => {
                assert!(is_this_file(e), "bit {bit}: unexpected error {e}");
                caught_by_read += 1;
            }
        }
        let reload = reload_outcomes(store, records);
        match &reload {
            Ok(outcomes) => assert_eq!(
                *outcomes,
                expected_outcomes,
                "bit {bit} of {}: deduplication answers differently",
                file.display()
            ),
            Err(e) => {
                assert!(is_this_file(e), "bit {bit}: unexpected error {e}");
                caught_by_reload += 1;
            }
        }
        // Every byte of a segment is covered by a checksum or a magic, so some reader notices.
        assert!(
            read.is_err() || reload.is_err(),
            "bit {bit} of {} went unnoticed",
            file.display()
        );
    }
    std::fs::write(file, &original).unwrap();
    assert_eq!(read_events(store).unwrap(), expected_events);
    println!(
        "{}: {n_flips} bits flipped, {caught_by_read} caught reading the events, {caught_by_reload} deduplicating",
        file.display()
    );
    (n_flips, caught_by_read, caught_by_reload)
}

#[test]
fn every_bit_flip_in_a_segment_is_an_error_or_the_same_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, records) = two_loads(dir.path());
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 2);
    for file in &files {
        let n_bits = std::fs::metadata(file).unwrap().len() as usize * 8;
        let (n_flips, by_read, by_reload) = flip_bits(&mut store, &records, file, 0..n_bits);
        assert_eq!(n_flips, n_bits);
        // The frames are most of the file, the key block most of the rest: each reader has its share.
        assert!(by_read > n_bits / 2, "{by_read} of {n_bits}");
        assert!(
            by_reload > 0 && by_reload < n_bits / 2,
            "{by_reload} of {n_bits}"
        );
    }
}

/// The byte offsets of the block headers of a format-2 segment (see the module doc of `segment.rs`).
fn block_offsets(bytes: &[u8]) -> Vec<usize> {
    let footer = &bytes[bytes.len() - 40..];
    let key_offset = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
    let mut at = 8;
    let mut out = Vec::new();
    while at < key_offset {
        out.push(at);
        let body_len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 16 + body_len;
    }
    out
}

#[test]
fn bit_flips_in_a_segment_of_many_blocks_are_caught_at_every_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    // One event larger than a block, which gets a block of its own.
    let records: Vec<Record> = (0..900)
        .map(|i| product_event(i, ((i * 7_919) % 1_000) as i64, 200))
        .chain([product_event(900, 500, 100_000)])
        .collect();
    load(&mut store, &records);
    let files = segment_files(dir.path());
    let file = &files[0];
    let bytes = std::fs::read(file).unwrap();
    let blocks = block_offsets(&bytes);
    assert!(blocks.len() >= 4, "{} blocks", blocks.len());
    let n_bits = bytes.len() * 8;
    // Every bit of the first and last 128 bytes (magic, first block header and frames; key block tail,
    // footer), every bit of each block header and of 32 bytes on each side of it, and every 1021st bit.
    let mut bits: Vec<usize> = (0..128 * 8).chain(n_bits - 128 * 8..n_bits).collect();
    for &at in &blocks {
        bits.extend(at.saturating_sub(32) * 8..(at + 16 + 32) * 8);
    }
    bits.extend((0..n_bits).step_by(1021));
    bits.sort_unstable();
    bits.dedup();
    let (n_flips, by_read, by_reload) = flip_bits(&mut store, &records, file, bits.into_iter());
    assert!(n_flips > 3_000, "{n_flips} flips");
    assert!(by_read > 0 && by_reload > 0);
}

/// Rewrites a format-2 segment in the first format (no blocks, no checksums), as winsignal wrote
/// segments before checksums: `WSSEG001`, the frames back to back, the key block, then
/// `[u64 n_events][u64 key_block_offset][WSSEG001]`.
fn rewrite_as_format_1(file: &Path) {
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(&bytes[..8], b"WSSEG002");
    let footer = &bytes[bytes.len() - 40..];
    let n_events = u64::from_le_bytes(footer[0..8].try_into().unwrap());
    let key_offset = u64::from_le_bytes(footer[8..16].try_into().unwrap()) as usize;
    let mut out = b"WSSEG001".to_vec();
    for at in block_offsets(&bytes) {
        let body_len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.extend_from_slice(&bytes[at + 16..at + 16 + body_len]);
    }
    let new_key_offset = out.len() as u64;
    out.extend_from_slice(&bytes[key_offset..bytes.len() - 40]);
    out.extend_from_slice(&n_events.to_le_bytes());
    out.extend_from_slice(&new_key_offset.to_le_bytes());
    out.extend_from_slice(b"WSSEG001");
    std::fs::write(file, out).unwrap();
}

#[test]
fn segments_of_the_first_format_still_read_and_new_ones_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, records) = two_loads(dir.path());
    let expected_events = read_events(&store).unwrap();
    let expected_outcomes = reload_outcomes(&mut store, &records).unwrap();
    let files = segment_files(dir.path());
    for file in &files {
        rewrite_as_format_1(file);
    }
    assert_eq!(read_events(&store).unwrap(), expected_events);
    assert_eq!(
        reload_outcomes(&mut store, &records).unwrap(),
        expected_outcomes
    );
    // A load into a workspace of old segments writes the new format, and the merge reads both.
    load(&mut store, &[activity("a0", 100, "Cold email")]);
    let new_files: Vec<PathBuf> = segment_files(dir.path())
        .into_iter()
        .filter(|f| !files.contains(f))
        .collect();
    assert_eq!(new_files.len(), 1);
    assert_eq!(&std::fs::read(&new_files[0]).unwrap()[..8], b"WSSEG002");
    let events = all_events(&store).unwrap();
    assert_eq!(events.len(), 10);
    assert_eq!(events[0].key, "a0");
    assert!(events
        .windows(2)
        .all(|w| (w[0].ts, w[0].seq) <= (w[1].ts, w[1].seq)));
}
