#![allow(clippy::unwrap_used)]
//! Cox regression and Kaplan–Meier checked against lifelines.
//!
//! The fixtures under `validation/fixtures/` (`survival_data.csv`, `survival_ties.csv`,
//! `survival_reference.json`) were produced by `python3 validation/survival.py` (run from the
//! repository root; numpy, pandas, lifelines 0.30.3), which generates the synthetic data with fixed
//! seeds and records lifelines' `CoxPHFitter` (Efron ties; with `cluster_col="rep"`, without clusters,
//! and with `penalizer=0.05`) and `KaplanMeierFitter` results with full float precision.
//!
//! The heavy-ties data (times 1..10) checks Efron's coefficients and naive standard errors, and also
//! the robust ones: `cox.rs` reproduces lifelines' score residuals, whose risk sets split tied rows by
//! sort order, so lifelines' robust standard errors under ties are matched as well.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use winsignal_stats::cox::{self, CoxOptions};
use winsignal_stats::km::kaplan_meier;
use winsignal_stats::{cluster_ids, Matrix};

/// Coefficients, standard errors, p-values and log-likelihoods must agree this closely (relative).
const COX_TOLERANCE: f64 = 1e-4;
/// Kaplan–Meier survival values and median times must agree this closely.
const KM_TOLERANCE: f64 = 1e-9;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../validation/fixtures")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("survival_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

struct Data {
    time: Vec<f64>,
    event: Vec<bool>,
    x: Matrix,
    clusters: Vec<u32>,
    /// 0/1 per row, for the per-level Kaplan–Meier curves.
    exec_engaged: Vec<bool>,
}

fn load(csv_name: &str, covariates: &[String]) -> Data {
    let mut reader = csv::Reader::from_path(fixtures().join(csv_name)).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (time_col, event_col, rep_col) = (col("time"), col("event"), col("rep"));
    let engaged_col = col("exec_engaged");
    let x_cols: Vec<usize> = covariates.iter().map(|c| col(c)).collect();
    let mut data = Data {
        time: Vec::new(),
        event: Vec::new(),
        x: Matrix::zeros(0, 0),
        clusters: Vec::new(),
        exec_engaged: Vec::new(),
    };
    let mut x = Vec::new();
    let mut reps = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        let num = |c: usize| record[c].parse::<f64>().unwrap();
        data.time.push(num(time_col));
        data.event.push(num(event_col) == 1.0);
        data.exec_engaged.push(num(engaged_col) == 1.0);
        reps.push(record[rep_col].to_string());
        x.extend(x_cols.iter().map(|c| num(*c)));
    }
    data.x = Matrix::from_rows(data.time.len(), x_cols.len(), x);
    data.clusters = cluster_ids(&reps);
    data
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Largest relative difference seen per quantity, printed at the end (`cargo test -- --nocapture`).
#[derive(Default)]
struct Agreement(BTreeMap<String, f64>);

impl Agreement {
    fn check(&mut self, what: &str, ours: f64, theirs: f64, tolerance: f64) {
        let rel = (ours - theirs).abs() / theirs.abs().max(f64::MIN_POSITIVE);
        let rel = if ours == theirs { 0.0 } else { rel };
        assert!(
            rel <= tolerance,
            "{what}: ours {ours:e}, lifelines {theirs:e}, relative difference {rel:e}"
        );
        let quantity = what.split(' ').next().unwrap_or(what).to_string();
        let worst = self.0.entry(quantity).or_insert(0.0);
        *worst = worst.max(rel);
    }

    fn report(&self, title: &str) {
        println!("{title}: largest relative differences against lifelines");
        for (quantity, worst) in &self.0 {
            println!("  {quantity:<28} {worst:.2e}");
        }
    }
}

