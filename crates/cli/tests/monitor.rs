//! `winsignal monitor drift` through the binary: every window compares every feature, the alarm rule
//! is the documented one, and a shift planted in one feature of the last window (ten meetings more on
//! every open deal, just before it) is found and named there.
#![allow(clippy::unwrap_used)]

mod common;
use common::winsignal;
use serde_json::Value;

fn drift(data: &std::path::Path) -> Value {
    serde_json::from_str(&winsignal(
        data,
        &["monitor", "drift", "--windows", "2", "--json"],
    ))
    .unwrap()
}

#[test]
fn drift_is_tested_per_feature_and_window_and_a_planted_shift_is_named() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    winsignal(&data, &["demo", "--scale", "0.05", "--seed", "3"]);
    let before = drift(&data);
    assert_eq!(before["alpha"], 0.01);
    assert_eq!(before["min_psi"], 0.1);
    let tested = before["features_tested"].as_u64().unwrap() as usize;
    assert!(tested >= 10, "{before}");
    assert!(before["training_snapshots"].as_u64().unwrap() > 0);
    let windows = before["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2);
    for w in windows {
        let features = w["features"].as_array().unwrap();
        assert_eq!(features.len(), tested);
        for f in features {
            let (psi, p) = (f["psi"].as_f64().unwrap(), f["p_value"].as_f64().unwrap());
            assert!((0.0..=1.0).contains(&p), "{f}");
            let alarm = p < 0.01 / tested as f64 && psi >= 0.1;
            assert_eq!(f["alarm"].as_bool().unwrap(), alarm, "{f}");
            assert_eq!(
                w["alarms"].as_array().unwrap().contains(&f["feature"]),
                alarm
            );
        }
    }
    let alarmed = |d: &Value| -> Vec<String> {
        d["windows"][0]["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        !alarmed(&before).contains(&"meetings_count".to_string()),
        "{before}"
    );

    // Ten meetings more on every open deal, two days before the last window.
    let from = before["windows"][0]["from"].as_i64().unwrap();
    let day = common::date_of_secs(from.div_euclid(1000) - 2 * 86_400);
    let scored: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    let mut csv = String::from("activity_id,type,status,account_id,opportunity_id,occurred_at\n");
    for (i, d) in scored["deals"].as_array().unwrap().iter().enumerate() {
        for k in 0..10 {
            csv.push_str(&format!(
                "PLANTED-{i}-{k},meeting,completed,{},{},{day}T1{k}:00:00Z\n",
                d["account_id"].as_str().unwrap(),
                d["opportunity_id"].as_str().unwrap()
            ));
        }
    }
    let dir = ws.path().join("planted");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("activities.csv"), csv).unwrap();
    winsignal(&data, &["ingest", dir.to_str().unwrap()]);
    let after = drift(&data);
    assert!(
        alarmed(&after).contains(&"meetings_count".to_string()),
        "{}",
        after["windows"][0]
    );
    // The score is tested too, and the terms that moved it are listed, largest shift first.
    let w = &after["windows"][0];
    assert_eq!(w["score"]["feature"], "p_win", "{w}");
    let shifts: Vec<(String, f64)> = w["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let (t, win, shift) = (
                c["training"].as_f64().unwrap(),
                c["window"].as_f64().unwrap(),
                c["shift"].as_f64().unwrap(),
            );
            assert!((win - t - shift).abs() < 1e-12, "{c}");
            (c["term"].as_str().unwrap().to_string(), shift)
        })
        .collect();
    assert!(!shifts.is_empty() && shifts.len() <= 10);
    assert!(
        shifts.windows(2).all(|p| p[0].1.abs() >= p[1].1.abs()),
        "{shifts:?}"
    );
    let moved = |d: &Value, term: &str| -> f64 {
        d["windows"][0]["contributions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["term"] == term)
            .map_or(0.0, |c| c["shift"].as_f64().unwrap())
    };
    // Every term listed (fewer than ten): the shifts add up to the shift of the mean log-odds.
    if shifts.len() < 10 {
        let total: f64 = shifts.iter().map(|s| s.1).sum();
        assert!(
            (total - w["logit_shift"].as_f64().unwrap()).abs() < 1e-9,
            "{w}"
        );
    }
    // A model with a meetings term (this small demo's keeps stage-only rates) moves through it.
    if shifts.iter().any(|s| s.0 == "meetings_count") {
        assert!(
            (moved(&after, "meetings_count") - moved(&before, "meetings_count")).abs() > 0.01,
            "{shifts:?}"
        );
    }
}

