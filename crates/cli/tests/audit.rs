//! `winsignal audit`, through the binary: loads, models and user changes are recorded with who made
//! them, the log verifies, and an entry changed in the store's file is found.
#![allow(clippy::unwrap_used)]

mod common;
use common::{winsignal, winsignal_fails};
use serde_json::Value;

#[test]
fn loads_and_user_changes_are_audited_and_tampering_is_found() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/canonical");
    winsignal(&data, &["ingest", examples]);
    winsignal(&data, &["users", "add", "alice", "--role", "admin"]);
    winsignal(&data, &["users", "token", "alice"]);
    winsignal(&data, &["users", "revoke", "alice"]);
    let listed: Value =
        serde_json::from_str(&winsignal(&data, &["audit", "list", "--json"])).unwrap();
    let entries = listed["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    let loads = actions.iter().filter(|a| **a == "load").count();
    assert!(loads >= 5, "{actions:?}");
    assert_eq!(
        &actions[loads..],
        ["user.add", "token.add", "token.revoke"],
        "{actions:?}"
    );
    for (k, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"].as_u64().unwrap(), k as u64 + 1);
        assert!(e["actor"].as_str().unwrap().starts_with("local:"), "{e}");
        if k > 0 {
            assert_eq!(e["prev"], entries[k - 1]["hash"]);
        }
    }
    assert_eq!(entries[loads]["subject"], "alice");
    assert_eq!(entries[loads]["details"]["role"], "admin");
    // The token itself is never in the log; its public id is.
    assert!(!listed.to_string().contains("wst_"), "{listed}");

    let text = winsignal(&data, &["audit", "verify"]);
    assert!(text.contains("intact"), "{text}");
    let v: Value = serde_json::from_str(&winsignal(&data, &["audit", "verify", "--json"])).unwrap();
    assert_eq!(v["problems"], serde_json::json!([]));
    assert_eq!(v["head"], v["recorded_head"]);

    // Someone with the file makes alice a rep after the fact.
    let conn = rusqlite::Connection::open(data.join("store.sqlite")).unwrap();
    let seq = loads as i64 + 1;
    let changed = conn
        .execute(
            "UPDATE journal SET body = CAST(replace(CAST(body AS TEXT), '\"admin\"', '\"rep\"') AS BLOB) \
             WHERE stream = 'audit' AND seq = ?1",
            [seq],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let err = winsignal_fails(&data, &["audit", "verify"]);
    assert!(err.contains("does not verify"), "{err}");
    let out = common::winsignal_output(&data, &["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("entry {seq}: was changed after it was written")),
        "{stdout}"
    );
}
