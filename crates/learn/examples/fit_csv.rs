//! Fits the EBM (default parameters, seed 0) and the logistic baseline on the `train` rows of a
//! benchmark CSV and prints, for each, one JSON line of test metrics (bench/model.py reads them).
//!
//! The CSV format (bench/bank_model_csv.py writes one): a header row; a column `split` (`train` or
//! `test`), a column `y` (0 or 1), every other column a feature, an empty cell a missing value. The
//! categorical columns are listed in a JSON file `{"categorical": [...]}`, by default the CSV's path with
//! `.meta.json` for `.csv`; the other columns are numeric.
//!
//!     cargo run --release -p winsignal-learn --example fit_csv -- DATA.csv [--meta META.json]
//!         [--set PARAM=VALUE ...]
//!
//! `--set` overrides one `EbmParams` field (a JSON value), e.g. `--set outer_bags=14`; the EBM's line
//! then names the overrides (`winsignal_ebm[outer_bags=14]`). `--no-baseline` skips the logistic
//! regression. `--predictions FILE` writes the EBM's P(y = 1) for every test row, one per line, in
//! the file's order (bench/landmark_families.py pools them).

use std::error::Error;
use std::time::Instant;

use serde_json::{json, Value as Json};
use winsignal_learn::{ebm, logreg, metrics, Dataset, EbmParams, Feature, LogRegParams};

type AnyResult<T> = Result<T, Box<dyn Error>>;

struct Split {
    train: Dataset,
    test: Dataset,
    y_train: Vec<bool>,
    y_test: Vec<bool>,
}

fn main() -> AnyResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut data_path = None;
    let mut meta_path = None;
    let mut overrides = Vec::new();
    let mut baseline = true;
    let mut predictions = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--meta" => {
                meta_path = args.get(i + 1).cloned();
                i += 1;
            }
            "--no-baseline" => baseline = false,
            "--predictions" => {
                predictions = Some(args.get(i + 1).cloned().ok_or("--predictions needs FILE")?);
                i += 1;
            }
            "--set" => {
                overrides.push(args.get(i + 1).cloned().ok_or("--set needs PARAM=VALUE")?);
                i += 1;
            }
            other if data_path.is_none() => data_path = Some(other.to_string()),
            other => return Err(format!("unexpected argument `{other}`").into()),
        }
        i += 1;
    }
    let data_path =
        data_path.ok_or("usage: fit_csv DATA.csv [--meta META.json] [--set PARAM=VALUE]")?;
    let meta_path = meta_path.unwrap_or_else(|| {
        data_path
            .strip_suffix(".csv")
            .map_or(format!("{data_path}.meta.json"), |stem| {
                format!("{stem}.meta.json")
            })
    });
    let categorical: Vec<String> = match std::fs::read_to_string(&meta_path) {
        Ok(text) => {
            let meta: Json =
                serde_json::from_str(&text).map_err(|e| format!("{meta_path}: {e}"))?;
            meta["categorical"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        }
        Err(_) => Vec::new(),
    };
    let params = params_with(&overrides)?;
    let split = read(&data_path, &categorical)?;

    let started = Instant::now();
    let model = ebm::fit(&split.train, &split.y_train, &params)?;
    let seconds = started.elapsed().as_secs_f64();
    let rounds: Vec<(usize, usize)> = model
        .summary()
        .bags
        .iter()
        .map(|b| (b.main_best_round, b.pair_best_round))
        .collect();
    let mut terms: Vec<(&str, f64)> = model
        .terms()
        .iter()
        .map(|t| (t.name.as_str(), t.importance))
        .collect();
    terms.sort_by(|a, b| b.1.total_cmp(&a.1));
    eprintln!("winsignal EBM: best rounds per bag (mains, pairs) {rounds:?}");
    eprintln!("winsignal EBM: terms by importance {terms:.4?}");
    let p = model.predict_proba(&split.test)?;
    if let Some(path) = &predictions {
        let text: String = p.iter().map(|x| format!("{x}\n")).collect();
        std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))?;
    }
    let name = if overrides.is_empty() {
        "winsignal_ebm".to_string()
    } else {
        format!("winsignal_ebm[{}]", overrides.join(","))
    };
    report(&name, &split, seconds, &p)?;
    if !baseline {
        return Ok(());
    }

    let started = Instant::now();
    let baseline = logreg::fit(&split.train, &split.y_train, &LogRegParams::default())?;
    let seconds = started.elapsed().as_secs_f64();
    let p = baseline.predict_proba(&split.test)?;
    report("winsignal_logreg", &split, seconds, &p)?;
    Ok(())
}

