//! End-to-end tests of the `winsignal` binary: the demo, quality and trace output, and atomic loads
//! under a real `kill -9` of the ingesting process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use winsignal_core::Kind;
use winsignal_store::{EmbeddedStore, StoreRead};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_winsignal"));
    c.env_remove("WINSIGNAL_DATA").env_remove("WINSIGNAL_FAULT");
    c
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ingest/tests/fixtures")
        .join(rel)
}

fn run_ok(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "winsignal {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn demo_quality_and_trace_work_end_to_end() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    let data = data.to_str().unwrap();
    let out = run_ok(&[
        "--data", data, "--quiet", "demo", "--scale", "0.02", "--seed", "7",
    ]);
    assert!(out.contains("winsignal demo — seed 7"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("Quarantined"))
        .expect("quarantine line");
    // Every row the generator planted as bad is quarantined, and nothing else.
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect();
    assert_eq!(nums[0], nums[1], "{line}");

    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&["--data", data, "quality", "--json"])).unwrap();
    let loads = json["loads"].as_array().unwrap();
    assert_eq!(loads.len(), 12);
    assert!(loads.iter().all(|l| l["balanced"] == true));
    assert!(json["quarantine"]["total"].as_u64().unwrap() > 0);
    assert!(json["identity"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["kind"] == "product_events"));

    // Trace an opportunity by its 15-character id: the store holds the 18-character form.
    let opp_csv =
        std::fs::read_to_string(Path::new(data).join("demo-input/salesforce/Opportunity.csv"))
            .unwrap();
    let id18 = opp_csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let traced = run_ok(&["--data", data, "trace", "opportunity", &id18[..15]]);
    assert!(traced.contains("salesforce:Opportunity"), "{traced}");
    assert!(traced.contains("Opportunity.csv:2"), "{traced}");
    let tj: serde_json::Value = serde_json::from_str(&run_ok(&[
        "--data",
        data,
        "trace",
        "opportunity",
        &id18,
        "--json",
    ]))
    .unwrap();
    assert_eq!(tj[0]["line"], 2);
    assert_eq!(tj[0]["record"]["record"]["opportunity_id"], id18.as_str());

    // Bad input gets a clear error naming the file and column.
    let bad = ws.path().join("activities.csv");
    std::fs::write(&bad, "activity_id,type\nX1,call\n").unwrap();
    let out = bin()
        .args(["--data", data, "ingest"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("activities.csv") && err.contains("occurred_at"),
        "{err}"
    );
}

/// Counts everything a user can see in the store.
fn snapshot(data: &Path) -> (usize, usize, usize, Vec<(Kind, u64)>) {
    let store = EmbeddedStore::open(data).unwrap();
    (
        store.loads().unwrap().len(),
        store.records(Kind::Accounts).unwrap().len(),
        store.quarantine(None).unwrap().len(),
        store.event_counts().unwrap(),
    )
}

