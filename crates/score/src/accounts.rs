//! Accounts without an open deal, ranked for outreach: how much they look like accounts we have won
//! (same size and industry), how engaged they are now (product use, sales activities, marketing
//! touches, decayed with a 30-day half-life) and who they are related to (already a customer, or a
//! parent or sister account that is), combined into one score with the reasons in plain words.
//! Methods: docs/methodology.md, "Account prioritisation".

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use winsignal_core::time::MS_PER_DAY;
use winsignal_core::{ActivityStatus, Outcome, Ts};
use winsignal_features::context::NONE;
use winsignal_features::engine::Engine;

/// The version of the [`Prioritisation`] JSON (bumped on incompatible change).
pub const SCHEMA: u32 = 1;

/// One deal at an account.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AccountDeal {
    pub created: Ts,
    pub closed: Option<Ts>,
    pub outcome: Outcome,
}

/// An account with what prioritisation reads about it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccountInput {
    pub account_id: String,
    pub name: Option<String>,
    /// The account's size: its segment, or an employee band when it has none.
    pub segment: Option<String>,
    pub industry: Option<String>,
    /// Index of the parent account in the same slice.
    pub parent: Option<usize>,
    pub deals: Vec<AccountDeal>,
    /// Product events: when, and the user (0 when unknown).
    pub product_events: Vec<(Ts, u64)>,
    pub touches: Vec<Ts>,
    /// Sales and customer-success activities that took place (not ones scheduled for later).
    pub activities: Vec<Ts>,
}

/// How the score is made. The weights are a documented starting point, not fitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Options {
    /// Half-life of engagement, in days.
    pub half_life_days: f64,
    /// "Active product users" are users with an event in this many days before the as-of time.
    pub active_days: f64,
    /// "Recent" counts in the reasons cover this many days.
    pub recent_days: f64,
    /// Pseudo-deals of prior weight in the smoothed lookalike win rates.
    pub smoothing_deals: f64,
    /// Weights of the three components (sum 1).
    pub weight_fit: f64,
    pub weight_engagement: f64,
    pub weight_relationship: f64,
    /// Weights of the engagement channels (sum 1).
    pub weight_product: f64,
    pub weight_activities: f64,
    pub weight_touches: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            half_life_days: 30.0,
            active_days: 14.0,
            recent_days: 30.0,
            smoothing_deals: 20.0,
            weight_fit: 0.35,
            weight_engagement: 0.45,
            weight_relationship: 0.20,
            weight_product: 0.5,
            weight_activities: 0.3,
            weight_touches: 0.2,
        }
    }
}

/// Everything `winsignal accounts --prioritise` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Prioritisation {
    pub schema: u32,
    /// Engagement is measured as of this time (the end of the data).
    pub as_of: String,
    pub options: Options,
    /// Accounts in the data, and those without an open deal (the ones ranked).
    pub accounts: usize,
    pub candidates: usize,
    /// Win rate of every closed deal: the lookalike baseline.
    pub base_win_rate: Option<f64>,
    /// Accounts with a won deal.
    pub won_accounts: usize,
    /// Decayed counts at which a channel gives half its engagement points: the median over the accounts
    /// of the same kind (customers, or not yet customers) with any.
    pub half_points: HalfPoints,
    /// The candidates, highest score first (`--top` keeps the first ones).
    pub ranked: Vec<AccountPriority>,
}

/// Half-points of the engagement channels, `[product events, activities, touches]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HalfPoints {
    pub customers: [f64; 3],
    pub prospects: [f64; 3],
}

/// One account's priority.
#[derive(Debug, Clone, Serialize)]
pub struct AccountPriority {
    pub rank: usize,
    pub account_id: String,
    pub name: Option<String>,
    pub segment: Option<String>,
    pub industry: Option<String>,
    /// `customer` (has a won deal), `lost_before` (closed deals, none won) or `no_deals`.
    pub status: &'static str,
    /// 0–100: 100 × (weighted fit + engagement + relationship).
    pub score: f64,
    /// Each component on 0–1.
    pub fit: f64,
    pub engagement: f64,
    pub relationship: f64,
    pub signals: Signals,
    /// The signals in plain words, largest contribution first.
    pub reasons: Vec<String>,
}

