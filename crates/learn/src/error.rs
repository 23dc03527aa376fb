//! Why a fit or a prediction gave no answer.

/// Errors of this crate. `Input` is something the caller can fix (the message names the feature, row
/// or parameter and says what was expected); `Fit` is a numerical failure on valid input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("invalid input: {0}")]
    Input(String),
    #[error("invalid parameter `{name}`: {reason}")]
    Param { name: &'static str, reason: String },
    #[error("the fit failed: {0}")]
    Fit(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn input(msg: impl Into<String>) -> Error {
    Error::Input(msg.into())
}

impl From<winsignal_stats::FitError> for Error {
    fn from(e: winsignal_stats::FitError) -> Error {
        Error::Fit(e.to_string())
    }
}
