//! Every connector passes the same compliance checks (Vector's `assert_source_compliance` idea): rows
//! read = accepted + quarantined, every quarantined row names its file, line and reasons, reloading the
//! same input adds nothing, and a changed input adds only what changed. Fixtures are small hand-made
//! files under tests/fixtures, each with deliberately bad rows whose count is asserted here.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use winsignal_core::{Kind, Record, Ts};
use winsignal_ingest::{ingest, Format, IngestReport, IngestRequest};
use winsignal_store::{EmbeddedStore, StoreRead};

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
    let holdings_before = holdings(&store);
    // Idempotent: the same input again adds nothing, and says which load it repeated.
    let second = run(&mut store, &req);
    for (l, f) in second.loads.iter().zip(&first.loads) {
        assert_eq!(
            (l.stats.new, l.stats.updated),
            (0, 0),
            "{}: reload must add nothing",
            l.source
        );
        assert_eq!(l.identical_to, Some(f.load_id), "{}", l.source);
        assert_eq!(l.identity, f.identity, "{}", l.source);
        assert_eq!(l.stats, f.stats_after_reload(), "{}", l.source);
    }
    assert_eq!(held(&store), before);
    assert_eq!(holdings(&store), holdings_before);
    // Refused rows count once however often the same file is loaded.
    let q = winsignal_ingest::quality::report(&store).unwrap();
    assert_eq!(
        q.quarantine.total,
        first.loads.iter().map(|l| l.stats.quarantined).sum::<u64>()
    );
}

/// What a load's counts become when the same input is loaded again: every accepted row unchanged.
trait AfterReload {
    fn stats_after_reload(&self) -> winsignal_store::LoadStats;
}

impl AfterReload for winsignal_ingest::LoadReport {
    fn stats_after_reload(&self) -> winsignal_store::LoadStats {
        winsignal_store::LoadStats {
            new: 0,
            updated: 0,
            unchanged: self.stats.accepted,
            ..self.stats.clone()
        }
    }
}

