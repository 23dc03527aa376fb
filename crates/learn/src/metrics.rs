//! How good predicted probabilities are: discrimination (AUC), accuracy (Brier score, log loss) and
//! calibration (slope and intercepts, reliability curve). Each follows scikit-learn's definition and
//! is checked against it (`tests/metrics.rs`).

use serde::{Deserialize, Serialize};

use crate::calibration::{intercept_with_unit_slope, Calibration};
use crate::error::{input, Result};

/// Probabilities are clipped to `[EPS, 1 − EPS]` for log loss and logits, as scikit-learn did before
/// 1.5 (it now clips at the float's machine epsilon; the two agree unless a prediction is within
/// 1e-15 of 0 or 1).
pub const EPS: f64 = 1e-15;

fn check(p: &[f64], y: &[bool]) -> Result<()> {
    if p.len() != y.len() {
        return Err(input(format!(
            "{} predictions but {} labels",
            p.len(),
            y.len()
        )));
    }
    if p.is_empty() {
        return Err(input("no predictions"));
    }
    if let Some(i) = p.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(input(format!(
            "prediction {i} is {}, expected a probability in [0, 1]",
            p[i]
        )));
    }
    Ok(())
}

fn check_both_classes(y: &[bool], what: &str) -> Result<(usize, usize)> {
    let n_pos = y.iter().filter(|&&v| v).count();
    let n_neg = y.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(input(format!("{what} needs rows of both outcomes")));
    }
    Ok((n_pos, n_neg))
}

/// Area under the ROC curve: the probability that a random positive is ranked above a random
/// negative, ties counted half (Mann–Whitney U; equals scikit-learn's `roc_auc_score`).
pub fn auc(p: &[f64], y: &[bool]) -> Result<f64> {
    check(p, y)?;
    let (n_pos, n_neg) = check_both_classes(y, "AUC")?;
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    // Sum of the (mid-)ranks of the positives, ranks from 1.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && p[order[end]] == p[order[start]] {
            end += 1;
        }
        let mid_rank = (start + 1 + end) as f64 / 2.0;
        let positives = order[start..end].iter().filter(|&&i| y[i]).count();
        rank_sum += mid_rank * positives as f64;
        start = end;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Ok(u / (n_pos as f64 * n_neg as f64))
}

/// The AUC to expect of `p` before any outcome is known, if `p` are calibrated probabilities (each row
/// turns out positive with its own probability, independently): confidence-based performance
/// estimation (NannyML's CBPE) in closed form. Each pair (i, j) counts with the probability that i is
/// positive and j negative, in the numerator when i is ranked above j (half when tied) and always in
/// the denominator:
/// `Σ_{i≠j} p_i (1 − p_j) [p_i > p_j] / Σ_{i≠j} p_i (1 − p_j)`, a ratio of expectations (for a few
/// hundred rows within a few thousandths of the expected AUC, the test shows).
pub fn expected_auc(p: &[f64]) -> Result<f64> {
    check(p, &vec![false; p.len()])?;
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    // Σ (1 − p) of the rows ranked strictly below the current group.
    let mut below = 0.0;
    let mut numerator = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && p[order[end]] == p[order[start]] {
            end += 1;
        }
        let group_negative: f64 = order[start..end].iter().map(|&i| 1.0 - p[i]).sum();
        for &i in &order[start..end] {
            let tied = group_negative - (1.0 - p[i]);
            numerator += p[i] * (below + 0.5 * tied);
        }
        below += group_negative;
        start = end;
    }
    let positive: f64 = p.iter().sum();
    let negative: f64 = p.iter().map(|v| 1.0 - v).sum();
    let same: f64 = p.iter().map(|v| v * (1.0 - v)).sum();
    let denominator = positive * negative - same;
    if denominator <= 1e-12 {
        return Err(input(
            "the expected AUC needs probabilities that leave both outcomes possible",
        ));
    }
    Ok(numerator / denominator)
}

/// The Brier score to expect of calibrated probabilities `p` before any outcome is known: the mean of
/// `p (1 − p)`.
pub fn expected_brier(p: &[f64]) -> Result<f64> {
    check(p, &vec![false; p.len()])?;
    Ok(p.iter().map(|v| v * (1.0 - v)).sum::<f64>() / p.len() as f64)
}

/// Mean squared difference between prediction and outcome (scikit-learn's `brier_score_loss`).
pub fn brier(p: &[f64], y: &[bool]) -> Result<f64> {
    check(p, y)?;
    Ok(p.iter()
        .zip(y)
        .map(|(&p, &y)| {
            let d = p - f64::from(u8::from(y));
            d * d
        })
        .sum::<f64>()
        / p.len() as f64)
}

/// Mean negative log-likelihood, probabilities clipped to `[EPS, 1 − EPS]` (scikit-learn's
/// `log_loss`).
pub fn log_loss(p: &[f64], y: &[bool]) -> Result<f64> {
    check(p, y)?;
    Ok(-p
        .iter()
        .zip(y)
        .map(|(&p, &y)| {
            let p = p.clamp(EPS, 1.0 - EPS);
            if y {
                p.ln()
            } else {
                (1.0 - p).ln()
            }
        })
        .sum::<f64>()
        / p.len() as f64)
}

