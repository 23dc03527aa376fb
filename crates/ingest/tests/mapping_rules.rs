//! The mapping language on small synthetic files: configuration errors that name the key, the line and
//! what was expected; numbers read by a declared locale (and ambiguous ones refused, never changed);
//! update outputs that merge chosen fields of a second file into records already held; a load that
//! quarantines a large share of a field or an outcome warns, and under `strict` refuses to commit.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use winsignal_core::{Kind, Outcome, Record, Ts};
use winsignal_ingest::sources::mapping::LoadedMapping;
use winsignal_ingest::{ingest, IngestError, IngestReport, IngestRequest};
use winsignal_store::{EmbeddedStore, StoreRead, StoredRecord};

fn now() -> Ts {
    Ts::parse("2026-11-01T00:00:00Z").unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn request(csv: &Path, mapping: &Path) -> IngestRequest {
    let mut r = IngestRequest::new(csv);
    r.mapping = Some(mapping.to_path_buf());
    r.now = now();
    r
}

fn load(store: &mut EmbeddedStore, csv: &Path, mapping: &Path) -> IngestReport {
    ingest(store, &request(csv, mapping), &mut |_| {}).unwrap()
}

fn opportunity(store: &EmbeddedStore, id: &str) -> winsignal_core::Opportunity {
    let rec = store
        .records(Kind::Opportunities)
        .unwrap()
        .into_iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("opportunity {id} is not held"));
    match rec.record {
        Record::Opportunities(o) => o,
        other => panic!("{other:?}"),
    }
}

fn quarantine_reasons(store: &EmbeddedStore) -> Vec<(u64, String)> {
    store
        .quarantine(None)
        .unwrap()
        .into_iter()
        .map(|q| (q.line, q.reasons.join("; ")))
        .collect()
}

const DEALS_MAPPING: &str = r#"
source = "crm:deals"
[[output]]
kind = "opportunities"
[output.fields]
opportunity_id = "lead_id"
created_at = "created"
outcome = { constant = "open" }
amount = "amount"
"#;

// ---------------------------------------------------------------------------------------------------
// Configuration errors

#[test]
fn a_typo_in_a_field_rule_names_the_key_its_line_and_the_keys_expected() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "typo.toml",
        "[[output]]\nkind = \"opportunities\"\n[output.fields]\nopportunity_id = \"id\"\ncreated_at = \"created\"\noutcome = { column = \"status\", value = { Won = \"won\" } }\n",
    );
    let err = LoadedMapping::from_file(&mapping)
        .err()
        .expect("a mapping with an unknown key is refused")
        .to_string();
    assert!(err.contains("typo.toml"), "{err}");
    assert!(err.contains("line 6"), "{err}");
    assert!(err.contains("`value`"), "{err}");
    assert!(err.contains("values"), "expected keys are listed: {err}");
    assert!(err.contains("outcome"), "the field is named: {err}");
    assert!(!err.contains("untagged"), "{err}");
}

#[test]
fn a_field_spec_of_the_wrong_type_says_what_was_expected() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "wrong.toml",
        "[[output]]\nkind = \"opportunities\"\n[output.fields]\nopportunity_id = 12\n",
    );
    let err = LoadedMapping::from_file(&mapping)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("line 4"), "{err}");
    assert!(
        err.contains("a column name") && err.contains("a table"),
        "{err}"
    );
    assert!(!err.contains("untagged"), "{err}");
}

#[test]
fn an_unknown_top_level_or_output_key_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "top.toml",
        "source = \"x\"\ndate_fromat = \"%d.%m.%Y\"\n[[output]]\nkind = \"reps\"\n[output.fields]\nrep_id = \"id\"\n",
    );
    let err = LoadedMapping::from_file(&mapping)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("`date_fromat`"),
        "{err}"
    );
    assert!(err.contains("date_format"), "{err}");
}

