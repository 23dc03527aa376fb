//! Leakage at the level of the column, on synthetic snapshots reproducing the shapes met on real
//! exports (issue 13, item 3): a sales-filled dropdown split into one yes/no behaviour per level, a
//! numeric filled in at the close, a field defined only for won deals, an amount that is 0 on every
//! lost deal (a control), deals without an account that never win, a field filled in for nearly every
//! won deal and nearly no lost one — and a strong honest behaviour and feature that must not be flagged.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;
use winsignal_core::{Outcome as O, Ts};
use winsignal_discover::{discover, suspect_columns, ColumnFlag, Discovery, Options, Outcome};
use winsignal_features::catalog::{parse, Catalog};
use winsignal_features::snapshot::{ControlValue, Snapshot};

const TAGS: [&str; 6] = [
    "Closed by X",
    "Will revert",
    "Interested",
    "Ringing",
    "Not interested",
    "Junk",
];

fn catalog_text() -> String {
    let mut s = String::from(
        r#"
name = "leaky"
controls = ["log_amount", "industry", "opportunity.region"]

[landmarks]
stages = true
ages_days = []
"#,
    );
    for (i, tag) in TAGS.iter().enumerate() {
        s.push_str(&format!(
            r#"
[[behaviour]]
id = "tag_{i}"
version = 1
title = "Tagged {tag}"
description = "One level of the sales-filled Tags dropdown."
reads = {{ kind = "attribute", attribute = "opportunity.tags", equals = "{tag}" }}
aggregate = "value"
threshold = "== 1"
"#
        ));
    }
    s.push_str(
        r#"
[[behaviour]]
id = "invoice_score"
version = 1
title = "Invoice score"
description = "Computed after the purchase: filled in at the close, missing on open deals."
reads = { kind = "attribute", attribute = "opportunity.invoice_score" }
aggregate = "value"

[[behaviour]]
id = "contract_days"
version = 1
title = "Days since the contract"
description = "Defined only for won deals."
reads = { kind = "attribute", attribute = "opportunity.contract_days" }
aggregate = "value"

[[behaviour]]
id = "demo_done"
version = 1
title = "Demo done"
description = "Honest and strong: AUC about 0.75, on open deals as often as on closed ones."
reads = { kind = "attribute", attribute = "opportunity.demo_done" }
aggregate = "value"
threshold = "== 1"

[[behaviour]]
id = "seats"
version = 1
title = "Seats"
description = "Honest numeric: AUC about 0.8, filled in on open deals too."
reads = { kind = "attribute", attribute = "opportunity.seats" }
aggregate = "value"

[[behaviour]]
id = "discount"
version = 1
title = "Discount"
description = "Filled in on nearly every won deal and nearly no lost one; its values say nothing."
reads = { kind = "attribute", attribute = "opportunity.discount" }
aggregate = "value"
"#,
    );
    s
}

/// A deterministic pseudo-random stream (SplitMix64).
struct Mix(u64);
impl Mix {
    fn f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.f64().max(1e-12), self.f64());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn pick(&mut self, n: usize) -> usize {
        ((self.f64() * n as f64) as usize).min(n - 1)
    }
}

const N_CLOSED: usize = 2000;
const N_OPEN: usize = 300;

