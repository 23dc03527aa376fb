//! Learners for winsignal, with no IO: an explainable boosting machine (an additive model whose every
//! prediction splits exactly into per-feature and per-pair contributions), a logistic-regression
//! baseline, probability calibration, and the metrics to judge them.
//!
//! - [`data`]: the column-oriented [`Dataset`] every learner takes.
//! - [`bins`]: binning learned on training data and stored in the model.
//! - [`ebm`]: the explainable boosting machine ([`ebm::fit`] → [`Ebm`]).
//! - [`logreg`]: the L2-regularised logistic baseline.
//! - [`calibration`]: logistic recalibration of a logit.
//! - [`metrics`]: AUC, Brier score, log loss, calibration slope and intercepts, reliability curve.

pub mod bins;
mod boost;
pub mod calibration;
pub mod data;
pub mod ebm;
pub mod error;
pub mod logreg;
pub mod metrics;
mod rng;
mod train;

pub use calibration::Calibration;
pub use data::{Dataset, Feature, FeatureValues, Value};
pub use ebm::{sigmoid, Ebm, EbmParams};
pub use error::{Error, Result};
pub use logreg::{LogReg, LogRegParams};
