//! Whether a feature's values in a window still follow the distribution they had in a reference (the
//! data a model was trained on), with an alarm rule that holds its false-alarm rate whatever the
//! sizes of the two samples.
//!
//! The measure is the population stability index over the reference's deciles (and a bin for missing
//! values): PSI = Σ (w − r) ln(w / r), with `w` and `r` the shares of the window and the reference in
//! each bin (half a count added to each, so an empty bin does not make it infinite). A fixed PSI
//! threshold (the common 0.1 / 0.25) alarms on noise in a small window and misses nothing in a large
//! one; but under no drift PSI / (1/n + 1/N) follows a chi-square distribution with one degree of
//! freedom fewer than the bins (Yurdakul, "Statistical properties of the population stability index",
//! 2018), so a p-value says how surprising a PSI is for the sizes at hand. [`Rule`] alarms when both
//! hold: the p-value is below α split over the features tested (Bonferroni), and the PSI is at least a
//! practical size (so a huge window does not alarm on a shift too small to matter).

use crate::dist::chi2_sf;

/// One feature's comparison of a window with the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftTest {
    pub psi: f64,
    /// PSI / (1/n + 1/N): chi-square with `df` degrees of freedom under no drift.
    pub statistic: f64,
    pub df: usize,
    pub p_value: f64,
    /// The sample sizes the statistic used: values, or effective sizes for [`psi_test_clustered`].
    pub reference_n: usize,
    pub window_n: usize,
    pub bins: Vec<Bin>,
}

/// A bin of the comparison: values up to `upper` (above the bin before it), or the missing values.
#[derive(Debug, Clone, PartialEq)]
pub struct Bin {
    /// The bin's upper edge, inclusive (infinite for the last); `None` for the missing values.
    pub upper: Option<f64>,
    pub reference_share: f64,
    pub window_share: f64,
}

/// The edges of the bins a reference sample is compared in: its deciles (at most `max_bins` bins),
/// without repeats, so a feature with few values (a yes/no behaviour) gets a bin per value. `None` when
/// the reference has no value.
pub fn edges(reference: &[f64], max_bins: usize) -> Option<Vec<f64>> {
    let mut sorted: Vec<f64> = reference.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let max = sorted[n - 1];
    let bins = max_bins.max(2);
    let mut edges: Vec<f64> = (1..bins)
        .map(|k| sorted[((k * n) / bins).min(n - 1)])
        .collect();
    edges.dedup();
    // The last bin holds what lies above the last edge: an edge at the maximum leaves it empty in the
    // reference, unless it is the only edge (a constant reference, compared with anything else).
    if edges.len() > 1 && edges.last() == Some(&max) {
        edges.pop();
    }
    if edges.is_empty() {
        edges.push(max);
    }
    Some(edges)
}

/// Compares `window` with `reference` in the bins of [`edges`] and one for missing values (NaN) when
/// either sample has any. `None` when either sample is empty or there is only one bin. Every value is
/// taken as an independent draw; for values that come in clusters see [`psi_test_clustered`].
pub fn psi_test(reference: &[f64], window: &[f64], max_bins: usize) -> Option<DriftTest> {
    if reference.is_empty() || window.is_empty() {
        return None;
    }
    let edges = edges(reference, max_bins)?;
    let missing = reference.iter().chain(window).any(|v| v.is_nan());
    let n_bins = edges.len() + 1 + usize::from(missing);
    let count = |sample: &[f64]| {
        let mut c = vec![0usize; n_bins];
        for &v in sample {
            let k = if v.is_nan() {
                n_bins - 1
            } else {
                edges.partition_point(|e| *e < v)
            };
            c[k] += 1;
        }
        c
    };
    let (r, w) = (count(reference), count(window));
    let (big_n, n) = (reference.len(), window.len());
    let share = |c: usize, total: usize| (c as f64 + 0.5) / (total as f64 + 0.5 * n_bins as f64);
    let mut psi = 0.0;
    let mut bins = Vec::with_capacity(n_bins);
    for k in 0..n_bins {
        let (rs, ws) = (share(r[k], big_n), share(w[k], n));
        psi += (ws - rs) * (ws / rs).ln();
        bins.push(Bin {
            upper: if missing && k == n_bins - 1 {
                None
            } else {
                Some(edges.get(k).copied().unwrap_or(f64::INFINITY))
            },
            reference_share: r[k] as f64 / big_n as f64,
            window_share: w[k] as f64 / n as f64,
        });
    }
    let df = n_bins - 1;
    let statistic = psi / (1.0 / n as f64 + 1.0 / big_n as f64);
    Some(DriftTest {
        psi,
        statistic,
        df,
        p_value: chi2_sf(statistic, df as f64),
        reference_n: big_n,
        window_n: n,
        bins,
    })
}

