//! The incremental engine holds it together (issue 15, item 5): random small worlds whose entity records
//! and events arrive one at a time in a random interleaving — entities after the events that name them,
//! entities in new versions (a deal won, filed under another account, re-dated; a contact's new title),
//! new versions of activities (a status change under the same key), tickets solved in a later version,
//! exact repeats, out-of-order times — applied through `upsert_entity` and `apply`, give at every
//! landmark of the default catalog (and a few more definitions) the same snapshot, to the bit, as `Engine::replay` of a store holding
//! the same final data, and as a recomputation from scratch that feeds a fresh engine only the final
//! data known strictly before the landmark. Values remembered across arrivals ([`Memo`], what the live
//! service rescores with) equal a full evaluation after every arrival.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use std::collections::BTreeMap;
use winsignal_core::rng::Rng;
use winsignal_core::{
    Account, Activity, ActivityStatus, ActivityType, Contact, Direction, MarketingTouch,
    Opportunity, Outcome, Priority, ProductEvent, ProductUser, Record, SpeakerRole, SupportTicket,
    TouchKind, Ts,
};
use winsignal_features::engine::{Applied, Checkpoint, Touched};
use winsignal_features::eval::{evaluate, View};
use winsignal_features::memo::Memo;
use winsignal_features::snapshot::{self, Snapshot};
use winsignal_features::{default_catalog, Catalog, Context, Engine, Observation};
use winsignal_store::{EmbeddedStore, LogPosition, Store};

/// Event times are on a 6-hour grid, so events fall exactly on landmarks and window edges often.
const SLOT: i64 = 6 * HOUR;

fn origin() -> Ts {
    ts("2024-01-01T00:00:00Z")
}

fn slot(n: i64) -> Ts {
    at(origin(), n * SLOT)
}

fn day(d: f64) -> Ts {
    origin().plus_days(d)
}

/// The entities of every world, in their final versions, plus the earlier versions some of them had
/// (delivered before the final one).
fn entities() -> (Vec<Record>, Vec<(Record, Record)>) {
    let mut out: Vec<Record> = Vec::new();
    for (id, domain, segment, industry, parent) in [
        ("A1", "a1.com", "Mid-Market", "Software", None),
        ("A2", "a2.com", "Mid-Market", "Software", Some("A1")),
        ("A3", "a3.com", "Enterprise", "Retail", None),
    ] {
        out.push(Record::Accounts(Account {
            domain: Some(domain.into()),
            segment: Some(segment.into()),
            industry: Some(industry.into()),
            country: Some("US".into()),
            employees: Some(300.0),
            parent_account_id: parent.map(str::to_string),
            ..account(id)
        }));
    }
    for (id, account_id, email, title) in [
        ("C1", Some("A1"), "c1@a1.com", Some("CEO")),
        ("C2", Some("A1"), "c2@a1.com", Some("VP Sales")),
        // No account id: it belongs to its e-mail's company domain.
        ("C3", None, "c3@a2.com", Some("Director of IT")),
        ("C4", Some("A3"), "c4@gmail.com", Some("Analyst")),
    ] {
        out.push(Record::Contacts(Contact {
            contact_id: id.into(),
            account_id: account_id.map(str::to_string),
            email: Some(email.into()),
            title: title.map(str::to_string),
            ..Contact::default()
        }));
    }
    out.push(Record::Reps(rep("R1")));
    out.push(Record::Opportunities(opportunity("O1", "A1", day(0.0))));
    let o2_won = closed("O2", "A1", day(-30.0), day(20.0), Outcome::Won);
    out.push(Record::Opportunities(o2_won.clone()));
    out.push(Record::Opportunities(opportunity("O3", "A2", day(5.0))));
    out.push(Record::Opportunities(closed(
        "O4",
        "A3",
        day(0.0),
        day(40.0),
        Outcome::Lost,
    )));
    for (o, s, d) in [
        ("O1", "Discovery", 1.0),
        ("O1", "Proposal", 12.0),
        ("O2", "Discovery", -25.0),
        ("O3", "Discovery", 6.0),
    ] {
        out.push(Record::StageHistory(stage(o, s, day(d))));
    }
    for (o, c) in [("O2", "C1"), ("O1", "C2"), ("O3", "C3"), ("O4", "C4")] {
        out.push(Record::OpportunityContacts(role(o, c)));
    }
    for (link, user, email, group) in [
        ("L1", "u1", None, Some("A3")),
        ("L2", "u2", Some("c2@a1.com"), None),
    ] {
        out.push(Record::ProductUsers(ProductUser {
            link_id: link.into(),
            user_id: user.into(),
            email: email.map(str::to_string),
            group_id: group.map(str::to_string),
            group_domain: None,
            group_name: None,
            seen_at: day(-60.0),
        }));
    }
    let c2 = Contact {
        contact_id: "C2".into(),
        account_id: Some("A1".into()),
        email: Some("c2@a1.com".into()),
        title: Some("VP Sales".into()),
        ..Contact::default()
    };
    // O2 was open before it was won; O1 was first recorded as created earlier, at another amount (a
    // change that reaches O1 alone).
    let earlier = vec![
        (
            Record::Opportunities(opportunity("O2", "A1", day(-30.0))),
            Record::Opportunities(o2_won),
        ),
        (
            Record::Opportunities(Opportunity {
                amount: Some(4_000.0),
                ..opportunity("O1", "A1", day(-10.0))
            }),
            Record::Opportunities(opportunity("O1", "A1", day(0.0))),
        ),
        // O3 was first filed under another account.
        (
            Record::Opportunities(opportunity("O3", "A1", day(5.0))),
            Record::Opportunities(opportunity("O3", "A2", day(5.0))),
        ),
        // C2 was a manager before the title that makes them a VP.
        (
            Record::Contacts(Contact {
                title: Some("Sales Manager".into()),
                ..c2.clone()
            }),
            Record::Contacts(c2),
        ),
    ];
    (out, earlier)
}