/// Calibration of predictions on the logit scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationStats {
    /// `b` in the logistic regression `logit P(y) = a + b · logit(p)`: 1 when well calibrated, below 1
    /// when predictions are too extreme (overfitting), above 1 when too timid.
    pub slope: f64,
    /// `a` of that same regression (fitted jointly with the slope).
    pub intercept: f64,
    /// Calibration-in-the-large: `a` in `logit P(y) = a + logit(p)` with the slope fixed at 1; 0 when
    /// the predictions are right on average, positive when they are too low.
    pub intercept_in_the_large: f64,
}

/// The calibration slope and intercepts of predictions `p` (clipped to `[EPS, 1 − EPS]` before the
/// logit is taken).
pub fn calibration_slope_intercept(p: &[f64], y: &[bool]) -> Result<CalibrationStats> {
    check(p, y)?;
    check_both_classes(y, "calibration")?;
    let logits: Vec<f64> = p
        .iter()
        .map(|&p| {
            let p = p.clamp(EPS, 1.0 - EPS);
            (p / (1.0 - p)).ln()
        })
        .collect();
    let joint = Calibration::fit(&logits, y)?;
    Ok(CalibrationStats {
        slope: joint.slope,
        intercept: joint.intercept,
        intercept_in_the_large: intercept_with_unit_slope(&logits, y)?,
    })
}

/// One bin of a reliability curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub n: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
    /// The smallest and largest prediction in the bin.
    pub p_min: f64,
    pub p_max: f64,
}

/// Predictions sorted and cut into `n_bins` groups of (nearly) equal size — deciles for 10 — with
/// each group's mean prediction against its observed rate. Equal predictions may straddle two groups
/// (rows are ordered by prediction, then by position) so that the sizes stay equal.
pub fn reliability_curve(p: &[f64], y: &[bool], n_bins: usize) -> Result<Vec<ReliabilityBin>> {
    check(p, y)?;
    if n_bins == 0 {
        return Err(input("a reliability curve needs at least one bin"));
    }
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let n = p.len();
    Ok((0..n_bins)
        .filter_map(|k| {
            let rows = &order[k * n / n_bins..(k + 1) * n / n_bins];
            if rows.is_empty() {
                return None;
            }
            let len = rows.len() as f64;
            Some(ReliabilityBin {
                n: rows.len(),
                mean_predicted: rows.iter().map(|&i| p[i]).sum::<f64>() / len,
                observed_rate: rows.iter().filter(|&&i| y[i]).count() as f64 / len,
                p_min: p[rows[0]],
                p_max: p[rows[rows.len() - 1]],
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {

    /// The expected AUC and Brier score equal the mean over many draws of outcomes from the
    /// probabilities themselves (a Monte Carlo of 4,000 draws; its own error is about 0.0005).
    #[test]
    fn expected_figures_match_outcomes_drawn_from_the_probabilities() {
        // 300 probabilities spread like a win model's (many low, some high, ties included).
        let p: Vec<f64> = (0..300)
            .map(|i| {
                let u = ((i * 7919) % 300) as f64 / 300.0;
                (0.02 + 0.9 * u * u).min(0.97)
            })
            .map(|v: f64| (v * 50.0).round() / 50.0)
            .collect();
        let mut state = 42_u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1_u64 << 53) as f64
        };
        let (mut auc_sum, mut brier_sum, mut draws) = (0.0, 0.0, 0);
        for _ in 0..4000 {
            let y: Vec<bool> = p.iter().map(|&v| next() < v).collect();
            if let Ok(a) = auc(&p, &y) {
                auc_sum += a;
                brier_sum += brier(&p, &y).unwrap();
                draws += 1;
            }
        }
        let (mean_auc, mean_brier) = (auc_sum / draws as f64, brier_sum / draws as f64);
        let expected = expected_auc(&p).unwrap();
        assert!(
            (expected - mean_auc).abs() < 0.003,
            "{expected} vs {mean_auc}"
        );
        assert!((expected_brier(&p).unwrap() - mean_brier).abs() < 0.001);
        // Probabilities that cannot be told apart, or that leave one outcome only.
        assert!((expected_auc(&[0.3; 10]).unwrap() - 0.5).abs() < 1e-12);
        assert!(expected_auc(&[1.0, 1.0]).is_err());
    }
    use super::*;

    #[test]
    fn auc_counts_ties_half() {
        let p = [0.1, 0.4, 0.4, 0.8];
        let y = [false, false, true, true];
        // Pairs (pos, neg): (0.4, 0.1) win, (0.4, 0.4) tie, (0.8, ·) two wins: 3.5 / 4.
        assert_eq!(auc(&p, &y).ok(), Some(0.875));
        assert!(auc(&p, &[true; 4]).is_err());
    }

    #[test]
    fn reliability_bins_have_equal_sizes() {
        let p: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let y: Vec<bool> = (0..100).map(|i| i % 2 == 0).collect();
        let curve = reliability_curve(&p, &y, 10).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(curve.len(), 10);
        assert!(curve.iter().all(|b| b.n == 10 && b.observed_rate == 0.5));
        assert!((curve[0].mean_predicted - 0.045).abs() < 1e-12);
    }

    #[test]
    fn bad_probabilities_are_refused() {
        assert!(brier(&[1.5], &[true]).is_err());
        assert!(log_loss(&[0.5, 0.5], &[true]).is_err());
        assert!(log_loss(&[f64::NAN], &[true]).is_err());
    }
}
