//! The default catalog's yes/no behaviours, some continuous features and the landmarks, each on
//! hand-made events with the expected value worked out in a comment. Edges are at the landmark itself
//! (an event at exactly `as_of` is not visible, one a millisecond earlier is), at window boundaries,
//! and where an event happened before the landmark but was only logged after it.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use winsignal_core::{
    Activity, ActivityStatus, ActivityType, Direction, Outcome, Priority, SpeakerRole, TouchKind,
    Ts,
};
use winsignal_features::{default_catalog, snapshot};

/// The landmark most tests read at.
fn landmark() -> Ts {
    ts("2024-04-01T00:00:00Z")
}

/// Accounts A1 (the deals' account), A2 (a lookalike with another industry) and A3 (unrelated);
/// contacts of every seniority at A1; open deals O1 and O2 at A1 and O3 at A2.
fn world() -> Fixture {
    let mut f = Fixture::new();
    for (id, industry) in [("A1", "Software"), ("A2", "Retail"), ("A3", "Banking")] {
        f.add(winsignal_core::Account {
            segment: Some("Mid-Market".into()),
            industry: Some(industry.into()),
            country: Some("US".into()),
            employees: Some(500.0),
            ..account(id)
        });
    }
    for (id, title) in [
        ("CEO1", Some("Chief Executive Officer")),
        ("VP1", Some("VP Sales")),
        ("DIR1", Some("Director of IT")),
        ("MGR1", Some("Engineering Manager")),
        ("IC1", Some("Data Analyst")),
        ("IC2", Some("Analyst")),
        ("NT1", None),
    ] {
        f.add(contact(id, "A1", title));
    }
    f.add(contact("X1", "A2", Some("VP Marketing")));
    f.add(rep("R1"));
    f.add(opportunity("O1", "A1", ts("2024-03-01T00:00:00Z")));
    f.add(opportunity("O2", "A1", ts("2024-03-05T00:00:00Z")));
    f.add(opportunity("O3", "A2", ts("2024-03-01T00:00:00Z")));
    f
}

/// The world plus whatever `events` adds, in a fresh store.
fn built(events: impl FnOnce(&mut Fixture)) -> Built {
    let mut f = world();
    events(&mut f);
    f.build()
}

/// The measure of `id` for O1 at the landmark, in a world with `events`.
fn o1_at_landmark(id: &str, events: impl FnOnce(&mut Fixture)) -> f64 {
    let b = built(events);
    let e = b.engine();
    value(&e, "O1", landmark(), id)
}

/// The yes/no of `id` for O1 at the landmark.
fn o1_flag(id: &str, events: impl FnOnce(&mut Fixture)) -> Option<bool> {
    let b = built(events);
    let e = b.engine();
    flag(&e, "O1", landmark(), id)
}

/// An e-mail to account A1 that is on no deal.
fn account_email(id: &str, direction: Direction, occurred_at: Ts) -> Activity {
    Activity {
        opportunity_id: None,
        account_id: Some("A1".into()),
        ..email(id, "O1", direction, &["IC1"], occurred_at)
    }
}

// ---------------------------------------------------------------- exec_engaged

#[test]
fn exec_engaged_needs_a_completed_meeting_or_call_with_a_vp_or_c_level_before_the_landmark() {
    let l = landmark();
    let id = "exec_engaged";
    // A completed meeting with the VP a millisecond before the landmark: 1 → yes.
    let v = o1_at_landmark(id, |f| {
        f.add(meeting("M1", "O1", &["VP1"], at(l, -1)));
    });
    assert_eq!(v, 1.0);
    // The same meeting at exactly the landmark is not known before it: 0 → no.
    assert_eq!(
        o1_flag(id, |f| {
            f.add(meeting("M1", "O1", &["VP1"], l));
        }),
        Some(false)
    );
    // A call with the CEO counts; two exec calls count 2.
    let v = o1_at_landmark(id, |f| {
        f.add(call("K1", "O1", &["CEO1"], at(l, -3 * DAY)));
        f.add(call("K2", "O1", &["VP1"], at(l, -2 * DAY)));
    });
    assert_eq!(v, 2.0);
    // An e-mail to the CEO is neither a meeting nor a call; a meeting with a director is not an
    // executive; a scheduled or canceled exec meeting was not held; an exec meeting on O2 is not O1's.
    let v = o1_at_landmark(id, |f| {
        f.add(email(
            "E1",
            "O1",
            Direction::Outbound,
            &["CEO1"],
            at(l, -DAY),
        ));
        f.add(meeting("M1", "O1", &["DIR1"], at(l, -DAY)));
        f.add(Activity {
            status: Some(ActivityStatus::Scheduled),
            ..meeting("M2", "O1", &["VP1"], at(l, -DAY))
        });
        f.add(Activity {
            status: Some(ActivityStatus::Canceled),
            ..meeting("M3", "O1", &["CEO1"], at(l, -DAY))
        });
        f.add(meeting("M4", "O2", &["CEO1"], at(l, -DAY)));
    });
    assert_eq!(v, 0.0);
}

#[test]
fn exec_engaged_ignores_a_meeting_held_before_the_landmark_but_logged_after_it() {
    let l = landmark();
    let b = built(|f| {
        // Held two days before the landmark, logged an hour after it: known from l + 1 h.
        f.add(Activity {
            created_at: Some(at(l, HOUR)),
            ..meeting("M1", "O1", &["VP1"], at(l, -2 * DAY))
        });
    });
    let e = b.engine();
    assert_eq!(flag(&e, "O1", l, "exec_engaged"), Some(false));
    assert_eq!(flag(&e, "O1", at(l, HOUR), "exec_engaged"), Some(false));
    assert_eq!(flag(&e, "O1", at(l, HOUR + 1), "exec_engaged"), Some(true));
}

