//! The review queue: score changes that matter enough for a person to look at before anyone acts on
//! them, and the reviewers' decisions.
//!
//! The rules (the named state [`RULES`], off until set) say which changes go in: a P(win) change of
//! more than `score_change_points` points on a deal of at least `min_amount`, and a next action for a
//! deal of a strategic account. Every score change the live state records passes [`enqueue`] (from
//! `live::record`), so the server fills the queue as events arrive; a deal with an undecided item of a
//! kind gets no second one of that kind until it is decided.
//!
//! Items are entries of the journal stream [`ITEMS`] (keyed by deal), decisions of [`DECISIONS`] (keyed
//! by item number): accept, edit (with a corrected P(win), kept as the reviewer's override of the
//! deal's score) or reject, each with a reason code and a comment, by whom and when, with the model
//! version and the evidence the item carried. Each decision is also an audit entry (`review.decide`).
//! Who may see an item is the caller's [`Scope`]; who may decide is [`Role::reviews`].

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use winsignal_core::Ts;
use winsignal_store::{JournalQuery, Store, StoreRead};

use crate::access::{Role, Scope};
use crate::live::ScoreChange;
use crate::Refusal;

/// The journal stream of queued items, keyed by opportunity id.
pub const ITEMS: &str = "review";
/// The journal stream of decisions, keyed by item number.
pub const DECISIONS: &str = "review-decisions";
/// The named state holding the rules.
pub const RULES: &str = "review-rules";

/// Which changes go into the queue. Nothing does until a rule is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    /// A change of P(win) of more than this many percentage points (either way).
    pub score_change_points: Option<f64>,
    /// ... on a deal of at least this amount (no amount: not queued); None: any deal.
    pub min_amount: Option<f64>,
    /// Accounts whose deals' next actions are reviewed before reps see them.
    #[serde(default)]
    pub strategic_accounts: Vec<String>,
    /// Whether a team's coaching focus changing (a new finding making another behaviour its biggest
    /// gain) is put in front of a reviewer. (The scorecards show the new focus meanwhile.)
    #[serde(default)]
    pub coaching_changes: bool,
}

/// Why an item is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// The score moved by more than the rule's points on a large enough deal.
    ScoreChange,
    /// A next action for a deal of a strategic account.
    StrategicAction,
    /// A team's coaching focus changed: the behaviour its reps have the most to gain from is another.
    CoachingChange,
}

/// One item: the change that put it there, with its evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// Its number in the queue (1 for the first).
    #[serde(default)]
    pub id: u64,
    pub created_at: Ts,
    pub kind: ItemKind,
    /// In words: which rule, and by how much.
    pub why: String,
    /// The score change that put it there (score-change and strategic-action items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ScoreChange>,
    /// The team's coaching before and after (coaching-change items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coaching: Option<CoachingChange>,
}

/// A team's coaching focus before and after a computation of the scorecards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoachingChange {
    pub team: String,
    /// The team's reps (the scope that holds them all may see and decide the item).
    pub rep_ids: Vec<String>,
    pub previous: Option<Focus>,
    pub now: Option<Focus>,
}

/// The behaviour a team has the most to gain from: the largest sum of its reps' expected extra wins
/// (`reps`' coaching priorities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Focus {
    pub behaviour: String,
    pub title: String,
    pub expected_extra_wins: f64,
    /// How many of the team's reps have it among their coaching priorities.
    pub reps: usize,
}

impl Item {
    /// The deal the item is about (none for a team's coaching).
    pub fn deal(&self) -> Option<&str> {
        self.change.as_ref().map(|c| c.opportunity_id.as_str())
    }

    /// Whether `scope` may see (and, with a reviewing role, decide) the item: a deal's by a scope that
    /// holds the deal's rep; a team's coaching only by a scope that holds every rep of the team.
    pub fn visible_to(&self, scope: &Scope) -> bool {
        match (&self.change, &self.coaching) {
            (Some(c), _) => scope.allows(c.rep_id.as_deref()),
            (None, Some(t)) => {
                matches!(scope, Scope::All)
                    || (!t.rep_ids.is_empty() && t.rep_ids.iter().all(|r| scope.allows(Some(r))))
            }
            (None, None) => matches!(scope, Scope::All),
        }
    }