fn params_with(overrides: &[String]) -> AnyResult<EbmParams> {
    let mut value = serde_json::to_value(EbmParams::default())?;
    for o in overrides {
        let (key, v) = o.split_once('=').ok_or("--set needs PARAM=VALUE")?;
        let obj = value
            .as_object_mut()
            .ok_or("parameters are not an object")?;
        if !obj.contains_key(key) {
            return Err(format!("no EBM parameter `{key}`").into());
        }
        obj.insert(key.to_string(), serde_json::from_str(v)?);
    }
    Ok(serde_json::from_value(value)?)
}

fn report(model: &str, split: &Split, seconds: f64, p: &[f64]) -> AnyResult<()> {
    let cal = metrics::calibration_slope_intercept(p, &split.y_test)?;
    let line = json!({
        "model": model,
        "rows_train": split.train.n_rows(),
        "rows_test": split.test.n_rows(),
        "fit_seconds": seconds,
        "auc": metrics::auc(p, &split.y_test)?,
        "brier": metrics::brier(p, &split.y_test)?,
        "log_loss": metrics::log_loss(p, &split.y_test)?,
        "calibration_slope": cal.slope,
        "calibration_intercept": cal.intercept,
        "calibration_in_the_large": cal.intercept_in_the_large,
    });
    println!("{line}");
    Ok(())
}

fn read(path: &str, categorical: &[String]) -> AnyResult<Split> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("{path}: {e}"))?;
    let header: Vec<String> = reader.headers()?.iter().map(String::from).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("{path}: no column `{name}`"))
    };
    let (split_col, y_col) = (col("split")?, col("y")?);
    let feature_cols: Vec<usize> = (0..header.len())
        .filter(|&c| c != split_col && c != y_col)
        .collect();
    let is_cat: Vec<bool> = feature_cols
        .iter()
        .map(|&c| categorical.contains(&header[c]))
        .collect();
    let mut numeric: Vec<Vec<Option<f64>>> = vec![Vec::new(); feature_cols.len()];
    let mut text: Vec<Vec<Option<String>>> = vec![Vec::new(); feature_cols.len()];
    let mut is_train = Vec::new();
    let mut y = Vec::new();
    let mut other_rows = 0usize;
    for (k, record) in reader.records().enumerate() {
        let record = record?;
        let line = k + 2;
        let field = |c: usize| record.get(c).unwrap_or("");
        is_train.push(match field(split_col) {
            "train" => true,
            "test" => false,
            // `winsignal train --export` also writes the rows its calibration was checked on; the
            // benchmark fits on `train` and scores `test` only, as bench/model.py does.
            "calibration" => {
                other_rows += 1;
                continue;
            }
            other => {
                return Err(format!(
                    "{path} line {line}: split `{other}`, expected train, test or calibration"
                )
                .into())
            }
        });
        y.push(match field(y_col) {
            "1" => true,
            "0" => false,
            other => return Err(format!("{path} line {line}: y `{other}`, expected 0 or 1").into()),
        });
        for (j, &c) in feature_cols.iter().enumerate() {
            let v = field(c);
            if is_cat[j] {
                text[j].push((!v.is_empty()).then(|| v.to_string()));
            } else if v.is_empty() {
                numeric[j].push(None);
            } else {
                let x: f64 = v.parse().map_err(|_| {
                    format!(
                        "{path} line {line}: `{}` is `{v}`, expected a number",
                        header[c]
                    )
                })?;
                numeric[j].push(Some(x));
            }
        }
    }
    let features: Vec<Feature> = feature_cols
        .iter()
        .enumerate()
        .map(|(j, &c)| {
            if is_cat[j] {
                Feature::categorical(header[c].clone(), std::mem::take(&mut text[j]))
            } else {
                Feature::numeric(header[c].clone(), std::mem::take(&mut numeric[j]))
            }
        })
        .collect();
    if other_rows > 0 {
        eprintln!("{path}: {other_rows} calibration rows left out (fit on train, scored on test)");
    }
    let all = Dataset::new(features)?;
    let train_rows: Vec<usize> = (0..y.len()).filter(|&r| is_train[r]).collect();
    let test_rows: Vec<usize> = (0..y.len()).filter(|&r| !is_train[r]).collect();
    Ok(Split {
        train: all.subset(&train_rows)?,
        test: all.subset(&test_rows)?,
        y_train: train_rows.iter().map(|&r| y[r]).collect(),
        y_test: test_rows.iter().map(|&r| y[r]).collect(),
    })
}
