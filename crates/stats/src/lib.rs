//! Statistics for discovery, written for the sizes winsignal fits (thousands of rows, tens of columns):
//! dense linear algebra, logistic and linear regression and Cox proportional hazards with cluster-robust
//! (sandwich) covariance, small-sample cluster inference (CR2 with Satterthwaite degrees of freedom),
//! Firth's penalised likelihood with profile intervals and likelihood-ratio tests, Fisher's exact test,
//! Kaplan–Meier, Benjamini–Hochberg, and the normal and t distributions.
//!
//! Every estimator is checked against statsmodels, lifelines, clubSandwich, firthmodels or scipy on
//! committed fixtures
//! (`validation/` at the repository root says how they were made).

pub mod cluster;
pub mod cox;
pub mod dist;
pub mod drift;
pub mod km;
pub mod linalg;
pub mod logit;
pub mod multiple;
pub mod ols;

pub use linalg::Matrix;

/// Why a fit gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error("the design is singular: column {column} is a linear combination of the others")]
    Singular { column: usize },
    #[error("the fit did not converge in {iterations} iterations")]
    NotConverged { iterations: usize },
    #[error("{0}")]
    Invalid(String),
}

/// A fitted coefficient vector with its covariance.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimates {
    pub beta: Vec<f64>,
    /// The covariance used for inference (cluster-robust when clusters were given).
    pub cov: Matrix,
    pub iterations: usize,
}

impl Estimates {
    pub fn se(&self, j: usize) -> f64 {
        self.cov.get(j, j).max(0.0).sqrt()
    }

    /// Wald z statistic and two-sided p-value of coefficient `j`.
    pub fn z(&self, j: usize) -> (f64, f64) {
        let z = self.beta[j] / self.se(j);
        (z, dist::two_sided_p(z))
    }

    /// 95 % (or any level) Wald interval of coefficient `j`.
    pub fn ci(&self, j: usize, level: f64) -> (f64, f64) {
        let q = dist::normal_quantile(0.5 + level / 2.0);
        (self.beta[j] - q * self.se(j), self.beta[j] + q * self.se(j))
    }
}

/// Cluster-robust ("sandwich") covariance: `c · B (Σ_g s_g s_gᵀ) B` with `B` the inverse Hessian (the
/// bread) and `s_g` the sum of the per-row scores in cluster `g`. `factor` is `c`; `None` means
/// statsmodels' small-sample factor for `cov_type="cluster"`, `G/(G−1) · (N−1)/(N−K)` (lifelines uses
/// none: pass `Some(1.0)`).
pub fn sandwich(bread: &Matrix, scores: &Matrix, clusters: &[u32], factor: Option<f64>) -> Matrix {
    let k = bread.cols();
    let n = scores.rows();
    let groups = clusters.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut sums = vec![0.0; groups * k];
    for (i, &g) in clusters.iter().enumerate().take(n) {
        let g = g as usize;
        for (j, s) in scores.row(i).iter().enumerate() {
            sums[g * k + j] += s;
        }
    }
    let mut meat = Matrix::zeros(k, k);
    let mut used = 0usize;
    for g in 0..groups {
        let s = &sums[g * k..(g + 1) * k];
        if s.iter().all(|x| *x == 0.0) && !clusters.contains(&(g as u32)) {
            continue;
        }
        used += 1;
        for a in 0..k {
            for b in 0..k {
                *meat.get_mut(a, b) += s[a] * s[b];
            }
        }
    }
    let c = factor.unwrap_or_else(|| {
        let g = used as f64;
        g / (g - 1.0) * (n as f64 - 1.0) / (n as f64 - k as f64)
    });
    let mut cov = bread.mul(&meat).mul(bread);
    cov.scale(c);
    cov
}

/// Dense cluster ids `0..G` for any labels, in order of first appearance.
pub fn cluster_ids<T: std::hash::Hash + Eq + Clone>(labels: &[T]) -> Vec<u32> {
    let mut map = std::collections::HashMap::new();
    labels
        .iter()
        .map(|l| {
            let next = map.len() as u32;
            *map.entry(l.clone()).or_insert(next)
        })
        .collect()
}
