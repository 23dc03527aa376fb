//! Identity resolution on small fixtures: by id, 15↔18-character Salesforce ids, e-mail, web domain,
//! Segment group links; free-mail never identifies an account; what stays unmatched is listed.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use winsignal_core::{Kind, Record, Ts};
use winsignal_ingest::resolve::{MatchMethod, Resolver};
use winsignal_ingest::{ingest, Format, IngestRequest};
use winsignal_store::{EmbeddedStore, StoreRead};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn load(store: &mut EmbeddedStore, path: PathBuf, format: Option<Format>, config: Option<PathBuf>) {
    let mut r = IngestRequest::new(path);
    r.format = format;
    r.salesforce_config = config;
    r.now = Ts::parse("2026-11-01T00:00:00Z").unwrap();
    ingest(store, &r, &mut |_| {}).unwrap();
}

fn account_of(
    store: &EmbeddedStore,
    resolver: &Resolver,
    kind: Kind,
    id: &str,
) -> Option<(String, MatchMethod)> {
    let rec = if kind.is_event() {
        store.versions(kind, id).unwrap().pop().unwrap().record
    } else {
        store
            .records(kind)
            .unwrap()
            .into_iter()
            .find(|r| r.id == id)
            .unwrap()
            .record
    };
    resolver.account_of(&rec)
}

#[test]
fn canonical_and_segment_records_reach_their_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    load(&mut store, fixture("canonical"), None, None);
    load(
        &mut store,
        fixture("segment/events.jsonl"),
        Some(Format::Segment),
        None,
    );
    let r = winsignal_ingest::resolve::resolver_from_store(&store).unwrap();
    let a = |s: &str, m: MatchMethod| Some((s.to_string(), m));
    assert_eq!(
        account_of(&store, &r, Kind::Contacts, "C1"),
        a("A1", MatchMethod::AccountId)
    );
    // No account id: the company domain of the e-mail finds it.
    assert_eq!(
        account_of(&store, &r, Kind::Contacts, "C2"),
        a("A2", MatchMethod::Domain)
    );
    // Free-mail never identifies an account.
    assert_eq!(account_of(&store, &r, Kind::Contacts, "C3"), None);
    assert_eq!(
        account_of(&store, &r, Kind::SupportTickets, "K4"),
        a("A4", MatchMethod::Domain)
    );
    assert_eq!(
        account_of(&store, &r, Kind::SupportTickets, "K2").map(|x| x.0),
        Some("A2".into())
    );
    assert_eq!(
        account_of(&store, &r, Kind::MarketingTouches, "T1"),
        a("A1", MatchMethod::Contact)
    );
    assert_eq!(account_of(&store, &r, Kind::MarketingTouches, "T5"), None);
    // Activities reach the account through their opportunity.
    assert_eq!(
        account_of(&store, &r, Kind::Activities, "X2"),
        a("A1", MatchMethod::Opportunity)
    );
    // Segment: the user's identify e-mail belongs to contact C1 at A1.
    assert_eq!(
        account_of(&store, &r, Kind::ProductEvents, "m4"),
        a("A1", MatchMethod::ProductUser)
    );
    // A workspace whose website domain is Beta's.
    assert_eq!(
        account_of(&store, &r, Kind::ProductEvents, "m5"),
        a("A2", MatchMethod::ProductUser)
    );
    // A workspace whose domain matches no account stays unmatched, and is listed.
    assert_eq!(account_of(&store, &r, Kind::ProductEvents, "m6"), None);
    let q = winsignal_ingest::quality::report(&store).unwrap();
    let seg = q
        .identity
        .iter()
        .find(|m| m.source == "segment" && m.kind == Kind::ProductEvents)
        .unwrap();
    assert_eq!((seg.total, seg.matched), (4, 2));
    let unmatched = q
        .unmatched
        .iter()
        .find(|u| u.source == "segment" && u.kind == Kind::ProductEvents)
        .unwrap();
    assert_eq!(unmatched.count, 2);
    assert!(
        unmatched.examples.iter().any(|e| e.starts_with("m6")),
        "{:?}",
        unmatched.examples
    );
    // Orphans are kept and reported.
    assert!(q
        .orphans
        .iter()
        .any(|o| o.kind == Kind::Contacts && o.field == "account_id" && o.count == 1));
    assert!(q
        .orphans
        .iter()
        .any(|o| o.kind == Kind::Activities && o.field == "opportunity_id"));
}

#[test]
fn salesforce_short_and_long_ids_unify() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(dir.path()).unwrap();
    load(
        &mut store,
        fixture("salesforce"),
        None,
        Some(fixture("salesforce/config.toml")),
    );
    let contacts = store.records(Kind::Contacts).unwrap();
    let Record::Contacts(jane) = &contacts[0].record else {
        panic!()
    };
    // Written as the 15-character id in the export, stored in 18-character form.
    assert_eq!(jane.account_id.as_deref(), Some("001Ax0000000001IAA"));
    let r = winsignal_ingest::resolve::resolver_from_store(&store).unwrap();
    assert_eq!(
        r.account("001Ax0000000002"),
        Some("001Ax0000000002IAA".into())
    );
    let opps = store.records(Kind::Opportunities).unwrap();
    let beta = opps.iter().find(|o| o.id == "006Ax0000000002IAA").unwrap();
    let Record::Opportunities(o) = &beta.record else {
        panic!()
    };
    assert_eq!(o.account_id.as_deref(), Some("001Ax0000000002IAA"));
    assert_eq!(o.outcome, winsignal_core::Outcome::Open);
    assert_eq!(
        o.closed_at, None,
        "an open deal's expected CloseDate is not a close"
    );
    let accounts = store.records(Kind::Accounts).unwrap();
    let Record::Accounts(acme) = &accounts[0].record else {
        panic!()
    };
    assert_eq!(
        acme.segment.as_deref(),
        Some("Enterprise"),
        "Segment__c maps onto segment through the config"
    );
    assert!(
        acme.attrs.contains_key("Region__c"),
        "unknown custom fields are kept"
    );
    let email = store
        .versions(Kind::Activities, "00TAx0000000002MAA")
        .unwrap()
        .pop()
        .unwrap();
    let Record::Activities(e) = email.record else {
        panic!()
    };
    assert_eq!(e.direction, Some(winsignal_core::Direction::Inbound));
    assert_eq!(
        e.account_id.as_deref(),
        Some("001Ax0000000002IAA"),
        "WhatId with prefix 001 is the account"
    );
    assert_eq!(e.contact_ids, ["003Ax0000000002IAA"]);
}
