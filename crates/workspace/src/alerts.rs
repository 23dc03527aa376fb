//! Monitoring alerts: `winsignal monitor check` and the service's monitoring pass
//! (`serve --monitor-every`) measure the active win model's live performance and the drift of the latest
//! window in one pass, and record an alert when a condition starts, changes or ends. Webhooks with the
//! trigger `alert` are sent them, through the same outbox as score changes ([`crate::hooks`]).
//!
//! Two conditions are watched, each one alert at a time (its key):
//! - `performance:<model>`: live AUC below the floor (the holdout's AUC less the registry gate's
//!   tolerance), with the rollback recommendation and the model a rollback would restore;
//! - `drift:<model>`: features (and the score, `p_win`) alarming in the latest window, by the rule of
//!   `winsignal monitor drift`. It fires again when the set of alarming features changes.
//!
//! An alert is recorded as `firing` when its condition starts or changes and as `resolved` when it ends
//! (or its model is no longer active): a condition that holds check after check is not sent again.
//! The figures of the latest check are kept too ([`LATEST`]), for `/metrics`.

use anyhow::Result;
use serde::{Deserialize, Serialize};
use winsignal_core::Ts;
use winsignal_store::{Store, StoreRead};

use crate::monitor::{Drift, Performance};
use crate::Progress;

/// The journal of alerts, keyed by alert key; each entry is an [`Alert`].
pub const ALERTS: &str = "monitor-alerts";
/// The named state holding the figures of the latest check ([`Latest`]); its update lock orders
/// checks: each compares with the alerts as recorded and appends with no other check in between, in
/// this process or another.
pub const LATEST: &str = "monitor-latest";

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Live AUC below the floor.
    Performance,
    /// Features or the score drifting in the latest window.
    Drift,
}

/// Whether the alert's condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Firing,
    Resolved,
}

/// One alert as recorded and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `performance:<model>` or `drift:<model>`.
    pub key: String,
    pub kind: Kind,
    pub state: State,
    pub model_id: String,
    /// One plain sentence: what was measured against what.
    pub summary: String,
    /// What to do (for performance: roll back, or retrain).
    pub recommendation: Option<String>,
    /// For performance: the model `winsignal models rollback` would restore.
    pub rollback_to: Option<String>,
    /// For performance: live AUC and the floor; for drift: the largest PSI and the alarm's minimum PSI.
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// For drift: the alarming features (`p_win` for the score), largest PSI first.
    pub features: Vec<String>,
    pub checked_at: Ts,
}

/// The figures of one check, for `/metrics` and `monitor check --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    pub checked_at: Ts,
    pub model_id: String,
    pub live_auc: Option<f64>,
    pub auc_floor: Option<f64>,
    pub holdout_auc: Option<f64>,
    pub holdout_estimated_auc: Option<f64>,
    /// The AUC expected of the deals open now, from their probabilities alone.
    pub open_estimated_auc: Option<f64>,
    pub estimate_trusted: bool,
    /// The latest window: its snapshots, the score's PSI and each tested feature's PSI and alarm.
    pub window_from: Option<Ts>,
    pub window_until: Option<Ts>,
    pub window_snapshots: usize,
    pub score_psi: Option<f64>,
    pub features: Vec<FeaturePsi>,
    /// Alerts firing after the check.
    pub firing: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeaturePsi {
    pub feature: String,
    pub psi: f64,
    pub alarm: bool,
}

/// What a check found and recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub figures: Latest,
    /// Alerts recorded by this check (started, changed or ended), each with its journal number.
    pub recorded: Vec<(u64, Alert)>,
    /// Every alert firing after the check.
    pub firing: Vec<Alert>,
    pub performance: Performance,
    pub drift: Drift,
}

/// Alerts as last recorded, by key, each with its journal number.
pub fn recorded(read: &dyn StoreRead) -> Result<Vec<(u64, Alert)>> {
    read.journal_latest(ALERTS)?
        .into_iter()
        .map(|e| {
            let alert: Alert = serde_json::from_slice(&e.body).map_err(|err| {
                anyhow::anyhow!("monitoring alert entry {} cannot be read: {err}", e.seq)
            })?;
            Ok((e.seq, alert))
        })
        .collect()
}

/// The last `limit` alerts recorded (started, changed or ended), newest first, with their numbers.
pub fn recent(read: &dyn StoreRead, limit: usize) -> Result<Vec<(u64, Alert)>> {
    let entries = read.journal(ALERTS, &winsignal_store::JournalQuery::default())?;
    entries
        .into_iter()
        .rev()
        .take(limit)
        .map(|e| {
            let alert: Alert = serde_json::from_slice(&e.body).map_err(|err| {
                anyhow::anyhow!("monitoring alert entry {} cannot be read: {err}", e.seq)
            })?;
            Ok((e.seq, alert))
        })
        .collect()
}

/// The alerts firing now.
pub fn firing(read: &dyn StoreRead) -> Result<Vec<Alert>> {
    Ok(recorded(read)?
        .into_iter()
        .map(|(_, a)| a)
        .filter(|a| a.state == State::Firing)
        .collect())
}

