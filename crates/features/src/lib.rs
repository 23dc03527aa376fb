//! Behaviours and features: a declarative, versioned catalog computed by one event-time engine that both
//! replays stored history and applies events one at a time, read at landmarks through point-in-time views.
//!
//! - [`catalog`]: the definition language (TOML) and the shipped default catalog.
//! - [`context`]: the entities (deals, accounts, contacts, …) with dense indexes; they can change at any time.
//! - [`engine`]: the state and how entities and events enter it (replay, live, catch-up, checkpoint).
//! - [`eval`]: definitions evaluated at a landmark; reads only what was known before it.
//! - [`snapshot`]: landmarks, snapshots, controls, outcomes, adoption.
//! - [`graph`]: the account graph and multi-hop features.
//! - [`levels`]: categorical definitions split into one yes/no definition per level of the data.
//! - [`lineage`]: the events and source rows behind a value.
//! - [`memo`]: definition values remembered per deal, so a rescore reads only the new events.
//! - [`seniority`]: the job-title classifier.

pub mod catalog;
pub mod context;
pub mod engine;
pub mod eval;
pub mod graph;
pub mod levels;
pub mod lineage;
pub mod memo;
pub mod registry;
pub mod seniority;
pub mod snapshot;

pub use catalog::{default_catalog, Catalog, CatalogError, Definition};
pub use context::Context;
pub use engine::{Engine, Observation};
pub use snapshot::{Landmark, Snapshot};
