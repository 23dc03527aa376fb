//! Inference for one coefficient of a discovery model — the interval and p-value a finding reports —
//! chosen so that it stays valid where real sales data push it: few reps, separated outcomes, tiny cells.
//!
//! - Logistic and linear regression: CR2 cluster-robust standard errors (by rep; a deal without a rep is
//!   its own cluster) with a t reference on Satterthwaite degrees of freedom (`stats::cluster`).
//! - Logistic regression that separates (the plain fit runs off to infinity): Firth's penalised fit with
//!   the profile penalised-likelihood interval and likelihood-ratio test, scaled for clustering
//!   (`stats::logit::firth_profile`). Wald and sandwich errors of a separated fit mean nothing.
//! - Cox regression: with up to 20 reps the leave-one-rep-out jackknife variance, beyond that
//!   lifelines' robust variance with the factor `G/(G − 1)`; a t reference on `G − 1` degrees of freedom.
//!
//! docs/methodology.md ("Honest uncertainty") says the same in plain words.

use crate::design::Design;
use crate::{Effect, Interval};
use winsignal_stats::cox::{self, CoxOptions};
use winsignal_stats::linalg::dot;
use winsignal_stats::logit::{self, LogitFit, LogitOptions};
use winsignal_stats::{dist, ols, FitError};

/// A plain logistic coefficient beyond this (log-odds per standard deviation of its column) is treated as
/// separation.
const SEPARATION_COEF: f64 = 10.0;

pub const LOGIT_METHOD: &str = "logistic regression; CR2 cluster-robust standard errors (by rep; by deal for deals without a rep), t test with Satterthwaite degrees of freedom";
pub const FIRTH_METHOD: &str = "Firth-penalised logistic regression (the plain fit separated won from lost); profile penalised-likelihood interval and likelihood-ratio test, scaled for clustering (by rep; by deal for deals without a rep), against t with G − 1 degrees of freedom";
pub const OLS_METHOD: &str = "linear regression of log amount among won deals; CR2 cluster-robust standard errors (by rep; by deal for deals without a rep), t test with Satterthwaite degrees of freedom";
pub const COX_JACKKNIFE_METHOD: &str = "Cox proportional hazards (Efron ties) of time to close-won, lost deals censored at close and open deals at the end of data; leave-one-rep-out jackknife standard errors, t test with G − 1 degrees of freedom";
pub const COX_METHOD: &str = "Cox proportional hazards (Efron ties) of time to close-won, lost deals censored at close and open deals at the end of data; cluster-robust standard errors (by rep; by deal for deals without a rep) with the factor G/(G − 1), t test with G − 1 degrees of freedom";

/// How an effect's interval and p-value were computed (`Effect::inference`).
pub const INFERENCE_CR2: &str = "cr2_satterthwaite";
pub const INFERENCE_PROFILE: &str = "profile_penalised_likelihood";
pub const INFERENCE_CR1_T: &str = "cluster_robust_t";
pub const INFERENCE_JACKKNIFE: &str = "jackknife_t";

/// Up to this many reps, a Cox model's standard error is the leave-one-rep-out jackknife's (its cost is
/// one refit per rep): the robust variance is too small with few reps (`stats::cox::jackknife_variance`).
const JACKKNIFE_MAX_REPS: usize = 20;

/// An estimated effect of column `j`, or why it could not be estimated (a sentence for the finding's
/// note).
pub type Estimated = Result<Effect, String>;

/// A logistic fit that falls back to Firth's penalised likelihood when the plain fit separates.
pub fn fit_logit(y: &[f64], d: &Design) -> Result<LogitFit, FitError> {
    let plain = logit::fit(y, &d.x, None, &LogitOptions::default());
    let separated = match &plain {
        // A coefficient is judged on the column's scale: log-odds per standard deviation.
        Ok(f) => f.est.beta.iter().enumerate().skip(1).any(|(j, b)| {
            let col = d.x.column(j);
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let sd = (col.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / col.len() as f64)
                .sqrt();
            (b * sd).abs() > SEPARATION_COEF
        }),
        // Weights p(1 − p) vanishing on some rows make the information singular: quasi-separation.
        Err(FitError::NotConverged { .. } | FitError::Singular { .. }) => true,
        Err(_) => false,
    };
    if !separated {
        return plain;
    }
    logit::fit(
        y,
        &d.x,
        None,
        &LogitOptions {
            firth: true,
            ..LogitOptions::default()
        },
    )
}

