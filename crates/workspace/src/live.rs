//! The live state a long-running process keeps: the engine, the active win model and every open deal's
//! score, brought up to date with what the store has committed since ([`Live::refresh`]). The server
//! holds one; every read it answers goes through [`Live::deals`] and [`Live::deal`], which take the
//! caller's [`Scope`], so row access is enforced here and not in the HTTP layer.
//!
//! A deal's score is as of its last change: when an event touches a deal, the deal is rescored at the
//! end of the data as it then stands (the latest time anywhere in it, as `winsignal score` does), and
//! the score says which time that was (`as_of`). Deals nothing touched keep their score and its time.
//! A rescore computes P(win) and the terms' contributions; the explanation (factors in words, actions,
//! close window) is made from the same snapshot only when the score moved or the deal is read.
//!
//! Every change is recorded in the store's journal [`SCORE_HISTORY`] (keyed by deal) before it is
//! answered. A process that stopped between a commit and its record (a crash) leaves a gap: the next
//! [`Live::open`] records, for every deal whose score differs from its last recorded one, the change
//! from the one to the other, so the history never shows a score the deal no longer has.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use winsignal_core::Ts;
use winsignal_features::snapshot::{self, Snapshot};
use winsignal_features::{Catalog, Engine};
use winsignal_score::explain::{Assessment, DealScore};
use winsignal_score::model::WinModel;
use winsignal_store::{JournalQuery, LogPosition, Store, StoreRead};

/// The journal stream of score changes, keyed by opportunity id.
pub const SCORE_HISTORY: &str = "score-history";

use crate::access::Scope;
use crate::Silent;

/// Which time the live scores are as of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The end of the data (just after the latest time anywhere in it), as `winsignal score` scores
    /// by default: for a workspace whose data stops in the past (an export, the demo). Time moves as
    /// data arrive.
    #[default]
    Data,
    /// The wall clock, never earlier than the end of the data: for a workspace fed live, where a deal
    /// nothing happens to still ages and stalls.
    Wall,
}

impl std::str::FromStr for Clock {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Clock> {
        match s {
            "data" => Ok(Clock::Data),
            "wall" => Ok(Clock::Wall),
            _ => anyhow::bail!("clock {s:?}: expected data or wall"),
        }
    }
}

/// The active win model as the live state applies it.
struct Applied {
    id: String,
    model: WinModel,
    /// The model's catalog made concrete with the levels it was trained on.
    catalog: Catalog,
    /// The catalog's values per open deal, remembered so a rescore reads only the events since.
    memo: std::sync::Mutex<winsignal_features::memo::Memo>,
}

impl Applied {
    /// `model` applied with its own catalog, made concrete for the workspace's entities.
    fn new(
        read: &dyn StoreRead,
        ctx: &winsignal_features::Context,
        id: String,
        model: WinModel,
    ) -> Result<Applied> {
        let declared = crate::pipeline::catalog_for_model(None, &id, &model)?;
        let catalog =
            crate::catalogs::resolve_for(read, &declared, ctx, &model.trained_on.versions)?;
        Ok(Applied {
            id,
            model,
            catalog,
            memo: Default::default(),
        })
    }
}

/// An open deal's live score. P(win) and the terms' contributions are made when the deal is rescored;
/// the explanation (factors in words, actions, close window) is made from the same snapshot when it is
/// first read, or at once when the score moved (its change carries the reasons). Most rescores leave a
/// deal's score as it was, and their explanation would never be read.
struct Entry {
    assessed: Assessment,
    snapshot: Snapshot,
    explained: OnceLock<DealScore>,
}

impl Entry {
    fn new(assessed: Assessment, snapshot: Snapshot) -> Entry {
        Entry {
            assessed,
            snapshot,
            explained: OnceLock::new(),
        }
    }
}

/// The active model of the registry applied and every open deal scored with it, made without changing
/// the live state ([`Live::prepare_switch`]) and put in place by [`Live::switch`].
pub struct Switch {
    model: Applied,
    position: LogPosition,
    scores: BTreeMap<String, Entry>,
}

