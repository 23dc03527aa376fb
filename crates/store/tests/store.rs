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
