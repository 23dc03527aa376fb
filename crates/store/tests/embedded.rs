//! What only the embedded store has to show: its files (no leftovers, damage detected, a format-1
//! workspace migrated), the write lock between processes, and reopening. The contract every store
//! keeps is in `contract.rs`.
#![allow(clippy::unwrap_used)]

mod common;
use common::{account, activity, put_all, spec};
use std::io::Read;
use std::sync::Barrier;

use winsignal_core::{Kind, Record};
use winsignal_store::{
    EmbeddedStore, ErrorKind, LoadStats, LogPosition, Store, StoreError, StoreRead,
};

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_dropped_batch_leaves_no_segment_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    {
        let mut batch = store.begin().unwrap();
        let load = batch.start_load(&spec("f.csv")).unwrap();
        batch.put(load, 3, None, &activity("e1", 1, "x")).unwrap();
        batch
            .finish_load(load, &[], &[], &LoadStats::default())
            .unwrap();
    }
    let leftover = files_in(&dir.path().join("events"));
    assert!(leftover.is_empty(), "{leftover:?}");
}

#[test]
fn models_and_named_state_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .put_model(&winsignal_store::ModelRecord {
                model_id: "m1".into(),
                kind: "win".into(),
                summary: "{}".into(),
                body: b"body".to_vec(),
            })
            .unwrap();
        store
            .put_state("registry", "k1", &mut |w| w.write_all(b"behaviours"))
            .unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.model("m1").unwrap().unwrap().body, b"body");
    let mut state = store.state("registry").unwrap().unwrap();
    let mut bytes = Vec::new();
    state.bytes.read_to_end(&mut bytes).unwrap();
    assert_eq!(
        (state.key.as_str(), bytes.as_slice()),
        ("k1", &b"behaviours"[..])
    );
    // Nothing but the state itself is left in its directory.
    assert_eq!(files_in(&dir.path().join("state")), ["registry.state"]);
}

/// A write killed before its rename leaves a temporary file; the next write removes it. A temporary
/// file another writer still holds (locked), or one made in the last minute, is left alone.
#[test]
fn a_killed_writes_temporary_state_file_is_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store
        .put_state("registry", "", &mut |w| w.write_all(b"{}"))
        .unwrap();
    let state = dir.path().join("state");
    let two_minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    let make = |name: &str, old: bool| {
        let f = std::fs::File::create(state.join(name)).unwrap();
        if old {
            f.set_modified(two_minutes_ago).unwrap();
        }
        f
    };
    drop(make(".tmp-engine-state-999-0", true));
    let held = make(".tmp-engine-state-998-0", true);
    held.lock().unwrap();
    drop(make(".tmp-engine-state-997-0", false));
    store
        .put_state("registry", "", &mut |w| w.write_all(b"{}"))
        .unwrap();
    assert_eq!(
        files_in(&state),
        [
            ".tmp-engine-state-997-0",
            ".tmp-engine-state-998-0",
            "registry.state"
        ]
    );
    drop(held);
}

/// Every single-bit flip anywhere in a state file (header, key, bytes, checksum) is an error when the
/// state is opened or read to its end, never other bytes read as if they were the state.
#[test]
fn a_damaged_named_state_is_an_error_never_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let payload: Vec<u8> = (0..5_000u32).map(|i| (i * 7 % 256) as u8).collect();
    store
        .put_state("engine-state", "position=9", &mut |w| w.write_all(&payload))
        .unwrap();
    let path = dir.path().join("state").join("engine-state.state");
    let good = std::fs::read(&path).unwrap();
    let read = |store: &EmbeddedStore| -> Result<(String, Vec<u8>), String> {
        let mut state = store
            .state("engine-state")
            .map_err(|e| {
                assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
                e.to_string()
            })?
            .unwrap();
        let mut bytes = Vec::new();
        state.bytes.read_to_end(&mut bytes).map_err(|e| {
            assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                ),
                "{e}"
            );
            e.to_string()
        })?;
        Ok((state.key, bytes))
    };
    assert_eq!(
        read(&store),
        Ok(("position=9".to_string(), payload.clone()))
    );
    let mut flips = 0;
    for at in (0..good.len()).step_by(37).chain([good.len() - 1]) {
        let mut bad = good.clone();
        bad[at] ^= 1 << (at % 8);
        std::fs::write(&path, &bad).unwrap();
        assert!(read(&store).is_err(), "a flip at byte {at} went unnoticed");
        flips += 1;
    }
    assert!(flips > 100);
    // A cut file too.
    std::fs::write(&path, &good[..good.len() - 100]).unwrap();
    assert!(read(&store).is_err());
    let err = read(&store).unwrap_err();
    assert!(err.contains("engine-state"), "{err}");
}