#[test]
fn a_salesforce_config_error_names_the_key_its_line_table_and_what_was_expected() {
    use winsignal_ingest::sources::salesforce::SalesforceConfig;
    let dir = tempfile::tempdir().unwrap();
    let typo = write(
        dir.path(),
        "sf.toml",
        "exported_a = \"2026-01-01T00:00:00Z\"\n[fields.Account]\nSegment__c = \"segment\"\n",
    );
    let err = SalesforceConfig::from_file(&typo)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("sf.toml") && err.contains("line 1") && err.contains("`exported_a`"),
        "{err}"
    );
    assert!(
        err.contains("exported_at") && err.contains("fields"),
        "the keys expected: {err}"
    );
    let wrong_type = write(dir.path(), "sf2.toml", "[fields.Account]\nSegment__c = 3\n");
    let err = SalesforceConfig::from_file(&wrong_type)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("[fields.Account]") && err.contains("Segment__c"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------------
// Numbers and locales

#[test]
fn numbers_in_another_locale_are_quarantined_not_changed() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "deals.csv",
        "lead_id,created,amount\nD1,2025-01-01,\"1.234,56\"\nD2,2025-01-01,\"1,2,3\"\nD3,2025-01-01,\"1,234.5\"\nD4,2025-01-01,12.5\nD5,2025-01-01,\"12,50\"\nD6,2025-01-01,\"$1,234,567\"\n",
    );
    let mapping = write(dir.path(), "deals.toml", DEALS_MAPPING);
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let report = load(&mut store, &csv, &mapping);
    assert_eq!(report.loads[0].stats.quarantined, 3);
    let reasons = quarantine_reasons(&store);
    let at = |line: u64| -> String {
        reasons
            .iter()
            .find(|(l, _)| *l == line)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("line {line} is not quarantined: {reasons:?}"))
    };
    for (line, value) in [(2, "1.234,56"), (3, "1,2,3"), (6, "12,50")] {
        let r = at(line);
        assert!(
            r.contains("`amount`") && r.contains(value),
            "line {line}: {r}"
        );
        assert!(r.contains("decimal"), "the fix is named: {r}");
    }
    assert_eq!(opportunity(&store, "D3").amount, Some(1234.5));
    assert_eq!(opportunity(&store, "D4").amount, Some(12.5));
    assert_eq!(opportunity(&store, "D6").amount, Some(1_234_567.0));
}

#[test]
fn a_declared_decimal_comma_reads_european_numbers_and_refuses_bad_groups() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "deals.csv",
        "lead_id;created;amount\nD1;2025-01-01;1.234,56\nD2;2025-01-01;12,5\nD3;2025-01-01;1.234.567\nD4;2025-01-01;1.2.3\nD5;2025-01-01;1,234.5\nD6;2025-01-01;-7\n",
    );
    let mapping = write(
        dir.path(),
        "deals.toml",
        &format!("delimiter = \";\"\ndecimal = \",\"\n{DEALS_MAPPING}"),
    );
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let report = load(&mut store, &csv, &mapping);
    assert_eq!(report.loads[0].stats.quarantined, 2, "{report:?}");
    assert_eq!(opportunity(&store, "D1").amount, Some(1234.56));
    assert_eq!(opportunity(&store, "D2").amount, Some(12.5));
    assert_eq!(opportunity(&store, "D3").amount, Some(1_234_567.0));
    assert_eq!(opportunity(&store, "D6").amount, Some(-7.0));
    let reasons = quarantine_reasons(&store);
    assert!(
        reasons
            .iter()
            .any(|(l, r)| *l == 5 && r.contains("`amount`") && r.contains("1.2.3")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(l, r)| *l == 6 && r.contains("1,234.5")),
        "{reasons:?}"
    );
}

