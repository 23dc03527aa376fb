//! Every connector passes the same compliance checks (Vector's `assert_source_compliance` idea): rows
//! read = accepted + quarantined, every quarantined row names its file, line and reasons, reloading the
//! same input adds nothing, and a changed input adds only what changed. Fixtures are small hand-made
//! files under tests/fixtures, each with deliberately bad rows whose count is asserted here.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use winsignal_core::{Kind, Record, Ts};
use winsignal_ingest::{ingest, Format, IngestReport, IngestRequest};
use winsignal_store::{EmbeddedStore, Store};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn now() -> Ts {
    Ts::parse("2026-11-01T00:00:00Z").unwrap()
}

fn request(path: PathBuf, format: Option<Format>) -> IngestRequest {
    let mut r = IngestRequest::new(path);
    r.format = format;
    r.now = now();
    r
}

fn run(store: &mut EmbeddedStore, req: &IngestRequest) -> IngestReport {
    ingest(store, req, &mut |_| {}).unwrap()
}

/// The compliance property for one request: (per source) expected rows read and quarantined.
fn assert_compliant(req: IngestRequest, expected: &[(&str, u64, u64)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let first = run(&mut store, &req);
    let got: Vec<(String, u64, u64)> = first
        .loads
        .iter()
        .map(|l| (l.source.clone(), l.stats.rows_read, l.stats.quarantined))
        .collect();
    let want: Vec<(String, u64, u64)> = expected
        .iter()
        .map(|(s, r, q)| (s.to_string(), *r, *q))
        .collect();
    assert_eq!(got, want, "rows read and quarantined per source");
    for l in &first.loads {
        let s = &l.stats;
        assert_eq!(
            s.rows_read,
            s.accepted + s.quarantined,
            "{}: read = accepted + quarantined",
            l.source
        );
        assert_eq!(s.accepted, s.new + s.updated + s.unchanged, "{}", l.source);
    }
    let quarantined = store.quarantine(None).unwrap();
    assert_eq!(
        quarantined.len() as u64,
        first.loads.iter().map(|l| l.stats.quarantined).sum::<u64>()
    );
    let loads = store.loads().unwrap();
    for q in &quarantined {
        assert!(q.line >= 1, "{q:?}");
        assert!(
            !q.reasons.is_empty() && q.reasons.iter().all(|r| !r.is_empty()),
            "{q:?}"
        );
        let load = loads.iter().find(|l| l.load_id == q.load_id).unwrap();
        assert!(!load.path.is_empty());
    }
    let held = |store: &EmbeddedStore| -> Vec<(Kind, usize)> {
        let mut v: Vec<(Kind, usize)> = Kind::ALL
            .into_iter()
            .filter(|k| !k.is_event())
            .map(|k| (k, store.records(k).unwrap().len()))
            .collect();
        v.extend(
            store
                .event_counts()
                .unwrap()
                .into_iter()
                .map(|(k, n)| (k, n as usize)),
        );
        v
    };
    let before = held(&store);
    // Idempotent: the same input again adds nothing.
    let second = run(&mut store, &req);
    for l in &second.loads {
        assert_eq!(
            (l.stats.new, l.stats.updated),
            (0, 0),
            "{}: reload must add nothing",
            l.source
        );
    }
    assert_eq!(held(&store), before);
}

#[test]
fn canonical_connector_is_compliant() {
    assert_compliant(
        request(fixture("canonical"), None),
        &[
            ("canonical:accounts", 5, 2),
            ("canonical:contacts", 6, 1),
            ("canonical:reps", 3, 0),
            ("canonical:opportunities", 6, 1),
            ("canonical:stage_history", 6, 1),
            ("canonical:opportunity_contacts", 4, 1),
            ("canonical:activities", 8, 3),
            ("canonical:product_events", 8, 3),
            ("canonical:marketing_touches", 5, 1),
            ("canonical:support_tickets", 4, 1),
            ("canonical:transcripts", 4, 2),
        ],
    );
}

#[test]
fn salesforce_connector_is_compliant() {
    let mut req = request(fixture("salesforce"), None);
    req.salesforce_config = Some(fixture("salesforce/config.toml"));
    assert_compliant(
        req,
        &[
            ("salesforce:Account", 3, 1),
            ("salesforce:Contact", 3, 1),
            ("salesforce:User", 2, 0),
            ("salesforce:Opportunity", 3, 1),
            ("salesforce:OpportunityHistory", 3, 0),
            ("salesforce:OpportunityContactRole", 1, 0),
            ("salesforce:Task", 4, 1),
            ("salesforce:Event", 2, 1),
        ],
    );
}

#[test]
fn segment_connector_is_compliant() {
    assert_compliant(
        request(fixture("segment/events.jsonl"), Some(Format::Segment)),
        &[("segment", 12, 5)],
    );
}

#[test]
fn mapping_connector_is_compliant() {
    let mut req = request(fixture("mapping/pipeline.csv"), None);
    req.mapping = Some(fixture("mapping/pipeline.toml"));
    assert_compliant(req, &[("maven:sales_pipeline", 5, 2)]);
}

fn quarantine_text(store: &EmbeddedStore) -> Vec<(u64, String)> {
    store
        .quarantine(None)
        .unwrap()
        .into_iter()
        .map(|q| (q.line, q.reasons.join(" | ")))
        .collect()
}

#[test]
fn bad_rows_name_line_field_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    run(
        &mut store,
        &request(fixture("canonical/activities.csv"), None),
    );
    let q = quarantine_text(&store);
    assert_eq!(q[0].0, 5);
    assert!(
        q[0].1
            .contains("`duration_s`: expected a number, found \"abc\""),
        "{q:?}"
    );
    assert_eq!(q[1].0, 6);
    assert!(
        q[1].1.contains("`type`") && q[1].1.contains("tweet"),
        "{q:?}"
    );
    assert_eq!(q[2].0, 9);
    assert!(
        q[2].1.contains("missing required field `occurred_at`"),
        "{q:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    run(
        &mut store,
        &request(fixture("canonical/product_events.csv"), None),
    );
    let q = quarantine_text(&store);
    assert!(
        q.iter()
            .any(|(l, r)| *l == 5 && r.contains("`properties`: expected a JSON object")),
        "{q:?}"
    );
    assert!(
        q.iter()
            .any(|(l, r)| *l == 6 && r.contains("not valid UTF-8")),
        "{q:?}"
    );
    assert!(
        q.iter().any(|(l, r)| *l == 9 && r.contains("ragged row")),
        "{q:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    run(
        &mut store,
        &request(fixture("segment/events.jsonl"), Some(Format::Segment)),
    );
    let q = quarantine_text(&store);
    assert!(
        q.iter()
            .any(|(l, r)| *l == 7 && r.contains("needs `event`")),
        "{q:?}"
    );
    assert!(
        q.iter()
            .any(|(l, r)| *l == 8 && r.contains("\"alias\" is not read")),
        "{q:?}"
    );
    assert!(
        q.iter()
            .any(|(l, r)| *l == 9 && r.contains("`timestamp`") && r.contains("future")),
        "{q:?}"
    );
    assert!(
        q.iter()
            .any(|(l, r)| *l == 10 && r.contains("malformed JSON")),
        "{q:?}"
    );
    assert!(
        q.iter()
            .any(|(l, r)| *l == 11 && r.contains("expected a JSON object")),
        "{q:?}"
    );
}

