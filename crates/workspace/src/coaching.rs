//! Rep scorecards and coaching: every rep's card from a feature pass and a discovery, and the rep with
//! the most to gain.

use anyhow::Result;
use winsignal_core::sfdc::to_18;
use winsignal_core::{Kind, Record};
use winsignal_score::reps::{self, RepCard, RepRecord, Scorecards};
use winsignal_store::StoreRead;

use crate::pipeline::Computed;

/// The rep records of the store (current versions).
pub fn rep_records(store: &dyn StoreRead) -> Result<Vec<RepRecord>> {
    Ok(store
        .records(Kind::Reps)?
        .into_iter()
        .filter_map(|r| match r.record {
            Record::Reps(rep) => Some(RepRecord {
                rep_id: rep.rep_id,
                name: rep.name,
                team: rep.team,
                manager_id: rep.manager_id,
            }),
            _ => None,
        })
        .collect())
}

/// The same id, in either Salesforce form (18-character ids are case-insensitive).
pub fn same_id(a: &str, b: &str) -> bool {
    let (a, b) = (to_18(a), to_18(b));
    a == b || (a.len() == 18 && a.eq_ignore_ascii_case(&b))
}

/// Every rep's scorecard from computed snapshots and a discovery, as `winsignal reps` builds them (for
/// `demo` and the report).
pub fn all_scorecards(
    store: &dyn StoreRead,
    c: &Computed,
    discovery: &winsignal_discover::Discovery,
) -> Result<Scorecards> {
    let records = rep_records(store)?;
    let deals = reps::deals_from_snapshots(&c.snapshots);
    Ok(reps::scorecards(
        &c.catalog,
        &c.snapshots,
        discovery,
        &deals,
        &records,
    )?)
}

/// The rep whose top coaching priority could add the most wins on the open pipeline, with that
/// priority (ties: the lowest rep id); none when no rep has anything to be coached on.
pub fn most_to_gain(cards: &Scorecards) -> Option<(&RepCard, &reps::Priority)> {
    cards
        .reps
        .iter()
        .filter_map(|c| c.coaching.first().map(|p| (c, p)))
        .min_by(|(a, pa), (b, pb)| {
            pb.expected_extra_wins
                .total_cmp(&pa.expected_extra_wins)
                .then_with(|| a.rep_id.cmp(&b.rep_id))
        })
}