/// The measurements behind a score.
#[derive(Debug, Clone, Serialize)]
pub struct Signals {
    /// Exponentially decayed counts as of the as-of time.
    pub product_decayed: f64,
    pub activities_decayed: f64,
    pub touches_decayed: f64,
    /// Distinct product users with an event in the last `active_days`.
    pub active_users: usize,
    /// Counts in the last `recent_days`.
    pub product_events_recent: usize,
    pub activities_recent: usize,
    pub touches_recent: usize,
    /// Other accounts of the same size and industry with a won deal.
    pub similar_won_accounts: usize,
    /// Closed and won deals at other accounts of the same size and industry.
    pub similar_closed_deals: usize,
    pub similar_won_deals: usize,
    /// Their win rate, smoothed toward the size's and then the overall win rate.
    pub lookalike_win_rate: f64,
    /// Won deals at the account itself.
    pub won_deals: usize,
    /// Parent, child and sister accounts with a won deal (ids).
    pub customer_relatives: Vec<String>,
}

/// The accounts of a replayed engine with their deals and the last year of engagement before `as_of`.
pub fn inputs_from_engine(engine: &Engine, as_of: Ts) -> Vec<AccountInput> {
    let ctx = engine.context();
    let since = as_of.0 - 365 * MS_PER_DAY;
    let window = |t: i64| t >= since && t <= as_of.0;
    ctx.accounts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let state = engine.accounts().get(i);
            AccountInput {
                account_id: a.id.clone(),
                name: a.name.clone(),
                segment: ctx.segment_of(i as u32),
                industry: a
                    .industry
                    .as_ref()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
                parent: (a.parent != NONE).then_some(a.parent as usize),
                deals: a
                    .opportunities
                    .iter()
                    .map(|&o| {
                        let o = &ctx.opps[o as usize];
                        AccountDeal {
                            created: o.created,
                            closed: o.closed,
                            outcome: o.outcome,
                        }
                    })
                    .collect(),
                product_events: state.map_or_else(Vec::new, |s| {
                    s.usage()
                        .iter()
                        .filter(|u| window(u.at))
                        .map(|u| (Ts(u.at), engine.user_of(u)))
                        .collect()
                }),
                touches: state.map_or_else(Vec::new, |s| {
                    s.touches()
                        .iter()
                        .filter(|t| window(t.at))
                        .map(|t| Ts(t.at))
                        .collect()
                }),
                activities: state.map_or_else(Vec::new, |s| {
                    s.acts()
                        .iter()
                        .filter(|a| a.status != Some(ActivityStatus::Scheduled) && window(a.at))
                        .map(|a| Ts(a.at))
                        .collect()
                }),
            }
        })
        .collect()
}

impl AccountDeal {
    /// Open at `t`: created by then and not closed by then.
    fn open_at(&self, t: Ts) -> bool {
        self.created <= t && (self.outcome == Outcome::Open || self.closed.is_some_and(|c| c > t))
    }

    fn won_by(&self, t: Ts) -> bool {
        self.outcome == Outcome::Won && self.closed.is_some_and(|c| c <= t)
    }

    fn closed_by(&self, t: Ts) -> bool {
        self.outcome != Outcome::Open && self.closed.is_some_and(|c| c <= t)
    }
}

fn decayed(times: impl Iterator<Item = Ts>, as_of: Ts, half_life_days: f64) -> f64 {
    let rate = std::f64::consts::LN_2 / (half_life_days * MS_PER_DAY as f64);
    times
        .filter(|t| *t <= as_of)
        .fold(0.0, |sum, t| sum + (-((as_of.0 - t.0) as f64) * rate).exp())
}

