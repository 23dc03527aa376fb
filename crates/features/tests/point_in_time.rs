//! Point-in-time correctness: nothing at or after a landmark can change a value computed at it.
//!
//! A realistic history (a parent account, its child and another; five deals; every kind of event) is
//! snapshotted; then, for every landmark time T, events that would change every behaviour of the deal
//! whose landmark it is are planted at and after T — and the store and engine are rebuilt. Every
//! snapshot at a landmark at or before T must stay identical to the bit, and (so the planted events are
//! known to matter) every one of the twelve behaviours must read differently two days after T.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use winsignal_core::{
    Account, Activity, ActivityStatus, Direction, Outcome, Priority, SpeakerRole, TouchKind, Ts,
};
use winsignal_features::lineage::explain;
use winsignal_features::snapshot::{self, Landmark, Landmarks};
use winsignal_features::{default_catalog, Engine, Snapshot};

const BEHAVIOURS: [&str; 12] = [
    "exec_engaged",
    "multithreaded",
    "next_step_scheduled",
    "fast_follow_up",
    "responsive",
    "product_active",
    "usage_growing",
    "marketing_engaged",
    "urgent_ticket_open",
    "talk_ratio_balanced",
    "asks_questions",
    "champion_reused",
];

struct DealSpec {
    id: &'static str,
    account: &'static str,
    created: Ts,
}

fn deals() -> Vec<DealSpec> {
    let d = |id, account, created| DealSpec {
        id,
        account,
        created: ts(created),
    };
    vec![
        d("D1", "A1", "2024-01-10T09:00:00Z"),
        d("D2", "A1", "2023-10-01T09:00:00Z"),
        d("D3", "A2", "2024-01-20T09:00:00Z"),
        d("D4", "A3", "2024-02-01T09:00:00Z"),
        d("D5", "A2", "2024-02-10T09:00:00Z"),
    ]
}

/// Contact `role` of account `a`: IC1 (the deal's day-one contact), MGR, DIR, VP, CEO, and P1–P5,
/// who appear only in planted events.
fn c(a: &str, role: &str) -> String {
    format!("{a}-{role}")
}

fn contacts_of(a: &str) -> Vec<(String, &'static str)> {
    vec![
        (c(a, "IC1"), "Business Analyst"),
        (c(a, "MGR"), "Operations Manager"),
        (c(a, "DIR"), "Director of Finance"),
        (c(a, "VP"), "VP Operations"),
        (c(a, "CEO"), "CEO"),
        (c(a, "P1"), "VP Procurement"),
        (c(a, "P2"), "Analyst"),
        (c(a, "P3"), "Team Lead"),
        (c(a, "P4"), "Director of IT"),
        (c(a, "P5"), "Engineer"),
    ]
}

/// The history every run shares.
fn base() -> Fixture {
    let mut f = Fixture::new();
    for (id, segment, industry, country, employees, parent) in [
        ("A1", "Enterprise", "Software", "US", 2000.0, None),
        ("A2", "Mid-Market", "Software", "DE", 300.0, Some("A1")),
        ("A3", "SMB", "Retail", "US", 40.0, None),
    ] {
        f.add(Account {
            segment: Some(segment.into()),
            industry: Some(industry.into()),
            country: Some(country.into()),
            employees: Some(employees),
            parent_account_id: parent.map(str::to_string),
            ..account(id)
        });
        for (cid, title) in contacts_of(id) {
            f.add(contact(&cid, id, Some(title)));
        }
        // An old low-priority ticket, never solved in the base history.
        f.add(ticket(
            &c(id, "K1"),
            id,
            Priority::Low,
            ts("2023-09-01T00:00:00Z"),
            None,
        ));
    }
    f.add(rep("R1"));
    let spec = deals();
    let created = |i: usize| spec[i].created;
    f.add(opportunity("D1", "A1", created(0)));
    f.add(closed(
        "D2",
        "A1",
        created(1),
        ts("2023-12-15T12:00:00Z"),
        Outcome::Won,
    ));
    f.add(closed(
        "D3",
        "A2",
        created(2),
        ts("2024-03-15T12:00:00Z"),
        Outcome::Lost,
    ));
    f.add(closed(
        "D4",
        "A3",
        created(3),
        ts("2024-03-20T12:00:00Z"),
        Outcome::Won,
    ));
    f.add(opportunity("D5", "A2", created(4)));
    for (opp, stage_name, day) in [
        ("D1", "Qualify", 0.0),
        ("D1", "Discovery", 12.0),
        ("D1", "Proposal", 35.0),
        ("D1", "Negotiation", 50.0),
        ("D2", "Qualify", 0.0),
        ("D2", "Proposal", 20.0),
        ("D4", "Qualify", 0.0),
        ("D4", "Discovery", 20.5),
    ] {
        let d = spec.iter().find(|d| d.id == opp).unwrap();
        f.add(stage(opp, stage_name, d.created.plus_days(day)));
    }
    // Roles: the VP was on the deal won at A1 (a champion for D1); nobody's day-one contact IC1 holds
    // a role on a won deal, so a planted win can make IC1 a reused champion.
    f.add(role("D2", &c("A1", "VP")));
    f.add(role("D4", &c("A3", "VP")));
    f.add(role("D1", &c("A1", "MGR")));
    for d in &spec {
        history(&mut f, d);
    }
    f
}

