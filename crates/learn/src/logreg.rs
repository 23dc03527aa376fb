//! The baseline: L2-regularised logistic regression as scikit-learn's `LogisticRegression(C=1.0)` fits
//! it behind a standard-scaling and one-hot pipeline. Numbers are standardised (missing values take the
//! training mean, plus a missing indicator when training had any); categories are one-hot encoded
//! with rare levels pooled into "(other)" and missing as a level of its own. The objective is
//! `½‖w‖² + C Σ log loss`, the intercept not penalised, minimised by Newton's method.
// The Newton system reads best with explicit indexes.
#![allow(clippy::needless_range_loop)]

use serde::{Deserialize, Serialize};
use winsignal_stats::linalg::{cholesky, cholesky_solve};
use winsignal_stats::Matrix;

use crate::data::{Dataset, FeatureValues};
use crate::ebm::sigmoid;
use crate::error::{input, Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRegParams {
    /// Inverse regularisation strength, as scikit-learn's `C`.
    pub c: f64,
    /// Training rows a category needs for a column of its own; rarer ones share "(other)".
    pub min_category_count: usize,
    pub max_iter: usize,
    /// Converged when the largest coefficient change of a full Newton step is below this.
    pub tol: f64,
}

impl Default for LogRegParams {
    fn default() -> Self {
        LogRegParams {
            c: 1.0,
            min_category_count: 10,
            max_iter: 100,
            tol: 1e-8,
        }
    }
}

/// How one feature becomes design columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoding {
    Numeric {
        name: String,
        mean: f64,
        scale: f64,
        /// A 0/1 column for missing values follows the standardised one.
        missing_indicator: bool,
    },
    Categorical {
        name: String,
        /// One column per level, in this order (sorted by name).
        levels: Vec<String>,
        /// A column for rare (and, at prediction, unseen) levels follows.
        other: bool,
        /// A column for missing values follows that.
        missing: bool,
    },
}

impl Encoding {
    fn width(&self) -> usize {
        match self {
            Encoding::Numeric {
                missing_indicator, ..
            } => 1 + usize::from(*missing_indicator),
            Encoding::Categorical {
                levels,
                other,
                missing,
                ..
            } => levels.len() + usize::from(*other) + usize::from(*missing),
        }
    }

    fn name(&self) -> &str {
        match self {
            Encoding::Numeric { name, .. } | Encoding::Categorical { name, .. } => name,
        }
    }

    fn column_names(&self) -> Vec<String> {
        match self {
            Encoding::Numeric {
                name,
                missing_indicator,
                ..
            } => {
                let mut v = vec![name.clone()];
                if *missing_indicator {
                    v.push(format!("{name}=(missing)"));
                }
                v
            }
            Encoding::Categorical {
                name,
                levels,
                other,
                missing,
            } => {
                let mut v: Vec<String> = levels.iter().map(|l| format!("{name}={l}")).collect();
                if *other {
                    v.push(format!("{name}=(other)"));
                }
                if *missing {
                    v.push(format!("{name}=(missing)"));
                }
                v
            }
        }
    }

    /// Writes this feature's columns of one row into `out` (of length `width()`).
    fn encode(&self, values: &FeatureValues, row: usize, out: &mut [f64]) -> Result<()> {
        out.fill(0.0);
        match (self, values) {
            (
                Encoding::Numeric {
                    mean,
                    scale,
                    missing_indicator,
                    ..
                },
                FeatureValues::Numeric(v),
            ) => match v.get(row).copied().flatten() {
                Some(x) => out[0] = (x - mean) / scale,
                None => {
                    if *missing_indicator {
                        out[1] = 1.0;
                    }
                }
            },
            (
                Encoding::Categorical {
                    levels,
                    other,
                    missing,
                    ..
                },
                FeatureValues::Categorical(v),
            ) => match v.get(row).and_then(|s| s.as_deref()) {
                Some(s) => match levels.binary_search_by(|l| l.as_str().cmp(s)) {
                    Ok(i) => out[i] = 1.0,
                    Err(_) => {
                        if *other {
                            out[levels.len()] = 1.0;
                        }
                    }
                },
                None => {
                    if *missing {
                        out[levels.len() + usize::from(*other)] = 1.0;
                    }
                }
            },
            _ => {
                return Err(input(format!(
                    "feature `{}` is of another kind than when the model was fitted",
                    self.name()
                )))
            }
        }
        Ok(())
    }
}

