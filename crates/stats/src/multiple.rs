//! Multiple testing: Benjamini–Hochberg false-discovery-rate q-values.

/// Benjamini–Hochberg adjusted p-values (q-values), in the input order: `q_(i) = min_{j ≥ i} m p_(j) / j`,
/// capped at 1 (statsmodels `multipletests(method="fdr_bh")`). NaN p-values are not tests: they get NaN
/// and do not count in `m`.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|i| !p[*i].is_nan()).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]).then(a.cmp(b)));
    let m = order.len() as f64;
    let mut q = vec![f64::NAN; p.len()];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// statsmodels.stats.multitest.multipletests([0.01, 0.04, 0.03, 0.005, 0.5], method="fdr_bh")[1]
    /// = [0.025, 0.05, 0.05, 0.025, 0.5].
    #[test]
    fn matches_statsmodels() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005, 0.5]);
        let want = [0.025, 0.05, 0.05, 0.025, 0.5];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{q:?}");
        }
    }

    #[test]
    fn nan_is_not_a_test() {
        let q = benjamini_hochberg(&[0.01, f64::NAN, 0.02]);
        assert!(q[1].is_nan());
        assert!((q[0] - 0.02).abs() < 1e-15 && (q[2] - 0.02).abs() < 1e-15);
    }
}
