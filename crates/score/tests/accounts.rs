//! Account prioritisation on a small synthetic book: an account that uses the product now and looks
//! like the accounts we win outranks a cold one unlike them, a customer in the family counts, accounts
//! with an open deal are left out, and the reasons name the signals.
#![allow(clippy::unwrap_used)]

use winsignal_core::time::MS_PER_DAY;
use winsignal_core::{Outcome, Ts};
use winsignal_score::accounts::{prioritise, AccountDeal, AccountInput, Options, Prioritisation};

const NOW: Ts = Ts(1_000 * MS_PER_DAY);

fn days_ago(d: f64) -> Ts {
    Ts(NOW.0 - (d * MS_PER_DAY as f64) as i64)
}

fn deal(outcome: Outcome, closed_days_ago: Option<f64>) -> AccountDeal {
    AccountDeal {
        created: days_ago(300.0),
        closed: closed_days_ago.map(days_ago),
        outcome,
    }
}

fn account(id: &str, segment: &str, industry: &str, deals: Vec<AccountDeal>) -> AccountInput {
    AccountInput {
        account_id: id.into(),
        name: Some(format!("{id} Inc")),
        segment: Some(segment.into()),
        industry: Some(industry.into()),
        deals,
        ..AccountInput::default()
    }
}

/// 14 won SMB software accounts (some still using the product), 10 Enterprise mining accounts
/// that only lost, the candidates, and a few others.
fn book() -> Vec<AccountInput> {
    let mut book = Vec::new();
    for i in 0..14 {
        let mut a = account(
            &format!("won{i:02}"),
            "SMB",
            "Software",
            vec![
                deal(Outcome::Won, Some(100.0 + i as f64)),
                deal(Outcome::Lost, Some(200.0)),
            ],
        );
        // Customers use the product (and carry on after the sale).
        a.product_events = (0..40)
            .map(|k| (days_ago(k as f64), 1 + (k % 5) as u64))
            .collect();
        book.push(a);
    }
    for i in 0..10 {
        book.push(account(
            &format!("lost{i:02}"),
            "Enterprise",
            "Mining",
            vec![
                deal(Outcome::Lost, Some(50.0)),
                deal(Outcome::Lost, Some(80.0)),
            ],
        ));
    }
    // A prospect like the won accounts with three users in the product this week and a webinar.
    let mut hot = account("hot", "SMB", "Software", Vec::new());
    hot.product_events = vec![
        (days_ago(1.0), 101),
        (days_ago(2.0), 102),
        (days_ago(3.0), 103),
        (days_ago(3.5), 101),
        (days_ago(6.0), 102),
    ];
    hot.touches = vec![days_ago(5.0)];
    book.push(hot);
    // A prospect unlike them, with nothing going on (a touch two years ago).
    let mut cold = account("cold", "Enterprise", "Mining", Vec::new());
    cold.touches = vec![days_ago(700.0)];
    book.push(cold);
    // The same profile as `cold`, but its parent is a customer.
    let mut child = account("child", "Enterprise", "Mining", Vec::new());
    child.parent = Some(0);
    book.push(child);
    // Busy, but a deal is open: not a candidate.
    let mut busy = account("busy", "SMB", "Software", vec![deal(Outcome::Open, None)]);
    busy.activities = vec![days_ago(1.0); 30];
    book.push(busy);
    // A deal that closes after the as-of time was still open then.
    book.push(account(
        "closing_later",
        "SMB",
        "Software",
        vec![deal(Outcome::Won, Some(-10.0))],
    ));
    book
}

fn find<'a>(p: &'a Prioritisation, id: &str) -> &'a winsignal_score::accounts::AccountPriority {
    p.ranked
        .iter()
        .find(|a| a.account_id == id)
        .unwrap_or_else(|| panic!("{id} not ranked"))
}

#[test]
fn an_engaged_lookalike_outranks_a_cold_unrelated_account_with_reasons() {
    let book = book();
    let p = prioritise(&book, NOW, &Options::default());
    let hot = find(&p, "hot");
    let cold = find(&p, "cold");
    assert!(
        hot.rank < cold.rank,
        "hot {} cold {}",
        hot.score,
        cold.score
    );
    assert!(hot.fit > 0.5 && cold.fit < 0.5, "{} {}", hot.fit, cold.fit);
    assert!(hot.engagement > 0.0 && cold.engagement < 1e-6);
    assert_eq!(hot.status, "no_deals");
    assert_eq!(cold.status, "no_deals");
    // The reasons say what was seen, in words.
    let said = hot.reasons.join(" | ");
    assert!(
        said.contains("3 product users active in the last 14 days (5 events in the last 30 days)"),
        "{said}"
    );
    assert!(
        said.contains("1 marketing touch in the last 30 days"),
        "{said}"
    );
    assert!(
        said.contains("same size (SMB) and industry (Software) as 14 won accounts"),
        "{said}"
    );
    let cold_said = cold.reasons.join(" | ");
    assert!(
        cold_said.contains("no engagement in the last 30 days"),
        "{cold_said}"
    );
    assert!(cold_said.contains("win less often"), "{cold_said}");
    assert_eq!(hot.signals.active_users, 3);
    assert_eq!(hot.signals.similar_won_accounts, 14);
}

#[test]
fn a_customer_in_the_family_counts_and_open_deals_are_left_out() {
    let book = book();
    let p = prioritise(&book, NOW, &Options::default());
    let child = find(&p, "child");
    let cold = find(&p, "cold");
    assert!(child.rank < cold.rank);
    assert_eq!(child.relationship, 0.75);
    assert_eq!(child.signals.customer_relatives, ["won00"]);
    assert!(
        child
            .reasons
            .iter()
            .any(|r| r == "parent account won00 Inc is a customer"),
        "{:?}",
        child.reasons
    );
    // Deals open at the as-of time (including one that only closes later) keep an account out.
    assert!(p.ranked.iter().all(|a| a.account_id != "busy"));
    assert!(p.ranked.iter().all(|a| a.account_id != "closing_later"));
    assert_eq!(p.candidates, book.len() - 2);
    // Customers are ranked too, as expansion candidates, with their wins in the reasons.
    let customer = find(&p, "won03");
    assert_eq!(customer.status, "customer");
    assert!(customer
        .reasons
        .iter()
        .any(|r| r.starts_with("already a customer: 1 won deal")));
    // Ranks are 1.. in score order.
    assert!(p
        .ranked
        .windows(2)
        .all(|w| w[0].score >= w[1].score && w[1].rank == w[0].rank + 1));
}

#[test]
fn engagement_decays_with_a_30_day_half_life() {
    let mut a = account("a", "SMB", "Software", Vec::new());
    a.activities = vec![days_ago(0.0)];
    let mut b = account("b", "SMB", "Software", Vec::new());
    b.activities = vec![days_ago(30.0), days_ago(30.0)];
    let p = prioritise(&[a, b], NOW, &Options::default());
    let (a, b) = (find(&p, "a"), find(&p, "b"));
    // One activity today weighs as much as two a half-life ago.
    assert!((a.signals.activities_decayed - 1.0).abs() < 1e-12);
    assert!((b.signals.activities_decayed - 1.0).abs() < 1e-12);
    assert!((a.score - b.score).abs() < 1e-9);
}
