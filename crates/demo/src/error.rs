//! Errors the demo generator can raise: all of them are failures to write the output files.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The output directory or one of the files in it could not be created or written.
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A CSV record could not be written.
    #[error("cannot write CSV file {path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    /// The manifest could not be serialised.
    #[error("cannot serialise the manifest {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The configuration cannot produce a company (for example a scale that is not a positive number).
    #[error("invalid demo configuration: {0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, DemoError>;