impl Switch {
    /// The model switched to.
    pub fn model_id(&self) -> &str {
        &self.model.id
    }
}

/// One deal's score moving: from what, to what, and the factors that moved it most.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreChange {
    pub opportunity_id: String,
    /// The log position of the state the new score is of.
    pub position: u64,
    pub rep_id: Option<String>,
    pub model_id: String,
    pub as_of: Ts,
    /// `None` for a deal scored for the first time.
    pub before: Option<f64>,
    /// `None` for a deal no longer open (closed, or gone).
    pub after: Option<f64>,
    /// The terms whose contribution changed, by how much (log-odds), largest change first.
    pub moved_by: Vec<FactorMove>,
    /// The deal's stage after the change (before it, for a deal no longer open).
    #[serde(default)]
    pub stage: Option<String>,
    /// The deal's stage before the change (`None` for a deal scored for the first time).
    #[serde(default)]
    pub previous_stage: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub amount: Option<f64>,
    /// The new score's largest factors (at most three), as sentences: what a CRM field or a message
    /// shows as the reasons.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The new score's first next action: the proven behaviour the deal lacks that would raise P(win)
    /// most.
    #[serde(default)]
    pub next_action: Option<NextAction>,
    /// Days the deal had been idle (no activity, call or stage entry) at `as_of`, after the change
    /// (`None` for a deal no longer open).
    #[serde(default)]
    pub idle_days: Option<f64>,
    /// The same before the change (`None` for a deal scored for the first time).
    #[serde(default)]
    pub previous_idle_days: Option<f64>,
}

/// A deal's first next action, as a change carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextAction {
    pub behaviour: String,
    pub title: String,
    /// What doing it would add to P(win), in percentage points.
    pub uplift_points: f64,
}

impl ScoreChange {
    /// Whether the open deal became idle for `days` days with this change (it was not before).
    pub fn stalls(&self, days: f64) -> bool {
        self.after.is_some()
            && self.idle_days.is_some_and(|d| d >= days)
            && self.previous_idle_days.is_none_or(|d| d < days)
    }

    /// The change of a deal's score from `before` to `after` (either absent: first scored, or no
    /// longer open), moved by `moved_by`, without the new score's reasons and next action
    /// ([`ScoreChange::explained_by`] adds them).
    fn between(
        opportunity_id: &str,
        position: u64,
        model_id: &str,
        before: Option<&Assessment>,
        after: Option<&Assessment>,
        moved_by: Vec<FactorMove>,
    ) -> ScoreChange {
        let now = after.or(before);
        ScoreChange {
            opportunity_id: opportunity_id.to_string(),
            position,
            rep_id: now.and_then(|d| d.rep_id.clone()),
            model_id: model_id.to_string(),
            as_of: now.map_or(Ts(0), |d| d.as_of),
            before: before.map(|d| d.p_win),
            after: after.map(|d| d.p_win),
            moved_by,
            stage: now.and_then(|d| d.stage.clone()),
            previous_stage: before.and_then(|d| d.stage.clone()),
            account_id: now.and_then(|d| d.account_id.clone()),
            amount: now.and_then(|d| d.amount),
            reasons: Vec::new(),
            next_action: None,
            idle_days: after.map(|d| d.idle_days),
            previous_idle_days: before.map(|d| d.idle_days),
        }
    }

    /// Takes the reasons and the next action from `after`, the new score explained.
    fn explained_by(&mut self, after: &DealScore) {
        self.reasons = after
            .factors
            .iter()
            .take(3)
            .map(|f| f.text.clone())
            .collect();
        self.next_action = after.actions.first().map(|a| NextAction {
            behaviour: a.behaviour.clone(),
            title: a.title.clone(),
            uplift_points: a.uplift_points,
        });
    }
}

