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
    assert!(
        text.contains("P(win)") && text.contains("exactly"),
        "{text}"
    );
}
