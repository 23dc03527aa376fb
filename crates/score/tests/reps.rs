//! Rep scorecards on synthetic teams whose truth is known: pooling pulls small samples toward the
//! average and does not let them outrank a rep with a long, genuinely better record; intervals narrow
//! as a rep closes more deals; coaching never lists a behaviour the rep already does as much as the
//! best quarter of reps.
#![allow(clippy::unwrap_used)]

use winsignal_core::{Outcome, Ts};
use winsignal_discover::{Discovery, Effect, Finding, Interval, Outcome as Studied, Raw, Status};
use winsignal_features::catalog::Catalog;
use winsignal_features::snapshot::{ControlValue, Snapshot};
use winsignal_score::reps::{
    deals_from_snapshots, scorecards, Deal, RepRecord, Scorecards, MIN_RANKED_LOSSES,
    MIN_RANKED_WINS,
};

fn catalog() -> Catalog {
    winsignal_features::default_catalog()
}

/// The position of a yes/no behaviour among the snapshot flags.
fn flag_of(catalog: &Catalog, id: &str) -> usize {
    catalog
        .behaviours
        .iter()
        .filter(|d| d.is_behaviour())
        .position(|d| d.id == id)
        .unwrap()
}

/// Controls in catalog order: a segment, everything else missing.
fn controls(catalog: &Catalog, segment: &str) -> Vec<ControlValue> {
    catalog
        .controls
        .iter()
        .map(|c| {
            if c.column() == "segment" {
                ControlValue::Text(segment.into())
            } else {
                ControlValue::Missing
            }
        })
        .collect()
}

/// `n` closed deals of `rep`, `won` of them won, alternating between two segments, plus `open` open
/// deals. Reps who win more also close faster (so reps differ in cycle time too).
fn deals_of(catalog: &Catalog, rep: &str, n: usize, won: usize, open: usize) -> Vec<Deal> {
    // Spread the wins evenly over the deals, so both segments get their share.
    let is_won = |i: usize| (i * won) / n.max(1) != ((i + 1) * won) / n.max(1);
    (0..n + open)
        .map(|i| Deal {
            opportunity_id: format!("{rep}-{i:04}"),
            rep_id: Some(rep.into()),
            outcome: if i >= n {
                Outcome::Open
            } else if is_won(i) {
                Outcome::Won
            } else {
                Outcome::Lost
            },
            amount: Some(10_000.0 + 100.0 * (i % 7) as f64),
            days_to_close: (i < n).then_some(60.0 - 40.0 * won as f64 / n as f64 + (i % 11) as f64),
            controls: controls(catalog, ["SMB", "Enterprise"][i % 2]),
        })
        .collect()
}

fn empty_discovery() -> Discovery {
    Discovery {
        schema: 1,
        catalog: "test".into(),
        versions: Vec::new(),
        controls: Vec::new(),
        cluster: "rep",
        fdr: 0.05,
        snapshots: 0,
        opportunities: 0,
        outcomes: [0, 0, 0],
        unobserved: Default::default(),
        landmarks: Vec::new(),
        findings: Vec::new(),
        rules: Vec::new(),
        column_tests: Vec::new(),
        tests: 0,
        details: Vec::new(),
        leakage: Vec::new(),
        caveat: winsignal_discover::CAVEAT,
    }
}

/// A significant win finding of `behaviour` at `landmark` with an average marginal effect of `ame` pp.
fn finding(behaviour: &str, landmark: &str, ame: f64) -> Finding {
    Finding {
        outcome: Studied::Win,
        landmark: landmark.into(),
        behaviour: behaviour.into(),
        column: None,
        level: None,
        version: 1,
        title: behaviour.replace('_', " "),
        kind: "yes_no",
        status: Status::Estimated,
        note: None,
        n: 1000,
        n_with: 400,
        n_without: 600,
        events: 500,
        raw: Raw::default(),
        effect: Some(Effect {
            scale: "odds_ratio",
            estimate: if ame > 0.0 { 1.6 } else { 0.6 },
            low: if ame > 0.0 { 1.3 } else { 0.5 },
            high: if ame > 0.0 { 2.0 } else { 0.8 },
            ame_pp: Some(Interval {
                estimate: ame,
                low: ame - 3.0,
                high: ame + 3.0,
            }),
            coef: 0.47,
            se: 0.1,
            z: 4.7,
            p: 1e-6,
            q: 1e-5,
            method: "logit",
            penalised: false,
            df: None,
            inference: "cr2_satterthwaite",
        }),
        step: None,
        step_kind: None,
        significant: true,
        adjusted_for: Vec::new(),
        dropped: Vec::new(),
        leakage: None,
    }
}