#[test]
fn exec_engaged_counts_activities_on_the_deal_before_it_was_created() {
    // deal_to_date on deal-scoped activities means everything on the deal (catalog.rs `Window`).
    let v = o1_at_landmark("exec_engaged", |f| {
        f.add(meeting("M1", "O1", &["CEO1"], ts("2024-02-20T00:00:00Z")));
    });
    assert_eq!(v, 1.0);
}

/// Fails today: `Engine::apply` (engine.rs, `contact: a.contact_ids.first()`) keeps only the first
/// contact of an activity, so an executive listed second on a meeting is never seen.
#[test]
fn exec_engaged_sees_an_executive_listed_after_another_contact() {
    // One completed meeting with the analyst and the VP: "a meeting with a contact whose title is VP".
    let v = o1_flag("exec_engaged", |f| {
        f.add(meeting("M1", "O1", &["IC1", "VP1"], at(landmark(), -DAY)));
    });
    assert_eq!(v, Some(true));
}

// ---------------------------------------------------------------- multithreaded

#[test]
fn multithreaded_needs_three_distinct_contacts_in_completed_activities() {
    let l = landmark();
    let id = "multithreaded";
    let three = |last_at: Ts| {
        move |f: &mut Fixture| {
            f.add(email(
                "E1",
                "O1",
                Direction::Outbound,
                &["IC1"],
                at(l, -5 * DAY),
            ));
            f.add(call("K1", "O1", &["MGR1"], at(l, -4 * DAY)));
            f.add(meeting("M1", "O1", &["DIR1"], last_at));
        }
    };
    // IC1, MGR1 and DIR1: 3 → yes.
    assert_eq!(o1_at_landmark(id, three(at(l, -1))), 3.0);
    assert_eq!(o1_flag(id, three(at(l, -1))), Some(true));
    // The third contact's meeting at exactly the landmark is not visible: 2 → no.
    assert_eq!(o1_at_landmark(id, three(l)), 2.0);
    assert_eq!(o1_flag(id, three(l)), Some(false));
    // The same contact three times and one other: 2.
    let v = o1_at_landmark(id, |f| {
        for (i, d) in [1, 2, 3].into_iter().enumerate() {
            f.add(call(&format!("K{i}"), "O1", &["IC1"], at(l, -d * DAY)));
        }
        f.add(call("K9", "O1", &["IC2"], at(l, -DAY)));
    });
    assert_eq!(v, 2.0);
    // A third contact only in a scheduled meeting, in one logged after the landmark, or on O2: still 2.
    let v = o1_at_landmark(id, |f| {
        f.add(call("K1", "O1", &["IC1"], at(l, -DAY)));
        f.add(call("K2", "O1", &["IC2"], at(l, -DAY)));
        f.add(Activity {
            status: Some(ActivityStatus::Scheduled),
            ..meeting("M1", "O1", &["DIR1"], at(l, -DAY))
        });
        f.add(Activity {
            created_at: Some(l),
            ..meeting("M2", "O1", &["MGR1"], at(l, -DAY))
        });
        f.add(meeting("M3", "O2", &["CEO1"], at(l, -DAY)));
    });
    assert_eq!(v, 2.0);
}

/// Fails today: the engine keeps only the first of an activity's `contact_ids` (engine.rs,
/// `contact: a.contact_ids.first()`), so a group meeting counts as one contact.
#[test]
fn multithreaded_counts_every_contact_of_a_group_meeting() {
    // One completed meeting with three customer contacts: 3 distinct contacts → yes.
    let v = o1_at_landmark("multithreaded", |f| {
        f.add(meeting(
            "M1",
            "O1",
            &["IC1", "MGR1", "DIR1"],
            at(landmark(), -DAY),
        ));
    });
    assert_eq!(v, 3.0);
}

// ---------------------------------------------------------------- next_step_scheduled

#[test]
fn next_step_scheduled_needs_a_meeting_booked_before_the_landmark_that_takes_place_after_it() {
    let l = landmark();
    let id = "next_step_scheduled";
    // Booked a day before, taking place in three days: 1 → yes.
    assert_eq!(
        o1_at_landmark(id, |f| {
            f.add(booked_meeting("M1", "O1", at(l, -DAY), at(l, 3 * DAY)));
        }),
        1.0
    );
    // Booked at exactly the landmark: the booking is not known before it → no.
    assert_eq!(
        o1_flag(id, |f| {
            f.add(booked_meeting("M1", "O1", l, at(l, 3 * DAY)));
        }),
        Some(false)
    );
    // Booked a millisecond before: yes.
    assert_eq!(
        o1_flag(id, |f| {
            f.add(booked_meeting("M1", "O1", at(l, -1), at(l, 3 * DAY)));
        }),
        Some(true)
    );
    // Taking place at exactly the landmark: nothing before the landmark says it has happened, so it is
    // still ahead (the meeting itself is not visible at l) → counts.
    assert_eq!(
        o1_flag(id, |f| {
            f.add(booked_meeting("M1", "O1", at(l, -5 * DAY), l));
        }),
        Some(true)
    );
    // Booked ahead but already held a millisecond before the landmark → not a next step.
    assert_eq!(
        o1_flag(id, |f| {
            f.add(booked_meeting("M1", "O1", at(l, -5 * DAY), at(l, -1)));
        }),
        Some(false)
    );
}

