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
}