    /// What one undecided item of a kind is kept per: the deal, or the team.
    fn subject(&self) -> String {
        match (&self.change, &self.coaching) {
            (Some(c), _) => c.opportunity_id.clone(),
            (None, Some(t)) => format!("team:{}", t.team),
            (None, None) => String::new(),
        }
    }
}

/// What a reviewer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accept,
    Edit,
    Reject,
}

/// The reason codes a decision takes.
pub const REASON_CODES: [&str; 5] = [
    "agree",
    "wrong_data",
    "missing_context",
    "model_error",
    "other",
];

/// A reviewer's decision on an item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub item: u64,
    pub at: Ts,
    pub reviewer: String,
    pub verdict: Verdict,
    pub reason_code: String,
    pub comment: String,
    /// For an edit: the P(win) the reviewer holds the deal to have (an override of the score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_p_win: Option<f64>,
    /// The model whose score was reviewed, and the P(win) it gave (empty and none for a team's
    /// coaching).
    pub model_id: String,
    pub p_win: Option<f64>,
}

/// An item with its decision, if any.
#[derive(Debug, Clone, Serialize)]
pub struct Reviewed {
    #[serde(flatten)]
    pub item: Item,
    pub decision: Option<Decision>,
}

/// The rules as set (the default, nothing queued, when none were).
pub fn rules(store: &dyn Store) -> Result<Rules> {
    match store.state(RULES)? {
        Some(state) => crate::access::read_json_state(state, "review rules"),
        None => Ok(Rules::default()),
    }
}

/// Sets the rules, by `actor`, recorded in the audit log.
pub fn set_rules(store: &dyn Store, actor: &str, rules: &Rules) -> Result<()> {
    for (name, v) in [
        ("score_change_points", rules.score_change_points),
        ("min_amount", rules.min_amount),
    ] {
        if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            return Err(
                Refusal::BadRequest(format!("{name} must be a number of at least 0")).into(),
            );
        }
    }
    let was = crate::access::change_json_state(store, RULES, "review rules", |r: &mut Rules| {
        Ok(std::mem::replace(r, rules.clone()))
    })?;
    // Turned on: the next computation is the baseline, not the focus recorded before it was off.
    if rules.coaching_changes && !was.coaching_changes {
        crate::access::change_json_state(
            store,
            COACHING_FOCUS,
            "coaching focus",
            |k: &mut Baselines| {
                k.clear();
                Ok(())
            },
        )?;
    }
    crate::audit::record(
        store,
        actor,
        "config.review_rules",
        RULES,
        serde_json::to_value(rules)?,
    )?;
    Ok(())
}

/// The items `changes` make under `rules`, in the changes' order: the one place the rules are read.
pub fn items_for(changes: &[ScoreChange], rules: &Rules, at: Ts) -> Vec<Item> {
    let mut out = Vec::new();
    for c in changes {
        if let (Some(points), Some(before), Some(after)) =
            (rules.score_change_points, c.before, c.after)
        {
            let moved = 100.0 * (after - before);
            let large_enough = match rules.min_amount {
                Some(min) => c.amount.is_some_and(|a| a >= min),
                None => true,
            };
            if moved.abs() > points && large_enough {
                out.push(Item {
                    id: 0,
                    created_at: at,
                    kind: ItemKind::ScoreChange,
                    why: format!(
                        "P(win) moved {moved:+.1} points (more than {points}) on a deal of {}",
                        c.amount.map_or("no amount".into(), |a| format!("{a:.0}"))
                    ),
                    change: Some(c.clone()),
                    coaching: None,
                });
            }
        }
        let strategic = c
            .account_id
            .as_ref()
            .is_some_and(|a| rules.strategic_accounts.iter().any(|s| s == a));
        if strategic && c.after.is_some() {
            if let Some(action) = &c.next_action {
                out.push(Item {
                    id: 0,
                    created_at: at,
                    kind: ItemKind::StrategicAction,
                    why: format!(
                        "a next action for the strategic account {}: {}",
                        c.account_id.as_deref().unwrap_or_default(),
                        action.title
                    ),
                    change: Some(c.clone()),
                    coaching: None,
                });
            }
        }
    }
    out
}

