//! Cox proportional-hazards regression with Efron's handling of tied times, fitted by Newton–Raphson,
//! with the cluster-robust covariance computed exactly as lifelines' `CoxPHFitter` computes it.
//!
//! The fit works on standardised columns (centred, divided by their sample standard deviation), as
//! lifelines does: it keeps `exp(x β)` in range and makes one convergence tolerance fit every column.
//! Coefficients and covariances are reported on the original scale.

use crate::linalg::{add_gram_upper, cholesky, cholesky_solve, spd_inverse, Matrix};
use crate::{sandwich, Estimates, FitError};

/// Settings of a Cox fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoxOptions {
    /// L2 penalty, defined as lifelines' `penalizer` with `l1_ratio = 0`: the fit maximises
    /// `ℓ(β) − ridge · n/2 · Σ_j (β_j s_j)²`, with `n` the number of rows and `s_j` the sample standard
    /// deviation of column `j` (so the penalty acts on standardised coefficients). 0 means no penalty.
    pub ridge: f64,
    /// Newton–Raphson iterations allowed before giving up with [`FitError::NotConverged`].
    pub max_iter: usize,
}

impl Default for CoxOptions {
    fn default() -> Self {
        CoxOptions {
            ridge: 0.0,
            max_iter: 50,
        }
    }
}

/// A fitted Cox model: log hazard ratios per unit of each column, their covariances and the partial
/// log-likelihood.
#[derive(Debug, Clone, PartialEq)]
pub struct CoxFit {
    /// Log hazard ratio per unit of each column.
    pub beta: Vec<f64>,
    /// The covariance used for inference: the cluster-robust sandwich when clusters were given, else
    /// `naive_cov`.
    pub cov: Matrix,
    /// The inverse of the (penalised) information matrix at the estimate.
    pub naive_cov: Matrix,
    /// The partial log-likelihood (Efron) at the estimate, without the penalty.
    pub loglik: f64,
    /// The maximised objective: `loglik` minus the ridge penalty (lifelines reports this one as
    /// `log_likelihood_` when `penalizer > 0`). Equal to `loglik` without a penalty.
    pub penalized_loglik: f64,
    /// The partial log-likelihood at `β = 0`.
    pub null_loglik: f64,
    /// Newton–Raphson iterations used.
    pub iterations: usize,
    /// Rows fitted.
    pub n_obs: usize,
    /// Rows with an observed event.
    pub n_events: usize,
    /// Distinct clusters, when clusters were given.
    pub n_clusters: Option<usize>,
}

impl CoxFit {
    /// The coefficients with the covariance used for inference (robust when clustered), for standard
    /// errors, z statistics, p-values and intervals.
    pub fn estimates(&self) -> Estimates {
        Estimates {
            beta: self.beta.clone(),
            cov: self.cov.clone(),
            iterations: self.iterations,
        }
    }

    /// The coefficients with the model-based (inverse information) covariance.
    pub fn naive_estimates(&self) -> Estimates {
        Estimates {
            beta: self.beta.clone(),
            cov: self.naive_cov.clone(),
            iterations: self.iterations,
        }
    }
}

/// Newton steps whose largest component (on the standardised scale) is below this are taken without a
/// line search and end the fit: the error left after such a step is of the order of its square.
const STEP_TOLERANCE: f64 = 1e-8;
/// Step-halvings tried before a Newton direction that never improves the objective is given up on.
const MAX_HALVINGS: usize = 40;

