//! Ingest errors. Row-level problems never become errors (they quarantine the row); these are the
//! failures that refuse a whole load, and they say which file, column or setting is at fault.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: required column `{column}` is missing for {kind} (found columns: {found}); nothing from this load was written")]
    MissingColumn {
        path: PathBuf,
        kind: String,
        column: String,
        found: String,
    },
    #[error("{path}: cannot tell which kind of records this is; name the file after a kind (e.g. activities.csv) or pass --kind ({kinds})")]
    UnknownKind { path: PathBuf, kinds: String },
    #[error("{path}: {message}")]
    BadInput { path: PathBuf, message: String },
    #[error("{path}, line {line}: {message}")]
    BadConfig {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("--strict: {} warning(s), so nothing from this ingest was written:\n  {}", warnings.len(), warnings.join("\n  "))]
    Strict { warnings: Vec<String> },
    #[error(transparent)]
    Store(#[from] winsignal_store::StoreError),
}

pub type Result<T> = std::result::Result<T, IngestError>;

pub(crate) fn read_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> IngestError {
    let path = path.into();
    move |source| IngestError::Read { path, source }
}

/// Turns a TOML parse error into a config error naming the line, the table it is in and the line's
/// text (the error itself names the unknown key and the keys expected).
pub(crate) fn toml_err(path: &std::path::Path, text: &str, e: &toml::de::Error) -> IngestError {
    let line = e.span().map_or(0, |s| {
        text[..s.start.min(text.len())].matches('\n').count() + 1
    });
    let mut message = e.message().trim_end().to_string();
    if line > 0 {
        let lines: Vec<&str> = text.lines().collect();
        let table = lines[..line.min(lines.len())]
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| l.starts_with('['));
        if let Some(t) = table {
            message.push_str(&format!(", in table {t}"));
        }
        if let Some(at) = lines
            .get(line - 1)
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
        {
            let shown: String = at.chars().take(100).collect();
            message.push_str(&format!(", at: {shown}"));
        }
    }
    IngestError::BadConfig {
        path: path.to_path_buf(),
        line,
        message,
    }
}
