//! The live state a long-running process keeps: the engine, the active win model and every open deal's
//! score, brought up to date with what the store has committed since ([`Live::refresh`]). The server
//! holds one; every read it answers goes through [`Live::deals`] and [`Live::deal`], which take the
//! caller's [`Scope`], so row access is enforced here and not in the HTTP layer.
//!
//! A deal's score is as of its last change: when an event touches a deal, the deal is rescored at the
//! end of the data as it then stands (the latest time anywhere in it, as `winsignal score` does), and
//! the score says which time that was (`as_of`). Deals nothing touched keep their score and its time.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use winsignal_core::Ts;
use winsignal_features::{snapshot, Catalog, Engine};
use winsignal_score::explain::DealScore;
use winsignal_score::model::WinModel;
use winsignal_store::{LogPosition, Store};

use crate::access::Scope;
use crate::Silent;

/// The active win model as the live state applies it.
struct Applied {
    id: String,
    model: WinModel,
    /// The model's catalog made concrete with the levels it was trained on.
    catalog: Catalog,
}

/// One deal's score moving: from what, to what, and the factors that moved it most.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreChange {
    pub opportunity_id: String,
    pub rep_id: Option<String>,
    pub model_id: String,
    pub as_of: Ts,
    /// `None` for a deal scored for the first time.
    pub before: Option<f64>,
    /// `None` for a deal no longer open (closed, or gone).
    pub after: Option<f64>,
    /// The terms whose contribution changed, by how much (log-odds), largest change first.
    pub moved_by: Vec<FactorMove>,
}

/// A term's contribution before and after a change.
#[derive(Debug, Clone, Serialize)]
pub struct FactorMove {
    pub term: String,
    pub logit_change: f64,
}

/// Which deals to list.
#[derive(Debug, Clone, Default)]
pub struct DealFilter {
    pub rep: Option<String>,
    pub stage: Option<String>,
    /// At most this P(win) (the riskiest deals).
    pub max_p_win: Option<f64>,
}

/// The live state: the engine over everything committed up to [`Live::position`], and the scores.
pub struct Live {
    engine: Engine,
    position: LogPosition,
    model: Option<Applied>,
    scores: BTreeMap<String, DealScore>,
}

impl Live {
    /// The state of the store as it is now: the engine from its checkpoint (or a replay), the active win
    /// model, and every open deal scored with it (none when no model is trained yet).
    pub fn open(store: &dyn Store) -> Result<Live> {
        let snapshot = store.snapshot()?;
        let (ctx, checkpoint) = crate::pipeline::entities(store, &*snapshot)?;
        let model = match crate::models::active_win_model(&*snapshot)? {
            Some((id, model)) => {
                let declared = crate::pipeline::catalog_for_model(None, &id, &model)?;
                let catalog = crate::catalogs::resolve_for(
                    &*snapshot,
                    &declared,
                    &ctx,
                    &model.trained_on.versions,
                )?;
                Some(Applied { id, model, catalog })
            }
            None => None,
        };
        let position = snapshot.position()?;
        let engine = crate::pipeline::replay_with(store, &*snapshot, ctx, checkpoint, &mut Silent)?;
        let mut live = Live {
            engine,
            position,
            model,
            scores: BTreeMap::new(),
        };
        live.scores = live
            .score(None)?
            .into_iter()
            .map(|d| (d.opportunity_id.clone(), d))
            .collect();
        Ok(live)
    }

    /// The log position the state is of.
    pub fn position(&self) -> LogPosition {
        self.position
    }

    /// The id of the model the scores are from, if any is trained.
    pub fn model_id(&self) -> Option<&str> {
        self.model.as_ref().map(|m| m.id.as_str())
    }

