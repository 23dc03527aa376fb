//! `winsignal forecast` on a small demo workspace, through the binary: the forecast adds up, its range
//! is ordered, the back-test reports per week, and bad arguments are refused with what was expected.
#![allow(clippy::unwrap_used)]

mod common;
use common::{winsignal, winsignal_fails};
use serde_json::Value;

#[test]
fn the_forecast_adds_up_and_the_backtest_reports_each_week() {
    let ws = tempfile::tempdir().unwrap();
    let data = ws.path().join("ws");
    winsignal(&data, &["demo", "--scale", "0.05", "--seed", "3"]);
    let f: Value =
        serde_json::from_str(&winsignal(&data, &["forecast", "--json", "--periods", "2"])).unwrap();
    let periods = f["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 2, "{f}");
    let deals = f["deals"].as_array().unwrap();
    assert!(!deals.is_empty());
    for (k, p) in periods.iter().enumerate() {
        let part = |name: &str| p[name].as_f64().unwrap();
        let shares: f64 = deals
            .iter()
            .map(|d| d["expected"][k].as_f64().unwrap())
            .sum();
        assert!(
            (shares - part("open_expected")).abs() < 1e-6 * (1.0 + shares),
            "{p}"
        );
        let sum = part("closed_won") + part("open_expected") + part("new_expected");
        assert!((sum - part("expected")).abs() < 1e-6 * (1.0 + sum), "{p}");
        assert!(
            part("p10") <= part("p50") && part("p50") <= part("p90"),
            "{p}"
        );
    }
    // The demo's CRM keeps a probability, a forecast category and an expected close date: its own
    // figures are there, and the slip of a committed amount is a share of it.
    for name in ["crm_weighted", "commit", "committed"] {
        assert!(
            periods[0][name].as_f64().is_some(),
            "{name}: {}",
            periods[0]
        );
    }
    // Deterministic: the same workspace gives the same forecast.
    let again: Value =
        serde_json::from_str(&winsignal(&data, &["forecast", "--json", "--periods", "2"])).unwrap();
    assert_eq!(f, again);

    let b: Value = serde_json::from_str(&winsignal(
        &data,
        &["forecast", "--backtest", "--period", "month", "--json"],
    ))
    .unwrap();
    let points = b["points"].as_array().unwrap();
    assert!(!points.is_empty(), "{b}");
    for p in points {
        let (at, trained) = (
            p["as_of"].as_i64().unwrap(),
            p["trained_before"].as_i64().unwrap(),
        );
        assert!(trained <= at, "{p}");
        let actual = p["actual"].as_f64().unwrap();
        let parts = ["actual_before", "actual_open", "actual_new"]
            .iter()
            .map(|k| p[k].as_f64().unwrap())
            .sum::<f64>();
        assert!((actual - parts).abs() < 1e-6 * (1.0 + actual), "{p}");
        // Slip, expected and actual, is a share of the committed amount, where there is one.
        match p["committed"].as_f64() {
            Some(c) if c > 0.0 => {
                for k in ["slip", "slip_actual"] {
                    let v = p[k].as_f64().unwrap();
                    assert!((0.0..=1.0).contains(&v), "{k}: {p}");
                }
            }
            _ => assert!(p["slip"].is_null() && p["slip_actual"].is_null(), "{p}"),
        }
    }
    assert!(
        points.iter().any(|p| p["slip"].as_f64().is_some()),
        "no point has a committed amount"
    );
    assert!(
        b["overall"]["slip_points"].as_u64().unwrap() > 0,
        "{}",
        b["overall"]
    );
    assert!(
        b["overall"]["commit_mape"].as_f64().is_some(),
        "{}",
        b["overall"]
    );
    let weeks: usize = b["by_week"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["points"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(weeks, points.len());
    assert_eq!(
        b["overall"]["points"].as_u64().unwrap() as usize,
        points.len()
    );
    // The first period's ranges are drawn as independent deals: no earlier period to learn from.
    assert_eq!(points[0]["shared_shock"], 0.0, "{}", points[0]);
    // Nor is the shift of the chances learned on anything but earlier periods: none for the first.
    assert_eq!(points[0]["logit_shift"], 0.0, "{}", points[0]);
    for p in points {
        assert!(p["logit_shift"].as_f64().unwrap().abs() <= 3.0, "{p}");
    }
    // Forecasts of the same kind of period now draw their ranges with the shock the back-test chose.
    let monthly: Value = serde_json::from_str(&winsignal(
        &data,
        &["forecast", "--period", "month", "--json"],
    ))
    .unwrap();
    assert_eq!(monthly["shared_shock"], b["shared_shock"], "{monthly}");
    // And the shift of the chances learned on every point.
    assert!(
        monthly["logit_shift"]
            .as_f64()
            .is_some_and(|s| s.abs() <= 3.0),
        "{monthly}"
    );
    let notes = monthly["notes"].to_string();
    assert!(notes.contains("shared shock"), "{notes}");
    let quarterly: Value =
        serde_json::from_str(&winsignal(&data, &["forecast", "--json"])).unwrap();
    assert_eq!(quarterly["shared_shock"], 0.0);
    assert!(
        quarterly["notes"].to_string().contains("independent"),
        "{quarterly}"
    );
    assert_eq!(quarterly["scenarios"], serde_json::json!([]));

    // A planted future: a huge deal won, and an activity on an open deal, a day after a point in the
    // middle. Every point up to that one is forecast exactly as before.
    let middle = &points[points.len() / 2];
    let at = middle["as_of"].as_i64().unwrap();
    let day = |ms: i64| common::date_of_secs(ms.div_euclid(1000));
    let (after, later) = (day(at + 86_400_000), day(at + 3 * 86_400_000));
    let scored: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    let open = &scored["deals"][0];
    let dir = ws.path().join("planted");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("opportunities.csv"),
        format!(
            "opportunity_id,account_id,rep_id,amount,created_at,closed_at,outcome,stage\n\
             PLANTED-1,{},{},5000000,{after},{later},won,Closed Won\n",
            open["account_id"].as_str().unwrap(),
            open["rep_id"].as_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("activities.csv"),
        format!(
            "activity_id,type,status,account_id,opportunity_id,occurred_at\n\
             PLANTED-A,meeting,completed,{},{},{after}T10:00:00Z\n",
            open["account_id"].as_str().unwrap(),
            open["opportunity_id"].as_str().unwrap()
        ),
    )
    .unwrap();
    // And the CRM's forecast fields of an open deal changed a day after it: committed, due then.
    std::fs::write(
        dir.join("stage_history.csv"),
        format!(
            "opportunity_id,stage,entered_at,expected_close_at,probability,forecast_category\n\
             {},{},{after}T09:00:00Z,{later},95,Commit\n",
            open["opportunity_id"].as_str().unwrap(),
            open["stage"].as_str().unwrap()
        ),
    )
    .unwrap();
    winsignal(&data, &["ingest", dir.to_str().unwrap()]);
    let replanted: Value = serde_json::from_str(&winsignal(
        &data,
        &["forecast", "--backtest", "--period", "month", "--json"],
    ))
    .unwrap();
    let fields = [
        "expected",
        "p10",
        "p50",
        "p90",
        "stage_weighted",
        "crm_weighted",
        "commit",
        "committed",
        "slip",
        "closed_won",
        "open_expected",
        "new_expected",
        "open_deals",
        "shared_shock",
        "logit_shift",
        "trained_before",
    ];
    let mut compared = 0;
    for (before, after) in points.iter().zip(replanted["points"].as_array().unwrap()) {
        assert_eq!(before["as_of"], after["as_of"]);
        if before["as_of"].as_i64().unwrap() > at {
            continue;
        }
        for f in fields {
            assert_eq!(
                before[f], after[f],
                "{f} at {}: {before} then {after}",
                before["as_of"]
            );
        }
        compared += 1;
    }
    assert!(compared >= 2, "{compared} points compared");
    // The planted deal was taken: its period's bookings grew by its amount.
    let grew = points
        .iter()
        .zip(replanted["points"].as_array().unwrap())
        .any(|(b, a)| a["actual"].as_f64().unwrap() - b["actual"].as_f64().unwrap() == 5_000_000.0);
    assert!(grew, "the planted deal is in no period's bookings");

    let text = winsignal(&data, &["forecast", "--backtest", "--from", "2099-01-01"]);
    assert!(text.contains("give an earlier --from"), "{text}");
    for (args, expected) in [
        (&["forecast", "--periods", "0"][..], "give 1 to 12"),
        (&["forecast", "--as-of", "soon"][..], "expected a date"),
        (&["forecast", "--simulations", "10"][..], "at least 100"),
        (
            &["forecast", "--scenario", "no_such_behaviour=50%"][..],
            "is not a yes/no behaviour of the win model",
        ),
    ] {
        let failed = winsignal_fails(&data, args);
        assert!(failed.contains(expected), "{args:?}: {failed}");
    }
    // An argument clap refuses (exit status 2), naming what was expected.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .arg("--data")
        .arg(&data)
        .args(["forecast", "--period", "week"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected month or quarter"), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .arg("--data")
        .arg(&data)
        .args(["forecast", "--scenario", "exec_engaged=150%"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected BEHAVIOUR=N%"), "{err}");
}