/// Fits a Cox model of the hazard `h(t | x) = h₀(t) exp(x β)` by maximising the partial likelihood
/// with Efron's approximation for tied event times.
///
/// `time[i]` is row `i`'s follow-up time, `event[i]` whether the event was observed at that time
/// (`false`: censored), `x` the covariates (one row per subject, no intercept column). With
/// `clusters` (dense ids `0..G` as from [`crate::cluster_ids`], one per row) `cov` is the
/// cluster-robust sandwich `V (Σ_g D_g D_gᵀ) V`, where `V` is the inverse information and `D_g` the sum
/// of the rows' score residuals in cluster `g`, with no small-sample factor — lifelines'
/// `cluster_col`. For the robust covariance without clusters, give every row its own cluster.
///
/// The score residuals are lifelines': Breslow-type residuals whose risk sets run by position in the
/// data sorted by (time, event, input order), so rows tied in time do not all share one risk set.
/// lifelines' robust standard errors are reproduced with them, ties included (with tie-aware residuals
/// they would differ by about 1e-4 on data with a few percent of tied rows, and by 10 % with heavy ties).
///
/// Errors: [`FitError::Invalid`] for mismatched lengths, no rows, no events, a non-finite value (naming
/// the row) or bad options; [`FitError::Singular`] for a constant column or one that is a linear
/// combination of others among the risk sets; [`FitError::NotConverged`] when the likelihood keeps
/// rising without bound (a column separates events from non-events) or `max_iter` is reached.
pub fn fit(
    time: &[f64],
    event: &[bool],
    x: &Matrix,
    clusters: Option<&[u32]>,
    opts: &CoxOptions,
) -> Result<CoxFit, FitError> {
    let (n, k) = (x.rows(), x.cols());
    check_inputs(time, event, x, clusters, opts)?;
    let n_events = event.iter().filter(|e| **e).count();

    let (_, sds) = column_moments(x)?;
    // Columns are scaled but not centred: the partial likelihood, its derivatives and the score
    // residuals do not change when a constant is added to a column, and uncentred 0/1 dummies stay
    // sparse, which the moment sums below skip through (the linear predictor is shifted by its
    // maximum before exponentiation, so nothing overflows).
    let design = SortedDesign::new(time, event, x, &vec![0.0; k], &sds);
    let ridge = opts.ridge * n as f64;
    let penalty = |beta: &[f64]| 0.5 * ridge * beta.iter().map(|b| b * b).sum::<f64>();

    let mut beta = vec![0.0; k];
    let mut current = design.evaluate(&beta, true);
    let null_loglik = current.loglik;
    let mut iterations = 0;
    let mut converged = false;
    while iterations < opts.max_iter {
        iterations += 1;
        if !current.loglik.is_finite() {
            return Err(FitError::NotConverged { iterations });
        }
        let objective = current.loglik - penalty(&beta);
        let mut info = current.info.clone();
        let mut grad = current.grad.clone();
        for j in 0..k {
            *info.get_mut(j, j) += ridge;
            grad[j] -= ridge * beta[j];
        }
        // Information that was fine at β = 0 and degenerates later means β is running off to
        // infinity (exp(x β) separates the risk sets), not that the columns are collinear.
        let chol = match cholesky(&info) {
            Ok(chol) => chol,
            Err(e) if iterations == 1 => return Err(e),
            Err(_) => return Err(FitError::NotConverged { iterations }),
        };
        let step = cholesky_solve(&chol, &grad);
        if step.iter().any(|s| !s.is_finite()) {
            return Err(FitError::NotConverged { iterations });
        }
        let largest = step.iter().fold(0.0_f64, |m, s| m.max(s.abs()));
        if largest < STEP_TOLERANCE {
            beta.iter_mut().zip(&step).for_each(|(b, s)| *b += s);
            current = design.evaluate(&beta, true);
            converged = true;
            break;
        }
        // Step-halving: never accept a point where the penalised likelihood fell (beyond rounding).
        // The full step is evaluated with derivatives straight away (it is nearly always accepted, and
        // they are needed next); only halved steps are first tried on the likelihood alone.
        let acceptable =
            |value: f64| value.is_finite() && value >= objective - 1e-12 * objective.abs().max(1.0);
        let full: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + s).collect();
        let at_full = design.evaluate(&full, true);
        if acceptable(at_full.loglik - penalty(&full)) {
            beta = full;
            current = at_full;
            continue;
        }
        let mut scale = 0.5;
        let mut accepted = None;
        for _ in 1..MAX_HALVINGS {
            let candidate: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b + scale * s).collect();
            if acceptable(design.evaluate(&candidate, false).loglik - penalty(&candidate)) {
                accepted = Some(candidate);
                break;
            }
            scale *= 0.5;
        }
        let Some(candidate) = accepted else {
            return Err(FitError::NotConverged { iterations });
        };
        beta = candidate;
        current = design.evaluate(&beta, true);
    }
    if !converged || !current.loglik.is_finite() {
        return Err(FitError::NotConverged { iterations });
    }

    let mut info = current.info.clone();
    for j in 0..k {
        *info.get_mut(j, j) += ridge;
    }
    let naive_std = spd_inverse(&info)?;
    let mut naive_cov = Matrix::zeros(k, k);
    for a in 0..k {
        for b in 0..k {
            *naive_cov.get_mut(a, b) = naive_std.get(a, b) / (sds[a] * sds[b]);
        }
    }
    let n_clusters = clusters.map(|c| {
        let mut seen = vec![false; n];
        c.iter().for_each(|g| seen[*g as usize] = true);
        seen.iter().filter(|s| **s).count()
    });
    let cov = match clusters {
        Some(c) => {
            let mut residuals = design.score_residuals(&beta);
            for i in 0..n {
                for (r, sd) in residuals.row_mut(i).iter_mut().zip(&sds) {
                    *r *= sd;
                }
            }
            let sorted_clusters: Vec<u32> = design.order.iter().map(|i| c[*i]).collect();
            sandwich(&naive_cov, &residuals, &sorted_clusters, Some(1.0))
        }
        None => naive_cov.clone(),
    };
    let penalized_loglik = current.loglik - penalty(&beta);
    Ok(CoxFit {
        beta: beta.iter().zip(&sds).map(|(b, sd)| b / sd).collect(),
        cov,
        naive_cov,
        loglik: current.loglik,
        penalized_loglik,
        null_loglik,
        iterations,
        n_obs: n,
        n_events,
        n_clusters,
    })
}