/// The figures of the latest check, if there was one.
pub fn latest(store: &dyn Store) -> Result<Option<Latest>> {
    match store.state(LATEST)? {
        Some(state) => crate::access::read_json_state(state, "monitoring figures"),
        None => Ok(None),
    }
}

/// Checks the active win model (live performance, and drift of the latest `window_days` days against
/// its training data), records the alerts that started, changed or ended, and keeps the figures. A
/// check that finishes after one that started later records nothing (the later one saw newer data).
pub fn check(store: &dyn Store, window_days: u32, progress: &mut dyn Progress) -> Result<Check> {
    if window_days == 0 {
        anyhow::bail!("give a window of at least one day");
    }
    let started = Ts::now();
    let (m, engine, snaps) = crate::monitor::model_snapshots(store, None, None, progress)?;
    let performance = crate::monitor::performance_of(&m, &engine, &snaps)?;
    let drift = crate::monitor::drift_of(&m, &engine, &snaps, window_days, 1)?;
    drop((engine, snaps));
    let conditions = conditions(&performance, &drift, started);
    let unknown = unmeasured(&performance, &drift);
    // The figures' named state is also the lock that orders checks, in this process or another.
    let done = crate::access::change_json_state(
        store,
        LATEST,
        "monitoring figures",
        |latest: &mut Option<Latest>| {
            if latest.as_ref().is_some_and(|l| l.checked_at > started) {
                return Ok(None);
            }
            let before = recorded(store)?;
            let changes = transitions(&before, &conditions, &unknown, started);
            let recorded = if changes.is_empty() {
                Vec::new()
            } else {
                let entries = changes
                    .iter()
                    .map(|a| Ok((a.key.clone(), serde_json::to_vec(a)?)))
                    .collect::<Result<Vec<_>>>()?;
                let seqs = store.append(ALERTS, started, &entries)?;
                seqs.into_iter().zip(changes).collect::<Vec<_>>()
            };
            let firing = firing(store)?;
            let figures = figures(&performance, &drift, started, firing.len());
            *latest = Some(figures.clone());
            Ok(Some((recorded, firing, figures)))
        },
    )?;
    let (recorded, firing, figures) = match done {
        Some(done) => done,
        // A later check recorded first: its alerts stand; these figures are not kept.
        None => {
            let firing = firing(store)?;
            let figures = figures(&performance, &drift, started, firing.len());
            (Vec::new(), firing, figures)
        }
    };
    Ok(Check {
        figures,
        recorded,
        firing,
        performance,
        drift,
    })
}

/// The keys of the active model's conditions that could not be measured this time (too few outcomes,
/// an empty window): their alerts are neither raised nor resolved.
fn unmeasured(p: &Performance, d: &Drift) -> Vec<String> {
    let mut out = Vec::new();
    if p.live_auc.is_none() || p.auc_floor.is_none() {
        out.push(format!("performance:{}", p.model_id));
    }
    if d.windows.first().is_none_or(|w| w.snapshots == 0) {
        out.push(format!("drift:{}", d.model_id));
    }
    out
}

/// The alerts whose conditions hold now.
fn conditions(p: &Performance, d: &Drift, checked_at: Ts) -> Vec<Alert> {
    let mut out = Vec::new();
    if let (Some(recommendation), Some(live), Some(floor)) =
        (&p.recommendation, p.live_auc, p.auc_floor)
    {
        out.push(Alert {
            key: format!("performance:{}", p.model_id),
            kind: Kind::Performance,
            state: State::Firing,
            model_id: p.model_id.clone(),
            summary: format!(
                "model {}: live AUC {live:.3} is below the floor {floor:.3}",
                p.model_id
            ),
            recommendation: Some(recommendation.clone()),
            rollback_to: p.rollback_to.clone(),
            value: Some(live),
            threshold: Some(floor),
            features: Vec::new(),
            checked_at,
        });
    }
    if let Some(w) = d.windows.first().filter(|w| !w.alarms.is_empty()) {
        let largest = w
            .features
            .iter()
            .chain(w.score.as_ref())
            .filter(|f| f.alarm)
            .map(|f| f.psi)
            .fold(f64::NAN, f64::max);
        // Largest PSI first, the score among the features.
        let mut alarming: Vec<(&str, f64)> = w
            .features
            .iter()
            .chain(w.score.as_ref())
            .filter(|f| f.alarm)
            .map(|f| (f.feature.as_str(), f.psi))
            .collect();
        alarming.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let features: Vec<String> = alarming.iter().map(|(f, _)| f.to_string()).collect();
        let named = match features.len() {
            n if n > 5 => format!("{} and {} more", features[..5].join(", "), n - 5),
            _ => features.join(", "),
        };
        out.push(Alert {
            key: format!("drift:{}", d.model_id),
            kind: Kind::Drift,
            state: State::Firing,
            model_id: d.model_id.clone(),
            summary: format!(
                "model {}: {} drifted from the training data in the window {} to {} ({} snapshots; largest PSI {largest:.2})",
                d.model_id,
                named,
                w.from.to_date_string(),
                w.until.to_date_string(),
                w.snapshots
            ),
            recommendation: Some(
                "see `winsignal monitor drift` for each feature's shift and how much of the score it moved; retrain if the drift is the business changing".into(),
            ),
            rollback_to: None,
            value: Some(largest),
            threshold: Some(d.min_psi),
            features,
            checked_at,
        });
    }
    out
}

