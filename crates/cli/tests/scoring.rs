//! The win model end to end through the binary on a small demo company: training is deterministic (the
//! same data and seed give the same model id and bytes), every score is exactly the intercept plus its
//! factors, next-best actions only name behaviours the deal lacks that have a significant positive
//! effect at its stage, and `explain` traces factors to source rows.
#![allow(clippy::unwrap_used)]

mod common;
use common::winsignal;

use serde_json::Value;

#[test]
fn train_score_and_explain_on_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    winsignal(&data, &["demo", "--scale", "0.3", "--seed", "11"]);

    // Training twice on the same data with the same seed gives the same model: same id, not saved again.
    let first: Value = serde_json::from_str(&winsignal(&data, &["train", "--json"])).unwrap();
    let export = dir.path().join("rows.csv");
    let again: Value = serde_json::from_str(&winsignal(
        &data,
        &["train", "--json", "--export", export.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(first["model_id"], again["model_id"]);
    // The export holds exactly the rows the model was fitted, calibrated and tested on.
    let text = std::fs::read_to_string(&export).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..2], &["split", "y"]);
    assert!(header.contains(&"stage") && header.contains(&"exec_engaged"));
    let mut counts = std::collections::BTreeMap::new();
    for line in lines {
        let mut cells = line.split(',');
        let split = cells.next().unwrap().to_string();
        assert!(matches!(cells.next(), Some("0" | "1")), "{line}");
        *counts.entry(split).or_insert(0u64) += 1;
    }
    let on = &first["trained_on"];
    assert_eq!(counts["train"], on["rows_train"].as_u64().unwrap());
    assert_eq!(
        counts["calibration"],
        on["rows_calibration"].as_u64().unwrap()
    );
    assert_eq!(counts["test"], on["rows_test"].as_u64().unwrap());
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("rows.meta.json")).unwrap())
            .unwrap();
    assert!(meta["categorical"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "stage"));
    assert_eq!(
        meta["categorical"].as_array().unwrap().len() + meta["numeric"].as_array().unwrap().len(),
        header.len() - 2
    );
    // `demo` trained and saved this very model already (same data, seed 0).
    assert_eq!(first["new"], false);
    assert_eq!(again["new"], false);
    let eval = &first["evaluation"];
    for m in ["model", "uncalibrated", "logistic", "stage_only"] {
        let auc = eval[m]["auc"].as_f64().unwrap();
        assert!((0.5..1.0).contains(&auc), "{m}: AUC {auc}");
    }
    // The model beats what most teams use (stage-only win rates) on the later deals.
    assert!(eval["model"]["auc"].as_f64().unwrap() > eval["stage_only"]["auc"].as_f64().unwrap());

    let scores: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    assert_eq!(scores["model_id"], first["model_id"]);
    let deals = scores["deals"].as_array().unwrap();
    assert!(deals.len() > 20, "{} open deals", deals.len());
    let mut actions = 0;
    for d in deals {
        // Additivity: intercept + factors (in model order) is the logit, bit for bit.
        let mut factors: Vec<&Value> = d["factors"].as_array().unwrap().iter().collect();
        factors.sort_by_key(|f| f["term_index"].as_u64().unwrap());
        let sum = factors
            .iter()
            .fold(d["intercept"].as_f64().unwrap(), |s, f| {
                s + f["logit"].as_f64().unwrap()
            });
        assert_eq!(sum, d["logit"].as_f64().unwrap(), "{}", d["opportunity_id"]);
        let p = d["p_win"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p));
        // Actions: only behaviours the deal lacks, with a significant positive effect at its stage.
        for a in d["actions"].as_array().unwrap() {
            actions += 1;
            let id = a["behaviour"].as_str().unwrap();
            let factor = factors.iter().find(|f| f["term"] == id).unwrap();
            assert!(
                factor["value"].as_str().unwrap().starts_with("no"),
                "{id} recommended but present: {factor}"
            );
            let e = &a["evidence"];
            assert!(
                e["q"].as_f64().unwrap() < 0.05 && e["low"].as_f64().unwrap() > 1.0,
                "{e}"
            );
            assert_eq!(
                e["landmark"].as_str().unwrap(),
                format!("stage:{}", d["stage"].as_str().unwrap())
            );
            assert!(a["coaching"].as_str().unwrap().contains("not a guarantee"));
        }
    }
    assert!(actions > 0, "no next-best action in {} deals", deals.len());

    // explain: the same score, with the events behind the factors traced to files and lines.
    let id = deals[0]["opportunity_id"].as_str().unwrap();
    let ex: Value = serde_json::from_str(&winsignal(&data, &["explain", id, "--json"])).unwrap();
    assert_eq!(ex["deal"]["logit"], deals[0]["logit"]);
    let traced: Vec<&Value> = ex["lineage"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["contributions"].as_array().unwrap())
        .collect();
    assert!(!traced.is_empty());
    // Every definition is traced once, even when it is in a main term and in a pair.
    let mut terms: Vec<&str> = ex["lineage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["term"].as_str().unwrap())
        .collect();
    let n = terms.len();
    terms.sort_unstable();
    terms.dedup();
    assert_eq!(terms.len(), n);
    assert!(traced
        .iter()
        .filter(|c| !c["origin"].is_null())
        .all(|c| c["origin"]["line"].as_u64().unwrap() > 0));
    let text = winsignal(&data, &["explain", id]);
    // The header says the shown factors are some of all (issue 14: it said "the factors below, exactly"
    // over a list cut to the largest), and the lineage line counts the shown ones and all.
    assert!(
        text.contains("P(win)") && text.contains("the exact contributions of all"),
        "{text}"
    );
    assert!(
        text.contains("behind the") && text.contains("shown above;"),
        "{text}"
    );
}