// ---------------------------------------------------------------- generated events

#[derive(Debug, Clone)]
struct ActGen {
    ty: usize,
    direction: usize,
    status: usize,
    /// 0–3: a deal O1–O4; 4–5: an account (A1, A2) with no deal; 6: a deal that never arrives with
    /// account A3; 7: only contacts.
    target: usize,
    /// Indexes into C1–C4 and C9 (a contact that never arrives).
    contacts: Vec<usize>,
    at_slot: i64,
    created_delta: Option<i64>,
    duration_s: u16,
    /// A later version under the same key: (new status, slots the time moves by).
    revised: Option<(usize, i64)>,
}

#[derive(Debug, Clone)]
struct UseGen {
    /// 0: by account id A1; 1: by group id A3; 2: by domain a2.com; 3: user u1 (group link); 4: user u2
    /// (e-mail link); 5: an unknown user.
    by: usize,
    event: usize,
    at_slot: i64,
}

#[derive(Debug, Clone)]
struct TouchGen {
    kind: usize,
    /// 0: account A2; 1: contact C4; 2: e-mail of C1; 3: an address at a3.com; 4: a free-mail address.
    by: usize,
    at_slot: i64,
}

#[derive(Debug, Clone)]
struct TicketGen {
    /// 0–2: account A1–A3; 3: by contact C3.
    by: usize,
    priority: usize,
    created_slot: i64,
    solved_after: Option<i64>,
}

#[derive(Debug, Clone)]
struct CallGen {
    opp: usize,
    start_slot: i64,
    turns: Vec<(bool, u16, usize)>,
}

#[derive(Debug, Clone)]
struct World {
    acts: Vec<ActGen>,
    uses: Vec<UseGen>,
    touches: Vec<TouchGen>,
    tickets: Vec<TicketGen>,
    calls: Vec<CallGen>,
    /// Drives the arrival order and the repeats.
    order_seed: u64,
}

fn time_slot() -> impl Strategy<Value = i64> {
    -20i64..240
}