/// Queues the items `changes` make under the rules as set, leaving out a deal's item of a kind it
/// already has undecided. Returns how many were queued.
pub fn enqueue(store: &dyn Store, changes: &[ScoreChange]) -> Result<usize> {
    if changes.is_empty() {
        return Ok(0);
    }
    let rules = rules(store)?;
    if rules.score_change_points.is_none() && rules.strategic_accounts.is_empty() {
        return Ok(0);
    }
    let items = items_for(changes, &rules, Ts::now());
    if items.is_empty() {
        return Ok(0);
    }
    let open: std::collections::BTreeSet<(String, ItemKind)> = queue(store)?
        .into_iter()
        .filter(|r| r.decision.is_none())
        .map(|r| (r.item.subject(), r.item.kind))
        .collect();
    let mut seen = open;
    let mut entries = Vec::new();
    for item in items {
        let key = (item.subject(), item.kind);
        if seen.insert(key) {
            entries.push((item.subject(), serde_json::to_vec(&item)?));
        }
    }
    if !entries.is_empty() {
        store.append(ITEMS, Ts::now(), &entries)?;
    }
    Ok(entries.len())
}

/// The named state holding each team's coaching focus as last computed (the rule's baseline), per
/// catalog the scorecards were computed with (another catalog measures other behaviours).
pub const COACHING_FOCUS: &str = "coaching-focus";

/// Each catalog's teams' coaching focus as last computed.
type Baselines = BTreeMap<String, BTreeMap<String, Option<Focus>>>;

/// Each team's reps and coaching focus in `cards`: the behaviour with the largest sum of its reps'
/// expected extra wins among their coaching priorities (ties: the behaviour id first in order); none
/// when no rep of the team has a priority. Reps without a team are the team `(no team)`.
pub fn team_focus(
    cards: &winsignal_score::reps::Scorecards,
) -> BTreeMap<String, (Vec<String>, Option<Focus>)> {
    let mut teams: BTreeMap<String, (Vec<String>, BTreeMap<String, Focus>)> = BTreeMap::new();
    for r in &cards.reps {
        let team = r.team.clone().unwrap_or_else(|| "(no team)".into());
        let (reps, gains) = teams.entry(team).or_default();
        reps.push(r.rep_id.clone());
        for p in &r.coaching {
            let f = gains.entry(p.behaviour.clone()).or_insert_with(|| Focus {
                behaviour: p.behaviour.clone(),
                title: p.title.clone(),
                expected_extra_wins: 0.0,
                reps: 0,
            });
            f.expected_extra_wins += p.expected_extra_wins;
            f.reps += 1;
        }
    }
    teams
        .into_iter()
        .map(|(team, (reps, gains))| {
            let focus = gains
                .into_values()
                .fold(None::<Focus>, |best, f| match best {
                    Some(b) if b.expected_extra_wins >= f.expected_extra_wins => Some(b),
                    _ => Some(f),
                });
            (team, (reps, focus))
        })
        .collect()
}

/// Records each team's coaching focus in `cards` (computed with the catalog named `catalog`) and, when
/// the rule `coaching_changes` is set, queues an item for each team whose focus is another behaviour
/// than at the last computation with that catalog (a team not seen before counts as a change; the
/// first computation after the rule is set only records). A team with an undecided coaching item is
/// left as it was recorded until the item is decided, so its next item compares with what the
/// reviewer saw. Returns how many were queued.
pub fn enqueue_coaching(
    store: &dyn Store,
    cards: &winsignal_score::reps::Scorecards,
    catalog: &str,
) -> Result<usize> {
    if !rules(store)?.coaching_changes {
        return Ok(0);
    }
    let now = team_focus(cards);
    let at = Ts::now();
    crate::access::change_json_state(
        store,
        COACHING_FOCUS,
        "coaching focus",
        |baselines: &mut Baselines| {
            let undecided: std::collections::BTreeSet<String> = queue(store)?
                .into_iter()
                .filter(|r| r.decision.is_none() && r.item.kind == ItemKind::CoachingChange)
                .filter_map(|r| r.item.coaching.map(|t| t.team))
                .collect();
            let now: BTreeMap<String, (Vec<String>, Option<Focus>)> = now
                .iter()
                .filter(|(team, _)| !undecided.contains(*team))
                .map(|(team, v)| (team.clone(), v.clone()))
                .collect();
            let known = baselines.entry(catalog.to_string()).or_default();
            let entries = coaching_items(known, &now, at)
                .into_iter()
                .map(|item| Ok((item.subject(), serde_json::to_vec(&item)?)))
                .collect::<Result<Vec<_>>>()?;
            if !entries.is_empty() {
                store.append(ITEMS, at, &entries)?;
            }
            Ok(entries.len())
        },
    )
}

