//! `winsignal report`: discovery as one self-contained HTML page for sales leaders. The page embeds
//! Chart.js and the whole discovery result (the numbers `discover --json` prints), and draws the scorecard,
//! the forest plot and the per-behaviour charts from it in the browser; it needs no network.

use crate::features::{compute, CatalogArg, Computed};
use crate::output::n;
use crate::Global;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use winsignal_discover::{Discovery, Options};
use winsignal_ingest::quality::QualityReport;
use winsignal_store::Store;

const TEMPLATE: &str = include_str!("../assets/report.html");
const CHARTJS: &str = include_str!("../assets/chart.umd.min.js");
const CHARTJS_VERSION: &str = "4.6.1";

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub catalog: CatalogArg,
    /// Where to write the HTML file.
    #[arg(long, value_name = "FILE", default_value = "report.html")]
    pub out: PathBuf,
}

pub fn run(global: &Global, store: &dyn Store, args: &ReportArgs) -> Result<()> {
    // Fail before the replay and the fits, not after them.
    let dir = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "--out {}: the directory {} does not exist",
            args.out.display(),
            dir.display()
        );
    }
    let catalog = args.catalog.load()?;
    let c = compute(store, catalog, &global.data, global.quiet)?;
    let d = winsignal_discover::discover(
        &c.catalog,
        &c.snapshots,
        &Options {
            timing: c.timing.clone(),
            ..Options::default()
        },
    )?;
    let quality = winsignal_ingest::quality::report(store)?;
    write(&args.out, &d, &c, &quality)?;
    if !global.quiet {
        eprintln!("wrote the report to {}", args.out.display());
    }
    Ok(())
}

/// Writes the report for a discovery.
pub fn write(out: &Path, d: &Discovery, c: &Computed, quality: &QualityReport) -> Result<()> {
    std::fs::write(out, html(d, c, quality)?).with_context(|| format!("writing {}", out.display()))
}

/// Data-quality warnings from ingest and from the engine, in words.
fn warnings(c: &Computed, q: &QualityReport) -> Vec<String> {
    let mut out = Vec::new();
    let read: u64 = q.loads.iter().map(|l| l.stats.rows_read).sum();
    if q.quarantine.total > 0 {
        let reasons: Vec<String> = q
            .quarantine
            .by_reason
            .iter()
            .take(4)
            .map(|r| format!("{} ({})", r.code, n(r.count)))
            .collect();
        out.push(format!(
            "{} of {} rows read were quarantined (not used); most common reasons: {}. `winsignal quality` lists them.",
            n(q.quarantine.total),
            n(read),
            reasons.join(", ")
        ));
    }
    for m in &q.identity {
        if m.total > 0 && m.rate < 0.95 {
            out.push(format!(
                "{:.1} % of {} {} from {} could be tied to an account.",
                100.0 * m.rate,
                n(m.total),
                m.kind.as_str(),
                m.source
            ));
        }
    }
    let orphans: u64 = q.orphans.iter().map(|o| o.count).sum();
    if orphans > 0 {
        out.push(format!(
            "{} references point to records that are not in the data (kept and flagged).",
            n(orphans)
        ));
    }
    for (kind, count) in &c.unattributed {
        out.push(format!(
            "{} {kind} are not tied to any deal or account and are left out of the behaviours.",
            n(*count)
        ));
    }
    for drift in &q.drift {
        if !drift.added.is_empty() || !drift.missing.is_empty() || !drift.retyped.is_empty() {
            out.push(format!(
                "The columns of {} changed between loads {} and {} (added {}, missing {}, retyped {}).",
                drift.source,
                drift.previous_load_id,
                drift.load_id,
                drift.added.len(),
                drift.missing.len(),
                drift.retyped.len()
            ));
        }
    }
    out
}

fn html(d: &Discovery, c: &Computed, q: &QualityReport) -> Result<String> {
    let start = c
        .snapshots
        .iter()
        .map(|s| s.as_of.0 - (s.age_days * winsignal_core::time::MS_PER_DAY as f64) as i64)
        .min()
        .map_or_else(
            || "—".to_string(),
            |t| winsignal_core::Ts(t).to_date_string(),
        );
    let data = serde_json::json!({
        "discovery": d,
        "quality": warnings(c, q),
        "period_start": start,
        "period_end": c.horizon.to_date_string(),
        "version": env!("CARGO_PKG_VERSION"),
    });
    // Inside a <script> element neither "</script" nor "<!--" may appear (user text such as a catalog
    // title could contain them): escaping every <, > and & keeps the JSON identical and the tokenizer
    // blind to it.
    let json = serde_json::to_string(&data)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    Ok(TEMPLATE
        .replace("{{CHARTJS_VERSION}}", CHARTJS_VERSION)
        .replacen("{{DATA}}", &json, 1)
        .replacen("{{CHARTJS}}", CHARTJS, 1))
}