#[test]
fn next_step_scheduled_ignores_calls_unbooked_meetings_and_other_deals_but_not_status() {
    let l = landmark();
    let id = "next_step_scheduled";
    let v = o1_at_landmark(id, |f| {
        // A booked call is not a meeting.
        f.add(Activity {
            activity_type: ActivityType::Call,
            ..booked_meeting("K1", "O1", at(l, -DAY), at(l, DAY))
        });
        // A future meeting without a booking time is only known when it happens.
        f.add(Activity {
            status: Some(ActivityStatus::Scheduled),
            ..meeting("M1", "O1", &[], at(l, 2 * DAY))
        });
        // Booked on O2.
        f.add(booked_meeting("M2", "O2", at(l, -DAY), at(l, DAY)));
    });
    assert_eq!(v, 0.0);
    // Whether a booked meeting is later canceled is not known at the landmark, so it still counts.
    let v = o1_at_landmark(id, |f| {
        f.add(Activity {
            status: Some(ActivityStatus::Canceled),
            ..booked_meeting("M1", "O1", at(l, -DAY), at(l, DAY))
        });
        f.add(booked_meeting("M2", "O1", at(l, -2 * DAY), at(l, 4 * DAY)));
    });
    assert_eq!(v, 2.0);
}

// ---------------------------------------------------------------- fast_follow_up

#[test]
fn fast_follow_up_needs_an_outbound_email_to_the_account_within_24_hours_of_every_meeting() {
    let l = landmark();
    let id = "fast_follow_up";
    let m = at(l, -3 * DAY);
    let followed_at = |delay: i64| {
        move |f: &mut Fixture| {
            f.add(meeting("M1", "O1", &["IC1"], m));
            f.add(email(
                "E1",
                "O1",
                Direction::Outbound,
                &["IC1"],
                at(m, delay),
            ));
        }
    };
    // Followed after 2 h: 1/1 → yes.
    assert_eq!(o1_at_landmark(id, followed_at(2 * HOUR)), 1.0);
    // After exactly 24 h: still within → yes; 1 ms later: not followed, 0/1 → no.
    assert_eq!(o1_flag(id, followed_at(24 * HOUR)), Some(true));
    assert_eq!(o1_at_landmark(id, followed_at(24 * HOUR + 1)), 0.0);
    assert_eq!(o1_flag(id, followed_at(24 * HOUR + 1)), Some(false));
    // An e-mail at the meeting's own time is not after it: 0.
    assert_eq!(o1_at_landmark(id, followed_at(0)), 0.0);
    // An e-mail to the account on no deal follows up (the follow-up is account-scoped).
    assert_eq!(
        o1_flag(id, |f| {
            f.add(meeting("M1", "O1", &["IC1"], m));
            f.add(account_email("E1", Direction::Outbound, at(m, HOUR)));
        }),
        Some(true)
    );
    // Inbound e-mails and e-mails at another account do not.
    let v = o1_at_landmark(id, |f| {
        f.add(meeting("M1", "O1", &["IC1"], m));
        f.add(account_email("E1", Direction::Inbound, at(m, HOUR)));
        f.add(email("E2", "O3", Direction::Outbound, &["X1"], at(m, HOUR)));
    });
    assert_eq!(v, 0.0);
    // Two meetings, one followed: 1/2 → no.
    let v = o1_at_landmark(id, |f| {
        f.add(meeting("M1", "O1", &["IC1"], m));
        f.add(email(
            "E1",
            "O1",
            Direction::Outbound,
            &["IC1"],
            at(m, HOUR),
        ));
        f.add(meeting("M2", "O1", &["IC1"], at(m, -5 * DAY)));
    });
    assert_eq!(v, 0.5);
}

#[test]
fn fast_follow_up_leaves_a_meeting_still_inside_its_window_undecided() {
    let l = landmark();
    let id = "fast_follow_up";
    // A meeting exactly 24 h before the landmark may still be followed at l itself: undecided, NaN.
    let v = o1_at_landmark(id, |f| {
        f.add(meeting("M1", "O1", &["IC1"], at(l, -24 * HOUR)));
    });
    assert!(v.is_nan(), "{v}");
    assert_eq!(
        o1_flag(id, |f| {
            f.add(meeting("M1", "O1", &["IC1"], at(l, -24 * HOUR)));
        }),
        None
    );
    // A millisecond earlier its window closed before the landmark: decided, not followed → 0.
    let v = o1_at_landmark(id, |f| {
        f.add(meeting("M1", "O1", &["IC1"], at(l, -24 * HOUR - 1)));
    });
    assert_eq!(v, 0.0);
    // Followed an hour later, but the e-mail was logged after the landmark: not known → 0 → no.
    let v = o1_at_landmark(id, |f| {
        f.add(meeting("M1", "O1", &["IC1"], at(l, -3 * DAY)));
        f.add(Activity {
            created_at: Some(at(l, HOUR)),
            ..email(
                "E1",
                "O1",
                Direction::Outbound,
                &["IC1"],
                at(l, -3 * DAY + HOUR),
            )
        });
    });
    assert_eq!(v, 0.0);
}

// ---------------------------------------------------------------- responsive

#[test]
fn responsive_needs_a_median_reply_under_24_hours_to_inbound_emails_of_the_last_30_days() {
    let l = landmark();
    let id = "responsive";
    let replies = |delays_h: Vec<i64>| {
        move |f: &mut Fixture| {
            // Inbound e-mails three days apart, so no reply lands before the next inbound one.
            for (i, d) in delays_h.iter().enumerate() {
                let inbound = at(l, -(5 + 3 * i as i64) * DAY);
                f.add(email(
                    &format!("I{i}"),
                    "O1",
                    Direction::Inbound,
                    &["IC1"],
                    inbound,
                ));
                f.add(email(
                    &format!("R{i}"),
                    "O1",
                    Direction::Outbound,
                    &["IC1"],
                    at(inbound, d * HOUR),
                ));
            }
        }
    };
    // One reply after 23 h: median 23 → yes; after exactly 24 h: 24 is not under 24 → no.
    assert_eq!(o1_at_landmark(id, replies(vec![23])), 23.0);
    assert_eq!(o1_flag(id, replies(vec![23])), Some(true));
    assert_eq!(o1_flag(id, replies(vec![24])), Some(false));
    // Replies after 10 h and 30 h: median 20 → yes; 10, 30, 40: median 30 → no.
    assert_eq!(o1_at_landmark(id, replies(vec![10, 30])), 20.0);
    assert_eq!(o1_at_landmark(id, replies(vec![10, 30, 40])), 30.0);
    assert_eq!(o1_flag(id, replies(vec![10, 30, 40])), Some(false));
}

