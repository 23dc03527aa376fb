//! Reloads that really load, as a user sees them: a corrected mapping reads the file again, refused rows
//! count once however often a file is loaded, and an ingest blocked by another writer says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::winsignal;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_winsignal"));
    c.env_remove("WINSIGNAL_DATA")
        .env_remove("WINSIGNAL_FAULT")
        .env_remove("WINSIGNAL_LOCK_WAIT");
    c
}

fn write_mapping(path: &Path, date_format: &str) {
    std::fs::write(
        path,
        format!(
            "source = \"crm:deals\"\ndate_format = \"{date_format}\"\n[[output]]\nkind = \"opportunities\"\n\
             [output.fields]\nopportunity_id = \"id\"\nname = \"title\"\ncreated_at = \"opened\"\n\
             outcome = {{ constant = \"open\" }}\n"
        ),
    )
    .unwrap();
}

/// The numbers of the first table row whose source is `source`.
fn counts(table: &str, source: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.starts_with(source))
        .unwrap_or_else(|| panic!("no line for {source} in\n{table}"))
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn a_corrected_mapping_loads_the_rows_it_refused_before() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    let csv = dir.path().join("deals.csv");
    std::fs::write(
        &csv,
        "id,title,opened\nD1,One,05/03/2024\nD2,Two,06/03/2024\nD3,Three,07/03/2024\n",
    )
    .unwrap();
    let toml = dir.path().join("deals.toml");
    let (csv, toml_s) = (csv.to_str().unwrap(), toml.to_str().unwrap());
    write_mapping(&toml, "%Y-%m-%d");
    let wrong = winsignal(&data, &["ingest", "--mapping", toml_s, csv]);
    // rows, accepted, new, updated, unchanged, quarantined, flagged
    assert_eq!(
        counts(&wrong, "crm:deals"),
        ["3", "0", "0", "0", "0", "3", "0"]
    );
    write_mapping(&toml, "%d/%m/%Y");
    let fixed = winsignal(&data, &["ingest", "--mapping", toml_s, csv]);
    // Flagged: the deals have no account and no rep.
    assert_eq!(
        counts(&fixed, "crm:deals"),
        ["3", "3", "3", "0", "0", "0", "3"]
    );
    let trace = winsignal(&data, &["trace", "opportunity", "D1"]);
    assert!(trace.contains("deals.csv"), "{trace}");
    // The identity of each load, and what went into it, is in quality --json.
    let quality: serde_json::Value =
        serde_json::from_str(&winsignal(&data, &["quality", "--json"])).unwrap();
    let loads = quality["loads"].as_array().unwrap();
    assert_ne!(loads[0]["identity"], loads[1]["identity"]);
    assert_ne!(loads[0]["recipe"]["mapping"], loads[1]["recipe"]["mapping"]);
    assert_eq!(loads[0]["recipe"]["file"], loads[1]["recipe"]["file"]);
    assert_eq!(quality["quarantine"]["total"], 0);
}

#[test]
fn quality_counts_a_refused_row_once_however_often_its_file_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    let csv = dir.path().join("accounts.csv");
    std::fs::write(
        &csv,
        "account_id,name,employees\nA1,Acme,10\nA2,Beta,many\n",
    )
    .unwrap();
    for _ in 0..3 {
        winsignal(&data, &["ingest", csv.to_str().unwrap()]);
    }
    let quality: serde_json::Value =
        serde_json::from_str(&winsignal(&data, &["quality", "--json"])).unwrap();
    assert_eq!(quality["quarantine"]["total"], 1);
    assert_eq!(quality["quarantine"]["rows_read"], 2);
    assert_eq!(quality["quarantine"]["in_earlier_loads"], 2);
    let text = winsignal(&data, &["quality"]);
    assert!(
        text.contains(
            "QUARANTINED: 1 rows (of 2 read by the latest load of each file; 2 more refused by earlier loads of files loaded again since)"
        ),
        "{text}"
    );
}

#[test]
fn an_ingest_blocked_by_another_writer_says_another_process_is_writing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    let csv = dir.path().join("accounts.csv");
    std::fs::write(&csv, "account_id,name\nA1,Acme\n").unwrap();
    // The first ingest holds the workspace's write lock, paused just before it commits.
    let mut holder = bin()
        .arg("--data")
        .arg(&data)
        .args(["--quiet", "ingest"])
        .arg(&csv)
        .env("WINSIGNAL_FAULT", "pause:before-commit")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(holder.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the first ingest ended before reaching the fault point"
        );
        if line.contains("WINSIGNAL_FAULT reached before-commit") {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    let blocked = bin()
        .arg("--data")
        .arg(&data)
        .args(["--quiet", "ingest"])
        .arg(&csv)
        .env("WINSIGNAL_LOCK_WAIT", "1")
        .output()
        .unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(blocked.status.code(), Some(1));
    let err = String::from_utf8_lossy(&blocked.stderr);
    assert!(
        err.contains("another process is writing the workspace")
            && err.contains("WINSIGNAL_LOCK_WAIT")
            && !err.contains("Error code"),
        "{err}"
    );
}