fn big_activities(dir: &Path, rows: usize) -> PathBuf {
    let path = dir.join("activities.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(f, "activity_id,type,direction,status,rep_id,account_id,opportunity_id,contact_ids,occurred_at,created_at,duration_s,subject").unwrap();
    for i in 0..rows {
        let day = 1 + i % 28;
        writeln!(
            f,
            "K{i},email,outbound,completed,R1,A1,O1,C1,2024-03-{day:02}T10:00:00Z,,,Mail {i}"
        )
        .unwrap();
        if i % 1000 == 0 {
            writeln!(f, "KBAD{i},tweet,,,,,,,2024-03-01T10:00:00Z,,,bad").unwrap();
        }
    }
    path
}

/// `demo` replaces only a demo's workspace, and refuses another without touching it: not even opened
/// (opening moves an older workspace's side files into the store, or migrates its format).
#[test]
fn demo_refuses_a_workspace_that_is_not_a_demo_without_changing_it() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    run_ok(&[
        "--data",
        data.to_str().unwrap(),
        "--quiet",
        "ingest",
        fixture("canonical/accounts.csv").to_str().unwrap(),
    ]);
    // An older workspace's registry file, which opening the store would move in.
    let side = data.join("behaviour-versions.json");
    std::fs::write(&side, r#"{"versions":{}}"#).unwrap();
    let store_before = std::fs::read(data.join("store.sqlite")).unwrap();
    let out = bin()
        .args(["--data", data.to_str().unwrap(), "--quiet", "demo"])
        .args(["--scale", "0.05"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a demo"), "{stderr}");
    assert!(
        side.exists(),
        "the side file was moved: the store was opened"
    );
    assert_eq!(
        std::fs::read(data.join("store.sqlite")).unwrap(),
        store_before
    );
}

#[test]
fn a_load_killed_before_commit_leaves_the_store_as_it_was() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    run_ok(&[
        "--data",
        data.to_str().unwrap(),
        "--quiet",
        "ingest",
        fixture("canonical/accounts.csv").to_str().unwrap(),
    ]);
    let before = snapshot(&data);
    let big = big_activities(ws.path(), 100_000);

    let mut child = bin()
        .args(["--data", data.to_str().unwrap(), "--quiet", "ingest"])
        .arg(&big)
        .env("WINSIGNAL_FAULT", "pause:before-commit")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the ingest ended before reaching the fault point"
        );
        if line.contains("WINSIGNAL_FAULT reached before-commit") {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    // Segments are written and renamed; only the SQLite commit is missing. Kill it there.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        snapshot(&data),
        before,
        "a killed load must leave nothing visible"
    );

    // The next load cleans up the unregistered segment and works normally.
    run_ok(&[
        "--data",
        data.to_str().unwrap(),
        "--quiet",
        "ingest",
        big.to_str().unwrap(),
    ]);
    let after = snapshot(&data);
    assert_eq!(after.0, before.0 + 1);
    assert_eq!(
        after
            .3
            .iter()
            .find(|(k, _)| *k == Kind::Activities)
            .unwrap()
            .1,
        100_000
    );
    let segments = std::fs::read_dir(data.join("events")).unwrap().count();
    assert_eq!(
        segments, 1,
        "the interrupted load's segment file was removed"
    );
}

#[test]
fn loads_killed_at_arbitrary_moments_are_all_or_nothing() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    let big = big_activities(ws.path(), 60_000);
    let mut complete_loads = 0;
    for delay_ms in [30, 120, 250, 500, 900] {
        let mut child = bin()
            .args(["--data", data.to_str().unwrap(), "--quiet", "ingest"])
            .arg(&big)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            complete_loads += 1;
        }
        let (loads, _, quarantined, events) = snapshot(&data);
        let n_events = events
            .iter()
            .find(|(k, _)| *k == Kind::Activities)
            .unwrap()
            .1;
        // Either the load is there whole (60,000 events, 60 quarantined rows per load) or not at all.
        assert!(
            n_events == 0 || n_events == 60_000,
            "partial load visible: {n_events} events"
        );
        // Quarantine rows belong to committed loads only: 60 for each (every load keeps its own).
        assert_eq!(
            quarantined,
            60 * loads,
            "{quarantined} quarantined, {loads} loads, {n_events} events"
        );
        assert_eq!(loads == 0, n_events == 0);
        assert!(loads <= complete_loads + 1);
    }
}

