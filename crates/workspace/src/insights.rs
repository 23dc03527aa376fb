//! Findings and rep scorecards as one computation: the feature pass, the discovery `winsignal discover`
//! runs (its options completed from the pass: the timing check, fields changed at close, deals never
//! observed), and every rep's scorecard from that same discovery. `discover`, `reps` and the server's
//! `/v1/findings` and `/v1/reps` all come from here, so they cannot disagree.

use anyhow::Result;
use winsignal_discover::{Discovery, Options};
use winsignal_features::Catalog;
use winsignal_score::reps::Scorecards;
use winsignal_store::Store;

use crate::access::Scope;
use crate::pipeline::Computed;
use crate::Progress;

/// The discovery of a feature pass with `options` (outcomes, landmarks, suspect columns) completed from
/// the pass.
pub fn discovery(c: &Computed, options: Options) -> Result<Discovery> {
    Ok(winsignal_discover::discover(
        &c.catalog,
        &c.snapshots,
        &Options {
            timing: c.timing.clone(),
            history_flags: c.history_flags.clone(),
            unobserved: c.unobserved.clone(),
            ..options
        },
    )?)
}

/// Findings and scorecards of the store as it is now.
pub struct Insights {
    /// The log position they are of.
    pub position: u64,
    pub discovery: Discovery,
    pub scorecards: Scorecards,
}

/// Runs the feature pass with `catalog`, the default discovery (every outcome, rules) and the
/// scorecards, on one snapshot of the store.
pub fn compute(
    store: &dyn Store,
    catalog: Catalog,
    progress: &mut dyn Progress,
) -> Result<Insights> {
    let snapshot = store.snapshot()?;
    let position = snapshot.position()?.0;
    let c = crate::pipeline::compute_at(store, &*snapshot, catalog, progress)?;
    let discovery = discovery(&c, Options::default())?;
    let scorecards = crate::coaching::all_scorecards(&*snapshot, &c, &discovery)?;
    // A team whose coaching focus changed with these findings waits for review, if the rule is set.
    crate::review::enqueue_coaching(store, &scorecards, &c.catalog.name)?;
    Ok(Insights {
        position,
        discovery,
        scorecards,
    })
}

/// The findings a caller of `scope` may see: everything but other reps' rows — the adoption of each
/// behaviour by rep keeps only the reps in scope, and the examples of deals left out of the analysis
/// (their ids) are shown only to a scope that holds every rep.
pub fn findings_for(discovery: &Discovery, scope: &Scope) -> Discovery {
    let mut d = discovery.clone();
    if !matches!(scope, Scope::All) {
        d.unobserved.examples.clear();
        for detail in &mut d.details {
            detail.reps.retain(|a| scope.allows(Some(&a.group)));
        }
    }
    d
}

/// The scorecards a caller of `scope` may see: the team-wide models and behaviours, and the cards of the
/// reps in scope.
pub fn scorecards_for(cards: &Scorecards, scope: &Scope) -> Scorecards {
    let mut c = cards.clone();
    c.reps.retain(|r| scope.allows(Some(&r.rep_id)));
    c
}
