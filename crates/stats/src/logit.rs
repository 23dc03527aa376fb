//! Logistic regression by Newton–Raphson, with Firth's penalised likelihood for separated data, and
//! average marginal effects with delta-method standard errors.

use crate::linalg::{cholesky, cholesky_solve, dot, spd_inverse, Matrix};
use crate::{sandwich, Estimates, FitError};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogitOptions {
    /// Use Firth's bias-reduced (Jeffreys-prior penalised) likelihood: finite estimates even when a
    /// column separates the outcomes.
    pub firth: bool,
    pub max_iter: usize,
    /// Converged when the largest coefficient change of a full Newton step is below this.
    pub tol: f64,
}

impl Default for LogitOptions {
    fn default() -> Self {
        LogitOptions {
            firth: false,
            max_iter: 100,
            tol: 1e-10,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogitFit {
    /// Coefficients and the covariance for inference: cluster-robust when clusters were given, else the
    /// inverse information.
    pub est: Estimates,
    /// The inverse of the information matrix `XᵀWX` at the estimate.
    pub naive_cov: Matrix,
    /// Log-likelihood (unpenalised) at the estimate.
    pub loglik: f64,
    /// Fitted probabilities.
    pub fitted: Vec<f64>,
    pub firth: bool,
}

fn sigmoid(eta: f64) -> f64 {
    if eta >= 0.0 {
        1.0 / (1.0 + (-eta).exp())
    } else {
        let e = eta.exp();
        e / (1.0 + e)
    }
}

fn loglik(y: &[f64], p: &[f64]) -> f64 {
    y.iter()
        .zip(p)
        .map(|(y, p)| {
            let p = p.clamp(1e-300, 1.0 - 1e-16);
            y * p.ln() + (1.0 - y) * (1.0 - p).ln()
        })
        .sum()
}

fn probabilities(x: &Matrix, beta: &[f64]) -> Vec<f64> {
    (0..x.rows())
        .map(|i| sigmoid(dot(x.row(i), beta)))
        .collect()
}

/// Fits `P(y = 1) = σ(x β)`. `y` holds 0/1; `x` includes the intercept column if one is wanted.
/// With `clusters` (dense ids `0..G`, one per row) the covariance is the cluster-robust sandwich with
/// statsmodels' small-sample factor `G/(G−1) · (N−1)/(N−K)`.
pub fn fit(
    y: &[f64],
    x: &Matrix,
    clusters: Option<&[u32]>,
    opts: &LogitOptions,
) -> Result<LogitFit, FitError> {
    let (n, k) = (x.rows(), x.cols());
    if y.len() != n || clusters.is_some_and(|c| c.len() != n) {
        return Err(FitError::Invalid(format!(
            "{n} rows in the design but {} outcomes",
            y.len()
        )));
    }
    if let Some(i) = y.iter().position(|v| *v != 0.0 && *v != 1.0) {
        return Err(FitError::Invalid(format!(
            "outcome of row {i} is {}, expected 0 or 1",
            y[i]
        )));
    }
    if let Some(i) = (0..n).find(|i| x.row(*i).iter().any(|v| !v.is_finite())) {
        return Err(FitError::Invalid(format!(
            "row {i} has a value that is not a finite number"
        )));
    }
    if n <= k {
        return Err(FitError::Invalid(format!(
            "{n} rows cannot identify {k} coefficients"
        )));
    }
    let mut beta = vec![0.0; k];
    let mut p = probabilities(x, &beta);
    let objective = |p: &[f64], info: &Matrix| -> f64 {
        let mut l = loglik(y, p);
        if opts.firth {
            // ½ log det(information), from its Cholesky factor.
            if let Ok(c) = cholesky(info) {
                l += (0..k).map(|j| c.get(j, j).ln()).sum::<f64>();
            } else {
                return f64::NEG_INFINITY;
            }
        }
        l
    };
    let weights = |p: &[f64]| p.iter().map(|p| p * (1.0 - p)).collect::<Vec<f64>>();
    let mut info = x.weighted_gram(Some(&weights(&p)));
    let mut current = objective(&p, &info);
    for iter in 1..=opts.max_iter {
        let w = weights(&p);
        let chol = cholesky(&info)?;
        let mut resid: Vec<f64> = y.iter().zip(&p).map(|(y, p)| y - p).collect();
        if opts.firth {
            // Modified score: X' (y − p + h (½ − p)), h the diagonal of the hat matrix.
            for i in 0..n {
                let xi = x.row(i);
                let v = cholesky_solve(&chol, xi);
                let h = w[i] * dot(xi, &v);
                resid[i] += h * (0.5 - p[i]);
            }
        }
        let score = x.t_mul_vec(&resid);
        let step = cholesky_solve(&chol, &score);
        // Step-halving keeps the (penalised) likelihood from decreasing.
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..30 {
            let cand: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + t * s).collect();
            let cp = probabilities(x, &cand);
            let cinfo = x.weighted_gram(Some(&weights(&cp)));
            let obj = objective(&cp, &cinfo);
            if obj >= current - 1e-12 * current.abs().max(1.0) {
                accepted = Some((cand, cp, cinfo, obj));
                break;
            }
            t *= 0.5;
        }
        let Some((cand, cp, cinfo, obj)) = accepted else {
            return Err(FitError::NotConverged { iterations: iter });
        };
        // Converged when the full Newton step is small, whatever step was taken: a step shortened by
        // halving says nothing about being at the optimum.
        let change = step.iter().fold(0.0_f64, |m, s| m.max(s.abs()));
        beta = cand;
        p = cp;
        info = cinfo;
        current = obj;
        if change < opts.tol {
            return finish(y, x, clusters, beta, p, info, iter, opts.firth);
        }
    }
    Err(FitError::NotConverged {
        iterations: opts.max_iter,
    })
}

/// The covariance of a fit. The cluster-robust meat uses the plain scores `x (y − p)` also for a Firth
/// fit (whose estimating equation adds `h (½ − p)`): the penalty's contribution vanishes as n grows, and
/// this keeps one definition of the robust variance for every fit; Firth estimates are flagged
/// `penalised` for the reader.
#[allow(clippy::too_many_arguments)]
fn finish(
    y: &[f64],
    x: &Matrix,
    clusters: Option<&[u32]>,
    beta: Vec<f64>,
    p: Vec<f64>,
    info: Matrix,
    iterations: usize,
    firth: bool,
) -> Result<LogitFit, FitError> {
    let naive_cov = spd_inverse(&info)?;
    let cov = match clusters {
        Some(c) => {
            let mut scores = x.clone();
            for i in 0..x.rows() {
                let r = y[i] - p[i];
                scores.row_mut(i).iter_mut().for_each(|v| *v *= r);
            }
            sandwich(&naive_cov, &scores, c, None)
        }
        None => naive_cov.clone(),
    };
    Ok(LogitFit {
        est: Estimates {
            beta,
            cov,
            iterations,
        },
        naive_cov,
        loglik: loglik(y, &p),
        fitted: p,
        firth,
    })
}

/// An average marginal effect on the probability, with its delta-method standard error (from the fit's
/// covariance).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MarginalEffect {
    pub effect: f64,
    pub se: f64,
}

impl LogitFit {
    /// Average discrete change of P(y = 1) when 0/1 column `j` goes from 0 to 1 for every row
    /// (statsmodels `get_margeff(at="overall", dummy=True)`).
    pub fn ame_dummy(&self, x: &Matrix, j: usize) -> MarginalEffect {
        let k = x.cols();
        let beta = &self.est.beta;
        let mut effect = 0.0;
        let mut grad = vec![0.0; k];
        let mut row = vec![0.0; k];
        for i in 0..x.rows() {
            row.copy_from_slice(x.row(i));
            row[j] = 1.0;
            let p1 = sigmoid(dot(&row, beta));
            let d1 = p1 * (1.0 - p1);
            for (g, v) in grad.iter_mut().zip(&row) {
                *g += d1 * v;
            }
            row[j] = 0.0;
            let p0 = sigmoid(dot(&row, beta));
            let d0 = p0 * (1.0 - p0);
            for (g, v) in grad.iter_mut().zip(&row) {
                *g -= d0 * v;
            }
            effect += p1 - p0;
        }
        self.delta(effect, grad, x.rows())
    }