fn check_inputs(
    time: &[f64],
    event: &[bool],
    x: &Matrix,
    clusters: Option<&[u32]>,
    opts: &CoxOptions,
) -> Result<(), FitError> {
    let n = x.rows();
    if time.len() != n || event.len() != n {
        return Err(FitError::Invalid(format!(
            "{n} rows in the design but {} times and {} event flags",
            time.len(),
            event.len()
        )));
    }
    if let Some(c) = clusters {
        if c.len() != n {
            return Err(FitError::Invalid(format!(
                "{n} rows in the design but {} cluster ids",
                c.len()
            )));
        }
        if let Some(i) = c.iter().position(|g| *g as usize >= n) {
            return Err(FitError::Invalid(format!(
                "cluster id {} of row {i} is not below the number of rows ({n}); pass dense ids from \
                 cluster_ids",
                c[i]
            )));
        }
    }
    if n == 0 {
        return Err(FitError::Invalid("no rows to fit".to_string()));
    }
    if !(opts.ridge.is_finite() && opts.ridge >= 0.0) {
        return Err(FitError::Invalid(format!(
            "the ridge penalty must be a finite number ≥ 0, found {}",
            opts.ridge
        )));
    }
    if let Some(i) = time.iter().position(|t| !t.is_finite()) {
        return Err(FitError::Invalid(format!(
            "row {i} has a time that is not a finite number ({})",
            time[i]
        )));
    }
    for i in 0..n {
        if let Some(j) = x.row(i).iter().position(|v| !v.is_finite()) {
            return Err(FitError::Invalid(format!(
                "row {i} has a value in column {j} that is not a finite number ({})",
                x.get(i, j)
            )));
        }
    }
    if !event.iter().any(|e| *e) {
        return Err(FitError::Invalid(
            "no events: every row is censored, so the Cox partial likelihood has nothing to fit"
                .to_string(),
        ));
    }
    Ok(())
}

/// Column means and sample standard deviations (n − 1 denominator, as pandas' `std`, which lifelines
/// standardises with). A column without spread is reported as singular.
fn column_moments(x: &Matrix) -> Result<(Vec<f64>, Vec<f64>), FitError> {
    let (n, k) = (x.rows(), x.cols());
    let mut means = vec![0.0; k];
    for i in 0..n {
        means.iter_mut().zip(x.row(i)).for_each(|(m, v)| *m += v);
    }
    means.iter_mut().for_each(|m| *m /= n as f64);
    let mut sds = vec![0.0; k];
    for i in 0..n {
        for ((s, v), m) in sds.iter_mut().zip(x.row(i)).zip(&means) {
            *s += (v - m) * (v - m);
        }
    }
    for (j, s) in sds.iter_mut().enumerate() {
        *s = (*s / (n as f64 - 1.0)).sqrt();
        if !(*s > 0.0 && s.is_finite()) {
            return Err(FitError::Singular { column: j });
        }
    }
    Ok((means, sds))
}