#[test]
fn a_declared_decimal_comma_reads_attribute_columns_too_or_keeps_them_as_text() {
    use winsignal_core::AttrValue;
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "deals.csv",
        "lead_id;created;amount;discount;version\nD1;2025-01-01;1,5;1.234,5;1.5\nD2;2025-01-01;2;12,5;2.25\nD3;2025-01-01;3;;7\n",
    );
    let mapping = write(
        dir.path(),
        "deals.toml",
        &format!("delimiter = \";\"\ndecimal = \",\"\n{DEALS_MAPPING}"),
    );
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    load(&mut store, &csv, &mapping);
    let d1 = opportunity(&store, "D1");
    assert_eq!(d1.attrs.get("discount"), Some(&AttrValue::Number(1234.5)));
    assert_eq!(
        opportunity(&store, "D2").attrs.get("discount"),
        Some(&AttrValue::Number(12.5))
    );
    // "1.5" is no number under a decimal comma: the column stays text, not 1.5 or 15.
    assert_eq!(
        d1.attrs.get("version"),
        Some(&AttrValue::Text("1.5".into()))
    );
    let columns = &store.loads().unwrap()[0].columns;
    let type_of = |name: &str| {
        columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value_type)
            .unwrap()
    };
    assert_eq!(type_of("discount"), winsignal_core::ValueType::Number);
    assert_eq!(type_of("version"), winsignal_core::ValueType::Text);
}

#[test]
fn an_unknown_decimal_separator_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "bad.toml",
        &format!("decimal = \";\"\n{DEALS_MAPPING}"),
    );
    let err = LoadedMapping::from_file(&mapping)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("line 1") && err.contains("decimal"), "{err}");
}

// ---------------------------------------------------------------------------------------------------
// Files that belong together

const CLOSED_MAPPING: &str = r#"
source = "crm:closed_deals"
[[output]]
kind = "opportunities"
update = true
[output.fields]
opportunity_id = "lead_id"
closed_at = "closed_on"
outcome = { column = "result", values = { Won = "won", Lost = "lost" } }
"#;

fn deals_then_closed(dir: &Path) -> (EmbeddedStore, PathBuf, PathBuf) {
    let deals = write(
        dir,
        "deals.csv",
        "lead_id,created,amount\nL1,2025-01-01,100\nL2,2025-02-01,200\nL3,2025-03-01,300\n",
    );
    let deals_map = write(dir, "deals.toml", DEALS_MAPPING);
    let closed = write(
        dir,
        "closed_deals.csv",
        "lead_id,closed_on,result,reason\nL1,2025-04-01,Won,price\nL9,2025-04-02,Lost,timing\nL2,2025-05-01,Lost,\n",
    );
    let closed_map = write(dir, "closed.toml", CLOSED_MAPPING);
    let mut store = EmbeddedStore::open(&dir.join("ws")).unwrap();
    load(&mut store, &deals, &deals_map);
    (store, closed, closed_map)
}

