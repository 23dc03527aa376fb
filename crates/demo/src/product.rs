//! Product telemetry: workspaces, product users, trials and post-win usage, streamed to a sink so that
//! millions of events never sit in memory.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use winsignal_core::rng::Rng;

use crate::error::Result;
use crate::text::*;
use crate::world::{Segment, World};

pub(crate) struct ProductUser {
    pub id: String,
    pub email: String,
    pub name: String,
}

pub(crate) struct Workspace {
    /// The groupId as sent: a workspace id (`ws_000123`) or, for some, the CRM Account Id.
    pub group_id: String,
    pub account: Option<usize>,
    pub name: String,
    pub domain: String,
    pub website: String,
    pub users: Vec<ProductUser>,
    pub user_weights: Vec<f64>,
    /// Trial windows (start, number of users).
    pub trials: Vec<(i64, u32)>,
    pub usage_start: Option<i64>,
    /// Monthly growth factor of usage (`usage_growing` is planted with no effect on anything).
    pub growth: f64,
}

/// One product event about to be written.
pub(crate) struct Event<'a> {
    pub page: bool,
    /// Track event name or page name.
    pub name: &'static str,
    /// Properties as JSON object text (for pages: url and path).
    pub props: &'a str,
    pub path: &'a str,
    /// Whether the message carries `context.groupId`.
    pub with_group: bool,
}

pub(crate) trait ProductSink {
    /// A user's identify and group calls.
    fn user(&mut self, ws: &Workspace, user: &ProductUser, ts: i64) -> Result<()>;
    fn event(
        &mut self,
        ws_idx: usize,
        ws: &Workspace,
        user: &ProductUser,
        ts: i64,
        ev: &Event,
    ) -> Result<()>;
}

const TRACK: &[(&str, f64)] = &[
    ("Dashboard Viewed", 0.34),
    ("Query Run", 0.26),
    ("Report Created", 0.12),
    ("Report Shared", 0.08),
    ("Alert Configured", 0.05),
    ("Export Downloaded", 0.08),
    ("Integration Connected", 0.03),
    ("User Invited", 0.04),
];
const PAGES: &[(&str, &str)] = &[
    ("Home", "/"),
    ("Dashboards", "/dashboards"),
    ("Reports", "/reports"),
    ("Pipeline", "/pipeline"),
    ("Settings", "/settings"),
];
const REPORT_TYPES: &[&str] = &["funnel", "cohort", "forecast", "win_loss", "activity"];
const INTEGRATIONS: &[&str] = &["salesforce", "hubspot", "snowflake", "slack", "bigquery"];

pub(crate) fn plan(world: &World, rng: &mut Rng) -> Vec<Workspace> {
    let mut out = Vec::new();
    let mut ws_counter = 100u64;
    let mut user_counter = 0u64;
    for (a, acct) in world.accounts.iter().enumerate() {
        if acct.trials.is_empty() && acct.usage_start.is_none() {
            continue;
        }
        ws_counter += 1 + rng.below(3);
        let group_id = if rng.chance(0.10) {
            acct.id.clone()
        } else {
            format!("ws_{ws_counter:06}")
        };
        let mut users = Vec::new();
        let mut taken = BTreeSet::new();
        for (k, &c) in acct.contacts.iter().enumerate() {
            if k == 0 || rng.chance(0.7) {
                let contact = &world.contacts[c];
                user_counter += 1;
                taken.insert(contact.email.clone());
                users.push(ProductUser {
                    id: format!("usr_{user_counter:07}"),
                    email: contact.email.clone(),
                    name: format!("{} {}", contact.first, contact.last),
                });
            }
        }
        let (lo, hi) = match acct.segment {
            Segment::Smb => (2, 5),
            Segment::Mid => (4, 12),
            Segment::Ent => (10, 30),
        };
        for _ in 0..rng.range(lo, hi) {
            let (first, last) = (*rng.pick(FIRST_NAMES), *rng.pick(LAST_NAMES));
            let mut email = format!(
                "{}.{}@{}",
                first.to_lowercase(),
                last.to_lowercase(),
                acct.domain
            );
            let mut n = 2;
            while !taken.insert(email.clone()) {
                email = format!(
                    "{}.{}{n}@{}",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    acct.domain
                );
                n += 1;
            }
            user_counter += 1;
            users.push(ProductUser {
                id: format!("usr_{user_counter:07}"),
                email,
                name: format!("{first} {last}"),
            });
        }
        let user_weights = users.iter().map(|_| rng.lognormal(1.0, 0.8)).collect();
        out.push(Workspace {
            group_id,
            account: Some(a),
            name: acct.name.clone(),
            domain: acct.domain.clone(),
            website: format!("https://{}", acct.domain),
            users,
            user_weights,
            trials: acct.trials.clone(),
            usage_start: acct.usage_start,
            growth: 0.92 + 0.16 * rng.f64(),
        });
    }
    // About 3% of workspaces belong to companies the CRM does not know (kept, unmatched).
    let known: BTreeSet<&str> = world.accounts.iter().map(|a| a.domain.as_str()).collect();
    let n_unmatched = ((out.len() as f64 * 0.03 / 0.97).round() as usize).max(1);
    for k in 0..n_unmatched {
        let stem = format!(
            "{}{}",
            rng.pick(COMPANY_A).to_lowercase(),
            ["hq", "group", "studio", "collective"][k % 4]
        );
        let mut domain = format!("{stem}.dev");
        let mut n = 2;
        while known.contains(domain.as_str()) || out.iter().any(|w| w.domain == domain) {
            domain = format!("{stem}{n}.dev");
            n += 1;
        }
        ws_counter += 1;
        let users: Vec<ProductUser> = (0..rng.range(2, 6))
            .map(|i| {
                user_counter += 1;
                let first = *rng.pick(FIRST_NAMES);
                ProductUser {
                    id: format!("usr_{user_counter:07}"),
                    email: format!("{}{i}@{domain}", first.to_lowercase()),
                    name: first.to_string(),
                }
            })
            .collect();
        let start = world.data_start + (rng.f64() * 500.0) as i64 * DAY;
        out.push(Workspace {
            group_id: format!("ws_{ws_counter:06}"),
            account: None,
            name: stem.clone(),
            website: format!("https://{domain}/"),
            domain,
            user_weights: users.iter().map(|_| 1.0).collect(),
            users,
            trials: Vec::new(),
            usage_start: Some(start / DAY * DAY),
            growth: 1.0,
        });
    }
    out
}

