//! The quality report counts what the store holds now: the refused rows of the latest load of each
//! source and file, also in a workspace written before every load kept its own refused rows.
#![allow(clippy::unwrap_used)]

use winsignal_core::Kind;
use winsignal_store::{EmbeddedStore, LoadSpec, LoadStats, QuarantinedRow, Store};

fn spec(path: &str) -> LoadSpec {
    LoadSpec {
        source: "canonical:accounts".into(),
        format: "canonical".into(),
        path: path.into(),
        file_hash: "f1".into(),
        file_bytes: 10,
        identity: String::new(),
        recipe: Default::default(),
    }
}

/// One load of `path` that refused one row, storing it or (as builds before this one did when a file
/// was loaded again byte for byte) only counting it.
fn load(store: &mut EmbeddedStore, path: &str, store_the_row: bool) {
    let mut batch = store.begin().unwrap();
    let load_id = batch.start_load(&spec(path)).unwrap();
    if store_the_row {
        batch
            .quarantine(&QuarantinedRow {
                load_id,
                line: 3,
                kind: Some(Kind::Accounts),
                record_id: Some("A2".into()),
                reasons: vec!["field `employees`: expected a number, found \"many\"".into()],
                raw: "A2,Beta,many".into(),
            })
            .unwrap();
    }
    let stats = LoadStats {
        rows_read: 2,
        accepted: 1,
        unchanged: 1,
        quarantined: 1,
        ..Default::default()
    };
    batch
        .finish_load(load_id, &[], &[Kind::Accounts], &stats)
        .unwrap();
    batch.commit().unwrap();
}

#[test]
fn a_file_loaded_again_by_an_older_build_counts_its_refused_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    load(&mut store, "accounts.csv", true);
    load(&mut store, "accounts.csv", false);
    load(&mut store, "accounts.csv", false);
    let q = winsignal_ingest::quality::report(&store).unwrap();
    assert_eq!((q.quarantine.total, q.quarantine.rows_read), (1, 2));
    assert_eq!(q.quarantine.examples.len(), 1);
    let current: Vec<bool> = q.loads.iter().map(|l| l.current).collect();
    assert_eq!(current, [false, false, true]);
}

#[test]
fn two_files_of_one_source_both_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    load(&mut store, "accounts-2024.csv", true);
    load(&mut store, "accounts-2025.csv", true);
    load(&mut store, "accounts-2025.csv", true);
    let q = winsignal_ingest::quality::report(&store).unwrap();
    assert_eq!((q.quarantine.total, q.quarantine.in_earlier_loads), (2, 1));
}

#[test]
fn one_file_spelt_two_ways_counts_once() {
    // `ingest ./accounts.csv`, then `ingest accounts.csv`: one file, its refused row counted once.
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    load(&mut store, "./accounts.csv", true);
    load(&mut store, "accounts.csv", true);
    load(&mut store, "data//accounts.csv", true);
    load(&mut store, "data/./accounts.csv", true);
    let q = winsignal_ingest::quality::report(&store).unwrap();
    assert_eq!((q.quarantine.total, q.quarantine.in_earlier_loads), (2, 2));
}