#[test]
fn responsive_reads_inbound_emails_from_exactly_30_days_back_and_replies_known_before_the_landmark()
{
    let l = landmark();
    let id = "responsive";
    // A slow (48 h) reply to an e-mail from `old` and a 1 h reply to one from ten days back.
    let with_old = |old: Ts| {
        move |f: &mut Fixture| {
            f.add(email("I1", "O1", Direction::Inbound, &["IC1"], old));
            f.add(email(
                "R1",
                "O1",
                Direction::Outbound,
                &["IC1"],
                at(old, 48 * HOUR),
            ));
            f.add(email(
                "I2",
                "O1",
                Direction::Inbound,
                &["IC1"],
                at(l, -10 * DAY),
            ));
            f.add(email(
                "R2",
                "O1",
                Direction::Outbound,
                &["IC1"],
                at(l, -10 * DAY + HOUR),
            ));
        }
    };
    // At exactly l − 30 d the old e-mail is in the window: median (48 + 1) / 2 = 24.5 → no.
    assert_eq!(o1_at_landmark(id, with_old(at(l, -30 * DAY))), 24.5);
    // A millisecond earlier it is not: median 1 → yes.
    assert_eq!(o1_at_landmark(id, with_old(at(l, -30 * DAY - 1))), 1.0);
    // A reply at exactly the landmark, one logged after it, or one on another deal is not known as a
    // reply: nothing answered, NaN → undefined.
    for reply in [
        email("R1", "O1", Direction::Outbound, &["IC1"], l),
        Activity {
            created_at: Some(at(l, MINUTE)),
            ..email("R1", "O1", Direction::Outbound, &["IC1"], at(l, -DAY))
        },
        email("R1", "O2", Direction::Outbound, &["IC1"], at(l, -DAY)),
    ] {
        let v = o1_at_landmark(id, |f| {
            f.add(email(
                "I1",
                "O1",
                Direction::Inbound,
                &["IC1"],
                at(l, -2 * DAY),
            ));
            f.add(reply.clone());
        });
        assert!(v.is_nan(), "reply {reply:?}: {v}");
    }
}

// ---------------------------------------------------------------- product_active, usage_growing

#[test]
fn product_active_needs_three_distinct_users_in_the_last_14_days() {
    let l = landmark();
    let id = "product_active";
    let users = |third_at: Ts| {
        move |f: &mut Fixture| {
            f.add(product_event("P1", "A1", "u1", at(l, -DAY)));
            f.add(product_event("P2", "A1", "u2", at(l, -2 * DAY)));
            f.add(product_event("P3", "A1", "u3", third_at));
        }
    };
    assert_eq!(o1_at_landmark(id, users(at(l, -1))), 3.0);
    assert_eq!(o1_flag(id, users(at(l, -1))), Some(true));
    // The third user at exactly the landmark is not visible: 2 → no.
    assert_eq!(o1_at_landmark(id, users(l)), 2.0);
    assert_eq!(o1_flag(id, users(l)), Some(false));
    // At exactly l − 14 d it is in the window; a millisecond earlier it is not.
    assert_eq!(o1_at_landmark(id, users(at(l, -14 * DAY))), 3.0);
    assert_eq!(o1_at_landmark(id, users(at(l, -14 * DAY - 1))), 2.0);
    // Many events by two users, and a third user at another account: 2 → no.
    let v = o1_at_landmark(id, |f| {
        for i in 0..10 {
            let user = if i % 2 == 0 { "u1" } else { "u2" };
            f.add(product_event(
                &format!("P{i}"),
                "A1",
                user,
                at(l, -i * HOUR - 1),
            ));
        }
        f.add(product_event("Q1", "A2", "u3", at(l, -HOUR)));
    });
    assert_eq!(v, 2.0);
}

#[test]
fn usage_growing_compares_the_last_14_days_with_the_14_before() {
    let l = landmark();
    let id = "usage_growing";
    let events = |times: Vec<Ts>| {
        move |f: &mut Fixture| {
            for (i, t) in times.iter().enumerate() {
                f.add(product_event(&format!("P{i}"), "A1", "u1", *t));
            }
        }
    };
    // Now: l − 1 d, l − 2 d, l − 14 d (the window's first instant) = 3. Before: l − 14 d − 1 ms and
    // l − 28 d (the earlier window's first instant) = 2. Growth 1 → yes.
    let times = vec![
        at(l, -DAY),
        at(l, -2 * DAY),
        at(l, -14 * DAY),
        at(l, -14 * DAY - 1),
        at(l, -28 * DAY),
    ];
    assert_eq!(o1_at_landmark(id, events(times.clone())), 1.0);
    assert_eq!(o1_flag(id, events(times.clone())), Some(true));
    // Adding one at l − 28 d − 1 ms (outside both) and one at l (not yet known) changes nothing.
    let mut more = times.clone();
    more.extend([at(l, -28 * DAY - 1), l]);
    assert_eq!(o1_at_landmark(id, events(more)), 1.0);
    // One more in the earlier window: 3 − 3 = 0 → no (growth must be above 0).
    let mut level = times;
    level.push(at(l, -20 * DAY));
    assert_eq!(o1_at_landmark(id, events(level.clone())), 0.0);
    assert_eq!(o1_flag(id, events(level)), Some(false));
}