fn world() -> impl Strategy<Value = World> {
    let act = (
        (0usize..5, 0usize..3, 0usize..4, 0usize..8),
        prop::collection::vec(0usize..5, 0..3),
        time_slot(),
        prop::option::of(-30i64..12),
        0u16..3600,
        prop::option::of((0usize..4, -8i64..8)),
    )
        .prop_map(
            |(
                (ty, direction, status, target),
                contacts,
                at_slot,
                created_delta,
                duration_s,
                revised,
            )| {
                ActGen {
                    ty,
                    direction,
                    status,
                    target,
                    contacts,
                    at_slot,
                    created_delta,
                    duration_s,
                    revised,
                }
            },
        );
    let usage = (0usize..6, 0usize..3, time_slot()).prop_map(|(by, event, at_slot)| UseGen {
        by,
        event,
        at_slot,
    });
    let touch = (0usize..10, 0usize..5, time_slot()).prop_map(|(kind, by, at_slot)| TouchGen {
        kind,
        by,
        at_slot,
    });
    let ticket = (
        0usize..4,
        0usize..4,
        time_slot(),
        prop::option::of(0i64..60),
    )
        .prop_map(|(by, priority, created_slot, solved_after)| TicketGen {
            by,
            priority,
            created_slot,
            solved_after,
        });
    let call = (
        0usize..4,
        time_slot(),
        prop::collection::vec((any::<bool>(), 1u16..900, 0usize..3), 0..3),
    )
        .prop_map(|(opp, start_slot, turns)| CallGen {
            opp,
            start_slot,
            turns,
        });
    (
        prop::collection::vec(act, 0..14),
        prop::collection::vec(usage, 0..8),
        prop::collection::vec(touch, 0..6),
        prop::collection::vec(ticket, 0..3),
        prop::collection::vec(call, 0..2),
        any::<u64>(),
    )
        .prop_map(|(acts, uses, touches, tickets, calls, order_seed)| World {
            acts,
            uses,
            touches,
            tickets,
            calls,
            order_seed,
        })
}

/// One version of an event as it arrives.
#[derive(Debug, Clone)]
struct Version {
    seq: u64,
    key: String,
    record: Record,
    /// The final version of its key (what the store holds).
    last: bool,
    /// From when the final version is known (for the recompute from scratch).
    known_from: Ts,
}

const CONTACTS: [&str; 5] = ["C1", "C2", "C3", "C4", "C9"];

