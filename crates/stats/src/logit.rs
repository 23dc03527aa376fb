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
    /// The maximised objective: the log-likelihood, plus `½ log det I(β)` for a Firth fit.
    pub objective: f64,
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
            let mut buf = vec![0.0; k];
            for i in 0..n {
                let h = w[i] * inverse_quadratic(&chol, x.row(i), &mut buf);
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
            return finish(y, x, clusters, beta, p, info, iter, opts.firth, current);
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
    objective: f64,
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
        objective,
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
    /// The small-sample cluster-robust covariance (CR2, working weights `p (1 − p)`) with
    /// Satterthwaite degrees of freedom, as clubSandwich computes it for a `glm`.
    pub fn cr2(
        &self,
        x: &Matrix,
        y: &[f64],
        clusters: &[u32],
    ) -> Result<crate::cluster::ClusterRobust, FitError> {
        let w: Vec<f64> = self.fitted.iter().map(|p| p * (1.0 - p)).collect();
        let resid: Vec<f64> = y.iter().zip(&self.fitted).map(|(y, p)| y - p).collect();
        crate::cluster::cr2(x, &w, &resid, &self.naive_cov, clusters)
    }

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

/// `xᵀ A⁻¹ x` from the Cholesky factor `L` of `A`: `‖L⁻¹ x‖²` by forward substitution into `buf`.
fn inverse_quadratic(l: &Matrix, x: &[f64], buf: &mut [f64]) -> f64 {
    let mut total = 0.0;
    for i in 0..x.len() {
        let row = l.row(i);
        let mut s = x[i];
        for (lik, yk) in row[..i].iter().zip(&buf[..i]) {
            s -= lik * yk;
        }
        let v = s / row[i];
        buf[i] = v;
        total += v * v;
    }
    total
}

/// The penalised log-likelihood `ℓ(β) + ½ log det I(β)` of Firth's method (−∞ where the information is
/// singular).
fn penalised(y: &[f64], x: &Matrix, beta: &[f64]) -> (f64, Vec<f64>, Matrix) {
    let p = probabilities(x, beta);
    let w: Vec<f64> = p.iter().map(|p| p * (1.0 - p)).collect();
    let info = x.weighted_gram(Some(&w));
    let l = match cholesky(&info) {
        Ok(c) => loglik(y, &p) + (0..x.cols()).map(|j| c.get(j, j).ln()).sum::<f64>(),
        Err(_) => f64::NEG_INFINITY,
    };
    (l, p, info)
}

/// The longest Newton step of a constrained penalised fit.
const MAX_STEP: f64 = 5.0;

/// Maximises Firth's penalised log-likelihood with coefficient `j` held at `value` (the penalty is that
/// of the full model, as R's logistf profiles it), starting from `start`. Returns the coefficients and
/// the maximised penalised log-likelihood.
pub fn firth_constrained(
    y: &[f64],
    x: &Matrix,
    j: usize,
    value: f64,
    start: &[f64],
    opts: &LogitOptions,
) -> Result<(Vec<f64>, f64), FitError> {
    let k = x.cols();
    if j >= k || start.len() != k {
        return Err(FitError::Invalid(format!(
            "coefficient {j} of {k}, {} starting values",
            start.len()
        )));
    }
    let free: Vec<usize> = (0..k).filter(|c| *c != j).collect();
    let mut beta = start.to_vec();
    beta[j] = value;
    let (mut current, mut p, mut info) = penalised(y, x, &beta);
    if !current.is_finite() {
        // The start puts some rows' probabilities at exactly 0 or 1 (far along a separated direction):
        // start the other coefficients from 0 instead.
        beta.iter_mut().for_each(|b| *b = 0.0);
        beta[j] = value;
        (current, p, info) = penalised(y, x, &beta);
        if !current.is_finite() {
            return Err(FitError::Invalid(format!(
                "the penalised likelihood with coefficient {j} held at {value} cannot be evaluated: some columns have no weight left there (every row's probability is 0 or 1)"
            )));
        }
    }
    let mut flat = 0;
    for _ in 0..opts.max_iter {
        let chol = cholesky(&info)?;
        let w: Vec<f64> = p.iter().map(|p| p * (1.0 - p)).collect();
        let mut buf = vec![0.0; k];
        let resid: Vec<f64> = (0..x.rows())
            .map(|i| {
                let h = w[i] * inverse_quadratic(&chol, x.row(i), &mut buf);
                y[i] - p[i] + h * (0.5 - p[i])
            })
            .collect();
        let score = x.t_mul_vec(&resid);
        // Newton step on the free coefficients: I_FF δ = U*_F.
        let mut sub = Matrix::zeros(free.len(), free.len());
        for (a, &ca) in free.iter().enumerate() {
            for (b, &cb) in free.iter().enumerate() {
                *sub.get_mut(a, b) = info.get(ca, cb);
            }
        }
        let sub_chol = cholesky(&sub)?;
        let rhs: Vec<f64> = free.iter().map(|c| score[*c]).collect();
        let mut step = cholesky_solve(&sub_chol, &rhs);
        // Steps are capped (as logistf and firthmodels cap them at 5): near separation the information
        // is nearly singular and a full Newton step can leap far past the optimum.
        let longest = step.iter().fold(0.0_f64, |m, s| m.max(s.abs()));
        if longest > MAX_STEP {
            step.iter_mut().for_each(|s| *s *= MAX_STEP / longest);
        }
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let mut cand = beta.clone();
            for (c, s) in free.iter().zip(&step) {
                cand[*c] += t * s;
            }
            let (obj, cp, cinfo) = penalised(y, x, &cand);
            if obj >= current - 1e-12 * current.abs().max(1.0) {
                accepted = Some((cand, obj, cp, cinfo));
                break;
            }
            t *= 0.5;
        }
        let Some((cand, obj, cp, cinfo)) = accepted else {
            // Not even a step 2⁻⁴⁰ as long improves the objective: it is at its maximum along the
            // Newton direction to the precision of its evaluation (a nearly separated design makes the
            // information nearly singular and the direction noisy).
            return Ok((beta, current));
        };
        let change = step.iter().fold(0.0_f64, |m, s| m.max(s.abs()));
        let gain = obj - current;
        beta = cand;
        current = obj;
        p = cp;
        info = cinfo;
        // Converged on a small Newton step, or when steps no longer move the objective by more than
        // 1e-10 relative three times running (near separation the surface is flat in some directions: the value the
        // profile needs has converged although the coefficients along the flat direction wander).
        flat = if gain <= 1e-10 * current.abs().max(1.0) {
            flat + 1
        } else {
            0
        };
        if change < opts.tol.max(1e-9) || flat >= 3 {
            return Ok((beta, current));
        }
    }
    Err(FitError::NotConverged {
        iterations: opts.max_iter,
    })
}

