//! Store errors: the store's files are unreadable or damaged (external), or a caller broke a contract (bug).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the workspace at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process holds the workspace's write lock (an ingest, a training run saving its model…)
    /// and did not release it within the wait.
    #[error("another process is writing the workspace at {path} (waited {waited_s} s for it to finish); try again when it is done, or set WINSIGNAL_LOCK_WAIT to wait longer")]
    Busy { path: PathBuf, waited_s: u64 },
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

/// Whether SQLite refused because another connection holds a lock it needs.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}
