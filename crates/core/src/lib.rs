//! The vocabulary every winsignal crate shares: timestamps, ids, the canonical records and events, and
//! the identity rules that join them. Depends on nothing of ours and does no IO.

pub mod error;
pub mod hash;
pub mod identity;
pub mod parallel;
pub mod records;
pub mod resolve;
pub mod rng;
pub mod sfdc;
pub mod time;

pub use error::{CoreError, Result};
pub use records::*;
pub use time::Ts;