/// `monitor performance`: on the data the model was trained on, the latest holdout is its own holdout
/// (the same AUC and Brier score as `train` printed) and nothing closed since; the estimate from the
/// probabilities alone is given beside each realised figure. Then the open deals close the wrong way
/// round (the likeliest lost, the least likely won) after the data's end: AUC since training falls
/// below the floor, and the recommendation says so.
#[test]
fn performance_is_realised_on_outcomes_estimated_before_them_and_a_fall_is_flagged() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    winsignal(&data, &["demo", "--scale", "0.05", "--seed", "3"]);
    let trained: Value = serde_json::from_str(&winsignal(&data, &["train", "--json"])).unwrap();
    let perf = |data: &std::path::Path| -> Value {
        serde_json::from_str(&winsignal(data, &["monitor", "performance", "--json"])).unwrap()
    };
    let before = perf(&data);
    assert_eq!(before["model_id"], trained["model_id"]);
    let eval = &trained["evaluation"]["model"];
    let holdout = &before["holdout"];
    assert_eq!(holdout["snapshots"], eval["rows"]);
    let close = |a: &Value, b: &Value| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-12;
    assert!(close(&holdout["metrics"]["auc"], &eval["auc"]), "{holdout}");
    assert!(
        close(&holdout["metrics"]["brier"], &eval["brier"]),
        "{holdout}"
    );
    for k in ["estimated_auc", "estimated_brier"] {
        let v = holdout[k].as_f64().unwrap();
        assert!(v > 0.0 && v < 1.0, "{holdout}");
    }
    assert!(close(&before["trained_auc"], &eval["auc"]));
    assert!(close(
        &before["auc_floor"],
        &serde_json::json!(eval["auc"].as_f64().unwrap() - 0.02)
    ));
    // The estimate is trusted exactly when it came within 0.03 of the realised AUC on the holdout.
    let gap = (holdout["estimated_auc"].as_f64().unwrap()
        - holdout["metrics"]["auc"].as_f64().unwrap())
    .abs();
    assert_eq!(before["estimate_trusted"], gap <= 0.03, "{before}");
    assert_eq!(before["since_training"]["deals"], 0);
    // The demo's model was made active when the demo ran, after every close date of its data.
    assert!(before["activated_at"].as_i64().unwrap() > 0);
    assert_eq!(before["since_activation"]["deals"], 0);
    assert!(before["since_training"]["metrics"].is_null());
    assert!(before["recommendation"].is_null());
    let open = before["open_now"]["deals"].as_u64().unwrap();
    assert!(open >= 20, "{before}");
    assert!(before["open_now"]["estimated_auc"].as_f64().unwrap() > 0.5);

    // Close every open deal ten days after the data's end: the half the model likes most lost, the
    // rest won, through the CRM's own export (Opportunity.csv).
    let closed_now = common::close_open_deals_the_wrong_way(&data, &ws.path().join("closings"));
    let after = perf(&data);
    let since = &after["since_training"];
    assert_eq!(
        since["deals"].as_u64().unwrap() as usize,
        closed_now,
        "{since}"
    );
    let live = since["metrics"]["auc"].as_f64().unwrap();
    assert!(live < 0.5, "{since}");
    let why = after["recommendation"].as_str().unwrap();
    assert!(why.contains("below the floor"), "{why}");
    assert!(after["live_auc"].as_f64().unwrap() < after["auc_floor"].as_f64().unwrap());
    // The demo's only model has nothing to roll back to.
    assert!(after["rollback_to"].is_null(), "{after}");

    // `monitor check` records the alert once: a second check finds it holding and records nothing.
    let check = |data: &std::path::Path| -> Value {
        serde_json::from_str(&winsignal(data, &["monitor", "check", "--json"])).unwrap()
    };
    let first = check(&data);
    let recorded: Vec<&Value> = first["recorded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["alert"])
        .filter(|a| a["kind"] == "performance")
        .collect();
    assert_eq!(recorded.len(), 1, "{first}");
    assert_eq!(recorded[0]["state"], "firing");
    assert_eq!(recorded[0]["recommendation"], why);
    assert_eq!(recorded[0]["value"], after["live_auc"]);
    assert_eq!(first["figures"]["live_auc"], after["live_auc"]);
    let again = check(&data);
    assert_eq!(again["recorded"], serde_json::json!([]), "{again}");
    assert_eq!(again["firing"], first["firing"]);
    let firing: Value =
        serde_json::from_str(&winsignal(&data, &["monitor", "alerts", "--json"])).unwrap();
    assert_eq!(firing, first["firing"]);
}