fn versions(w: &World) -> Vec<Version> {
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        seq
    };
    let status = |i: usize| {
        [
            None,
            Some(ActivityStatus::Completed),
            Some(ActivityStatus::Scheduled),
            Some(ActivityStatus::Canceled),
        ][i]
    };
    for (i, a) in w.acts.iter().enumerate() {
        let (opportunity_id, account_id) = match a.target {
            0..=3 => (Some(format!("O{}", a.target + 1)), None),
            4 | 5 => (None, Some(format!("A{}", a.target - 3))),
            6 => (Some("O9".to_string()), Some("A3".to_string())),
            _ => (None, None),
        };
        let make = |status_i: usize, at_slot: i64| {
            let occurred_at = slot(at_slot);
            let created_at = a.created_delta.map(|d| slot(at_slot + d));
            let record = Record::Activities(Activity {
                activity_id: format!("a{i}"),
                activity_type: ActivityType::ALL[a.ty],
                direction: [None, Some(Direction::Inbound), Some(Direction::Outbound)][a.direction],
                status: status(status_i),
                rep_id: Some("R1".into()),
                account_id: account_id.clone(),
                opportunity_id: opportunity_id.clone(),
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
            (record, created_at.unwrap_or(occurred_at))
        };
        let (first, first_known) = make(a.status, a.at_slot);
        out.push(Version {
            seq: next(),
            key: format!("a{i}"),
            record: first,
            last: a.revised.is_none(),
            known_from: first_known,
        });
        if let Some((s, shift)) = a.revised {
            let (second, known) = make(s, a.at_slot + shift);
            out.push(Version {
                seq: next(),
                key: format!("a{i}"),
                record: second,
                last: true,
                known_from: known,
            });
        }
    }
    for (i, u) in w.uses.iter().enumerate() {
        let occurred_at = slot(u.at_slot);
        let mut e = ProductEvent {
            event: ["Report Exported", "Dashboard Viewed", "Invite Sent"][u.event].into(),
            account_id: None,
            user_id: None,
            ..product_event(&format!("p{i}"), "", "", occurred_at)
        };
        match u.by {
            0 => e.account_id = Some("A1".into()),
            1 => e.account_id = Some("A3".into()),
            2 => e.account_domain = Some("a2.com".into()),
            3 => e.user_id = Some("u1".into()),
            4 => e.user_id = Some("u2".into()),
            _ => e.user_id = Some("u7".into()),
        }
        out.push(Version {
            seq: next(),
            key: format!("p{i}"),
            record: Record::ProductEvents(e),
            last: true,
            known_from: occurred_at,
        });
    }
    for (i, t) in w.touches.iter().enumerate() {
        let occurred_at = slot(t.at_slot);
        let mut m = MarketingTouch {
            account_id: None,
            ..touch(&format!("t{i}"), "", TouchKind::ALL[t.kind], occurred_at)
        };
        match t.by {
            0 => m.account_id = Some("A2".into()),
            1 => m.contact_id = Some("C4".into()),
            2 => m.email = Some("c1@a1.com".into()),
            3 => m.email = Some("someone@a3.com".into()),
            _ => m.email = Some("someone@gmail.com".into()),
        }
        out.push(Version {
            seq: next(),
            key: format!("t{i}"),
            record: Record::MarketingTouches(m),
            last: true,
            known_from: occurred_at,
        });
    }
    for (i, k) in w.tickets.iter().enumerate() {
        let id = format!("K{i}");
        let created_at = slot(k.created_slot);
        let mut open = ticket(&id, "A1", Priority::ALL[k.priority], created_at, None);
        if k.by < 3 {
            open.account_id = Some(format!("A{}", k.by + 1));
        } else {
            open.account_id = None;
            open.contact_id = Some("C3".into());
        }
        out.push(Version {
            seq: 1,
            key: id.clone(),
            record: Record::SupportTickets(open.clone()),
            last: k.solved_after.is_none(),
            known_from: created_at,
        });
        if let Some(after) = k.solved_after {
            let solved_at = slot(k.created_slot + after);
            out.push(Version {
                seq: 2,
                key: id.clone(),
                record: Record::SupportTickets(SupportTicket {
                    solved_at: Some(solved_at),
                    status: Some("solved".into()),
                    ..open
                }),
                last: true,
                known_from: created_at,
            });
        }
    }
    for (i, c) in w.calls.iter().enumerate() {
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
        out.push(Version {
            seq: 1,
            key: format!("call{i}"),
            record: Record::Transcripts(transcript(
                &format!("call{i}"),
                ["O1", "O3", "O9", "O4"][c.opp],
                started_at,
                turns,
            )),
            last: true,
            known_from: at(started_at, (t * 1000.0) as i64),
        });
    }
    out
}

/// What arrives, in order: entity records (an earlier version always before the later one) and event
/// versions, shuffled, a quarter of them delivered twice.
enum Arrival<'a> {
    Entity(&'a Record),
    Event(&'a Version),
}

fn arrivals<'a>(
    entities: &'a [Record],
    earlier: &'a [(Record, Record)],
    events: &'a [Version],
    seed: u64,
) -> Vec<Arrival<'a>> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<Arrival<'a>> = Vec::new();
    let replaced = |r: &Record| earlier.iter().any(|(_, later)| later == r);
    out.extend(
        entities
            .iter()
            .filter(|r| !replaced(r))
            .map(Arrival::Entity),
    );
    out.extend(earlier.iter().map(|(first, _)| Arrival::Entity(first)));
    out.extend(events.iter().map(Arrival::Event));
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i as u64 + 1) as usize);
    }
    // The later versions of entities go somewhere after their earlier version.
    for (first, later) in earlier {
        let pos = out
            .iter()
            .position(|a| matches!(a, Arrival::Entity(r) if std::ptr::eq(*r, first)))
            .unwrap_or(0);
        let at = pos + 1 + rng.below((out.len() - pos) as u64) as usize;
        out.insert(at, Arrival::Entity(later));
    }
    // Repeats: an event version (any, even an old one after its successor) or an entity's current
    // record (an entity upsert takes the current version, so an earlier one is not repeated).
    let n = out.len();
    for _ in 0..n / 4 {
        let i = rng.below(n as u64) as usize;
        let again = match &out[i] {
            Arrival::Entity(r) if earlier.iter().any(|(first, _)| std::ptr::eq(*r, first)) => {
                continue
            }
            Arrival::Entity(r) => Arrival::Entity(r),
            Arrival::Event(v) => Arrival::Event(v),
        };
        let at = i + rng.below((out.len() - i) as u64 + 1) as usize;
        out.insert(at.min(out.len()), again);
    }
    out
}