/// The coaching-change items of teams whose focus in `now` differs from `known` (the last computation;
/// a team not in it counts as changed unless `known` is empty: then this is the baseline), and `known`
/// brought up to `now`.
fn coaching_items(
    known: &mut BTreeMap<String, Option<Focus>>,
    now: &BTreeMap<String, (Vec<String>, Option<Focus>)>,
    at: Ts,
) -> Vec<Item> {
    let baseline = known.is_empty();
    let mut out = Vec::new();
    for (team, (reps, focus)) in now {
        let previous = known.insert(team.clone(), focus.clone());
        let changed = match &previous {
            None => !baseline,
            Some(p) => p.as_ref().map(|f| &f.behaviour) != focus.as_ref().map(|f| &f.behaviour),
        };
        if !changed {
            continue;
        }
        let previous = previous.flatten();
        let name = |f: &Option<Focus>| {
            f.as_ref().map_or("nothing to coach".to_string(), |f| {
                format!(
                    "{} ({:.1} expected extra wins over {} reps)",
                    f.title, f.expected_extra_wins, f.reps
                )
            })
        };
        out.push(Item {
            id: 0,
            created_at: at,
            kind: ItemKind::CoachingChange,
            why: format!(
                "team {team}'s coaching focus would change: {} → {}",
                name(&previous),
                name(focus)
            ),
            change: None,
            coaching: Some(CoachingChange {
                team: team.clone(),
                rep_ids: reps.clone(),
                previous,
                now: focus.clone(),
            }),
        });
    }
    out
}

/// Every item with its decision, oldest first.
pub fn queue(read: &dyn StoreRead) -> Result<Vec<Reviewed>> {
    let decisions: BTreeMap<u64, Decision> = read
        .journal(DECISIONS, &JournalQuery::default())?
        .into_iter()
        .map(|e| {
            let d: Decision = serde_json::from_slice(&e.body)
                .with_context(|| format!("review decision {} cannot be read", e.seq))?;
            Ok((d.item, d))
        })
        .collect::<Result<_>>()?;
    read.journal(ITEMS, &JournalQuery::default())?
        .into_iter()
        .map(|e| {
            let mut item: Item = serde_json::from_slice(&e.body)
                .with_context(|| format!("review item {} cannot be read", e.seq))?;
            item.id = e.seq;
            let decision = decisions.get(&e.seq).cloned();
            Ok(Reviewed { item, decision })
        })
        .collect()
}

/// The items `scope` may see: undecided only unless `all`.
pub fn list(read: &dyn StoreRead, scope: &Scope, all: bool) -> Result<Vec<Reviewed>> {
    Ok(queue(read)?
        .into_iter()
        .filter(|r| r.item.visible_to(scope))
        .filter(|r| all || r.decision.is_none())
        .collect())
}

/// What a reviewer asks.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub verdict: Verdict,
    pub reason_code: &'a str,
    pub comment: &'a str,
    pub corrected_p_win: Option<f64>,
}

/// Whether `ask` is complete: a known reason code, and a corrected P(win) for an edit only.
fn check_ask(ask: &Ask<'_>) -> Result<()> {
    if !REASON_CODES.contains(&ask.reason_code) {
        return Err(Refusal::BadRequest(format!(
            "reason code {:?}: expected one of {}",
            ask.reason_code,
            REASON_CODES.join(", ")
        ))
        .into());
    }
    match (ask.verdict, ask.corrected_p_win) {
        (Verdict::Edit, None) => {
            return Err(Refusal::BadRequest(
                "an edit gives the corrected P(win) (between 0 and 1)".into(),
            )
            .into())
        }
        (Verdict::Edit, Some(p)) if !(0.0..=1.0).contains(&p) => {
            return Err(Refusal::BadRequest(format!(
                "corrected P(win) {p}: expected a probability between 0 and 1"
            ))
            .into())
        }
        (Verdict::Accept | Verdict::Reject, Some(_)) => {
            return Err(Refusal::BadRequest("only an edit takes a corrected P(win)".into()).into())
        }
        _ => {}
    }
    Ok(())
}

