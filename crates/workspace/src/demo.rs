//! The demo: generate the demo company, ingest it through every connector, compute the behaviours,
//! find what wins, train the win model, score the open deals, build the rep scorecards and write the
//! report — each step handed to a [`DemoObserver`] (the CLI prints them).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use winsignal_core::Ts;
use winsignal_demo::{DemoConfig, DemoManifest};
use winsignal_discover::Discovery;
use winsignal_ingest::quality::QualityReport;
use winsignal_ingest::{Format, IngestRequest, LoadReport};
use winsignal_score::explain::DealScore;
use winsignal_score::model::TrainOptions;
use winsignal_score::reps::Scorecards;
use winsignal_store::Store;

use crate::models::Trained;
use crate::pipeline::Computed;
use crate::Progress;

/// The named state that marks a workspace as a demo's (holding the generator's manifest); `demo`
/// replaces only such a workspace.
pub const MARKER: &str = "demo-manifest";

/// Where workspaces from before kept the marker, beside the store.
const MARKER_FILE: &str = "demo.json";

/// Salesforce custom fields of the demo export that carry canonical fields.
const DEMO_SALESFORCE_CONFIG: &str = r#"# Custom fields of the demo org, mapped onto canonical fields.
[fields.Account]
Segment__c = "segment"

[fields.Task]
Direction__c = "direction"

[fields.Event]
Status__c = "status"
"#;

/// What the demo did, step by step, as it happens.
pub enum DemoStep<'a> {
    Generated {
        manifest: &'a DemoManifest,
        input: &'a Path,
        seconds: f64,
    },
    Ingested {
        manifest: &'a DemoManifest,
        loads: &'a [LoadReport],
        quality: &'a QualityReport,
        seconds: f64,
    },
    Computed {
        computed: &'a Computed,
        seconds: f64,
    },
    Discovered {
        discovery: &'a Discovery,
        seconds: f64,
    },
    /// Too few closed deals (a very small scale) for a win model: the demo goes on without one.
    NoModel {
        reason: String,
    },
    Trained {
        trained: &'a Trained,
        seconds: f64,
    },
    Scored {
        as_of: Ts,
        deals: &'a [DealScore],
    },
    Coached {
        cards: &'a Scorecards,
    },
    Reported {
        path: &'a Path,
    },
}

/// Told of every step of the demo.
pub trait DemoObserver {
    fn step(&mut self, step: DemoStep<'_>);
}

/// Removes an earlier demo in `data` (refusing a workspace that is not a demo's) and creates it.
fn prepare_workspace(data: &Path) -> Result<()> {
    if data.join("store.sqlite").exists() {
        // Told without opening the store, which would migrate a workspace that is not ours to touch.
        let is_demo = data.join(MARKER_FILE).exists()
            || winsignal_store::EmbeddedStore::has_state(data, MARKER);
        if !is_demo {
            bail!(
                "{} already holds a workspace that is not a demo; pass --data with another directory (demo replaces its workspace)",
                data.display()
            );
        }
        std::fs::remove_dir_all(data)
            .with_context(|| format!("removing the earlier demo in {}", data.display()))?;
    }
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    Ok(())
}

/// The ingest requests that read the generated files: the Salesforce folder with the demo org's
/// config, Segment messages, and canonical files with their kinds.
fn requests(manifest: &DemoManifest, input: &Path, config: &Path) -> Result<Vec<IngestRequest>> {
    let mut requests: Vec<IngestRequest> = Vec::new();
    let mut salesforce_dirs: Vec<PathBuf> = Vec::new();
    for f in &manifest.files {
        let path = input.join(&f.path);
        match f.format.as_str() {
            "salesforce" => {
                let dir = path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| input.to_path_buf());
                if !salesforce_dirs.contains(&dir) {
                    salesforce_dirs.push(dir.clone());
                    let mut req = IngestRequest::new(dir);
                    req.format = Some(Format::Salesforce);
                    req.salesforce_config = Some(config.to_path_buf());
                    requests.push(req);
                }
            }
            "segment" => {
                let mut req = IngestRequest::new(path);
                req.format = Some(Format::Segment);
                requests.push(req);
            }
            _ => {
                let mut req = IngestRequest::new(path);
                req.format = Some(Format::Canonical);
                req.kind = f.kind.as_deref().map(str::parse).transpose()?;
                requests.push(req);
            }
        }
    }
    Ok(requests)
}

