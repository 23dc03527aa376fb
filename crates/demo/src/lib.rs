//! Generates a realistic, deterministic B2B software company (CRM, product telemetry, marketing,
//! support and call transcripts) in the file formats winsignal ingests, with planted behaviour effects
//! whose ground truth is documented in `docs/demo.md`.

mod dialogue;
pub mod error;
mod product;
mod table;
mod text;
mod world;
mod write;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use winsignal_core::Ts;

pub use error::{DemoError, Result};

use world::{Outcome, World};
use write::{MessPlan, Writer};

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub seed: u64,
    /// Multiplies every entity count (reps at least 4, accounts at least 50).
    pub scale: f64,
    pub layout: Layout,
    /// Inject bad rows (to be quarantined) and kept mess (duplicates, orphans, …).
    pub mess: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            seed: 42,
            scale: 1.0,
            layout: Layout::Mixed,
            mess: true,
        }
    }
}

/// Which file formats to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Salesforce exports, a Segment file and canonical files, so that every connector runs.
    Mixed,
    /// Everything as canonical CSV/JSONL under `canonical/`.
    Canonical,
}

/// What was generated; also written as `manifest.json` in the output directory.
#[derive(Debug, Clone, Serialize)]
pub struct DemoManifest {
    pub seed: u64,
    pub scale: f64,
    pub data_start: Ts,
    pub data_end: Ts,
    /// Every file written, in the order it should be ingested.
    pub files: Vec<DemoFile>,
    /// Rep ids as written in the files (the Salesforce User Id).
    pub strongest_rep: String,
    pub weakest_rep: String,
    /// Generated entities per kind.
    pub counts: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoFile {
    /// Relative to the output directory.
    pub path: PathBuf,
    /// "salesforce", "segment" or "canonical".
    pub format: String,
    /// The Salesforce object (`Account`, `Task`, …) or canonical kind (`accounts`, …); none for Segment.
    pub kind: Option<String>,
    /// Data rows or lines written, bad ones included (header excluded).
    pub rows: u64,
    /// Rows a correct ingest must quarantine.
    pub injected_bad_rows: u64,
}

/// The end of the data window: 2026-06-30T00:00:00Z. The window is the 24 months before it.
pub fn data_window() -> Result<(Ts, Ts)> {
    let bad = || DemoError::Config("the fixed data window is not a valid date".into());
    Ok((
        Ts::from_ymd(2024, 6, 30).ok_or_else(bad)?,
        Ts::from_ymd(2026, 6, 30).ok_or_else(bad)?,
    ))
}

/// Generates the company into `out_dir` and returns (and writes) its manifest.
pub fn generate(
    cfg: &DemoConfig,
    out_dir: &Path,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<DemoManifest> {
    if !(cfg.scale.is_finite() && cfg.scale > 0.0 && cfg.scale <= 100.0) {
        return Err(DemoError::Config(format!(
            "scale must be a number in (0, 100], got {}",
            cfg.scale
        )));
    }
    let (data_start, data_end) = data_window()?;
    progress("simulating company", 0);
    let mut world = World::generate(cfg.seed, cfg.scale, data_start.millis(), data_end.millis());
    let mess = MessPlan {
        on: cfg.mess,
        factor: cfg.scale.min(1.0).sqrt(),
    };
    if cfg.mess {
        // Kept mess: a few won deals without an amount (flagged by ingest, not quarantined).
        let won: Vec<usize> = (0..world.opps.len())
            .filter(|&i| world.opps[i].outcome == Outcome::Won)
            .collect();
        for &i in won.iter().rev().step_by(97).take(mess.n(5) as usize) {
            world.opps[i].amount = None;
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|source| DemoError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let mut w = Writer::new(out_dir, &world, cfg.seed, mess, cfg.layout == Layout::Mixed);
    let n_product_events = match cfg.layout {
        Layout::Mixed => {
            w.salesforce(progress)?;
            w.product(false, progress)?
        }
        Layout::Canonical => {
            w.canonical_entities(progress)?;
            w.product(true, progress)?
        }
    };
    w.touches(progress)?;
    w.tickets(progress)?;
    w.transcripts(progress)?;

    let n_stage_rows: u64 = world
        .opps
        .iter()
        .map(|o| o.stages.len() as u64 + u64::from(o.outcome != Outcome::Open))
        .sum();
    let counts: BTreeMap<String, u64> = [
        ("accounts", world.accounts.len() as u64),
        ("contacts", world.contacts.len() as u64),
        ("reps", world.reps.len() as u64),
        ("opportunities", world.opps.len() as u64),
        ("stage_history", n_stage_rows),
        ("opportunity_contacts", world.roles.len() as u64),
        ("activities", world.activities.len() as u64),
        ("product_events", n_product_events),
        ("marketing_touches", world.touches.len() as u64),
        ("support_tickets", world.tickets.len() as u64),
        ("transcripts", world.transcripts.len() as u64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let manifest = DemoManifest {
        seed: cfg.seed,
        scale: cfg.scale,
        data_start,
        data_end,
        files: std::mem::take(&mut w.files),
        strongest_rep: world.users[world.strongest].id.clone(),
        weakest_rep: world.users[world.weakest].id.clone(),
        counts,
    };
    let path = out_dir.join("manifest.json");
    let json = serde_json::to_vec_pretty(&manifest).map_err(|source| DemoError::Json {
        path: path.clone(),
        source,
    })?;
    std::fs::write(&path, json).map_err(|source| DemoError::Io { path, source })?;
    progress("done", 0);
    Ok(manifest)
}