/// A deal's own activity, transcripts, and its account's product use, marketing and tickets.
fn history(f: &mut Fixture, d: &DealSpec) {
    let (o, a, t0) = (d.id, d.account, d.created);
    let t = |ms: i64| at(t0, ms);
    let id = |what: &str| format!("{o}-{what}");
    let ic1 = c(a, "IC1");
    let mgr = c(a, "MGR");
    // Day one: a meeting followed up two hours later (so fast_follow_up has a followed meeting).
    f.add(meeting(&id("m1"), o, &[&ic1], t(HOUR)));
    f.add(email(
        &id("e1"),
        o,
        Direction::Outbound,
        &[&ic1],
        t(3 * HOUR),
    ));
    // A quick reply to an inbound e-mail; later a slow one.
    f.add(email(&id("i1"), o, Direction::Inbound, &[&mgr], t(2 * DAY)));
    f.add(email(
        &id("r1"),
        o,
        Direction::Outbound,
        &[&mgr],
        t(2 * DAY + 5 * HOUR),
    ));
    f.add(email(
        &id("i2"),
        o,
        Direction::Inbound,
        &[&mgr],
        t(20 * DAY),
    ));
    f.add(email(
        &id("r2"),
        o,
        Direction::Outbound,
        &[&mgr],
        t(20 * DAY + 30 * HOUR),
    ));
    f.add(Activity {
        duration_s: Some(1200.0),
        ..call(&id("k1"), o, &[&c(a, "DIR")], t(5 * DAY))
    });
    // A meeting nobody followed up.
    f.add(meeting(&id("m2"), o, &[&mgr], t(9 * DAY)));
    // Booked on day 12 for day 15, held with the VP.
    f.add(Activity {
        created_at: Some(t(12 * DAY)),
        ..meeting(&id("m3"), o, &[&c(a, "VP")], t(15 * DAY))
    });
    // A call with the CEO on day 40, logged three days late.
    f.add(Activity {
        created_at: Some(t(43 * DAY)),
        ..call(&id("k2"), o, &[&c(a, "CEO")], t(40 * DAY))
    });
    // Booked on day 44 for day 52, not yet held when the data ends.
    f.add(booked_meeting(&id("m4"), o, t(44 * DAY), t(52 * DAY)));
    // A 55-minute call on day 26: rep 30 min with 5 questions, customer 25 min.
    f.add(transcript(
        &id("call1"),
        o,
        t(26 * DAY),
        vec![
            turn(
                SpeakerRole::Rep,
                0.0,
                900.0,
                "How do you report today? Who signs? Why now?",
            ),
            turn(
                SpeakerRole::Customer,
                900.0,
                2400.0,
                "Spreadsheets, mostly.",
            ),
            turn(
                SpeakerRole::Rep,
                2400.0,
                3300.0,
                "What breaks first? When do you close?",
            ),
        ],
    ));
    // The account's product use: three users, busier over time.
    for day in (-10..70).step_by(2) {
        let n = 1 + (day + 10) / 20;
        for u in 0..n {
            let user = format!("{a}-u{}", u % 3);
            f.add(product_event(
                &format!("{o}-p{day}-{u}"),
                a,
                &user,
                t(day * DAY + u * HOUR),
            ));
        }
    }
    f.add(touch(&id("t1"), a, TouchKind::WebinarAttended, t(7 * DAY)));
    for week in 0..8 {
        f.add(touch(
            &id(&format!("t-open{week}")),
            a,
            TouchKind::EmailOpen,
            t(week * 7 * DAY),
        ));
    }
    // An urgent ticket open from day 18 to day 21.
    f.add(ticket(
        &id("K2"),
        a,
        Priority::Urgent,
        t(18 * DAY),
        Some(t(21 * DAY)),
    ));
}