/// A fitted logistic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogReg {
    encodings: Vec<Encoding>,
    intercept: f64,
    coefficients: Vec<f64>,
    iterations: usize,
}

impl LogReg {
    pub fn intercept(&self) -> f64 {
        self.intercept
    }

    /// `(column name, coefficient)` per design column, on the standardised scale.
    pub fn coefficients(&self) -> Vec<(String, f64)> {
        self.encodings
            .iter()
            .flat_map(|e| e.column_names())
            .zip(self.coefficients.iter().copied())
            .collect()
    }

    pub fn iterations(&self) -> usize {
        self.iterations
    }

    pub fn predict_logit(&self, data: &Dataset) -> Result<Vec<f64>> {
        let x = design(&self.encodings, data)?;
        Ok((0..x.rows())
            .map(|r| {
                x.row(r)
                    .iter()
                    .zip(&self.coefficients)
                    .fold(self.intercept, |s, (x, b)| s + x * b)
            })
            .collect())
    }

    pub fn predict_proba(&self, data: &Dataset) -> Result<Vec<f64>> {
        Ok(self.predict_logit(data)?.into_iter().map(sigmoid).collect())
    }
}

/// The design matrix (without intercept) of `data` under `encodings`, features matched by name.
fn design(encodings: &[Encoding], data: &Dataset) -> Result<Matrix> {
    let columns: Vec<&FeatureValues> = encodings
        .iter()
        .map(|e| {
            data.feature(e.name())
                .map(|f| &f.values)
                .ok_or_else(|| input(format!("the data has no feature `{}`", e.name())))
        })
        .collect::<Result<_>>()?;
    let k: usize = encodings.iter().map(Encoding::width).sum();
    let n = data.n_rows();
    let mut x = Matrix::zeros(n, k);
    for r in 0..n {
        let row = x.row_mut(r);
        let mut at = 0;
        for (e, c) in encodings.iter().zip(&columns) {
            let w = e.width();
            e.encode(c, r, &mut row[at..at + w])?;
            at += w;
        }
    }
    Ok(x)
}

fn learn_encoding(name: &str, values: &FeatureValues, min_count: usize) -> Encoding {
    match values {
        FeatureValues::Numeric(v) => {
            let present: Vec<f64> = v.iter().filter_map(|x| *x).collect();
            let mean = if present.is_empty() {
                0.0
            } else {
                present.iter().sum::<f64>() / present.len() as f64
            };
            let var = if present.is_empty() {
                0.0
            } else {
                present.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / present.len() as f64
            };
            // As StandardScaler: a constant column is centred but not scaled.
            let scale = if var > 0.0 { var.sqrt() } else { 1.0 };
            Encoding::Numeric {
                name: name.to_string(),
                mean,
                scale,
                missing_indicator: present.len() < v.len(),
            }
        }
        FeatureValues::Categorical(v) => {
            let mut seen: Vec<&str> = v.iter().filter_map(|s| s.as_deref()).collect();
            seen.sort_unstable();
            let mut levels = Vec::new();
            let mut other = false;
            let mut start = 0;
            while start < seen.len() {
                let end = start + seen[start..].partition_point(|s| *s == seen[start]);
                if end - start >= min_count.max(1) {
                    levels.push(seen[start].to_string());
                } else {
                    other = true;
                }
                start = end;
            }
            Encoding::Categorical {
                name: name.to_string(),
                levels,
                other,
                missing: seen.len() < v.len(),
            }
        }
    }
}

