//! Small-sample inference against reference libraries: the CR2 cluster-robust covariance with
//! Satterthwaite degrees of freedom against R's clubSandwich 0.5.8 (`coef_test(fit, vcov = "CR2",
//! test = "Satterthwaite")`): linear regression as `lm`; logistic regression as the weighted
//! least-squares problem the fit solves at convergence (`lm` on the whitened IRLS working regression,
//! which is what winsignal adjusts), and within 5e-3 of clubSandwich's own `glm` method (which takes the
//! inverse square root in another metric; validation/small_sample.R says how).
//!
//! The designs were written by `python3 validation/small_sample.py` (fixed seeds) and the reference
//! numbers by `Rscript validation/small_sample.R` (validation/README.md): 6 reps with 15–70 deals each, 12
//! reps with 3–40, and 60 deals that are each their own cluster (where CR2 is HC2). Coefficients,
//! standard errors, degrees of freedom and p-values must agree within 1e-6 relative.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use winsignal_stats::logit::{self, LogitOptions};
use winsignal_stats::{cluster_ids, dist, ols, Matrix};

fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../validation/fixtures")
}

struct Design {
    x: Matrix,
    won: Vec<f64>,
    log_amount: Vec<f64>,
    clusters: Vec<u32>,
}

fn load(set: &str) -> Design {
    let path = fixtures().join(format!("small_sample_{set}.csv"));
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (mut data, mut won, mut amount, mut labels) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut n = 0;
    for rec in r.records() {
        let rec = rec.unwrap();
        let num = |name: &str| rec[col(name)].parse::<f64>().unwrap();
        data.extend([1.0, num("behaviour"), num("size"), num("seg1"), num("seg2")]);
        won.push(num("won"));
        amount.push(num("log_amount"));
        labels.push(rec[col("cluster")].to_string());
        n += 1;
    }
    Design {
        x: Matrix::from_rows(n, 5, data),
        won,
        log_amount: amount,
        clusters: cluster_ids(&labels),
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    let rel = (got - want).abs() / want.abs().max(1e-300);
    assert!(
        rel < tol,
        "{what}: got {got}, clubSandwich {want} (relative difference {rel:.2e})"
    );
}

#[test]
fn cr2_and_satterthwaite_match_club_sandwich() {
    let text = std::fs::read_to_string(fixtures().join("small_sample_cr2.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    for set in ["few", "twelve", "single"] {
        let d = load(set);
        let ols_fit = ols::fit(&d.log_amount, &d.x, None).unwrap();
        let ols_cr2 = ols_fit.cr2(&d.x, &d.clusters).unwrap();
        let logit_fit = logit::fit(&d.won, &d.x, None, &LogitOptions::default()).unwrap();
        let logit_cr2 = logit_fit.cr2(&d.x, &d.won, &d.clusters).unwrap();
        for (model, beta, cr2) in [
            ("ols", &ols_fit.est.beta, &ols_cr2),
            ("logit", &logit_fit.est.beta, &logit_cr2),
        ] {
            let want = &reference[format!("{set}_{model}")];
            let (coef, se, df, p) = (
                floats(&want["coef"]),
                floats(&want["se"]),
                floats(&want["df"]),
                floats(&want["p"]),
            );
            for j in 0..5 {
                let what = format!("{set} {model} coefficient {j}");
                close(&format!("{what}: beta"), beta[j], coef[j], 1e-6);
                close(&format!("{what}: se"), cr2.se(j), se[j], 1e-6);
                close(&format!("{what}: df"), cr2.df(j), df[j], 1e-6);
                let t = beta[j] / cr2.se(j);
                close(
                    &format!("{what}: p"),
                    dist::t_two_sided_p(t, cr2.df(j)),
                    p[j],
                    1e-6,
                );
                if model == "logit" {
                    let glm = &reference[format!("{set}_glm")];
                    close(
                        &format!("{what}: se (glm)"),
                        cr2.se(j),
                        floats(&glm["se"])[j],
                        5e-3,
                    );
                    close(
                        &format!("{what}: df (glm)"),
                        cr2.df(j),
                        floats(&glm["df"])[j],
                        5e-3,
                    );
                }
            }
        }
    }
}

/// Firth's penalised logistic regression under separation against firthmodels 0.8.2 (penalised
/// likelihood-ratio test and profile interval, as R's logistf reports them) and scipy's Fisher exact
/// test, on the designs `validation/small_sample.py` wrote: the 0 of 40 won against 807 of
/// 7,960, 40 of 40 won against 30 %, and a small separated design with a control
/// (`python3 validation/firth.py` made the numbers).
#[test]
fn firth_profile_inference_matches_firthmodels_and_fisher() {
    let text = std::fs::read_to_string(fixtures().join("firth_reference.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    for name in ["firth_zero_wins", "firth_all_won", "firth_control"] {
        let mut r = csv::Reader::from_path(fixtures().join(format!("{name}.csv"))).unwrap();
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        let has_size = header.iter().any(|h| h == "size");
        let (mut data, mut y) = (Vec::new(), Vec::new());
        for rec in r.records() {
            let rec = rec.unwrap();
            let num = |c: &str| {
                rec[header.iter().position(|h| h == c).unwrap()]
                    .parse::<f64>()
                    .unwrap()
            };
            data.push(1.0);
            data.push(num("behaviour"));
            if has_size {
                data.push(num("size"));
            }
            y.push(num("won"));
        }
        let k = if has_size { 3 } else { 2 };
        let x = Matrix::from_rows(y.len(), k, data);
        let want = &reference[name];
        let firth = logit::fit(
            &y,
            &x,
            None,
            &LogitOptions {
                firth: true,
                ..LogitOptions::default()
            },
        )
        .unwrap();
        for (j, c) in floats(&want["coef"]).iter().enumerate() {
            close(
                &format!("{name}: coefficient {j}"),
                firth.est.beta[j],
                *c,
                1e-6,
            );
        }
        let profile = logit::firth_profile(&y, &x, &firth, 1, 0.95, None).unwrap();
        close(
            &format!("{name}: penalised LRT p"),
            profile.p,
            want["lrt_p"].as_f64().unwrap(),
            1e-5,
        );
        let ci = floats(&want["ci"]);
        close(&format!("{name}: profile low"), profile.low, ci[0], 1e-6);
        close(&format!("{name}: profile high"), profile.high, ci[1], 1e-6);
        let t = &want["table"];
        let cell = |r: usize, c: usize| t[r][c].as_u64().unwrap();
        close(
            &format!("{name}: Fisher"),
            dist::fisher_exact(cell(0, 0), cell(0, 1), cell(1, 0), cell(1, 1)),
            want["fisher_p"].as_f64().unwrap(),
            1e-8,
        );
    }
}