#[test]
fn a_missing_required_column_refuses_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("canonical/accounts.csv"),
        input.path().join("accounts.csv"),
    )
    .unwrap();
    std::fs::write(
        input.path().join("activities.csv"),
        "activity_id,type\nX1,call\n",
    )
    .unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let err = ingest(&mut store, &request(input.path().into(), None), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("activities.csv") && err.contains("`occurred_at`") && err.contains("missing"),
        "{err}"
    );
    assert!(store.loads().unwrap().is_empty());
    assert!(
        store.records(Kind::Accounts).unwrap().is_empty(),
        "accounts of the same batch must not be written"
    );
}

#[test]
fn a_column_named_twice_refuses_the_load_and_names_both_columns() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let file = input.path().join("product_events.csv");
    std::fs::write(
        &file,
        "event_id,occurred_at,event,account_id,event
E1,2026-01-01,Login,A1,Logout
",
    )
    .unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let err = ingest(&mut store, &request(file, None), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("product_events.csv")
            && err.contains("`event` appears twice")
            && err.contains("columns 3 and 5"),
        "{err}"
    );
    assert!(store.loads().unwrap().is_empty());
}

#[test]
fn a_changed_file_adds_only_what_changed_and_keeps_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("accounts.csv");
    let original = std::fs::read_to_string(fixture("canonical/accounts.csv")).unwrap();
    std::fs::write(&path, &original).unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    run(&mut store, &request(path.clone(), None));
    std::fs::write(
        &path,
        original.replace(
            "A2,Beta,beta.io,Retail,SMB,40",
            "A2,Beta,beta.io,Retail,SMB,45",
        ),
    )
    .unwrap();
    let report = run(&mut store, &request(path, None));
    let s = &report.loads[0].stats;
    assert_eq!((s.new, s.updated, s.unchanged, s.quarantined), (0, 1, 2, 2));
    let versions = store.versions(Kind::Accounts, "A2").unwrap();
    assert_eq!(versions.len(), 2);
    let Record::Accounts(a) = &versions[1].record else {
        panic!()
    };
    assert_eq!(a.employees, Some(45.0));
    assert!(versions[1].current && !versions[0].current);
    assert_eq!(
        (versions[0].origin.load_id, versions[1].origin.load_id),
        (1, 2)
    );
    assert_eq!(versions[1].origin.line, 3);
    // Schema drift is tracked per source: same columns, no drift.
    let q = winsignal_ingest::quality::report(&store).unwrap();
    assert!(q.drift.is_empty());
}

