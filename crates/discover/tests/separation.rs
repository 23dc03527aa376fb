//! Separation and tiny cells on synthetic snapshots shaped like the issue's minimal reproduction: 8,000
//! deals, a group of 40 that never won against 807 wins in the 7,960 others (Fisher's exact p = 0.030,
//! where the penalised fit's Wald errors reported p = 2.5e-41), and a group of 40 that all won against
//! 30 % elsewhere (a Wald interval of ×137–258 where the profile interval is ×27–24,000). Reference
//! numbers: `validation/firth.py` (firthmodels and scipy) on the same tables, `firth_reference.json`.
#![allow(clippy::unwrap_used)]

use winsignal_core::{Outcome as O, Ts};
use winsignal_discover::{discover, Finding, Options, Outcome, Status};
use winsignal_features::catalog::parse;
use winsignal_features::snapshot::{ControlValue, Snapshot};

const CATALOG: &str = r#"
name = "separation"
controls = ["opportunity.region"]

[landmarks]
stages = true
ages_days = []

[[behaviour]]
id = "in_group"
version = 1
title = "In the group"
description = "Forty deals of eight thousand."
reads = { kind = "attribute", attribute = "opportunity.in_group" }
aggregate = "value"
threshold = "== 1"
"#;

/// `group_won` of the 40 deals in the group won, `others_won` of the 7,960 others; `reps` reps (0: none);
/// a region control whose level "west" (80 deals, none in the group) never won.
fn snapshots(group_won: usize, others_won: usize, reps: usize) -> Vec<Snapshot> {
    (0..8000)
        .map(|i| {
            let in_group = i < 40;
            let won = if in_group {
                i < group_won
            } else {
                // Spread the others' wins evenly, none in "west" (i in 40..120).
                let k = i - 40;
                k >= 80 && (k - 80) * others_won / 7880 != (k - 79) * others_won / 7880
            };
            let region = if (40..120).contains(&i) {
                "west"
            } else if i % 2 == 0 {
                "north"
            } else {
                "south"
            };
            Snapshot {
                opportunity_id: format!("opp-{i:05}"),
                landmark: "created".into(),
                as_of: Ts(0),
                age_days: 0.0,
                account_id: None,
                rep_id: (reps > 0).then(|| format!("rep-{}", i % reps)),
                controls: vec![ControlValue::Text(region.into())],
                values: vec![f64::from(u8::from(in_group))],
                flags: vec![Some(in_group)],
                outcome: if won { O::Won } else { O::Lost },
                days_to_close: Some(10.0 + (i % 90) as f64),
                days_observed: 10.0 + (i % 90) as f64,
                amount: Some(1000.0 + (i % 7) as f64 * 100.0),
            }
        })
        .collect()
}

fn find(d: &winsignal_discover::Discovery, outcome: Outcome) -> &Finding {
    d.findings
        .iter()
        .find(|f| f.outcome == outcome && f.behaviour == "in_group")
        .unwrap()
}

#[test]
fn a_group_that_never_won_gets_a_valid_p_value_and_interval() {
    let catalog = parse(CATALOG, "separation.toml").unwrap();
    let snaps = snapshots(0, 807, 0);
    let won: usize = snaps.iter().filter(|s| s.outcome == O::Won).count();
    assert_eq!(won, 807);
    let d = discover(&catalog, &snaps, &Options::default()).unwrap();
    let f = find(&d, Outcome::Win);
    let e = f.effect.as_ref().unwrap();
    assert!(e.penalised, "{f:?}");
    assert_eq!(e.inference, "profile_penalised_likelihood");
    // Fisher's exact test of 0/40 against 807/7,960 (scipy): 0.030147; the adjusted p-value of a table
    // with an empty cell is never below it (the penalised LRT alone, firthmodels: 0.0187).
    let exact = f.raw.exact_p.unwrap();
    assert!((exact - 0.030_147_091_275_712_887).abs() < 1e-9, "{exact}");
    assert!(e.p >= exact && e.p < 0.05, "p = {}", e.p);
    // (Whether 0.03 is significant depends on the other tests of the run: here there are only two.)
    // The profile interval: about ×0.001 to ×0.77 (firthmodels, without the region control), never
    // the Wald ×0.079–0.151.
    assert!(e.low < 0.01 && e.high > 0.5 && e.high < 1.0, "{e:?}");
    let ame = e.ame_pp.unwrap();
    assert!(
        ame.low < ame.estimate && ame.estimate < ame.high && ame.high < 0.0,
        "{ame:?}"
    );
    // The region level that never won is left out as separating, not refused.
    assert!(
        f.dropped.iter().any(|c| c.contains("west")),
        "{:?}",
        f.dropped
    );
    // Closing faster: no deal in the group closed won, so there is no hazard ratio — said plainly, not a
    // refusal that the fit did not converge.
    let c = find(&d, Outcome::CycleTime);
    assert_eq!(c.status, Status::NotEnoughData, "{c:?}");
    assert!(
        c.note
            .as_ref()
            .unwrap()
            .contains("no deal with it closed won"),
        "{c:?}"
    );
}

#[test]
fn a_group_that_always_won_gets_a_wide_profile_interval() {
    let catalog = parse(CATALOG, "separation.toml").unwrap();
    let snaps = snapshots(40, 2388, 0);
    let d = discover(&catalog, &snaps, &Options::default()).unwrap();
    let f = find(&d, Outcome::Win);
    let e = f.effect.as_ref().unwrap();
    assert!(e.penalised, "{f:?}");
    // firthmodels' profile interval of the log odds ratio without controls: 3.30 to 10.08.
    assert!(e.low < 50.0 && e.high > 5_000.0, "{e:?}");
    assert!(
        f.significant,
        "a real, strong difference stays significant: {f:?}"
    );
    // Cox: every deal in the group closed won; the hazard ratio is estimated, with a t reference.
    let c = find(&d, Outcome::CycleTime);
    let ce = c.effect.as_ref().unwrap();
    assert_eq!(ce.inference, "cluster_robust_t");
}

#[test]
fn clustering_by_rep_never_narrows_the_separated_interval() {
    let catalog = parse(CATALOG, "separation.toml").unwrap();
    let plain = discover(&catalog, &snapshots(0, 807, 0), &Options::default()).unwrap();
    let by_rep = discover(&catalog, &snapshots(0, 807, 8), &Options::default()).unwrap();
    let (a, b) = (
        find(&plain, Outcome::Win).effect.clone().unwrap(),
        find(&by_rep, Outcome::Win).effect.clone().unwrap(),
    );
    // What the errors are clustered by is said as it is: by rep only where there are reps.
    assert_eq!(plain.cluster, "deal");
    assert_eq!(by_rep.cluster, "rep");
    // Eight reps: a t reference on 7 degrees of freedom and a scale of at least 1.
    assert_eq!(b.df, Some(7.0));
    assert!(
        b.p >= a.p && b.low <= a.low * 1.000_001 && b.high >= a.high * 0.999_999,
        "{a:?}\n{b:?}"
    );
}
