//! Errors raised while interpreting user-given values.

/// A value the user gave could not be read as what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    #[error("expected {expected}, found {found:?}")]
    Unparseable { expected: String, found: String },
}

pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    pub fn unparseable(expected: impl Into<String>, found: impl Into<String>) -> Self {
        CoreError::Unparseable {
            expected: expected.into(),
            found: found.into(),
        }
    }
}
