//! The drift test against independent reference numbers: the chi-square upper tail from
//! `scipy.stats.chi2.sf`, and the population stability index test on fixed samples computed with
//! numpy and scipy, plainly and with values in clusters (effective sample sizes). Both were produced by `python3 validation/drift.py` (numpy 2.4.6, scipy 1.17.1),
//! which writes `validation/fixtures/drift_samples.csv` and `drift_reference.json`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::Value;
use winsignal_stats::dist::chi2_sf;
use winsignal_stats::drift::{psi_test, psi_test_clustered, Rule};

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../validation/fixtures")
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-300)
}

#[test]
fn the_chi_square_tail_matches_scipy() {
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("drift_reference.json")).unwrap(),
    )
    .unwrap();
    let grid = r["chi2_sf"].as_array().unwrap();
    assert_eq!(grid.len(), 48);
    for g in grid {
        let (x, df, sf) = (
            g["x"].as_f64().unwrap(),
            g["df"].as_f64().unwrap(),
            g["sf"].as_f64().unwrap(),
        );
        let ours = chi2_sf(x, df);
        assert!(
            close(ours, sf, 1e-9),
            "chi2_sf({x}, {df}) = {ours}, scipy {sf}"
        );
    }
}

#[test]
fn the_psi_test_matches_the_reference_computation() {
    let r: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("drift_reference.json")).unwrap(),
    )
    .unwrap();
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut reader = csv::Reader::from_path(fixtures().join("drift_samples.csv")).unwrap();
    for row in reader.records() {
        let row = row.unwrap();
        let v = if row[1].is_empty() {
            f64::NAN
        } else {
            row[1].parse().unwrap()
        };
        samples.entry(row[0].to_string()).or_default().push(v);
    }
    let rule = Rule::default();
    for (name, reference, window, alarms) in [
        ("same", "reference", "same", false),
        ("shifted", "reference", "shifted", true),
        ("yes_no", "yes_no_ref", "yes_no_win", true),
    ] {
        let t = psi_test(&samples[reference], &samples[window], 10).unwrap();
        let want = &r["tests"][name];
        assert_eq!(t.df as u64, want["df"].as_u64().unwrap(), "{name}");
        for (ours, key) in [
            (t.psi, "psi"),
            (t.statistic, "statistic"),
            (t.p_value, "p_value"),
        ] {
            let theirs = want[key].as_f64().unwrap();
            assert!(
                close(ours, theirs, 1e-9),
                "{name} {key}: {ours} vs {theirs}"
            );
        }
        assert_eq!(rule.alarms(&t, 20), alarms, "{name}: {t:?}");
        // Clustered: the reference in clusters of 4 consecutive values, the window in clusters of 3.
        let clusters = |n: usize, size: u64| (0..n as u64).map(|i| i / size).collect::<Vec<_>>();
        let (rv, wv) = (&samples[reference], &samples[window]);
        let t =
            psi_test_clustered(rv, &clusters(rv.len(), 4), wv, &clusters(wv.len(), 3), 10).unwrap();
        let want = &r["clustered"][name];
        assert_eq!(t.df as u64, want["df"].as_u64().unwrap(), "{name}");
        assert!(
            close(t.psi, want["psi"].as_f64().unwrap(), 1e-12),
            "{name}: the same PSI as unclustered"
        );
        assert_eq!(
            t.window_n,
            want["window_n"].as_f64().unwrap().round() as usize,
            "{name}: effective size, not values"
        );
        for (ours, key) in [
            (t.psi, "psi"),
            (t.statistic, "statistic"),
            (t.p_value, "p_value"),
        ] {
            let theirs = want[key].as_f64().unwrap();
            assert!(
                close(ours, theirs, 1e-9),
                "clustered {name} {key}: {ours} vs {theirs}"
            );
        }
    }
}