/// How a synthetic company's outcomes and close dates are made.
#[derive(Clone, Copy, PartialEq)]
enum Company {
    /// The amount is recorded with the outcome: won deals 50–100k, lost 5–10k (a leak: AUC 1).
    Leak,
    /// No deal has a close date.
    NoCloseDates,
    /// 30 % of the lost deals have no close date (the won all have one).
    LostUndated,
    /// The outcome follows the log amount smoothly (a logistic model's world).
    Smooth,
}

/// Writes a canonical company of `n` closed deals (one account each, created every few days over 500
/// days, stages Discovery then Proposal 20 days later) to `dir`, deterministic in `seed`.
fn company(dir: &std::path::Path, n: usize, kind: Company, seed: u64) {
    use std::fmt::Write as _;
    let mut state = seed;
    // SplitMix64: a fixed generator, so the company is the same on every machine.
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let day = |d: usize| {
        // Days since 2023-01-01 as a date (months of 30 days are enough for ordering; dates valid).
        let (y, rest) = (2023 + d / 360, d % 360);
        format!("{y}-{:02}-{:02}", 1 + rest / 30, 1 + rest % 30 % 28)
    };
    let (mut accounts, mut opps, mut stages) = (
        String::from("account_id,name,segment,employees\n"),
        String::from("opportunity_id,account_id,amount,created_at,closed_at,outcome,stage\n"),
        String::from("opportunity_id,stage,entered_at\n"),
    );
    for i in 0..n {
        let segment = ["SMB", "Mid-Market", "Enterprise"][i % 3];
        let employees = (3.0 + 6.0 * next()).exp().round();
        writeln!(accounts, "A{i},Account {i},{segment},{employees}").unwrap();
        let created = i * 500 / n;
        // A standard normal by Box–Muller.
        let x = (-2.0 * (1.0 - next()).ln()).sqrt() * (std::f64::consts::TAU * next()).cos();
        let u = next();
        let (won, amount) = match kind {
            Company::Leak => {
                let won = u < 0.4;
                let amount = if won { 50_000.0 } else { 5_000.0 } * (1.0 + next());
                (won, amount.round())
            }
            _ => {
                let z = 1.2 * x - 0.3;
                (u < 1.0 / (1.0 + (-z).exp()), (20_000.0 * x.exp()).round())
            }
        };
        // Long sales cycles where lost deals go undated, so that placing them at their creation date
        // would move them far from their close.
        let cycle = if kind == Company::LostUndated {
            300.0
        } else {
            50.0
        };
        let closed = created + 40 + (cycle * next()) as usize;
        let undated = match kind {
            Company::NoCloseDates => true,
            Company::LostUndated => !won && next() < 0.3,
            _ => false,
        };
        writeln!(
            opps,
            "O{i},A{i},{amount},{},{},{},{}",
            day(created),
            if undated { String::new() } else { day(closed) },
            if won { "won" } else { "lost" },
            if won { "Closed Won" } else { "Closed Lost" }
        )
        .unwrap();
        writeln!(stages, "O{i},Discovery,{}", day(created)).unwrap();
        writeln!(stages, "O{i},Proposal,{}", day(created + 20)).unwrap();
    }
    // A few deals still open at the end, to score.
    for i in n..n + 12 {
        writeln!(accounts, "A{i},Account {i},SMB,100").unwrap();
        let amount = (20_000.0 * (next() * 2.0 - 1.0).exp()).round();
        writeln!(opps, "O{i},A{i},{amount},{},,open,Proposal", day(480)).unwrap();
        writeln!(stages, "O{i},Discovery,{}", day(480)).unwrap();
        writeln!(stages, "O{i},Proposal,{}", day(490)).unwrap();
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("accounts.csv"), accounts).unwrap();
    std::fs::write(dir.join("opportunities.csv"), opps).unwrap();
    std::fs::write(dir.join("stage_history.csv"), stages).unwrap();
}