#[test]
fn an_update_output_merges_a_second_file_into_the_records_held() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, closed, closed_map) = deals_then_closed(dir.path());
    let report = load(&mut store, &closed, &closed_map);
    let s = &report.loads[0].stats;
    assert_eq!((s.rows_read, s.updated, s.quarantined), (3, 2, 1), "{s:?}");

    let l1 = opportunity(&store, "L1");
    assert_eq!(l1.amount, Some(100.0), "fields of the first file are kept");
    assert_eq!(l1.created_at, Ts::parse("2025-01-01").unwrap());
    assert_eq!(l1.outcome, Outcome::Won);
    assert_eq!(l1.closed_at, Some(Ts::parse("2025-04-01").unwrap()));
    assert_eq!(
        l1.attrs.get("reason").map(|v| format!("{v:?}")),
        Some("Text(\"price\")".into()),
        "unmapped columns of the update become attributes: {:?}",
        l1.attrs
    );
    let l3 = opportunity(&store, "L3");
    assert_eq!(
        l3.outcome,
        Outcome::Open,
        "a record not in the update stays"
    );

    // An update is a new version whose origin is the second file.
    let versions = store.versions(Kind::Opportunities, "L1").unwrap();
    assert_eq!(versions.len(), 2);
    let loads = store.loads().unwrap();
    let file_of = |v: &StoredRecord| {
        loads
            .iter()
            .find(|l| l.load_id == v.origin.load_id)
            .unwrap()
            .path
            .clone()
    };
    assert!(file_of(&versions[0]).ends_with("deals.csv"));
    assert!(file_of(&versions[1]).ends_with("closed_deals.csv"));
    assert_eq!(versions[1].origin.line, 2);

    // Per field: which version (and so which file) set its current value.
    let origins = winsignal_ingest::provenance::fields_set(&versions);
    assert!(origins[0].contains(&"amount".to_string()), "{origins:?}");
    assert!(!origins[1].contains(&"amount".to_string()), "{origins:?}");
    assert!(origins[1].contains(&"closed_at".to_string()), "{origins:?}");
    assert!(origins[1].contains(&"outcome".to_string()), "{origins:?}");
    assert!(
        origins[1].contains(&"attrs.reason".to_string()),
        "{origins:?}"
    );

    // A key with no record held is quarantined, saying why.
    let reasons = quarantine_reasons(&store);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert_eq!(reasons[0].0, 3);
    assert!(
        reasons[0].1.contains("L9") && reasons[0].1.contains("update"),
        "{reasons:?}"
    );
}

#[test]
fn reloading_an_update_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, closed, closed_map) = deals_then_closed(dir.path());
    load(&mut store, &closed, &closed_map);
    // The same rows again, in a copy that is not byte-identical: every row is compared, none changes.
    let copy = write(
        dir.path(),
        "closed_copy.csv",
        "lead_id,closed_on,result,reason\r\nL1,2025-04-01,Won,price\r\nL9,2025-04-02,Lost,timing\r\nL2,2025-05-01,Lost,\r\n",
    );
    let again = load(&mut store, &copy, &closed_map);
    let s = &again.loads[0].stats;
    assert_eq!(
        (s.new, s.updated, s.unchanged, s.quarantined),
        (0, 0, 2, 1),
        "{s:?}"
    );
    assert_eq!(store.versions(Kind::Opportunities, "L1").unwrap().len(), 2);
}

#[test]
fn reloading_the_file_that_made_the_records_keeps_what_the_update_set() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, closed, closed_map) = deals_then_closed(dir.path());
    load(&mut store, &closed, &closed_map);
    let deals_map = dir.path().join("deals.toml");
    // The same deals file again: every row equals the record held with the update on top.
    let deals = dir.path().join("deals.csv");
    let again = load(&mut store, &deals, &deals_map);
    let s = &again.loads[0].stats;
    assert_eq!((s.updated, s.unchanged), (0, 3), "{s:?}");
    let l1 = opportunity(&store, "L1");
    assert_eq!(
        (l1.outcome, l1.amount),
        (Outcome::Won, Some(100.0)),
        "{l1:?}"
    );
    assert_eq!(l1.closed_at, Some(Ts::parse("2025-04-01").unwrap()));
    assert_eq!(store.versions(Kind::Opportunities, "L1").unwrap().len(), 2);

    // A changed deals file: its own fields change, the update's stay.
    let changed = write(
        dir.path(),
        "deals_v2.csv",
        "lead_id,created,amount\nL1,2025-01-01,150\nL2,2025-02-01,200\nL3,2025-03-01,300\n",
    );
    let s = load(&mut store, &changed, &deals_map).loads[0]
        .stats
        .clone();
    assert_eq!((s.updated, s.unchanged), (1, 2), "{s:?}");
    let l1 = opportunity(&store, "L1");
    assert_eq!(
        (l1.outcome, l1.amount),
        (Outcome::Won, Some(150.0)),
        "{l1:?}"
    );
    assert_eq!(
        l1.attrs.len(),
        1,
        "the update's attribute stays: {:?}",
        l1.attrs
    );
    let versions = store.versions(Kind::Opportunities, "L1").unwrap();
    assert_eq!(versions.len(), 3);
    let set = winsignal_ingest::provenance::fields_set(&versions);
    assert_eq!(set[2], vec!["amount".to_string()]);

    // The update file again changes nothing; a changed one changes its fields.
    let s = load(&mut store, &closed, &closed_map).loads[0]
        .stats
        .clone();
    assert_eq!((s.updated, s.unchanged), (0, 2), "{s:?}");
    let lost = write(
        dir.path(),
        "closed_v2.csv",
        "lead_id,closed_on,result,reason\nL1,2025-04-03,Lost,price\n",
    );
    load(&mut store, &lost, &closed_map);
    let l1 = opportunity(&store, "L1");
    assert_eq!(
        (l1.outcome, l1.amount, l1.closed_at),
        (
            Outcome::Lost,
            Some(150.0),
            Some(Ts::parse("2025-04-03").unwrap())
        )
    );
}

