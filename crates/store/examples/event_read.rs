//! Measures what the replay in the features engine depends on: reading N events back in event-time
//! order from the embedded store's segment log, against the obvious alternative of a SQLite table
//! clustered by (ts, seq). Both decode every event. Used for docs/decisions/0001-embedded-store.md.
//!
//!     cargo run --release -p winsignal-store --example event_read -- 10000000 /tmp/event-read
//!     cargo run --release -p winsignal-store --example event_read -- 10000000 /tmp/event-read log-only
//!     cargo run --release -p winsignal-store --example event_read -- 10000000 /tmp/event-read read-only
//!
//! `log-only` skips SQLite; `read-only` reads the segment log an earlier run left in the directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use winsignal_core::rng::Rng;
use winsignal_core::{Kind, ProductEvent, Record, Ts};
use winsignal_store::{EmbeddedStore, LoadSpec, LoadStats, Store, StoreRead};

/// The same allocator as the `winsignal` binary, so the figures are what users get.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn event(rng: &mut Rng, i: u64) -> ProductEvent {
    let start = Ts::from_ymd(2024, 7, 1).unwrap().0;
    ProductEvent {
        event_id: Some(format!("evt-{i:010}")),
        occurred_at: Ts(start + rng.below(730 * 86_400_000) as i64),
        event: [
            "Report Created",
            "Dashboard Viewed",
            "Query Run",
            "User Invited",
        ][rng.below(4) as usize]
            .into(),
        user_id: Some(format!("u{}", rng.below(50_000))),
        user_email: None,
        account_id: Some(format!("ws_{:06}", rng.below(2_000))),
        account_domain: None,
        properties: None,
    }
}

/// Reads every product event of the log in time order, checking the order and the count; returns seconds.
fn read_log(store: &EmbeddedStore, n: u64) -> f64 {
    let t = Instant::now();
    let mut count = 0u64;
    let mut last = i64::MIN;
    for ev in store.events(&[Kind::ProductEvents]).unwrap() {
        let ev = ev.unwrap();
        assert!(ev.ts.0 >= last);
        last = ev.ts.0;
        count += 1;
    }
    let seconds = t.elapsed().as_secs_f64();
    assert_eq!(count, n);
    seconds
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args.get(1).map_or(10_000_000, |s| s.parse().expect("N"));
    let dir = PathBuf::from(args.get(2).map_or("/tmp/event-read", String::as_str));
    let mode = args.get(3).map_or("", String::as_str);
    if mode == "read-only" {
        let store = EmbeddedStore::open(&dir.join("ws")).unwrap();
        let read = read_log(&store, n);
        println!(
            "segment log: read {n} events in time order {read:.2} s ({:.1} M events/s)",
            n as f64 / read / 1e6
        );
        return;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let per_load = 2_000_000u64;
    let mut rng = Rng::new(1);

    // Segment log, written through the ordinary batch API in loads of 2M events.
    let store = EmbeddedStore::open(&dir.join("ws")).unwrap();
    let t = Instant::now();
    let mut i = 0;
    while i < n {
        let mut batch = store.begin().unwrap();
        let spec = LoadSpec {
            source: "bench".into(),
            format: "canonical".into(),
            path: "x".into(),
            file_hash: format!("{i}"),
            file_bytes: 0,
            identity: String::new(),
            recipe: Default::default(),
        };
        let load = batch.start_load(&spec).unwrap();
        for _ in 0..per_load.min(n - i) {
            batch
                .put(
                    load,
                    i + 2,
                    None,
                    &Record::ProductEvents(event(&mut rng, i)),
                )
                .unwrap();
            i += 1;
        }
        batch
            .finish_load(load, &[], &[Kind::ProductEvents], &LoadStats::default())
            .unwrap();
        batch.commit().unwrap();
    }
    let write_log = t.elapsed().as_secs_f64();
    let read_log = read_log(&store, n);
    println!("events: {n}");
    println!("segment log: write {write_log:.2} s, read in time order {read_log:.2} s ({:.1} M events/s)", n as f64 / read_log / 1e6);
    if mode == "log-only" {
        return;
    }

    // SQLite, clustered by (ts, seq), postcard payloads.
    let conn = rusqlite::Connection::open(dir.join("events.sqlite")).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE ev(ts INTEGER NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL, payload BLOB NOT NULL,
                         PRIMARY KEY(ts, seq)) WITHOUT ROWID;",
    )
    .unwrap();
    let mut rng = Rng::new(1);
    let t = Instant::now();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO ev(ts, seq, kind, payload) VALUES(?1, ?2, 2, ?3)")
            .unwrap();
        for i in 0..n {
            let e = event(&mut rng, i);
            let bytes = postcard::to_stdvec(&e).unwrap();
            stmt.execute(rusqlite::params![e.occurred_at.0, i as i64, bytes])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    let write_sqlite = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut stmt = conn
        .prepare("SELECT ts, seq, kind, payload FROM ev ORDER BY ts, seq")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut count = 0u64;
    while let Some(r) = rows.next().unwrap() {
        let blob: &[u8] = r.get_ref(3).unwrap().as_blob().unwrap();
        let e: ProductEvent = postcard::from_bytes(blob).unwrap();
        assert!(e.occurred_at.0 == r.get::<_, i64>(0).unwrap());
        count += 1;
    }
    let read_sqlite = t.elapsed().as_secs_f64();
    assert_eq!(count, n);
    println!("sqlite (ts,seq) clustered: write {write_sqlite:.2} s, read in time order {read_sqlite:.2} s ({:.1} M events/s)", n as f64 / read_sqlite / 1e6);
}