fn check_cox(dataset: &str, agreement: &mut Agreement) {
    let all = reference();
    let reference = &all[dataset];
    let covariates: Vec<String> = reference["covariates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let data = load(reference["csv"].as_str().unwrap(), &covariates);
    assert_eq!(data.time.len() as u64, reference["n"].as_u64().unwrap());

    for variant in ["cox_clustered", "cox", "cox_ridge"] {
        let want = &reference[variant];
        let clusters = (variant == "cox_clustered").then_some(data.clusters.as_slice());
        let opts = CoxOptions {
            ridge: want["penalizer"].as_f64().unwrap_or(0.0),
            ..CoxOptions::default()
        };
        let fit = cox::fit(&data.time, &data.event, &data.x, clusters, &opts).unwrap();
        let (est, naive) = (fit.estimates(), fit.naive_estimates());
        let (coef, se, se_naive, p) = (
            floats(&want["coef"]),
            floats(&want["se"]),
            floats(&want["se_naive"]),
            floats(&want["p"]),
        );
        for (j, name) in covariates.iter().enumerate() {
            let label = |q: &str| format!("{q}:{variant} {dataset} {name}");
            agreement.check(&label("coef"), fit.beta[j], coef[j], COX_TOLERANCE);
            agreement.check(&label("se"), est.se(j), se[j], COX_TOLERANCE);
            agreement.check(&label("se_naive"), naive.se(j), se_naive[j], COX_TOLERANCE);
            agreement.check(&label("p"), est.z(j).1, p[j], COX_TOLERANCE);
        }
        // lifelines reports the penalised objective as its log-likelihood.
        let loglik = want["loglik"].as_f64().unwrap();
        agreement.check(
            &format!("loglik:{variant} {dataset}"),
            fit.penalized_loglik,
            loglik,
            COX_TOLERANCE,
        );
        let null = want["null_loglik"].as_f64().unwrap();
        agreement.check(
            &format!("null_loglik {dataset}"),
            fit.null_loglik,
            null,
            COX_TOLERANCE,
        );
        assert_eq!(fit.n_events as u64, reference["n_events"].as_u64().unwrap());
    }
}

fn check_km(dataset: &str, agreement: &mut Agreement) {
    let all = reference();
    let reference = &all[dataset];
    let data = load(reference["csv"].as_str().unwrap(), &[]);
    for (group, want) in reference["km"].as_object().unwrap() {
        let keep: Vec<usize> = (0..data.time.len())
            .filter(|i| match group.as_str() {
                "all" => true,
                "exec_engaged=0" => !data.exec_engaged[*i],
                "exec_engaged=1" => data.exec_engaged[*i],
                other => panic!("unknown group {other}"),
            })
            .collect();
        let time: Vec<f64> = keep.iter().map(|i| data.time[*i]).collect();
        let event: Vec<bool> = keep.iter().map(|i| data.event[*i]).collect();
        let curve = kaplan_meier(&time, &event).unwrap();
        assert_eq!(curve.n as u64, want["n"].as_u64().unwrap());
        assert_eq!(
            curve.median(),
            want["median"].as_f64(),
            "{dataset} {group} median"
        );
        let (lo, hi) = curve.median_ci(0.95);
        assert_eq!(
            lo,
            want["median_ci"][0].as_f64(),
            "{dataset} {group} median CI"
        );
        assert_eq!(
            hi,
            want["median_ci"][1].as_f64(),
            "{dataset} {group} median CI"
        );
        for pair in want["survival_at"].as_array().unwrap() {
            let (t, s) = (pair[0].as_f64().unwrap(), pair[1].as_f64().unwrap());
            let ours = curve.survival_at(t);
            assert!(
                (ours - s).abs() <= KM_TOLERANCE,
                "{dataset} {group} S({t}): ours {ours}, lifelines {s}"
            );
            if s > 0.0 {
                agreement.check(
                    &format!("km_survival {dataset} {group} {t}"),
                    ours,
                    s,
                    KM_TOLERANCE,
                );
            }
        }
    }
}

#[test]
fn cox_matches_lifelines_on_deals() {
    let mut agreement = Agreement::default();
    check_cox("deals", &mut agreement);
    agreement.report("deals (3,000 rows, 40 clusters)");
}

#[test]
fn cox_matches_lifelines_under_heavy_ties() {
    let mut agreement = Agreement::default();
    check_cox("ties", &mut agreement);
    agreement.report("ties (60 rows, times 1..10)");
}

#[test]
fn kaplan_meier_matches_lifelines() {
    let mut agreement = Agreement::default();
    check_km("deals", &mut agreement);
    check_km("ties", &mut agreement);
    agreement.report("Kaplan-Meier");
}