// ---------------------------------------------------------------- marketing_engaged

#[test]
fn marketing_engaged_needs_a_webinar_attended_or_content_download_in_the_last_30_days() {
    let l = landmark();
    let id = "marketing_engaged";
    let one = |kind: TouchKind, t: Ts| {
        move |f: &mut Fixture| {
            f.add(touch("T1", "A1", kind, t));
        }
    };
    assert_eq!(
        o1_flag(id, one(TouchKind::WebinarAttended, at(l, -DAY))),
        Some(true)
    );
    assert_eq!(
        o1_flag(id, one(TouchKind::ContentDownload, at(l, -DAY))),
        Some(true)
    );
    assert_eq!(
        o1_flag(id, one(TouchKind::WebinarRegistered, at(l, -DAY))),
        Some(false)
    );
    assert_eq!(
        o1_flag(id, one(TouchKind::EmailOpen, at(l, -DAY))),
        Some(false)
    );
    // Window edges: at exactly l − 30 d yes, 1 ms earlier no; at the landmark itself no.
    assert_eq!(
        o1_flag(id, one(TouchKind::WebinarAttended, at(l, -30 * DAY))),
        Some(true)
    );
    assert_eq!(
        o1_flag(id, one(TouchKind::WebinarAttended, at(l, -30 * DAY - 1))),
        Some(false)
    );
    assert_eq!(o1_flag(id, one(TouchKind::WebinarAttended, l)), Some(false));
    // A touch that names only a contact reaches the contact's account; one at A2 does not count for O1.
    let v = o1_at_landmark(id, |f| {
        f.add(winsignal_core::MarketingTouch {
            account_id: None,
            contact_id: Some("DIR1".into()),
            ..touch("T1", "A1", TouchKind::WebinarAttended, at(l, -DAY))
        });
        f.add(touch("T2", "A2", TouchKind::ContentDownload, at(l, -DAY)));
    });
    assert_eq!(v, 1.0);
}

// ---------------------------------------------------------------- urgent_ticket_open

#[test]
fn urgent_ticket_open_needs_an_urgent_or_high_ticket_open_at_the_landmark() {
    let l = landmark();
    let id = "urgent_ticket_open";
    let one = |priority: Priority, created: Ts, solved: Option<Ts>| {
        move |f: &mut Fixture| {
            f.add(ticket("K1", "A1", priority, created, solved));
        }
    };
    let five_days_back = at(l, -5 * DAY);
    assert_eq!(
        o1_flag(id, one(Priority::Urgent, five_days_back, None)),
        Some(true)
    );
    assert_eq!(
        o1_flag(id, one(Priority::High, five_days_back, None)),
        Some(true)
    );
    assert_eq!(
        o1_flag(id, one(Priority::Normal, five_days_back, None)),
        Some(false)
    );
    assert_eq!(
        o1_flag(id, one(Priority::Low, five_days_back, None)),
        Some(false)
    );
    // Solved a millisecond before the landmark: closed → no. Solved a day after: open at l → yes.
    assert_eq!(
        o1_flag(id, one(Priority::Urgent, five_days_back, Some(at(l, -1)))),
        Some(false)
    );
    assert_eq!(
        o1_flag(id, one(Priority::Urgent, five_days_back, Some(at(l, DAY)))),
        Some(true)
    );
    // Created at exactly the landmark: not known before it → no; a millisecond earlier → yes.
    assert_eq!(o1_flag(id, one(Priority::Urgent, l, None)), Some(false));
    assert_eq!(
        o1_flag(id, one(Priority::Urgent, at(l, -1), None)),
        Some(true)
    );
    // At another account: no.
    assert_eq!(
        o1_flag(id, |f| {
            f.add(ticket("K1", "A2", Priority::Urgent, five_days_back, None));
        }),
        Some(false)
    );
}

#[test]
fn urgent_ticket_solved_at_exactly_the_landmark_is_still_open_as_far_as_anything_before_it_knows() {
    // The solve happens at l, and nothing at l is known at l (the rule for every event), so the ticket
    // is open when read at l and closed a millisecond later. Counting it as closed at l would make the
    // value at l depend on an event at l: a future solve planted at a landmark would change it.
    let l = landmark();
    let b = built(|f| {
        f.add(ticket(
            "K1",
            "A1",
            Priority::Urgent,
            at(l, -5 * DAY),
            Some(l),
        ));
    });
    let e = b.engine();
    assert_eq!(value(&e, "O1", l, "urgent_ticket_open"), 1.0);
    assert_eq!(value(&e, "O1", at(l, 1), "urgent_ticket_open"), 0.0);
}

#[test]
fn urgent_ticket_open_reads_the_latest_version_of_a_ticket() {
    let l = landmark();
    let mut f = world();
    f.add(ticket("K1", "A1", Priority::Urgent, at(l, -5 * DAY), None));
    let mut b = f.build();
    // A second load brings the same ticket, solved two days before the landmark.
    let solved = ticket(
        "K1",
        "A1",
        Priority::Urgent,
        at(l, -5 * DAY),
        Some(at(l, -2 * DAY)),
    );
    write(&mut b.store, &[solved.into_record()]);
    let e = b.engine();
    assert_eq!(flag(&e, "O1", l, "urgent_ticket_open"), Some(false));
    // Three days before the landmark it was open (and already known).
    assert_eq!(
        flag(&e, "O1", at(l, -3 * DAY), "urgent_ticket_open"),
        Some(true)
    );
}

// ---------------------------------------------------------------- talk_ratio_balanced, asks_questions

