//! `winsignal users`: tokens shown once and stored hashed, roles tied to the CRM's reps, revocation,
//! and bad requests refused with what to do.
#![allow(clippy::unwrap_used)]

mod common;

use common::{winsignal, winsignal_fails};
use std::path::Path;

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ingest/tests/fixtures/canonical")
        .join(rel)
        .display()
        .to_string()
}

/// Every file under `dir`, as bytes.
fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
}

#[test]
fn users_get_tokens_that_are_stored_only_as_hashes_and_can_be_revoked() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    winsignal(&data, &["ingest", &fixture("reps.csv")]);
    let token = winsignal(&data, &["users", "add", "alice", "--role", "revops"]);
    let token = token.trim();
    assert!(
        token.starts_with("wst_") && token.len() == 4 + 8 + 1 + 64,
        "{token}"
    );
    let rep_token = winsignal(
        &data,
        &["users", "add", "rita", "--role", "rep", "--rep-id", "R1"],
    );
    let second = winsignal(&data, &["users", "token", "alice"]);
    assert_ne!(second.trim(), token);

    // No file of the workspace holds a token's secret.
    let mut all = Vec::new();
    files(&data, &mut all);
    for secret in [&token[13..], &rep_token.trim()[13..], &second.trim()[13..]] {
        for (path, bytes) in &all {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{path} holds a token"
            );
        }
    }

    let listed: serde_json::Value =
        serde_json::from_str(&winsignal(&data, &["users", "list", "--json"])).unwrap();
    let users = listed["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["name"], "alice");
    assert_eq!(users[0]["role"], "revops");
    assert_eq!(users[0]["tokens"].as_array().unwrap().len(), 2);
    assert_eq!(users[1]["rep_id"], "R1");
    let first_id = &token[4..12];
    assert_eq!(users[0]["tokens"][0]["id"], first_id);

    let out = winsignal(&data, &["users", "revoke", "alice", "--token", first_id]);
    assert!(out.contains("Revoked 1 token of alice"), "{out}");
    let listed: serde_json::Value =
        serde_json::from_str(&winsignal(&data, &["users", "list", "--json"])).unwrap();
    assert!(listed["users"][0]["tokens"][0]["revoked_at"].is_string());
    assert!(listed["users"][0]["tokens"][1]["revoked_at"].is_null());
    let out = winsignal(&data, &["users", "revoke", "alice"]);
    assert!(out.contains("Revoked 1 token of alice"), "{out}");
}

#[test]
fn bad_user_requests_are_refused_with_what_to_do() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    winsignal(&data, &["ingest", &fixture("reps.csv")]);
    winsignal(&data, &["users", "add", "bob", "--role", "admin"]);
    let cases: [(&[&str], &str); 6] = [
        (
            &["users", "add", "bob", "--role", "admin"],
            "users token bob",
        ),
        (&["users", "add", "rita", "--role", "rep"], "--rep-id"),
        (
            &["users", "add", "rita", "--role", "rep", "--rep-id", "NOPE"],
            "no rep with id \"NOPE\"",
        ),
        (
            &["users", "add", "dan", "--role", "revops", "--rep-id", "R1"],
            "--rep-id is for",
        ),
        (&["users", "token", "nobody"], "no user nobody"),
        (
            &["users", "revoke", "bob", "--token", "00000000"],
            "has no token 00000000",
        ),
    ];
    for (args, expected) in cases {
        let err = winsignal_fails(&data, args);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .args([
            "--data",
            data.to_str().unwrap(),
            "users",
            "add",
            "x",
            "--role",
            "owner",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin, revops, manager, rep"));
}