/// Events at and after `t` that would change every behaviour of `d` if they were visible at `t`.
fn plant(f: &mut Fixture, d: &DealSpec, t: Ts) {
    let (o, a) = (d.id, d.account);
    let id = |what: &str| format!("{o}-plant-{}-{what}", t.0);
    let p = |n: u32| c(a, &format!("P{n}"));
    // An executive meeting at exactly t, not followed up within 24 hours.
    f.add(meeting(&id("exec"), o, &[&p(1)], t));
    // Many new contacts, and five more meetings nobody follows up.
    for (n, delay) in [(2, 0), (3, 1), (4, HOUR), (5, DAY)] {
        f.add(call(&id(&format!("call{n}")), o, &[&p(n)], at(t, delay)));
    }
    for k in 0..5 {
        f.add(meeting(
            &id(&format!("meet{k}")),
            o,
            &[&c(a, "MGR")],
            at(t, k),
        ));
    }
    // Held two days before t, logged an hour after it.
    f.add(Activity {
        created_at: Some(at(t, HOUR)),
        ..call(&id("late"), o, &[&p(4)], at(t, -2 * DAY))
    });
    // Booked at t for five days later.
    f.add(booked_meeting(&id("next"), o, t, at(t, 5 * DAY)));
    // Nine inbound e-mails answered (slowly) by one outbound e-mail 40 hours later.
    for k in 0..9 {
        f.add(email(
            &id(&format!("in{k}")),
            o,
            Direction::Inbound,
            &[&p(2)],
            at(t, k),
        ));
    }
    f.add(email(
        &id("out"),
        o,
        Direction::Outbound,
        &[&p(2)],
        at(t, 40 * HOUR),
    ));
    // Six new product users.
    for k in 0..6 {
        f.add(product_event(
            &id(&format!("use{k}")),
            a,
            &id(&format!("user{k}")),
            at(t, k * HOUR),
        ));
    }
    f.add(touch(&id("webinar"), a, TouchKind::WebinarAttended, t));
    f.add(touch(
        &id("download"),
        a,
        TouchKind::ContentDownload,
        at(t, HOUR),
    ));
    // An urgent ticket opened at t, a high one a day later, and the old low ticket solved at t.
    f.add(ticket(&id("urgent"), a, Priority::Urgent, t, None));
    f.add(ticket(&id("high"), a, Priority::High, at(t, DAY), None));
    f.add(ticket(
        &c(a, "K1"),
        a,
        Priority::Low,
        ts("2023-09-01T00:00:00Z"),
        Some(t),
    ));
    // Ten hours of the rep asking questions, starting at t; and a call in progress at t.
    f.add(transcript(
        &id("monologue"),
        o,
        t,
        vec![turn(
            SpeakerRole::Rep,
            0.0,
            36_000.0,
            &"Any questions? ".repeat(1000),
        )],
    ));
    f.add(transcript(
        &id("ongoing"),
        o,
        at(t, -10 * MINUTE),
        vec![
            turn(SpeakerRole::Rep, 0.0, 900.0, "Shall we?"),
            turn(SpeakerRole::Customer, 900.0, 1800.0, "Yes."),
        ],
    ));
    // A deal at the same account, won at exactly t, on which the deal's day-one contact had a role.
    let won = id("won");
    f.add(closed(&won, a, at(t, -30 * DAY), t, Outcome::Won));
    f.add(role(&won, &c(a, "IC1")));
    // And to be sure scheduled status is no shortcut: a scheduled meeting at t itself.
    f.add(Activity {
        status: Some(ActivityStatus::Scheduled),
        ..meeting(&id("sched"), o, &[&p(3)], t)
    });
}

/// A snapshot as text, with every value as its bits (so NaN equals NaN and -0 differs from 0).
fn exact(s: &Snapshot) -> (String, Vec<u64>) {
    let rest = Snapshot {
        values: Vec::new(),
        ..s.clone()
    };
    (
        format!("{rest:?}"),
        s.values.iter().map(|v| v.to_bits()).collect(),
    )
}

/// The snapshot at `lm` (a landmark of another run) of opportunity `opp_id`, found again by id because
/// planted deals shift the dense indexes.
fn snapshot_by_id(
    engine: &Engine,
    opp_id: &str,
    lm: &Landmark,
    lms: &Landmarks,
    horizon: Ts,
) -> Snapshot {
    let opp = engine.context().opportunity(opp_id).unwrap();
    let moved = Landmark { opp, ..*lm };
    snapshot::snapshot(engine, &default_catalog(), &lms.names, &moved, horizon)
}