/// A call of `rep_s` seconds of rep talk then `customer_s` of customer talk, rep saying `rep_text`.
fn two_turn_call(
    id: &str,
    started: Ts,
    rep_s: f64,
    customer_s: f64,
    rep_text: &str,
) -> winsignal_core::Transcript {
    transcript(
        id,
        "O1",
        started,
        vec![
            turn(SpeakerRole::Rep, 0.0, rep_s, rep_text),
            turn(
                SpeakerRole::Customer,
                rep_s,
                rep_s + customer_s,
                "Sure. What about price?",
            ),
        ],
    )
}

#[test]
fn talk_ratio_balanced_needs_a_rep_share_between_40_and_65_percent() {
    let l = landmark();
    let id = "talk_ratio_balanced";
    let share = |rep_s: f64| {
        let started = at(l, -DAY);
        o1_at_landmark(id, move |f| {
            f.add(two_turn_call("T1", started, rep_s, 100.0 - rep_s, "Hello."));
        })
    };
    let balanced = |rep_s: f64| default_catalog_threshold(id).test(share(rep_s));
    // 50 of 100 s: 0.5 → yes. Range ends are inclusive: 40 and 65 yes, 39 and 66 no.
    assert_eq!(share(50.0), 0.5);
    assert_eq!(balanced(50.0), Some(true));
    assert_eq!(balanced(40.0), Some(true));
    assert_eq!(balanced(65.0), Some(true));
    assert_eq!(balanced(39.0), Some(false));
    assert_eq!(balanced(66.0), Some(false));
    assert_eq!(balanced(80.0), Some(false));
    // Over several calls talk time adds up: 90/100 and 10/100 → 100/200 = 0.5.
    let v = o1_at_landmark(id, |f| {
        f.add(two_turn_call(
            "T1",
            at(l, -3 * DAY),
            90.0,
            10.0,
            "Let me explain.",
        ));
        f.add(two_turn_call("T2", at(l, -2 * DAY), 10.0, 90.0, "Go on."));
    });
    assert_eq!(v, 0.5);
    // No transcripts, or only another deal's: undefined.
    let v = o1_at_landmark(id, |f| {
        f.add(transcript(
            "T1",
            "O3",
            at(l, -DAY),
            vec![turn(SpeakerRole::Rep, 0.0, 50.0, "Hi.")],
        ));
    });
    assert!(v.is_nan(), "{v}");
}

#[test]
fn a_call_is_known_when_it_ends() {
    let l = landmark();
    let id = "rep_talk_share";
    // A 100 s call: started 100 s before the landmark it ends at exactly l → not visible.
    assert!(o1_at_landmark(id, |f| {
        f.add(two_turn_call("T1", at(l, -100_000), 50.0, 50.0, "Hi."));
    })
    .is_nan());
    // Started a millisecond earlier, it ends at l − 1 ms → visible.
    assert_eq!(
        o1_at_landmark(id, |f| {
            f.add(two_turn_call("T1", at(l, -100_001), 50.0, 50.0, "Hi."));
        }),
        0.5
    );
    // Started an hour before, still going at the landmark → not visible.
    assert!(o1_at_landmark(id, |f| {
        f.add(two_turn_call("T1", at(l, -HOUR), 3000.0, 1000.0, "Hi."));
    })
    .is_nan());
}

#[test]
fn asks_questions_needs_eight_rep_questions_per_transcribed_hour() {
    let l = landmark();
    let id = "asks_questions";
    let asks = |questions: usize, minutes: f64| {
        let text = "Why is that? ".repeat(questions);
        let half = minutes * 30.0;
        o1_at_landmark(id, move |f| {
            f.add(two_turn_call("T1", at(l, -DAY), half, half, &text));
        })
    };
    let threshold = default_catalog_threshold(id);
    // 8 questions in one transcribed hour: 8 → yes; 7 → no; 4 in half an hour: 8 → yes.
    assert_eq!(asks(8, 60.0), 8.0);
    assert_eq!(threshold.test(asks(8, 60.0)), Some(true));
    assert_eq!(threshold.test(asks(7, 60.0)), Some(false));
    assert_eq!(asks(4, 30.0), 8.0);
    // "?!" and "??" end one sentence each; the customer's questions do not count.
    // Rep: "Why? Really?! What?? Fine." = 3 questions in 30 min of talk → 6 per hour.
    let v = o1_at_landmark(id, |f| {
        f.add(two_turn_call(
            "T1",
            at(l, -DAY),
            900.0,
            900.0,
            "Why? Really?! What?? Fine.",
        ));
    });
    assert_eq!(v, 6.0);
}

fn default_catalog_threshold(id: &str) -> winsignal_features::catalog::Threshold {
    definition(id).threshold.unwrap()
}

// ---------------------------------------------------------------- champion_reused

#[test]
fn champion_reused_needs_an_engaged_contact_with_a_role_on_a_deal_won_before_the_landmark() {
    let l = landmark();
    let id = "champion_reused";
    // DIR1 had a role on O9, closed with `outcome` at `closed`; DIR1 met on O1 two days back.
    let earlier = |outcome: Outcome, closed_at: Ts| {
        move |f: &mut Fixture| {
            f.add(closed(
                "O9",
                "A1",
                ts("2023-06-01T00:00:00Z"),
                closed_at,
                outcome,
            ));
            f.add(role("O9", "DIR1"));
            f.add(meeting("M1", "O1", &["DIR1"], at(l, -2 * DAY)));
        }
    };
    assert_eq!(
        o1_at_landmark(id, earlier(Outcome::Won, at(l, -10 * DAY))),
        1.0
    );
    assert_eq!(o1_flag(id, earlier(Outcome::Won, at(l, -1))), Some(true));
    // Won at exactly the landmark: not before it → no. Lost: no.
    assert_eq!(o1_flag(id, earlier(Outcome::Won, l)), Some(false));
    assert_eq!(
        o1_flag(id, earlier(Outcome::Lost, at(l, -10 * DAY))),
        Some(false)
    );
}