#[test]
fn a_reader_dropped_early_stops_its_threads_and_the_store_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let records: Vec<Record> = (0..20_000)
        .map(|i| activity(&format!("e{i}"), i, "x"))
        .collect();
    put_all(&store, &records);
    for _ in 0..20 {
        let first: Vec<_> = store
            .events(&[Kind::Activities])
            .unwrap()
            .take(3)
            .map(|e| e.unwrap().key)
            .collect();
        assert_eq!(first, ["e0", "e1", "e2"]);
    }
    put_all(&store, &[activity("late", 20_000, "x")]);
    assert_eq!(store.events(&[Kind::Activities]).unwrap().count(), 20_001);
}

#[test]
fn a_damaged_segment_is_an_error_not_a_short_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let records: Vec<Record> = (0..10_000)
        .map(|i| activity(&format!("e{i}"), i, "x"))
        .collect();
    put_all(&store, &records);
    let seg = std::fs::read_dir(dir.path().join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wsseg"))
        .unwrap();
    // Scribble over the middle of the frames, leaving the header and footer intact.
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = bytes.len() / 3;
    for b in &mut bytes[mid..mid + 64] {
        *b = 0xFF;
    }
    std::fs::write(&seg, &bytes).unwrap();
    let results: Vec<_> = store.events(&[Kind::Activities]).unwrap().collect();
    let errors: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "one error, then the stream ends");
    assert_eq!(errors[0].kind(), ErrorKind::Corrupt, "{}", errors[0]);
    assert!(results.last().unwrap().is_err());
    assert!(results.len() < 10_000);
}

#[test]
fn a_write_blocked_by_another_writer_says_another_process_is_writing() {
    let dir = tempfile::tempdir().unwrap();
    let holder = EmbeddedStore::open(dir.path()).unwrap();
    let held = holder.begin().unwrap();
    let mut waiting = EmbeddedStore::open(dir.path()).unwrap();
    waiting
        .set_lock_wait(std::time::Duration::from_millis(200))
        .unwrap();
    let err = match waiting.begin() {
        Ok(_) => panic!("a second writer must not get the lock"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let text = err.to_string();
    assert!(
        text.contains("another process is writing the workspace")
            && text.contains(&dir.path().display().to_string())
            && !text.contains("Error code"),
        "{text}"
    );
    // Reading is never blocked, not even a snapshot, and the lock is free again once the other
    // batch ends.
    assert!(waiting.loads().unwrap().is_empty());
    assert!(waiting.snapshot().unwrap().loads().unwrap().is_empty());
    drop(held);
    assert!(waiting.begin().is_ok());
}

/// An update of a named state waits for another process's update as long as a write batch would, then
/// says who holds the workspace; it goes through once the other is done.
#[test]
fn a_state_update_blocked_by_another_says_another_process_is_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    store
        .set_lock_wait(std::time::Duration::from_millis(200))
        .unwrap();
    store
        .update_state("registry", "", &mut |_| Ok(b"{}".to_vec()))
        .unwrap();
    // Another process holding the update lock (a separate open file: flock excludes it too).
    let held = std::fs::File::open(dir.path().join("state/.update.lock")).unwrap();
    held.lock().unwrap();
    let started = std::time::Instant::now();
    let err = store
        .update_state("registry", "", &mut |_| Ok(b"changed".to_vec()))
        .unwrap_err();
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert!(
        err.to_string().contains("another process is writing"),
        "{err}"
    );
    drop(held);
    store
        .update_state("registry", "", &mut |_| Ok(b"changed".to_vec()))
        .unwrap();
    let mut state = store.state("registry").unwrap().unwrap();
    let mut bytes = Vec::new();
    state.bytes.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, b"changed");
}

