//! `winsignal train --export FILE.csv`: the exact rows the win model was fitted, calibrated and tested
//! on, in the benchmark format that `bench/model.py` and `crates/learn/examples/fit_csv.rs` read — so
//! other libraries can be fitted on the same split of the same data.
//!
//! Format: a header row; `split` (`train`: the rows the boosting machine is fitted on, one snapshot
//! per deal; `calibration`: the rows its calibration is checked on; `test`: the held-out deals' rows),
//! `y` (1 won, 0 lost), then one column per model feature in the model's order; an empty cell is a
//! missing value. Beside it, `FILE.meta.json`: `{"categorical": [...], ...}` naming the categorical
//! columns (the rest are numeric) and saying where the rows came from; and `FILE.rows.csv`: for every
//! row, in the same order, its split, opportunity, landmark and as-of time (what each row is).

use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};
use winsignal_learn::data::Value;
use winsignal_score::dataset::Table;
use winsignal_score::model::Tables;

#[derive(Serialize)]
struct Meta<'a> {
    categorical: Vec<&'a str>,
    numeric: Vec<&'a str>,
    rows: Rows,
    /// Train on deals ordered before this (close date, or creation for deals without one), test after.
    cutoff: String,
    calibration_from: String,
    catalog: &'a str,
    seed: u64,
}

#[derive(Serialize)]
struct Rows {
    train: usize,
    calibration: usize,
    test: usize,
}

/// Where the meta file of `out` goes: `x.csv` → `x.meta.json`.
pub fn meta_path(out: &Path) -> PathBuf {
    beside(out, "meta.json")
}

/// Where the row descriptions of `out` go: `x.csv` → `x.rows.csv`.
pub fn rows_path(out: &Path) -> PathBuf {
    beside(out, "rows.csv")
}

fn beside(out: &Path, ext: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or_else(|| "export".into(), |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}.{ext}"))
}

/// Writes the three tables to `out` and their description beside it.
pub fn write(out: &Path, t: &Tables<'_>, catalog: &str, seed: u64) -> Result<()> {
    let features = t.fit.data.features();
    crate::output::write_atomically(out, |file| {
        let mut w = csv::Writer::from_writer(file);
        let mut header = vec!["split", "y"];
        header.extend(features.iter().map(|f| f.name.as_str()));
        w.write_record(&header)?;
        let mut row: Vec<String> = Vec::with_capacity(header.len());
        for (split, table) in [
            ("train", &t.fit),
            ("calibration", &t.calibration),
            ("test", &t.test),
        ] {
            write_table(&mut w, &mut row, split, table)?;
        }
        Ok(w.flush()?)
    })?;
    crate::output::write_atomically(&rows_path(out), |file| {
        let mut w = csv::Writer::from_writer(file);
        w.write_record(["split", "opportunity_id", "landmark", "as_of"])?;
        for (split, table) in [
            ("train", &t.fit),
            ("calibration", &t.calibration),
            ("test", &t.test),
        ] {
            for r in &table.rows {
                w.write_record([
                    split,
                    &crate::output::spreadsheet_safe(&r.opportunity_id),
                    r.landmark.as_str(),
                    r.as_of.to_rfc3339().as_str(),
                ])?;
            }
        }
        Ok(w.flush()?)
    })?;
    let meta = Meta {
        categorical: features
            .iter()
            .filter(|f| !f.values.is_numeric())
            .map(|f| f.name.as_str())
            .collect(),
        numeric: features
            .iter()
            .filter(|f| f.values.is_numeric())
            .map(|f| f.name.as_str())
            .collect(),
        rows: Rows {
            train: t.fit.rows.len(),
            calibration: t.calibration.rows.len(),
            test: t.test.rows.len(),
        },
        cutoff: t.split.cutoff.0.to_rfc3339(),
        calibration_from: t.calibration_from.0.to_rfc3339(),
        catalog,
        seed,
    };
    let text = serde_json::to_string_pretty(&meta)? + "\n";
    crate::output::write_atomically(&meta_path(out), |w| {
        use std::io::Write as _;
        Ok(w.write_all(text.as_bytes())?)
    })
}

fn write_table<W: std::io::Write>(
    w: &mut csv::Writer<W>,
    row: &mut Vec<String>,
    split: &str,
    table: &Table<'_>,
) -> Result<()> {
    let features = table.data.features();
    for r in 0..table.rows.len() {
        row.clear();
        row.push(split.to_string());
        row.push(if table.won[r] { "1" } else { "0" }.to_string());
        for f in features {
            row.push(match f.values.value(r) {
                Value::Number(x) => x.to_string(),
                Value::Category(s) => crate::output::spreadsheet_safe(s).into_owned(),
                Value::Missing => String::new(),
            });
        }
        w.write_record(&*row)?;
    }
    Ok(())
}