/// Inference on one coefficient of a Firth fit from its profile penalised likelihood: the penalised
/// likelihood-ratio test of `β_j = 0` and the interval of values not rejected, as R's logistf reports
/// them. Both stay valid under separation, where Wald (and sandwich) errors of the penalised estimate
/// mean nothing.
///
/// For clustered rows the likelihood ratio is divided by `scale` (at least 1): how much more the
/// coefficient's efficient score varies between clusters than the model says, measured at the fit
/// under the value tested (`β_j = 0` for the p-value, where the data are not separated; each candidate
/// value for the interval); the statistic is then referred to `F(1, df)`
/// (the square of a t with `df` degrees of freedom, `G − 1` for `G` clusters). This is the
/// Rotnitzky–Jewell adjustment of a working-independence likelihood ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileInference {
    /// `2 (ℓ*(β̂) − ℓ*(β̂ | β_j = 0))`, before the cluster scale.
    pub lr: f64,
    /// The cluster scale the ratio is divided by for the test (each value inside the interval is
    /// tested with the scale at its own constrained fit).
    pub scale: f64,
    /// Degrees of freedom of the reference t (∞: the χ²₁ of the plain test).
    pub df: f64,
    pub p: f64,
    /// The interval's ends, and every coefficient of the constrained fits there (for marginal effects
    /// at the ends).
    pub low: f64,
    pub high: f64,
    pub beta_low: Vec<f64>,
    pub beta_high: Vec<f64>,
    /// The constrained fit at `β_j = 0`.
    pub beta_null: Vec<f64>,
}