/// The snapshot contract across two handles on one workspace, as two processes have: segments written
/// and registered by the other handle after the snapshot began are not read by it.
#[test]
fn a_snapshot_is_isolated_from_another_handles_commit() {
    let dir = tempfile::tempdir().unwrap();
    let reader = EmbeddedStore::open(dir.path()).unwrap();
    let writer = EmbeddedStore::open(dir.path()).unwrap();
    put_all(&writer, &[activity("e1", 1, "x"), account("A1", "Acme")]);
    let snapshot = reader.snapshot().unwrap();
    let loaded = Barrier::new(2);
    let committed = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            loaded.wait();
            put_all(&writer, &[activity("e1", 1, "y"), activity("e2", 2, "x")]);
            committed.wait();
        });
        assert_eq!(snapshot.loads().unwrap().len(), 1);
        loaded.wait();
        committed.wait();
        let subjects: Vec<String> = snapshot
            .events(&[Kind::Activities])
            .unwrap()
            .map(|e| match e.unwrap().record {
                Record::Activities(a) => a.subject.unwrap(),
                other => panic!("{:?}", other.kind()),
            })
            .collect();
        assert_eq!(subjects, ["x"]);
        assert_eq!(snapshot.event_counts().unwrap()[0], (Kind::Activities, 1));
    });
    assert_eq!(reader.event_counts().unwrap()[0], (Kind::Activities, 2));
}

/// A workspace written by a format-1 build (no log positions, no seq ranges) opens, is migrated, and
/// reads the same, with positions one per earlier load.
#[test]
fn a_format_1_workspace_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        put_all(&store, &[account("A1", "Acme"), activity("e1", 1, "x")]);
        put_all(&store, &[account("A1", "Acme Inc"), activity("e1", 1, "y")]);
    }
    let before: Vec<_> = {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .events(&[Kind::Activities])
            .unwrap()
            .map(|e| e.unwrap().seq)
            .collect()
    };
    // Take the workspace back to format 1 as an older build left it.
    {
        let db = rusqlite::Connection::open(dir.path().join("store.sqlite")).unwrap();
        db.execute_batch(
            "UPDATE meta SET value = '1' WHERE key = 'format_version';
             DELETE FROM meta WHERE key = 'position';
             DROP INDEX loads_identity;
             DROP INDEX loads_position;
             DROP INDEX segments_position;
             ALTER TABLE loads DROP COLUMN position;
             ALTER TABLE segments DROP COLUMN position;
             ALTER TABLE segments DROP COLUMN min_seq;
             ALTER TABLE segments DROP COLUMN max_seq;",
        )
        .unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.position().unwrap(), LogPosition(2));
    let after: Vec<u64> = store
        .events(&[Kind::Activities])
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(after, before);
    let since: Vec<_> = store
        .events_since(LogPosition(1), &[Kind::Activities])
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    assert_eq!(since.len(), 1);
    assert!(since[0].supersedes.is_some());
    assert_eq!(store.records_since(LogPosition(1)).unwrap().len(), 1);
    let seq = since[0].event.seq;
    assert_eq!(store.events_by_seq(&[seq]).unwrap()[0].seq, seq);
    // The segment catalog got its seq ranges back from the key blocks.
    let db = rusqlite::Connection::open(dir.path().join("store.sqlite")).unwrap();
    let unranged: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM segments WHERE min_seq IS NULL OR position IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unranged, 0);
    // New batches continue after the migrated positions.
    put_all(&store, &[account("A2", "Beta")]);
    assert_eq!(store.position().unwrap(), LogPosition(3));
}