    /// Applies what the store committed since [`Live::position`] and rescores the deals it touched.
    /// Returns the score changes, in opportunity-id order.
    pub fn refresh(&mut self, store: &dyn Store) -> Result<Vec<ScoreChange>> {
        let snapshot = store.snapshot()?;
        let position = snapshot.position()?;
        if position == self.position {
            return Ok(Vec::new());
        }
        let touched = self.engine.catch_up(&*snapshot, self.position)?;
        self.position = position;
        let ctx = self.engine.context();
        let mut ids: Vec<String> = touched
            .deals
            .iter()
            .filter_map(|&o| ctx.opps.get(o as usize).map(|x| x.id.clone()))
            .collect();
        // Slots of deals that arrived later are not in id order.
        ids.sort_unstable();
        if ids.is_empty() || self.model.is_none() {
            return Ok(Vec::new());
        }
        let rescored: BTreeMap<String, DealScore> = self
            .score(Some(&ids))?
            .into_iter()
            .map(|d| (d.opportunity_id.clone(), d))
            .collect();
        let model_id = self.model_id().unwrap_or_default().to_string();
        let mut changes = Vec::new();
        for id in ids {
            let before = self.scores.remove(&id);
            let after = rescored.get(&id).cloned();
            let change = ScoreChange {
                rep_id: after
                    .as_ref()
                    .or(before.as_ref())
                    .and_then(|d| d.rep_id.clone()),
                model_id: model_id.clone(),
                as_of: after
                    .as_ref()
                    .or(before.as_ref())
                    .map_or(Ts(0), |d| d.as_of),
                before: before.as_ref().map(|d| d.p_win),
                after: after.as_ref().map(|d| d.p_win),
                moved_by: moves(before.as_ref(), after.as_ref()),
                opportunity_id: id.clone(),
            };
            if let Some(d) = after {
                self.scores.insert(id, d);
            }
            if change.before != change.after || !change.moved_by.is_empty() {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    /// Open deals the scope allows, riskiest first (lowest P(win), then by id).
    pub fn deals(&self, scope: &Scope, filter: &DealFilter) -> Vec<&DealScore> {
        let mut out: Vec<&DealScore> = self
            .scores
            .values()
            .filter(|d| scope.allows(d.rep_id.as_deref()))
            .filter(|d| {
                filter
                    .rep
                    .as_deref()
                    .is_none_or(|r| d.rep_id.as_deref() == Some(r))
            })
            .filter(|d| {
                filter
                    .stage
                    .as_deref()
                    .is_none_or(|s| d.stage.as_deref() == Some(s))
            })
            .filter(|d| filter.max_p_win.is_none_or(|m| d.p_win <= m))
            .collect();
        out.sort_by(|a, b| {
            a.p_win
                .total_cmp(&b.p_win)
                .then_with(|| a.opportunity_id.cmp(&b.opportunity_id))
        });
        out
    }

    /// One open deal's score, if the scope allows it. A deal outside the scope is as absent as one that
    /// does not exist: the caller cannot tell them apart.
    pub fn deal(&self, scope: &Scope, opportunity_id: &str) -> Option<&DealScore> {
        let long = winsignal_core::sfdc::to_18(opportunity_id);
        self.scores
            .get(opportunity_id)
            .or_else(|| self.scores.get(&long))
            .filter(|d| scope.allows(d.rep_id.as_deref()))
    }

    /// The open deals among `only` (every open deal when `None`), each at the end of the data.
    fn score(&self, only: Option<&[String]>) -> Result<Vec<DealScore>> {
        let Some(m) = &self.model else {
            return Ok(Vec::new());
        };
        let as_of = snapshot::horizon(&self.engine).plus_millis(1);
        let mut snaps = winsignal_score::dataset::open_snapshots(&self.engine, &m.catalog, as_of);
        if let Some(ids) = only {
            snaps.retain(|s| ids.binary_search(&s.opportunity_id).is_ok());
        }
        Ok(winsignal_score::explain::score(
            &m.model,
            &m.catalog,
            &self.engine,
            &snaps,
        )?)
    }
}

/// The terms whose contribution changed between two scores of a deal, largest change first.
fn moves(before: Option<&DealScore>, after: Option<&DealScore>) -> Vec<FactorMove> {
    let mut by_term: BTreeMap<&str, f64> = BTreeMap::new();
    for f in before.map_or(&[][..], |d| &d.factors[..]) {
        *by_term.entry(&f.term).or_default() -= f.logit;
    }
    for f in after.map_or(&[][..], |d| &d.factors[..]) {
        *by_term.entry(&f.term).or_default() += f.logit;
    }
    let mut out: Vec<FactorMove> = by_term
        .into_iter()
        .filter(|(_, change)| change.abs() > 1e-12)
        .map(|(term, logit_change)| FactorMove {
            term: term.to_string(),
            logit_change,
        })
        .collect();
    out.sort_by(|a, b| {
        b.logit_change
            .abs()
            .total_cmp(&a.logit_change.abs())
            .then_with(|| a.term.cmp(&b.term))
    });
    out
}
