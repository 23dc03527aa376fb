//! Logistic recalibration (Platt scaling) of a model's logit: `logit' = intercept + slope · logit`,
//! fitted on rows the model did not train on. A linear map of the logit keeps an additive model
//! additive (see `Ebm::calibrated`).

use serde::{Deserialize, Serialize};
use winsignal_stats::logit::{self, LogitOptions};
use winsignal_stats::Matrix;

use crate::ebm::sigmoid;
use crate::error::{input, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub slope: f64,
    pub intercept: f64,
}

impl Calibration {
    /// The calibration that changes nothing.
    pub const IDENTITY: Calibration = Calibration {
        slope: 1.0,
        intercept: 0.0,
    };

    /// Logistic regression of the outcome on the model's logit (with an intercept), by Newton–Raphson.
    pub fn fit(logits: &[f64], y: &[bool]) -> Result<Calibration> {
        check(logits, y)?;
        let x = Matrix::from_rows(
            logits.len(),
            2,
            logits.iter().flat_map(|&l| [1.0, l]).collect(),
        );
        let y01: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v))).collect();
        let fitted = logit::fit(&y01, &x, None, &LogitOptions::default())?;
        Ok(Calibration {
            intercept: fitted.est.beta[0],
            slope: fitted.est.beta[1],
        })
    }

    pub fn apply(&self, logit: f64) -> f64 {
        self.intercept + self.slope * logit
    }

    pub fn apply_proba(&self, logit: f64) -> f64 {
        sigmoid(self.apply(logit))
    }
}

fn check(logits: &[f64], y: &[bool]) -> Result<()> {
    if logits.len() != y.len() {
        return Err(input(format!(
            "{} logits but {} labels",
            logits.len(),
            y.len()
        )));
    }
    if let Some(i) = logits.iter().position(|l| !l.is_finite()) {
        return Err(input(format!(
            "logit of row {i} is {}, expected a finite number",
            logits[i]
        )));
    }
    let n_pos = y.iter().filter(|&&v| v).count();
    if n_pos == 0 || n_pos == y.len() {
        return Err(input("calibration needs rows of both outcomes"));
    }
    Ok(())
}

/// The intercept `a` of `logit P(y) = a + logit` (slope fixed at 1): "calibration-in-the-large", the
/// shift that makes the mean prediction match the observed rate in the logistic sense.
pub(crate) fn intercept_with_unit_slope(logits: &[f64], y: &[bool]) -> Result<f64> {
    check(logits, y)?;
    let loglik = |a: f64| -> f64 {
        logits
            .iter()
            .zip(y)
            .map(|(&o, &yi)| {
                let eta = a + o;
                // log σ(η) = −softplus(−η); log(1 − σ(η)) = −softplus(η).
                if yi {
                    -softplus(-eta)
                } else {
                    -softplus(eta)
                }
            })
            .sum()
    };
    let mut a = 0.0;
    let mut current = loglik(a);
    for _ in 0..200 {
        let (mut score, mut info) = (0.0, 0.0);
        for (&o, &yi) in logits.iter().zip(y) {
            let p = sigmoid(a + o);
            score += f64::from(u8::from(yi)) - p;
            info += p * (1.0 - p);
        }
        if info <= 0.0 {
            return Err(Error::Fit(
                "calibration-in-the-large: no information".into(),
            ));
        }
        let step = score / info;
        let mut t = 1.0;
        let mut next = a + step;
        let mut value = loglik(next);
        while value < current - 1e-12 * current.abs() && t > 1e-10 {
            t *= 0.5;
            next = a + t * step;
            value = loglik(next);
        }
        a = next;
        current = value;
        if step.abs() < 1e-12 {
            return Ok(a);
        }
    }
    Err(Error::Fit(
        "calibration-in-the-large did not converge in 200 iterations".into(),
    ))
}

fn softplus(s: f64) -> f64 {
    if s > 0.0 {
        s + (-s).exp().ln_1p()
    } else {
        s.exp().ln_1p()
    }
}
