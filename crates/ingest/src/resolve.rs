//! Identity resolution over a store: the rules live in `winsignal_core::resolve` (shared with the
//! feature engine); this reads the current entity records they need.

pub use winsignal_core::resolve::{domain_of, MatchMethod, Resolver};
use winsignal_core::Kind;
use winsignal_store::StoreRead;

use crate::error::Result;

/// A resolver over the current entity records of the store.
pub fn resolver_from_store(store: &(impl StoreRead + ?Sized)) -> Result<Resolver> {
    let mut records = Vec::new();
    for kind in Kind::ALL.into_iter().filter(|k| Resolver::reads(*k)) {
        records.extend(store.records(kind)?.into_iter().map(|r| r.record));
    }
    Ok(Resolver::from_records(&records))
}