/// The standardised design sorted by (time, censored before event, input order) — lifelines' order —
/// with the groups of rows sharing a time.
struct SortedDesign {
    /// `order[p]` is the input row at sorted position `p`.
    order: Vec<usize>,
    /// Standardised covariates, row-major, in sorted order.
    z: Vec<f64>,
    /// The same rows without their zeros: row `p`'s entries are `nz_start[p]..nz_start[p + 1]` of
    /// `nz_col` and `nz_val` (a row of dummies is mostly zeros; the likelihood passes skip them without
    /// testing every entry).
    nz_start: Vec<usize>,
    nz_col: Vec<usize>,
    nz_val: Vec<f64>,
    event: Vec<bool>,
    /// `(start, first_event, end)` positions of each distinct time; the group's events are
    /// `first_event..end` because events sort after censorings.
    groups: Vec<(usize, usize, usize)>,
    k: usize,
}

/// The partial log-likelihood with its gradient and information (negative Hessian), on the standardised
/// scale.
struct Evaluation {
    loglik: f64,
    grad: Vec<f64>,
    info: Matrix,
}

impl SortedDesign {
    fn new(time: &[f64], event: &[bool], x: &Matrix, means: &[f64], sds: &[f64]) -> SortedDesign {
        let (n, k) = (x.rows(), x.cols());
        let mut order: Vec<usize> = (0..n).collect();
        // A stable sort: rows equal in time and event keep their input order, as in pandas'
        // `sort_values(by=[time, event])`, which fixes lifelines' score residuals under ties.
        order.sort_by(|a, b| {
            time[*a]
                .total_cmp(&time[*b])
                .then(event[*a].cmp(&event[*b]))
        });
        let mut z = Vec::with_capacity(n * k);
        for &i in &order {
            z.extend(
                x.row(i)
                    .iter()
                    .zip(means.iter().zip(sds))
                    .map(|(v, (m, s))| (v - m) / s),
            );
        }
        let (mut nz_start, mut nz_col, mut nz_val) =
            (Vec::with_capacity(n + 1), Vec::new(), Vec::new());
        nz_start.push(0);
        for row in z.chunks_exact(k.max(1)) {
            for (a, v) in row.iter().enumerate() {
                if *v != 0.0 {
                    nz_col.push(a);
                    nz_val.push(*v);
                }
            }
            nz_start.push(nz_col.len());
        }
        let sorted_event: Vec<bool> = order.iter().map(|i| event[*i]).collect();
        let mut groups = Vec::new();
        let mut start = 0;
        while start < n {
            let t = time[order[start]];
            let mut end = start + 1;
            while end < n && time[order[end]] == t {
                end += 1;
            }
            let first_event = (start..end).find(|p| sorted_event[*p]).unwrap_or(end);
            groups.push((start, first_event, end));
            start = end;
        }
        SortedDesign {
            order,
            z,
            nz_start,
            nz_col,
            nz_val,
            event: sorted_event,
            groups,
            k,
        }
    }

    fn row(&self, p: usize) -> &[f64] {
        &self.z[p * self.k..(p + 1) * self.k]
    }

    /// Row `p`'s non-zero entries: their columns and values.
    fn sparse_row(&self, p: usize) -> (&[usize], &[f64]) {
        let span = self.nz_start[p]..self.nz_start[p + 1];
        (&self.nz_col[span.clone()], &self.nz_val[span])
    }

    /// Linear predictors shifted by their maximum (the partial likelihood does not change when every
    /// `exp(η)` is scaled alike) and the relative risks `exp(η − shift)`.
    fn risks(&self, beta: &[f64]) -> (Vec<f64>, Vec<f64>, f64) {
        let n = self.event.len();
        let eta: Vec<f64> = (0..n)
            .map(|p| {
                let (cols, vals) = self.sparse_row(p);
                cols.iter().zip(vals).map(|(a, z)| z * beta[*a]).sum()
            })
            .collect();
        let shift = eta.iter().fold(f64::NEG_INFINITY, |m, e| m.max(*e));
        let phi = eta.iter().map(|e| (e - shift).exp()).collect();
        (eta, phi, shift)
    }

