//! The store contract: what every [`Store`] implementation must do, written once as generic functions
//! and run on each implementation by `contract_for!` at the bottom. Adding an implementation (the
//! PostgreSQL store) is one more `contract_for!` line with a function that opens a fresh store.
#![allow(clippy::unwrap_used)]

mod common;
use common::{account, activity, put_all, spec};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Barrier;

use winsignal_core::{Kind, Record};
use winsignal_store::{
    EmbeddedStore, ErrorKind, LoadStats, LogPosition, MemoryStore, ModelRecord, PutOutcome,
    QuarantinedRow, Store, StoreRead,
};

/// A fresh, empty store, and whatever must live as long as it (a temporary directory).
pub struct Fixture {
    pub store: Box<dyn Store>,
    _keep: Option<tempfile::TempDir>,
}

fn embedded() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        store: Box::new(EmbeddedStore::open(dir.path()).unwrap()),
        _keep: Some(dir),
    }
}

/// The embedded store as the server uses it: keeping its event index between batches.
fn embedded_keeping_index() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    store.keep_event_index();
    Fixture {
        store: Box::new(store),
        _keep: Some(dir),
    }
}

fn memory() -> Fixture {
    Fixture {
        store: Box::new(MemoryStore::new()),
        _keep: None,
    }
}

/// (key, time, subject) of the current activities, in the order read.
fn activity_keys(read: &dyn StoreRead) -> Vec<(String, i64, String)> {
    read.events(&[Kind::Activities])
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let Record::Activities(a) = e.record else {
                panic!("an activity stream gave {:?}", e.record.kind())
            };
            (e.key, e.ts.0, a.subject.unwrap_or_default())
        })
        .collect()
}

fn names(read: &dyn StoreRead) -> Vec<(String, String)> {
    read.records(Kind::Accounts)
        .unwrap()
        .into_iter()
        .map(|r| {
            let Record::Accounts(a) = r.record else {
                panic!("an account list gave {:?}", r.kind)
            };
            (r.id, a.name.unwrap_or_default())
        })
        .collect()
}