#[test]
fn a_newer_format_is_refused_with_both_versions_named() {
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    let db = rusqlite::Connection::open(dir.path().join("store.sqlite")).unwrap();
    db.execute(
        "UPDATE meta SET value = '99' WHERE key = 'format_version'",
        [],
    )
    .unwrap();
    let err = EmbeddedStore::open(dir.path()).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Incompatible);
    assert!(err.to_string().contains("store format 99"), "{err}");
}

/// events_by_seq reads only the segments whose seq range holds a wanted number: with the other
/// segments made unreadable, it still answers.
#[test]
fn events_by_seq_reads_only_the_segments_that_hold_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    put_all(&store, &[activity("a", 1, "x"), activity("b", 2, "x")]);
    let before = files_in(&dir.path().join("events"));
    put_all(&store, &[activity("c", 3, "x")]);
    let c_seq = store
        .events_since(LogPosition(1), &[Kind::Activities])
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .event
        .seq;
    for f in before {
        std::fs::write(dir.path().join("events").join(f), b"damaged").unwrap();
    }
    let found = store.events_by_seq(&[c_seq]).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, "c");
    let err = store.events_by_seq(&[1]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

#[test]
fn journal_appends_through_separate_handles_get_distinct_numbers_and_survive_reopening() {
    // Two handles on one workspace (as two processes would have), appending at once.
    use winsignal_store::{JournalQuery, Store, StoreRead};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    EmbeddedStore::open(&path).unwrap();
    std::thread::scope(|s| {
        for t in 0..2u8 {
            let path = path.clone();
            s.spawn(move || {
                let store = EmbeddedStore::open(&path).unwrap();
                for i in 0..20u8 {
                    store
                        .append(
                            "scores",
                            winsignal_core::Ts(0),
                            &[(format!("{t}"), vec![i])],
                        )
                        .unwrap();
                }
            });
        }
    });
    let store = EmbeddedStore::open(&path).unwrap();
    let all = store.journal("scores", &JournalQuery::default()).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<u64>>()
    );
    for t in ["0", "1"] {
        let bodies: Vec<u8> = all
            .iter()
            .filter(|e| e.key == t)
            .map(|e| e.body[0])
            .collect();
        assert_eq!(
            bodies,
            (0..20).collect::<Vec<u8>>(),
            "handle {t}'s entries in its order"
        );
    }
}

#[test]
fn a_workspace_made_before_journals_gets_one_when_opened() {
    use winsignal_store::{JournalQuery, Store, StoreRead};
    let dir = tempfile::tempdir().unwrap();
    drop(EmbeddedStore::open(dir.path()).unwrap());
    // As a build from before journals left it: the same format version, no journal table.
    let conn = rusqlite::Connection::open(dir.path().join("store.sqlite")).unwrap();
    conn.execute_batch("DROP INDEX journal_key; DROP TABLE journal;")
        .unwrap();
    drop(conn);
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert!(store
        .journal("scores", &JournalQuery::default())
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .append("scores", winsignal_core::Ts(1), &[("D1".into(), vec![1])])
            .unwrap(),
        [1]
    );
}

