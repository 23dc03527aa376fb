//! The win model on hand-made data: the recalibration decision (a calibration that looks off is
//! corrected only when a map fitted on one half of the calibration deals improves the other half), the
//! logistic model as an additive table, and the suspects of a model too good to be true.
#![allow(clippy::unwrap_used)]

use winsignal_score::model::recalibration;

/// Rows at logits -2, -1, 0, 1, 2 whose outcomes follow `logit + shift` exactly in proportion: per
/// logit, `n` rows of which round(n · σ(logit + shift)) won. One deal per row, named `{prefix}{i}`.
fn rows(prefix: &str, shift: f64, n: usize) -> (Vec<f64>, Vec<bool>, Vec<String>) {
    let (mut logits, mut won, mut deals) = (Vec::new(), Vec::new(), Vec::new());
    for l in [-2.0f64, -1.0, 0.0, 1.0, 2.0] {
        let p = 1.0 / (1.0 + (-(l + shift)).exp());
        let wins = (p * n as f64).round() as usize;
        for k in 0..n {
            logits.push(l);
            won.push(k < wins);
            deals.push(format!("{prefix}{}", deals.len()));
        }
    }
    (logits, won, deals)
}

fn halves(first: f64, second: f64) -> (Vec<f64>, Vec<bool>, Vec<String>) {
    let (mut l, mut w, mut d) = rows("a", first, 40);
    let (l2, w2, d2) = rows("b", second, 40);
    l.extend(l2);
    w.extend(w2);
    d.extend(d2);
    (l, w, d)
}

#[test]
fn recalibration_that_does_not_carry_over_is_not_applied() {
    // The earlier half wins far more than predicted, the later half less: on the whole slice the model
    // looks too low (calibration in the large > 0.05), but a shift fitted on one half makes the other
    // worse, so it would make later deals worse too.
    let (logits, won, deals) = halves(1.2, -0.8);
    let deals: Vec<&str> = deals.iter().map(String::as_str).collect();
    let (check, calibration) = recalibration(&logits, &won, &deals).unwrap();
    assert!(check.off, "{check:?}");
    let cross = check.log_loss_cross_fitted.unwrap();
    assert!(cross > check.log_loss_as_is, "{check:?}");
    assert!(!check.applied && calibration.is_none(), "{check:?}");
    assert!(check.reason.contains("not applied"), "{}", check.reason);
}

#[test]
fn recalibration_that_carries_over_is_applied() {
    // Both halves are off the same way: the correction learned on one half helps the other.
    let (logits, won, deals) = halves(0.8, 0.8);
    let deals: Vec<&str> = deals.iter().map(String::as_str).collect();
    let (check, calibration) = recalibration(&logits, &won, &deals).unwrap();
    assert!(check.off && check.applied, "{check:?}");
    assert!(check.log_loss_cross_fitted.unwrap() < check.log_loss_as_is);
    let c = calibration.unwrap();
    assert!(
        (c.intercept - 0.8).abs() < 0.1 && (c.slope - 1.0).abs() < 0.1,
        "{c:?}"
    );
}

#[test]
fn a_calibrated_model_is_left_alone() {
    let (logits, won, deals) = halves(0.0, 0.0);
    let deals: Vec<&str> = deals.iter().map(String::as_str).collect();
    let (check, calibration) = recalibration(&logits, &won, &deals).unwrap();
    assert!(
        !check.off && !check.applied && calibration.is_none(),
        "{check:?}"
    );
}

/// A small data set: a category (three common levels and a rare one), a number with missing values
/// (40 distinct values), and a column that copies the outcome when `leak`.
fn data(leak: bool) -> (winsignal_learn::Dataset, Vec<bool>) {
    use winsignal_learn::{Dataset, Feature};
    let n = 400;
    let mut state = 11u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut cat, mut num, mut copy, mut won) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let level = if i % 50 == 0 {
            "rare"
        } else {
            ["a", "b", "c"][i % 3]
        };
        let x = (i % 40) as f64 / 4.0;
        let z = 0.3 * x - 1.5 + if level == "a" { 0.8 } else { 0.0 };
        let w = next() < 1.0 / (1.0 + (-z).exp());
        cat.push(Some(level.to_string()));
        num.push(if i % 17 == 0 { None } else { Some(x) });
        copy.push(Some(if w { 1.0 } else { 0.0 } + 0.01 * next()));
        won.push(w);
    }
    let mut features = vec![
        Feature::categorical("kind", cat),
        Feature::numeric("size", num),
    ];
    if leak {
        features.push(Feature::numeric("recorded_at_close", copy));
    }
    (Dataset::new(features).unwrap(), won)
}

#[test]
fn the_logistic_model_tabulated_predicts_what_it_predicts() {
    // Categories and missing values are exact; a number with no more distinct values than bins is too
    // (each bin holds one value).
    let (d, won) = data(false);
    let lr =
        winsignal_learn::logreg::fit(&d, &won, &winsignal_learn::LogRegParams::default()).unwrap();
    let table = winsignal_score::model::tabulate_logistic(&lr, &d, 256).unwrap();
    let (a, b) = (
        lr.predict_logit(&d).unwrap(),
        table.predict_logit(&d).unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-9, "{x} vs {y}");
    }
    // Every shape is centred over the rows, as a boosting machine's.
    for t in table.terms() {
        let mean: f64 = t
            .scores
            .iter()
            .zip(&t.bin_counts)
            .map(|(s, c)| s * *c as f64)
            .sum::<f64>()
            / d.n_rows() as f64;
        assert!(mean.abs() < 1e-12, "{}: {mean}", t.name);
    }
}

#[test]
fn the_leaking_column_is_the_first_suspect() {
    let (d, won) = data(true);
    let params = winsignal_learn::EbmParams {
        outer_bags: 2,
        interactions: 0,
        ..Default::default()
    };
    let m = winsignal_learn::ebm::fit(&d, &won, &params).unwrap();
    let suspects = winsignal_score::model::suspects(&m, &d, &won).unwrap();
    assert_eq!(suspects[0].column, "recorded_at_close");
    assert!(suspects[0].solo_auc.unwrap() > 0.99, "{suspects:?}");
    assert!(suspects[0].importance_share > 0.5, "{suspects:?}");
    assert!(suspects[1].solo_auc.unwrap() < 0.8, "{suspects:?}");
}