pub fn records_are_versioned_and_deduplicated(store: &dyn Store) {
    assert_eq!(
        put_all(store, &[account("A1", "Acme"), account("A2", "Beta")]),
        [PutOutcome::New, PutOutcome::New]
    );
    assert_eq!(
        put_all(store, &[account("A1", "Acme"), account("A2", "Beta Corp")]),
        [PutOutcome::Unchanged, PutOutcome::Updated]
    );
    assert_eq!(
        names(store),
        [
            ("A1".into(), "Acme".into()),
            ("A2".into(), "Beta Corp".into())
        ]
    );
    // One at a time, the same records in the same order, from the store and from a snapshot of it; an
    // error from the reader stops the reading and comes back.
    let ids = |v: &[winsignal_store::StoredRecord]| -> Vec<(String, u64, u64)> {
        v.iter()
            .map(|r| (r.id.clone(), r.version, r.content_hash))
            .collect()
    };
    let listed = ids(&store.records(Kind::Accounts).unwrap());
    let snapshot = store.snapshot().unwrap();
    for read in [store as &dyn StoreRead, snapshot.as_ref() as &dyn StoreRead] {
        let mut each = Vec::new();
        read.each_record(Kind::Accounts, &mut |r| {
            each.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(ids(&each), listed);
        let mut seen = 0;
        let stopped = read.each_record(Kind::Accounts, &mut |_| {
            seen += 1;
            Err(winsignal_store::StoreError::CorruptRecord {
                kind: "accounts".into(),
                id: "A1".into(),
                reason: "stop".into(),
            })
        });
        assert_eq!((stopped.unwrap_err().kind(), seen), (ErrorKind::Corrupt, 1));
    }
    let versions = store.versions(Kind::Accounts, "A2").unwrap();
    assert_eq!(versions.len(), 2);
    assert!(!versions[0].current && versions[1].current);
    assert_eq!((versions[0].version, versions[1].version), (1, 2));
    assert_eq!(versions[1].origin.load_id, 2);
    assert!(store.versions(Kind::Accounts, "A3").unwrap().is_empty());
}

pub fn events_come_back_in_time_order_without_superseded_versions(store: &dyn Store) {
    put_all(
        store,
        &[
            activity("e3", 300, "x"),
            activity("e1", 100, "x"),
            activity("e2", 200, "x"),
        ],
    );
    let out = put_all(
        store,
        &[
            activity("e0", 50, "x"),
            activity("e2", 250, "changed"),
            activity("e1", 100, "x"),
        ],
    );
    assert_eq!(
        out,
        [PutOutcome::New, PutOutcome::Updated, PutOutcome::Unchanged]
    );
    let keys: Vec<_> = activity_keys(store)
        .into_iter()
        .map(|(k, ts, _)| (k, ts))
        .collect();
    assert_eq!(
        keys,
        [
            ("e0".to_string(), 50),
            ("e1".to_string(), 100),
            ("e2".to_string(), 250),
            ("e3".to_string(), 300)
        ]
    );
    assert_eq!(
        store.event_counts().unwrap(),
        [
            (Kind::Activities, 4),
            (Kind::ProductEvents, 0),
            (Kind::MarketingTouches, 0)
        ]
    );
    let versions = store.versions(Kind::Activities, "e2").unwrap();
    assert_eq!(versions.len(), 2);
    assert!(!versions[0].current && versions[1].current);
    assert!(store
        .events(&[Kind::ProductEvents])
        .unwrap()
        .next()
        .is_none());
}

pub fn a_dropped_batch_leaves_nothing(store: &dyn Store) {
    let before = store.position().unwrap();
    {
        let mut batch = store.begin().unwrap();
        let load = batch.start_load(&spec("f.csv")).unwrap();
        batch.put(load, 2, None, &account("A1", "Acme")).unwrap();
        batch.put(load, 3, None, &activity("e1", 1, "x")).unwrap();
        batch
            .set_overlay(Kind::Accounts, "A1", "a", r#"{"name":"x"}"#)
            .unwrap();
        batch
            .quarantine(&QuarantinedRow {
                load_id: load,
                line: 4,
                kind: None,
                record_id: None,
                reasons: vec!["bad".into()],
                raw: "x".into(),
            })
            .unwrap();
        batch
            .finish_load(load, &[], &[], &LoadStats::default())
            .unwrap();
    }
    assert!(store.records(Kind::Accounts).unwrap().is_empty());
    assert!(store.loads().unwrap().is_empty());
    assert!(store.quarantine(None).unwrap().is_empty());
    assert_eq!(store.events(&[Kind::Activities]).unwrap().count(), 0);
    assert_eq!(store.position().unwrap(), before);
    // The store is still usable afterwards, and the dropped overlay is gone.
    put_all(store, &[account("A1", "Acme")]);
    assert_eq!(store.records(Kind::Accounts).unwrap().len(), 1);
    let mut batch = store.begin().unwrap();
    assert!(batch.overlays(Kind::Accounts, "A1").unwrap().is_empty());
}

pub fn quarantine_and_flags_are_kept_per_load_in_line_order(store: &dyn Store) {
    let mut batch = store.begin().unwrap();
    for path in ["a.csv", "b.csv"] {
        let load = batch.start_load(&spec(path)).unwrap();
        for line in [9, 3] {
            batch
                .quarantine(&QuarantinedRow {
                    load_id: load,
                    line,
                    kind: Some(Kind::Accounts),
                    record_id: Some(format!("A{line}")),
                    reasons: vec![format!("bad {line}")],
                    raw: "é".repeat(3000),
                })
                .unwrap();
            batch
                .flag(&winsignal_store::Flag {
                    load_id: load,
                    line,
                    kind: Kind::Accounts,
                    record_id: None,
                    code: "dup".into(),
                    message: format!("line {line}"),
                })
                .unwrap();
        }
        batch
            .finish_load(load, &[], &[], &LoadStats::default())
            .unwrap();
    }
    batch.commit().unwrap();
    let all = store.quarantine(None).unwrap();
    let order: Vec<(u64, u64)> = all.iter().map(|q| (q.load_id, q.line)).collect();
    assert_eq!(order, [(1, 3), (1, 9), (2, 3), (2, 9)]);
    // Raw rows are cut at 4 KiB on a character boundary and marked.
    assert!(all[0].raw.len() <= 4096 + '…'.len_utf8() && all[0].raw.ends_with('…'));
    assert_eq!(all[0].reasons, ["bad 3"]);
    assert_eq!(store.quarantine(Some(2)).unwrap().len(), 2);
    let flags: Vec<(u64, u64)> = store
        .flags()
        .unwrap()
        .iter()
        .map(|f| (f.load_id, f.line))
        .collect();
    assert_eq!(flags, [(1, 3), (1, 9), (2, 3), (2, 9)]);
}

pub fn models_are_immutable_artifacts_listed_in_the_order_saved(store: &dyn Store) {
    let model = |id: &str, kind: &str| ModelRecord {
        model_id: id.into(),
        kind: kind.into(),
        summary: format!("{{\"id\":\"{id}\"}}"),
        body: id.as_bytes().repeat(3),
    };
    let position = store.position().unwrap();
    assert!(store.put_model(&model("m1", "win")).unwrap());
    assert!(store.put_model(&model("m2", "win")).unwrap());
    assert!(store.put_model(&model("c1", "close")).unwrap());
    // Saving the same id again changes nothing, even with another body.
    let mut again = model("m1", "win");
    again.body = b"different".to_vec();
    assert!(!store.put_model(&again).unwrap());
    let wins = store.models(Some("win")).unwrap();
    let ids: Vec<(&str, u64)> = wins.iter().map(|m| (m.model_id.as_str(), m.seq)).collect();
    assert_eq!(ids, [("m1", 1), ("m2", 2)]);
    assert_eq!(store.models(None).unwrap().len(), 3);
    assert_eq!(store.model("m1").unwrap().unwrap().body, b"m1m1m1");
    assert_eq!(store.model("nope").unwrap(), None);
    // A batch committed after a model was saved keeps it.
    put_all(store, &[account("A1", "Acme")]);
    assert_eq!(store.models(None).unwrap().len(), 3);
    assert_eq!(
        store.position().unwrap(),
        LogPosition(position.0 + 1),
        "saving models is not a batch"
    );
}

/// Enough events for many decode batches on every thread of the embedded reader (batches are 2,048
/// frames), in loads whose times interleave, with some events updated by a later load: the stream must
/// be exactly the sequential (time, arrival) order of the current versions.
pub fn many_events_across_loads_come_back_in_exact_order(store: &dyn Store) {
    let mut rng = winsignal_core::rng::Rng::new(7);
    let mut expected = BTreeMap::new();
    let mut latest = std::collections::HashMap::new();
    let mut arrival = 0u64;
    for load in 0..3 {
        let mut records = Vec::new();
        for i in 0..9_000u64 {
            // The third load rewrites a tenth of the first load's events at new times.
            let id = if load == 2 && i % 10 == 0 {
                format!("a{i}")
            } else {
                format!("{}{i}", ["a", "b", "c"][load])
            };
            let ts = rng.below(1_000_000) as i64;
            records.push(activity(&id, ts, &format!("s{load}")));
            if let Some(old) = latest.insert(id.clone(), (ts, arrival)) {
                expected.remove(&old);
            }
            expected.insert((ts, arrival), id);
            arrival += 1;
        }
        put_all(store, &records);
    }
    let got: Vec<(i64, String)> = activity_keys(store)
        .into_iter()
        .map(|(k, ts, _)| (ts, k))
        .collect();
    let want: Vec<(i64, String)> = expected.into_iter().map(|((ts, _), id)| (ts, id)).collect();
    assert_eq!(got.len(), 27_000 - 900);
    assert_eq!(got, want);
}

pub fn a_load_keeps_its_identity_and_recipe(store: &dyn Store) {
    let mut batch = store.begin().unwrap();
    let mut s = spec("f.csv");
    s.identity = "abc123".into();
    s.recipe.insert("connector".into(), "canonical".into());
    let load = batch.start_load(&s).unwrap();
    let stats = LoadStats {
        rows_read: 3,
        accepted: 2,
        new: 2,
        quarantined: 1,
        ..Default::default()
    };
    batch
        .finish_load(load, &[], &[Kind::Accounts], &stats)
        .unwrap();
    batch.commit().unwrap();
    let loads = store.loads().unwrap();
    assert_eq!(loads.len(), 1);
    assert_eq!(loads[0].identity, "abc123");
    assert_eq!(loads[0].recipe["connector"], "canonical");
    assert_eq!(loads[0].stats, stats);
    assert_eq!(loads[0].kinds, [Kind::Accounts]);
}

/// `identical_load` answers what a scan of `loads` would: the latest finished load of that source and
/// identity.
pub fn the_latest_identical_load_is_found(store: &dyn Store) {
    let load = |source: &str, identity: &str, finish: bool| {
        let mut batch = store.begin().unwrap();
        let mut s = spec("f.csv");
        s.source = source.into();
        s.identity = identity.into();
        let id = batch.start_load(&s).unwrap();
        if finish {
            batch
                .finish_load(id, &[], &[Kind::Accounts], &LoadStats::default())
                .unwrap();
        }
        batch.commit().unwrap();
        id
    };
    let first = load("api:a", "x", true);
    assert_eq!(store.identical_load("api:a", "x").unwrap(), Some(first));
    let second = load("api:a", "x", true);
    load("api:a", "y", true);
    load("api:b", "x", true);
    load("api:a", "x", false);
    assert_eq!(store.identical_load("api:a", "x").unwrap(), Some(second));
    assert_eq!(store.identical_load("api:a", "z").unwrap(), None);
    assert_eq!(store.identical_load("api:c", "x").unwrap(), None);
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.identical_load("api:a", "x").unwrap(), Some(second));
}

pub fn a_batch_sees_the_current_version_including_its_own_writes(store: &dyn Store) {
    put_all(store, &[account("A1", "Acme"), activity("e1", 5, "x")]);
    let mut batch = store.begin().unwrap();
    let load = batch.start_load(&spec("g.csv")).unwrap();
    assert_eq!(
        batch.current(Kind::Accounts, "A1").unwrap(),
        Some(account("A1", "Acme"))
    );
    assert_eq!(batch.current(Kind::Accounts, "A2").unwrap(), None);
    assert!(batch.holds(&account("A1", "Acme")).unwrap());
    assert!(batch.holds(&activity("e1", 5, "x")).unwrap());
    assert!(!batch.holds(&activity("e1", 5, "y")).unwrap());
    batch
        .put(load, 2, None, &account("A1", "Acme Inc"))
        .unwrap();
    batch.put(load, 3, None, &account("A2", "Beta")).unwrap();
    batch.put(load, 4, None, &activity("e1", 5, "y")).unwrap();
    assert!(batch.holds(&activity("e1", 5, "y")).unwrap());
    assert!(!batch.holds(&account("A1", "Acme")).unwrap());
    assert_eq!(
        batch.current(Kind::Accounts, "A1").unwrap(),
        Some(account("A1", "Acme Inc"))
    );
    assert_eq!(
        batch.current(Kind::Accounts, "A2").unwrap(),
        Some(account("A2", "Beta"))
    );
    assert!(
        batch.current(Kind::Activities, "E1").is_err(),
        "events have no single current version"
    );
    drop(batch);
    let mut batch = store.begin().unwrap();
    assert_eq!(
        batch.current(Kind::Accounts, "A1").unwrap(),
        Some(account("A1", "Acme")),
        "a dropped batch's writes are gone"
    );
}

pub fn overlays_are_kept_per_source_in_the_order_they_last_changed(store: &dyn Store) {
    let mut batch = store.begin().unwrap();
    batch
        .set_overlay(Kind::Accounts, "A1", "a", r#"{"name":"x"}"#)
        .unwrap();
    batch
        .set_overlay(Kind::Accounts, "A1", "b", r#"{"name":"y"}"#)
        .unwrap();
    // Unchanged: keeps its place; changed: moves last.
    batch
        .set_overlay(Kind::Accounts, "A1", "a", r#"{"name":"x"}"#)
        .unwrap();
    let sources = |b: &mut Box<dyn winsignal_store::Batch + '_>| -> Vec<String> {
        b.overlays(Kind::Accounts, "A1")
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    assert_eq!(sources(&mut batch), ["a", "b"]);
    batch
        .set_overlay(Kind::Accounts, "A1", "a", r#"{"name":"z"}"#)
        .unwrap();
    assert_eq!(sources(&mut batch), ["b", "a"]);
    assert!(batch.overlays(Kind::Accounts, "A2").unwrap().is_empty());
    batch.commit().unwrap();
    let mut batch = store.begin().unwrap();
    assert_eq!(
        batch.overlays(Kind::Accounts, "A1").unwrap(),
        vec![
            ("b".to_string(), r#"{"name":"y"}"#.to_string()),
            ("a".to_string(), r#"{"name":"z"}"#.to_string())
        ]
    );
}

/// A snapshot reads one state: a load committed by another thread between two of its reads (the
/// barrier orders them; nothing sleeps) is invisible to it and visible to a new snapshot.
pub fn a_snapshot_sees_one_state_while_another_thread_commits(store: &dyn Store) {
    put_all(store, &[account("A1", "Acme"), activity("e1", 100, "x")]);
    let snapshot = store.snapshot().unwrap();
    let position = snapshot.position().unwrap();
    let loaded = Barrier::new(2);
    let committed = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            loaded.wait();
            put_all(
                store,
                &[
                    account("A1", "Acme Inc"),
                    account("A2", "Beta"),
                    activity("e1", 100, "changed"),
                    activity("e2", 200, "x"),
                ],
            );
            committed.wait();
        });
        assert_eq!(snapshot.loads().unwrap().len(), 1);
        loaded.wait();
        committed.wait();
        // The commit is done; the snapshot still reads the state it started with.
        assert_eq!(names(&*snapshot), [("A1".into(), "Acme".into())]);
        assert_eq!(activity_keys(&*snapshot), [("e1".into(), 100, "x".into())]);
        assert_eq!(snapshot.event_counts().unwrap()[0], (Kind::Activities, 1));
        assert_eq!(snapshot.loads().unwrap().len(), 1);
        assert_eq!(snapshot.versions(Kind::Accounts, "A1").unwrap().len(), 1);
        assert_eq!(snapshot.versions(Kind::Activities, "e1").unwrap().len(), 1);
        assert_eq!(snapshot.position().unwrap(), position);
        assert_eq!(
            snapshot
                .events_since(position, &[Kind::Activities])
                .unwrap()
                .count(),
            0
        );
        assert!(snapshot.records_since(position).unwrap().is_empty());
    });
    // The store itself and a new snapshot see the new state.
    let fresh = store.snapshot().unwrap();
    assert_eq!(fresh.position().unwrap(), LogPosition(position.0 + 1));
    assert_eq!(
        names(&*fresh),
        [
            ("A1".into(), "Acme Inc".into()),
            ("A2".into(), "Beta".into())
        ]
    );
    assert_eq!(
        activity_keys(&*fresh),
        [
            ("e1".into(), 100, "changed".into()),
            ("e2".into(), 200, "x".into())
        ]
    );
    assert_eq!(fresh.event_counts().unwrap()[0], (Kind::Activities, 2));
    assert_eq!(store.loads().unwrap().len(), 2);
    // The old snapshot is still readable after the new one was taken.
    assert_eq!(activity_keys(&*snapshot).len(), 1);
}

/// One batch at a time: concurrent read-modify-write batches lose no update.
pub fn batches_are_one_at_a_time(store: &dyn Store) {
    put_all(store, &[account("A1", "0")]);
    let n_threads = 4;
    let n_rounds = 5;
    std::thread::scope(|s| {
        for _ in 0..n_threads {
            s.spawn(|| {
                for _ in 0..n_rounds {
                    let mut batch = store.begin().unwrap();
                    let load = batch.start_load(&spec("count.csv")).unwrap();
                    let Some(Record::Accounts(a)) = batch.current(Kind::Accounts, "A1").unwrap()
                    else {
                        panic!("A1 is gone")
                    };
                    let n: u64 = a.name.unwrap().parse().unwrap();
                    batch
                        .put(load, 2, None, &account("A1", &(n + 1).to_string()))
                        .unwrap();
                    batch
                        .finish_load(load, &[], &[], &LoadStats::default())
                        .unwrap();
                    batch.commit().unwrap();
                }
            });
        }
    });
    assert_eq!(
        names(store),
        [("A1".into(), (n_threads * n_rounds).to_string())]
    );
    assert_eq!(
        store.position().unwrap(),
        LogPosition(1 + n_threads * n_rounds)
    );
}

pub fn every_committed_batch_advances_the_position(store: &dyn Store) {
    assert_eq!(store.position().unwrap(), LogPosition::START);
    put_all(store, &[account("A1", "Acme")]);
    assert_eq!(store.position().unwrap(), LogPosition(1));
    // A batch that writes nothing new is still a batch of the log.
    put_all(store, &[account("A1", "Acme")]);
    assert_eq!(store.position().unwrap(), LogPosition(2));
    drop(store.begin().unwrap());
    assert_eq!(store.position().unwrap(), LogPosition(2), "a dropped batch");
    assert_eq!(
        store.snapshot().unwrap().position().unwrap(),
        LogPosition(2)
    );
}

/// Applying `events_since(p)` in order to the events current at `p` gives the events current now.
pub fn events_since_says_which_version_each_change_supersedes(store: &dyn Store) {
    put_all(store, &[activity("e1", 100, "x"), activity("e2", 200, "x")]);
    let p1 = store.position().unwrap();
    let at_p1 = store.snapshot().unwrap();
    let e1_seq = store.versions(Kind::Activities, "e1").unwrap();
    assert_eq!(e1_seq.len(), 1);
    put_all(store, &[activity("e1", 150, "y"), activity("e3", 50, "x")]);
    // e1 again in a later batch: the version committed after p1 is itself replaced.
    put_all(store, &[activity("e1", 160, "z"), activity("e2", 200, "x")]);
    let changes: Vec<_> = store
        .events_since(p1, &[Kind::Activities])
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let seqs: Vec<u64> = changes.iter().map(|c| c.event.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "commit order: {seqs:?}"
    );
    let summary: Vec<(&str, u64, bool)> = changes
        .iter()
        .map(|c| (c.event.key.as_str(), c.position.0, c.supersedes.is_some()))
        .collect();
    assert_eq!(
        summary,
        [
            ("e1", p1.0 + 1, true),
            ("e3", p1.0 + 1, false),
            ("e1", p1.0 + 2, true)
        ]
    );
    // Replay the changes onto the state at p1, as an incremental consumer would.
    let mut state: BTreeMap<u64, (String, i64)> = at_p1
        .events(&[Kind::Activities])
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.seq, (e.key, e.ts.0))
        })
        .collect();
    for change in &changes {
        if let Some(old) = change.supersedes {
            assert!(
                state.remove(&old).is_some(),
                "{} supersedes {old}, which the consumer does not hold",
                change.event.seq
            );
        }
        state.insert(
            change.event.seq,
            (change.event.key.clone(), change.event.ts.0),
        );
    }
    let mut replayed: Vec<(String, i64)> = state.into_values().collect();
    replayed.sort_by_key(|(k, ts)| (*ts, k.clone()));
    let current: Vec<(String, i64)> = activity_keys(store)
        .into_iter()
        .map(|(k, ts, _)| (k, ts))
        .collect();
    assert_eq!(replayed, current);
    // Nothing after the latest position; every event after the start.
    let now = store.position().unwrap();
    assert_eq!(
        store
            .events_since(now, &[Kind::Activities])
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        store
            .events_since(LogPosition::START, &[Kind::Activities])
            .unwrap()
            .count(),
        5
    );
    assert_eq!(
        store
            .events_since(LogPosition::START, &[Kind::ProductEvents])
            .unwrap()
            .count(),
        0
    );
}

pub fn records_since_gives_the_versions_written_after_a_position(store: &dyn Store) {
    put_all(store, &[account("A1", "Acme"), account("A2", "Beta")]);
    let p1 = store.position().unwrap();
    put_all(store, &[account("A2", "Beta Corp"), account("A3", "Gamma")]);
    put_all(store, &[account("A2", "Beta Inc"), account("A1", "Acme")]);
    let changes = store.records_since(p1).unwrap();
    let summary: Vec<(&str, u64, Option<u64>, u64)> = changes
        .iter()
        .map(|c| {
            (
                c.record.id.as_str(),
                c.record.version,
                c.replaces,
                c.position.0,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("A2", 2, Some(1), p1.0 + 1),
            ("A3", 1, None, p1.0 + 1),
            ("A2", 3, Some(2), p1.0 + 2)
        ]
    );
    assert!(!changes[0].record.current && changes[2].record.current);
    assert_eq!(store.records_since(LogPosition::START).unwrap().len(), 5);
    // Within a batch, kinds come in the order of their names.
    let p3 = store.position().unwrap();
    let rep = Record::Reps(winsignal_core::Rep {
        rep_id: "R1".into(),
        ..Default::default()
    });
    let link = Record::OpportunityContacts(winsignal_core::OpportunityContact {
        opportunity_id: "O1".into(),
        contact_id: "C1".into(),
        role: None,
        is_primary: None,
    });
    put_all(store, &[rep, account("A9", "Zeta"), link]);
    let kinds: Vec<Kind> = store
        .records_since(p3)
        .unwrap()
        .iter()
        .map(|c| c.record.kind)
        .collect();
    assert_eq!(
        kinds,
        [Kind::Accounts, Kind::OpportunityContacts, Kind::Reps]
    );
    assert!(store
        .records_since(store.position().unwrap())
        .unwrap()
        .is_empty());
}

pub fn events_by_seq_finds_current_and_replaced_versions(store: &dyn Store) {
    let first: Vec<Record> = (0..50)
        .map(|i| activity(&format!("e{i}"), i, "x"))
        .collect();
    put_all(store, &first);
    put_all(
        store,
        &[activity("e7", 7, "changed"), activity("f1", 1, "x")],
    );
    let all: Vec<_> = store
        .events_since(LogPosition::START, &[Kind::Activities])
        .unwrap()
        .map(|c| c.unwrap().event)
        .collect();
    let old_e7 = all.iter().find(|e| e.key == "e7").unwrap().seq;
    let new_e7 = all.iter().rfind(|e| e.key == "e7").unwrap().seq;
    let f1 = all.iter().find(|e| e.key == "f1").unwrap().seq;
    let e3 = all.iter().find(|e| e.key == "e3").unwrap().seq;
    let found = store
        .events_by_seq(&[f1, old_e7, e3, new_e7, f1, 999_999])
        .unwrap();
    let got: Vec<(u64, &str)> = found.iter().map(|e| (e.seq, e.key.as_str())).collect();
    let mut want = vec![(old_e7, "e7"), (new_e7, "e7"), (f1, "f1"), (e3, "e3")];
    want.sort();
    assert_eq!(got, want);
    assert!(store.events_by_seq(&[]).unwrap().is_empty());
}

fn read_state(store: &dyn Store, name: &str) -> Option<(String, Vec<u8>)> {
    store.state(name).unwrap().map(|mut s| {
        let mut bytes = Vec::new();
        s.bytes.read_to_end(&mut bytes).unwrap();
        (s.key, bytes)
    })
}

pub fn named_state_is_replaced_whole_and_kept_on_failure(store: &dyn Store) {
    assert!(read_state(store, "engine-state").is_none());
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    store
        .put_state("engine-state", "position=3", &mut |w| {
            for chunk in big.chunks(100_000) {
                w.write_all(chunk)?;
            }
            Ok(())
        })
        .unwrap();
    store
        .put_state("registry", "", &mut |w| w.write_all(b"{}"))
        .unwrap();
    assert_eq!(
        read_state(store, "engine-state"),
        Some(("position=3".to_string(), big.clone()))
    );
    assert_eq!(
        read_state(store, "registry"),
        Some((String::new(), b"{}".to_vec()))
    );
    // A writer that fails leaves the previous state as it was.
    let failed = store.put_state("engine-state", "position=4", &mut |w| {
        w.write_all(b"half")?;
        Err(std::io::Error::other("encoder failed"))
    });
    assert!(failed.is_err());
    assert_eq!(
        read_state(store, "engine-state"),
        Some(("position=3".to_string(), big))
    );
    store
        .put_state("engine-state", "position=4", &mut |w| w.write_all(b"new"))
        .unwrap();
    assert_eq!(
        read_state(store, "engine-state"),
        Some(("position=4".to_string(), b"new".to_vec()))
    );
    // Names cannot reach outside the store's own place.
    for bad in ["", "../x", ".hidden", "a/b"] {
        let err = store
            .put_state(bad, "", &mut |w| w.write_all(b"x"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal, "{bad:?}: {err}");
    }
}

/// Concurrent read-modify-writes of one named state each see the others' result: none is lost. An
/// update that fails leaves the state as it was.
pub fn updates_of_a_named_state_do_not_lose_each_other(store: &dyn Store) {
    let append = |line: String| {
        move |current: Option<winsignal_store::NamedState>| {
            let mut bytes = Vec::new();
            if let Some(mut s) = current {
                s.bytes.read_to_end(&mut bytes)?;
            }
            // Widens the window between the read and the write, where an unlocked update loses another.
            std::thread::sleep(std::time::Duration::from_millis(2));
            bytes.extend_from_slice(line.as_bytes());
            Ok(bytes)
        }
    };
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..8 {
                    let mut update = append(format!("{t}-{i}\n"));
                    store.update_state("registry", "", &mut update).unwrap();
                }
            });
        }
    });
    let (_, bytes) = read_state(store, "registry").unwrap();
    let mut lines: Vec<&str> = std::str::from_utf8(&bytes).unwrap().lines().collect();
    lines.sort_unstable();
    let mut want: Vec<String> = (0..4)
        .flat_map(|t| (0..8).map(move |i| format!("{t}-{i}")))
        .collect();
    want.sort_unstable();
    assert_eq!(lines, want);
    let failed = store.update_state("registry", "", &mut |_| {
        Err(std::io::Error::other("refused"))
    });
    assert!(failed.is_err());
    assert_eq!(read_state(store, "registry").unwrap().1, bytes);
}