/// A term's contribution before and after a change.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// At most this many deals (the riskiest).
    pub limit: Option<usize>,
}

/// The live state: the engine over everything committed up to [`Live::position`], and the scores.
pub struct Live {
    engine: Engine,
    position: LogPosition,
    model: Option<Applied>,
    scores: BTreeMap<String, Entry>,
    clock: Clock,
    /// Reviewers' standing corrections of deals' P(win), shown beside the model's score.
    overrides: crate::review::Overrides,
    /// The actions reps dismissed, kept off their deals' scores.
    dismissed: crate::feedback::Dismissed,
}

impl Live {
    /// The state of the store as it is now: the engine from its checkpoint (or a replay), the active win
    /// model, and every open deal scored with it (none when no model is trained yet).
    pub fn open(store: &dyn Store, clock: Clock) -> Result<Live> {
        let snapshot = store.snapshot()?;
        let (ctx, checkpoint) = crate::pipeline::entities(store, &*snapshot)?;
        let model = match crate::models::active_win_model(&*snapshot)? {
            Some((id, model)) => Some(Applied::new(&*snapshot, &ctx, id, model)?),
            None => None,
        };
        let position = snapshot.position()?;
        let engine = crate::pipeline::replay_with(store, &*snapshot, ctx, checkpoint, &mut Silent)?;
        let mut live = Live {
            engine,
            position,
            model,
            scores: BTreeMap::new(),
            clock,
            overrides: crate::review::Overrides::read(&*snapshot)?,
            dismissed: crate::feedback::Dismissed::read(&*snapshot)?,
        };
        live.scores = by_deal(live.score(None)?);
        live.reconcile(store)?;
        Ok(live)
    }

    /// Records a change for every open deal whose score is not its last recorded one (first scored,
    /// or changed while no process recorded it), and for every deal recorded as open that no longer is.
    fn reconcile(&self, store: &dyn Store) -> Result<()> {
        let Some(model_id) = self.model_id() else {
            return Ok(());
        };
        let recorded: BTreeMap<String, ScoreChange> = store
            .journal_latest(SCORE_HISTORY)?
            .into_iter()
            .map(|e| {
                let change: ScoreChange = serde_json::from_slice(&e.body).with_context(|| {
                    format!("score history entry {} of {} cannot be read", e.seq, e.key)
                })?;
                Ok((e.key, change))
            })
            .collect::<Result<_>>()?;
        let mut changes = Vec::new();
        for (id, e) in &self.scores {
            let last = recorded.get(id);
            if last.is_none_or(|c| c.after != Some(e.assessed.p_win) || c.model_id != model_id) {
                // What moved it while unrecorded is not known.
                let mut change = ScoreChange::between(
                    id,
                    self.position.0,
                    model_id,
                    None,
                    Some(&e.assessed),
                    Vec::new(),
                );
                change.explained_by(self.explained(e)?);
                change.before = last.and_then(|c| c.after);
                change.previous_stage = last.and_then(|c| c.stage.clone());
                change.previous_idle_days = last.and_then(|c| c.idle_days);
                changes.push(change);
            }
        }
        for (id, last) in &recorded {
            if last.after.is_some() && !self.scores.contains_key(id) {
                changes.push(ScoreChange {
                    position: self.position.0,
                    model_id: model_id.to_string(),
                    before: last.after,
                    after: None,
                    moved_by: Vec::new(),
                    previous_stage: last.stage.clone(),
                    reasons: Vec::new(),
                    next_action: None,
                    ..last.clone()
                });
            }
        }
        record(store, &changes)
    }

    /// The time scores made now are as of (see [`Clock`]).
    pub fn now(&self) -> Ts {
        let end = snapshot::horizon(&self.engine).plus_millis(1);
        match self.clock {
            Clock::Data => end,
            Clock::Wall => end.max(Ts::now()),
        }
    }