/// Runs the whole demo into the workspace `data` (replacing an earlier demo there) and writes
/// `<data>/report.html`.
pub fn run(
    data: &Path,
    cfg: &DemoConfig,
    observer: &mut dyn DemoObserver,
    progress: &mut dyn Progress,
) -> Result<()> {
    if !(cfg.scale > 0.0 && cfg.scale <= 100.0) {
        bail!(
            "--scale must be between 0 (exclusive) and 100, found {}",
            cfg.scale
        );
    }
    prepare_workspace(data)?;
    let input = data.join("demo-input");
    let t0 = Instant::now();
    let manifest = winsignal_demo::generate(cfg, &input, &mut |what: &str, rows: u64| {
        progress.phase(&format!("generating {what}"), rows % 1000, 1000)
    })
    .context("generating the demo company")?;
    progress.finish();
    observer.step(DemoStep::Generated {
        manifest: &manifest,
        input: &input,
        seconds: t0.elapsed().as_secs_f64(),
    });

    let config_path = input.join("salesforce-config.toml");
    std::fs::write(&config_path, DEMO_SALESFORCE_CONFIG)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let store = crate::workspace::open(data, None)?;
    let t1 = Instant::now();
    let mut loads = Vec::new();
    for mut req in requests(&manifest, &input, &config_path)? {
        req.now = Ts::now();
        let report = crate::audit::ingest(&store, &req, &crate::audit::local_actor(), &mut |p| {
            progress.file(p)
        })?;
        loads.extend(report.loads);
    }
    progress.finish();
    let ingest_s = t1.elapsed().as_secs_f64();
    let manifest_json = serde_json::to_string_pretty(&manifest)?;
    store.put_state(MARKER, "", &mut |w| w.write_all(manifest_json.as_bytes()))?;
    let quality = winsignal_ingest::quality::report(&store)?;
    observer.step(DemoStep::Ingested {
        manifest: &manifest,
        loads: &loads,
        quality: &quality,
        seconds: ingest_s,
    });

    let t2 = Instant::now();
    let computed =
        crate::pipeline::compute(&store, winsignal_features::default_catalog(), progress)?;
    progress.finish();
    observer.step(DemoStep::Computed {
        computed: &computed,
        seconds: t2.elapsed().as_secs_f64(),
    });

    let t3 = Instant::now();
    let discovery = crate::insights::discovery(&computed, winsignal_discover::Options::default())?;
    observer.step(DemoStep::Discovered {
        discovery: &discovery,
        seconds: t3.elapsed().as_secs_f64(),
    });

    // The win model, trained as `winsignal train` trains it (the same evidence, options and seed, so
    // the same model), so that `score` and `explain` work right after the demo.
    let t4 = Instant::now();
    let evidence = crate::scoring::evidence_discovery(&computed)?;
    let trained = match crate::models::train_and_save(
        &store,
        &computed,
        &evidence,
        &TrainOptions::default(),
        &crate::audit::local_actor(),
    ) {
        Ok(t) => Some(t),
        Err(e) if e.downcast_ref::<winsignal_score::Error>().is_some() => {
            observer.step(DemoStep::NoModel {
                reason: format!("{e:#}"),
            });
            None
        }
        Err(e) => return Err(e),
    };
    let mut scored = None;
    if let Some(t) = &trained {
        observer.step(DemoStep::Trained {
            trained: t,
            seconds: t4.elapsed().as_secs_f64(),
        });
        let snapshot = store.snapshot()?;
        let engine = crate::pipeline::replay(&store, &*snapshot, computed.ctx.clone(), progress)?;
        progress.finish();
        let (as_of, deals, _) =
            crate::scoring::scores(&engine, &computed.catalog, &t.model, None, None)?;
        observer.step(DemoStep::Scored {
            as_of,
            deals: &deals,
        });
        scored = Some((as_of, deals));
    }

    let cards = crate::coaching::all_scorecards(&store, &computed, &discovery)?;
    observer.step(DemoStep::Coached { cards: &cards });

    let forecast = match &scored {
        Some((as_of, deals)) => crate::report::forecast_part(&store, &computed.ctx, *as_of, deals)?,
        None => None,
    };
    let report = data.join("report.html");
    crate::report::write(
        &report,
        &discovery,
        &computed,
        &quality,
        &crate::report::Scoring {
            model: match (&trained, &scored) {
                (Some(t), Some((as_of, deals))) => Some(crate::report::ModelScores {
                    id: &t.id,
                    model: &t.model,
                    scores: Ok((*as_of, deals)),
                }),
                _ => None,
            },
            cards: &cards,
            forecast,
        },
    )?;
    observer.step(DemoStep::Reported { path: &report });
    Ok(())
}