pub fn journal_entries_are_numbered_per_stream_and_read_by_key(store: &dyn Store) {
    use winsignal_core::Ts;
    use winsignal_store::JournalQuery;
    let entry = |k: &str, b: &str| (k.to_string(), b.as_bytes().to_vec());
    assert!(store
        .journal("scores", &JournalQuery::default())
        .unwrap()
        .is_empty());
    let position = store.position().unwrap();
    assert_eq!(
        store
            .append("scores", Ts(10), &[entry("D1", "a"), entry("D2", "b")])
            .unwrap(),
        [1, 2]
    );
    // Streams are numbered apart; appending does not move the log.
    assert_eq!(
        store.append("outbox", Ts(11), &[entry("D1", "x")]).unwrap(),
        [1]
    );
    assert_eq!(store.position().unwrap(), position);
    let before = store.snapshot().unwrap();
    assert_eq!(
        store.append("scores", Ts(12), &[entry("D1", "c")]).unwrap(),
        [3]
    );
    assert_eq!(
        store.append("scores", Ts(13), &[]).unwrap(),
        Vec::<u64>::new()
    );

    let read = |r: &dyn StoreRead, q: JournalQuery| -> Vec<(u64, String, i64, String)> {
        r.journal("scores", &q)
            .unwrap()
            .into_iter()
            .map(|e| {
                assert_eq!(e.stream, "scores");
                (e.seq, e.key, e.at.0, String::from_utf8(e.body).unwrap())
            })
            .collect()
    };
    let all = read(store, JournalQuery::default());
    assert_eq!(
        all,
        [
            (1, "D1".into(), 10, "a".into()),
            (2, "D2".into(), 10, "b".into()),
            (3, "D1".into(), 12, "c".into())
        ]
    );
    let d1 = JournalQuery {
        key: Some("D1".into()),
        ..JournalQuery::default()
    };
    assert_eq!(read(store, d1.clone()), [all[0].clone(), all[2].clone()]);
    let after = JournalQuery {
        after: 1,
        limit: Some(1),
        ..JournalQuery::default()
    };
    assert_eq!(read(store, after), [all[1].clone()]);
    // A snapshot taken before an append does not see it.
    assert_eq!(read(before.as_ref(), d1), [all[0].clone()]);
    let latest: Vec<(u64, String)> = store
        .journal_latest("scores")
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.key))
        .collect();
    assert_eq!(latest, [(3, "D1".into()), (2, "D2".into())]);

    // Appends from many threads at once: every entry kept, numbers distinct and without gaps.
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..10 {
                    store
                        .append(
                            "many",
                            Ts(i),
                            &[(format!("{t}"), vec![i as u8]), (format!("{t}"), vec![])],
                        )
                        .unwrap();
                }
            });
        }
    });
    let many = store.journal("many", &JournalQuery::default()).unwrap();
    let seqs: Vec<u64> = many.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=80).collect::<Vec<u64>>());
    // Each append's two entries are adjacent.
    for pair in many.chunks(2) {
        assert_eq!(pair[0].key, pair[1].key);
    }
}