/// The effect of column `j` of a logistic design on the odds of winning, per `step` of the column, with
/// its average marginal effect on the win probability (percentage points per step): a 0 → 1 change for
/// a yes/no column, the average derivative for a continuous one.
pub fn logit_effect(
    y: &[f64],
    d: &Design,
    clusters: &[u32],
    j: usize,
    step: f64,
    continuous: bool,
) -> Estimated {
    let fit =
        fit_logit(y, d).map_err(|e| format!("refused: the model could not be fitted ({e})"))?;
    if fit.firth {
        return firth_effect(y, d, clusters, &fit, j, step, continuous);
    }
    let robust = fit
        .cr2(&d.x, y, clusters)
        .map_err(|e| format!("refused: the standard error could not be computed ({e})"))?;
    let se = robust.se(j);
    let df = robust.df(j);
    if !se.is_finite() || se <= 0.0 || df.is_nan() || df <= 0.0 {
        return Err("refused: the standard error is not finite".into());
    }
    let mut effect = t_effect(
        "odds_ratio",
        fit.est.beta[j],
        se,
        df,
        step,
        f64::exp,
        LOGIT_METHOD,
        INFERENCE_CR2,
    );
    let mut with_robust = fit.clone();
    with_robust.est.cov = robust.cov.clone();
    let me = if continuous {
        with_robust.ame_dydx(&d.x, j)
    } else {
        with_robust.ame_dummy(&d.x, j)
    };
    let q = dist::t_quantile(0.975, df);
    effect.ame_pp = Some(Interval {
        estimate: 100.0 * me.effect * step,
        low: 100.0 * (me.effect - q * me.se) * step,
        high: 100.0 * (me.effect + q * me.se) * step,
    });
    Ok(effect)
}

fn firth_effect(
    y: &[f64],
    d: &Design,
    clusters: &[u32],
    fit: &LogitFit,
    j: usize,
    step: f64,
    continuous: bool,
) -> Estimated {
    let profile = logit::firth_profile(y, &d.x, fit, j, 0.95, Some(clusters))
        .map_err(|e| format!("refused: the penalised fit could not be profiled ({e})"))?;
    if !profile.low.is_finite() || !profile.high.is_finite() {
        return Err(
            "refused: separation — the interval of the penalised fit has no end, so the data cannot say how large the effect is"
                .into(),
        );
    }
    let beta = fit.est.beta[j];
    let statistic = (profile.lr / profile.scale).sqrt();
    let (a, b) = (profile.low * step, profile.high * step);
    let ame = |coefs: &[f64]| 100.0 * step * average_marginal_effect(&d.x, coefs, j, continuous);
    let (ame_a, ame_b) = (ame(&profile.beta_low), ame(&profile.beta_high));
    Ok(Effect {
        scale: "odds_ratio",
        estimate: (beta * step).exp(),
        low: a.min(b).exp(),
        high: a.max(b).exp(),
        ame_pp: Some(Interval {
            estimate: ame(&fit.est.beta),
            low: ame_a.min(ame_b),
            high: ame_a.max(ame_b),
        }),
        coef: beta,
        // The standard error the test implies (|β| / √(LR / scale)), for readers who want one number.
        se: if statistic > 0.0 {
            beta.abs() / statistic
        } else {
            f64::NAN
        },
        z: beta.signum() * statistic,
        p: profile.p,
        df: profile.df.is_finite().then_some(profile.df),
        q: f64::NAN,
        method: FIRTH_METHOD,
        inference: INFERENCE_PROFILE,
        penalised: true,
    })
}