/// Every current record and event with its content hash: what the store holds, exactly.
fn holdings(store: &EmbeddedStore) -> Vec<(Kind, String, u64)> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        if kind.is_event() {
            for ev in store.events(&[kind]).unwrap() {
                let ev = ev.unwrap();
                out.push((kind, ev.key, ev.content_hash));
            }
        } else {
            for r in store.records(kind).unwrap() {
                out.push((kind, r.id, r.content_hash));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn canonical_connector_is_compliant() {
    assert_compliant(
        request(fixture("canonical"), None),
        &[
            ("canonical:accounts", 5, 2),
            ("canonical:contacts", 6, 1),
            ("canonical:reps", 3, 0),
            // O4 has the outcome `maybe`; the second O1 repeats an id (the first row is kept).
            ("canonical:opportunities", 6, 2),
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
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let err = ingest(&store, &request(input.path().into(), None), &mut |_| {})
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
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let err = ingest(&store, &request(file, None), &mut |_| {})
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
    // The older export once more: the same identity as load 1, but every row is checked against the
    // store, so A2 goes back to its older values.
    std::fs::write(&path, &original).unwrap();
    let older = run(&mut store, &request(path.clone(), None));
    assert_eq!(older.loads[0].identical_to, Some(2));
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

// Reload identity, for every connector: a load's identity is everything that shapes its result (file
// bytes, connector and version, kind, mapping and config bytes), and a row counts as accepted only when
// the store holds its records; a load with the identity of an earlier one is still checked row by row.

fn opportunity_names(store: &EmbeddedStore) -> Vec<(String, Option<String>)> {
    store
        .records(Kind::Opportunities)
        .unwrap()
        .into_iter()
        .map(|r| {
            let Record::Opportunities(o) = r.record else {
                panic!()
            };
            (o.opportunity_id, o.name)
        })
        .collect()
}

#[test]
fn reload_identity_mapping_a_corrected_mapping_reads_the_same_file_again() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let csv = input.path().join("deals.csv");
    std::fs::write(
        &csv,
        "id,title,opened\nD1,One,05/03/2024\nD2,Two,06/03/2024\nD3,Three,07/03/2024\n",
    )
    .unwrap();
    let toml = input.path().join("deals.toml");
    let mapping = |date_format: &str| {
        format!(
            "source = \"crm:deals\"\ndate_format = \"{date_format}\"\n[[output]]\nkind = \"opportunities\"\n\
             [output.fields]\nopportunity_id = \"id\"\nname = \"title\"\ncreated_at = \"opened\"\n\
             outcome = {{ constant = \"open\" }}\n"
        )
    };
    let mut req = request(csv, None);
    req.mapping = Some(toml.clone());
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    std::fs::write(&toml, mapping("%Y-%m-%d")).unwrap();
    let wrong = run(&mut store, &req);
    assert_eq!(wrong.loads[0].stats.quarantined, 3);
    // The same file with the date format fixed: a different load, and every row is in the store.
    std::fs::write(&toml, mapping("%d/%m/%Y")).unwrap();
    let fixed = run(&mut store, &req);
    let s = &fixed.loads[0].stats;
    assert_eq!((s.accepted, s.new, s.unchanged), (3, 3, 0));
    assert_eq!(fixed.loads[0].identical_to, None);
    assert_ne!(fixed.loads[0].identity, wrong.loads[0].identity);
    assert_eq!(opportunity_names(&store).len(), 3);
    // Its identity is kept with the load, naming what went into it.
    let loads = store.loads().unwrap();
    assert_eq!(loads[1].identity, fixed.loads[0].identity);
    assert_eq!(loads[1].recipe["connector"], "mapping");
    assert_ne!(loads[0].recipe["mapping"], loads[1].recipe["mapping"]);
    assert_eq!(loads[0].recipe["file"], loads[1].recipe["file"]);
    // Only the current load's refusals count: the wrong mapping's three are history now.
    let q = winsignal_ingest::quality::report(&store).unwrap();
    assert_eq!((q.quarantine.total, q.quarantine.in_earlier_loads), (0, 3));
}

#[test]
fn reload_identity_salesforce_a_changed_config_reads_the_same_export_again() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let export = input.path().join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::copy(
        fixture("salesforce/Account.csv"),
        export.join("Account.csv"),
    )
    .unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let segments = |store: &EmbeddedStore| -> Vec<Option<String>> {
        store
            .records(Kind::Accounts)
            .unwrap()
            .into_iter()
            .map(|r| {
                let Record::Accounts(a) = r.record else {
                    panic!()
                };
                a.segment
            })
            .collect()
    };
    run(&mut store, &request(export.clone(), None));
    assert_eq!(segments(&store), [None, None]);
    let mut req = request(export, None);
    req.salesforce_config = Some(fixture("salesforce/config.toml"));
    let configured = run(&mut store, &req);
    let s = &configured.loads[0].stats;
    assert_eq!((s.updated, s.unchanged), (2, 0));
    assert_eq!(configured.loads[0].identical_to, None);
    assert_eq!(
        segments(&store),
        [Some("Enterprise".into()), Some("SMB".into())]
    );
}

#[test]
fn reload_identity_canonical_csv_a_row_refused_as_future_is_read_when_its_time_has_come() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("opportunities.csv");
    std::fs::write(
        &path,
        "opportunity_id,name,created_at,outcome\nO1,Now,2026-10-01,open\nO2,Soon,2026-11-20,open\n",
    )
    .unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let first = run(&mut store, &request(path.clone(), None));
    assert_eq!(first.loads[0].stats.quarantined, 1);
    let mut later = request(path, None);
    later.now = Ts::parse("2026-12-01T00:00:00Z").unwrap();
    let second = run(&mut store, &later);
    let s = &second.loads[0].stats;
    assert_eq!((s.new, s.unchanged, s.quarantined), (1, 1, 0));
    assert_eq!(
        opportunity_names(&store).len(),
        2,
        "O2 must be in the store"
    );
}

#[test]
fn reload_identity_canonical_jsonl_rows_another_source_changed_since_are_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let jsonl = input.path().join("accounts.jsonl");
    std::fs::write(
        &jsonl,
        "{\"account_id\":\"A1\",\"name\":\"Acme\"}\n{\"account_id\":\"A2\",\"name\":\"Beta\"}\n",
    )
    .unwrap();
    let csv = input.path().join("accounts.csv");
    std::fs::write(&csv, "account_id,name\nA1,Acme Inc\n").unwrap();
    let with_source = |path: &Path, source: &str| {
        let mut r = request(path.to_path_buf(), None);
        r.source = Some(source.into());
        r
    };
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    run(&mut store, &with_source(&jsonl, "crm"));
    let erp = run(&mut store, &with_source(&csv, "erp"));
    assert_eq!(erp.loads[0].stats.updated, 1);
    // The CRM file again, byte for byte: A1 is no longer what it says, so it is written again.
    let again = run(&mut store, &with_source(&jsonl, "crm"));
    assert_eq!(again.loads[0].identical_to, Some(1));
    let s = &again.loads[0].stats;
    assert_eq!((s.updated, s.unchanged), (1, 1));
    let names: Vec<Option<String>> = store
        .records(Kind::Accounts)
        .unwrap()
        .into_iter()
        .map(|r| {
            let Record::Accounts(a) = r.record else {
                panic!()
            };
            a.name
        })
        .collect();
    assert_eq!(names, [Some("Acme".into()), Some("Beta".into())]);
}

#[test]
fn reload_identity_segment_an_event_refused_as_future_is_read_when_its_time_has_come() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("events.jsonl");
    std::fs::write(
        &path,
        "{\"type\":\"track\",\"messageId\":\"m1\",\"timestamp\":\"2026-10-01T10:00:00Z\",\"userId\":\"u1\",\"event\":\"Login\"}\n\
         {\"type\":\"track\",\"messageId\":\"m2\",\"timestamp\":\"2026-11-20T10:00:00Z\",\"userId\":\"u1\",\"event\":\"Export\"}\n",
    )
    .unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let first = run(&mut store, &request(path.clone(), Some(Format::Segment)));
    assert_eq!(first.loads[0].stats.quarantined, 1);
    let mut later = request(path, Some(Format::Segment));
    later.now = Ts::parse("2026-12-01T00:00:00Z").unwrap();
    let second = run(&mut store, &later);
    let s = &second.loads[0].stats;
    assert_eq!((s.new, s.unchanged, s.quarantined), (1, 1, 0));
    let held: u64 = store
        .event_counts()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| *k == Kind::ProductEvents)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(held, 2, "m2 must be in the store");
}