#[test]
fn an_exact_repeat_of_a_row_stays_unchanged_after_an_update_set_its_fields() {
    // The deals file with L1's line twice: before the update both copies are the same record; once the
    // closed-deals file has set L1's outcome, the second copy must still read as a repeat, not as
    // "duplicate id with other values" (the store holds L1 with the update on top).
    let dir = tempfile::tempdir().unwrap();
    let (mut store, closed, closed_map) = deals_then_closed(dir.path());
    load(&mut store, &closed, &closed_map);
    let twice = write(
        dir.path(),
        "deals.csv",
        "lead_id,created,amount\nL1,2025-01-01,100\nL2,2025-02-01,200\nL3,2025-03-01,300\nL1,2025-01-01,100\n",
    );
    let again = load(&mut store, &twice, &dir.path().join("deals.toml"));
    let s = &again.loads[0].stats;
    assert_eq!((s.updated, s.unchanged, s.quarantined), (0, 4, 0), "{s:?}");
}

#[test]
fn an_empty_cell_in_an_update_keeps_the_value_held_and_a_second_row_of_an_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, closed, closed_map) = deals_then_closed(dir.path());
    load(&mut store, &closed, &closed_map);
    let later = write(
        dir.path(),
        "closed_later.csv",
        "lead_id,closed_on,result,reason\nL1,,Lost,\nL1,2025-06-01,Won,again\n",
    );
    let report = load(&mut store, &later, &closed_map);
    let s = &report.loads[0].stats;
    assert_eq!((s.updated, s.quarantined), (1, 1), "{s:?}");
    let l1 = opportunity(&store, "L1");
    assert_eq!(l1.outcome, Outcome::Lost, "the first row of the id applies");
    assert_eq!(
        l1.closed_at,
        Some(Ts::parse("2025-04-01").unwrap()),
        "an empty cell leaves the field as held"
    );
    assert!(l1.attrs.contains_key("reason"), "{:?}", l1.attrs);
    // One row per id per ingest (as for every load): the second is quarantined, naming the first.
    let reasons = quarantine_reasons(&store);
    assert!(
        reasons
            .iter()
            .any(|(l, r)| *l == 3 && r.contains("duplicate") && r.contains("L1")),
        "{reasons:?}"
    );
}

#[test]
fn an_update_checks_the_merged_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _, closed_map) = deals_then_closed(dir.path());
    let closed = write(
        dir.path(),
        "closed_early.csv",
        "lead_id,closed_on,result,reason\nL2,2025-01-15,Won,\nL3,yesterday,Won,\n",
    );
    let report = load(&mut store, &closed, &closed_map);
    assert_eq!(report.loads[0].stats.quarantined, 1);
    // L2 was created 2025-02-01: closing before it is noted on the merged record.
    let flags = store.flags().unwrap();
    assert!(
        flags
            .iter()
            .any(|f| f.code == "closed_before_created" && f.record_id.as_deref() == Some("L2")),
        "{flags:?}"
    );
    let reasons = quarantine_reasons(&store);
    assert!(
        reasons[0].1.contains("`closed_at`") && reasons[0].1.contains("yesterday"),
        "{reasons:?}"
    );
}