#[test]
fn champion_reused_needs_the_contact_engaged_on_this_deal_before_the_landmark() {
    let l = landmark();
    let id = "champion_reused";
    let won = |f: &mut Fixture| {
        f.add(closed(
            "O9",
            "A1",
            ts("2023-06-01T00:00:00Z"),
            ts("2023-09-01T00:00:00Z"),
            Outcome::Won,
        ));
        f.add(role("O9", "DIR1"));
    };
    // Only a role on the earlier deal, no activity on O1: no.
    assert_eq!(o1_flag(id, won), Some(false));
    // Only in a scheduled meeting, or in a meeting logged after the landmark: no.
    assert_eq!(
        o1_flag(id, |f| {
            won(f);
            f.add(Activity {
                status: Some(ActivityStatus::Scheduled),
                ..meeting("M1", "O1", &["DIR1"], at(l, -DAY))
            });
            f.add(Activity {
                created_at: Some(at(l, 1)),
                ..meeting("M2", "O1", &["DIR1"], at(l, -DAY))
            });
        }),
        Some(false)
    );
    // A role on O1 itself is not an earlier deal (O1 is open anyway); engagement via a call counts.
    assert_eq!(
        o1_at_landmark(id, |f| {
            won(f);
            f.add(role("O1", "MGR1"));
            f.add(call("K1", "O1", &["MGR1"], at(l, -DAY)));
            f.add(call("K2", "O1", &["DIR1"], at(l, -DAY)));
        }),
        1.0
    );
}

// ---------------------------------------------------------------- continuous features

#[test]
fn activities_decayed_weighs_each_completed_activity_by_a_7_day_half_life() {
    let l = landmark();
    // Ages 7 d, 14 d and 1 ms: 2^-1 + 2^-2 + 2^-(1 ms / 7 d) = 0.5 + 0.25 + 0.99999999885...
    // A scheduled call does not count.
    let v = o1_at_landmark("activities_decayed", |f| {
        f.add(call("K1", "O1", &["IC1"], at(l, -7 * DAY)));
        f.add(call("K2", "O1", &["IC1"], at(l, -14 * DAY)));
        f.add(call("K3", "O1", &["IC1"], at(l, -1)));
        f.add(Activity {
            status: Some(ActivityStatus::Scheduled),
            ..call("K4", "O1", &["IC1"], at(l, -DAY))
        });
    });
    let newest = (-1.0 / (7.0 * DAY as f64)).exp2();
    assert_close(v, 0.5 + 0.25 + newest, 1e-12, "activities_decayed");
    assert!(newest < 1.0);
}

#[test]
fn days_since_last_touch_counts_from_the_latest_completed_activity() {
    let l = landmark();
    let id = "days_since_last_touch";
    // Latest completed: 3.5 days back; the scheduled one a day back and the one logged after the
    // landmark do not count.
    let v = o1_at_landmark(id, |f| {
        f.add(call("K1", "O1", &["IC1"], at(l, -10 * DAY)));
        f.add(call("K2", "O1", &["IC1"], at(l, -3 * DAY - 12 * HOUR)));
        f.add(Activity {
            status: Some(ActivityStatus::Scheduled),
            ..call("K3", "O1", &["IC1"], at(l, -DAY))
        });
        f.add(Activity {
            created_at: Some(at(l, HOUR)),
            ..call("K4", "O1", &["IC1"], at(l, -DAY))
        });
    });
    assert_eq!(v, 3.5);
    assert!(o1_at_landmark(id, |_| {}).is_nan());
}

#[test]
fn seniority_coverage_counts_distinct_known_levels() {
    let l = landmark();
    // CEO (c_level), VP1 twice (vp), DIR1 (director), IC1 (individual), NT1 (no title: unknown, not a
    // level), MGR1 only in a canceled meeting: 4 levels.
    let v = o1_at_landmark("seniority_coverage", |f| {
        for (i, c) in ["CEO1", "VP1", "VP1", "DIR1", "IC1", "NT1"]
            .iter()
            .enumerate()
        {
            f.add(call(
                &format!("K{i}"),
                "O1",
                &[c],
                at(l, -(i as i64 + 1) * DAY),
            ));
        }
        f.add(Activity {
            status: Some(ActivityStatus::Canceled),
            ..meeting("M1", "O1", &["MGR1"], at(l, -DAY))
        });
    });
    assert_eq!(v, 4.0);
}

#[test]
fn lookalike_is_the_cosine_to_accounts_won_before_the_landmark() {
    let l = landmark();
    let id = "lookalike_won";
    // No win anywhere before the landmark: NaN.
    assert!(o1_at_landmark(id, |_| {}).is_nan());
    // A win at A2 at exactly the landmark is not before it: NaN; a win at A1 itself does not count.
    assert!(o1_at_landmark(id, |f| {
        f.add(closed(
            "O9",
            "A2",
            ts("2024-01-01T00:00:00Z"),
            l,
            Outcome::Won,
        ));
        f.add(closed(
            "O8",
            "A1",
            ts("2024-01-01T00:00:00Z"),
            at(l, -DAY),
            Outcome::Won,
        ));
    })
    .is_nan());
    // A win at A2 a day earlier. Profiles over (segment, industry, country, ln(1 + employees) / 10):
    // A1 = [mid-market, software, us, e], A2 = [mid-market, retail, us, e], e = ln(501)/10, so the
    // cosine is (1 + 1 + e²) / (3 + e²) = 0.70470...
    let v = o1_at_landmark(id, |f| {
        f.add(closed(
            "O9",
            "A2",
            ts("2024-01-01T00:00:00Z"),
            at(l, -DAY),
            Outcome::Won,
        ));
    });
    let e2 = (501f64.ln() / 10.0).powi(2);
    assert_close(v, (2.0 + e2) / (3.0 + e2), 1e-12, "lookalike_won");
    assert_close(v, 0.70470, 1e-5, "lookalike_won");
}