// Duplicated ids: the first row with an id wins, later rows with it are quarantined naming the first;
// reloading resolves them the same way, so nothing gains a version and refusals are not counted twice.

#[test]
fn a_duplicated_id_resolves_the_same_way_on_every_reload() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let path = input.path().join("opportunities.csv");
    let file = |o2_name: &str| {
        format!(
            "opportunity_id,name,created_at,outcome\nO1,First,2024-01-01,open\nO2,{o2_name},2024-01-02,open\n\
             O1,Second,2024-01-03,open\nO3,Never changed,2024-01-04,open\n"
        )
    };
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    std::fs::write(&path, file("Two")).unwrap();
    let first = run(&mut store, &request(path.clone(), None));
    let s = &first.loads[0].stats;
    assert_eq!((s.new, s.quarantined), (3, 1));
    let q = store.quarantine(None).unwrap();
    assert_eq!(q[0].line, 4);
    assert!(
        q[0].reasons[0].contains("opportunity O1 was already read from line 2 of this file"),
        "{q:?}"
    );
    // One row changed, twice: exactly that row is updated each time.
    for name in ["Two b", "Two c"] {
        std::fs::write(&path, file(name)).unwrap();
        let r = run(&mut store, &request(path.clone(), None));
        let s = &r.loads[0].stats;
        assert_eq!((s.new, s.updated, s.unchanged, s.quarantined), (0, 1, 2, 1));
    }
    assert_eq!(store.versions(Kind::Opportunities, "O1").unwrap().len(), 1);
    assert_eq!(store.versions(Kind::Opportunities, "O3").unwrap().len(), 1);
    assert_eq!(store.versions(Kind::Opportunities, "O2").unwrap().len(), 3);
    assert_eq!(
        opportunity_names(&store)[0],
        ("O1".to_string(), Some("First".to_string()))
    );
    let q = winsignal_ingest::quality::report(&store).unwrap();
    assert_eq!((q.quarantine.total, q.quarantine.in_earlier_loads), (1, 2));
    // The never-changed deal's notes were written once, by the first load.
    let flags = store.flags().unwrap();
    let o3: Vec<u64> = flags
        .iter()
        .filter(|f| f.record_id.as_deref() == Some("O3"))
        .map(|f| f.load_id)
        .collect();
    assert!(!o3.is_empty() && o3.iter().all(|l| *l == 1), "{flags:?}");
}

