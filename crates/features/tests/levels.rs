//! Categorical definitions (issue 14, item 3): one definition of a categorical attribute becomes one
//! yes/no behaviour per level found in the data, rare levels pooled as "(other)", placeholders declared
//! missing read as undefined, and an attribute no opportunity has is an error naming it.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use winsignal_core::{AttrValue, Outcome};
use winsignal_features::catalog::{parse, Catalog};
use winsignal_features::levels::{resolve, MIN_LEVEL_DEALS, OTHER_LEVEL};
use winsignal_features::snapshot;

const CATALOG: &str = r#"
name = "flat"
controls = []

[landmarks]
stages = true
ages_days = []

[[behaviour]]
id = "industry"
version = 1
title = "Industry"
description = "The lead's industry."
reads = { kind = "attribute", attribute = "opportunity.industry", missing = ["Select", "-"] }
aggregate = "levels"
"#;

/// 60 Retail, 40 "banking" spelt two ways, 10 Mining and 5 Farming (rare), 8 "Select" and 4 "-"
/// (placeholders), 3 without the attribute.
fn fixture() -> Fixture {
    let mut f = Fixture::new();
    f.add(account("A1"));
    let t0 = ts("2025-01-01T00:00:00Z");
    let mut values: Vec<Option<&str>> = Vec::new();
    values.extend(std::iter::repeat_n(Some("Retail"), 60));
    values.extend(std::iter::repeat_n(Some("Banking"), 30));
    values.extend(std::iter::repeat_n(Some(" banking "), 10));
    values.extend(std::iter::repeat_n(Some("Mining"), 10));
    values.extend(std::iter::repeat_n(Some("Farming"), 5));
    values.extend(std::iter::repeat_n(Some("Select"), 8));
    values.extend(std::iter::repeat_n(Some("-"), 4));
    values.extend(std::iter::repeat_n(None, 3));
    for (i, v) in values.into_iter().enumerate() {
        let mut o = closed(
            &format!("O{i:03}"),
            "A1",
            t0,
            t0.plus_days(10.0),
            if i % 3 == 0 {
                Outcome::Won
            } else {
                Outcome::Lost
            },
        );
        if let Some(v) = v {
            o.attrs.insert("industry".into(), AttrValue::Text(v.into()));
        }
        f.add(o);
    }
    f
}

fn catalog() -> Catalog {
    parse(CATALOG, "flat.toml").unwrap()
}

#[test]
fn a_categorical_definition_becomes_one_behaviour_per_level_with_rare_levels_pooled() {
    let built = fixture().build();
    let resolved = resolve(&catalog(), &built.ctx).unwrap();
    let ids: Vec<&str> = resolved.behaviours.iter().map(|d| d.id.as_str()).collect();
    // Most common first; "banking" in either spelling is one level, spelt as most deals spell it;
    // Mining (10) and Farming (5) have fewer than 30 deals and are pooled.
    assert_eq!(
        ids,
        ["industry=Retail", "industry=Banking", "industry=(other)"]
    );
    const { assert!(MIN_LEVEL_DEALS > 10) };
    for d in &resolved.behaviours {
        assert!(d.is_behaviour(), "{} is a yes/no behaviour", d.id);
        let level = d.level.as_ref().unwrap();
        assert_eq!(level.definition, "industry");
        assert_eq!(d.version, 1);
    }
    assert_eq!(resolved.behaviours[0].title, "Industry = Retail");
    assert_eq!(
        resolved.behaviours[2].level.as_ref().unwrap().level,
        OTHER_LEVEL
    );
    assert!(
        resolved.behaviours[2].description.contains("\"Mining\""),
        "{}",
        resolved.behaviours[2].description
    );

    // Each deal with a real value is yes on exactly one level; placeholders and absent values are
    // undefined on every level.
    let engine = built.engine();
    let horizon = snapshot::horizon(&engine);
    let snaps = snapshot::snapshots(&engine, &resolved, horizon, &mut |_, _| {});
    assert_eq!(snaps.len(), 130);
    let yes = |i: usize| snaps.iter().filter(|s| s.flags[i] == Some(true)).count();
    assert_eq!((yes(0), yes(1), yes(2)), (60, 40, 15));
    let undefined = snaps
        .iter()
        .filter(|s| s.flags.iter().all(|f| f.is_none()))
        .count();
    assert_eq!(undefined, 8 + 4 + 3);
    for s in &snaps {
        let ones = s.flags.iter().filter(|f| **f == Some(true)).count();
        let defined = s.flags.iter().filter(|f| f.is_some()).count();
        assert!(
            defined == 0 || ones == 1,
            "{}: {:?}",
            s.opportunity_id,
            s.flags
        );
    }
}

#[test]
fn the_catalog_records_one_fingerprint_per_categorical_definition_not_per_level() {
    // The levels come from the data; what is versioned is the definition as written.
    let c = catalog();
    assert_eq!(c.behaviours.len(), 1);
    assert!(c.behaviours[0].is_categorical());
    assert!(!c.behaviours[0].is_behaviour());
    // `missing` is meaning: it changes the fingerprint; an attribute read without it keeps the
    // fingerprint it had before the key existed.
    let without = parse(&CATALOG.replace(", missing = [\"Select\", \"-\"]", ""), "x").unwrap();
    assert_ne!(
        c.behaviours[0].fingerprint(),
        without.behaviours[0].fingerprint()
    );
    let plain = r#"
[[behaviour]]
id = "retail"
version = 1
title = "Retail"
description = "d"
reads = { kind = "attribute", attribute = "opportunity.industry", equals = "Retail" }
aggregate = "value"
threshold = "== 1"
"#;
    let d = &parse(plain, "x").unwrap().behaviours[0];
    let json = serde_json::to_string(&d.reads).unwrap();
    assert!(
        !json.contains("missing") && !json.contains("other_than"),
        "{json}"
    );
}