#[test]
fn an_older_file_loaded_again_after_a_newer_one_brings_its_versions_back() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("accounts.csv");
    let original = std::fs::read_to_string(fixture("canonical/accounts.csv")).unwrap();
    let newer = original.replace(
        "A2,Beta,beta.io,Retail,SMB,40",
        "A2,Beta,beta.io,Retail,SMB,45",
    );
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let employees = |store: &EmbeddedStore| {
        let current = store.records(Kind::Accounts).unwrap();
        let a2 = current.iter().find(|r| r.id == "A2").unwrap();
        let Record::Accounts(a) = &a2.record else {
            panic!()
        };
        a.employees
    };
    std::fs::write(&path, &original).unwrap();
    run(&mut store, &request(path.clone(), None));
    // The same bytes again: nothing is written.
    let again = run(&mut store, &request(path.clone(), None));
    assert_eq!(again.loads[0].identical_to, Some(1));
    std::fs::write(&path, &newer).unwrap();
    run(&mut store, &request(path.clone(), None));
    assert_eq!(employees(&store), Some(45.0));
    // The older export once more: a later load changed A2 since, so the file is read again.
    std::fs::write(&path, &original).unwrap();
    let older = run(&mut store, &request(path.clone(), None));
    assert_eq!(older.loads[0].identical_to, None);
    let s = &older.loads[0].stats;
    assert_eq!((s.new, s.updated, s.unchanged), (0, 1, 2));
    assert_eq!(employees(&store), Some(40.0));
    assert_eq!(store.versions(Kind::Accounts, "A2").unwrap().len(), 3);
    // And the same older bytes right after: a no-op again, pointing at the load that just read them.
    let repeat = run(&mut store, &request(path, None));
    assert_eq!(repeat.loads[0].identical_to, Some(older.loads[0].load_id));
}

#[test]
fn schema_drift_reports_added_missing_and_retyped_columns() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("reps.csv");
    std::fs::write(&path, "rep_id,name,team,quota\nR1,Rita,West,100\n").unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    run(&mut store, &request(path.clone(), None));
    std::fs::write(&path, "rep_id,name,quota,region\nR1,Rita,high,EU\n").unwrap();
    run(&mut store, &request(path, None));
    let q = winsignal_ingest::quality::report(&store).unwrap();
    assert_eq!(q.drift.len(), 1);
    let d = &q.drift[0];
    assert_eq!(d.source, "canonical:reps");
    assert_eq!(d.added, ["region"]);
    assert_eq!(d.missing, ["team"]);
    assert_eq!(d.retyped.len(), 1);
    assert_eq!(d.retyped[0].column, "quota");
}

#[test]
fn custom_attributes_are_typed_per_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    run(
        &mut store,
        &request(fixture("canonical/accounts.csv"), None),
    );
    let accounts = store.records(Kind::Accounts).unwrap();
    let Record::Accounts(a1) = &accounts[0].record else {
        panic!()
    };
    use winsignal_core::AttrValue;
    assert_eq!(a1.attrs.get("tier"), Some(&AttrValue::Text("gold".into())));
    assert_eq!(a1.attrs.get("is_partner"), Some(&AttrValue::Boolean(true)));
    assert!(matches!(
        a1.attrs.get("renewal_date"),
        Some(AttrValue::Date(_))
    ));
    assert_eq!(a1.domain.as_deref(), Some("acme.com"));
}

#[test]
fn files_no_connector_reads_are_listed_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let mut req = request(fixture("salesforce"), None);
    req.salesforce_config = Some(fixture("salesforce/config.toml"));
    let report = run(&mut store, &req);
    assert!(
        report.skipped_files.iter().any(|f| f.ends_with("Lead.csv")),
        "{:?}",
        report.skipped_files
    );
}