/// Records `reviewer`'s decision on item `id` (which `scope` must allow), with the model version and
/// the P(win) reviewed, and an audit entry. Refused when the item is decided already.
pub fn decide(
    store: &dyn Store,
    id: u64,
    reviewer: &str,
    role: Role,
    scope: &Scope,
    ask: &Ask<'_>,
) -> Result<Decision> {
    if !role.reviews() {
        return Err(
            Refusal::Rule("reviewing is for admin, revops and manager tokens".into()).into(),
        );
    }
    // Decisions are made one at a time, so an item is decided once. (The audit entry is written after
    // the lock is let go: the store takes one update lock at a time.)
    let (decision, item) = crate::access::change_json_state(
        store,
        "review-lock",
        "review lock",
        |n: &mut u64| {
            let all = queue(store)?;
            let Some(r) = all
                .into_iter()
                .find(|r| r.item.id == id)
                .filter(|r| r.item.visible_to(scope))
            else {
                return Err(Refusal::NotFound(format!(
                    "no review item {id} that this caller may see"
                ))
                .into());
            };
            if let Some(d) = &r.decision {
                return Err(Refusal::Rule(format!(
                    "item {id} was already decided by {} at {}",
                    d.reviewer,
                    d.at.to_rfc3339()
                ))
                .into());
            }
            check_ask(ask)?;
            if r.item.change.is_none() && ask.verdict == Verdict::Edit {
                return Err(Refusal::BadRequest(format!(
                    "item {id} is a team's coaching, which has no P(win) to correct: accept or reject it"
                ))
                .into());
            }
            let decision = Decision {
                item: id,
                at: Ts::now(),
                reviewer: reviewer.to_string(),
                verdict: ask.verdict,
                reason_code: ask.reason_code.to_string(),
                comment: ask.comment.to_string(),
                corrected_p_win: ask.corrected_p_win,
                model_id: r
                    .item
                    .change
                    .as_ref()
                    .map_or_else(String::new, |c| c.model_id.clone()),
                p_win: r.item.change.as_ref().and_then(|c| c.after),
            };
            store.append(
                DECISIONS,
                decision.at,
                &[(id.to_string(), serde_json::to_vec(&decision)?)],
            )?;
            *n += 1;
            Ok((decision, r.item))
        },
    )?;
    crate::audit::record(
        store,
        reviewer,
        "review.decide",
        &format!("review item {id}"),
        serde_json::json!({
            "opportunity_id": item.deal(),
            "team": item.coaching.as_ref().map(|t| t.team.clone()),
            "kind": item.kind,
            "verdict": decision.verdict,
            "reason_code": decision.reason_code,
            "comment": decision.comment,
            "corrected_p_win": decision.corrected_p_win,
            "model_id": decision.model_id,
            "p_win": decision.p_win,
        }),
    )?;
    Ok(decision)
}

/// The latest decision on each deal (by when it was made, then item number).
fn latest_by_deal(read: &dyn StoreRead) -> Result<BTreeMap<String, Decision>> {
    let mut latest: BTreeMap<String, Decision> = BTreeMap::new();
    for r in queue(read)? {
        if let (Some(d), Some(deal)) = (r.decision, r.item.change.map(|c| c.opportunity_id)) {
            if latest
                .get(&deal)
                .is_none_or(|l| (l.at, l.item) <= (d.at, d.item))
            {
                latest.insert(deal, d);
            }
        }
    }
    Ok(latest)
}

/// The reviewers' corrections still standing, by deal: the latest decision on the deal, when it is an
/// edit of its P(win) (an override the deal's answers show beside the model's score). A later accept or
/// reject takes it back.
pub fn overrides(read: &dyn StoreRead) -> Result<BTreeMap<String, Decision>> {
    Ok(latest_by_deal(read)?
        .into_iter()
        .filter(|(_, d)| d.verdict == Verdict::Edit)
        .collect())
}