#[test]
fn a_categorical_definition_refuses_a_threshold_and_equals() {
    let e = parse(&format!("{CATALOG}threshold = \">= 1\"\n"), "flat.toml").unwrap_err();
    assert_eq!(e.field, "behaviour[industry].threshold");
    assert!(e.message.contains("takes no threshold"), "{e}");
    let e = parse(
        &CATALOG.replace("missing = [\"Select\", \"-\"]", "equals = \"Retail\""),
        "flat.toml",
    )
    .unwrap_err();
    assert_eq!(e.field, "behaviour[industry].reads.equals");
    let e = parse(
        &CATALOG.replace("kind = \"attribute\", attribute = \"opportunity.industry\", missing = [\"Select\", \"-\"]", "kind = \"activities\", missing = [\"x\"]"),
        "flat.toml",
    )
    .unwrap_err();
    assert_eq!(e.field, "behaviour[industry].reads.missing");
}

#[test]
fn missing_markers_make_a_value_undefined_for_value_definitions_too() {
    let built = fixture().build();
    let text = r#"
controls = []
[landmarks]
stages = true
ages_days = []
[[behaviour]]
id = "retail"
version = 1
title = "Retail"
description = "d"
reads = { kind = "attribute", attribute = "opportunity.industry", equals = "retail", missing = ["SELECT"] }
aggregate = "value"
threshold = "== 1"
"#;
    let c = resolve(&parse(text, "x.toml").unwrap(), &built.ctx).unwrap();
    let engine = built.engine();
    let snaps = snapshot::snapshots(&engine, &c, snapshot::horizon(&engine), &mut |_, _| {});
    let count = |want: Option<bool>| snaps.iter().filter(|s| s.flags[0] == want).count();
    // "Select" (any case) is undefined, as is no value; "-" was not declared, so it is a "no".
    assert_eq!(count(None), 8 + 3);
    assert_eq!(count(Some(true)), 60);
    assert_eq!(count(Some(false)), 130 - 60 - 11);
}

#[test]
fn an_attribute_no_opportunity_has_is_an_error_naming_it_and_the_closest_names() {
    let built = fixture().build();
    let misspelt = parse(
        &CATALOG.replace("opportunity.industry", "opportunity.industy"),
        "flat.toml",
    )
    .unwrap();
    let e = resolve(&misspelt, &built.ctx).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("flat.toml", 9));
    assert_eq!(e.field, "behaviour[industry].reads.attribute");
    assert!(e.message.contains("\"opportunity.industy\""), "{e}");
    assert!(
        e.message.contains("did you mean opportunity.industry"),
        "{e}"
    );

    let control = parse(
        &CATALOG.replace("controls = []", "controls = [\"opportunity.region\"]"),
        "flat.toml",
    )
    .unwrap();
    let e = resolve(&control, &built.ctx).unwrap_err();
    assert_eq!(e.field, "controls");
    assert!(e.message.contains("\"opportunity.region\""), "{e}");
}

#[test]
fn when_every_level_is_rare_the_pooled_level_holds_every_deal_with_a_value() {
    let mut f = Fixture::new();
    f.add(account("A1"));
    let t0 = ts("2025-01-01T00:00:00Z");
    for i in 0..50 {
        let mut o = closed(
            &format!("O{i:03}"),
            "A1",
            t0,
            t0.plus_days(3.0),
            Outcome::Lost,
        );
        o.attrs.insert(
            "industry".into(),
            AttrValue::Text(format!("Niche {}", i % 10)),
        );
        f.add(o);
    }
    let built = f.build();
    let resolved = resolve(&catalog(), &built.ctx).unwrap();
    let ids: Vec<&str> = resolved.behaviours.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["industry=(other)"]);
    let engine = built.engine();
    let snaps = snapshot::snapshots(
        &engine,
        &resolved,
        snapshot::horizon(&engine),
        &mut |_, _| {},
    );
    // Yes for every deal (a constant: discovery refuses it as such), not undefined.
    assert!(snaps.iter().all(|s| s.flags[0] == Some(true)));
}

#[test]
fn pinned_levels_are_used_instead_of_the_data() {
    use winsignal_features::levels::{pinned_levels, resolve_pinned};
    let built = fixture().build();
    // As a model records them: Retail and the pool; Banking (40 deals now) counts in the pool.
    let versions = [
        "industry=Retail@1".to_string(),
        "industry=(other)@1".to_string(),
    ];
    let pinned = pinned_levels(&versions);
    let resolved = resolve_pinned(&catalog(), &built.ctx, &pinned).unwrap();
    let ids: Vec<&str> = resolved.behaviours.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["industry=Retail", "industry=(other)"]);
    let engine = built.engine();
    let snaps = snapshot::snapshots(
        &engine,
        &resolved,
        snapshot::horizon(&engine),
        &mut |_, _| {},
    );
    let yes = |i: usize| snaps.iter().filter(|s| s.flags[i] == Some(true)).count();
    assert_eq!((yes(0), yes(1)), (60, 40 + 15));
}
