//! Exports taken over time: a field empty while the deals were open and filled in once they closed —
//! on won and lost deals alike, so no check of its values can see it — is flagged from the store's
//! versions (`changed_at_close`) and left out of the models.
#![allow(clippy::unwrap_used)]

mod common;

use common::winsignal;
use serde_json::Value;
use std::path::Path;
use winsignal_core::Ts;

/// The CRM as exported while the 200 deals were open (`closed_at` None), or after they closed.
fn export(dir: &Path, closed_at: Option<Ts>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut reps = String::from("rep_id,name,team\n");
    for r in 0..8 {
        reps.push_str(&format!("R-{r},Rep {r},Team {}\n", r % 2));
    }
    let mut accounts = String::from("account_id,name,segment\n");
    for a in 0..40 {
        accounts.push_str(&format!(
            "A-{a},Account {a},{}\n",
            ["SMB", "Enterprise"][a % 2]
        ));
    }
    let mut opportunities = String::from(
        "opportunity_id,account_id,rep_id,name,amount,currency,created_at,closed_at,outcome,stage,po_number\n",
    );
    for i in 0..200usize {
        let created = Ts::parse("2025-01-01")
            .unwrap()
            .plus_days(i as f64)
            .to_date_string();
        let (closed, outcome, stage, po) = match closed_at {
            None => (String::new(), "open", "Proposal", String::new()),
            Some(at) => {
                let won = (i * 37 + 11) % 100 < 45;
                (
                    at.to_rfc3339(),
                    if won { "won" } else { "lost" },
                    if won { "Closed Won" } else { "Closed Lost" },
                    format!("PO-{i}"),
                )
            }
        };
        opportunities.push_str(&format!(
            "O-{i},A-{},R-{},Deal {i},{},USD,{created},{closed},{outcome},{stage},{po}\n",
            i % 40,
            (i / 3) % 8,
            10_000 + 250 * (i % 30),
        ));
    }
    std::fs::write(dir.join("reps.csv"), reps).unwrap();
    std::fs::write(dir.join("accounts.csv"), accounts).unwrap();
    std::fs::write(dir.join("opportunities.csv"), opportunities).unwrap();
}

const CATALOG: &str = r#"
name = "exports over time"
controls = ["segment", "opportunity.po_number"]

[landmarks]
stages = true
ages_days = []

[[behaviour]]
id = "big_deal"
version = 1
title = "Big deal"
description = "Amount of at least 15,000."
reads = { kind = "attribute", attribute = "opportunity.amount" }
aggregate = "value"
threshold = ">= 15000"
"#;

#[test]
fn a_field_written_at_the_close_is_found_in_the_store_history() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("crm");
    let data = dir.path().join("ws");
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, CATALOG).unwrap();
    let catalog = catalog.to_str().unwrap();
    // The first export while every deal is open; the deals close after it, the second export follows.
    export(&files, None);
    winsignal(&data, &["ingest", files.to_str().unwrap()]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    export(&files, Some(Ts::now()));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    winsignal(&data, &["ingest", files.to_str().unwrap()]);

    let d: Value = serde_json::from_str(&winsignal(
        &data,
        &["discover", "--json", "--catalog", catalog],
    ))
    .unwrap();
    let flags = d["leakage"].as_array().unwrap();
    let po = flags
        .iter()
        .find(|f| f["column"] == "opportunity_po_number")
        .unwrap_or_else(|| panic!("po_number not flagged: {flags:?}"));
    assert_eq!(po["kind"], "changed_at_close", "{po}");
    assert_eq!(po["control"], true);
    assert!(
        po["evidence"]
            .as_str()
            .unwrap()
            .contains("of the 200 closed deals"),
        "{po}"
    );
    // Left out of every model.
    assert!(!d["controls"]
        .as_array()
        .unwrap()
        .contains(&Value::from("opportunity_po_number")));
}
