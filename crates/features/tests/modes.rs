//! The engine's three modes agree: events applied live (shuffled, duplicated, late), events applied in
//! event-time order (what replay does), and a naive recompute that feeds a fresh engine only what was
//! known strictly before each `as_of`. Every definition of the default catalog must read the same, to
//! the bit, at every `as_of`; checkpoints restore to an equal state.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use winsignal_core::rng::Rng;
use winsignal_core::{
    Account, Activity, ActivityStatus, ActivityType, Direction, Outcome, Priority, ProductEvent,
    Record, SpeakerRole, SupportTicket, TouchKind, Ts,
};
use winsignal_features::eval::{evaluate, View};
use winsignal_features::{default_catalog, Catalog, Context, Engine, Observation};

/// Event times are on a 6-hour grid and `as_of` on a day grid, so events fall exactly on landmarks
/// and exactly on window edges (as_of − 14 d, − 30 d, − 28 d) often.
const SLOT: i64 = 6 * HOUR;

fn origin() -> Ts {
    ts("2024-01-01T00:00:00Z")
}

fn slot(n: i64) -> Ts {
    at(origin(), n * SLOT)
}

const OPPS: [&str; 4] = ["O1", "O2", "O3", "O4"];
const ACCOUNTS: [&str; 3] = ["A1", "A2", "A3"];
const CONTACTS: [&str; 6] = ["C1", "C2", "C3", "C4", "C5", "C6"];

/// The entities every case shares: a family of accounts, contacts of every seniority, an open deal,
/// a deal won on day 20 (whose contacts can be reused champions), another open one and a lost one.
fn entities() -> Fixture {
    let mut f = Fixture::new();
    for (id, industry, parent) in [
        ("A1", "Software", None),
        ("A2", "Software", Some("A1")),
        ("A3", "Retail", None),
    ] {
        f.add(Account {
            segment: Some("Mid-Market".into()),
            industry: Some(industry.into()),
            country: Some("US".into()),
            employees: Some(250.0),
            parent_account_id: parent.map(str::to_string),
            ..account(id)
        });
    }
    for (id, a, title) in [
        ("C1", "A1", Some("CEO")),
        ("C2", "A1", Some("VP Sales")),
        ("C3", "A1", Some("Director of IT")),
        ("C4", "A2", Some("Engineering Manager")),
        ("C5", "A2", Some("Analyst")),
        ("C6", "A3", None),
    ] {
        f.add(contact(id, a, title));
    }
    f.add(rep("R1"));
    let day = |d: f64| origin().plus_days(d);
    f.add(opportunity("O1", "A1", day(0.0)));
    f.add(closed("O2", "A1", day(-30.0), day(20.0), Outcome::Won));
    f.add(opportunity("O3", "A2", day(5.0)));
    f.add(closed("O4", "A3", day(0.0), day(40.0), Outcome::Lost));
    for (o, c) in [
        ("O2", "C1"),
        ("O2", "C2"),
        ("O1", "C3"),
        ("O3", "C4"),
        ("O4", "C6"),
    ] {
        f.add(role(o, c));
    }
    f
}

// ---------------------------------------------------------------- generated histories

#[derive(Debug, Clone)]
struct ActGen {
    ty: usize,
    direction: usize,
    status: usize,
    /// 0–3: a deal; 4–5: an account (A1, A2) with no deal.
    target: usize,
    contacts: Vec<usize>,
    at_slot: i64,
    /// Logged this many slots after (or, negative, booked before) it happened; None: not given.
    created_delta: Option<i64>,
    duration_s: u16,
}

#[derive(Debug, Clone)]
struct UseGen {
    account: usize,
    user: usize,
    event: usize,
    at_slot: i64,
}

#[derive(Debug, Clone)]
struct TouchGen {
    kind: usize,
    /// 0–2: by account id; 3: by contact C4 only.
    by: usize,
    at_slot: i64,
}

#[derive(Debug, Clone)]
struct TicketGen {
    account: usize,
    priority: usize,
    created_slot: i64,
    /// A later version solves it this many slots after creation.
    solved_after: Option<i64>,
}

#[derive(Debug, Clone)]
struct CallGen {
    opp: usize,
    start_slot: i64,
    /// (rep speaking, seconds, questions asked).
    turns: Vec<(bool, u16, usize)>,
}

