//! End to end from a standard Salesforce export (no custom fields, Events without any status column)
//! to the default catalog: a meeting with a VP is booked until it ends and held from then on, so
//! `next_step_scheduled` sees it before and `exec_engaged` after.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use winsignal_features::Context;
use winsignal_ingest::{ingest, Format, IngestRequest};
use winsignal_store::EmbeddedStore;

const FILES: &[(&str, &str)] = &[
    (
        "Account.csv",
        "Id,Name,Website,Industry,NumberOfEmployees,IsDeleted,CreatedDate,LastModifiedDate,SystemModstamp\n\
001Ax00000AbCdEIAV,Initech,initech.com,Software,800,false,2023-01-05T10:00:00.000Z,2024-05-31T17:00:00.000Z,2024-05-31T17:00:00.000Z\n",
    ),
    (
        "Contact.csv",
        "Id,AccountId,FirstName,LastName,Email,Title,IsDeleted,CreatedDate\n\
003Ax00000VpOneIAF,001Ax00000AbCdEIAV,Dana,Lee,dana@initech.com,VP Operations,false,2024-03-01T10:00:00.000Z\n\
003Ax00000DirTwIAJ,001Ax00000AbCdEIAV,Sam,Ng,sam@initech.com,Data Analyst,false,2024-03-01T10:00:00.000Z\n",
    ),
    (
        "User.csv",
        "Id,FirstName,LastName,Email,IsActive,CreatedDate\n\
005Ax00000RepOnIAJ,Ana,Ruiz,ana@vendor.com,true,2022-01-01T09:00:00.000Z\n",
    ),
    (
        "Opportunity.csv",
        "Id,AccountId,OwnerId,Name,StageName,Amount,CloseDate,IsClosed,IsWon,CreatedDate,IsDeleted\n\
006Ax00000DealOIAR,001Ax00000AbCdEIAV,005Ax00000RepOnIAJ,Initech - Platform,Proposal,50000,2024-07-30,false,false,2024-04-01T09:00:00.000Z,false\n",
    ),
    (
        "Event.csv",
        "Id,WhoId,WhatId,Subject,IsAllDayEvent,ActivityDateTime,ActivityDate,DurationInMinutes,StartDateTime,EndDateTime,EndDate,AccountId,OwnerId,IsDeleted,IsChild,IsGroupEvent,CreatedDate,LastModifiedDate,SystemModstamp,IsArchived,EventSubtype\n\
00UAx00000Mtg01MAB,003Ax00000VpOneIAF,006Ax00000DealOIAR,Executive briefing,false,2024-05-02T15:00:00.000Z,2024-05-02,60,2024-05-02T15:00:00.000Z,2024-05-02T16:00:00.000Z,2024-05-02,001Ax00000AbCdEIAV,005Ax00000RepOnIAJ,false,false,false,2024-04-20T09:00:00.000Z,2024-04-20T09:00:00.000Z,2024-04-20T09:00:00.000Z,false,Event\n\
00UAx00000Mtg02MAB,003Ax00000DirTwIAJ,006Ax00000DealOIAR,Discovery,false,2024-04-10T15:00:00.000Z,2024-04-10,30,2024-04-10T15:00:00.000Z,2024-04-10T15:30:00.000Z,2024-04-10,001Ax00000AbCdEIAV,005Ax00000RepOnIAJ,false,false,false,2024-04-08T09:00:00.000Z,2024-04-08T09:00:00.000Z,2024-05-31T16:00:00.000Z,false,Event\n",
    ),
];

#[test]
fn a_meeting_from_a_standard_event_export_is_booked_until_it_ends_and_held_after() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    for (name, text) in FILES {
        std::fs::write(export.join(name), text).unwrap();
    }
    let store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let mut req = IngestRequest::new(export);
    req.format = Some(Format::Salesforce);
    req.now = ts("2026-11-01T00:00:00Z");
    let report = ingest(&store, &req, &mut |_| {}).unwrap();
    for l in &report.loads {
        assert_eq!(l.stats.quarantined, 0, "{}: {:?}", l.source, l.stats);
    }
    let ctx = Context::from_store(&store).unwrap();
    let engine = winsignal_features::Engine::replay(ctx, &store, &mut |_| {}).unwrap();
    let deal = "006Ax00000DealOIAR";
    let check = |at: &str| {
        (
            flag(&engine, deal, ts(at), "exec_engaged"),
            flag(&engine, deal, ts(at), "next_step_scheduled"),
        )
    };
    // Booked on 20 April for 2 May: ahead of the landmark, not yet held.
    assert_eq!(check("2024-05-01T00:00:00Z"), (Some(false), Some(true)));
    // During the meeting it has not been held yet.
    assert_eq!(check("2024-05-02T15:30:00Z"), (Some(false), Some(true)));
    // Once it has ended: the VP meeting was held, nothing is booked ahead.
    assert_eq!(check("2024-05-02T16:00:00.001Z"), (Some(true), Some(false)));
    assert_eq!(check("2024-05-20T00:00:00Z"), (Some(true), Some(false)));
}
