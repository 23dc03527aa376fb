//! Deals that close the day they are created (issue 14, item 5): in a date-only export such a deal has
//! no time open, so no landmark and no snapshot. They used to drop out of discovery and training
//! without a word; now `quality`, `discover` and `train` count them. The same flat data, without reps,
//! must not be described as "clustered by rep".
#![allow(clippy::unwrap_used)]

mod common;
use common::winsignal;

use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// A flat pipeline export without reps: 400 closed deals over two segments (Enterprise wins more),
/// of which every 25th closes the day it was created (16 deals: 8 won, 8 lost), and 10 open deals.
fn company(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut accounts = String::from("account_id,name,segment,industry\n");
    for a in 0..50 {
        let segment = ["SMB", "Enterprise"][a % 2];
        writeln!(accounts, "A{a:02},Account {a},{segment},Software").unwrap();
    }
    let mut opps = String::from("opportunity_id,account_id,amount,created_at,closed_at,outcome\n");
    for i in 0..400usize {
        let account = i % 50;
        let won = if i % 25 == 0 {
            (i / 25) % 2 == 0
        } else if account % 2 == 1 {
            i % 5 != 0
        } else {
            i % 5 == 0
        };
        let created = i % 300;
        let open_days = if i % 25 == 0 { 0 } else { 20 + i % 40 };
        writeln!(
            opps,
            "O{i:04},A{account:02},{},{},{},{}",
            5_000 + 100 * (i % 9),
            date(created),
            date(created + open_days),
            if won { "won" } else { "lost" }
        )
        .unwrap();
    }
    for i in 400..410usize {
        writeln!(opps, "O{i:04},A{:02},7000,{},,open", i % 50, date(350)).unwrap();
    }
    std::fs::write(dir.join("accounts.csv"), accounts).unwrap();
    std::fs::write(dir.join("opportunities.csv"), opps).unwrap();
}

/// `2024-01-01` plus `d` days, as `YYYY-MM-DD` (2024 is a leap year; `d` < 366).
fn date(d: usize) -> String {
    const MONTHS: [usize; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let (mut m, mut rest) = (0, d);
    while rest >= MONTHS[m] {
        rest -= MONTHS[m];
        m += 1;
    }
    format!("2024-{:02}-{:02}", m + 1, rest + 1)
}

#[test]
fn deals_closed_at_creation_are_counted_wherever_they_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    company(&dir.path().join("in"));
    let data = dir.path().join("ws");
    winsignal(&data, &["ingest", dir.path().join("in").to_str().unwrap()]);

    let quality: Value = serde_json::from_str(&winsignal(&data, &["quality", "--json"])).unwrap();
    let flag = quality["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "closed_at_creation")
        .unwrap_or_else(|| panic!("no closed_at_creation flag: {}", quality["flags"]));
    assert_eq!(flag["count"], 16, "{flag}");

    let d: Value = serde_json::from_str(&winsignal(
        &data,
        &["discover", "--outcome", "win", "--json"],
    ))
    .unwrap();
    let u = &d["unobserved"];
    assert_eq!(
        (u["won"].as_u64(), u["lost"].as_u64()),
        (Some(8), Some(8)),
        "{u}"
    );
    assert_eq!(u["closed_at_creation"], 16);
    assert_eq!(u["examples"][0], "O0000");
    // No deal has a rep: the errors are robust by deal, and said to be.
    assert_eq!(d["cluster"], "deal");
    let text = winsignal(&data, &["discover", "--outcome", "win"]);
    assert!(
        text.contains("16 closed deals (8 won, 8 lost) left out"),
        "{text}"
    );
    assert!(!text.contains("clustered by rep"), "{text}");
    assert!(text.contains("robust standard errors by deal"), "{text}");

    let snapshots = winsignal(&data, &["snapshots"]);
    assert!(
        snapshots.contains("16 closed deals (8 won, 8 lost) left out"),
        "{snapshots}"
    );
    assert!(
        !snapshots.contains("events and records replayed"),
        "{snapshots}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .args([
            "--data",
            data.to_str().unwrap(),
            "--quiet",
            "train",
            "--json",
        ])
        .output()
        .unwrap();
    let t: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let w = t["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["code"] == "closed_deals_left_out")
        .unwrap_or_else(|| panic!("no closed_deals_left_out warning: {}", t["warnings"]));
    assert_eq!(w["refuses"], false);
    assert!(
        w["message"].as_str().unwrap().contains("16 closed deals"),
        "{w}"
    );
}

/// Data that reaches a terminal or a spreadsheet (issue 14, item 5): an account name carrying escape
/// sequences that would retitle and clear the terminal is printed with them defused, and a deal id that
/// a spreadsheet would run as a formula is written to CSV as text.
#[test]
fn control_sequences_and_formulas_from_the_data_are_defused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    company(&input);
    let accounts = std::fs::read_to_string(input.join("accounts.csv")).unwrap();
    let accounts = accounts.replace(
        "A01,Account 1,",
        "A01,\"Acme\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\",",
    );
    std::fs::write(input.join("accounts.csv"), accounts).unwrap();
    let opps = std::fs::read_to_string(input.join("opportunities.csv")).unwrap();
    let opps = opps.replace("\nO0007,", "\n\"=HYPERLINK(\"\"http://x\"\")\",");
    std::fs::write(input.join("opportunities.csv"), opps).unwrap();
    let data = dir.path().join("ws");
    winsignal(&data, &["ingest", input.to_str().unwrap()]);

    let text = winsignal(&data, &["trace", "account", "A01"]);
    assert!(text.contains("Acme"), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\u{9b}'),
        "{text:?}"
    );
    // JSON keeps the value as it is (escaped by JSON itself).
    let json = winsignal(&data, &["trace", "account", "A01", "--json"]);
    assert!(json.contains("Acme\\u001b]0;pwned"), "{json}");

    let csv = dir.path().join("snapshots.csv");
    winsignal(&data, &["snapshots", "--out", csv.to_str().unwrap()]);
    let written = std::fs::read_to_string(&csv).unwrap();
    assert!(
        written.contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
        "the formula is written as text: {}",
        written
            .lines()
            .find(|l| l.contains("HYPERLINK"))
            .unwrap_or("(none)")
    );
    assert!(!written.contains("\n=HYPERLINK") && !written.contains(",=HYPERLINK"));
    // Negative numbers stay numbers.
    assert!(!written.contains("'-"), "numbers are not escaped");
}