#[test]
fn events_at_or_after_a_landmark_never_change_its_snapshot() {
    let catalog = default_catalog();
    let base_fixture = base();
    let base = base_fixture.build();
    let base_engine = base.engine();
    let horizon = snapshot::horizon(&base_engine);
    let lms = snapshot::landmarks(&base.ctx, &catalog, horizon);
    let opp_id = |lm: &Landmark| base.ctx.opps[lm.opp as usize].id.clone();
    let before: Vec<Snapshot> = lms
        .items
        .iter()
        .map(|lm| snapshot::snapshot(&base_engine, &catalog, &lms.names, lm, horizon))
        .collect();
    // Every deal has landmarks; every landmark kind occurs.
    let deal_ids: BTreeSet<String> = lms.items.iter().map(opp_id).collect();
    assert_eq!(deal_ids.len(), 5, "{deal_ids:?}");
    for name in [
        "created",
        "stage:Qualify",
        "stage:Discovery",
        "age:14d",
        "age:30d",
        "age:60d",
    ] {
        assert!(
            lms.names.iter().any(|n| n == name),
            "no {name} landmark: {:?}",
            lms.names
        );
    }

    let times: BTreeSet<Ts> = lms.items.iter().map(|lm| lm.as_of).collect();
    let mut compared = 0;
    for &t in &times {
        let targets: Vec<DealSpec> = deals()
            .into_iter()
            .filter(|d| {
                lms.items
                    .iter()
                    .any(|lm| lm.as_of == t && opp_id(lm) == d.id)
            })
            .collect();
        let mut planted = base_fixture.clone();
        for d in &targets {
            plant(&mut planted, d, t);
        }
        let after = planted.build();
        let engine = after.engine();

        // The same landmarks exist (the planted data only moves the end of the data later).
        let planted_lms = snapshot::landmarks(&after.ctx, &catalog, snapshot::horizon(&engine));
        let listed =
            |l: &Landmarks, ctx: &winsignal_features::Context| -> Vec<(String, String, Ts)> {
                l.items
                    .iter()
                    .filter(|lm| lm.as_of <= t && deal_ids.contains(&ctx.opps[lm.opp as usize].id))
                    .map(|lm| {
                        let id = ctx.opps[lm.opp as usize].id.clone();
                        (id, l.names[lm.name as usize].clone(), lm.as_of)
                    })
                    .collect()
            };
        assert_eq!(
            listed(&planted_lms, &after.ctx),
            listed(&lms, &base.ctx),
            "landmarks up to {t}"
        );

        for (lm, want) in lms
            .items
            .iter()
            .zip(&before)
            .filter(|(lm, _)| lm.as_of <= t)
        {
            let got = snapshot_by_id(&engine, &opp_id(lm), lm, &lms, horizon);
            assert_eq!(
                exact(&got),
                exact(want),
                "{} at {} ({}) changed after planting at {t}",
                want.opportunity_id,
                want.landmark,
                want.as_of
            );
            compared += 1;
        }

        // The planted events do matter: two days after t every behaviour of each target reads
        // differently than without them. (fast_follow_up stays 1 when the history's own e-mails follow
        // the planted meetings up, so for it the meetings it reads must be more.)
        let probe = at(t, 2 * DAY);
        for d in &targets {
            for b in BEHAVIOURS {
                let without = value(&base_engine, d.id, probe, b);
                let with = value(&engine, d.id, probe, b);
                if b == "fast_follow_up" && without == 1.0 && with == 1.0 {
                    let read = |e: &Engine| {
                        let opp = e.context().opportunity(d.id).unwrap();
                        explain(e, &definition(b), opp, probe).contributions.len()
                    };
                    assert!(
                        read(&engine) > read(&base_engine),
                        "{b} of {} at {probe}",
                        d.id
                    );
                    continue;
                }
                assert!(
                    without.to_bits() != with.to_bits(),
                    "{b} of {} at {probe} is {without} with and without the events planted at {t}",
                    d.id
                );
            }
        }
    }
    // D1: 4 stages + ages 14, 30, 60 = 7; D2 (won day 75): 2 stages + 3 ages = 5; D3 (lost day 55):
    // created + ages 14, 30 = 3; D4 (won day 48.1): 2 stages + ages 14, 30 = 4; D5 (open): created + 3
    // ages = 4. Each is compared once for every landmark time at or after it.
    assert_eq!(lms.items.len(), 23);
    assert!(compared > 200, "{compared}");
}