fn snapshots(catalog: &Catalog) -> Vec<Snapshot> {
    assert_eq!(catalog.behaviours.len(), 11);
    let mut rng = Mix(13);
    (0..N_CLOSED + N_OPEN)
        .map(|i| {
            let outcome = if i >= N_CLOSED {
                O::Open
            } else if i % 2 == 0 {
                O::Won
            } else {
                O::Lost
            };
            let (won, open) = (outcome == O::Won, outcome == O::Open);
            // Tags: the sales team picks a "won" level for 97 % of won deals and a "lost" level for 97 %
            // of lost ones, three levels each: no level alone comes near separating them.
            let leaning_won = if open {
                rng.f64() < 0.5
            } else {
                won == (rng.f64() < 0.97)
            };
            let tag = if leaning_won {
                rng.pick(3)
            } else {
                3 + rng.pick(3)
            };
            // A score computed after the purchase: AUC about 0.86, missing on 95 % of open deals.
            let invoice = if open && rng.f64() < 0.95 {
                f64::NAN
            } else {
                rng.normal() + if won { 1.53 } else { 0.0 }
            };
            // Defined only for won deals (four in ten of them).
            let contract = if won && rng.f64() < 0.4 {
                30.0 * rng.f64()
            } else {
                f64::NAN
            };
            // Honest: 75 % of won and 25 % of lost deals, half of the open ones.
            let demo = rng.f64()
                < match outcome {
                    O::Won => 0.75,
                    O::Lost => 0.25,
                    O::Open => 0.5,
                };
            let seats = (rng.normal() + if won { 1.2 } else { 0.0 }).exp().round();
            // Filled in on 95 % of won deals, 5 % of lost ones and half of the open ones.
            let discount = if rng.f64()
                < match outcome {
                    O::Won => 0.95,
                    O::Lost => 0.05,
                    O::Open => 0.5,
                } {
                20.0 * rng.f64()
            } else {
                f64::NAN
            };
            // The amount is 0 on every lost deal.
            let amount = if outcome == O::Lost {
                0.0
            } else {
                1000.0 * (1.0 + rng.f64())
            };
            // A sixth of the lost deals have no account (and so no industry); every won deal has one.
            let no_account = outcome == O::Lost && rng.f64() < 1.0 / 6.0;
            let industry = if no_account {
                ControlValue::Missing
            } else {
                ControlValue::Text(["retail", "software", "finance"][rng.pick(3)].into())
            };
            let region = if rng.f64() < if won { 0.6 } else { 0.45 } {
                "north"
            } else {
                "south"
            };
            let mut values: Vec<f64> = (0..6).map(|t| (t == tag) as u8 as f64).collect();
            values.extend([invoice, contract, demo as u8 as f64, seats, discount]);
            let mut flags: Vec<Option<bool>> = (0..6).map(|t| Some(t == tag)).collect();
            flags.push(Some(demo));
            Snapshot {
                opportunity_id: format!("opp-{i:05}"),
                landmark: "created".into(),
                as_of: Ts(0),
                age_days: 0.0,
                account_id: (!no_account).then(|| format!("acct-{}", i % 700)),
                rep_id: Some(format!("rep-{}", i % 25)),
                controls: vec![
                    ControlValue::Number(amount.ln_1p()),
                    industry,
                    ControlValue::Text(region.into()),
                ],
                values,
                flags,
                outcome,
                days_to_close: None,
                days_observed: 0.0,
                amount: Some(amount),
            }
        })
        .collect()
}

struct World {
    catalog: Catalog,
    snaps: Vec<Snapshot>,
    discovery: Discovery,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let catalog = parse(&catalog_text(), "leaky.toml").unwrap();
        let snaps = snapshots(&catalog);
        let discovery = discover(&catalog, &snaps, &options(false)).unwrap();
        World {
            catalog,
            snaps,
            discovery,
        }
    })
}

fn options(keep_suspect: bool) -> Options {
    Options {
        outcomes: vec![Outcome::Win, Outcome::DealSize],
        rules: false,
        keep_suspect,
        ..Options::default()
    }
}

fn flag<'a>(d: &'a Discovery, column: &str) -> &'a ColumnFlag {
    d.leakage
        .iter()
        .find(|f| f.column == column)
        .unwrap_or_else(|| panic!("{column} is not flagged: {:#?}", d.leakage))
}

fn win_finding<'a>(d: &'a Discovery, id: &str) -> &'a winsignal_discover::Finding {
    d.findings
        .iter()
        .find(|f| f.outcome == Outcome::Win && f.behaviour == id)
        .unwrap()
}

#[test]
fn a_dropdown_split_into_levels_is_flagged_as_a_whole() {
    let d = &world().discovery;
    // No level alone reaches the per-definition threshold: each separates won from lost modestly.
    for i in 0..6 {
        let f = win_finding(d, &format!("tag_{i}"));
        let (with, without) = (f.raw.with.unwrap(), f.raw.without.unwrap());
        assert!((with - without).abs() < 0.72, "{f:?}");
    }
    let tags = flag(d, "opportunity.tags");
    assert_eq!(tags.kind, "column_auc", "{tags:?}");
    assert!(tags.auc.unwrap() > 0.95, "{tags:?}");
    assert!(!tags.control);
    assert_eq!(tags.definitions.len(), 6);
    // The evidence names the AUC of the column and says that its levels one by one do not reach it.
    assert!(
        tags.evidence
            .starts_with("opportunity.tags alone separates won from lost with AUC 0.9"),
        "{}",
        tags.evidence
    );
    let at_most: f64 = tags
        .evidence
        .split("reach at most AUC ")
        .nth(1)
        .unwrap()
        .get(..4)
        .unwrap()
        .parse()
        .unwrap();
    assert!(at_most <= 0.86, "{}", tags.evidence);
    // Every level's findings carry the column's evidence, so they stay out of the headlines.
    for i in 0..6 {
        let f = win_finding(d, &format!("tag_{i}"));
        let leakage = f.leakage.as_deref().unwrap_or_default();
        assert!(
            leakage.contains("possible leakage of the column opportunity.tags"),
            "{f:?}"
        );
    }
}