    /// Efron's partial log-likelihood, and with `derivatives` its gradient and information. A backward
    /// pass over the times grows the risk-set sums as earlier times join; a time with `m` events
    /// contributes `m` terms in which the tied events' share is removed in steps of `1/m`.
    ///
    /// The information is `Σ_events (R₂ − f T₂)/d − z̄ z̄ᵀ`. Its first part is not summed event by
    /// event (a dense k² update per event): each row's `φ z zᵀ` enters once, weighted by the sum of
    /// `1/d` over the events whose risk set holds it (less `f/d` over its own tied events), in a
    /// forward pass over sparse rows. Only the `z̄ z̄ᵀ` products stay per event.
    fn evaluate(&self, beta: &[f64], derivatives: bool) -> Evaluation {
        let k = self.k;
        let (eta, phi, shift) = self.risks(beta);
        let mut loglik = 0.0;
        let mut grad = vec![0.0; k];
        let mut info = vec![0.0; k * k];
        let mut risk0 = 0.0;
        let mut risk1 = vec![0.0; k];
        let mut tie1 = vec![0.0; k];
        // The risk-set means of every event, subtracted as one Gram matrix at the end.
        let n_events: usize = if derivatives {
            self.groups
                .iter()
                .map(|(_, first_event, end)| end - first_event)
                .sum()
        } else {
            0
        };
        let mut means: Vec<f64> = Vec::with_capacity(n_events * k);
        // Per group: Σ_l 1/d_l and Σ_l f_l/d_l.
        let mut weights = vec![(0.0, 0.0); if derivatives { self.groups.len() } else { 0 }];
        for (g, &(start, first_event, end)) in self.groups.iter().enumerate().rev() {
            for (p, &w) in (start..end).zip(&phi[start..end]) {
                risk0 += w;
                if derivatives {
                    add_first_moments(self.sparse_row(p), w, &mut risk1);
                }
            }
            let m = end - first_event;
            if m == 0 {
                continue;
            }
            let mut tie0 = 0.0;
            if derivatives {
                tie1.iter_mut().for_each(|v| *v = 0.0);
            }
            for p in first_event..end {
                tie0 += phi[p];
                loglik += eta[p] - shift;
                if derivatives {
                    add_first_moments(self.sparse_row(p), phi[p], &mut tie1);
                    grad.iter_mut().zip(self.row(p)).for_each(|(g, z)| *g += z);
                }
            }
            let (mut inverse_sum, mut share_sum) = (0.0, 0.0);
            for l in 0..m {
                let f = l as f64 / m as f64;
                let denom = risk0 - f * tie0;
                loglik -= denom.ln();
                if !derivatives {
                    continue;
                }
                // Multiplying by the reciprocal keeps divisions out of the k² loop.
                let inv = 1.0 / denom;
                inverse_sum += inv;
                share_sum += f * inv;
                for a in 0..k {
                    let m = (risk1[a] - f * tie1[a]) * inv;
                    grad[a] -= m;
                    means.push(m);
                }
            }
            if derivatives {
                weights[g] = (inverse_sum, share_sum);
            }
        }
        if derivatives {
            let mut products = vec![0.0; k * k];
            add_gram_upper(&means, k, None, &mut products);
            info.iter_mut().zip(&products).for_each(|(i, p)| *i -= p);
            // Forward over the times: `hazard` sums 1/d over every event up to and including this time.
            let mut hazard = 0.0;
            for (&(start, first_event, end), &(inverse_sum, share_sum)) in
                self.groups.iter().zip(&weights)
            {
                hazard += inverse_sum;
                for (p, w) in (start..end).zip(&phi[start..end]) {
                    let own = if p >= first_event { share_sum } else { 0.0 };
                    add_second_moments(self.sparse_row(p), w * (hazard - own), k, &mut info);
                }
            }
        }
        let mut information = Matrix::zeros(k, k);
        for a in 0..k {
            for b in a..k {
                *information.get_mut(a, b) = info[a * k + b];
                *information.get_mut(b, a) = info[a * k + b];
            }
        }
        Evaluation {
            loglik,
            grad,
            info: information,
        }
    }

