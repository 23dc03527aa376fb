//! Records and loads the store tests write.
#![allow(dead_code, clippy::unwrap_used)]

use winsignal_core::{Account, Activity, ActivityType, Kind, Record, Ts};
use winsignal_store::{LoadSpec, LoadStats, PutOutcome, Store};

pub fn spec(path: &str) -> LoadSpec {
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

pub fn account(id: &str, name: &str) -> Record {
    Record::Accounts(Account {
        account_id: id.into(),
        name: Some(name.into()),
        ..Default::default()
    })
}

pub fn activity(id: &str, ts: i64, subject: &str) -> Record {
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

/// Writes the records as one load in one batch.
pub fn put_all(store: &dyn Store, records: &[Record]) -> Vec<PutOutcome> {
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
