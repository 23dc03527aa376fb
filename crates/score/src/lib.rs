//! Scoring and coaching, from the snapshots and the discovery of a workspace:
//! - [`dataset`]: the training table (closed deals at their landmarks) and the scoring table (open
//!   deals as of a date), with the time-based holdout split;
//! - [`model`]: the win model (an explainable boosting machine, calibrated), its baselines, its
//!   evaluation, and the versioned artifact that is saved;
//! - [`explain`]: per-deal scores with exact contributions, next-best actions and coaching prompts;
//! - [`reps`]: rep scorecards with partial pooling and coaching priorities;
//! - [`accounts`]: accounts ranked for outreach, with reasons.
//!
//! No IO: the CLI reads the store and writes the outputs.

pub mod accounts;
pub mod dataset;
pub mod error;
pub mod explain;
pub mod forecast;
pub mod model;
pub mod reps;

pub use error::{Error, Result};