#[test]
fn the_same_id_in_two_files_of_one_ingest_is_quarantined_naming_the_first_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    std::fs::write(
        input.path().join("accounts.csv"),
        "account_id,name\nA1,Acme\nA2,Beta\n",
    )
    .unwrap();
    std::fs::write(
        input.path().join("accounts.jsonl"),
        "{\"account_id\":\"A3\",\"name\":\"Gamma\"}\n{\"account_id\":\"A1\",\"name\":\"Acme Ltd\"}\n",
    )
    .unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    for _ in 0..2 {
        let report = run(&mut store, &request(input.path().into(), None));
        let quarantined: Vec<u64> = report.loads.iter().map(|l| l.stats.quarantined).collect();
        assert_eq!(quarantined, [0, 1]);
    }
    let q = store.quarantine(None).unwrap();
    let first_csv = input.path().join("accounts.csv").display().to_string();
    assert_eq!(q[0].line, 2);
    assert!(
        q[0].reasons[0].contains("account A1 was already read from line 2 of")
            && q[0].reasons[0].contains(&first_csv),
        "{q:?}"
    );
    assert_eq!(store.versions(Kind::Accounts, "A1").unwrap().len(), 1);
}

#[test]
fn quality_counts_the_notes_of_what_is_held_now_not_of_every_reload() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let deals = input.path().join("opportunities.csv");
    let touches = input.path().join("marketing_touches.csv");
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    for round in 0..3 {
        // O1 is won without an amount in every version; its name changes on every reload.
        std::fs::write(
            &deals,
            format!(
                "opportunity_id,account_id,rep_id,name,created_at,closed_at,outcome\n\
                 O1,A1,R1,Deal {round},2024-01-01,2024-02-01,won\n"
            ),
        )
        .unwrap();
        // A column marketing touches have no field for, in a file that changes on every reload.
        std::fs::write(
            &touches,
            format!(
                "touch_id,occurred_at,kind,email,campaign,utm_medium\n\
                 T1,2024-01-0{}T10:00:00Z,email_open,a@acme.com,Spring,mail\n",
                round + 1
            ),
        )
        .unwrap();
        run(&mut store, &request(deals.clone(), None));
        run(&mut store, &request(touches.clone(), None));
    }
    // The same touches file once more: the note is not written again, and still counts once.
    run(&mut store, &request(touches, None));
    let q = winsignal_ingest::quality::report(&store).unwrap();
    let count = |code: &str| {
        q.flags
            .iter()
            .find(|c| c.code == code)
            .map_or(0, |c| c.count)
    };
    assert_eq!(count("won_without_amount"), 1, "{:?}", q.flags);
    assert_eq!(count("unused_columns"), 1, "{:?}", q.flags);
    // Every note is still stored, for history.
    let stored = store.flags().unwrap();
    assert_eq!(
        stored
            .iter()
            .filter(|f| f.code == "won_without_amount")
            .count(),
        3
    );
}

