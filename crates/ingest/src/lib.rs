//! Data in: connectors (canonical CSV/JSONL, Salesforce exports, Segment messages, any CSV through a
//! mapping file), row validation and quarantine, identity resolution and the quality report.
//! Only this crate knows file formats.

pub mod build;
pub mod error;
pub mod load;
pub mod loud;
pub mod overlay;
pub mod provenance;
pub mod quality;
pub mod read;
pub mod resolve;
pub mod sources;

use std::path::{Path, PathBuf};

use serde::Serialize;
use winsignal_core::{Kind, Ts};
use winsignal_store::Store;

pub use error::{IngestError, Result};
pub use load::{LoadReport, Progress};
pub use sources::Format;

use load::{LoadContext, LoadRecipe, SeenIds};
use sources::{mapping::LoadedMapping, salesforce::SalesforceConfig, Job};

/// One `winsignal ingest` invocation.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub path: PathBuf,
    pub format: Option<Format>,
    pub kind: Option<Kind>,
    pub mapping: Option<PathBuf>,
    /// Salesforce custom-field config.
    pub salesforce_config: Option<PathBuf>,
    /// Overrides the source name (single-file loads only).
    pub source: Option<String>,
    /// The clock: timestamps later than this are refused.
    pub now: Ts,
    /// Refuse the whole ingest (nothing committed) when any load has a warning: a large share of its
    /// rows quarantined for one field, or of the deals of one outcome (see [`loud`]).
    pub strict: bool,
    /// Rows that did not come from a user's file (a request to the server, written to a temporary
    /// file to be read by the same code): what the loads record instead of the file's path and source.
    pub origin: Option<Origin>,
}

/// Where the rows of an ingest came from, when not from the file read (see [`IngestRequest::origin`]).
#[derive(Debug, Clone)]
pub struct Origin {
    /// Put before each load's source name: `api` makes `api:canonical:activities`.
    pub source_prefix: String,
    /// Recorded as each load's path, followed by `/` and the file's name: lineage then leads to
    /// `<label>/activities.jsonl`, line N (the request's Nth item of that kind).
    pub label: String,
}

impl IngestRequest {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        IngestRequest {
            path: path.into(),
            format: None,
            kind: None,
            mapping: None,
            salesforce_config: None,
            source: None,
            now: Ts::now(),
            strict: false,
            origin: None,
        }
    }
}

/// What an ingest did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub loads: Vec<LoadReport>,
    /// Files in the given folder that no connector reads; listed, not loaded.
    pub skipped_files: Vec<String>,
}

/// Reads everything the request names into the store as one atomic batch: either every load is
/// committed or nothing is (a missing required column anywhere refuses the whole batch).
pub fn ingest(
    store: &dyn Store,
    req: &IngestRequest,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<IngestReport> {
    let mapping = req
        .mapping
        .as_deref()
        .map(LoadedMapping::from_file)
        .transpose()?;
    let sf_config = match &req.salesforce_config {
        Some(p) => SalesforceConfig::from_file(p)?,
        None => SalesforceConfig::default(),
    };
    let (jobs, skipped) = sources::plan(&req.path, req.format, req.kind, mapping.is_some())?;
    if req.source.is_some() && jobs.len() > 1 {
        return Err(IngestError::BadInput {
            path: req.path.clone(),
            message: "--source names one source; this path holds several files".into(),
        });
    }
    let mut batch = store.begin()?;
    let mut loads = Vec::new();
    let mut ids = SeenIds::default();
    for job in &jobs {
        let (format, default_source) = match job {
            Job::Canonical { kind, .. } => (Format::Canonical, format!("canonical:{kind}")),
            Job::Salesforce { object, .. } => (Format::Salesforce, format!("salesforce:{object}")),
            Job::Segment { .. } => (Format::Segment, "segment".to_string()),
            Job::Mapping { .. } => (
                Format::Mapping,
                mapping
                    .as_ref()
                    .map_or_else(|| "mapping".to_string(), LoadedMapping::source_name),
            ),
        };
        let source = req.source.clone().unwrap_or(default_source);
        let (source, shown) = match &req.origin {
            Some(o) => (
                format!("{}:{source}", o.source_prefix),
                format!(
                    "{}/{}",
                    o.label,
                    job.path()
                        .file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                ),
            ),
            None => (source, job.path().display().to_string()),
        };
        // Everything besides the file's bytes that shapes what the load makes of them.
        let recipe = LoadRecipe::new(format.as_str());
        let recipe = match job {
            Job::Canonical { path, kind } => recipe
                .with("kind", kind.as_str())
                .with("syntax", if is_jsonl(path) { "jsonl" } else { "csv" }),
            Job::Salesforce { object, path } => {
                let mut recipe = recipe
                    .with("object", object.as_str())
                    .with_file("salesforce_config", req.salesforce_config.as_deref())?;
                // Files read with this one (EmailMessage.csv beside Task.csv, …).
                for (companion, file) in sources::salesforce::companion_files(path, object) {
                    recipe = recipe.with_file(companion, Some(&file))?;
                }
                recipe
            }
            Job::Segment { .. } => recipe,
            Job::Mapping { .. } => {
                let recipe = recipe.with_file("mapping", req.mapping.as_deref())?;
                // Which column feeds which field (implied by the mapping's bytes): lets a later
                // "no such attribute" error say where a consumed column went.
                match &mapping {
                    Some(m) => recipe.with("fields", m.field_columns()),
                    None => recipe,
                }
            }
        };
        let mut forward = |p: Progress<'_>| progress(p);
        let mut ctx = LoadContext::start(
            batch.as_mut(),
            store,
            &source,
            recipe,
            job.path(),
            shown,
            req.now,
            &mut ids,
            &mut forward,
        )?;
        let columns = match job {
            Job::Canonical { path, kind } => {
                if is_jsonl(path) {
                    sources::canonical::load_jsonl(&mut ctx, path, *kind)?
                } else {
                    sources::canonical::load_csv(&mut ctx, path, *kind)?
                }
            }
            Job::Salesforce { path, object } => {
                sources::salesforce::load_file(&mut ctx, path, object, &sf_config)?
            }
            Job::Segment { path } => sources::segment::load(&mut ctx, path)?,
            Job::Mapping { path } => match &mapping {
                Some(m) => sources::mapping::load(&mut ctx, path, m)?,
                None => {
                    return Err(IngestError::BadInput {
                        path: path.clone(),
                        message: "no mapping given".into(),
                    })
                }
            },
        };
        loads.push(ctx.finish(&columns)?);
    }
    if req.strict {
        let warnings: Vec<String> = loads
            .iter()
            .flat_map(|l| {
                l.warnings
                    .iter()
                    .map(move |w| format!("{}: {}", l.path, w.message))
            })
            .collect();
        if !warnings.is_empty() {
            // Dropping the batch discards every load of this ingest.
            return Err(IngestError::Strict { warnings });
        }
    }
    batch.commit()?;
    Ok(IngestReport {
        loads,
        skipped_files: skipped.iter().map(|p| p.display().to_string()).collect(),
    })
}

fn is_jsonl(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"))
}