#[test]
fn a_value_recorded_at_the_close_is_flagged() {
    let d = &world().discovery;
    let invoice = flag(d, "opportunity.invoice_score");
    // An AUC of 0.86 alone would not tell it from a strong honest feature; that open deals almost
    // never have it does.
    let auc = invoice.auc.unwrap();
    assert!((0.82..0.90).contains(&auc), "{invoice:?}");
    assert_eq!(invoice.kind, "recorded_at_close", "{invoice:?}");
    assert!(
        invoice
            .evidence
            .contains("is filled in on 100 % of closed deals but "),
        "{}",
        invoice.evidence
    );
    assert!(win_finding(d, "invoice_score").leakage.is_some());
}

#[test]
fn a_field_defined_for_won_deals_only_is_flagged() {
    let d = &world().discovery;
    let contract = flag(d, "opportunity.contract_days");
    assert_eq!(contract.kind, "one_outcome_only", "{contract:?}");
    assert!(
        contract.evidence.starts_with("of the ")
            && contract
                .evidence
                .contains("closed deals with a value of opportunity.contract_days, none was lost"),
        "{}",
        contract.evidence
    );
    assert!(win_finding(d, "contract_days").leakage.is_some());
}

#[test]
fn a_field_filled_in_mostly_for_one_outcome_is_flagged() {
    let d = &world().discovery;
    let discount = flag(d, "opportunity.discount");
    // Its values alone say nothing; whether it is there says nearly everything.
    assert!(discount.auc.unwrap() < 0.6, "{discount:?}");
    assert_eq!(discount.kind, "missingness", "{discount:?}");
    assert!(
        discount
            .evidence
            .starts_with("opportunity.discount is filled in on 9"),
        "{}",
        discount.evidence
    );
    assert!(win_finding(d, "discount").leakage.is_some());
}

#[test]
fn an_amount_of_zero_on_lost_deals_takes_log_amount_out_of_the_models() {
    let w = world();
    let d = &w.discovery;
    let amount = flag(d, "log_amount");
    assert!(amount.control && amount.kind == "column_auc", "{amount:?}");
    assert!(amount.auc.unwrap() > 0.99, "{amount:?}");
    assert!(
        amount
            .evidence
            .contains("100 % of the 1000 closed deals with log_amount = 0 were lost"),
        "{}",
        amount.evidence
    );
    // Left out of every model, and said so; the honest control stays in.
    assert_eq!(d.controls, ["opportunity_region", "log_age_at_landmark"]);
    let demo = win_finding(d, "demo_done");
    assert!(
        !demo.adjusted_for.iter().any(|c| c == "log_amount"),
        "{demo:?}"
    );
    assert!(demo.adjusted_for.iter().any(|c| c == "opportunity_region"));
    assert!(
        demo.dropped
            .iter()
            .any(|c| c.starts_with("log_amount (possible leakage")),
        "{demo:?}"
    );

    // The explicit override keeps flagged controls in the models and the findings unmarked (the
    // column flags are still listed).
    let kept = discover(&w.catalog, &w.snaps, &options(true)).unwrap();
    let demo = win_finding(&kept, "demo_done");
    assert!(
        demo.adjusted_for.iter().any(|c| c == "log_amount"),
        "{demo:?}"
    );
    assert!(win_finding(&kept, "tag_0").leakage.is_none());
    assert_eq!(kept.leakage, d.leakage);
    assert_eq!(kept.controls.len(), 4);
}

#[test]
fn deals_without_an_account_that_never_win_are_flagged() {
    let d = &world().discovery;
    let account = flag(d, "account");
    assert_eq!(account.kind, "one_outcome_only", "{account:?}");
    assert!(!account.control && account.definitions.is_empty());
    assert!(
        account
            .evidence
            .contains("closed deals without an account, none was won"),
        "{}",
        account.evidence
    );
    // The control read from the account is missing on the same deals: flagged and left out too.
    let industry = flag(d, "industry");
    assert!(industry.control, "{industry:?}");
    assert!(!win_finding(d, "demo_done")
        .adjusted_for
        .iter()
        .any(|c| c == "industry"));
}

#[test]
fn a_strong_honest_behaviour_is_not_flagged() {
    let d = &world().discovery;
    let flagged: Vec<&str> = d.leakage.iter().map(|f| f.column.as_str()).collect();
    assert_eq!(
        flagged,
        [
            "log_amount",
            "industry",
            "opportunity.tags",
            "opportunity.invoice_score",
            "opportunity.contract_days",
            "opportunity.discount",
            "account"
        ],
        "{:#?}",
        d.leakage
    );
    for id in ["demo_done", "seats"] {
        let f = win_finding(d, id);
        assert!(f.leakage.is_none(), "{f:?}");
        assert!(f.significant, "{f:?}");
    }
}

#[test]
fn suspect_columns_is_the_discovery_list() {
    let w = world();
    assert_eq!(suspect_columns(&w.catalog, &w.snaps), w.discovery.leakage);
}