/// Runs the binary and returns (success, stdout, stderr).
fn run(data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .arg("--data")
        .arg(data)
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn workspace(dir: &std::path::Path, n: usize, kind: Company) -> std::path::PathBuf {
    let files = dir.join("files");
    company(&files, n, kind, 7);
    let data = dir.join("ws");
    winsignal(&data, &["ingest", files.to_str().unwrap()]);
    data
}

fn codes(summary: &Value) -> Vec<String> {
    summary["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_model_too_good_to_be_true_is_refused_with_the_leaking_column_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = workspace(dir.path(), 300, Company::Leak);
    // First line of defence: discovery's column checks flag the amount (0 on every lost deal), and the
    // model is trained without it — saved, with the reason it was left out.
    let (ok, stdout, stderr) = run(&data, &["train", "--json"]);
    assert!(ok, "{stderr}");
    let clean: Value = serde_json::from_str(&stdout).unwrap();
    let left_out = clean["trained_on"]["excluded"].as_array().unwrap();
    assert!(
        left_out.iter().any(|e| e["id"] == "log_amount"
            && e["reason"].as_str().unwrap().contains("possible leakage")),
        "{left_out:?}"
    );
    assert!(
        clean["evaluation"]["model"]["auc"].as_f64().unwrap() < 0.97,
        "{stdout}"
    );
    // Kept on purpose, the amount gives a model too good to be true, which is refused.
    let (ok, stdout, stderr) = run(&data, &["train", "--json", "--keep-suspect-columns"]);
    assert!(!ok, "a model with holdout AUC 1 was saved: {stdout}");
    assert!(
        stderr.contains("not saved") && stderr.contains("log_amount"),
        "{stderr}"
    );
    let refused: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(refused["saved"], false);
    assert!(refused["model_id"].is_null());
    let first = &refused["warnings"][0];
    assert_eq!(first["code"], "too_good_to_be_true");
    assert_eq!(first["refuses"], true);
    assert_eq!(first["columns"][0], "log_amount", "{first}");
    assert_eq!(refused["suspects"][0]["column"], "log_amount");
    // Nothing was saved: scoring still uses the clean model.
    let scored: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    assert_eq!(scored["model_id"], clean["model_id"]);

    // Told to, train saves it — with the warnings.
    let keep = ["--keep-suspect-columns", "--allow-suspect"];
    let (ok, stdout, stderr) = run(&data, &["train", "--json", keep[0], keep[1]]);
    assert!(ok, "{stderr}");
    let saved: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(saved["saved"], true);
    assert!(codes(&saved).contains(&"too_good_to_be_true".to_string()));
    let text = run(&data, &["train", keep[0], keep[1]]).1;
    assert!(text.starts_with("REFUSED: [too_good_to_be_true]"), "{text}");
    // Saved as a candidate: the clean model stays active until someone else approves this one and
    // activates it (here, to see the report show its warnings).
    let suspect = saved["model_id"].as_str().unwrap();
    assert_eq!(saved["registry"]["stage"], "candidate", "{saved}");
    for args in [
        &[
            "models",
            "approve",
            suspect,
            "--reason",
            "to test the report",
        ][..],
        &[
            "models",
            "activate",
            suspect,
            "--reason",
            "to test the report",
            "--override",
            "a test",
        ],
    ] {
        common::winsignal_as(&data, "reviewer", args);
    }

    // The report's model section shows the warnings before anything else about the model.
    let page = dir.path().join("report.html");
    winsignal(&data, &["report", "--out", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("too_good_to_be_true"));
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!("no Chromium: the rendered order of the report is not checked");
        return;
    };
    let run = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&run.stdout);
    let warnings = dom
        .find("id=\"model-warnings\"")
        .expect("no warnings in the report");
    let metrics = dom.find("id=\"model-metrics\"").unwrap();
    assert!(warnings < metrics);
    assert!(dom[warnings..metrics].contains("at or above the ceiling of 0.97"));
}

#[test]
fn without_usable_close_dates_the_holdout_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    // No close dates at all: the deals are ordered by creation date, and the output says so.
    let data = workspace(&dir.path().join("none"), 300, Company::NoCloseDates);
    let summary: Value = serde_json::from_str(&winsignal(&data, &["train", "--json"])).unwrap();
    let split = &summary["trained_on"]["split"];
    assert_eq!(split["kind"], "creation_time", "{split}");
    assert!(split["description"]
        .as_str()
        .unwrap()
        .starts_with("by creation date"));
    assert!(split["warnings"][0]
        .as_str()
        .unwrap()
        .contains("none of the 300 closed deals has a close date"));
    assert!(codes(&summary).contains(&"split".to_string()));
    let text = winsignal(&data, &["train"]);
    assert!(text.starts_with("Warning: [split]"), "{text}");
    assert!(!text.contains("deals closed"), "{text}");

    // Lost deals without a close date are not silently put at their creation date.
    let data = workspace(&dir.path().join("lost"), 300, Company::LostUndated);
    let summary: Value = serde_json::from_str(&winsignal(&data, &["train", "--json"])).unwrap();
    let split = &summary["trained_on"]["split"];
    assert_eq!(split["kind"], "creation_time", "{split}");
    let why = split["warnings"][0].as_str().unwrap();
    assert!(
        why.contains("0.0 % of the won") && why.contains("of the lost"),
        "{why}"
    );
    // No outcome is pushed into one period: the test snapshots win about as often as the calibration
    // snapshots just before them.
    let rate = |m: &Value| m["won"].as_f64().unwrap() / m["rows"].as_f64().unwrap();
    let test = rate(&summary["evaluation"]["model"]);
    let cal = rate(&summary["selection"]["candidates"][0]["calibration"]);
    assert!(
        (test - cal).abs() < 0.12,
        "win rate {test} tested, {cal} calibration"
    );
}

