//! Metrics against scikit-learn and statsmodels.
//!
//! The fixture `validation/fixtures/metrics_reference.json` was produced by `python3 validation/metrics.py`
//! (scikit-learn 1.9.1, statsmodels 0.15.0, numpy 2.4.6; the script's docstring says exactly how): two
//! fixed sets of predictions and outcomes (one smooth and miscalibrated, one with heavy ties) with
//! `roc_auc_score`, `brier_score_loss`, `log_loss`, the statsmodels logistic recalibration (slope and
//! intercept jointly, and the intercept with the slope fixed at 1 through an offset) and the decile
//! reliability curve. AUC, Brier and log loss must agree to 1e-12, the calibration fits to 1e-7.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use winsignal_learn::metrics;

fn fixture() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../validation/fixtures/metrics_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * want.abs().max(1.0),
        "{what}: got {got}, reference {want}"
    );
}

#[test]
fn metrics_match_scikit_learn_and_statsmodels() {
    let fx = fixture();
    let cases = fx["cases"].as_object().unwrap();
    assert_eq!(cases.len(), 2);
    for (name, case) in cases {
        let p: Vec<f64> = case["p"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let y: Vec<bool> = case["y"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap() == 1)
            .collect();
        let r = &case["reference"];
        let want = |k: &str| r[k].as_f64().unwrap();
        close(
            &format!("{name} auc"),
            metrics::auc(&p, &y).unwrap(),
            want("auc"),
            1e-12,
        );
        close(
            &format!("{name} brier"),
            metrics::brier(&p, &y).unwrap(),
            want("brier"),
            1e-12,
        );
        close(
            &format!("{name} log loss"),
            metrics::log_loss(&p, &y).unwrap(),
            want("log_loss"),
            1e-12,
        );
        let cal = metrics::calibration_slope_intercept(&p, &y).unwrap();
        close(
            &format!("{name} slope"),
            cal.slope,
            want("calibration_slope"),
            1e-7,
        );
        close(
            &format!("{name} intercept"),
            cal.intercept,
            want("calibration_intercept"),
            1e-7,
        );
        close(
            &format!("{name} in the large"),
            cal.intercept_in_the_large,
            want("calibration_in_the_large"),
            1e-7,
        );
        let curve = metrics::reliability_curve(&p, &y, 10).unwrap();
        let reference = r["reliability"].as_array().unwrap();
        assert_eq!(curve.len(), reference.len());
        for (got, want) in curve.iter().zip(reference) {
            assert_eq!(got.n as u64, want["n"].as_u64().unwrap());
            close(
                "mean predicted",
                got.mean_predicted,
                want["mean_predicted"].as_f64().unwrap(),
                1e-12,
            );
            close(
                "observed rate",
                got.observed_rate,
                want["observed_rate"].as_f64().unwrap(),
                1e-12,
            );
        }
    }
}

#[test]
fn one_class_and_mismatched_inputs_are_errors() {
    assert!(metrics::auc(&[0.2, 0.3], &[true, true]).is_err());
    assert!(metrics::calibration_slope_intercept(&[0.2, 0.3], &[false, false]).is_err());
    assert!(metrics::brier(&[0.2], &[true, false]).is_err());
    assert!(metrics::log_loss(&[], &[]).is_err());
    assert!(metrics::reliability_curve(&[0.2], &[true], 0).is_err());
}