fn observe(v: &Version) -> Observation<'_> {
    Observation {
        seq: v.seq,
        key: &v.key,
        record: &v.record,
    }
}

/// The snapshots as comparable text (Debug prints every float exactly; NaN as NaN).
fn rows(snaps: &[Snapshot]) -> Vec<String> {
    snaps.iter().map(|s| format!("{s:?}")).collect()
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

/// A directory for a case's store: in memory (tmpfs) where the machine has one, as a store syncs every
/// commit to disk and a thousand cases of that are most of the test's time on a disk.
fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Every deal's remembered values at `as_of` are what a full evaluation gives, to the bit: read one
/// deal at a time after every third arrival, else all of them at once, shared out among threads (the
/// memo shares from one deal per thread on).
fn memo_is_evaluation(
    live: &Engine,
    memo: &mut Memo,
    catalog: &Catalog,
    as_of: i64,
    arrival: usize,
) -> Result<(), TestCaseError> {
    let opps: Vec<u32> = (0..live.context().opps.len() as u32).collect();
    let values = if arrival.is_multiple_of(3) {
        opps.iter()
            .map(|&opp| memo.values(live, catalog, opp, as_of))
            .collect()
    } else {
        let deals: Vec<(u32, i64)> = opps.iter().map(|&opp| (opp, as_of)).collect();
        memo.values_of(live, catalog, &deals)
    };
    prop_assert_eq!(values.len(), opps.len());
    for (opp, got) in opps.into_iter().zip(values) {
        // When the deal last moved, as its definition reads: every stage entry, activity, booked
        // meeting taken place and call known by then.
        let (o, d) = (&live.context().opps[opp as usize], live.deal(opp));
        let moved = (o.stages.iter().map(|(at, _)| at.0).filter(|&at| at < as_of))
            .chain(
                d.acts()
                    .iter()
                    .chain(d.booked())
                    .filter(|a| a.known < as_of && a.at < as_of)
                    .map(|a| a.at),
            )
            .chain(d.calls().iter().map(|c| c.known).filter(|&k| k < as_of))
            .fold(o.created.0, i64::max);
        prop_assert_eq!(
            live.last_activity(opp, Ts(as_of)).0,
            moved,
            "last activity of deal {} at {}",
            opp,
            as_of
        );
        let v = View::new(live, opp, as_of);
        for (def, got) in catalog.behaviours.iter().zip(got) {
            let want = evaluate(def, &v, &mut |_, _| {});
            prop_assert!(
                got.to_bits() == want.to_bits(),
                "arrival {}: {} of deal {} at {}: remembered {}, evaluated {}",
                arrival,
                def.id,
                opp,
                as_of,
                got,
                want
            );
        }
    }
    Ok(())
}

fn check(w: &World, catalog: &Catalog) -> Result<(), TestCaseError> {
    let (final_entities, earlier) = entities();
    let events = versions(w);

    // Incremental: one arrival at a time.
    let mut live = Engine::new(Context::new());
    let mut touched = Touched::default();
    // Read from the start, so the engine keeps the horizon up to date through every arrival (new
    // versions, late entities, moves) instead of scanning for it once at the end.
    snapshot::horizon(&live);
    // Values remembered across arrivals, read as a live service reads them (at the end of the data as
    // it grows) and now and then at an earlier time: always what a full evaluation gives.
    let mut memo = Memo::sharing_from(1);
    for (i, a) in arrivals(&final_entities, &earlier, &events, w.order_seed)
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            let as_of = if i % 5 == 4 {
                slot((i as i64 * 37) % 240).0
            } else {
                snapshot::horizon(&live).0 + 1
            };
            memo_is_evaluation(&live, &mut memo, catalog, as_of, i)?;
        }
        match a {
            Arrival::Entity(r) => touched.extend(live.upsert_entity(r)),
            Arrival::Event(v) => {
                let (applied, t) = live.apply(&observe(v));
                prop_assert!(
                    applied != Applied::Ignored,
                    "an event of a kind the engine reads was ignored"
                );
                touched.extend(t);
            }
        }
    }
    let end = snapshot::horizon(&live).0 + 1;
    memo_is_evaluation(&live, &mut memo, catalog, end, usize::MAX)?;
    let n_deals = live.context().opps.len() as u32;
    prop_assert!(touched.deals.iter().all(|d| *d < n_deals));

    // Replay of a store holding the final data.
    let dir = scratch_dir();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let finals: Vec<&Version> = events.iter().filter(|v| v.last).collect();
    let mut records = final_entities.clone();
    records.extend(finals.iter().map(|v| v.record.clone()));
    write(&mut store, &records);
    let ctx = Context::from_store(&store).unwrap();
    let replayed = Engine::replay(ctx.clone(), &store, &mut |_| {}).unwrap();

    let horizon = snapshot::horizon(&replayed);
    prop_assert_eq!(snapshot::horizon(&live), horizon, "horizon");
    prop_assert_eq!(live.unattributed(), replayed.unattributed(), "unattributed");
    let want = snapshot::snapshots(&replayed, catalog, horizon, &mut |_, _| {});
    let got = snapshot::snapshots(&live, catalog, horizon, &mut |_, _| {});
    prop_assert_eq!(rows(&got), rows(&want), "incremental vs replay");

    // From scratch at every landmark: a fresh engine fed only the final data known before it.
    let lms = snapshot::landmarks(&ctx, catalog, horizon);
    let mut scratch: BTreeMap<Ts, Engine> = BTreeMap::new();
    for (lm, replayed_row) in lms.items.iter().zip(&want) {
        let e = scratch.entry(lm.as_of).or_insert_with(|| {
            let mut e = Engine::new(ctx.clone());
            for v in finals.iter().filter(|v| v.known_from < lm.as_of) {
                e.apply(&observe(v));
            }
            e
        });
        let s = snapshot::snapshot(e, catalog, &lms.names, lm, horizon);
        prop_assert_eq!(
            format!("{s:?}"),
            format!("{replayed_row:?}"),
            "recompute vs replay"
        );
    }

    // A checkpoint of the live engine restored over the same entities is the same engine.
    let bytes = live.checkpoint(LogPosition(7));
    let (restored, position) = Engine::restore(&bytes, Context::from_records(&final_entities))
        .map_err(TestCaseError::fail)?;
    prop_assert_eq!(position, LogPosition(7));
    prop_assert_eq!(restored.state_digest(), live.state_digest());
    // A cut checkpoint is an error, wherever it is cut (never a smaller state).
    for cut in [1, 8, bytes.len() / 2, bytes.len() - 1] {
        prop_assert!(
            Checkpoint::decode(&bytes[..cut]).is_err(),
            "cut at {} of {}",
            cut,
            bytes.len()
        );
    }
    Ok(())
}