/// The average marginal effect of column `j` at coefficients `beta`: the mean change of P(win) when a
/// yes/no column goes from 0 to 1 for every row, or the mean derivative for a continuous one.
fn average_marginal_effect(
    x: &winsignal_stats::Matrix,
    beta: &[f64],
    j: usize,
    continuous: bool,
) -> f64 {
    let sigmoid = |eta: f64| 1.0 / (1.0 + (-eta).exp());
    let n = x.rows();
    let mut total = 0.0;
    let mut row = vec![0.0; x.cols()];
    for i in 0..n {
        row.copy_from_slice(x.row(i));
        if continuous {
            let p = sigmoid(dot(&row, beta));
            total += p * (1.0 - p) * beta[j];
        } else {
            row[j] = 1.0;
            let p1 = sigmoid(dot(&row, beta));
            row[j] = 0.0;
            total += p1 - sigmoid(dot(&row, beta));
        }
    }
    total / n.max(1) as f64
}

/// The effect of column `j` of a linear regression of log amount, as a percentage change per `step`.
pub fn ols_effect(y: &[f64], d: &Design, clusters: &[u32], j: usize, step: f64) -> Estimated {
    let fit = ols::fit(y, &d.x, None)
        .map_err(|e| format!("refused: the model could not be fitted ({e})"))?;
    let robust = fit
        .cr2(&d.x, clusters)
        .map_err(|e| format!("refused: the standard error could not be computed ({e})"))?;
    let (se, df) = (robust.se(j), robust.df(j));
    if !se.is_finite() || se <= 0.0 || df.is_nan() || df <= 0.0 {
        return Err("refused: the standard error is not finite".into());
    }
    Ok(t_effect(
        "percent_change",
        fit.est.beta[j],
        se,
        df,
        step,
        |b| 100.0 * b.exp_m1(),
        OLS_METHOD,
        INFERENCE_CR2,
    ))
}

/// The effect of column `j` of a Cox model on the hazard of closing won, per `step`.
pub fn cox_effect(
    time: &[f64],
    won: &[bool],
    d: &Design,
    clusters: &[u32],
    j: usize,
    step: f64,
) -> Estimated {
    let fit = cox::fit(time, won, &d.x, Some(clusters), &CoxOptions::default())
        .map_err(|e| format!("refused: the model could not be fitted ({e})"))?;
    let groups = fit.n_clusters.unwrap_or(time.len()).max(2);
    let g = groups as f64;
    let (variance, method, inference) = if groups <= JACKKNIFE_MAX_REPS {
        let v = cox::jackknife_variance(time, won, &d.x, clusters, j, &CoxOptions::default())
            .map_err(|e| {
                format!(
                    "refused: the effect rests on one rep's deals — leaving a rep out, the model could not be fitted ({e})"
                )
            })?;
        (v, COX_JACKKNIFE_METHOD, INFERENCE_JACKKNIFE)
    } else {
        (
            fit.cov.get(j, j).max(0.0) * g / (g - 1.0),
            COX_METHOD,
            INFERENCE_CR1_T,
        )
    };
    let se = variance.sqrt();
    if !se.is_finite() || se <= 0.0 {
        return Err("refused: the standard error is not finite".into());
    }
    Ok(t_effect(
        "hazard_ratio",
        fit.beta[j],
        se,
        g - 1.0,
        step,
        f64::exp,
        method,
        inference,
    ))
}

/// An effect with a t interval and test on `df` degrees of freedom.
#[allow(clippy::too_many_arguments)]
fn t_effect(
    scale: &'static str,
    beta: f64,
    se: f64,
    df: f64,
    step: f64,
    transform: impl Fn(f64) -> f64,
    method: &'static str,
    inference: &'static str,
) -> Effect {
    let q = dist::t_quantile(0.975, df);
    let (a, b) = ((beta - q * se) * step, (beta + q * se) * step);
    let t = beta / se;
    Effect {
        scale,
        estimate: transform(beta * step),
        low: transform(a.min(b)),
        high: transform(a.max(b)),
        ame_pp: None,
        coef: beta,
        se,
        z: t,
        p: dist::t_two_sided_p(t, df),
        df: Some(df),
        q: f64::NAN,
        method,
        inference,
        penalised: false,
    }
}
