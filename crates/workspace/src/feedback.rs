//! Reps' feedback on next-best actions: "done" or "not relevant", with a comment, on an action the
//! deal's score offers now. Kept in the store's journal stream [`STREAM`] (keyed by deal), with who,
//! when, the model and the P(win) it was given on; shown with the deal, and summed per behaviour
//! ([`summary`]): how often an action is taken up, and how often it is judged beside the point, which is
//! what evaluating the actions, and the next catalog, start from.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use winsignal_core::Ts;
use winsignal_score::explain::DealScore;
use winsignal_store::{JournalQuery, Store, StoreRead};

use crate::Refusal;

/// The journal stream of feedback, keyed by opportunity id.
pub const STREAM: &str = "action-feedback";

/// What a rep says of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Done,
    NotRelevant,
}

/// One piece of feedback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Feedback {
    #[serde(default)]
    pub seq: u64,
    pub at: Ts,
    pub user: String,
    pub opportunity_id: String,
    pub behaviour: String,
    pub verdict: Verdict,
    pub comment: String,
    /// The model whose action it was, and the deal's P(win) then.
    pub model_id: String,
    pub p_win: f64,
    /// The uplift the action promised, in points.
    pub uplift_points: f64,
}

/// Records `user`'s feedback on the action for `behaviour` that `deal` (its live score, as the caller
/// may see it) offers now, or a `done` that takes back the deal's dismissal of it.
pub fn record(
    store: &dyn Store,
    deal: &DealScore,
    model_id: &str,
    user: &str,
    behaviour: &str,
    verdict: Verdict,
    comment: &str,
) -> Result<Feedback> {
    let uplift_points = match deal.actions.iter().find(|a| a.behaviour == behaviour) {
        Some(action) => action.uplift_points,
        None => {
            // An action the rep dismissed is not offered; `done` takes the dismissal back.
            let dismissal = list(store, Some(&deal.opportunity_id))?
                .into_iter()
                .rev()
                .find(|f| f.behaviour == behaviour)
                .filter(|f| f.verdict == Verdict::NotRelevant);
            match (dismissal, verdict) {
                (Some(f), Verdict::Done) => f.uplift_points,
                (Some(_), Verdict::NotRelevant) => {
                    return Err(Refusal::Rule(format!(
                        "the action {behaviour:?} of deal {} was marked not relevant already",
                        deal.opportunity_id
                    ))
                    .into())
                }
                (None, _) => {
                    let offered: Vec<&str> =
                        deal.actions.iter().map(|a| a.behaviour.as_str()).collect();
                    return Err(Refusal::BadRequest(format!(
                        "deal {} offers no action {behaviour:?}; its actions are: {}",
                        deal.opportunity_id,
                        if offered.is_empty() {
                            "none".to_string()
                        } else {
                            offered.join(", ")
                        }
                    ))
                    .into());
                }
            }
        }
    };
    let mut f = Feedback {
        seq: 0,
        at: Ts::now(),
        user: user.to_string(),
        opportunity_id: deal.opportunity_id.clone(),
        behaviour: behaviour.to_string(),
        verdict,
        comment: comment.to_string(),
        model_id: model_id.to_string(),
        p_win: deal.p_win,
        uplift_points,
    };
    f.seq = store.append(
        STREAM,
        f.at,
        &[(f.opportunity_id.clone(), serde_json::to_vec(&f)?)],
    )?[0];
    Ok(f)
}

/// The actions reps said are not relevant, by deal: each deal's latest verdict on a behaviour, kept
/// when it is `not_relevant`. A deal's score does not offer them again (batch and live alike), so
/// what a rep dismissed stays dismissed.
#[derive(Debug, Clone, Default)]
pub struct Dismissed {
    pub by_deal: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// The number of the last feedback read.
    pub seen: u64,
}

impl Dismissed {
    /// The dismissed actions as the store holds them now.
    pub fn read(read: &dyn StoreRead) -> Result<Dismissed> {
        Ok(Dismissed::newer_than(read, 0)?.unwrap_or_default())
    }

