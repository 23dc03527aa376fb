//! Why scoring could not be done.

/// Errors of training, scoring and coaching.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The data cannot support what was asked (too few closed deals, one class only, …).
    #[error("{0}")]
    NotEnoughData(String),
    /// A learner refused its input.
    #[error("the model could not be fitted: {0}")]
    Learn(String),
    /// A saved model does not fit the data it is applied to.
    #[error("{0}")]
    Mismatch(String),
}

pub type Result<T> = std::result::Result<T, Error>;