#[test]
fn a_handle_reuses_its_event_index_only_while_no_one_else_wrote() {
    use common::{activity, put_all};
    use winsignal_store::PutOutcome;
    let dir = tempfile::tempdir().unwrap();
    let mut a = EmbeddedStore::open(dir.path()).unwrap();
    a.keep_event_index();
    let mut b = EmbeddedStore::open(dir.path()).unwrap();
    b.keep_event_index();
    assert_eq!(put_all(&a, &[activity("e1", 100, "x")]), [PutOutcome::New]);
    // The same handle again: its kept index knows e1.
    assert_eq!(
        put_all(&a, &[activity("e1", 100, "x"), activity("e2", 200, "x")]),
        [PutOutcome::Unchanged, PutOutcome::New]
    );
    // Another handle (another process) changes e1; the first handle's kept index is stale and must
    // not be used: the old content is a change again, not "unchanged".
    assert_eq!(
        put_all(&b, &[activity("e1", 100, "y")]),
        [PutOutcome::Updated]
    );
    assert_eq!(
        put_all(&a, &[activity("e1", 100, "x")]),
        [PutOutcome::Updated]
    );
    assert_eq!(
        put_all(&a, &[activity("e1", 100, "x")]),
        [PutOutcome::Unchanged]
    );
    // A batch dropped without commit leaves nothing kept that it saw.
    {
        let mut batch = a.begin().unwrap();
        let load = batch.start_load(&common::spec("g.csv")).unwrap();
        batch.put(load, 2, None, &activity("e3", 300, "x")).unwrap();
    }
    assert_eq!(put_all(&a, &[activity("e3", 300, "x")]), [PutOutcome::New]);
}

/// One handle shared by threads, as the server shares it: a journal append that waits for a batch of
/// the same handle to commit must not hold up that batch's reads of the latest state through the
/// handle. (Both once went through one connection: the append held it while it waited for the write
/// lock, and the batch's read waited for the connection, until the append gave up after the lock
/// wait.)
#[test]
fn an_append_waiting_for_a_batch_does_not_hold_up_the_batchs_reads() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    // Long enough for the batch below to finish; short, so that the old fault fails the test quickly.
    store
        .set_lock_wait(std::time::Duration::from_secs(3))
        .unwrap();
    let batch_open = Barrier::new(2);
    let appended = AtomicBool::new(false);
    std::thread::scope(|s| {
        let appending = s.spawn(|| {
            batch_open.wait();
            let done = store.append("scores", winsignal_core::Ts(0), &[("k".into(), vec![1])]);
            appended.store(true, Ordering::SeqCst);
            done
        });
        let mut batch = store.begin().unwrap();
        batch_open.wait();
        // Let the append reach the write lock the batch holds.
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !appended.load(Ordering::SeqCst),
            "the append must wait for the batch"
        );
        let load = batch.start_load(&spec("f.csv")).unwrap();
        batch.put(load, 1, None, &account("a1", "Acme")).unwrap();
        assert!(
            store.loads().unwrap().is_empty(),
            "the batch is not committed yet"
        );
        batch
            .finish_load(load, &[], &[], &LoadStats::default())
            .unwrap();
        batch.commit().unwrap();
        let seqs = appending.join().unwrap().unwrap();
        assert_eq!(seqs, vec![1]);
    });
    assert_eq!(store.loads().unwrap().len(), 1);
}

/// A handle uses the connections of its finished batches and snapshots again: each is given back out
/// of its transaction, so a later snapshot sees what was committed since, and a batch after one
/// dropped uncommitted starts clean.
#[test]
fn connections_used_again_carry_no_transaction_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let commit = |id: &str| {
        let mut batch = store.begin().unwrap();
        let load = batch.start_load(&spec(&format!("{id}.csv"))).unwrap();
        batch.put(load, 1, None, &account(id, "Acme")).unwrap();
        batch
            .finish_load(load, &[], &[], &LoadStats::default())
            .unwrap();
        batch.commit().unwrap();
    };
    for round in 0..3 {
        let before = store.snapshot().unwrap().position().unwrap();
        {
            // Dropped uncommitted: nothing of it stays, on its connection or in the store.
            let mut dropped = store.begin().unwrap();
            let load = dropped.start_load(&spec("dropped.csv")).unwrap();
            dropped
                .put(load, 1, None, &account("gone", "Gone"))
                .unwrap();
        }
        commit(&format!("a{round}"));
        let snapshot = store.snapshot().unwrap();
        assert_eq!(snapshot.position().unwrap(), LogPosition(before.0 + 1));
        let ids: Vec<String> = snapshot
            .records(Kind::Accounts)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids.len(), round + 1, "{ids:?}");
        assert!(!ids.contains(&"gone".to_string()), "{ids:?}");
    }
}
