//! Logistic and linear regression against statsmodels.
//!
//! The fixtures were produced by `python3 validation/regression.py <snapshots.csv>` (see the docstring of
//! that script for the exact commands): the closed deals of a scale-0.25 demo at the `age:30d` landmark,
//! with the design discovery uses, fitted by statsmodels 0.15.0 (`Logit` with `cov_type="cluster"` by rep,
//! `get_margeff`, `OLS` with `cov_type="cluster"`) and lifelines 0.30.3 (`CoxPHFitter` with
//! `cluster_col`, `KaplanMeierFitter`). Every coefficient, standard error and p-value must agree within
//! 1e-4 relative.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use winsignal_stats::cox::{self, CoxOptions};
use winsignal_stats::logit::{self, LogitOptions};
use winsignal_stats::{cluster_ids, km, ols, Matrix};

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../validation/fixtures")
}

struct Data {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Data {
    fn load() -> Data {
        let mut r = csv::Reader::from_path(fixtures().join("regression_design.csv")).unwrap();
        let header = r.headers().unwrap().iter().map(String::from).collect();
        let rows = r
            .records()
            .map(|x| x.unwrap().iter().map(String::from).collect())
            .collect();
        Data { header, rows }
    }

    fn col(&self, name: &str) -> usize {
        self.header.iter().position(|h| h == name).unwrap()
    }

    fn num(&self, row: usize, name: &str) -> f64 {
        self.rows[row][self.col(name)].parse().unwrap()
    }
}

fn close(what: &str, got: f64, want: f64) {
    let rel = (got - want).abs() / want.abs().max(1e-300);
    // Relative only: a tiny p-value must agree as closely as a large one (an absolute floor would let
    // any p below it pass). Exact zeros compare equal.
    assert!(
        rel < 1e-4 || got == want,
        "{what}: got {got}, statsmodels {want} (relative difference {rel:.2e})"
    );
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn every_fit_matches_statsmodels() {
    let data = Data::load();
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("regression_reference.json")).unwrap(),
    )
    .unwrap();
    let fits = reference["fits"].as_array().unwrap();
    assert_eq!(fits.len(), 4);
    for f in fits {
        let name = f["name"].as_str().unwrap();
        let cols: Vec<&str> = f["x"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let rows: Vec<usize> = (0..data.rows.len())
            .filter(|i| f.get("subset").is_none() || data.num(*i, "won") == 1.0)
            .collect();
        let x = Matrix::from_rows(
            rows.len(),
            cols.len(),
            rows.iter()
                .flat_map(|i| cols.iter().map(|c| data.num(*i, c)).collect::<Vec<_>>())
                .collect(),
        );
        let y: Vec<f64> = rows
            .iter()
            .map(|i| data.num(*i, f["y"].as_str().or(f["event"].as_str()).unwrap()))
            .collect();
        let reps: Vec<&str> = rows
            .iter()
            .map(|i| data.rows[*i][data.col("rep_id")].as_str())
            .collect();
        let clusters = cluster_ids(&reps);
        let (params, bse, pvalues) = (
            floats(&f["params"]),
            floats(&f["bse"]),
            floats(&f["pvalues"]),
        );
        let est = match f["kind"].as_str().unwrap() {
            "logit" => {
                let fit = logit::fit(&y, &x, Some(&clusters), &LogitOptions::default()).unwrap();
                close(
                    &format!("{name} log-likelihood"),
                    fit.loglik,
                    f["llf"].as_f64().unwrap(),
                );
                for (j, want) in floats(&f["bse_naive"]).iter().enumerate() {
                    close(
                        &format!("{name} naive se {}", cols[j]),
                        fit.naive_cov.get(j, j).sqrt(),
                        *want,
                    );
                }
                let me = &f["margeff"];
                let j = cols
                    .iter()
                    .position(|c| *c == me["column"].as_str().unwrap())
                    .unwrap();
                let got = if me["dummy"].as_bool().unwrap() {
                    fit.ame_dummy(&x, j)
                } else {
                    fit.ame_dydx(&x, j)
                };
                close(
                    &format!("{name} AME"),
                    got.effect,
                    me["effect"].as_f64().unwrap(),
                );
                close(
                    &format!("{name} AME se"),
                    got.se,
                    me["se"].as_f64().unwrap(),
                );
                fit.est
            }
            "cox" => {
                let time: Vec<f64> = rows.iter().map(|i| data.num(*i, "days_observed")).collect();
                let event: Vec<bool> = y.iter().map(|v| *v == 1.0).collect();
                let fit =
                    cox::fit(&time, &event, &x, Some(&clusters), &CoxOptions::default()).unwrap();
                close(
                    &format!("{name} log-likelihood"),
                    fit.loglik,
                    f["llf"].as_f64().unwrap(),
                );
                for (level, want) in f["km_median_by_fast_follow_up"].as_object().unwrap() {
                    let (t, e): (Vec<f64>, Vec<bool>) = rows
                        .iter()
                        .zip(&event)
                        .filter(|(i, _)| data.num(**i, "fast_follow_up").to_string() == *level)
                        .map(|(i, e)| (data.num(*i, "days_observed"), *e))
                        .unzip();
                    let median = km::kaplan_meier(&t, &e).unwrap().median().unwrap();
                    close(
                        &format!("{name} KM median {level}"),
                        median,
                        want.as_f64().unwrap(),
                    );
                }
                fit.estimates()
            }
            _ => ols::fit(&y, &x, Some(&clusters)).unwrap().est,
        };
        for j in 0..cols.len() {
            close(&format!("{name} coef {}", cols[j]), est.beta[j], params[j]);
            close(&format!("{name} se {}", cols[j]), est.se(j), bse[j]);
            let (_, p) = est.z(j);
            if pvalues[j] > 1e-250 {
                close(&format!("{name} p {}", cols[j]), p, pvalues[j]);
            } else {
                assert!(p < 1e-200, "{name} p {}: {p}", cols[j]);
            }
        }
    }
}