/// Fits the baseline on all rows of `data`.
pub fn fit(data: &Dataset, y: &[bool], params: &LogRegParams) -> Result<LogReg> {
    if !(params.c > 0.0 && params.c.is_finite()) {
        return Err(Error::Param {
            name: "c",
            reason: "must be a positive finite number".into(),
        });
    }
    if params.max_iter == 0 {
        return Err(Error::Param {
            name: "max_iter",
            reason: "must be at least 1".into(),
        });
    }
    let n = data.n_rows();
    if y.len() != n {
        return Err(input(format!(
            "{} labels for {n} rows of features",
            y.len()
        )));
    }
    let n_pos = y.iter().filter(|&&v| v).count();
    if n_pos == 0 || n_pos == n {
        return Err(input(format!(
            "all {n} labels are {}: a classifier needs both outcomes",
            n_pos == n
        )));
    }
    let encodings: Vec<Encoding> = data
        .features()
        .iter()
        .map(|f| learn_encoding(&f.name, &f.values, params.min_category_count))
        .collect();
    let features = design(&encodings, data)?;
    // Intercept in column 0.
    let k = features.cols() + 1;
    let mut x = Matrix::zeros(n, k);
    for r in 0..n {
        let row = x.row_mut(r);
        row[0] = 1.0;
        row[1..].copy_from_slice(features.row(r));
    }
    let y01: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v))).collect();
    let c = params.c;
    let objective = |beta: &[f64]| -> f64 {
        let penalty: f64 = beta[1..].iter().map(|b| b * b).sum::<f64>() / 2.0;
        let loss: f64 = (0..n)
            .map(|i| {
                let eta: f64 = x.row(i).iter().zip(beta).map(|(a, b)| a * b).sum();
                softplus(eta) - y01[i] * eta
            })
            .sum();
        penalty + c * loss
    };
    let mut beta = vec![0.0; k];
    beta[0] = (n_pos as f64 / (n - n_pos) as f64).ln();
    let mut current = objective(&beta);
    for iter in 1..=params.max_iter {
        let p: Vec<f64> = (0..n)
            .map(|i| sigmoid(x.row(i).iter().zip(&beta).map(|(a, b)| a * b).sum()))
            .collect();
        let w: Vec<f64> = p.iter().map(|p| c * p * (1.0 - p)).collect();
        let mut hess = x.weighted_gram(Some(&w));
        let resid: Vec<f64> = p.iter().zip(&y01).map(|(p, y)| c * (p - y)).collect();
        let mut grad = x.t_mul_vec(&resid);
        for j in 1..k {
            grad[j] += beta[j];
            *hess.get_mut(j, j) += 1.0;
        }
        let chol = cholesky(&hess)?;
        let step = cholesky_solve(&chol, &grad);
        let mut t = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            let cand: Vec<f64> = beta.iter().zip(&step).map(|(b, s)| b - t * s).collect();
            let value = objective(&cand);
            if value <= current + 1e-12 * current.abs() {
                accepted = Some((cand, value));
                break;
            }
            t *= 0.5;
        }
        let Some((cand, value)) = accepted else {
            return Err(Error::Fit(format!(
                "logistic regression: no descent at iteration {iter}"
            )));
        };
        beta = cand;
        current = value;
        if step.iter().fold(0.0_f64, |m, s| m.max(s.abs())) < params.tol {
            return Ok(LogReg {
                encodings,
                intercept: beta[0],
                coefficients: beta[1..].to_vec(),
                iterations: iter,
            });
        }
    }
    Err(Error::Fit(format!(
        "logistic regression did not converge in {} iterations",
        params.max_iter
    )))
}

fn softplus(s: f64) -> f64 {
    if s > 0.0 {
        s + (-s).exp().ln_1p()
    } else {
        s.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Feature;

    #[test]
    fn the_optimum_has_zero_penalised_gradient() {
        let xs: Vec<Option<f64>> = (0..200).map(|i| Some((i % 17) as f64)).collect();
        let cats: Vec<Option<String>> = (0..200)
            .map(|i| {
                if i % 13 == 0 {
                    None
                } else {
                    Some(["a", "b", "c"][i % 3].to_string())
                }
            })
            .collect();
        let y: Vec<bool> = (0..200).map(|i| (i * 7919) % 11 < (i % 17) / 3).collect();
        let data = Dataset::new(vec![
            Feature::numeric("x", xs),
            Feature::categorical("c", cats),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let model = fit(&data, &y, &LogRegParams::default()).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = model.coefficients().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["x", "c=a", "c=b", "c=c", "c=(missing)"]);
        // Gradient of ½‖w‖² + C Σ loss at the optimum: w_j + Σ (p − y) x_j = 0.
        let p = model.predict_proba(&data).unwrap_or_else(|e| panic!("{e}"));
        let x = design(&model.encodings, &data).unwrap_or_else(|e| panic!("{e}"));
        let intercept_grad: f64 = p
            .iter()
            .zip(&y)
            .map(|(p, &y)| p - f64::from(u8::from(y)))
            .sum();
        assert!(intercept_grad.abs() < 1e-8);
        for (j, (_, b)) in model.coefficients().iter().enumerate() {
            let g: f64 = (0..200)
                .map(|i| (p[i] - f64::from(u8::from(y[i]))) * x.get(i, j))
                .sum();
            assert!((g + b).abs() < 1e-8, "column {j}: {}", g + b);
        }
    }
}
