//! Ordinary least squares with cluster-robust covariance.

use crate::linalg::{cholesky, cholesky_solve, dot, spd_inverse, Matrix};
use crate::{sandwich, Estimates, FitError};

#[derive(Debug, Clone, PartialEq)]
pub struct OlsFit {
    /// Coefficients and the covariance for inference: cluster-robust when clusters were given, else the
    /// classical `σ² (XᵀX)⁻¹`.
    pub est: Estimates,
    pub residuals: Vec<f64>,
    pub r_squared: f64,
    /// `(XᵀX)⁻¹`.
    pub bread: Matrix,
}

impl OlsFit {
    /// The small-sample cluster-robust covariance (CR2) with Satterthwaite degrees of freedom.
    pub fn cr2(
        &self,
        x: &Matrix,
        clusters: &[u32],
    ) -> Result<crate::cluster::ClusterRobust, FitError> {
        let w = vec![1.0; x.rows()];
        crate::cluster::cr2(x, &w, &self.residuals, &self.bread, clusters)
    }
}

/// Fits `y = x β + ε`. With `clusters` (dense ids `0..G`) the covariance is the sandwich
/// `(XᵀX)⁻¹ (Σ_g s_g s_gᵀ) (XᵀX)⁻¹` with `s_g = Σ_{i∈g} x_i e_i` and statsmodels' small-sample factor.
pub fn fit(y: &[f64], x: &Matrix, clusters: Option<&[u32]>) -> Result<OlsFit, FitError> {
    let (n, k) = (x.rows(), x.cols());
    if y.len() != n || clusters.is_some_and(|c| c.len() != n) {
        return Err(FitError::Invalid(format!(
            "{n} rows in the design but {} outcomes",
            y.len()
        )));
    }
    if let Some(i) = (0..n).find(|i| !y[*i].is_finite() || x.row(*i).iter().any(|v| !v.is_finite()))
    {
        return Err(FitError::Invalid(format!(
            "row {i} has a value that is not a finite number"
        )));
    }
    if n <= k {
        return Err(FitError::Invalid(format!(
            "{n} rows cannot identify {k} coefficients"
        )));
    }
    let gram = x.weighted_gram(None);
    let chol = cholesky(&gram)?;
    let beta = cholesky_solve(&chol, &x.t_mul_vec(y));
    let residuals: Vec<f64> = (0..n).map(|i| y[i] - dot(x.row(i), &beta)).collect();
    let bread = spd_inverse(&gram)?;
    let rss: f64 = residuals.iter().map(|e| e * e).sum();
    let mean = y.iter().sum::<f64>() / n as f64;
    let tss: f64 = y.iter().map(|v| (v - mean) * (v - mean)).sum();
    let cov = match clusters {
        Some(c) => {
            let mut scores = x.clone();
            for (i, e) in residuals.iter().enumerate() {
                scores.row_mut(i).iter_mut().for_each(|v| *v *= e);
            }
            sandwich(&bread, &scores, c, None)
        }
        None => {
            let mut cov = bread;
            cov.scale(rss / (n - k) as f64);
            cov
        }
    };
    Ok(OlsFit {
        bread: spd_inverse(&gram)?,
        est: Estimates {
            beta,
            cov,
            iterations: 1,
        },
        residuals,
        r_squared: if tss > 0.0 { 1.0 - rss / tss } else { f64::NAN },
    })
}