/// An entry appended with `append_linked` is made from the stream's last entry, with no other append
/// in between: a chain built from many threads at once has every link.
pub fn linked_entries_are_made_from_the_last_one(store: &dyn Store) {
    use winsignal_core::Ts;
    use winsignal_store::{JournalEntry, JournalQuery};
    let link = |last: Option<&JournalEntry>| -> Vec<u8> {
        let n = last.map_or(0, |e| {
            String::from_utf8_lossy(&e.body).parse::<u64>().unwrap()
        });
        (n + 1).to_string().into_bytes()
    };
    assert_eq!(
        store
            .append_linked("chain", Ts(1), "k", &mut |l| link(l))
            .unwrap(),
        1
    );
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(move || {
                for i in 0..10 {
                    store
                        .append_linked("chain", Ts(i), "k", &mut |l| link(l))
                        .unwrap();
                    // Plain appends to the stream take numbers too; a link is to whatever is last.
                    if i == 5 {
                        store
                            .append("other", Ts(i), &[("k".into(), vec![])])
                            .unwrap();
                    }
                }
            });
        }
    });
    let chain = store.journal("chain", &JournalQuery::default()).unwrap();
    let bodies: Vec<String> = chain
        .iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect();
    let expected: Vec<String> = (1..=41).map(|n| n.to_string()).collect();
    assert_eq!(bodies, expected);
    assert_eq!(chain.last().unwrap().seq, 41);
}