#[test]
fn a_mapping_row_naming_an_account_already_read_keeps_its_deal_and_only_a_whole_repeat_is_refused()
{
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    let csv = input.path().join("deals.csv");
    // The account comes first in the mapping and is named on every deal row; line 4 gives the account
    // another industry, line 5 gives deal D1 another date, line 6 repeats line 3 exactly.
    std::fs::write(
        &csv,
        "deal,company,industry,opened\nD1,Acme,Software,2024-01-01\nD2,Acme,Software,2024-01-02\n\
         D3,Acme,Retail,2024-01-03\nD1,Acme,Software,2024-01-05\nD2,Acme,Software,2024-01-02\n",
    )
    .unwrap();
    let toml = input.path().join("deals.toml");
    std::fs::write(
        &toml,
        "source = \"crm:deals\"\n\
         [[output]]\nkind = \"accounts\"\n[output.fields]\naccount_id = \"company\"\nname = \"company\"\nindustry = \"industry\"\n\
         [[output]]\nkind = \"opportunities\"\n[output.fields]\nopportunity_id = \"deal\"\naccount_id = \"company\"\n\
         created_at = \"opened\"\noutcome = { constant = \"open\" }\n",
    )
    .unwrap();
    let mut req = request(csv, None);
    req.mapping = Some(toml);
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    for _ in 0..2 {
        let report = run(&mut store, &req);
        let s = &report.loads[0].stats;
        assert_eq!((s.accepted, s.quarantined), (4, 1), "{s:?}");
    }
    assert_eq!(opportunity_names(&store).len(), 3);
    let accounts = store.versions(Kind::Accounts, "Acme").unwrap();
    assert_eq!(accounts.len(), 1, "the account never gains a version");
    let Record::Accounts(a) = &accounts[0].record else {
        panic!()
    };
    assert_eq!(a.industry.as_deref(), Some("Software"));
    let q = store.quarantine(None).unwrap();
    assert!(
        q[0].line == 5
            && q[0].reasons[0].contains("duplicate row")
            && q[0].reasons[0].contains("line 2 of this file"),
        "{q:?}"
    );
    let flags = store.flags().unwrap();
    assert!(
        flags
            .iter()
            .any(|f| f.code == "duplicate_id" && f.line == 4 && f.message.contains("line 2")),
        "{flags:?}"
    );
}

#[test]
fn a_row_repeated_exactly_is_the_same_record_accepted_as_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let input = tempfile::tempdir().unwrap();
    // A resent Segment message (same messageId, same content) and a repeated CSV line.
    let events = input.path().join("events.jsonl");
    let message = "{\"type\":\"track\",\"messageId\":\"m1\",\"timestamp\":\"2026-10-01T10:00:00Z\",\"userId\":\"u1\",\"event\":\"Login\"}\n";
    std::fs::write(&events, message.repeat(2)).unwrap();
    let accounts = input.path().join("accounts.csv");
    std::fs::write(&accounts, "account_id,name\nA1,Acme\nA1,Acme\n").unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let seg = run(&mut store, &request(events, Some(Format::Segment)));
    let csv = run(&mut store, &request(accounts, None));
    for report in [&seg, &csv] {
        let s = &report.loads[0].stats;
        assert_eq!(
            (s.accepted, s.new, s.unchanged, s.quarantined),
            (2, 1, 1, 0),
            "{s:?}"
        );
    }
    assert_eq!(store.records(Kind::Accounts).unwrap().len(), 1);
    assert_eq!(store.versions(Kind::ProductEvents, "m1").unwrap().len(), 1);
    assert!(store.quarantine(None).unwrap().is_empty());
}
