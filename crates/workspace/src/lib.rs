//! winsignal's application layer: everything done with a workspace, called alike by the CLI (which only
//! parses arguments and renders) and by the server.
//!
//! - [`pipeline`]: the engine state for the store as it is now (checkpoint or replay) and the feature
//!   pass every analysis reads ([`pipeline::compute`]).
//! - [`catalogs`]: a catalog made concrete for a workspace; [`suggest`]: a starting catalog.
//! - [`models`]: training and saving the win model. [`registry`]: its stages (candidate, approved,
//!   active, retired), the two-person rule, the gate and rollback, and which model is active.
//! - [`scoring`]: open deals scored and explained, next-best-action evidence, the order of risk.
//! - [`access`]: users, their hashed tokens and roles, and the row scope each may see.
//! - [`live`]: what a long-running process keeps up to date: the engine, the active model, the open
//!   deals' scores, and the score changes each commit makes; read through the caller's scope.
//! - [`review`]: the review queue of high-impact score changes and the reviewers' decisions.
//! - [`coaching`]: rep scorecards. [`report`]: the HTML report. [`demo`]: the demo, step by step.

pub mod access;
pub mod alerts;
pub mod audit;
pub mod catalogs;
pub mod coaching;
pub mod demo;
pub mod fault;
pub mod feedback;
pub mod files;
pub mod forecast;
pub mod hooks;
pub mod insights;
pub mod lineage;
pub mod live;
pub mod models;
pub mod monitor;
pub mod pipeline;
pub mod registry;
pub mod report;
pub mod review;
pub mod scoring;
pub mod suggest;
pub mod text;
pub mod workspace;

pub use pipeline::{compute, compute_at, replay, Computed};

/// Told how long work is going: a progress bar on a terminal, nothing otherwise.
pub trait Progress {
    /// A phase that is not a file read: `done` of `total` units.
    fn phase(&mut self, message: &str, done: u64, total: u64);
    /// A file being read by ingest.
    fn file(&mut self, p: winsignal_ingest::Progress<'_>) {
        let _ = p;
    }
    /// The current phase is over (a bar is cleared).
    fn finish(&mut self) {}
}

/// Why a step was refused, for callers that answer differently (the API's status codes): the model
/// registry's and the review queue's steps return it.
#[derive(Debug)]
pub enum Refusal {
    /// No such model or item (or a model id prefix that is not unique), or none the caller may see.
    NotFound(String),
    /// A rule refuses it in the current state: the two-person rule, the gate, a model not approved,
    /// nothing to roll back to, an item decided already, a role that may not review.
    Rule(String),
    /// The request itself is incomplete or malformed (a missing reason, an unknown reason code).
    BadRequest(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotFound(m) | Refusal::Rule(m) | Refusal::BadRequest(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Refusal {}

/// No progress shown (tests, the server).
pub struct Silent;

impl Progress for Silent {
    fn phase(&mut self, _: &str, _: u64, _: u64) {}
}