    /// lifelines' score residuals (`CoxPHFitter._compute_score_within_strata`, standardised scale,
    /// sorted order). With `R_p = Σ_{q ≥ p} φ_q` and `z̄_p = Σ_{q ≥ p} φ_q z_q / R_p` taken over sorted
    /// *positions* (not over everyone still at risk at the time, so ties are split by sort order), the
    /// residual of row `i` is `δ_i (z_i − z̄_i) − φ_i Σ_{p ≤ i} δ_p (z_i − z̄_p) / R_p`. lifelines notes
    /// this ignores Efron's tie correction; it is kept so that robust standard errors agree.
    fn score_residuals(&self, beta: &[f64]) -> Matrix {
        let (n, k) = (self.event.len(), self.k);
        let (_, phi, _) = self.risks(beta);
        let mut risk0 = vec![0.0; n];
        let mut mean = Matrix::zeros(n, k);
        let mut sum0 = 0.0;
        let mut sum1 = vec![0.0; k];
        for p in (0..n).rev() {
            sum0 += phi[p];
            sum1.iter_mut()
                .zip(self.row(p))
                .for_each(|(s, z)| *s += phi[p] * z);
            risk0[p] = sum0;
            mean.row_mut(p)
                .iter_mut()
                .zip(&sum1)
                .for_each(|(m, s)| *m = s / sum0);
        }
        // Σ_{p ≤ i} δ_p (z_i − z̄_p) / R_p = z_i · hazard − weighted_mean, accumulated forwards.
        let mut hazard = 0.0;
        let mut weighted_mean = vec![0.0; k];
        let mut residuals = Matrix::zeros(n, k);
        for i in 0..n {
            if self.event[i] {
                hazard += 1.0 / risk0[i];
                weighted_mean
                    .iter_mut()
                    .zip(mean.row(i))
                    .for_each(|(w, m)| *w += m / risk0[i]);
            }
            let z = self.row(i);
            let zbar = mean.row(i);
            let out = residuals.row_mut(i);
            for a in 0..k {
                let own = if self.event[i] { z[a] - zbar[a] } else { 0.0 };
                out[a] = own - phi[i] * (z[a] * hazard - weighted_mean[a]);
            }
        }
        residuals
    }
}

/// Adds `w z` to a running sum, for a row given by its non-zero entries.
fn add_first_moments((cols, vals): (&[usize], &[f64]), w: f64, first: &mut [f64]) {
    for (a, v) in cols.iter().zip(vals) {
        first[*a] += w * v;
    }
}

/// Adds the upper triangle of `w z zᵀ` (row-major `k × k`) to a running sum, for a row given by its
/// non-zero entries (in column order).
fn add_second_moments((cols, vals): (&[usize], &[f64]), w: f64, k: usize, second: &mut [f64]) {
    for (i, (a, va)) in cols.iter().zip(vals).enumerate() {
        let wa = w * va;
        let row = &mut second[a * k..(a + 1) * k];
        for (b, vb) in cols[i..].iter().zip(&vals[i..]) {
            row[*b] += wa * vb;
        }
    }
}

