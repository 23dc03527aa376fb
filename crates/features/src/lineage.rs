//! Lineage: the items behind a feature value, each traced to its source row.

use crate::catalog::Definition;
use crate::engine::Engine;
use crate::eval::{evaluate, Source, View};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use winsignal_core::{Kind, Ts};
use winsignal_store::{LoadInfo, RowOrigin, StoreRead};

/// One item a value was computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub kind: Kind,
    /// The record id, or the event's key in the store.
    pub id: Option<String>,
    /// The event's sequence number in the store (events only).
    pub seq: Option<u64>,
    /// When the item happened (or was created, for tickets and deals).
    pub at: Option<Ts>,
    /// Its weight in the value: 1 for counted items, the decay weight for decayed windows, −1 for items in
    /// the comparison window of a growth, 0 for items that counted against (e.g. a meeting not followed up).
    pub weight: f64,
    pub origin: Option<Origin>,
}

/// Where a contribution came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    pub source: String,
    pub file: String,
    pub line: u64,
    pub load_id: u64,
    pub source_record_id: Option<String>,
}

/// A value and everything it was computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub value: f64,
    pub behaviour: Option<bool>,
    pub contributions: Vec<Contribution>,
}

/// Evaluates `def` for `opp` at `as_of` and collects what it read (without provenance yet).
pub fn explain(engine: &Engine, def: &Definition, opp: u32, as_of: Ts) -> Explanation {
    let ctx = engine.context();
    let view = View::new(engine, opp, as_of.0);
    let mut out: Vec<Contribution> = Vec::new();
    let value = evaluate(def, &view, &mut |src, weight| {
        let (kind, id, seq, at) = match src {
            Source::Activity(a) => (Kind::Activities, None, Some(a.seq), Some(Ts(a.at))),
            Source::ProductEvent(u) => (Kind::ProductEvents, None, Some(u.seq), Some(Ts(u.at))),
            Source::Touch(t) => (Kind::MarketingTouches, None, Some(t.seq), Some(Ts(t.at))),
            Source::Ticket(t) => (
                Kind::SupportTickets,
                Some(t.id.clone()),
                None,
                Some(Ts(t.created)),
            ),
            Source::Call(c) => (
                Kind::Transcripts,
                Some(c.id.clone()),
                None,
                Some(Ts(c.started)),
            ),
            Source::Opportunity(o) => {
                let oi = &ctx.opps[o as usize];
                (Kind::Opportunities, Some(oi.id.clone()), None, oi.closed)
            }
            Source::Attribute => {
                let oi = &ctx.opps[opp as usize];
                (
                    Kind::Opportunities,
                    Some(oi.id.clone()),
                    None,
                    Some(oi.created),
                )
            }
        };
        out.push(Contribution {
            kind,
            id,
            seq,
            at,
            weight,
            origin: None,
        });
    });
    Explanation {
        value,
        behaviour: def.threshold.and_then(|t| t.test(value)),
        contributions: out,
    }
}

/// Fills in the source row of every contribution: the events by their sequence numbers (reading only
/// the part of the log that holds them), a lookup per record otherwise.
pub fn attach_origins(
    store: &dyn StoreRead,
    contributions: &mut [Contribution],
) -> winsignal_store::Result<()> {
    let loads: HashMap<u64, LoadInfo> =
        store.loads()?.into_iter().map(|l| (l.load_id, l)).collect();
    let origin = |o: &RowOrigin| {
        let l = loads.get(&o.load_id);
        Origin {
            source: l.map_or_else(String::new, |l| l.source.clone()),
            file: l.map_or_else(String::new, |l| l.path.clone()),
            line: o.line,
            load_id: o.load_id,
            source_record_id: o.source_record_id.clone(),
        }
    };
    let mut wanted: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, c) in contributions.iter().enumerate() {
        if let Some(seq) = c.seq {
            wanted.entry(seq).or_default().push(i);
        }
    }
    if !wanted.is_empty() {
        let seqs: Vec<u64> = wanted.keys().copied().collect();
        for ev in store.events_by_seq(&seqs)? {
            if let Some(idx) = wanted.get(&ev.seq) {
                for &i in idx {
                    contributions[i].origin = Some(origin(&ev.origin));
                    contributions[i].id = Some(ev.key.clone());
                }
            }
        }
    }
    for c in contributions.iter_mut().filter(|c| c.seq.is_none()) {
        if let Some(id) = &c.id {
            if let Some(r) = store.versions(c.kind, id)?.into_iter().find(|r| r.current) {
                c.origin = Some(origin(&r.origin));
            }
        }
    }
    Ok(())
}
