//! The knowledge graph of accounts, contacts, opportunities, reps, product users and tickets, with
//! time-stamped edges, and the multi-hop features computed from edges that exist before a landmark.

use crate::catalog::Aggregate;
use crate::context::{AccountInfo, Context, OppInfo, NONE};
use crate::engine::Engine;
use crate::eval::{won_before, Source, View};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use winsignal_core::{ActivityStatus, Outcome, Ts};

/// Graph features at a landmark.
pub(crate) fn evaluate<'a>(
    agg: &Aggregate,
    v: &View<'a>,
    sink: &mut dyn FnMut(Source<'a>, f64),
) -> f64 {
    let ctx = v.ctx;
    let me = &ctx.opps[v.opp as usize];
    match agg {
        Aggregate::ChampionReuse => champions(v, &mut Vec::new(), 0, sink),
        Aggregate::PriorWins => {
            if me.account == NONE {
                return f64::NAN;
            }
            wins_at(ctx, me.account, v, sink)
        }
        Aggregate::FamilyPriorWins => {
            if me.account == NONE {
                return f64::NAN;
            }
            let a = &ctx.accounts[me.account as usize];
            let mut family: BTreeSet<u32> = a.children.iter().copied().collect();
            if a.parent != NONE {
                family.insert(a.parent);
                family.extend(ctx.accounts[a.parent as usize].children.iter().copied());
            }
            family.remove(&me.account);
            family.into_iter().map(|f| wins_at(ctx, f, v, sink)).sum()
        }
        Aggregate::Lookalike => {
            if me.account == NONE {
                return f64::NAN;
            }
            ctx.lookalike.similarity(me.account, v.as_of)
        }
        _ => f64::NAN,
    }
}

/// Whether a graph feature reads the deal's activities. The others read only the entities and the
/// time: they change only when a won deal closed in between, or the entities changed.
pub(crate) fn reads_deal_activities(agg: &Aggregate) -> bool {
    matches!(agg, Aggregate::ChampionReuse)
}

/// Champion reuse: how many contacts on the deal's completed activities were on another deal won
/// before the landmark. Reads the activities from position `resume` on, onto `checked` (each contact of
/// those before it, with whether it was such a champion). A full evaluation is `resume` 0 onto none;
/// [`crate::memo`] resumes where it stopped while no won deal closed in between.
pub(crate) fn champions<'a>(
    v: &View<'a>,
    checked: &mut Vec<(u32, bool)>,
    resume: usize,
    sink: &mut dyn FnMut(Source<'a>, f64),
) -> f64 {
    let ctx = v.ctx;
    for a in v.deal_acts.get(resume..).unwrap_or_default() {
        if a.status != Some(ActivityStatus::Completed) {
            continue;
        }
        for &c in v.contacts(a) {
            if checked.iter().any(|&(k, _)| k == c) {
                continue;
            }
            let earlier = ctx.roles_by_contact[c as usize]
                .iter()
                .copied()
                .find(|&o| o != v.opp && won_before(ctx, o, v.as_of));
            checked.push((c, earlier.is_some()));
            if let Some(o) = earlier {
                sink(Source::Activity(a), 1.0);
                sink(Source::Opportunity(o), 1.0);
            }
        }
    }
    checked.iter().filter(|(_, champion)| *champion).count() as f64
}

fn wins_at<'a>(
    ctx: &Context,
    account: u32,
    v: &View<'a>,
    sink: &mut dyn FnMut(Source<'a>, f64),
) -> f64 {
    let mut n = 0.0;
    for &o in &ctx.accounts[account as usize].opportunities {
        if o != v.opp && won_before(ctx, o, v.as_of) {
            n += 1.0;
            sink(Source::Opportunity(o), 1.0);
        }
    }
    n
}

/// Account profiles and the running centroid of accounts with a won deal, by time of their first win.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Lookalike {
    vectors: Vec<Vec<f64>>,
    /// (time of first win, account), in time order.
    first_wins: Vec<(i64, u32)>,
    /// prefix[i] = sum of the vectors of the first i accounts in `first_wins`.
    prefix: Vec<Vec<f64>>,
    first_win_of: Vec<Option<i64>>,
}