/// The leave-one-cluster-out jackknife ("CR3") variance of coefficient `j`:
/// `(G − 1)/G · Σ_g (β̂_(g) − β̄)²`, refitting without each cluster in turn (dense ids `0..G`).
///
/// Why: with few reps, lifelines' robust variance (even with the factor `G/(G − 1)` and a t reference on
/// `G − 1` degrees of freedom) calls a null behaviour significant too often (7.6 % at 5 % with 5 reps in
/// `tests/few_clusters.rs`); the jackknife with the same t reference is close to nominal (3.9–5.1 % with
/// 5–15 reps). It costs `G` refits, so discovery uses it for small teams only.
///
/// Other columns that are constant, or a combination of the rest, without a cluster leave that refit.
/// Errors: a refit that still fails (leaving one cluster out leaves no events, or column `j` constant)
/// is returned as it is — an effect that rests on one cluster's deals has no jackknife variance.
pub fn jackknife_variance(
    time: &[f64],
    event: &[bool],
    x: &Matrix,
    clusters: &[u32],
    j: usize,
    opts: &CoxOptions,
) -> Result<f64, FitError> {
    let groups = clusters.iter().max().map_or(0, |m| *m as usize + 1);
    if groups < 2 || clusters.len() != time.len() {
        return Err(FitError::Invalid(format!(
            "the jackknife needs at least 2 clusters and one id per row ({groups} clusters, {} ids, {} rows)",
            clusters.len(),
            time.len()
        )));
    }
    let k = x.cols();
    let mut betas = Vec::with_capacity(groups);
    for out in 0..groups as u32 {
        let keep: Vec<usize> = (0..time.len()).filter(|i| clusters[*i] != out).collect();
        if keep.len() == time.len() {
            continue;
        }
        let t: Vec<f64> = keep.iter().map(|i| time[*i]).collect();
        let e: Vec<bool> = keep.iter().map(|i| event[*i]).collect();
        // Other columns that the left-out cluster alone made vary (a level only its deals have), or
        // that become a combination of the rest without it, leave the refit; column `j` never does.
        let mut columns: Vec<usize> = (0..k)
            .filter(|c| {
                *c == j || {
                    let first = x.get(keep[0], *c);
                    keep.iter().any(|i| x.get(*i, *c) != first)
                }
            })
            .collect();
        let beta_j = loop {
            let xs = Matrix::from_rows(
                keep.len(),
                columns.len(),
                keep.iter()
                    .flat_map(|i| columns.iter().map(|c| x.get(*i, *c)))
                    .collect(),
            );
            let at = columns.iter().position(|c| *c == j).unwrap_or(0);
            match fit(&t, &e, &xs, None, opts) {
                Ok(f) => break f.beta[at],
                Err(FitError::Singular { column }) if column != at && column < columns.len() => {
                    columns.remove(column);
                }
                Err(e) => return Err(e),
            }
        };
        betas.push(beta_j);
    }
    let g = betas.len() as f64;
    let mean = betas.iter().sum::<f64>() / g;
    Ok((g - 1.0) / g * betas.iter().map(|b| (b - mean) * (b - mean)).sum::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn design(columns: &[&[f64]]) -> Matrix {
        let n = columns[0].len();
        let data = (0..n)
            .flat_map(|i| columns.iter().map(move |c| c[i]))
            .collect();
        Matrix::from_rows(n, columns.len(), data)
    }

    #[test]
    fn the_jackknife_leaves_out_a_column_only_the_left_out_cluster_varies() {
        // Three clusters; column 1 is a level only cluster 2's rows have. Leaving cluster 2 out makes it
        // constant: that refit goes on without it instead of failing.
        let n = 90;
        let clusters: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        let x0: Vec<f64> = (0..n).map(|i| ((i * 7) % 5) as f64).collect();
        let x1: Vec<f64> = (0..n)
            .map(|i| f64::from(u8::from(i % 3 == 2 && i % 2 == 0)))
            .collect();
        let time: Vec<f64> = (0..n).map(|i| 1.0 + ((i * 13) % 17) as f64).collect();
        let event: Vec<bool> = (0..n).map(|i| i % 4 != 0).collect();
        let x = design(&[&x0, &x1]);
        let v = jackknife_variance(&time, &event, &x, &clusters, 0, &CoxOptions::default());
        assert!(
            v.as_ref().is_ok_and(|v| v.is_finite() && *v >= 0.0),
            "{v:?}"
        );
        // Column 0 itself constant without a cluster: an error, not a number.
        let only: Vec<f64> = (0..n)
            .map(|i| f64::from(u8::from(i % 3 == 2 && i % 2 == 0)))
            .collect();
        let x = design(&[&only, &x0]);
        assert!(
            jackknife_variance(&time, &event, &x, &clusters, 0, &CoxOptions::default()).is_err()
        );
    }

    #[test]
    fn no_events_is_refused_plainly() {
        let x = design(&[&[0.0, 1.0, 2.0]]);
        let e = fit(
            &[1.0, 2.0, 3.0],
            &[false; 3],
            &x,
            None,
            &CoxOptions::default(),
        );
        assert!(matches!(e, Err(FitError::Invalid(m)) if m.contains("no events")));
    }

    #[test]
    fn a_constant_column_is_singular() {
        let x = design(&[&[0.0, 1.0, 0.0, 1.0], &[3.0, 3.0, 3.0, 3.0]]);
        let e = fit(
            &[1.0, 2.0, 3.0, 4.0],
            &[true, false, true, true],
            &x,
            None,
            &CoxOptions::default(),
        );
        assert_eq!(e, Err(FitError::Singular { column: 1 }));
        let x = design(&[&[0.0, 1.0, 0.0, 1.0], &[1.0, 3.0, 1.0, 3.0]]);
        let e = fit(
            &[1.0, 2.0, 3.0, 4.0],
            &[true, false, true, true],
            &x,
            None,
            &CoxOptions::default(),
        );
        assert_eq!(e, Err(FitError::Singular { column: 1 }));
    }

    #[test]
    fn a_non_finite_value_names_its_row() {
        let x = design(&[&[0.0, f64::NAN, 0.0, 1.0]]);
        let e = fit(
            &[1.0, 2.0, 3.0, 4.0],
            &[true; 4],
            &x,
            None,
            &CoxOptions::default(),
        );
        assert!(matches!(e, Err(FitError::Invalid(m)) if m.contains("row 1")));
        let x = design(&[&[0.0, 1.0, 0.0, 1.0]]);
        let e = fit(
            &[1.0, 2.0, f64::INFINITY, 4.0],
            &[true; 4],
            &x,
            None,
            &CoxOptions::default(),
        );
        assert!(matches!(e, Err(FitError::Invalid(m)) if m.contains("row 2")));
    }

    /// With every row an event at one shared time, Efron's likelihood is maximal at β = 0 with
    /// information `n · Var(x)` (population variance).
    #[test]
    fn all_times_tied_and_all_events() {
        let xs = [0.5, 1.5, -2.0, 3.0, 0.0, 1.0];
        let n = xs.len() as f64;
        let x = design(&[&xs]);
        let f = fit(&[4.0; 6], &[true; 6], &x, None, &CoxOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        assert!(f.beta[0].abs() < 1e-12, "{:?}", f.beta);
        assert!((f.naive_cov.get(0, 0) - 1.0 / (n * var)).abs() < 1e-12);
    }

    /// All rows at one time, some censored: values from lifelines 0.30.3
    /// (`CoxPHFitter().fit(df, "T", "E", cluster_col="g")` on these rows).
    #[test]
    fn all_times_tied_with_censoring_matches_lifelines() {
        let xs = [0.5, 1.5, -2.0, 3.0, 0.0, 1.0, 2.0, -1.0];
        let events = [true, true, false, true, false, true, false, true];
        let groups = [0, 0, 1, 1, 2, 2, 3, 3];
        let x = design(&[&xs]);
        let f = fit(
            &[2.0; 8],
            &events,
            &x,
            Some(&groups),
            &CoxOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1e-300);
        let (beta, se_naive, se_robust, loglik) = LIFELINES_ALL_TIED;
        assert!(close(f.beta[0], beta), "{:?}", f.beta);
        assert!(close(f.naive_estimates().se(0), se_naive));
        assert!(close(f.estimates().se(0), se_robust));
        assert!(close(f.loglik, loglik));
    }

    const LIFELINES_ALL_TIED: (f64, f64, f64, f64) = (
        0.228_625_445_919_092_98,
        0.304_396_946_877_859_7,
        0.183_673_908_562_280_55,
        -8.515_803_164_001_428,
    );

    /// Every event happens to a row with x = 1 before any row with x = 0 is at risk alone: the partial
    /// likelihood rises forever as β grows (monotone likelihood), so there is no estimate.
    #[test]
    fn separation_does_not_converge() {
        let x = design(&[&[1.0, 1.0, 1.0, 0.0, 0.0, 0.0]]);
        let e = fit(
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            &[true, true, true, false, false, false],
            &x,
            None,
            &CoxOptions::default(),
        );
        assert!(matches!(e, Err(FitError::NotConverged { .. })), "{e:?}");
        // A ridge penalty keeps the estimate finite.
        let ridge = fit(
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            &[true, true, true, false, false, false],
            &x,
            None,
            &CoxOptions {
                ridge: 0.1,
                ..CoxOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(ridge.beta[0] > 0.0 && ridge.beta[0].is_finite());
    }

    #[test]
    fn ridge_shrinks_towards_zero() {
        let xs = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
        let times = [5.0, 1.0, 6.0, 2.0, 3.0, 4.0, 7.0, 8.0];
        let events = [true, true, false, true, true, true, true, false];
        let x = design(&[&xs]);
        let plain = fit(&times, &events, &x, None, &CoxOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let ridge = fit(
            &times,
            &events,
            &x,
            None,
            &CoxOptions {
                ridge: 0.5,
                ..CoxOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(ridge.beta[0].abs() < plain.beta[0].abs());
        assert!(ridge.penalized_loglik < ridge.loglik);
        assert!(ridge.loglik <= plain.loglik);
    }
}
