//! The embedded store's contract: atomic batches, deduplicated versions, events back in time order.
#![allow(clippy::unwrap_used)]

use winsignal_core::{Account, Activity, ActivityType, Kind, Record, Ts};
use winsignal_store::{EmbeddedStore, LoadSpec, LoadStats, PutOutcome, QuarantinedRow, Store};

fn spec(path: &str) -> LoadSpec {
    LoadSpec {
        source: "test".into(),
        format: "canonical".into(),
        path: path.into(),
        file_hash: "0".into(),
        file_bytes: 0,
        identity: String::new(),
        recipe: Default::default(),
    }
}

fn account(id: &str, name: &str) -> Record {
    Record::Accounts(Account {
        account_id: id.into(),
        name: Some(name.into()),
        ..Default::default()
    })
}

fn activity(id: &str, ts: i64, subject: &str) -> Record {
    Record::Activities(Activity {
        activity_id: id.into(),
        activity_type: ActivityType::Email,
        direction: None,
        status: None,
        rep_id: None,
        account_id: Some("A1".into()),
        opportunity_id: None,
        contact_ids: vec![],
        occurred_at: Ts(ts),
        created_at: None,
        duration_s: None,
        subject: Some(subject.into()),
    })
}

fn put_all(store: &mut EmbeddedStore, records: &[Record]) -> Vec<PutOutcome> {
    let mut batch = store.begin().unwrap();
    let load = batch.start_load(&spec("f.csv")).unwrap();
    let out = records
        .iter()
        .enumerate()
        .map(|(i, r)| batch.put(load, i as u64 + 2, None, r).unwrap())
        .collect();
    batch
        .finish_load(load, &[], &[Kind::Accounts], &LoadStats::default())
        .unwrap();
    batch.commit().unwrap();
    out
}

#[test]
fn records_are_versioned_and_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(
        put_all(&mut store, &[account("A1", "Acme"), account("A2", "Beta")]),
        [PutOutcome::New, PutOutcome::New]
    );
    assert_eq!(
        put_all(
            &mut store,
            &[account("A1", "Acme"), account("A2", "Beta Corp")]
        ),
        [PutOutcome::Unchanged, PutOutcome::Updated]
    );
    let current = store.records(Kind::Accounts).unwrap();
    assert_eq!(current.len(), 2);
    let versions = store.versions(Kind::Accounts, "A2").unwrap();
    assert_eq!(versions.len(), 2);
    assert!(!versions[0].current && versions[1].current);
    assert_eq!(versions[1].origin.load_id, 2);
}

#[test]
fn events_come_back_in_time_order_without_superseded_versions() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    put_all(
        &mut store,
        &[
            activity("e3", 300, "x"),
            activity("e1", 100, "x"),
            activity("e2", 200, "x"),
        ],
    );
    let out = put_all(
        &mut store,
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
    let events: Vec<_> = store
        .events(&[Kind::Activities])
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    let keys: Vec<_> = events.iter().map(|e| (e.key.as_str(), e.ts.0)).collect();
    assert_eq!(keys, [("e0", 50), ("e1", 100), ("e2", 250), ("e3", 300)]);
    assert_eq!(store.event_counts().unwrap()[0], (Kind::Activities, 4));
    let versions = store.versions(Kind::Activities, "e2").unwrap();
    assert_eq!(versions.len(), 2);
    assert!(!versions[0].current && versions[1].current);
    assert!(store
        .events(&[Kind::ProductEvents])
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_dropped_batch_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    {
        let mut batch = store.begin().unwrap();
        let load = batch.start_load(&spec("f.csv")).unwrap();
        batch.put(load, 2, None, &account("A1", "Acme")).unwrap();
        batch.put(load, 3, None, &activity("e1", 1, "x")).unwrap();
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
    let leftover: Vec<_> = std::fs::read_dir(dir.path().join("events"))
        .unwrap()
        .collect();
    assert!(leftover.is_empty(), "{leftover:?}");
    // The store is still usable afterwards.
    put_all(&mut store, &[account("A1", "Acme")]);
    assert_eq!(store.records(Kind::Accounts).unwrap().len(), 1);
}

#[test]
fn models_are_immutable_artifacts_listed_in_the_order_saved_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let model = |id: &str, kind: &str| winsignal_store::ModelRecord {
        model_id: id.into(),
        kind: kind.into(),
        summary: format!("{{\"id\":\"{id}\"}}"),
        body: id.as_bytes().repeat(3),
    };
    {
        let mut store = EmbeddedStore::open(dir.path()).unwrap();
        assert!(store.put_model(&model("m1", "win")).unwrap());
        assert!(store.put_model(&model("m2", "win")).unwrap());
        assert!(store.put_model(&model("c1", "close")).unwrap());
        // Saving the same id again changes nothing, even with another body.
        let mut again = model("m1", "win");
        again.body = b"different".to_vec();
        assert!(!store.put_model(&again).unwrap());
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let wins = store.models(Some("win")).unwrap();
    let ids: Vec<(&str, u64)> = wins.iter().map(|m| (m.model_id.as_str(), m.seq)).collect();
    assert_eq!(ids, [("m1", 1), ("m2", 2)]);
    assert_eq!(store.models(None).unwrap().len(), 3);
    assert_eq!(store.model("m1").unwrap().unwrap().body, b"m1m1m1");
    assert_eq!(store.model("nope").unwrap(), None);
}

/// Enough events for many decode batches on every thread (batches are 2,048 frames), in loads whose
/// times interleave, with some events updated by a later load: the stream must be exactly the
/// sequential (time, arrival) order of the current versions.
#[test]
fn many_events_across_loads_come_back_in_exact_order_from_the_parallel_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let mut rng = winsignal_core::rng::Rng::new(7);
    let mut expected = std::collections::BTreeMap::new();
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
        put_all(&mut store, &records);
    }
    let got: Vec<(i64, String)> = store
        .events(&[Kind::Activities])
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.ts.0, e.key)
        })
        .collect();
    let want: Vec<(i64, String)> = expected.into_iter().map(|((ts, _), id)| (ts, id)).collect();
    assert_eq!(got.len(), 27_000 - 900);
    assert_eq!(got, want);
}