fn median_positive(v: impl Iterator<Item = f64>) -> f64 {
    let mut p: Vec<f64> = v.filter(|x| *x > 0.0).collect();
    if p.is_empty() {
        return 1.0;
    }
    p.sort_by(f64::total_cmp);
    let m = p.len() / 2;
    if p.len() % 2 == 1 {
        p[m]
    } else {
        0.5 * (p[m - 1] + p[m])
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn describe(segment: Option<&str>, industry: Option<&str>) -> String {
    match (segment, industry) {
        (Some(s), Some(i)) => format!("size ({s}) and industry ({i})"),
        (Some(s), None) => format!("size ({s}), industry unknown"),
        (None, Some(i)) => format!("industry ({i}), size unknown"),
        (None, None) => "profile (size and industry unknown)".into(),
    }
}

/// Closed and won deals (and accounts with a win) by a key.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    closed: usize,
    won: usize,
    won_accounts: usize,
}

impl Tally {
    fn add(&mut self, closed: usize, won: usize) {
        self.closed += closed;
        self.won += won;
        self.won_accounts += usize::from(won > 0);
    }

    fn without(self, closed: usize, won: usize) -> Tally {
        Tally {
            closed: self.closed - closed,
            won: self.won - won,
            won_accounts: self.won_accounts - usize::from(won > 0),
        }
    }

    /// The win rate smoothed toward `prior` with `k` pseudo-deals.
    fn rate(self, prior: f64, k: f64) -> f64 {
        (self.won as f64 + k * prior) / (self.closed as f64 + k)
    }
}

/// Ranks the accounts without an open deal at `as_of`.
pub fn prioritise(accounts: &[AccountInput], as_of: Ts, opts: &Options) -> Prioritisation {
    let closed: Vec<usize> = accounts
        .iter()
        .map(|a| a.deals.iter().filter(|d| d.closed_by(as_of)).count())
        .collect();
    let won: Vec<usize> = accounts
        .iter()
        .map(|a| a.deals.iter().filter(|d| d.won_by(as_of)).count())
        .collect();
    // Lookalike counts by size and by size × industry.
    type Key = (Option<String>, Option<String>);
    let mut all = Tally::default();
    let mut by_size: BTreeMap<Option<String>, Tally> = BTreeMap::new();
    let mut by_cell: BTreeMap<Key, Tally> = BTreeMap::new();
    for (i, a) in accounts.iter().enumerate() {
        all.add(closed[i], won[i]);
        by_size
            .entry(a.segment.clone())
            .or_default()
            .add(closed[i], won[i]);
        by_cell
            .entry((a.segment.clone(), a.industry.clone()))
            .or_default()
            .add(closed[i], won[i]);
    }
    let base_win_rate = (all.closed > 0).then(|| all.won as f64 / all.closed as f64);
    let base = base_win_rate.unwrap_or(0.5).clamp(1e-3, 1.0 - 1e-3);

    // Engagement of every account; the half-points per kind of account, so a prospect's first users
    // are measured against other prospects, not against customers' everyday use.
    let product: Vec<f64> = accounts
        .iter()
        .map(|a| {
            decayed(
                a.product_events.iter().map(|e| e.0),
                as_of,
                opts.half_life_days,
            )
        })
        .collect();
    let acts: Vec<f64> = accounts
        .iter()
        .map(|a| decayed(a.activities.iter().copied(), as_of, opts.half_life_days))
        .collect();
    let touches: Vec<f64> = accounts
        .iter()
        .map(|a| decayed(a.touches.iter().copied(), as_of, opts.half_life_days))
        .collect();
    let half_of = |customers: bool| {
        let of = |v: &[f64]| {
            median_positive(
                (0..v.len())
                    .filter(|i| (won[*i] > 0) == customers)
                    .map(|i| v[i]),
            )
        };
        [of(&product), of(&acts), of(&touches)]
    };
    let half_points = HalfPoints {
        customers: half_of(true),
        prospects: half_of(false),
    };
    let saturate = |x: f64, h: f64| x / (x + h);

    // Family: parent, children and siblings.
    let parent_of = |i: usize| {
        accounts[i]
            .parent
            .filter(|p| *p < accounts.len() && *p != i)
    };
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); accounts.len()];
    for i in 0..accounts.len() {
        if let Some(p) = parent_of(i) {
            children[p].push(i);
        }
    }

    let active_since = Ts(as_of.0 - (opts.active_days * MS_PER_DAY as f64) as i64);
    let recent_since = Ts(as_of.0 - (opts.recent_days * MS_PER_DAY as f64) as i64);
    let days = |d: f64| format!("{d:.0} days");
    let mut ranked: Vec<AccountPriority> = Vec::new();
    for (i, a) in accounts.iter().enumerate() {
        if a.deals.iter().any(|d| d.open_at(as_of)) {
            continue;
        }
        // Lookalike: the account's own deals are left out of its own counts.
        let size = by_size
            .get(&a.segment)
            .copied()
            .unwrap_or_default()
            .without(closed[i], won[i]);
        let cell = by_cell
            .get(&(a.segment.clone(), a.industry.clone()))
            .copied()
            .unwrap_or_default()
            .without(closed[i], won[i]);
        let lookalike = cell.rate(size.rate(base, opts.smoothing_deals), opts.smoothing_deals);
        let fit = lookalike / (lookalike + base);

        let half = if won[i] > 0 {
            half_points.customers
        } else {
            half_points.prospects
        };
        let e_product = saturate(product[i], half[0]);
        let e_acts = saturate(acts[i], half[1]);
        let e_touches = saturate(touches[i], half[2]);
        let engagement = opts.weight_product * e_product
            + opts.weight_activities * e_acts
            + opts.weight_touches * e_touches;

        let mut relatives: BTreeSet<usize> = children[i].iter().copied().collect();
        if let Some(p) = parent_of(i) {
            relatives.insert(p);
            relatives.extend(children[p].iter().copied());
        }
        relatives.remove(&i);
        let customer_relatives: Vec<usize> =
            relatives.into_iter().filter(|r| won[*r] > 0).collect();
        let relationship = if won[i] > 0 {
            1.0
        } else if !customer_relatives.is_empty() {
            0.75
        } else {
            0.0
        };
        let score = 100.0
            * (opts.weight_fit * fit
                + opts.weight_engagement * engagement
                + opts.weight_relationship * relationship);

        let active_users: BTreeSet<u64> = a
            .product_events
            .iter()
            .filter(|(t, u)| *u != 0 && *t > active_since && *t <= as_of)
            .map(|(_, u)| *u)
            .collect();
        let recent = |ts: &mut dyn Iterator<Item = Ts>| {
            ts.filter(|t| *t > recent_since && *t <= as_of).count()
        };
        let signals = Signals {
            product_decayed: product[i],
            activities_decayed: acts[i],
            touches_decayed: touches[i],
            active_users: active_users.len(),
            product_events_recent: recent(&mut a.product_events.iter().map(|e| e.0)),
            activities_recent: recent(&mut a.activities.iter().copied()),
            touches_recent: recent(&mut a.touches.iter().copied()),
            similar_won_accounts: cell.won_accounts,
            similar_closed_deals: cell.closed,
            similar_won_deals: cell.won,
            lookalike_win_rate: lookalike,
            won_deals: won[i],
            customer_relatives: customer_relatives
                .iter()
                .map(|r| accounts[*r].account_id.clone())
                .collect(),
        };

        // Reasons with their contribution to the score, largest first.
        let mut reasons: Vec<(f64, String)> = Vec::new();
        if signals.active_users > 0 || signals.product_events_recent > 0 {
            let users = if signals.active_users > 0 {
                format!(
                    "{} active in the last {}",
                    plural(signals.active_users, "product user", "product users"),
                    days(opts.active_days)
                )
            } else {
                "product use".to_string()
            };
            reasons.push((
                opts.weight_engagement * opts.weight_product * e_product,
                format!(
                    "{users} ({} in the last {})",
                    plural(signals.product_events_recent, "event", "events"),
                    days(opts.recent_days)
                ),
            ));
        }
        if signals.activities_recent > 0 {
            reasons.push((
                opts.weight_engagement * opts.weight_activities * e_acts,
                format!(
                    "{} in the last {}",
                    plural(
                        signals.activities_recent,
                        "sales activity",
                        "sales activities"
                    ),
                    days(opts.recent_days)
                ),
            ));
        }
        if signals.touches_recent > 0 {
            reasons.push((
                opts.weight_engagement * opts.weight_touches * e_touches,
                format!(
                    "{} in the last {}",
                    plural(
                        signals.touches_recent,
                        "marketing touch",
                        "marketing touches"
                    ),
                    days(opts.recent_days)
                ),
            ));
        }
        let profile = describe(a.segment.as_deref(), a.industry.as_deref());
        if cell.closed > 0 && lookalike >= base {
            reasons.push((
                opts.weight_fit * (fit - 0.5),
                format!(
                    "same {profile} as {}; deals at such accounts win about {:.0} % vs {:.0} % \
                     overall (n = {})",
                    plural(cell.won_accounts, "won account", "won accounts"),
                    100.0 * lookalike,
                    100.0 * base,
                    cell.closed
                ),
            ));
        } else if cell.closed > 0 {
            reasons.push((
                0.0,
                format!(
                    "deals at accounts of the same {profile} win less often: about {:.0} % vs \
                     {:.0} % overall (n = {})",
                    100.0 * lookalike,
                    100.0 * base,
                    cell.closed
                ),
            ));
        }
        if won[i] > 0 {
            let last = a
                .deals
                .iter()
                .filter(|d| d.won_by(as_of))
                .filter_map(|d| d.closed)
                .max();
            reasons.push((
                opts.weight_relationship * relationship,
                format!(
                    "already a customer: {}{}",
                    plural(won[i], "won deal", "won deals"),
                    last.map_or(String::new(), |t| format!(
                        ", the last closed {}",
                        t.to_date_string()
                    ))
                ),
            ));
        } else if let Some(&r) = customer_relatives.first() {
            let rel = &accounts[r];
            let how = if parent_of(i) == Some(r) {
                "parent account"
            } else if parent_of(r) == Some(i) {
                "subsidiary"
            } else {
                "sister account"
            };
            let more = customer_relatives.len() - 1;
            reasons.push((
                opts.weight_relationship * relationship,
                format!(
                    "{how} {} is a customer{}",
                    rel.name.as_deref().unwrap_or(&rel.account_id),
                    if more > 0 {
                        format!(
                            " (and {})",
                            plural(more, "more related account", "more related accounts")
                        )
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        if signals.active_users == 0
            && signals.product_events_recent == 0
            && signals.activities_recent == 0
            && signals.touches_recent == 0
        {
            reasons.push((
                0.0,
                format!("no engagement in the last {}", days(opts.recent_days)),
            ));
        }
        reasons.sort_by(|x, y| y.0.total_cmp(&x.0));
        let status = if won[i] > 0 {
            "customer"
        } else if closed[i] > 0 {
            "lost_before"
        } else {
            "no_deals"
        };
        ranked.push(AccountPriority {
            rank: 0,
            account_id: a.account_id.clone(),
            name: a.name.clone(),
            segment: a.segment.clone(),
            industry: a.industry.clone(),
            status,
            score,
            fit,
            engagement,
            relationship,
            signals,
            reasons: reasons.into_iter().map(|(_, r)| r).collect(),
        });
    }
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.account_id.cmp(&b.account_id))
    });
    for (i, r) in ranked.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    Prioritisation {
        schema: SCHEMA,
        as_of: as_of.to_rfc3339(),
        options: *opts,
        accounts: accounts.len(),
        candidates: ranked.len(),
        base_win_rate,
        won_accounts: all.won_accounts,
        half_points,
        ranked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_halves_every_half_life() {
        let now = Ts(100 * MS_PER_DAY);
        let d = decayed(
            [Ts(now.0), Ts(now.0 - 30 * MS_PER_DAY), Ts(now.0 + 1)].into_iter(),
            now,
            30.0,
        );
        // Now counts 1, a half-life ago ½, the future nothing.
        assert!((d - 1.5).abs() < 1e-12, "{d}");
    }
}