/// No alarm storm on unshifted data: the demo's closed deals are split at random (by deal, with a fixed
/// seed) into a reference half and 20 windows of the other half, so every window comes from the
/// reference's own distribution. Every feature of every window is tested against the reference with
/// the documented rule (`winsignal_stats::drift`, 10 bins, the samples' sizes taken as effective sizes
/// of their accounts (else deals), as `monitor drift` does): at most one window of the 20 alarms on any
/// feature (the rule's 1 % per window expects 0.2). Snapshots of one deal stay together, as a live
/// window's would. Counting every snapshot as an independent draw instead, all 20 windows alarmed.
#[test]
fn unshifted_windows_of_the_demo_raise_at_most_one_alarm_in_twenty() {
    use winsignal_stats::drift::{psi_test_clustered, Rule};
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    winsignal(&data, &["demo", "--scale", "0.05", "--seed", "3"]);
    let snaps: Value = serde_json::from_str(&winsignal(&data, &["snapshots", "--json"])).unwrap();
    let features: Vec<&str> = snaps["catalog"]["definitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    let value = |s: &Value, f: &str| -> f64 {
        let v = if s["behaviours"].get(f).is_some() {
            &s["behaviours"][f]
        } else {
            &s["measures"][f]
        };
        match v {
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => n.as_f64().unwrap(),
            _ => f64::NAN,
        }
    };
    // Each snapshot with its cluster as `monitor drift` takes it: its account, else its deal.
    let mut clusters: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut by_deal: std::collections::BTreeMap<&str, Vec<(u64, Vec<f64>)>> = Default::default();
    for s in snaps["snapshots"].as_array().unwrap() {
        if s["outcome"] == "open" {
            continue;
        }
        let row = features.iter().map(|f| value(s, f)).collect();
        let deal = s["opportunity_id"].as_str().unwrap();
        let of = s["account_id"].as_str().unwrap_or(deal);
        let next = clusters.len() as u64;
        let cluster = *clusters.entry(of).or_insert(next);
        by_deal.entry(deal).or_default().push((cluster, row));
    }
    // A seeded shuffle of the deals (xorshift), then: half the reference, half the windows.
    let mut deals: Vec<&str> = by_deal.keys().copied().collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..deals.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        deals.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let half = deals.len() / 2;
    let column = |group: &[&str], k: usize| -> (Vec<f64>, Vec<u64>) {
        group
            .iter()
            .flat_map(|d| by_deal[d].iter().map(move |(c, r)| (r[k], *c)))
            .unzip()
    };
    let reference: Vec<(Vec<f64>, Vec<u64>)> = (0..features.len())
        .map(|k| column(&deals[..half], k))
        .collect();
    let tested: Vec<usize> = (0..features.len())
        .filter(|&k| reference[k].0.iter().any(|v| !v.is_nan()))
        .collect();
    assert!(tested.len() >= 15, "{features:?}");
    let rule = Rule::default();
    let mut alarming = Vec::new();
    for w in 0..20 {
        let window: Vec<&str> = deals[half..].iter().copied().skip(w).step_by(20).collect();
        let alarms: Vec<&str> = tested
            .iter()
            .filter(|&&k| {
                let (values, of) = column(&window, k);
                psi_test_clustered(&reference[k].0, &reference[k].1, &values, &of, 10)
                    .is_some_and(|t| rule.alarms(&t, tested.len()))
            })
            .map(|&k| features[k])
            .collect();
        if !alarms.is_empty() {
            alarming.push((w, alarms));
        }
    }
    assert!(
        alarming.len() <= 1,
        "{} of 20 unshifted windows alarmed: {alarming:?}",
        alarming.len()
    );
}