#[derive(Debug, Clone)]
struct History {
    acts: Vec<ActGen>,
    uses: Vec<UseGen>,
    touches: Vec<TouchGen>,
    tickets: Vec<TicketGen>,
    calls: Vec<CallGen>,
    /// Drives the live arrival order and its duplicates.
    order_seed: u64,
}

/// Slots from day −5 to day 65.
fn time_slot() -> impl Strategy<Value = i64> {
    -20i64..260
}

fn history() -> impl Strategy<Value = History> {
    let act = (
        0usize..5,
        0usize..3,
        0usize..4,
        0usize..6,
        prop::collection::vec(0usize..6, 0..3),
        time_slot(),
        prop::option::of(-40i64..12),
        0u16..3600,
    )
        .prop_map(
            |(ty, direction, status, target, contacts, at_slot, created_delta, duration_s)| {
                ActGen {
                    ty,
                    direction,
                    status,
                    target,
                    contacts,
                    at_slot,
                    created_delta,
                    duration_s,
                }
            },
        );
    let usage = (0usize..3, 0usize..5, 0usize..3, time_slot()).prop_map(
        |(account, user, event, at_slot)| UseGen {
            account,
            user,
            event,
            at_slot,
        },
    );
    let touch = (0usize..10, 0usize..4, time_slot()).prop_map(|(kind, by, at_slot)| TouchGen {
        kind,
        by,
        at_slot,
    });
    let ticket = (
        0usize..3,
        0usize..4,
        time_slot(),
        prop::option::of(0i64..60),
    )
        .prop_map(
            |(account, priority, created_slot, solved_after)| TicketGen {
                account,
                priority,
                created_slot,
                solved_after,
            },
        );
    let call = (
        0usize..4,
        time_slot(),
        prop::collection::vec((any::<bool>(), 1u16..900, 0usize..4), 0..4),
    )
        .prop_map(|(opp, start_slot, turns)| CallGen {
            opp,
            start_slot,
            turns,
        });
    (
        prop::collection::vec(act, 0..40),
        prop::collection::vec(usage, 0..30),
        prop::collection::vec(touch, 0..12),
        prop::collection::vec(ticket, 0..5),
        prop::collection::vec(call, 0..4),
        any::<u64>(),
    )
        .prop_map(
            |(acts, uses, touches, tickets, calls, order_seed)| History {
                acts,
                uses,
                touches,
                tickets,
                calls,
                order_seed,
            },
        )
}

/// One record as the engine receives it, with when it became known (for the naive recompute).
#[derive(Debug, Clone)]
struct Item {
    seq: u64,
    key: String,
    record: Record,
    /// Event time, for the sorted (replay) order; tickets and transcripts go after all events.
    event_time: Option<Ts>,
    /// The first instant from which the item is known: its booking or logging time for activities,
    /// its time for product events and touches, creation (first version) or solving (later version)
    /// for tickets, the end of the call for transcripts.
    known_from: Ts,
    /// A ticket version a later one replaces; replay never sees it.
    superseded: bool,
}

