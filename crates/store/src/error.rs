//! Store errors: the store's files are unreadable or damaged (external), or a caller broke a contract (bug).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the workspace at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the embedded database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("event segment {path} is damaged: {reason}")]
    CorruptSegment { path: PathBuf, reason: String },
    #[error("stored record {kind}/{id} cannot be decoded: {reason}")]
    CorruptRecord {
        kind: String,
        id: String,
        reason: String,
    },
    #[error("{path} was written by a newer winsignal (store format {found}, this build reads {supported})")]
    NewerFormat {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("internal error in the store: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}