/// What to record, given the alerts as last recorded and the conditions now: each condition that is
/// new or whose features changed (as a set: their order by PSI may change) (firing), and each firing
/// alert whose condition ended (resolved) — but not one whose condition could not be measured
/// (`unknown`).
fn transitions(
    before: &[(u64, Alert)],
    now: &[Alert],
    unknown: &[String],
    checked_at: Ts,
) -> Vec<Alert> {
    let set = |a: &Alert| {
        let mut f = a.features.clone();
        f.sort();
        f
    };
    let mut out = Vec::new();
    for a in now {
        let same = before.iter().any(|(_, b)| {
            b.key == a.key
                && b.state == State::Firing
                && set(b) == set(a)
                && b.rollback_to == a.rollback_to
        });
        if !same {
            out.push(a.clone());
        }
    }
    for (_, b) in before {
        let ended = !now.iter().any(|a| a.key == b.key) && !unknown.contains(&b.key);
        if b.state == State::Firing && ended {
            out.push(Alert {
                state: State::Resolved,
                summary: format!("resolved: {}", b.summary),
                recommendation: None,
                checked_at,
                ..b.clone()
            });
        }
    }
    out
}

fn figures(p: &Performance, d: &Drift, checked_at: Ts, firing: usize) -> Latest {
    let w = d.windows.first();
    Latest {
        checked_at,
        model_id: p.model_id.clone(),
        live_auc: p.live_auc,
        auc_floor: p.auc_floor,
        holdout_auc: p.holdout.metrics.as_ref().and_then(|m| m.auc),
        holdout_estimated_auc: p.holdout.estimated_auc,
        open_estimated_auc: p.open_now.estimated_auc,
        estimate_trusted: p.estimate_trusted,
        window_from: w.map(|w| w.from),
        window_until: w.map(|w| w.until),
        window_snapshots: w.map_or(0, |w| w.snapshots),
        score_psi: w.and_then(|w| w.score.as_ref()).map(|s| s.psi),
        features: w.map_or_else(Vec::new, |w| {
            w.features
                .iter()
                .map(|f| FeaturePsi {
                    feature: f.feature.clone(),
                    psi: f.psi,
                    alarm: f.alarm,
                })
                .collect()
        }),
        firing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(key: &str, features: &[&str]) -> Alert {
        Alert {
            key: key.into(),
            kind: if key.starts_with("drift") {
                Kind::Drift
            } else {
                Kind::Performance
            },
            state: State::Firing,
            model_id: "m1".into(),
            summary: format!("{key} holds"),
            recommendation: Some("act".into()),
            rollback_to: None,
            value: Some(0.5),
            threshold: Some(0.6),
            features: features.iter().map(|f| f.to_string()).collect(),
            checked_at: Ts(1),
        }
    }

    #[test]
    fn a_condition_is_recorded_when_it_starts_changes_and_ends_not_while_it_holds() {
        let t = Ts(2);
        // Starts.
        let now = vec![alert("drift:m1", &["a"])];
        let first = transitions(&[], &now, &[], t);
        assert_eq!(first, now);
        let before: Vec<(u64, Alert)> = vec![(1, first[0].clone())];
        // Holds: nothing recorded.
        assert!(transitions(&before, &now, &[], t).is_empty());
        // Changes: fires again with the new features.
        let changed = vec![alert("drift:m1", &["a", "b"])];
        assert_eq!(transitions(&before, &changed, &[], t), changed);
        // A second condition starts while the first holds: only it is recorded.
        let both = vec![alert("drift:m1", &["a"]), alert("performance:m1", &[])];
        assert_eq!(transitions(&before, &both, &[], t), vec![both[1].clone()]);
        // Ends: resolved, keeping what it was about.
        // Not measured this time: neither raised nor resolved.
        assert!(transitions(&before, &[], &["drift:m1".to_string()], t).is_empty());
        // The same features in another order: nothing.
        let two = vec![(1, alert("drift:m1", &["a", "b"]))];
        assert!(transitions(&two, &[alert("drift:m1", &["b", "a"])], &[], t).is_empty());
        let ended = transitions(&before, &[], &[], t);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].state, State::Resolved);
        assert_eq!(ended[0].key, "drift:m1");
        assert_eq!(ended[0].features, vec!["a".to_string()]);
        assert_eq!(ended[0].checked_at, t);
        assert!(ended[0].summary.starts_with("resolved: "));
        // A resolved alert is not resolved again.
        let after: Vec<(u64, Alert)> = vec![(2, ended[0].clone())];
        assert!(transitions(&after, &[], &[], t).is_empty());
        // And fires anew when its condition returns.
        assert_eq!(transitions(&after, &now, &[], t), now);
    }
}
