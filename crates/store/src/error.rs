//! Store errors, the same for every backend: what went wrong in words a user can act on, and an
//! [`ErrorKind`] a caller can branch on without knowing which database is underneath.

use std::path::PathBuf;

/// What kind of failure a [`StoreError`] is, so that callers can react without matching on a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The store is there but cannot be used now: another writer holds its lock. Trying again later
    /// can succeed.
    Unavailable,
    /// Stored bytes are damaged (a segment, a record, a named state whose checksum does not match).
    /// Trying again gives the same error; the data must be rebuilt or restored.
    Corrupt,
    /// A write conflicted with a change another writer committed at the same time; the write changed
    /// nothing and can be retried from the start.
    Conflict,
    /// The workspace was written by a newer winsignal.
    Incompatible,
    /// The backend or the file system failed (a full disk, permissions, a database error).
    Backend,
    /// A bug: the store or its caller broke a contract.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use the workspace at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Another process (or thread) holds the workspace's write lock (an ingest, a training run saving
    /// its model…) and did not release it within the wait.
    #[error("another process is writing the workspace at {path} (waited {waited_s} s for it to finish); try again when it is done, or set WINSIGNAL_LOCK_WAIT to wait longer")]
    Busy { path: PathBuf, waited_s: u64 },
    /// The database behind the store failed; `message` is the backend's own words.
    #[error("the store at {path} failed: {message}")]
    Backend { path: PathBuf, message: String },
    /// A write lost a race with another writer's commit.
    #[error("a write to the store at {path} conflicted with another writer's change ({message}); run the command again")]
    Conflict { path: PathBuf, message: String },
    /// The database file itself is damaged.
    #[error("the store database at {path} is damaged ({message}); restore the workspace from a backup or rebuild it by loading the files again")]
    CorruptDatabase { path: PathBuf, message: String },
    #[error("event segment {path} is damaged: {reason}")]
    CorruptSegment { path: PathBuf, reason: String },
    #[error("stored record {kind}/{id} cannot be decoded: {reason}")]
    CorruptRecord {
        kind: String,
        id: String,
        reason: String,
    },
    /// A named state (a checkpoint, the registry…) whose bytes are not what was written.
    #[error("saved state {name:?} at {path} is damaged: {reason}")]
    CorruptState {
        name: String,
        path: PathBuf,
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

impl StoreError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Busy { .. } => ErrorKind::Unavailable,
            StoreError::Conflict { .. } => ErrorKind::Conflict,
            StoreError::CorruptDatabase { .. }
            | StoreError::CorruptSegment { .. }
            | StoreError::CorruptRecord { .. }
            | StoreError::CorruptState { .. } => ErrorKind::Corrupt,
            StoreError::NewerFormat { .. } => ErrorKind::Incompatible,
            StoreError::Io { .. } | StoreError::Backend { .. } => ErrorKind::Backend,
            StoreError::Internal(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.into();
    move |source| StoreError::Io { path, source }
}
