//! The win model's recalibration decision on hand-made calibration deals: a calibration that looks off
//! is corrected only when a map fitted on one half of the calibration deals improves the other half.
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