/// [`psi_test`] for values that come in clusters: `reference_clusters[i]` names the cluster of
/// `reference[i]` (the account a landmark snapshot is of), and likewise for the window. The snapshots
/// of one cluster are alike — an account's attributes at every landmark of its deals — so counting each
/// as an independent draw overstates how much a sample says, and the chi-square test alarms on noise.
/// The PSI is the same as [`psi_test`]'s (every value counts in the shares: what is compared does not
/// change); only the sizes the statistic divides by are the samples' effective sizes, (Σm)² / Σm² for
/// clusters of m values (Kish). A bin's share then varies at most as the chi-square assumes, however
/// alike the values of a cluster are (all alike is the worst case, and then the effective size is the
/// number of equal clusters), so the false-alarm rate holds; the price is less power when clusters are
/// large.
pub fn psi_test_clustered(
    reference: &[f64],
    reference_clusters: &[u64],
    window: &[f64],
    window_clusters: &[u64],
    max_bins: usize,
) -> Option<DriftTest> {
    assert_eq!(reference.len(), reference_clusters.len());
    assert_eq!(window.len(), window_clusters.len());
    let mut t = psi_test(reference, window, max_bins)?;
    let (big_n, n) = (
        effective_size(reference_clusters),
        effective_size(window_clusters),
    );
    t.statistic = t.psi / (1.0 / n + 1.0 / big_n);
    t.p_value = chi2_sf(t.statistic, t.df as f64);
    t.reference_n = big_n.round() as usize;
    t.window_n = n.round() as usize;
    Some(t)
}

/// Kish's effective sample size of values in clusters: (Σm)² / Σm², m the values per cluster.
pub fn effective_size(clusters: &[u64]) -> f64 {
    let mut sizes: std::collections::HashMap<u64, f64> = std::collections::HashMap::new();
    for c in clusters {
        *sizes.entry(*c).or_default() += 1.0;
    }
    let total: f64 = sizes.values().sum();
    let squares: f64 = sizes.values().map(|m| m * m).sum();
    if squares == 0.0 {
        0.0
    } else {
        total * total / squares
    }
}

/// When a drift test alarms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// The chance of any false alarm in one window over all the features tested (split evenly).
    pub alpha: f64,
    /// The smallest PSI worth an alarm.
    pub min_psi: f64,
}

impl Default for Rule {
    fn default() -> Rule {
        Rule {
            alpha: 0.01,
            min_psi: 0.1,
        }
    }
}