fn record(rep: &str, team: &str) -> RepRecord {
    RepRecord {
        rep_id: rep.into(),
        name: Some(format!("Rep {rep}")),
        team: Some(team.into()),
        manager_id: Some("boss".into()),
    }
}

fn card<'a>(s: &'a Scorecards, rep: &str) -> &'a winsignal_score::reps::RepCard {
    s.reps.iter().find(|c| c.rep_id == rep).unwrap()
}

fn width(i: &Interval) -> f64 {
    i.high - i.low
}

#[test]
fn a_small_perfect_record_is_pulled_toward_the_mean_and_not_ranked_over_a_long_better_one() {
    let catalog = catalog();
    let mut deals = Vec::new();
    let mut reps = Vec::new();
    // Ten ordinary reps between 40 % and 58 %, one strong rep with 200 deals at 72 %, and a new rep
    // who won all of their 6 deals.
    for r in 0..10 {
        let id = format!("avg{r}");
        deals.extend(deals_of(&catalog, &id, 100, 40 + 2 * r, 5));
        reps.push(record(&id, "Team"));
    }
    deals.extend(deals_of(&catalog, "strong", 200, 144, 5));
    reps.push(record("strong", "Team"));
    deals.extend(deals_of(&catalog, "lucky", 6, 6, 2));
    reps.push(record("lucky", "Team"));
    let s = scorecards(&catalog, &[], &empty_discovery(), &deals, &reps).unwrap();

    let lucky = card(&s, "lucky");
    let strong = card(&s, "strong");
    let lucky_win = lucky.win.as_ref().unwrap();
    let strong_win = strong.win.as_ref().unwrap();
    assert_eq!(lucky.win_rate, Some(1.0));
    // Pulled most of the way toward the average: well below its raw 100 %.
    assert!(
        lucky_win.shrinkage > 0.5,
        "shrinkage {}",
        lucky_win.shrinkage
    );
    assert!(lucky_win.adjusted_win_rate.estimate < 0.75, "{lucky_win:?}");
    assert!(
        lucky_win.adjusted_win_rate.estimate > s.mean_win_rate,
        "still above the mean"
    );
    // The strong rep is first; the lucky one, who has never lost, is not ranked at all and says why.
    assert_eq!(s.reps[0].rep_id, "strong");
    assert_eq!(strong.rank, Some(1));
    assert!(!strong.rank_tied);
    assert_eq!(lucky.rank, None);
    assert!(
        lucky
            .unranked_reason
            .as_deref()
            .unwrap()
            .contains("never lost a deal"),
        "{lucky:?}"
    );
    assert_eq!(
        s.reps.last().unwrap().rep_id,
        "lucky",
        "unranked reps come last"
    );
    assert!(strong_win.adjusted_win_rate.estimate > lucky_win.adjusted_win_rate.estimate);
    // The strong rep is clearly above the mean; the lucky one's interval is wide and covers it.
    assert!(strong_win.adjusted_win_rate.low > s.mean_win_rate);
    assert!(lucky_win.adjusted_win_rate.low < s.mean_win_rate);
    assert!(width(&lucky_win.adjusted_win_rate) > width(&strong_win.adjusted_win_rate));
    // Every estimate sits inside its interval, and expected wins add up over the reps to the wins
    // (the mix model has an intercept).
    for c in &s.reps {
        let w = c.win.as_ref().unwrap();
        let i = &w.adjusted_win_rate;
        assert!(i.low <= i.estimate && i.estimate <= i.high && i.low > 0.0 && i.high < 1.0);
    }
    let expected: f64 = s
        .reps
        .iter()
        .map(|c| c.win.as_ref().unwrap().expected_wins)
        .sum();
    let won: usize = s.reps.iter().map(|c| c.won).sum();
    assert!((expected - won as f64).abs() < 1e-6 * won as f64);
}