fn items(h: &History) -> Vec<Item> {
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut next_seq = || {
        seq += 1;
        seq
    };
    for (i, a) in h.acts.iter().enumerate() {
        let occurred_at = slot(a.at_slot);
        let created_at = a.created_delta.map(|d| slot(a.at_slot + d));
        let (opportunity_id, account_id) = if a.target < 4 {
            (Some(OPPS[a.target].to_string()), None)
        } else {
            (None, Some(ACCOUNTS[a.target - 4].to_string()))
        };
        let record = Record::Activities(Activity {
            activity_id: format!("a{i}"),
            activity_type: ActivityType::ALL[a.ty],
            direction: [None, Some(Direction::Inbound), Some(Direction::Outbound)][a.direction],
            status: [
                None,
                Some(ActivityStatus::Completed),
                Some(ActivityStatus::Scheduled),
                Some(ActivityStatus::Canceled),
            ][a.status],
            rep_id: Some("R1".into()),
            account_id,
            opportunity_id,
            contact_ids: a
                .contacts
                .iter()
                .map(|&c| CONTACTS[c].to_string())
                .collect(),
            occurred_at,
            created_at,
            duration_s: Some(f64::from(a.duration_s)),
            subject: None,
        });
        out.push(Item {
            seq: next_seq(),
            key: format!("a{i}"),
            record,
            event_time: Some(occurred_at),
            // Known once logged or booked; a meeting booked ahead is known (as booked) from then.
            known_from: created_at.unwrap_or(occurred_at),
            superseded: false,
        });
    }
    for (i, u) in h.uses.iter().enumerate() {
        let occurred_at = slot(u.at_slot);
        let record = Record::ProductEvents(ProductEvent {
            event: ["Report Exported", "Dashboard Viewed", "Invite Sent"][u.event].into(),
            ..product_event(
                &format!("p{i}"),
                ACCOUNTS[u.account],
                &format!("user{}", u.user),
                occurred_at,
            )
        });
        out.push(Item {
            seq: next_seq(),
            key: format!("p{i}"),
            record,
            event_time: Some(occurred_at),
            known_from: occurred_at,
            superseded: false,
        });
    }
    for (i, t) in h.touches.iter().enumerate() {
        let occurred_at = slot(t.at_slot);
        let mut touch_record = touch(&format!("t{i}"), "A1", TouchKind::ALL[t.kind], occurred_at);
        if t.by < 3 {
            touch_record.account_id = Some(ACCOUNTS[t.by].into());
        } else {
            touch_record.account_id = None;
            touch_record.contact_id = Some("C4".into());
        }
        out.push(Item {
            seq: next_seq(),
            key: format!("t{i}"),
            record: Record::MarketingTouches(touch_record),
            event_time: Some(occurred_at),
            known_from: occurred_at,
            superseded: false,
        });
    }
    for (i, k) in h.tickets.iter().enumerate() {
        let id = format!("K{i}");
        let created_at = slot(k.created_slot);
        let open = ticket(
            &id,
            ACCOUNTS[k.account],
            Priority::ALL[k.priority],
            created_at,
            None,
        );
        out.push(Item {
            seq: 1,
            key: id.clone(),
            record: Record::SupportTickets(open.clone()),
            event_time: None,
            known_from: created_at,
            superseded: k.solved_after.is_some(),
        });
        if let Some(after) = k.solved_after {
            let solved_at = slot(k.created_slot + after);
            out.push(Item {
                seq: 2,
                key: id.clone(),
                record: Record::SupportTickets(SupportTicket {
                    solved_at: Some(solved_at),
                    status: Some("solved".into()),
                    ..open
                }),
                event_time: None,
                known_from: solved_at,
                superseded: false,
            });
        }
    }
    for (i, c) in h.calls.iter().enumerate() {
        let started_at = slot(c.start_slot);
        let mut turns = Vec::new();
        let mut t = 0.0;
        for &(rep_speaks, seconds, questions) in &c.turns {
            let role = if rep_speaks {
                SpeakerRole::Rep
            } else {
                SpeakerRole::Customer
            };
            let end = t + f64::from(seconds);
            turns.push(turn(
                role,
                t,
                end,
                &format!("Right. {}", "Why? ".repeat(questions)),
            ));
            t = end;
        }
        let record = Record::Transcripts(transcript(
            &format!("call{i}"),
            OPPS[c.opp],
            started_at,
            turns,
        ));
        out.push(Item {
            seq: 1,
            key: format!("call{i}"),
            record,
            event_time: None,
            // Whole seconds: the call ends `t` seconds after it started.
            known_from: at(started_at, (t * 1000.0) as i64),
            superseded: false,
        });
    }
    out
}

fn observe(item: &Item) -> Observation<'_> {
    Observation {
        seq: item.seq,
        key: &item.key,
        record: &item.record,
    }
}