/// 1,000 by default; `WINSIGNAL_PROPTEST_CASES` sets another number (for a quick local run).
fn cases() -> u32 {
    std::env::var("WINSIGNAL_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// Definitions the default catalog has no example of: account activities since the deal was created
/// (the window moves with the deal's creation), an attribute of the deal, a median, decayed sums with
/// half-lives short enough that the decay's anchor (every 64 half-lives) moves within the worlds' two
/// months, a share of account activities in a trailing window, and windows of a few days (counts,
/// distinct contacts, seniority levels, days since, contacts of touches) that items leave as the worlds'
/// time moves.
const MORE: &str = r#"
[[behaviour]]
id = "account_acts_since_created"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "account", status = ["completed"] }
window = "deal_to_date"
aggregate = "count"

[[behaviour]]
id = "deal_amount"
version = 1
title = "t"
description = "d"
reads = { kind = "attribute", attribute = "opportunity.amount" }
aggregate = "value"

[[behaviour]]
id = "median_duration"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "deal", types = ["call"] }
window = "deal_to_date"
aggregate = "median"
field = "duration_s"

[[behaviour]]
id = "acts_decayed_quarter_day"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "account", status = ["completed"] }
window = "half_life_days:0.25"
aggregate = "sum"
field = "duration_s"