#[test]
fn a_small_company_keeps_the_simplest_model_that_wins_on_the_calibration_deals() {
    let dir = tempfile::tempdir().unwrap();
    let data = workspace(dir.path(), 150, Company::Smooth);
    let summary: Value = serde_json::from_str(&winsignal(&data, &["train", "--json"])).unwrap();
    let selection = &summary["selection"];
    let candidates = selection["candidates"].as_array().unwrap();
    let names: Vec<&str> = candidates
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "stage_only",
            "logistic",
            "ebm_regularised",
            "ebm_mains",
            "ebm_pairs"
        ]
    );
    let auc = |c: &Value| c["calibration"]["auc"].as_f64().unwrap();
    let chosen = candidates.iter().find(|c| c["chosen"] == true).unwrap();
    assert_eq!(chosen["name"], selection["chosen"]);
    // No candidate beats the kept one on the calibration deals by more than a near-tie...
    for c in candidates {
        assert!(
            auc(c) <= auc(chosen) + 0.005,
            "{} beats {}",
            c["name"],
            chosen["name"]
        );
    }
    // ...and here the boosting machine with its pairs, fitted on about 76 deals, is not what is saved.
    assert_ne!(selection["chosen"], "ebm_pairs");
    assert_eq!(summary["pairs_check"]["kept"], false);
    assert!(auc(&candidates[4]) < auc(chosen));
    let text = winsignal(&data, &["train"]);
    assert!(
        text.contains(&format!("Kept {}", selection["chosen"].as_str().unwrap())),
        "{text}"
    );

    // Whichever candidate is kept, it scores and explains like the boosting machine: the intercept plus
    // the factors is the logit.
    let scores: Value = serde_json::from_str(&winsignal(&data, &["score", "--json"])).unwrap();
    let deals = scores["deals"].as_array().unwrap();
    assert_eq!(deals.len(), 12);
    for d in deals {
        let mut factors: Vec<&Value> = d["factors"].as_array().unwrap().iter().collect();
        factors.sort_by_key(|f| f["term_index"].as_u64().unwrap());
        let sum = factors
            .iter()
            .fold(d["intercept"].as_f64().unwrap(), |s, f| {
                s + f["logit"].as_f64().unwrap()
            });
        assert_eq!(sum, d["logit"].as_f64().unwrap());
    }
    let id = deals[0]["opportunity_id"].as_str().unwrap();
    let ex: Value = serde_json::from_str(&winsignal(&data, &["explain", id, "--json"])).unwrap();
    assert_eq!(ex["deal"]["logit"], deals[0]["logit"]);
}