#[test]
fn a_reader_dropped_early_stops_its_threads_and_the_store_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let records: Vec<Record> = (0..20_000)
        .map(|i| activity(&format!("e{i}"), i, "x"))
        .collect();
    put_all(&mut store, &records);
    for _ in 0..20 {
        let first: Vec<_> = store
            .events(&[Kind::Activities])
            .unwrap()
            .take(3)
            .map(|e| e.unwrap().key)
            .collect();
        assert_eq!(first, ["e0", "e1", "e2"]);
    }
    put_all(&mut store, &[activity("late", 20_000, "x")]);
    assert_eq!(store.events(&[Kind::Activities]).unwrap().count(), 20_001);
}

#[test]
fn a_damaged_segment_is_an_error_not_a_short_stream() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let records: Vec<Record> = (0..10_000)
        .map(|i| activity(&format!("e{i}"), i, "x"))
        .collect();
    put_all(&mut store, &records);
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
    let errors = results.iter().filter(|r| r.is_err()).count();
    assert_eq!(errors, 1, "one error, then the stream ends");
    assert!(results.last().unwrap().is_err());
    assert!(results.len() < 10_000);
}

#[test]
fn a_write_blocked_by_another_writer_says_another_process_is_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut holder = EmbeddedStore::open(dir.path()).unwrap();
    let held = holder.begin().unwrap();
    let mut waiting = EmbeddedStore::open(dir.path()).unwrap();
    waiting
        .set_lock_wait(std::time::Duration::from_millis(200))
        .unwrap();
    let err = match waiting.begin() {
        Ok(_) => panic!("a second writer must not get the lock"),
        Err(e) => e,
    };
    assert!(
        matches!(err, winsignal_store::StoreError::Busy { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("another process is writing the workspace")
            && text.contains(&dir.path().display().to_string())
            && !text.contains("Error code"),
        "{text}"
    );
    // Reading is never blocked, and the lock is free again once the other batch ends.
    assert!(waiting.loads().unwrap().is_empty());
    drop(held);
    assert!(waiting.begin().is_ok());
}

#[test]
fn a_load_keeps_its_identity_and_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let mut batch = store.begin().unwrap();
    let mut s = spec("f.csv");
    s.identity = "abc123".into();
    s.recipe.insert("connector".into(), "canonical".into());
    let load = batch.start_load(&s).unwrap();
    batch
        .finish_load(load, &[], &[], &LoadStats::default())
        .unwrap();
    batch.commit().unwrap();
    let loads = EmbeddedStore::open(dir.path()).unwrap().loads().unwrap();
    assert_eq!(loads[0].identity, "abc123");
    assert_eq!(loads[0].recipe["connector"], "canonical");
}

#[test]
fn a_batch_sees_the_current_version_including_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    put_all(&mut store, &[account("A1", "Acme")]);
    let mut batch = store.begin().unwrap();
    let load = batch.start_load(&spec("g.csv")).unwrap();
    assert_eq!(
        batch.current(Kind::Accounts, "A1").unwrap(),
        Some(account("A1", "Acme"))
    );
    assert_eq!(batch.current(Kind::Accounts, "A2").unwrap(), None);
    batch
        .put(load, 2, None, &account("A1", "Acme Inc"))
        .unwrap();
    batch.put(load, 3, None, &account("A2", "Beta")).unwrap();
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

#[test]
fn overlays_are_kept_per_source_in_the_order_they_last_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
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