    /// Average derivative of P(y = 1) with respect to column `j` (statsmodels
    /// `get_margeff(at="overall", dummy=False)`), per unit of the column.
    pub fn ame_dydx(&self, x: &Matrix, j: usize) -> MarginalEffect {
        let k = x.cols();
        let bj = self.est.beta[j];
        let mut mean_d = 0.0;
        let mut grad = vec![0.0; k];
        for i in 0..x.rows() {
            let p = self.fitted[i];
            let d = p * (1.0 - p);
            mean_d += d;
            let dd = d * (1.0 - 2.0 * p) * bj;
            for (g, v) in grad.iter_mut().zip(x.row(i)) {
                *g += dd * v;
            }
        }
        grad[j] += mean_d;
        self.delta(mean_d * bj, grad, x.rows())
    }

    fn delta(&self, total: f64, mut grad: Vec<f64>, n: usize) -> MarginalEffect {
        let n = n as f64;
        grad.iter_mut().for_each(|g| *g /= n);
        let cg = self.est.cov.mul_vec(&grad);
        MarginalEffect {
            effect: total / n,
            se: dot(&grad, &cg).max(0.0).sqrt(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separation_fails_plainly_and_firth_stays_finite() {
        // x perfectly separates y.
        let xs = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let y = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let x = Matrix::from_rows(8, 2, xs.iter().flat_map(|v| [1.0, *v]).collect());
        let plain = fit(&y, &x, None, &LogitOptions::default());
        assert!(plain.is_err() || plain.is_ok_and(|f| f.est.beta[1] > 15.0));
        let firth = fit(
            &y,
            &x,
            None,
            &LogitOptions {
                firth: true,
                ..LogitOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Firth on a 2×2 table adds ½ to each cell: log((4.5 · 4.5) / (0.5 · 0.5)) = log 81.
        assert!(
            (firth.est.beta[1] - 81f64.ln()).abs() < 1e-6,
            "{:?}",
            firth.est.beta
        );
    }

    #[test]
    fn bad_outcomes_are_refused() {
        let x = Matrix::from_rows(3, 1, vec![1.0, 1.0, 1.0]);
        let e = fit(&[0.0, 2.0, 1.0], &x, None, &LogitOptions::default());
        assert!(matches!(e, Err(FitError::Invalid(m)) if m.contains("row 1")));
    }
}