/// The largest distance from the estimate searched for an interval's end (log-odds): beyond it the
/// interval is reported as unbounded.
const PROFILE_LIMIT: f64 = 40.0;

/// Profile inference on coefficient `j` of the Firth fit `fit` (see [`ProfileInference`]), with the
/// interval at `level` (e.g. 0.95). `clusters` (dense ids) give the scale and `G − 1` degrees of
/// freedom; without them the scale is 1 and the reference is χ²₁.
pub fn firth_profile(
    y: &[f64],
    x: &Matrix,
    fit: &LogitFit,
    j: usize,
    level: f64,
    clusters: Option<&[u32]>,
) -> Result<ProfileInference, FitError> {
    let opts = LogitOptions {
        firth: true,
        max_iter: 200,
        tol: 1e-10,
    };
    let best = fit.objective;
    let beta_hat = &fit.est.beta;
    let (beta_null, at_null) = firth_constrained(y, x, j, 0.0, beta_hat, &opts)?;
    let lr = (2.0 * (best - at_null)).max(0.0);
    let (scale, df) = match clusters {
        Some(c) => {
            let groups = c.iter().max().map_or(0, |m| *m as usize + 1);
            (
                score_scale(y, x, &beta_null, j, c)?,
                (groups.max(2) - 1) as f64,
            )
        }
        None => (1.0, f64::INFINITY),
    };
    let p = crate::dist::t_two_sided_p((lr / scale).sqrt(), df);
    let q = crate::dist::t_quantile(0.5 + level / 2.0, df);
    let cut = q * q;
    // Distance of the scaled profile statistic from the cut-off at β_j = b (negative inside the
    // interval): the interval inverts the test, so each value's scale is measured at its own
    // constrained fit (at β_j = 0 it would include the effect itself and widen every interval).
    let mut warm = beta_hat.clone();
    let mut gap = |b: f64| -> Result<(f64, Vec<f64>), FitError> {
        let (beta, value) = firth_constrained(y, x, j, b, &warm, &opts)?;
        warm.clone_from(&beta);
        let scale_b = match clusters {
            Some(c) => score_scale(y, x, &beta, j, c)?,
            None => 1.0,
        };
        Ok((2.0 * (best - value) / scale_b - cut, beta))
    };
    // The first step out: the Wald standard error, but at most 1 (near separation the model-based
    // error is huge and a step of that size lands where every probability is exactly 0 or 1).
    let first_step = fit.naive_cov.get(j, j).max(0.0).sqrt().clamp(1e-3, 1.0);
    let mut end = |direction: f64| -> Result<(f64, Vec<f64>), FitError> {
        let centre = beta_hat[j];
        let (mut inside, mut inside_gap) = (centre, -cut);
        let mut inside_beta = beta_hat.clone();
        let (mut inside_width, mut width) = (0.0, first_step);
        let mut failures = 0;
        // Bracket: step out, doubling, until the profile crosses the cut-off; a point where the
        // constrained fit fails is approached again from the last good one.
        let (mut outside, mut outside_gap, mut outside_beta) = loop {
            let b = centre + direction * width;
            match gap(b) {
                Ok((g, beta)) if g >= 0.0 => break (b, g, beta),
                Ok((g, beta)) => {
                    inside = b;
                    inside_gap = g;
                    inside_beta = beta;
                    if width > PROFILE_LIMIT {
                        return Ok((direction * f64::INFINITY, inside_beta));
                    }
                    inside_width = width;
                    width *= 2.0;
                }
                Err(e) => {
                    failures += 1;
                    if failures > 20 {
                        return Err(e);
                    }
                    width = 0.5 * (inside_width + width);
                }
            }
        };
        // Regula falsi with the Illinois modification.
        let mut side = 0;
        for _ in 0..100 {
            if (outside - inside).abs() <= 1e-9 * (1.0 + inside.abs()) {
                break;
            }
            let b = (inside * outside_gap - outside * inside_gap) / (outside_gap - inside_gap);
            let (g, beta) = gap(b)?;
            if g.abs() < 1e-10 {
                return Ok((b, beta));
            }
            if g >= 0.0 {
                outside = b;
                outside_gap = g;
                outside_beta = beta;
                if side == 1 {
                    inside_gap /= 2.0;
                }
                side = 1;
            } else {
                inside = b;
                inside_gap = g;
                inside_beta = beta;
                if side == -1 {
                    outside_gap /= 2.0;
                }
                side = -1;
            }
        }
        // The bracket is narrower than the tolerance: its outer end (the interval errs on the wide side).
        let _ = inside_beta;
        Ok((outside, outside_beta))
    };
    let (low, beta_low) = end(-1.0)?;
    let (high, beta_high) = end(1.0)?;
    Ok(ProfileInference {
        lr,
        scale,
        df,
        p,
        low,
        high,
        beta_low,
        beta_high,
        beta_null,
    })
}