#[test]
fn an_update_output_of_a_kind_without_a_single_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = write(
        dir.path(),
        "bad.toml",
        "[[output]]\nkind = \"stage_history\"\nupdate = true\n[output.fields]\nopportunity_id = \"id\"\nstage = \"s\"\n",
    );
    let err = LoadedMapping::from_file(&mapping)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("update") && err.contains("line 3"), "{err}");
}

// ---------------------------------------------------------------------------------------------------
// Loud failures

fn offsetless_deals(dir: &Path) -> (PathBuf, PathBuf) {
    let mut text = String::from("lead_id,created,closed,status\n");
    for i in 0..10 {
        text.push_str(&format!("W{i},2025-01-01,2025-03-01 10:00:00,Won\n"));
    }
    for i in 0..10 {
        text.push_str(&format!("L{i},2025-01-01,2025-03-01,Lost\n"));
    }
    let csv = write(dir, "deals.csv", &text);
    let mapping = write(
        dir,
        "deals.toml",
        r#"
[[output]]
kind = "opportunities"
[output.fields]
opportunity_id = "lead_id"
created_at = "created"
closed_at = "closed"
outcome = { column = "status", values = { Won = "won", Lost = "lost" } }
"#,
    );
    (csv, mapping)
}

#[test]
fn a_load_that_quarantines_a_large_share_of_a_field_or_outcome_warns() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, mapping) = offsetless_deals(dir.path());
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let report = load(&mut store, &csv, &mapping);
    let warnings = &report.loads[0].warnings;
    let field = warnings
        .iter()
        .find(|w| w.field.as_deref() == Some("closed_at"))
        .unwrap_or_else(|| panic!("{warnings:?}"));
    assert_eq!((field.quarantined, field.of), (10, 20));
    assert!(
        field.message.contains("format") && field.message.contains("timezone"),
        "{}",
        field.message
    );
    let won = warnings
        .iter()
        .find(|w| w.outcome.as_deref() == Some("won"))
        .unwrap_or_else(|| panic!("{warnings:?}"));
    assert_eq!((won.quarantined, won.of), (10, 10));
    assert!(!warnings
        .iter()
        .any(|w| w.outcome.as_deref() == Some("lost")));
}

#[test]
fn strict_refuses_a_load_with_warnings_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, mapping) = offsetless_deals(dir.path());
    let store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let mut req = request(&csv, &mapping);
    req.strict = true;
    let err = ingest(&store, &req, &mut |_| {}).unwrap_err();
    assert!(matches!(err, IngestError::Strict { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("closed_at") && text.contains("nothing"),
        "{text}"
    );
    assert!(store.loads().unwrap().is_empty());
    assert!(store.records(Kind::Opportunities).unwrap().is_empty());
}

#[test]
fn a_declared_timezone_reads_times_without_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, mapping) = offsetless_deals(dir.path());
    let text = std::fs::read_to_string(&mapping).unwrap();
    std::fs::write(&mapping, format!("timezone = \"+02:00\"\n{text}")).unwrap();
    let store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let mut req = request(&csv, &mapping);
    req.strict = true;
    let report = ingest(&store, &req, &mut |_| {}).unwrap();
    assert_eq!(report.loads[0].stats.quarantined, 0);
    assert!(report.loads[0].warnings.is_empty());
    assert_eq!(
        opportunity(&store, "W0").closed_at,
        Some(Ts::parse("2025-03-01T08:00:00Z").unwrap())
    );
    assert_eq!(
        opportunity(&store, "L0").closed_at,
        Some(Ts::parse("2025-03-01T00:00:00Z").unwrap()),
        "a plain date stays midnight UTC, as documented"
    );
}