/// The deals whose latest review decision says their data are wrong (reason `wrong_data`): retraining
/// leaves their snapshots out.
pub fn wrong_data_deals(read: &dyn StoreRead) -> Result<std::collections::BTreeSet<String>> {
    Ok(latest_by_deal(read)?
        .into_iter()
        .filter(|(_, d)| d.reason_code == "wrong_data")
        .map(|(deal, _)| deal)
        .collect())
}

/// The standing corrections as of a number of the decisions journal, to be kept in memory (the live
/// state) and read again only when decisions were recorded since.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub by_deal: BTreeMap<String, Decision>,
    /// The number of the last decision they include.
    pub seen: u64,
}

impl Overrides {
    /// The corrections as the store holds them now.
    pub fn read(read: &dyn StoreRead) -> Result<Overrides> {
        Ok(Overrides::newer_than(read, 0)?.unwrap_or_default())
    }

    /// The corrections, if a decision was recorded after number `seen`; None when none was.
    pub fn newer_than(read: &dyn StoreRead, seen: u64) -> Result<Option<Overrides>> {
        let since = read.journal(
            DECISIONS,
            &JournalQuery {
                key: None,
                after: seen,
                limit: None,
            },
        )?;
        let Some(last) = since.iter().map(|e| e.seq).max() else {
            return Ok(None);
        };
        // Decisions recorded while these are read are read again next time.
        Ok(Some(Overrides {
            by_deal: overrides(read)?,
            seen: last,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn focus(b: &str, wins: f64) -> Option<Focus> {
        Some(Focus {
            behaviour: b.into(),
            title: format!("Do {b}"),
            expected_extra_wins: wins,
            reps: 2,
        })
    }

    #[test]
    fn a_teams_coaching_focus_changing_is_an_item_after_the_baseline() {
        let team = |f: Option<Focus>| (vec!["R1".to_string(), "R2".to_string()], f);
        let mut known = BTreeMap::new();
        let now: BTreeMap<_, _> = [("East".to_string(), team(focus("exec", 3.0)))].into();
        // The first computation only records.
        assert!(coaching_items(&mut known, &now, Ts(1)).is_empty());
        assert_eq!(known["East"], focus("exec", 3.0));
        // The same focus with other figures: nothing.
        let same: BTreeMap<_, _> = [("East".to_string(), team(focus("exec", 2.5)))].into();
        assert!(coaching_items(&mut known, &same, Ts(2)).is_empty());
        // Another behaviour, and a team not seen before: an item each.
        let moved: BTreeMap<_, _> = [
            ("East".to_string(), team(focus("multithread", 4.0))),
            ("West".to_string(), team(None)),
        ]
        .into();
        let items = coaching_items(&mut known, &moved, Ts(3));
        assert_eq!(items.len(), 2);
        let east = items[0].coaching.as_ref().unwrap();
        assert_eq!((east.team.as_str(), east.rep_ids.len()), ("East", 2));
        assert_eq!(east.previous, focus("exec", 2.5));
        assert_eq!(east.now, focus("multithread", 4.0));
        assert_eq!(items[0].kind, ItemKind::CoachingChange);
        assert!(items[0].change.is_none() && items[0].deal().is_none());
        assert!(items[0].why.contains("Do exec") && items[0].why.contains("Do multithread"));
        assert!(items[1].why.ends_with("nothing to coach"));
        // Seen by a scope holding the whole team only.
        assert!(items[0].visible_to(&Scope::All));
        let one = Scope::Reps(["R1".to_string()].into());
        let both = Scope::Reps(["R1".to_string(), "R2".to_string()].into());
        assert!(!items[0].visible_to(&one));
        assert!(items[0].visible_to(&both));
    }

    fn change(
        id: &str,
        before: Option<f64>,
        after: Option<f64>,
        amount: Option<f64>,
    ) -> ScoreChange {
        ScoreChange {
            opportunity_id: id.into(),
            position: 1,
            rep_id: Some("R1".into()),
            model_id: "m".into(),
            as_of: Ts(0),
            before,
            after,
            moved_by: Vec::new(),
            stage: None,
            previous_stage: None,
            account_id: Some("A1".into()),
            amount,
            reasons: Vec::new(),
            next_action: Some(crate::live::NextAction {
                behaviour: "exec_engaged".into(),
                title: "Engage an executive".into(),
                uplift_points: 4.0,
            }),
            idle_days: None,
            previous_idle_days: None,
        }
    }

    #[test]
    fn the_rules_queue_large_moves_on_large_deals_and_strategic_accounts_only() {
        let rules = Rules {
            score_change_points: Some(10.0),
            min_amount: Some(50_000.0),
            strategic_accounts: Vec::new(),
            coaching_changes: false,
        };
        let changes = [
            change("big-move-big-deal", Some(0.50), Some(0.38), Some(80_000.0)),
            change(
                "big-move-small-deal",
                Some(0.50),
                Some(0.30),
                Some(10_000.0),
            ),
            change("small-move", Some(0.50), Some(0.45), Some(80_000.0)),
            change("exactly-ten", Some(0.50), Some(0.60), Some(80_000.0)),
            change("no-amount", Some(0.50), Some(0.20), None),
            change("first-score", None, Some(0.9), Some(80_000.0)),
        ];
        let items = items_for(&changes, &rules, Ts(0));
        let ids: Vec<&str> = items.iter().map(|i| i.deal().unwrap()).collect();
        assert_eq!(ids, ["big-move-big-deal"]);
        assert!(items[0].why.contains("-12.0 points"), "{}", items[0].why);
        // Any amount when no minimum is set; a strategic account's next action.
        let rules = Rules {
            score_change_points: Some(10.0),
            min_amount: None,
            strategic_accounts: vec!["A1".into()],
            coaching_changes: false,
        };
        let items = items_for(&changes[4..5], &rules, Ts(0));
        let kinds: Vec<ItemKind> = items.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, [ItemKind::ScoreChange, ItemKind::StrategicAction]);
        assert!(items_for(&changes, &Rules::default(), Ts(0)).is_empty());
    }

    #[test]
    fn a_decision_is_recorded_once_with_the_model_and_the_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let store = winsignal_store::EmbeddedStore::open(&dir.path().join("ws")).unwrap();
        let changes = [change("D1", Some(0.5), Some(0.2), Some(90_000.0))];
        // No rules: nothing queued.
        assert_eq!(enqueue(&store, &changes).unwrap(), 0);
        set_rules(
            &store,
            "local:ann",
            &Rules {
                score_change_points: Some(10.0),
                ..Rules::default()
            },
        )
        .unwrap();
        assert_eq!(enqueue(&store, &changes).unwrap(), 1);
        // The same deal again while its item is undecided: no second item.
        assert_eq!(enqueue(&store, &changes).unwrap(), 0);
        let all = Scope::All;
        let open = list(&store, &all, false).unwrap();
        assert_eq!(open.len(), 1);
        let id = open[0].item.id;
        // Another rep's scope does not see it; a rep may not decide.
        let other = Scope::Reps(["R2".to_string()].into());
        assert!(list(&store, &other, false).unwrap().is_empty());
        let ask = Ask {
            verdict: Verdict::Edit,
            reason_code: "missing_context",
            comment: "the champion left last week",
            corrected_p_win: Some(0.1),
        };
        assert!(decide(&store, id, "rita", Role::Rep, &all, &ask).is_err());
        assert!(decide(&store, id, "bob", Role::Manager, &other, &ask).is_err());
        let bad = Ask {
            reason_code: "because",
            ..ask.clone()
        };
        assert!(decide(&store, id, "bob", Role::Manager, &all, &bad).is_err());
        let d = decide(&store, id, "bob", Role::Manager, &all, &ask).unwrap();
        assert_eq!(d.model_id, "m");
        assert_eq!(d.p_win, Some(0.2));
        let again = decide(&store, id, "ann", Role::Admin, &all, &ask).unwrap_err();
        assert!(
            again.to_string().contains("already decided by bob"),
            "{again}"
        );
        assert!(list(&store, &all, false).unwrap().is_empty());
        assert_eq!(list(&store, &all, true).unwrap().len(), 1);
        assert_eq!(overrides(&store).unwrap()["D1"].corrected_p_win, Some(0.1));
        // Decided, the deal can be queued again.
        assert_eq!(enqueue(&store, &changes).unwrap(), 1);
        let audit = crate::audit::entries(&store, 0, None).unwrap();
        assert!(audit
            .iter()
            .any(|e| e.action == "review.decide" && e.actor == "bob"));
        assert!(crate::audit::verify(&store).unwrap().intact());
    }
}