#[test]
fn snapshots_behaviours_explain_graph_and_export_work_end_to_end() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    let data = data.to_str().unwrap();
    let out = run_ok(&[
        "--data", data, "--quiet", "demo", "--scale", "0.02", "--seed", "3",
    ]);
    assert!(out.contains("Behaviour adoption"), "{out}");
    assert!(out.contains("exec_engaged"), "{out}");

    // CSV, its meta file, and JSON agree on the number of snapshots and the catalog versions.
    let csv_path = ws.path().join("snap.csv");
    run_ok(&[
        "--data",
        data,
        "-q",
        "snapshots",
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(&header[..3], &["opportunity_id", "landmark", "as_of"]);
    assert!(header.contains(&"exec_engaged") && header.contains(&"exec_engaged_measure"));
    assert_eq!(header.last(), Some(&"amount"));
    let rows = csv.lines().count() - 1;
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path().join("snap.meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["rows"], rows);
    let json: serde_json::Value =
        serde_json::from_str(&run_ok(&["--data", data, "-q", "snapshots", "--json"])).unwrap();
    let snaps = json["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), rows);
    assert!(rows > 100, "{rows} snapshots");
    assert_eq!(json["catalog"]["definitions"][0]["id"], "exec_engaged");
    let parquet = ws.path().join("snap.parquet");
    run_ok(&[
        "--data",
        data,
        "-q",
        "snapshots",
        "--out",
        parquet.to_str().unwrap(),
    ]);
    assert_eq!(&std::fs::read(&parquet).unwrap()[..4], b"PAR1");

    // explain-feature lists the events behind a yes, each traced to its file and line.
    let yes = snaps
        .iter()
        .find(|s| s["behaviours"]["exec_engaged"] == true)
        .expect("an exec-engaged deal");
    let opp = yes["opportunity_id"].as_str().unwrap();
    let lm = yes["landmark"].as_str().unwrap();
    let ex: serde_json::Value = serde_json::from_str(&run_ok(&[
        "--data",
        data,
        "explain-feature",
        opp,
        "exec_engaged",
        "--landmark",
        lm,
        "--json",
    ]))
    .unwrap();
    assert_eq!(ex["behaviour"], true);
    let contributions = ex["contributions"].as_array().unwrap();
    assert_eq!(contributions.len() as f64, ex["value"].as_f64().unwrap());
    for c in contributions {
        assert!(
            c["origin"]["file"].as_str().unwrap().ends_with(".csv"),
            "{c}"
        );
        assert!(c["origin"]["line"].as_u64().unwrap() >= 2, "{c}");
    }
    let bad = bin()
        .args([
            "--data",
            data,
            "explain-feature",
            opp,
            "exec_engaged",
            "--landmark",
            "stage:Nowhere",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("expected one of this opportunity's landmarks"));

    // The graph shows the deal's account.
    let account = yes["account_id"].as_str().unwrap();
    let g: serde_json::Value = serde_json::from_str(&run_ok(&[
        "--data", data, "-q", "graph", "account", account, "--json",
    ]))
    .unwrap();
    assert_eq!(g["account_id"], account);
    assert!(g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["to"] == opp));

    // Export writes every table.
    let dir = ws.path().join("export");
    let out = run_ok(&[
        "--data",
        data,
        "-q",
        "export",
        "--out",
        dir.to_str().unwrap(),
    ]);
    for t in [
        "activities",
        "product_events",
        "marketing_touches",
        "support_tickets",
        "contacts",
        "opportunities",
        "landmarks",
    ] {
        assert!(dir.join(format!("{t}.parquet")).exists(), "{t}: {out}");
    }

    // Catalogs: errors name file, line and field; a changed meaning under a used version is refused.
    let cat = ws.path().join("my.toml");
    std::fs::write(&cat, "[[behaviour]]\nid = \"a\"\nversion = 1\ntitle = \"A\"\ndescription = \"d\"\nreads = { kind = \"activities\" }\naggregate = \"mean\"\n").unwrap();
    let bad = bin()
        .args(["behaviours", "check"])
        .arg(&cat)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("my.toml:7: behaviour[a].aggregate"), "{err}");
    std::fs::write(&cat, "[[behaviour]]\nid = \"a\"\nversion = 1\ntitle = \"A\"\ndescription = \"d\"\nreads = { kind = \"activities\" }\naggregate = \"count\"\n").unwrap();
    assert!(run_ok(&["behaviours", "check", cat.to_str().unwrap()]).contains("valid"));
    run_ok(&[
        "--data",
        data,
        "-q",
        "snapshots",
        "--catalog",
        cat.to_str().unwrap(),
    ]);
    std::fs::write(&cat, "[[behaviour]]\nid = \"a\"\nversion = 1\ntitle = \"A\"\ndescription = \"d\"\nreads = { kind = \"activities\" }\naggregate = \"exists\"\n").unwrap();
    let bad = bin()
        .args(["--data", data, "-q", "snapshots", "--catalog"])
        .arg(&cat)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("behaviour a version 1") && err.contains("version 2"),
        "{err}"
    );
}

#[test]
fn the_engine_checkpoint_is_reused_only_for_the_store_it_was_taken_of() {
    let ws = tempfile::tempdir().unwrap();
    let data_dir = ws.path().join("ws");
    let data = data_dir.to_str().unwrap();
    run_ok(&[
        "--data", data, "--quiet", "demo", "--scale", "0.02", "--seed", "5",
    ]);
    let cache = data_dir.join("state").join("engine-state.state");
    // The key the checkpoint was saved under, as the store keeps it (it names the log position).
    let header = |p: &Path| {
        let bytes = std::fs::read(p).unwrap();
        let at = bytes
            .windows(b"log position".len())
            .position(|w| w == b"log position")
            .unwrap();
        let end = at
            + bytes[at..]
                .iter()
                .position(|b| !b" log position0123456789".contains(b))
                .unwrap();
        String::from_utf8(bytes[at..end].to_vec()).unwrap()
    };
    // The demo's feature pass saved the state; the next command restores it and gets the same answer.
    assert!(cache.exists());
    let snapshots = || run_ok(&["--data", data, "-q", "snapshots", "--json"]);
    let first = snapshots();
    let second = snapshots();
    assert_eq!(first, second);

    // A checkpoint with the right header but a damaged body is not trusted: the state is replayed
    // (same answer) and the checkpoint rewritten.
    let key = header(&cache);
    let mut damaged = std::fs::read(&cache).unwrap();
    let body = damaged.len() / 2;
    damaged.truncate(body + 1000);
    damaged[body..].iter_mut().for_each(|b| *b = 0xff);
    std::fs::write(&cache, &damaged).unwrap();
    assert_eq!(snapshots(), first);
    assert!(std::fs::metadata(&cache).unwrap().len() > damaged.len() as u64);

    // New data moves the log position: the next command restores the checkpoint, applies only the
    // new activity (a catch-up this small does not save a new checkpoint), and equals a replay from
    // scratch.
    let json: serde_json::Value = serde_json::from_str(&first).unwrap();
    let opp = json["snapshots"][0]["opportunity_id"].as_str().unwrap();
    let extra = ws.path().join("activities.csv");
    std::fs::write(
        &extra,
        format!(
            "activity_id,type,status,opportunity_id,occurred_at\nlate-1,meeting,completed,{opp},2020-01-01T00:00:00Z\n"
        ),
    )
    .unwrap();
    run_ok(&["--data", data, "-q", "ingest", extra.to_str().unwrap()]);
    let after_ingest = snapshots();
    assert_ne!(after_ingest, first);
    assert_eq!(
        header(&cache),
        key,
        "the checkpoint was caught up from, not replaced"
    );
    std::fs::remove_file(&cache).unwrap();
    assert_eq!(snapshots(), after_ingest);
    assert_ne!(
        header(&cache),
        key,
        "the replay saved a checkpoint at the new position"
    );
}