    /// Rescores every open deal as of [`Live::now`]: the clock's pass, for deals no event touched
    /// since time moved on (they age, and go idle). Records and returns the changes, in
    /// opportunity-id order: every deal whose score moved, and every deal that crossed one of
    /// `stall_days` (days idle) without its score moving, so a stalled trigger is sent it.
    pub fn tick(&mut self, store: &dyn Store, stall_days: &[f64]) -> Result<Vec<ScoreChange>> {
        let Some(model_id) = self.model_id().map(str::to_string) else {
            return Ok(Vec::new());
        };
        let rescored = by_deal(self.score(None)?);
        let ids: std::collections::BTreeSet<&String> =
            self.scores.keys().chain(rescored.keys()).collect();
        let terms = self.term_names();
        // The changes first (explaining a new score can fail), then the scores replaced.
        let mut changes = Vec::new();
        for id in ids {
            let after = rescored.get(id);
            let b = self.scores.get(id).map(|e| &e.assessed);
            let a = after.map(|e| &e.assessed);
            let mut change =
                ScoreChange::between(id, self.position.0, &model_id, b, a, moves(&terms, b, a));
            if change.before != change.after
                || !change.moved_by.is_empty()
                || stall_days.iter().any(|&days| change.stalls(days))
            {
                if let Some(e) = after {
                    change.explained_by(self.explained(e)?);
                }
                changes.push(change);
            }
        }
        self.scores = rescored;
        record(store, &changes)?;
        Ok(changes)
    }

    /// The registry's active model, if it is not the one the scores are from: applied, and every open
    /// deal scored with it, without changing anything (so readers are not held up meanwhile); `None`
    /// when the active model is the one applied. A commit between this and [`Live::switch`] makes the
    /// switch refuse (prepare it again).
    pub fn prepare_switch(&self, store: &dyn Store) -> Result<Option<Switch>> {
        let Some(id) = crate::models::active_win_model_id(store)? else {
            return Ok(None);
        };
        if self.model_id() == Some(id.as_str()) {
            return Ok(None);
        }
        let (id, model) = crate::models::load_model(store, Some(&id))?;
        let model = Applied::new(store, self.engine.context(), id, model)?;
        let scores = by_deal(self.score_with(&model, None)?);
        Ok(Some(Switch {
            model,
            position: self.position,
            scores,
        }))
    }

    /// Puts a prepared switch in place: the new model, every open deal's new score, and a recorded
    /// change for every deal whose score moved (its factors are the new model's: what moved it is the
    /// model, not the deal). Returns the changes, in opportunity-id order.
    pub fn switch(&mut self, store: &dyn Store, switch: Switch) -> Result<Vec<ScoreChange>> {
        anyhow::ensure!(
            switch.position == self.position,
            "the live state moved on while the switch to {} was prepared",
            switch.model.id
        );
        // The new scores are explained with the new model (and the actions dismissed meanwhile), before
        // anything is put in place (explaining can fail).
        let ids: std::collections::BTreeSet<&String> =
            self.scores.keys().chain(switch.scores.keys()).collect();
        let mut changes = Vec::new();
        for id in ids {
            let before = self.scores.get(id).map(|e| &e.assessed);
            let after = switch.scores.get(id);
            // Contributions of two models are not comparable term by term.
            let mut change = ScoreChange::between(
                id,
                self.position.0,
                &switch.model.id,
                before,
                after.map(|e| &e.assessed),
                Vec::new(),
            );
            if change.before != change.after {
                if let Some(e) = after {
                    change.explained_by(self.explained_with(&switch.model, e)?);
                }
                changes.push(change);
            }
        }
        self.scores = switch.scores;
        self.model = Some(switch.model);
        record(store, &changes)?;
        Ok(changes)
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
        let started = std::time::Instant::now();
        let touched = self.engine.catch_up(&*snapshot, self.position)?;
        let caught_up = started.elapsed();
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
        let scoring = std::time::Instant::now();
        let mut rescored = by_deal(self.score(Some(&ids))?);
        let deals = rescored.len();
        let model_id = self.model_id().unwrap_or_default().to_string();
        let terms = self.term_names();
        // The changes first (explaining a new score can fail), then the scores replaced.
        let mut changes = Vec::new();
        for id in &ids {
            let after = rescored.get(id);
            let b = self.scores.get(id).map(|e| &e.assessed);
            let a = after.map(|e| &e.assessed);
            let same = match (b, a) {
                (Some(b), Some(a)) => b.same_score(a),
                (None, None) => true,
                _ => false,
            };
            if !same {
                let moved_by = moves(&terms, b, a);
                if b.map(|d| d.p_win) != a.map(|d| d.p_win) || !moved_by.is_empty() {
                    let mut change =
                        ScoreChange::between(id, position.0, &model_id, b, a, moved_by);
                    if let Some(e) = after {
                        change.explained_by(self.explained(e)?);
                    }
                    changes.push(change);
                }
            }
        }
        for id in ids {
            match rescored.remove(&id) {
                Some(e) => self.scores.insert(id, e),
                None => self.scores.remove(&id),
            };
        }
        let recording = std::time::Instant::now();
        record(store, &changes)?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        tracing::debug!(
            deals,
            changes = changes.len(),
            catch_up_ms = ms(caught_up),
            score_ms = ms(recording - scoring),
            record_ms = ms(recording.elapsed()),
            "refresh phases"
        );
        Ok(changes)
    }