/// How much more coefficient `j`'s efficient score varies between clusters than the model says, at
/// `beta` (at least 1): `G/(G−1) Σ_g (Σ_{i∈g} x̃_ij (y_i − p_i))² / Σ_i w_i x̃_ij²`, with `x̃_j` the
/// residual of column `j` after its weighted projection on the other columns.
fn score_scale(
    y: &[f64],
    x: &Matrix,
    beta: &[f64],
    j: usize,
    clusters: &[u32],
) -> Result<f64, FitError> {
    let (n, k) = (x.rows(), x.cols());
    let p = probabilities(x, beta);
    let w: Vec<f64> = p.iter().map(|p| p * (1.0 - p)).collect();
    let others: Vec<usize> = (0..k).filter(|c| *c != j).collect();
    let mut gram = Matrix::zeros(others.len(), others.len());
    let mut cross = vec![0.0; others.len()];
    for (i, wi) in w.iter().enumerate() {
        let xi = x.row(i);
        for (a, &ca) in others.iter().enumerate() {
            cross[a] += wi * xi[ca] * xi[j];
            for (b, &cb) in others.iter().enumerate() {
                *gram.get_mut(a, b) += wi * xi[ca] * xi[cb];
            }
        }
    }
    let coef = cholesky_solve(&cholesky(&gram)?, &cross);
    let groups = clusters.iter().max().map_or(0, |m| *m as usize + 1);
    let mut sums = vec![0.0; groups];
    let mut model = 0.0;
    for i in 0..n {
        let xi = x.row(i);
        let fitted: f64 = others.iter().zip(&coef).map(|(c, b)| xi[*c] * b).sum();
        let resid = xi[j] - fitted;
        model += w[i] * resid * resid;
        sums[clusters[i] as usize] += resid * (y[i] - p[i]);
    }
    let used = groups.max(2) as f64;
    let robust = used / (used - 1.0) * sums.iter().map(|s| s * s).sum::<f64>();
    if model <= 0.0 || !robust.is_finite() {
        return Err(FitError::Invalid(
            "the coefficient's column has no variation left after the others".into(),
        ));
    }
    Ok((robust / model).max(1.0))
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
