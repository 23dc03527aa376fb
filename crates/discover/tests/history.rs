//! The store's history as leakage evidence: a field the exports show empty while a deal was open and
//! filled in once it closed is written at the close (`changed_at_close`), whatever its values look like.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use winsignal_core::Ts;
use winsignal_discover::{changed_at_close, DealHistory};
use winsignal_features::catalog::parse;

const CATALOG: &str = r#"
name = "history"
controls = ["log_amount", "opportunity.region"]

[landmarks]
stages = true
ages_days = []

[[behaviour]]
id = "contract_signed"
version = 1
title = "Contract signed"
description = "A contract reference is on the deal."
reads = { kind = "attribute", attribute = "opportunity.contract_ref" }
aggregate = "value"
threshold = "== 1"
"#;

const DAY: i64 = 86_400_000;

/// 60 closed deals, each exported once while open (day 10) and once after its close (day 40): the
/// contract reference appears after the close on `filled` of them; the region never changes; the amount
/// changes on every fourth deal.
fn deals(filled: usize) -> Vec<DealHistory> {
    (0..60)
        .map(|i| {
            let mut open = BTreeMap::new();
            open.insert("region".to_string(), "north".to_string());
            open.insert("amount".to_string(), "1000".to_string());
            let mut closed = open.clone();
            if i < filled {
                closed.insert("contract_ref".to_string(), format!("C-{i}"));
            }
            if i % 4 == 0 {
                closed.insert("amount".to_string(), "1200".to_string());
            }
            DealHistory {
                opportunity_id: format!("opp-{i}"),
                closed_at: Ts(30 * DAY),
                versions: vec![(Ts(10 * DAY), open), (Ts(40 * DAY), closed)],
            }
        })
        .collect()
}

#[test]
fn a_field_filled_in_at_the_close_is_flagged_with_the_definitions_reading_it() {
    let catalog = parse(CATALOG, "history.toml").unwrap();
    let flags = changed_at_close(&catalog, &deals(45));
    assert_eq!(flags.len(), 1, "{flags:?}");
    let f = &flags[0];
    assert_eq!(f.column, "opportunity.contract_ref");
    assert_eq!(f.kind, "changed_at_close");
    assert_eq!(f.definitions, ["contract_signed"]);
    assert!(!f.control);
    assert!(
        f.evidence.contains("75 % of the 60 closed deals")
            && f.evidence.contains("45 of them empty before"),
        "{}",
        f.evidence
    );
}

#[test]
fn fields_that_rarely_change_and_data_loaded_once_give_no_flag() {
    let catalog = parse(CATALOG, "history.toml").unwrap();
    // A field set at the close on a fifth of the deals, and an amount revised on a quarter: normal edits.
    assert!(changed_at_close(&catalog, &deals(12)).is_empty());
    // Every version loaded after the close (one export of history): nothing to compare.
    let late: Vec<DealHistory> = deals(60)
        .into_iter()
        .map(|mut d| {
            d.versions[0].0 = Ts(35 * DAY);
            d
        })
        .collect();
    assert!(changed_at_close(&catalog, &late).is_empty());
    // Too few deals seen on both sides of their close.
    assert!(changed_at_close(&catalog, &deals(60)[..20]).is_empty());
}
