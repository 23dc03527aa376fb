//! The connector registry: which connector reads a path, and the loads it plans. Each connector lives in
//! its own folder here and passes the same compliance tests (tests/compliance.rs).

pub mod canonical;
pub mod mapping;
pub mod salesforce;
pub mod segment;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use winsignal_core::Kind;

use crate::error::{IngestError, Result};

/// The version of the connectors' reading rules, part of every load's identity. Bump it whenever a
/// connector reads the same bytes into different records or refusals (a new field, a changed rule).
pub const CONNECTOR_VERSION: u32 = 3;

/// A connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Canonical,
    Salesforce,
    Segment,
    Mapping,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Canonical => "canonical",
            Format::Salesforce => "salesforce",
            Format::Segment => "segment",
            Format::Mapping => "mapping",
        }
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "canonical" => Ok(Format::Canonical),
            "salesforce" | "sfdc" => Ok(Format::Salesforce),
            "segment" => Ok(Format::Segment),
            "mapping" => Ok(Format::Mapping),
            other => Err(format!(
                "unknown format {other:?}; expected canonical, salesforce, segment or mapping"
            )),
        }
    }
}

/// What one load will read.
#[derive(Debug, Clone)]
pub enum Job {
    Canonical { path: PathBuf, kind: Kind },
    Salesforce { path: PathBuf, object: String },
    Segment { path: PathBuf },
    Mapping { path: PathBuf },
}

impl Job {
    pub fn path(&self) -> &Path {
        match self {
            Job::Canonical { path, .. }
            | Job::Salesforce { path, .. }
            | Job::Segment { path }
            | Job::Mapping { path } => path,
        }
    }
}

fn is_jsonl(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"))
}

/// The kinds a canonical file holds: every kind but product users, which come from Segment's
/// identify and group messages.
pub fn canonical_kinds() -> impl Iterator<Item = Kind> {
    Kind::ALL.into_iter().filter(|k| *k != Kind::ProductUsers)
}

fn kinds_list() -> String {
    canonical_kinds()
        .map(Kind::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plans the loads for a path. Returns the jobs and the files in a folder that no connector reads.
pub fn plan(
    path: &Path,
    format: Option<Format>,
    kind: Option<Kind>,
    has_mapping: bool,
) -> Result<(Vec<Job>, Vec<PathBuf>)> {
    if !path.exists() {
        return Err(IngestError::BadInput {
            path: path.into(),
            message: "no such file or folder".into(),
        });
    }
    if !path.is_dir() && !path.is_file() {
        return Err(crate::read::not_regular(path));
    }
    let format = match (has_mapping, format) {
        (true, _) => Format::Mapping,
        (false, Some(f)) => f,
        (false, None) if path.is_dir() && !salesforce::plan(path)?.0.is_empty() => {
            Format::Salesforce
        }
        (false, None) => Format::Canonical,
    };
    match format {
        Format::Mapping => {
            if path.is_dir() {
                return Err(IngestError::BadInput {
                    path: path.into(),
                    message: "a mapping reads one CSV file, not a folder".into(),
                });
            }
            Ok((vec![Job::Mapping { path: path.into() }], vec![]))
        }
        Format::Segment => {
            if path.is_dir() {
                let mut jobs = Vec::new();
                let mut other = Vec::new();
                for p in sorted_files(path, &mut other)? {
                    if is_jsonl(&p) {
                        jobs.push(Job::Segment { path: p });
                    } else {
                        other.push(p);
                    }
                }
                return Ok((jobs, other));
            }
            Ok((vec![Job::Segment { path: path.into() }], vec![]))
        }
        Format::Salesforce => {
            if !path.is_dir() {
                let object = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                let object = salesforce::OBJECTS
                    .iter()
                    .find(|o| o.eq_ignore_ascii_case(object))
                    .ok_or_else(|| IngestError::BadInput {
                        path: path.into(),
                        message: format!(
                            "a Salesforce export file must be named after its object ({})",
                            salesforce::OBJECTS.join(", ")
                        ),
                    })?;
                return Ok((
                    vec![Job::Salesforce {
                        path: path.into(),
                        object: (*object).into(),
                    }],
                    vec![],
                ));
            }
            let (files, other) = salesforce::plan(path)?;
            if files.is_empty() {
                return Err(IngestError::BadInput {
                    path: path.into(),
                    message: format!(
                        "no Salesforce export files here (expected any of {}.csv)",
                        salesforce::OBJECTS.join(".csv, ")
                    ),
                });
            }
            Ok((
                files
                    .into_iter()
                    .map(|(object, path)| Job::Salesforce { path, object })
                    .collect(),
                other,
            ))
        }
        Format::Canonical => {
            if kind.is_some_and(|k| !canonical_kinds().any(|c| c == k)) {
                return Err(IngestError::BadInput {
                    path: path.into(),
                    message: "product_users come from Segment identify/group messages (--format segment), not from a canonical file".into(),
                });
            }
            if !path.is_dir() {
                let k = kind
                    .or_else(|| canonical::kind_from_file_name(path))
                    .ok_or_else(|| IngestError::UnknownKind {
                        path: path.into(),
                        kinds: kinds_list(),
                    })?;
                return Ok((
                    vec![Job::Canonical {
                        path: path.into(),
                        kind: k,
                    }],
                    vec![],
                ));
            }
            let mut found: Vec<(Kind, PathBuf)> = Vec::new();
            let mut other = Vec::new();
            for p in sorted_files(path, &mut other)? {
                match canonical::kind_from_file_name(&p) {
                    Some(k) if kind.is_none_or(|want| want == k) => found.push((k, p)),
                    _ => other.push(p),
                }
            }
            found.sort_by_key(|(k, p)| (*k, p.clone()));
            if found.is_empty() {
                return Err(IngestError::BadInput {
                    path: path.into(),
                    message: format!(
                        "no canonical files here (name them after a kind: {})",
                        kinds_list()
                    ),
                });
            }
            Ok((
                found
                    .into_iter()
                    .map(|(kind, path)| Job::Canonical { path, kind })
                    .collect(),
                other,
            ))
        }
    }
}

/// The regular files of a folder, hidden ones aside, in name order. A FIFO, socket or device in it is
/// returned in `other`, listed as not read rather than opened (opening a FIFO waits for a writer).
fn sorted_files(dir: &Path, other: &mut Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(crate::error::read_err(dir))? {
        let p = e.map_err(crate::error::read_err(dir))?.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden || p.is_dir() {
            continue;
        }
        if p.is_file() {
            out.push(p);
        } else {
            other.push(p);
        }
    }
    out.sort();
    Ok(out)
}