#[test]
fn intervals_narrow_as_reps_close_more_deals() {
    let catalog = catalog();
    let mut deals = Vec::new();
    let mut reps = Vec::new();
    // Same 60 % rate at four sample sizes, among reps that genuinely differ (so pooling is partial).
    for (id, n) in [("n20", 20), ("n80", 80), ("n320", 320), ("n1280", 1280)] {
        deals.extend(deals_of(&catalog, id, n, n * 3 / 5, 0));
        reps.push(record(id, "Team"));
    }
    for r in 0..8 {
        let id = format!("other{r}");
        deals.extend(deals_of(&catalog, &id, 150, 45 + 6 * r, 0));
        reps.push(record(&id, "Team"));
    }
    let s = scorecards(&catalog, &[], &empty_discovery(), &deals, &reps).unwrap();
    assert!(s.win_model.between_rep_sd > 0.1, "{:?}", s.win_model);
    let widths: Vec<f64> = ["n20", "n80", "n320", "n1280"]
        .iter()
        .map(|id| width(&card(&s, id).win.as_ref().unwrap().adjusted_win_rate))
        .collect();
    assert!(
        widths.windows(2).all(|w| w[1] < w[0]),
        "widths should shrink with n: {widths:?}"
    );
    let shrinkage: Vec<f64> = ["n20", "n80", "n320", "n1280"]
        .iter()
        .map(|id| card(&s, id).win.as_ref().unwrap().shrinkage)
        .collect();
    assert!(shrinkage.windows(2).all(|w| w[1] < w[0]), "{shrinkage:?}");
    // Cycle time and deal size are pooled the same way.
    let cycle: Vec<f64> = ["n20", "n80", "n320", "n1280"]
        .iter()
        .map(|id| width(&card(&s, id).cycle.as_ref().unwrap().ratio))
        .collect();
    assert!(cycle.windows(2).all(|w| w[1] < w[0]), "{cycle:?}");
}

/// A snapshot of deal `i` of `rep` at `landmark`, with `behaviour` set as given.
fn snapshot(
    catalog: &Catalog,
    rep: &str,
    i: usize,
    landmark: &str,
    flags: &[(usize, bool)],
    outcome: Outcome,
) -> Snapshot {
    let n_flags = catalog
        .behaviours
        .iter()
        .filter(|d| d.is_behaviour())
        .count();
    let mut f = vec![Some(false); n_flags];
    for (k, v) in flags {
        f[*k] = Some(*v);
    }
    Snapshot {
        opportunity_id: format!("{rep}-{i:04}"),
        landmark: landmark.into(),
        as_of: Ts(0),
        age_days: if landmark == "created" { 0.0 } else { 30.0 },
        account_id: None,
        rep_id: Some(rep.into()),
        controls: controls(catalog, ["SMB", "Enterprise"][i % 2]),
        values: vec![f64::NAN; catalog.behaviours.len()],
        flags: f,
        outcome,
        days_to_close: (outcome != Outcome::Open).then_some(20.0),
        days_observed: 20.0,
        amount: Some(12_000.0),
    }
}

/// Whether deal `i` (of 60) of a rep with adoption level `k` shows the behaviour: about k × 8 %.
fn adopts(i: usize, k: usize) -> bool {
    (i * 100 / 60) < k * 8
}