/// Runs every contract test on one implementation: `contract_for!(module_name, function opening a
/// fresh store)`.
macro_rules! contract_for {
    ($name:ident, $open:path) => {
        mod $name {
            contract_for!(@tests $open;
                records_are_versioned_and_deduplicated,
                events_come_back_in_time_order_without_superseded_versions,
                a_dropped_batch_leaves_nothing,
                quarantine_and_flags_are_kept_per_load_in_line_order,
                models_are_immutable_artifacts_listed_in_the_order_saved,
                many_events_across_loads_come_back_in_exact_order,
                a_load_keeps_its_identity_and_recipe,
                the_latest_identical_load_is_found,
                a_batch_sees_the_current_version_including_its_own_writes,
                overlays_are_kept_per_source_in_the_order_they_last_changed,
                a_snapshot_sees_one_state_while_another_thread_commits,
                batches_are_one_at_a_time,
                every_committed_batch_advances_the_position,
                events_since_says_which_version_each_change_supersedes,
                records_since_gives_the_versions_written_after_a_position,
                events_by_seq_finds_current_and_replaced_versions,
                named_state_is_replaced_whole_and_kept_on_failure,
                updates_of_a_named_state_do_not_lose_each_other,
                journal_entries_are_numbered_per_stream_and_read_by_key,
                linked_entries_are_made_from_the_last_one,
            );
        }
    };
    (@tests $open:path; $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                let fixture = $open();
                super::$test(&*fixture.store);
            }
        )*
    };
}

contract_for!(embedded_store, super::embedded);
contract_for!(embedded_store_keeping_index, super::embedded_keeping_index);
contract_for!(memory_store, super::memory);