fn weekday_factor(day_ms: i64) -> f64 {
    // 1970-01-01 was a Thursday; days 2 and 3 after it are Saturday and Sunday.
    match day_ms.div_euclid(DAY).rem_euclid(7) {
        2 | 3 => 0.15,
        _ => 1.0,
    }
}

fn day_weight(ws: &Workspace, start: i64, day: i64) -> f64 {
    let months = (day - start) as f64 / (30.0 * DAY as f64);
    ws.users.len() as f64 * ws.growth.powf(months) * weekday_factor(day)
}

/// Streams every product event; returns the number of track and page events written.
pub(crate) fn stream(
    world: &World,
    workspaces: &[Workspace],
    seed: u64,
    target_events: f64,
    sink: &mut dyn ProductSink,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<u64> {
    // Dense usage is scaled so that the expected total hits the target.
    let mut weight = 0.0;
    for ws in workspaces {
        if let Some(start) = ws.usage_start {
            let mut day = start;
            while day < world.data_end {
                weight += day_weight(ws, start, day);
                day += DAY;
            }
        }
    }
    let per_user_day = if weight > 0.0 {
        target_events / weight
    } else {
        0.0
    };
    let mut n_events = 0u64;
    let mut props = String::with_capacity(128);
    let mut path = String::with_capacity(64);
    let track_weights: Vec<f64> = TRACK.iter().map(|t| t.1).collect();
    let mut times: Vec<(i64, usize)> = Vec::new();
    for (ws_idx, ws) in workspaces.iter().enumerate() {
        let mut rng = Rng::derive(seed, 1000 + ws_idx as u64);
        let first_use = ws
            .trials
            .iter()
            .map(|t| t.0)
            .chain(ws.usage_start)
            .min()
            .unwrap_or(world.data_end);
        for user in &ws.users {
            sink.user(ws, user, first_use - HOUR + rng.below(3600) as i64 * SEC)?;
        }
        times.clear();
        for &(start, n_users) in &ws.trials {
            let n = (n_users as usize).min(ws.users.len());
            for u in 0..n {
                for _ in 0..rng.range(3, 12) {
                    let t = start + (rng.f64() * 13.0 * DAY as f64) as i64 / SEC * SEC + 8 * HOUR;
                    times.push((t.min(world.data_end), u));
                }
            }
        }
        if let Some(start) = ws.usage_start {
            let mut day = start;
            while day < world.data_end {
                let n = rng.poisson(per_user_day * day_weight(ws, start, day));
                for _ in 0..n {
                    let t = day + 7 * HOUR + rng.below(13 * 3600) as i64 * SEC;
                    times.push((t.min(world.data_end), rng.weighted(&ws.user_weights)));
                }
                day += DAY;
            }
        }
        times.sort_unstable();
        for &(t, u) in &times {
            props.clear();
            path.clear();
            let page = rng.chance(0.2);
            let name = if page {
                let (name, p) = PAGES[rng.below(PAGES.len() as u64) as usize];
                path.push_str(p);
                if p == "/reports" || p == "/dashboards" {
                    let _ = write!(path, "/{}", rng.range(1, 400));
                }
                let _ = write!(
                    props,
                    "{{\"url\":\"https://app.lumenmetrics.com{path}\",\"path\":\"{path}\"}}"
                );
                name
            } else {
                let name = TRACK[rng.weighted(&track_weights)].0;
                let _ = match name {
                    "Dashboard Viewed" => {
                        write!(props, "{{\"dashboard_id\":\"d_{}\"}}", rng.range(1, 400))
                    }
                    "Query Run" => write!(
                        props,
                        "{{\"rows\":{},\"duration_ms\":{}}}",
                        rng.range(1, 200_000),
                        rng.lognormal(400.0, 0.8) as u64
                    ),
                    "Report Created" | "Report Shared" => {
                        write!(props, "{{\"report_type\":\"{}\"}}", rng.pick(REPORT_TYPES))
                    }
                    "Integration Connected" => {
                        write!(props, "{{\"integration\":\"{}\"}}", rng.pick(INTEGRATIONS))
                    }
                    "Export Downloaded" => write!(
                        props,
                        "{{\"format\":\"{}\"}}",
                        if rng.chance(0.7) { "csv" } else { "xlsx" }
                    ),
                    _ => write!(props, "{{}}"),
                };
                name
            };
            let ev = Event {
                page,
                name,
                props: &props,
                path: &path,
                with_group: rng.chance(0.9),
            };
            sink.event(ws_idx, ws, &ws.users[u], t, &ev)?;
            n_events += 1;
            if n_events.trailing_zeros() >= 18 {
                progress("product events", n_events);
            }
        }
    }
    Ok(n_events)
}
