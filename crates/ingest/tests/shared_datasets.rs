//! The two public datasets in ../shared/datasets ingest through the mappings shipped in
//! examples/mappings/, with counts that match the files (see each dataset's PROVENANCE.md).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use winsignal_core::{AttrValue, Kind, Outcome, Record};
use winsignal_ingest::{ingest, IngestRequest};
use winsignal_store::{EmbeddedStore, StoreRead};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dataset(rel: &str) -> PathBuf {
    let p = repo().join("../shared/datasets").join(rel);
    assert!(
        p.exists(),
        "{} is missing: the tests read the shared datasets beside the repository",
        p.display()
    );
    p
}

fn load(store: &mut EmbeddedStore, file: PathBuf, mapping: &str) -> winsignal_ingest::IngestReport {
    let mut req = IngestRequest::new(file);
    req.mapping = Some(repo().join("examples/mappings").join(mapping));
    ingest(store, &req, &mut |_| {}).unwrap()
}

#[test]
fn maven_crm_pipeline_ingests_completely() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let raw = "maven-crm-sales-opportunities/raw";
    let a = load(
        &mut store,
        dataset(&format!("{raw}/accounts.csv")),
        "maven/accounts.toml",
    );
    let t = load(
        &mut store,
        dataset(&format!("{raw}/sales_teams.csv")),
        "maven/sales_teams.toml",
    );
    let p = load(
        &mut store,
        dataset(&format!("{raw}/sales_pipeline.csv")),
        "maven/sales_pipeline.toml",
    );
    assert_eq!(
        (a.loads[0].stats.rows_read, a.loads[0].stats.quarantined),
        (85, 0)
    );
    assert_eq!(
        (t.loads[0].stats.rows_read, t.loads[0].stats.quarantined),
        (35, 0)
    );
    assert_eq!(
        (p.loads[0].stats.rows_read, p.loads[0].stats.accepted),
        (8_800, 8_800)
    );
    let opps = store.records(Kind::Opportunities).unwrap();
    assert_eq!(opps.len(), 8_800);
    let count = |o: Outcome| {
        opps.iter()
            .filter(|r| matches!(&r.record, Record::Opportunities(x) if x.outcome == o))
            .count()
    };
    assert_eq!(
        (
            count(Outcome::Won),
            count(Outcome::Lost),
            count(Outcome::Open)
        ),
        (4_238, 2_473, 2_089)
    );
    // Engaging at engage_date for every deal that has one, plus the closing stage for closed deals.
    assert_eq!(
        store.records(Kind::StageHistory).unwrap().len(),
        8_300 + 6_711
    );
    let Record::Opportunities(first) = &opps.iter().find(|r| r.id == "1C1I7A6R").unwrap().record
    else {
        panic!()
    };
    assert_eq!(first.rep_id.as_deref(), Some("moses-frase"));
    assert_eq!(first.account_id.as_deref(), Some("cancity"));
    assert_eq!(
        first.attrs.get("product"),
        Some(&AttrValue::Text("GTX Plus Basic".into()))
    );
    // Every named account in the pipeline resolves to a row of accounts.csv.
    let q = winsignal_ingest::quality::report(&store).unwrap();
    let opp_rate = q
        .identity
        .iter()
        .find(|m| m.kind == Kind::Opportunities)
        .unwrap();
    assert_eq!((opp_rate.total, opp_rate.matched), (8_800, 8_800 - 1_425));
    assert!(
        !q.orphans
            .iter()
            .any(|o| o.kind == Kind::Opportunities && o.field == "account_id"),
        "{:?}",
        q.orphans
    );
}

#[test]
fn bank_marketing_ingests_every_row_as_an_opportunity() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    let r = load(
        &mut store,
        dataset("uci-bank-marketing/raw/bank/bank-full.csv"),
        "bank-marketing/bank-full.toml",
    );
    let s = &r.loads[0].stats;
    assert_eq!(
        (s.rows_read, s.accepted, s.quarantined),
        (45_211, 45_211, 0)
    );
    let opps = store.records(Kind::Opportunities).unwrap();
    assert_eq!(opps.len(), 45_211);
    let won = opps
        .iter()
        .filter(|r| matches!(&r.record, Record::Opportunities(x) if x.outcome == Outcome::Won))
        .count();
    assert_eq!(won, 5_289);
    let Record::Opportunities(o) = &opps.iter().find(|r| r.id == "bank-2").unwrap().record else {
        panic!()
    };
    assert_eq!(o.attrs.get("age"), Some(&AttrValue::Number(58.0)));
    assert_eq!(o.attrs.get("duration"), Some(&AttrValue::Number(261.0)));
    assert_eq!(
        o.attrs.get("poutcome"),
        Some(&AttrValue::Text("unknown".into()))
    );
}