impl Lookalike {
    pub(crate) fn build(opps: &[OppInfo], accounts: &[AccountInfo]) -> Lookalike {
        let mut vocab: BTreeMap<(u8, String), usize> = BTreeMap::new();
        for a in accounts {
            for (slot, v) in [(0u8, &a.segment), (1, &a.industry), (2, &a.country)] {
                if let Some(v) = v {
                    let n = vocab.len();
                    vocab
                        .entry((slot, v.trim().to_ascii_lowercase()))
                        .or_insert(n);
                }
            }
        }
        // BTreeMap order, not insertion order, fixes the dimension of each value.
        let dims: BTreeMap<(u8, String), usize> =
            vocab.into_keys().enumerate().map(|(i, k)| (k, i)).collect();
        let width = dims.len() + 1;
        let vectors: Vec<Vec<f64>> = accounts
            .iter()
            .map(|a| {
                let mut x = vec![0.0; width];
                for (slot, v) in [(0u8, &a.segment), (1, &a.industry), (2, &a.country)] {
                    if let Some(i) = v
                        .as_ref()
                        .and_then(|v| dims.get(&(slot, v.trim().to_ascii_lowercase())))
                    {
                        x[*i] = 1.0;
                    }
                }
                x[width - 1] = a.employees.map_or(0.0, |e| (1.0 + e.max(0.0)).ln() / 10.0);
                x
            })
            .collect();
        let mut first_win_of: Vec<Option<i64>> = vec![None; accounts.len()];
        for o in opps {
            if let (Outcome::Won, Some(c), true) = (o.outcome, o.closed, o.account != NONE) {
                let f = &mut first_win_of[o.account as usize];
                *f = Some(f.map_or(c.0, |x| x.min(c.0)));
            }
        }
        let mut first_wins: Vec<(i64, u32)> = first_win_of
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (t, i as u32)))
            .collect();
        // Ties in time in id order (not slot order), so the sums do not depend on arrival order.
        first_wins.sort_unstable_by(|(t, a), (u, b)| {
            (t, &accounts[*a as usize].id).cmp(&(u, &accounts[*b as usize].id))
        });
        let mut prefix = vec![vec![0.0; width]];
        for &(_, a) in &first_wins {
            let mut next = prefix[prefix.len() - 1].clone();
            for (s, x) in next.iter_mut().zip(&vectors[a as usize]) {
                *s += x;
            }
            prefix.push(next);
        }
        Lookalike {
            vectors,
            first_wins,
            prefix,
            first_win_of,
        }
    }

    /// Cosine similarity of `account` to the centroid of the other accounts first won before `as_of`.
    pub(crate) fn similarity(&self, account: u32, as_of: i64) -> f64 {
        let n = self.first_wins.partition_point(|(t, _)| *t < as_of);
        let mut sum = self.prefix[n].clone();
        let me = &self.vectors[account as usize];
        let mut count = n;
        if self.first_win_of[account as usize].is_some_and(|t| t < as_of) {
            for (s, x) in sum.iter_mut().zip(me) {
                *s -= x;
            }
            count -= 1;
        }
        if count == 0 {
            return f64::NAN;
        }
        let dot: f64 = sum.iter().zip(me).map(|(a, b)| a * b).sum();
        let na = sum.iter().map(|a| a * a).sum::<f64>().sqrt();
        let nb = me.iter().map(|b| b * b).sum::<f64>().sqrt();
        if na == 0.0 || nb == 0.0 {
            return f64::NAN;
        }
        dot / (na * nb)
    }
}

/// One edge of an account's neighbourhood.
#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub from: String,
    pub relation: &'static str,
    pub to: String,
    /// When the edge came into being, where the data says.
    pub since: Option<String>,
    pub detail: Option<String>,
}

/// An account's neighbourhood in the graph.
#[derive(Debug, Clone, Serialize)]
pub struct Neighbourhood {
    pub account_id: String,
    pub name: Option<String>,
    pub segment: Option<String>,
    pub industry: Option<String>,
    pub parent: Option<String>,
    pub children: Vec<String>,
    pub contacts_by_seniority: BTreeMap<String, usize>,
    pub opportunities: BTreeMap<String, usize>,
    pub reps: Vec<String>,
    pub product_users: usize,
    pub product_events: usize,
    pub tickets: usize,
    pub tickets_open: usize,
    pub edges: Vec<Edge>,
}