impl Rule {
    /// Whether `test`, one of `tested` features tested on the same window, alarms.
    pub fn alarms(&self, test: &DriftTest, tested: usize) -> bool {
        test.p_value < self.alpha / tested.max(1) as f64 && test.psi >= self.min_psi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small fixed-seed generator (xorshift64*), enough for these checks.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn f64(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn normal(rng: &mut Rng, n: usize, shift: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                // Box–Muller.
                let (u, v) = (rng.f64().max(1e-12), rng.f64());
                shift + (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
            })
            .collect()
    }

    #[test]
    fn a_yes_no_feature_gets_a_bin_per_value_and_a_constant_one_two() {
        assert_eq!(edges(&[0.0, 0.0, 1.0, 1.0, 1.0], 10), Some(vec![0.0]));
        assert_eq!(edges(&[3.0; 20], 10), Some(vec![3.0]));
        assert_eq!(edges(&[f64::NAN], 10), None);
        let t = psi_test(&[0.0, 0.0, 1.0, 1.0], &[1.0, 1.0, f64::NAN, 1.0], 10).unwrap();
        assert_eq!((t.bins.len(), t.df), (3, 2));
        assert_eq!(t.bins[2].upper, None);
        assert_eq!(t.bins[0].window_share, 0.0);
    }

    /// Under no drift the rule alarms about as rarely as it says, on small and large windows alike; a
    /// shift of half a standard deviation in one feature is found in a window of 300.
    #[test]
    fn the_rule_holds_its_false_alarm_rate_and_finds_a_planted_shift() {
        let mut rng = Rng::new(11);
        let rule = Rule::default();
        let features = 20;
        let references: Vec<Vec<f64>> = (0..features)
            .map(|_| normal(&mut rng, 5_000, 0.0))
            .collect();
        for window in [100, 300, 5_000] {
            let mut alarms = 0;
            for _ in 0..20 {
                for r in &references {
                    let t = psi_test(r, &normal(&mut rng, window, 0.0), 10).unwrap();
                    alarms += usize::from(rule.alarms(&t, features));
                }
            }
            assert!(
                alarms <= 1,
                "{alarms} false alarms in 20 windows of {window}"
            );
        }
        let t = psi_test(&references[0], &normal(&mut rng, 300, 0.5), 10).unwrap();
        assert!(rule.alarms(&t, features), "{t:?}");
        // Under no drift the statistic's mean is about its degrees of freedom.
        let mean: f64 = (0..400)
            .map(|_| {
                psi_test(&references[1], &normal(&mut rng, 300, 0.0), 10)
                    .unwrap()
                    .statistic
            })
            .sum::<f64>()
            / 400.0;
        assert!((mean - 9.0).abs() < 1.5, "mean statistic {mean}");
    }

    /// Values that come in clusters of 6 alike (an account's attribute at every landmark of its deals,
    /// with a little noise): counted as independent draws, unshifted windows alarm again and again;
    /// with the effective sizes, at most one of 20 windows (of 40 clusters) does, and a shift of half a
    /// standard deviation of the clusters is still found in a window of 200 clusters.
    #[test]
    fn clusters_counted_once_keep_the_false_alarm_rate() {
        let mut rng = Rng::new(5);
        let rule = Rule::default();
        let clustered = |rng: &mut Rng, clusters: usize, shift: f64| -> (Vec<f64>, Vec<u64>) {
            let centres = normal(rng, clusters, shift);
            let noise = normal(rng, clusters * 6, 0.0);
            (0..clusters * 6)
                .map(|i| (centres[i / 6] + 0.1 * noise[i], (i / 6) as u64))
                .unzip()
        };
        let (reference, reference_clusters) = clustered(&mut rng, 2_000, 0.0);
        let (mut naive, mut counted_once) = (0, 0);
        assert!((effective_size(&[1, 1, 2, 3, 3, 3]) - 36.0 / 14.0).abs() < 1e-12);
        for _ in 0..20 {
            let (window, window_clusters) = clustered(&mut rng, 40, 0.0);
            let t = psi_test(&reference, &window, 10).unwrap();
            naive += usize::from(rule.alarms(&t, 1));
            let t = psi_test_clustered(
                &reference,
                &reference_clusters,
                &window,
                &window_clusters,
                10,
            )
            .unwrap();
            // Clusters of six equal sizes: the effective size is the number of clusters.
            assert_eq!((t.reference_n, t.window_n), (2_000, 40));
            counted_once += usize::from(rule.alarms(&t, 1));
        }
        assert!(naive >= 5, "independent draws: {naive} alarms");
        assert!(counted_once <= 1, "clusters once: {counted_once} alarms");
        let (window, window_clusters) = clustered(&mut rng, 200, 0.5);
        let t = psi_test_clustered(
            &reference,
            &reference_clusters,
            &window,
            &window_clusters,
            10,
        )
        .unwrap();
        assert!(rule.alarms(&t, 1), "{t:?}");
    }
}