#[test]
fn coaching_lists_only_behaviours_below_the_top_quartile_ranked_by_extra_wins() {
    let catalog = catalog();
    let exec = flag_of(&catalog, "exec_engaged");
    let multi = flag_of(&catalog, "multithreaded");
    let urgent = flag_of(&catalog, "urgent_ticket_open");
    let mut snaps = Vec::new();
    let mut reps = Vec::new();
    // Twelve reps, 60 deals each (10 open); rep r does exec_engaged on r × 8 % of deals and
    // multithreaded on (11 − r) × 8 %; urgent tickets (a losing behaviour) on 30 % everywhere.
    for r in 0..12usize {
        let id = format!("rep{r:02}");
        reps.push(record(&id, if r < 6 { "East" } else { "West" }));
        for i in 0..60 {
            let outcome = if i >= 50 {
                Outcome::Open
            } else {
                [Outcome::Won, Outcome::Lost][(i + r) % 2]
            };
            let share = |k: usize| adopts(i, k);
            let flags = [
                (exec, share(r)),
                (multi, share(11 - r)),
                (urgent, i % 10 < 3),
            ];
            snaps.push(snapshot(&catalog, &id, i, "created", &[], outcome));
            snaps.push(snapshot(&catalog, &id, i, "age:30d", &flags, outcome));
        }
    }
    let mut discovery = empty_discovery();
    discovery.findings = vec![
        finding("exec_engaged", "age:30d", 12.0),
        finding("multithreaded", "age:30d", 8.0),
        finding("urgent_ticket_open", "age:30d", -10.0),
        // Not significant: never coached, never shown.
        Finding {
            significant: false,
            ..finding("fast_follow_up", "age:30d", 5.0)
        },
    ];
    let deals = deals_from_snapshots(&snaps);
    assert_eq!(deals.len(), 12 * 60);
    assert!(deals
        .iter()
        .all(|d| d.days_to_close.is_none_or(|t| t == 20.0)));
    let s = scorecards(&catalog, &snaps, &discovery, &deals, &reps).unwrap();

    let ids: Vec<&str> = s.behaviours.iter().map(|b| b.behaviour.as_str()).collect();
    assert_eq!(ids, ["exec_engaged", "multithreaded", "urgent_ticket_open"]);
    assert!(!s.behaviours[2].helps);
    for c in &s.reps {
        assert_eq!(c.adoption.len(), 3);
        for p in &c.coaching {
            assert!(
                p.rep_adoption < p.top_quartile,
                "{} coached on {} at {} ≥ top quartile {}",
                c.rep_id,
                p.behaviour,
                p.rep_adoption,
                p.top_quartile
            );
            assert_ne!(p.behaviour, "urgent_ticket_open");
            assert_eq!(p.open_deals, 10);
            let expected =
                (p.top_quartile - p.rep_adoption) * p.evidence.ame_pp.estimate / 100.0 * 10.0;
            assert!((p.expected_extra_wins - expected).abs() < 1e-12);
            assert!(p.text.contains(&format!("{} open deals", p.open_deals)));
        }
        assert!(c
            .coaching
            .windows(2)
            .all(|w| w[0].expected_extra_wins >= w[1].expected_extra_wins));
        // Adoption at or above the top quartile means no priority for that behaviour.
        for a in &c.adoption {
            if a.rate.unwrap() >= a.top_quartile.unwrap() {
                assert!(c.coaching.iter().all(|p| p.behaviour != a.behaviour));
            }
        }
    }
    // The rep who does the most exec engagement is not coached on it; the one who does least is,
    // first (bigger gap × bigger effect).
    let top = card(&s, "rep11");
    assert!(top.coaching.iter().all(|p| p.behaviour != "exec_engaged"));
    let bottom = card(&s, "rep00");
    assert_eq!(bottom.coaching[0].behaviour, "exec_engaged");
    assert_eq!(bottom.adoption[0].rate, Some(0.0));
    // Team adoption is the team's (reps 0–5), not the rep's.
    let east = (0..6)
        .map(|r| (0..60).filter(|i| adopts(*i, r)).count())
        .sum::<usize>() as f64
        / 360.0;
    assert_eq!(bottom.adoption[0].team, Some(east));
}

/// The ranks of the ranked reps, in card order.
fn ranks(s: &Scorecards) -> Vec<usize> {
    s.reps.iter().filter_map(|c| c.rank).collect()
}

