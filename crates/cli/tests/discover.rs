//! Discovery finds what the demo company planted, and (within the false discoveries its error rate
//! allows) nothing it did not (docs/demo.md, "Planted effects"), for two seeds: end to end through the
//! binary (`demo`, then `discover --json`).
#![allow(clippy::unwrap_used)]

mod common;
use common::winsignal;

use serde_json::Value;
use std::collections::HashMap;

/// The landmark where every planted behaviour has had its chance (they are placed by day 28).
const LANDMARK: &str = "age:30d";

/// One scale-1 demo workspace (about 1.7 GB with its exports) at a time: the two seeds' tests take turns,
/// so that they do not need twice the disk.
static ONE_DEMO_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check_seed(seed: u64) {
    let _turn = ONE_DEMO_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    winsignal(&data, &["demo", "--seed", &seed.to_string()]);
    let d: Value = serde_json::from_str(&winsignal(&data, &["discover", "--json"])).unwrap();
    assert_eq!(d["schema"], 1);
    let mut by: HashMap<(String, String, String), &Value> = HashMap::new();
    for f in d["findings"].as_array().unwrap() {
        let key = |k: &str| f[k].as_str().unwrap().to_string();
        by.insert((key("outcome"), key("landmark"), key("behaviour")), f);
    }
    let get = |outcome: &str, behaviour: &str| {
        by.get(&(outcome.into(), LANDMARK.into(), behaviour.into()))
            .unwrap_or_else(|| panic!("seed {seed}: no {outcome} finding for {behaviour}"))
    };
    let planted = [
        ("win", "exec_engaged", 1.0),
        ("win", "multithreaded", 1.0),
        ("win", "product_active", 1.0),
        ("win", "fast_follow_up", 1.0),
        ("win", "next_step_scheduled", 1.0),
        ("win", "urgent_ticket_open", -1.0),
        ("cycle_time", "exec_engaged", 1.0),
        ("cycle_time", "fast_follow_up", 1.0),
        ("deal_size", "exec_engaged", 1.0),
        ("deal_size", "multithreaded", 1.0),
    ];
    for (outcome, behaviour, sign) in planted {
        let f = get(outcome, behaviour);
        let e = &f["effect"];
        // Ratios (odds, hazard) are above 1 for a positive effect; percent changes above 0.
        let neutral = if outcome == "deal_size" { 0.0 } else { 1.0 };
        let estimate = e["estimate"].as_f64().unwrap();
        assert!(
            (estimate - neutral) * sign > 0.0 && f["significant"] == true && e["q"].as_f64().unwrap() < 0.05,
            "seed {seed}: planted {outcome} effect of {behaviour} not found with the right sign: {f}"
        );
    }
    // Behaviours documented as having no effect on winning are tested at every landmark (five
    // behaviours, up to eight landmarks). Benjamini–Hochberg controls the false discovery rate at 5 %,
    // not the chance of any false discovery, so one of them may cross by luck (at seed 42
    // `talk_ratio_balanced` at day 30, 125 deals from 37 reps, q 0.049; at seed 7 `usage_growing` at
    // Prospecting, q 0.024); more than one, or one with strong evidence, would be a defect.
    let nulls = [
        "responsive",
        "usage_growing",
        "asks_questions",
        "talk_ratio_balanced",
        "marketing_engaged",
    ];
    let null_findings: Vec<&Value> = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] == "win" && nulls.contains(&f["behaviour"].as_str().unwrap()))
        .collect();
    assert!(
        null_findings.len() >= 25,
        "seed {seed}: {}",
        null_findings.len()
    );
    let false_discoveries: Vec<&&Value> = null_findings
        .iter()
        .filter(|f| f["significant"] == true)
        .collect();
    assert!(
        false_discoveries.len() <= 1,
        "seed {seed}: behaviours without a planted effect are significant: {false_discoveries:?}"
    );
    for f in &false_discoveries {
        assert!(
            f["effect"]["q"].as_f64().unwrap() > 0.01,
            "seed {seed}: a behaviour without a planted effect has strong evidence: {f}"
        );
    }
    // The confounded behaviour: significant raw, not after adjusting for the deal mix.
    let m = get("win", "marketing_engaged");
    assert!(
        m["raw"]["p"].as_f64().unwrap() < 0.05 && m["significant"] == false,
        "seed {seed}: marketing_engaged should be significant raw only: {m}"
    );
    // Every estimate says what it is adjusted for and that it is an association.
    assert!(get("win", "exec_engaged")["adjusted_for"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "segment"));
    assert!(d["caveat"].as_str().unwrap().contains("associations"));
}

#[test]
fn planted_effects_are_found_and_nulls_are_not_seed_42() {
    check_seed(42);
}

#[test]
fn planted_effects_are_found_and_nulls_are_not_seed_7() {
    check_seed(7);
}