/// The account's neighbourhood: its family, contacts, deals and their reps and contact roles, product
/// users and tickets, as time-stamped edges.
pub fn neighbourhood(engine: &Engine, account: u32) -> Neighbourhood {
    let ctx = engine.context();
    let a = &ctx.accounts[account as usize];
    let state = &engine.state.accounts[account as usize];
    let ts = |t: Ts| Some(t.to_rfc3339());
    let mut edges = Vec::new();
    if a.parent != NONE {
        edges.push(Edge {
            from: a.id.clone(),
            relation: "child_of",
            to: ctx.accounts[a.parent as usize].id.clone(),
            since: None,
            detail: None,
        });
    }
    for &c in &a.children {
        edges.push(Edge {
            from: a.id.clone(),
            relation: "parent_of",
            to: ctx.accounts[c as usize].id.clone(),
            since: None,
            detail: None,
        });
    }
    let mut by_seniority: BTreeMap<String, usize> = BTreeMap::new();
    for &c in &a.contacts {
        let ci = &ctx.contacts[c as usize];
        *by_seniority
            .entry(ci.seniority.as_str().to_string())
            .or_default() += 1;
        edges.push(Edge {
            from: a.id.clone(),
            relation: "employs",
            to: ci.id.clone(),
            since: None,
            detail: Some(format!(
                "{} ({})",
                ci.title.as_deref().unwrap_or("no title"),
                ci.seniority
            )),
        });
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut reps = BTreeSet::new();
    for &o in &a.opportunities {
        let oi = &ctx.opps[o as usize];
        *outcomes.entry(oi.outcome.as_str().to_string()).or_default() += 1;
        edges.push(Edge {
            from: a.id.clone(),
            relation: "has_opportunity",
            to: oi.id.clone(),
            since: ts(oi.created),
            detail: Some(match oi.closed {
                Some(c) => format!("{} on {}", oi.outcome, c.to_date_string()),
                None => "open".to_string(),
            }),
        });
        if let Some(r) = &oi.rep {
            reps.insert(r.clone());
            edges.push(Edge {
                from: oi.id.clone(),
                relation: "owned_by",
                to: r.clone(),
                since: ts(oi.created),
                detail: None,
            });
        }
        for &c in &oi.roles {
            edges.push(Edge {
                from: oi.id.clone(),
                relation: "contact_role",
                to: ctx.contacts[c as usize].id.clone(),
                since: None,
                detail: None,
            });
        }
    }
    let mut first_seen: BTreeMap<u64, i64> = BTreeMap::new();
    for u in &state.usage {
        let user = engine.user_of(u);
        if user != crate::engine::NO_ID {
            first_seen.entry(user).or_insert(u.at);
        }
    }
    for (&u, &t) in &first_seen {
        edges.push(Edge {
            from: a.id.clone(),
            relation: "product_user",
            to: engine.state.users.name(u).unwrap_or("?").to_string(),
            since: ts(Ts(t)),
            detail: None,
        });
    }
    let mut open = 0;
    for t in &state.tickets {
        open += t.solved.is_none() as usize;
        edges.push(Edge {
            from: a.id.clone(),
            relation: "raised_ticket",
            to: t.id.clone(),
            since: ts(Ts(t.created)),
            detail: Some(format!(
                "{}, {}",
                t.priority,
                t.solved.map_or("open".to_string(), |s| format!(
                    "solved {}",
                    Ts(s).to_date_string()
                ))
            )),
        });
    }
    Neighbourhood {
        account_id: a.id.clone(),
        name: a.name.clone(),
        segment: ctx.segment_of(account),
        industry: a.industry.clone(),
        parent: (a.parent != NONE).then(|| ctx.accounts[a.parent as usize].id.clone()),
        children: a
            .children
            .iter()
            .map(|&c| ctx.accounts[c as usize].id.clone())
            .collect(),
        contacts_by_seniority: by_seniority,
        opportunities: outcomes,
        reps: reps.into_iter().collect(),
        product_users: first_seen.len(),
        product_events: state.usage.len(),
        tickets: state.tickets.len(),
        tickets_open: open,
        edges,
    }
}