    /// Open deals the scope allows, riskiest first (lowest P(win), then by id).
    pub fn deals(&self, scope: &Scope, filter: &DealFilter) -> Result<Vec<&DealScore>> {
        let mut out: Vec<&Entry> = self
            .scores
            .values()
            .filter(|e| scope.allows(e.assessed.rep_id.as_deref()))
            .map(|e| (e, &e.assessed))
            .filter(|(_, d)| {
                filter
                    .rep
                    .as_deref()
                    .is_none_or(|r| d.rep_id.as_deref() == Some(r))
            })
            .filter(|(_, d)| {
                filter
                    .stage
                    .as_deref()
                    .is_none_or(|s| d.stage.as_deref() == Some(s))
            })
            .filter(|(_, d)| filter.max_p_win.is_none_or(|m| d.p_win <= m))
            .map(|(e, _)| e)
            .collect();
        out.sort_by(|a, b| {
            let (a, b) = (&a.assessed, &b.assessed);
            a.p_win
                .total_cmp(&b.p_win)
                .then_with(|| a.opportunity_id.cmp(&b.opportunity_id))
        });
        out.truncate(filter.limit.unwrap_or(usize::MAX));
        out.into_iter().map(|e| self.explained(e)).collect()
    }

    /// The reviewers' standing correction of an open deal's P(win) (the latest `edit` decision on a
    /// review item of it), if any.
    pub fn review_override(&self, opportunity_id: &str) -> Option<&crate::review::Decision> {
        self.overrides.by_deal.get(opportunity_id)
    }

    /// The number of the last review decision the corrections include.
    pub fn overrides_seen(&self) -> u64 {
        self.overrides.seen
    }

    /// The number of the last feedback the dismissed actions include.
    pub fn dismissed_seen(&self) -> u64 {
        self.dismissed.seen
    }

    /// Takes dismissed actions read since (see [`crate::feedback::Dismissed::newer_than`]): takes them
    /// off the open deals' scores at once, and gives back the actions of deals whose rep took a
    /// dismissal back (their actions as their score gave them). Older ones than those held are
    /// ignored.
    pub fn set_dismissed(&mut self, dismissed: crate::feedback::Dismissed) -> Result<()> {
        if dismissed.seen <= self.dismissed.seen {
            return Ok(());
        }
        let restored: Vec<String> = self
            .dismissed
            .by_deal
            .iter()
            .filter(|(deal, before)| {
                dismissed
                    .by_deal
                    .get(*deal)
                    .is_none_or(|now| !before.is_subset(now))
            })
            .map(|(deal, _)| deal.clone())
            .collect();
        self.dismissed = dismissed;
        for deal in restored {
            if let Some(e) = self.scores.get_mut(&deal) {
                // Explained again when next read, without the dismissals taken back.
                e.explained = OnceLock::new();
            }
        }
        for e in self.scores.values_mut() {
            if let Some(d) = e.explained.get_mut() {
                self.dismissed.apply(d);
            }
        }
        Ok(())
    }