const FLAT_CATALOG: &str = r#"
name = "flat test"
controls = []
[landmarks]
stages = true
ages_days = [30]
[[behaviour]]
id = "enterprise"
version = 1
title = "Enterprise account"
description = "The deal's account is an Enterprise one."
reads = { kind = "attribute", attribute = "account.segment", equals = "Enterprise" }
aggregate = "value"
threshold = "== 1"
"#;

/// `score` and `explain` used the built-in catalog unless told otherwise, so a model trained with
/// another catalog could not score without `--catalog` (issue 14, item 5), and the error did not say
/// which flag to use. The model now keeps its catalog.
#[test]
fn a_model_scores_with_its_own_catalog_by_default() {
    let dir = tempfile::tempdir().unwrap();
    company(&dir.path().join("in"));
    let data = dir.path().join("ws");
    winsignal(&data, &["ingest", dir.path().join("in").to_str().unwrap()]);
    let catalog = dir.path().join("flat.toml");
    std::fs::write(&catalog, FLAT_CATALOG).unwrap();
    winsignal(&data, &["train", "--catalog", catalog.to_str().unwrap()]);

    let scores: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    let deals = scores["deals"].as_array().unwrap();
    assert_eq!(deals.len(), 10, "the ten open deals are scored");
    let explained = winsignal(&data, &["explain", "O0400"]);
    assert!(explained.contains("P(win)"), "{explained}");
    let page = dir.path().join("report.html");
    winsignal(&data, &["report", "--out", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("Enterprise account"),
        "the model's catalog is the page's"
    );

    // A catalog without the model's definition is refused, naming the flag and what to do.
    let other = dir.path().join("other.toml");
    std::fs::write(
        &other,
        FLAT_CATALOG
            .replace("id = \"enterprise\"", "id = \"big_account\"")
            .replace("name = \"flat test\"", "name = \"other\""),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .args(["--data", data.to_str().unwrap(), "--quiet", "score"])
        .args(["--catalog", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("enterprise@1") && err.contains("leave out --catalog"),
        "{err}"
    );
}