[[behaviour]]
id = "usage_decayed_half_day"
version = 1
title = "t"
description = "d"
reads = { kind = "product_events" }
window = "half_life_days:0.5"
aggregate = "count"

[[behaviour]]
id = "follow_up_share_30d"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "deal", types = ["meeting", "call"] }
window = "trailing_days:30"
aggregate = "follow_up_share"
within_hours = 48
then = { scope = "account", types = ["email"] }

[[behaviour]]
id = "latest_call_length"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "account", types = ["call"] }
window = "all_history"
aggregate = "latest"
field = "duration_s"

[[behaviour]]
id = "recent_inbound_decayed"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "deal", direction = ["inbound"] }
window = "half_life_days:0.5"
aggregate = "exists"

[[behaviour]]
id = "touches_since_created"
version = 1
title = "t"
description = "d"
reads = { kind = "marketing_touches" }
window = "deal_to_date"
aggregate = "count"

[[behaviour]]
id = "account_inbound_share_30d"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "account", direction = ["inbound"] }
window = "trailing_days:30"
aggregate = "share"

[[behaviour]]
id = "deal_acts_3d"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "deal" }
window = "trailing_days:3"
aggregate = "count"

[[behaviour]]
id = "deal_contacts_3d"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "deal", status = ["completed"] }
window = "trailing_days:3"
aggregate = "distinct_contacts"

[[behaviour]]
id = "account_levels_5d"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "account" }
window = "trailing_days:5"
aggregate = "seniority_coverage"

[[behaviour]]
id = "days_since_call_5d"
version = 1
title = "t"
description = "d"
reads = { kind = "activities", scope = "deal", types = ["call"] }
window = "trailing_days:5"
aggregate = "days_since"

[[behaviour]]
id = "touch_contacts_7d"
version = 1
title = "t"
description = "d"
reads = { kind = "marketing_touches" }
window = "trailing_days:7"
aggregate = "distinct_contacts"
"#;