// ---------------------------------------------------------------- landmarks

#[test]
fn landmarks_are_stage_entries_and_ages_before_the_close_and_the_end_of_data() {
    let created = ts("2024-01-01T00:00:00Z");
    let d = |days: f64| created.plus_days(days);
    let mut f = world();
    // O5: won on day 45, with stages entered on days 0, 10, 20 (Prospecting again) and 45 (the close).
    f.add(closed("O5", "A3", created, d(45.0), Outcome::Won));
    for (stage_name, day) in [
        ("Prospecting", 0.0),
        ("Discovery", 10.0),
        ("Prospecting", 20.0),
        ("Closed Won", 45.0),
    ] {
        f.add(stage("O5", stage_name, d(day)));
    }
    // O6: no stage history, lost on exactly day 30.
    f.add(closed("O6", "A3", created, d(30.0), Outcome::Lost));
    // O7: open, no stage history; the data ends at the last event on day 50.
    f.add(opportunity("O7", "A3", created));
    f.add(call("K1", "O7", &[], d(50.0)));
    let b = f.build();
    let e = b.engine();
    let horizon = snapshot::horizon(&e);
    // The latest time anywhere: O2's creation in world() (2024-03-05), after O7's call on day 50.
    assert_eq!(horizon, ts("2024-03-05T00:00:00Z"));
    let lms = snapshot::landmarks(&b.ctx, &default_catalog(), horizon);
    let of = |opp: &str| -> Vec<(String, Ts)> {
        let o = b.ctx.opportunity(opp).unwrap();
        lms.items
            .iter()
            .filter(|lm| lm.opp == o)
            .map(|lm| (lms.names[lm.name as usize].clone(), lm.as_of))
            .collect()
    };
    let want = |items: &[(&str, f64)]| -> Vec<(String, Ts)> {
        items
            .iter()
            .map(|(n, day)| (n.to_string(), d(*day)))
            .collect()
    };
    // Day 45 (the close) and age 60 (after the close) are not landmarks; a repeated stage gets "#2".
    assert_eq!(
        of("O5"),
        want(&[
            ("stage:Prospecting", 0.0),
            ("stage:Discovery", 10.0),
            ("age:14d", 14.0),
            ("stage:Prospecting#2", 20.0),
            ("age:30d", 30.0),
        ])
    );
    // No stage history: a "created" landmark; age 30 falls on the close and is not a landmark.
    assert_eq!(of("O6"), want(&[("created", 0.0), ("age:14d", 14.0)]));
    // O7 is open and the data ends on 2024-03-05 (day 64), so age 60 is in.
    assert_eq!(
        of("O7"),
        want(&[
            ("created", 0.0),
            ("age:14d", 14.0),
            ("age:30d", 30.0),
            ("age:60d", 60.0)
        ])
    );
    // Snapshots carry the landmark, the outcome and the days to the close.
    let snaps = snapshot::snapshots(&e, &default_catalog(), horizon, &mut |_, _| {});
    let o5: Vec<_> = snaps.iter().filter(|s| s.opportunity_id == "O5").collect();
    assert_eq!(o5.len(), 5);
    assert_eq!(o5[1].landmark, "stage:Discovery");
    assert_eq!(o5[1].outcome, Outcome::Won);
    assert_eq!(o5[1].days_to_close, Some(35.0));
}

#[test]
fn no_landmark_lies_after_the_end_of_the_data() {
    // An open deal created on 2024-03-01 in world(): the data ends with the latest entity time,
    // O2's creation on 2024-03-05, so only "created" is a landmark (age 14 is 2024-03-15).
    let b = world().build();
    let e = b.engine();
    let horizon = snapshot::horizon(&e);
    assert_eq!(horizon, ts("2024-03-05T00:00:00Z"));
    let lms = snapshot::landmarks(&b.ctx, &default_catalog(), horizon);
    let o1 = b.ctx.opportunity("O1").unwrap();
    let names: Vec<&str> = lms
        .items
        .iter()
        .filter(|lm| lm.opp == o1)
        .map(|lm| lms.names[lm.name as usize].as_str())
        .collect();
    assert_eq!(names, ["created"]);
}

// ---------------------------------------------------------------- timing relative to the close

#[test]
fn timing_counts_deals_that_show_a_behaviour_only_after_their_close() {
    let created = ts("2024-03-01T00:00:00Z");
    let close = ts("2024-05-01T00:00:00Z");
    let b = built(|f| {
        // W1 won at `close`, with an exec meeting a day after it: shown after, not at, the close.
        f.add(closed("W1", "A1", created, close, Outcome::Won));
        f.add(meeting("M1", "W1", &["VP1"], at(close, DAY)));
        // W2 lost at `close`, exec meeting a week before it: shown at the close already.
        f.add(closed("W2", "A1", created, close, Outcome::Lost));
        f.add(meeting("M2", "W2", &["CEO1"], at(close, -7 * DAY)));
        // W3 closed, exec meeting 8 days after the close: beyond the week looked at, not counted.
        f.add(closed("W3", "A2", created, close, Outcome::Won));
        f.add(meeting("M3", "W3", &["X1"], at(close, 8 * DAY)));
        // An open deal is never counted, whatever it shows.
        f.add(opportunity("W4", "A1", created));
        f.add(meeting("M4", "W4", &["VP1"], at(close, DAY)));
    });
    let e = b.engine();
    let timing = snapshot::timing(&e, &default_catalog());
    let exec = timing.iter().find(|t| t.id == "exec_engaged").unwrap();
    assert_eq!((exec.after, exec.only_after), (2, 1), "{exec:?}");
    assert_eq!(exec.share_only_after(), Some(0.5));
}