    /// Takes corrections read since (see [`crate::review::Overrides::newer_than`]); older ones than
    /// those held are ignored.
    pub fn set_overrides(&mut self, overrides: crate::review::Overrides) {
        if overrides.seen > self.overrides.seen {
            self.overrides = overrides;
        }
    }

    /// One open deal's score, if the scope allows it. A deal outside the scope is as absent as one that
    /// does not exist: the caller cannot tell them apart.
    pub fn deal(&self, scope: &Scope, opportunity_id: &str) -> Result<Option<&DealScore>> {
        let long = winsignal_core::sfdc::to_18(opportunity_id);
        self.scores
            .get(opportunity_id)
            .or_else(|| self.scores.get(&long))
            .filter(|e| scope.allows(e.assessed.rep_id.as_deref()))
            .map(|e| self.explained(e))
            .transpose()
    }

    /// An open deal's score explained: made from the snapshot it was scored on when first asked for.
    fn explained<'a>(&'a self, e: &'a Entry) -> Result<&'a DealScore> {
        let m = self
            .model
            .as_ref()
            .context("a live score without a model to explain it")?;
        self.explained_with(m, e)
    }

    /// The same with `m`, the model the entry was scored with.
    fn explained_with<'a>(&self, m: &Applied, e: &'a Entry) -> Result<&'a DealScore> {
        if let Some(d) = e.explained.get() {
            return Ok(d);
        }
        let mut d = winsignal_score::explain::score(
            &m.model,
            &m.catalog,
            &self.engine,
            std::slice::from_ref(&e.snapshot),
        )?
        .pop()
        .with_context(|| format!("{} could not be explained", e.assessed.opportunity_id))?;
        self.dismissed.apply(&mut d);
        Ok(e.explained.get_or_init(|| d))
    }

    /// The model's term names, in its order (what [`moves`] names the terms by).
    fn term_names(&self) -> Vec<String> {
        self.model.as_ref().map_or_else(Vec::new, |m| {
            m.model.ebm.terms().iter().map(|t| t.name.clone()).collect()
        })
    }

    /// One open deal's score with the events and source rows behind each of its factors, if the
    /// scope allows it: `winsignal explain` of the live state.
    pub fn explain(
        &self,
        read: &dyn StoreRead,
        scope: &Scope,
        opportunity_id: &str,
    ) -> Result<Option<crate::scoring::Explained>> {
        let (Some(deal), Some(m)) = (self.deal(scope, opportunity_id)?, &self.model) else {
            return Ok(None);
        };
        let Some(opp) = self.engine.context().opportunity(&deal.opportunity_id) else {
            return Ok(None);
        };
        let lineage =
            crate::scoring::factor_lineage(&self.engine, &m.catalog, read, deal, opp, deal.as_of)?;
        Ok(Some(crate::scoring::Explained {
            model_id: m.id.clone(),
            deal: deal.clone(),
            lineage,
        }))
    }

    /// The bookings forecast of the live state, as of [`Live::now`] (`winsignal forecast --json` at that
    /// time); `None` without a model.
    pub fn forecast(
        &self,
        store: &dyn Store,
        opts: &winsignal_score::forecast::ForecastOptions,
    ) -> Result<Option<winsignal_score::forecast::Forecast>> {
        let Some(m) = &self.model else {
            return Ok(None);
        };
        let (f, _) =
            crate::forecast::make(store, &self.engine, &m.catalog, &m.model, self.now(), opts)?;
        Ok(Some(f))
    }

    /// Accounts without an open deal ranked for outreach, as `winsignal accounts --prioritise` ranks
    /// them, on the live state.
    pub fn accounts(&self) -> winsignal_score::accounts::Prioritisation {
        crate::scoring::account_priorities(&self.engine)
    }

    /// The open deals among `only` (every open deal when `None`), each at the end of the data.
    fn score(&self, only: Option<&[String]>) -> Result<Vec<Entry>> {
        match &self.model {
            Some(m) => self.score_with(m, only),
            None => Ok(Vec::new()),
        }
    }

    fn score_with(&self, m: &Applied, only: Option<&[String]>) -> Result<Vec<Entry>> {
        let as_of = self.now();
        let snaps = {
            // A rescore that panicked may have left the memo half updated: start it afresh.
            let mut memo = m.memo.lock().unwrap_or_else(|e| {
                m.memo.clear_poison();
                let mut memo = e.into_inner();
                *memo = Default::default();
                memo
            });
            winsignal_score::dataset::open_snapshots_remembered(
                &self.engine,
                &m.catalog,
                as_of,
                only,
                &mut memo,
            )
        };
        let assessed =
            winsignal_score::explain::assess(&m.model, &m.catalog, &self.engine, &snaps)?;
        Ok(assessed
            .into_iter()
            .zip(snaps)
            .map(|(a, s)| Entry::new(a, s))
            .collect())
    }
}