#[test]
fn lost_deals_without_a_rep_rank_no_one_and_say_why() {
    // Issue 13, item 5: every lost deal lacks a rep (the CRM only recorded the owner of won deals), so
    // every rep "won" everything they closed. Before the fix every rep showed 100 % raw, an adjusted
    // rate near 100 % with a narrow interval, and ranks 1 to 20 in id order.
    let catalog = catalog();
    let mut deals = Vec::new();
    let mut reps = Vec::new();
    for r in 0..20 {
        let id = format!("rep{r:02}");
        let mut mine = deals_of(&catalog, &id, 30, 12 + r % 7, 3);
        for d in mine.iter_mut().filter(|d| d.outcome == Outcome::Lost) {
            d.rep_id = None;
        }
        deals.extend(mine);
        reps.push(record(&id, "Team"));
    }
    // A rep with a single deal, won.
    deals.extend(deals_of(&catalog, "single", 1, 1, 0));
    let s = scorecards(&catalog, &[], &empty_discovery(), &deals, &reps).unwrap();

    assert!(!s.ranking.comparable);
    assert_eq!(s.warnings[0].code, "losses_without_rep");
    assert!(
        s.warnings[0].text.starts_with("lost deals carry no rep (")
            && s.warnings[0]
                .text
                .contains("win rates per rep cannot be compared"),
        "{:?}",
        s.warnings
    );
    assert_eq!(s.reps.len(), 21);
    for c in &s.reps {
        assert_eq!(c.win_rate, Some(1.0), "the raw rate is what the data say");
        assert_eq!(c.rank, None, "{c:?}");
        assert!(c.win.is_none() && c.beyond_behaviours.is_none(), "{c:?}");
        assert!(c
            .unranked_reason
            .as_deref()
            .unwrap()
            .contains("lost deals carry no rep"));
    }
    // Cards come in rep id order when nobody is ranked, not in an order that looks like a ranking.
    let ids: Vec<&str> = s.reps.iter().map(|c| c.rep_id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    // Cycle time is measured on won deals only and still compares reps.
    assert!(s
        .reps
        .iter()
        .filter(|c| c.closed >= 20)
        .all(|c| c.cycle.is_some()));

    // The mirror image: won deals without a rep.
    let mut flipped = deals.clone();
    for d in flipped.iter_mut() {
        if d.outcome == Outcome::Won {
            d.rep_id = None;
        } else if d.outcome == Outcome::Lost {
            d.rep_id = Some(format!(
                "rep{:02}",
                d.opportunity_id[3..5].parse::<usize>().unwrap()
            ));
        }
    }
    let s = scorecards(&catalog, &[], &empty_discovery(), &flipped, &reps).unwrap();
    assert_eq!(s.warnings[0].code, "wins_without_rep");
    assert!(s.reps.iter().all(|c| c.rank.is_none() && c.win.is_none()));

    // No closed deal with a rep at all: the reps with open deals only get cards, and the output says
    // why nobody is ranked.
    for d in flipped.iter_mut().filter(|d| d.outcome != Outcome::Open) {
        d.rep_id = None;
    }
    let s = scorecards(&catalog, &[], &empty_discovery(), &flipped, &reps).unwrap();
    assert_eq!(s.warnings[0].code, "closed_deals_without_rep");
    assert!(s.reps.iter().all(|c| c.rank.is_none() && c.closed == 0));
}

#[test]
fn reps_without_enough_wins_and_losses_get_no_rank_and_a_reason() {
    let catalog = catalog();
    let mut deals = Vec::new();
    let mut reps = Vec::new();
    for r in 0..10 {
        let id = format!("avg{r}");
        deals.extend(deals_of(&catalog, &id, 60, 20 + 2 * r, 2));
        reps.push(record(&id, "Team"));
    }
    // Never lost (many deals), never won, too few losses, too few deals, nothing closed.
    deals.extend(deals_of(&catalog, "unbeaten", 25, 25, 0));
    deals.extend(deals_of(&catalog, "winless", 25, 0, 0));
    deals.extend(deals_of(&catalog, "two_losses", 40, 38, 0));
    deals.extend(deals_of(&catalog, "few", 8, 4, 0));
    deals.extend(deals_of(&catalog, "new", 0, 0, 4));
    let s = scorecards(&catalog, &[], &empty_discovery(), &deals, &reps).unwrap();
    assert!(s.ranking.comparable);
    assert_eq!(
        (s.ranking.min_wins, s.ranking.min_losses),
        (MIN_RANKED_WINS, MIN_RANKED_LOSSES)
    );
    for (id, says) in [
        ("unbeaten", "never lost a deal"),
        ("winless", "never won a deal"),
        ("two_losses", "40 closed deals, 38 won and 2 lost"),
        ("few", "8 closed deals, 4 won and 4 lost"),
        ("new", "no closed deals yet"),
    ] {
        let c = card(&s, id);
        assert_eq!(c.rank, None, "{id}");
        assert_eq!(c.rank_beyond_behaviours, None, "{id}");
        let reason = c.unranked_reason.as_deref().unwrap();
        assert!(reason.contains(says), "{id}: {reason}");
        // The pooled estimate is still there to read, with its interval; it just is not ranked.
        assert_eq!(c.win.is_some(), id != "new", "{id}");
    }
    // The ten ordinary reps are ranked 1 to 10 and come first; the five others after them.
    assert_eq!(ranks(&s), (1..=10).collect::<Vec<_>>());
    assert!(s.reps[..10].iter().all(|c| c.unranked_reason.is_none()));
    assert!(s.reps[10..].iter().all(|c| c.rank.is_none()));
    assert_eq!(s.reps[0].rep_id, "avg9");
    // Ranks go with the intervals: every rank sits inside the range its interval allows, and the best
    // and the worst ordinary reps cannot swap.
    for c in s.reps.iter().filter(|c| c.rank.is_some()) {
        let [lo, hi] = c.rank_range.unwrap();
        assert!(
            lo <= c.rank.unwrap() && c.rank.unwrap() <= hi && hi <= 10,
            "{c:?}"
        );
    }
}

#[test]
fn reps_who_do_not_differ_beyond_chance_are_tied_not_ranked_in_id_order() {
    // Twelve reps with the same record: the between-rep spread is estimated at 0 and pooling gives
    // every rep the same adjusted rate. Before the fix they were ranked 1 to 12 in rep id order.
    let catalog = catalog();
    let mut deals = Vec::new();
    let mut reps = Vec::new();
    for r in 0..12 {
        let id = format!("same{r:02}");
        deals.extend(deals_of(&catalog, &id, 40, 20, 1));
        reps.push(record(&id, "Team"));
    }
    let s = scorecards(&catalog, &[], &empty_discovery(), &deals, &reps).unwrap();
    assert_eq!(s.win_model.between_rep_sd, 0.0);
    assert!(s.ranking.all_tied);
    assert_eq!(ranks(&s), vec![1; 12]);
    assert!(s.reps.iter().all(|c| c.rank_tied));
    assert!(s.reps.iter().all(|c| c.rank_range == Some([1, 12])));
    let tied = s.warnings.iter().find(|w| w.code == "reps_tied").unwrap();
    assert!(tied
        .text
        .contains("reps do not differ more than chance would make them"));

    // Reps whose true rates differ only a little, well within chance: the spread is 0 again, and
    // every rep is tied, whatever their raw rates.
    let mut deals = Vec::new();
    for r in 0..12 {
        let id = format!("near{r:02}");
        deals.extend(deals_of(&catalog, &id, 40, 19 + r % 3, 1));
    }
    let s = scorecards(&catalog, &[], &empty_discovery(), &deals, &[]).unwrap();
    assert_eq!(s.win_model.between_rep_sd, 0.0, "{:?}", s.win_model);
    assert_eq!(ranks(&s), vec![1; 12]);

    // Two pairs of reps with identical records among reps who differ: each pair shares a rank and the
    // next rank is skipped (1, 1, 3 …).
    let mut deals = Vec::new();
    for (id, won) in [
        ("a", 90),
        ("b", 90),
        ("c", 70),
        ("d", 50),
        ("e", 50),
        ("f", 30),
    ] {
        deals.extend(deals_of(&catalog, id, 120, won, 0));
    }
    let s = scorecards(&catalog, &[], &empty_discovery(), &deals, &[]).unwrap();
    assert!(s.win_model.between_rep_sd > 0.1);
    let got: Vec<(&str, usize, bool)> = s
        .reps
        .iter()
        .map(|c| (c.rep_id.as_str(), c.rank.unwrap(), c.rank_tied))
        .collect();
    assert_eq!(
        got,
        [
            ("a", 1, true),
            ("b", 1, true),
            ("c", 3, false),
            ("d", 4, true),
            ("e", 4, true),
            ("f", 6, false)
        ]
    );
    assert!(!s.ranking.all_tied);
    assert!(s.warnings.iter().all(|w| w.code != "reps_tied"));
}

#[test]
fn reps_recorded_on_few_lost_deals_are_ranked_with_a_warning_and_too_few_deals_rank_no_one() {
    let catalog = catalog();
    // Every won deal has its rep, but only one lost deal in four does: every rate is biased upward.
    let mut deals = Vec::new();
    for r in 0..12 {
        let id = format!("rep{r:02}");
        let mut mine = deals_of(&catalog, &id, 60, 20 + 2 * r, 0);
        for (k, d) in mine
            .iter_mut()
            .filter(|d| d.outcome == Outcome::Lost)
            .enumerate()
        {
            if k % 4 != 0 {
                d.rep_id = None;
            }
        }
        deals.extend(mine);
    }
    let s = scorecards(&catalog, &[], &empty_discovery(), &deals, &[]).unwrap();
    assert!(s.ranking.comparable);
    let w = &s.warnings[0];
    assert_eq!(w.code, "rep_recorded_unevenly");
    assert!(w.text.contains("of won deals but") && w.text.contains("biased upward"));
    assert_eq!(ranks(&s).len(), 12);

    // Plenty of closed deals in all, but no rep with 10: nobody is ranked, and the output says so.
    let mut deals = Vec::new();
    for r in 0..40 {
        deals.extend(deals_of(&catalog, &format!("small{r:02}"), 6, 3, 1));
    }
    let s = scorecards(&catalog, &[], &empty_discovery(), &deals, &[]).unwrap();
    assert!(ranks(&s).is_empty());
    assert!(s.warnings.iter().any(|w| w.code == "no_rep_ranked"));
    assert!(s.reps.iter().all(|c| c.win.is_some()
        && c.unranked_reason
            .as_deref()
            .unwrap()
            .contains("6 closed deals, 3 won and 3 lost")));
}