#[test]
fn any_arrival_order_equals_replay_and_recompute_at_every_landmark() {
    let text = format!("{}{MORE}", include_str!("../catalog/default.toml"));
    let catalog = winsignal_features::catalog::parse(&text, "default + more").unwrap();
    let result = runner(cases()).run(&world(), |w| check(&w, &catalog));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// A restarted process restores its checkpoint and applies only what the store committed after the
/// checkpoint's log position: late entities (their parked events are placed), a new version of an
/// activity (Scheduled → Completed), a solved ticket, a new deal's activity. The result is the engine a
/// replay of the whole store builds, and the touched set names the deals that changed.
#[test]
fn catch_up_from_a_checkpoint_equals_a_replay() {
    let catalog = default_catalog();
    let (all_entities, _) = entities();
    let late = |r: &Record| match r {
        Record::Accounts(a) => a.account_id == "A3",
        Record::Contacts(c) => c.contact_id == "C4",
        Record::Opportunities(o) => o.opportunity_id == "O4",
        Record::OpportunityContacts(r) => r.opportunity_id == "O4",
        Record::ProductUsers(u) => u.link_id == "L1",
        _ => false,
    };
    let scheduled = Activity {
        status: Some(ActivityStatus::Scheduled),
        ..meeting("a1", "O1", &["C2"], day(3.0))
    };
    let completed = Activity {
        status: Some(ActivityStatus::Completed),
        ..scheduled.clone()
    };
    let open_ticket = ticket("K1", "A1", Priority::High, day(2.0), None);
    let solved_ticket = ticket("K1", "A1", Priority::High, day(2.0), Some(day(4.0)));
    let mut first: Vec<Record> = all_entities.iter().filter(|r| !late(r)).cloned().collect();
    first.extend([
        Record::Activities(scheduled),
        Record::ProductEvents(product_event("p1", "A3", "u1", day(2.5))),
        Record::MarketingTouches(MarketingTouch {
            account_id: None,
            contact_id: Some("C4".into()),
            ..touch("t1", "", TouchKind::WebVisit, day(1.5))
        }),
        Record::SupportTickets(open_ticket),
    ]);
    let mut second: Vec<Record> = all_entities.iter().filter(|r| late(r)).cloned().collect();
    second.extend([
        Record::Activities(completed),
        Record::Activities(meeting("a2", "O4", &["C4"], day(6.0))),
        Record::SupportTickets(solved_ticket),
    ]);

    let dir = scratch_dir();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    write_file(&mut store, &first, "first");
    let (checkpoint, from) = {
        let snap = store.snapshot().unwrap();
        let engine =
            Engine::replay(Context::from_store(&*snap).unwrap(), &*snap, &mut |_| {}).unwrap();
        let from = snap.position().unwrap();
        (engine.checkpoint(from), from)
    };
    let before: Vec<Record> = first
        .iter()
        .filter(|r| !r.kind().is_event())
        .cloned()
        .collect();
    write_file(&mut store, &second, "second");

    let (mut restarted, position) =
        Engine::restore(&checkpoint, Context::from_records(&before)).unwrap();
    assert_eq!(position, from);
    let touched = restarted.catch_up(&store, position).unwrap();
    let replayed =
        Engine::replay(Context::from_store(&store).unwrap(), &store, &mut |_| {}).unwrap();

    let horizon = snapshot::horizon(&replayed);
    assert_eq!(snapshot::horizon(&restarted), horizon);
    assert_eq!(restarted.unattributed(), replayed.unattributed());
    let every_row = |e: &Engine| rows(&snapshot::snapshots(e, &catalog, horizon, &mut |_, _| {}));
    assert_eq!(every_row(&restarted), every_row(&replayed));
    let ctx = restarted.context();
    for deal in ["O1", "O4"] {
        let slot = ctx.opportunity(deal).unwrap();
        assert!(
            touched.deals.contains(&slot),
            "{deal} not touched: {touched:?}"
        );
    }
    let a1 = ctx.opportunity("O1").unwrap();
    assert_eq!(
        restarted.deal(a1).acts()[0].status,
        Some(ActivityStatus::Completed),
        "the new version replaced the scheduled meeting"
    );
    assert_eq!(
        restarted.deal(a1).acts().len(),
        1,
        "the scheduled version is gone"
    );

    // As the workspace restores: over the entities as they are now (the late ones included), the
    // changes since applied as the log describes them (new keys, and the versions they replace).
    let (mut current, _) =
        Engine::restore(&checkpoint, Context::from_store(&store).unwrap()).unwrap();
    current.catch_up(&store, from).unwrap();
    assert_eq!(every_row(&current), every_row(&replayed));
    let ticket = current.context().account("A1").unwrap();
    assert_eq!(current.account(ticket).tickets().len(), 1);
    assert!(current.account(ticket).tickets()[0].solved.is_some());
}