/// Entries by opportunity id.
fn by_deal(entries: Vec<Entry>) -> BTreeMap<String, Entry> {
    entries
        .into_iter()
        .map(|e| (e.assessed.opportunity_id.clone(), e))
        .collect()
}

/// A deal's recorded score changes, oldest first, if the scope allows the deal (`None` when it
/// does not, or nothing was ever recorded of it).
pub fn history(
    read: &dyn StoreRead,
    scope: &Scope,
    opportunity_id: &str,
) -> Result<Option<Vec<(u64, Ts, ScoreChange)>>> {
    let long = winsignal_core::sfdc::to_18(opportunity_id);
    for id in [opportunity_id, long.as_str()] {
        let entries = read.journal(
            SCORE_HISTORY,
            &JournalQuery {
                key: Some(id.to_string()),
                ..JournalQuery::default()
            },
        )?;
        let Some(last) = entries.last() else {
            continue;
        };
        let last: ScoreChange = serde_json::from_slice(&last.body)?;
        if !scope.allows(last.rep_id.as_deref()) {
            return Ok(None);
        }
        return entries
            .into_iter()
            .map(|e| Ok((e.seq, e.at, serde_json::from_slice(&e.body)?)))
            .collect::<Result<Vec<_>>>()
            .map(Some);
    }
    Ok(None)
}

/// Appends score changes to the history, in one append.
fn record(store: &dyn Store, changes: &[ScoreChange]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let entries = changes
        .iter()
        .map(|c| Ok((c.opportunity_id.clone(), serde_json::to_vec(c)?)))
        .collect::<Result<Vec<_>>>()?;
    store.append(SCORE_HISTORY, Ts::now(), &entries)?;
    // Every recorded change passes the review queue's rules.
    crate::review::enqueue(store, changes)?;
    Ok(())
}

/// The terms whose contribution changed between two scores of a deal by the same model (`terms` are
/// its term names), largest change first.
fn moves(
    terms: &[String],
    before: Option<&Assessment>,
    after: Option<&Assessment>,
) -> Vec<FactorMove> {
    let of = |d: Option<&Assessment>, i: usize| {
        d.and_then(|d| d.contributions.get(i))
            .copied()
            .unwrap_or(0.0)
    };
    let mut out: Vec<FactorMove> = terms
        .iter()
        .enumerate()
        .map(|(i, term)| (term, of(after, i) - of(before, i)))
        .filter(|(_, change)| change.abs() > 1e-12)
        .map(|(term, logit_change)| FactorMove {
            term: term.clone(),
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