    /// The dismissed actions, if feedback was recorded after number `seen`; None when none was.
    pub fn newer_than(read: &dyn StoreRead, seen: u64) -> Result<Option<Dismissed>> {
        let since = read.journal(
            STREAM,
            &JournalQuery {
                key: None,
                after: seen,
                limit: Some(1),
            },
        )?;
        if since.is_empty() {
            return Ok(None);
        }
        let mut latest: BTreeMap<(String, String), Verdict> = BTreeMap::new();
        let mut last = seen;
        for f in list(read, None)? {
            last = last.max(f.seq);
            latest.insert((f.opportunity_id, f.behaviour), f.verdict);
        }
        let mut by_deal: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
        for ((deal, behaviour), verdict) in latest {
            if verdict == Verdict::NotRelevant {
                by_deal.entry(deal).or_default().insert(behaviour);
            }
        }
        Ok(Some(Dismissed {
            by_deal,
            seen: last,
        }))
    }

    /// Takes the actions its rep dismissed off `deal`.
    pub fn apply(&self, deal: &mut DealScore) {
        if let Some(gone) = self.by_deal.get(&deal.opportunity_id) {
            deal.actions.retain(|a| !gone.contains(&a.behaviour));
        }
    }
}

/// Feedback on at least this many deals before a behaviour's action can be withheld.
pub const WITHHOLD_MIN_DEALS: usize = 10;
/// ... and at least this share of them judged it not relevant.
pub const WITHHOLD_SHARE: f64 = 0.5;

/// The behaviours whose actions reps judged not relevant on at least [`WITHHOLD_SHARE`] of at least
/// [`WITHHOLD_MIN_DEALS`] deals (each deal's latest verdict): training withholds their actions.
pub fn withheld(read: &dyn StoreRead) -> Result<Vec<BehaviourFeedback>> {
    Ok(summary(read)?
        .into_iter()
        .filter(|b| b.deals >= WITHHOLD_MIN_DEALS && b.not_relevant_share >= WITHHOLD_SHARE)
        .collect())
}

/// Every piece of feedback on a deal (or on every deal), oldest first.
pub fn list(read: &dyn StoreRead, opportunity_id: Option<&str>) -> Result<Vec<Feedback>> {
    let query = JournalQuery {
        key: opportunity_id.map(str::to_string),
        ..JournalQuery::default()
    };
    read.journal(STREAM, &query)?
        .into_iter()
        .map(|e| {
            let mut f: Feedback = serde_json::from_slice(&e.body)
                .with_context(|| format!("action feedback {} cannot be read", e.seq))?;
            f.seq = e.seq;
            Ok(f)
        })
        .collect()
}

/// Feedback on one behaviour's actions, over every deal.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BehaviourFeedback {
    pub behaviour: String,
    pub done: usize,
    pub not_relevant: usize,
    /// Deals with any feedback on it.
    pub deals: usize,
    /// `not_relevant / (done + not_relevant)`.
    pub not_relevant_share: f64,
}

/// Feedback summed per behaviour, the most judged beside the point first; each deal's latest verdict
/// on a behaviour counts once.
pub fn summary(read: &dyn StoreRead) -> Result<Vec<BehaviourFeedback>> {
    let mut latest: BTreeMap<(String, String), Verdict> = BTreeMap::new();
    for f in list(read, None)? {
        latest.insert((f.behaviour, f.opportunity_id), f.verdict);
    }
    let mut by: BTreeMap<String, BehaviourFeedback> = BTreeMap::new();
    for ((behaviour, _), verdict) in latest {
        let b = by
            .entry(behaviour.clone())
            .or_insert_with(|| BehaviourFeedback {
                behaviour,
                ..BehaviourFeedback::default()
            });
        b.deals += 1;
        match verdict {
            Verdict::Done => b.done += 1,
            Verdict::NotRelevant => b.not_relevant += 1,
        }
    }
    let mut out: Vec<BehaviourFeedback> = by
        .into_values()
        .map(|mut b| {
            b.not_relevant_share = b.not_relevant as f64 / (b.done + b.not_relevant) as f64;
            b
        })
        .collect();
    out.sort_by(|a, b| {
        b.not_relevant_share
            .total_cmp(&a.not_relevant_share)
            .then_with(|| a.behaviour.cmp(&b.behaviour))
    });
    Ok(out)
}