/// (a) Live: every item (old ticket versions too) in a shuffled order, a third of them delivered twice.
fn live(ctx: &Context, items: &[Item], seed: u64) -> (Engine, u64) {
    let mut rng = Rng::new(seed);
    let mut order: Vec<usize> = (0..items.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut deliveries = order.clone();
    for &i in &order {
        if rng.chance(1.0 / 3.0) {
            let pos = rng.below(deliveries.len() as u64 + 1) as usize;
            deliveries.insert(pos, i);
        }
    }
    let mut engine = Engine::new(ctx.clone());
    for &i in &deliveries {
        engine.apply(&observe(&items[i]));
    }
    (engine, deliveries.len() as u64)
}

/// (b) Replay: events in event-time order (ties by sequence), then the current tickets and transcripts.
fn sorted(ctx: &Context, items: &[Item]) -> (Engine, u64) {
    let mut events: Vec<&Item> = items.iter().filter(|i| i.event_time.is_some()).collect();
    events.sort_by_key(|i| (i.event_time, i.seq));
    let records = items
        .iter()
        .filter(|i| i.event_time.is_none() && !i.superseded);
    let mut engine = Engine::new(ctx.clone());
    let mut n = 0;
    for item in events.into_iter().chain(records) {
        engine.apply(&observe(item));
        n += 1;
    }
    (engine, n)
}

/// (c) From scratch: a fresh engine fed only what was known strictly before `as_of` — for a ticket,
/// the latest version known by then.
fn naive(ctx: &Context, items: &[Item], as_of: Ts) -> Engine {
    let mut engine = Engine::new(ctx.clone());
    let known = |i: &Item| i.known_from < as_of;
    for item in items.iter().filter(|i| known(i)) {
        let newer_known = items
            .iter()
            .any(|o| o.key == item.key && o.seq > item.seq && known(o) && o.event_time.is_none());
        if !newer_known {
            engine.apply(&observe(item));
        }
    }
    engine
}

/// Landmark-like instants: every second day from day 0 to day 64, a grid point off the day grid and
/// one a millisecond after a grid point.
fn instants() -> Vec<Ts> {
    let mut out: Vec<Ts> = (0..=32)
        .map(|k| origin().plus_days(2.0 * k as f64))
        .collect();
    out.push(slot(13));
    out.push(at(slot(69), 1));
    out
}

/// Every definition's value for every deal at `as_of`.
fn values(engine: &Engine, catalog: &Catalog, as_of: Ts) -> Vec<f64> {
    let mut out = Vec::new();
    for opp in 0..engine.context().opps.len() as u32 {
        let view = View::new(engine, opp, as_of.0);
        for def in &catalog.behaviours {
            out.push(evaluate(def, &view, &mut |_, _| {}));
        }
    }
    out
}

fn bits(xs: &[f64]) -> Vec<u64> {
    xs.iter().map(|x| x.to_bits()).collect()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    )
}

#[test]
fn live_replay_and_recompute_agree_at_every_instant() {
    let built = entities().build();
    let ctx = &built.ctx;
    let catalog = default_catalog();
    let result = runner(128).run(&history(), |h| {
        let items = items(&h);
        let (live, _) = live(ctx, &items, h.order_seed);
        let (replayed, _) = sorted(ctx, &items);
        let (restored, _) = Engine::restore(
            &live.checkpoint(winsignal_store::LogPosition(0)),
            ctx.clone(),
        )
        .map_err(TestCaseError::fail)?;
        prop_assert!(
            restored.state_digest() == live.state_digest(),
            "checkpoint did not restore the state"
        );
        for as_of in instants() {
            let at = |e: &Engine| bits(&values(e, &catalog, as_of));
            let want = at(&naive(ctx, &items, as_of));
            prop_assert_eq!(&at(&replayed), &want, "replay vs naive at {}", as_of);
            prop_assert_eq!(&at(&live), &want, "live vs naive at {}", as_of);
            prop_assert_eq!(&at(&restored), &want, "restored vs naive at {}", as_of);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The engine promises that the state after any arrival order of the same events is identical: product
/// user ids, event names and contact lists are named by content, not by order of first arrival, and
/// `applied` (a delivery counter, duplicates included) is the only field allowed to differ.
#[test]
fn arrival_order_and_duplicates_leave_an_identical_state() {
    let built = entities().build();
    let ctx = &built.ctx;
    let result = runner(128).run(&history(), |h| {
        let items = items(&h);
        let (live, _) = live(ctx, &items, h.order_seed);
        let (replayed, _) = sorted(ctx, &items);
        prop_assert!(
            live.state_digest() == replayed.state_digest(),
            "live state differs from replayed state"
        );
        let (restored, _) = Engine::restore(
            &replayed.checkpoint(winsignal_store::LogPosition(0)),
            ctx.clone(),
        )
        .map_err(TestCaseError::fail)?;
        prop_assert!(restored.state_digest() == replayed.state_digest());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
