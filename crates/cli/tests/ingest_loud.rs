//! `winsignal ingest` is loud about a load that loses a large share of a field or an outcome: a warning
//! on stderr (also under --quiet and --json) and in `--json`; `--strict` fails and writes nothing.
//! `trace` says which file set each field of a record built from two files.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{winsignal, winsignal_output};

/// Ten won deals whose close time has no offset (all quarantined) and ten lost deals with plain dates.
fn offsetless_won_deals(dir: &Path) -> String {
    let mut text = String::from("opportunity_id,created_at,closed_at,outcome\n");
    for i in 0..10 {
        text.push_str(&format!("W{i},2025-01-01,2025-03-01 10:00:00,won\n"));
    }
    for i in 0..10 {
        text.push_str(&format!("L{i},2025-01-01,2025-03-01,lost\n"));
    }
    let path = dir.join("opportunities.csv");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_load_that_quarantines_every_won_deal_warns_on_stderr_and_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    let file = offsetless_won_deals(dir.path());
    let out = winsignal_output(&data, &["ingest", &file, "--json"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARNING"), "{stderr}");
    assert!(
        stderr.contains("10 of 10 won deals"),
        "the outcome is named: {stderr}"
    );
    assert!(
        stderr.contains("closed_at") && stderr.contains("timezone") && stderr.contains("format"),
        "the field and the fix are named: {stderr}"
    );
    assert!(stderr.contains("--strict"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = json["loads"][0]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w["outcome"] == "won" && w["quarantined"] == 10 && w["of"] == 10),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w["field"] == "closed_at" && w["quarantined"] == 10 && w["of"] == 20),
        "{warnings:?}"
    );
}

#[test]
fn strict_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    let file = offsetless_won_deals(dir.path());
    let out = winsignal_output(&data, &["ingest", &file, "--strict"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--strict") && stderr.contains("nothing") && stderr.contains("won deals"),
        "{stderr}"
    );
    let quality = winsignal(&data, &["quality", "--json"]);
    let q: serde_json::Value = serde_json::from_str(&quality).unwrap();
    assert_eq!(q["loads"].as_array().map(Vec::len), Some(0), "{quality}");
}

#[test]
fn a_clean_load_has_no_warning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    let path = dir.path().join("opportunities.csv");
    std::fs::write(
        &path,
        "opportunity_id,created_at,closed_at,outcome\nW1,2025-01-01,2025-03-01,won\n",
    )
    .unwrap();
    let out = winsignal_output(&data, &["ingest", path.to_str().unwrap(), "--strict"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("WARNING"));
}

#[test]
fn trace_says_which_file_set_each_field() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let deals = write("deals.csv", "lead_id,created,amount\nL1,2025-01-01,100\n");
    let deals_map = write(
        "deals.toml",
        "[[output]]\nkind = \"opportunities\"\n[output.fields]\nopportunity_id = \"lead_id\"\ncreated_at = \"created\"\noutcome = { constant = \"open\" }\namount = \"amount\"\n",
    );
    let closed = write(
        "closed_deals.csv",
        "lead_id,closed_on,result\nL1,2025-04-01,Won\n",
    );
    let closed_map = write(
        "closed.toml",
        "[[output]]\nkind = \"opportunities\"\nupdate = true\n[output.fields]\nopportunity_id = \"lead_id\"\nclosed_at = \"closed_on\"\noutcome = { column = \"result\", values = { Won = \"won\", Lost = \"lost\" } }\n",
    );
    winsignal(&data, &["ingest", &deals, "--mapping", &deals_map]);
    winsignal(&data, &["ingest", &closed, "--mapping", &closed_map]);
    let text = winsignal(&data, &["trace", "opportunity", "L1"]);
    let v2 = text.split("version 2").nth(1).unwrap();
    assert!(v2.contains("closed_deals.csv:2"), "{text}");
    assert!(v2.contains("fields set  closed_at, outcome"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&winsignal(&data, &["trace", "opportunity", "L1", "--json"])).unwrap();
    let set: Vec<&str> = json[0]["fields_set"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        set.contains(&"amount") && set.contains(&"created_at"),
        "{set:?}"
    );
    assert_eq!(
        json[1]["fields_set"],
        serde_json::json!(["closed_at", "outcome"])
    );
}
