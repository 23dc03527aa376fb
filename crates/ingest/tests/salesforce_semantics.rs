//! Salesforce exports read the way Salesforce means them, on files shaped like a real org's (Data
//! Loader "Export All" with the standard fields, no custom fields): Events are meetings that are held
//! once their end has passed, deleted rows are not live records, archived activities are history,
//! field names and 18-character ids are case-insensitive and a long id's checksum is checked.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use winsignal_core::{Activity, ActivityStatus, Kind, Record, Ts};
use winsignal_ingest::{ingest, Format, IngestReport, IngestRequest};
use winsignal_store::{EmbeddedStore, StoreRead};

fn ts(s: &str) -> Ts {
    Ts::parse(s).unwrap()
}

/// Writes `files` into a fresh folder and ingests it as a Salesforce export.
fn load(
    store: &mut EmbeddedStore,
    dir: &Path,
    files: &[(&str, &str)],
    config: Option<&str>,
) -> IngestReport {
    std::fs::create_dir_all(dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut r = IngestRequest::new(dir.to_path_buf());
    r.format = Some(Format::Salesforce);
    if let Some(c) = config {
        let p = dir.with_extension("toml");
        std::fs::write(&p, c).unwrap();
        r.salesforce_config = Some(p);
    }
    r.now = ts("2026-11-01T00:00:00Z");
    ingest(store, &r, &mut |_| {}).unwrap()
}

fn activity(store: &EmbeddedStore, id: &str) -> Activity {
    let versions = store.versions(Kind::Activities, id).unwrap();
    match versions.last().map(|v| &v.record) {
        Some(Record::Activities(a)) => a.clone(),
        other => panic!("no activity {id}: {other:?}"),
    }
}

/// The standard fields of Event as Data Loader's "Export All" writes them (no custom field).
const EVENT_HEADER: &str = "Id,WhoId,WhatId,WhoCount,WhatCount,Subject,Location,IsAllDayEvent,\
ActivityDateTime,ActivityDate,DurationInMinutes,StartDateTime,EndDateTime,EndDate,Description,\
AccountId,OwnerId,Type,IsPrivate,ShowAs,IsDeleted,IsChild,IsGroupEvent,GroupEventType,CreatedDate,\
CreatedById,LastModifiedDate,LastModifiedById,SystemModstamp,IsArchived,IsRecurrence,IsReminderSet,\
EventSubtype";

/// One Event row: (id, who, all-day, activity date-time, activity date, minutes, start, end,
/// end date, deleted, child, created, modified, archived).
#[allow(clippy::too_many_arguments)]
fn event_row(
    id: &str,
    all_day: bool,
    activity_at: &str,
    activity_date: &str,
    minutes: &str,
    start: &str,
    end: &str,
    end_date: &str,
    deleted: bool,
    child: bool,
    created: &str,
    modified: &str,
    archived: bool,
) -> String {
    format!(
        "{id},003Ax00000VpOneIAF,006Ax00000DealOIAR,1,1,Meeting,Zoom,{all_day},{activity_at},\
         {activity_date},{minutes},{start},{end},{end_date},,001Ax00000AbCdEIAV,005Ax00000RepOnIAJ,\
         Meeting,false,Busy,{deleted},{child},false,0,{created},005Ax00000RepOnIAJ,{modified},\
         005Ax00000RepOnIAJ,{modified},{archived},false,false,Event"
    )
}

/// An org's meetings around an export taken at the end of May 2024 (the latest modification in the
/// file is 2024-05-31T17:00Z).
fn events_csv() -> String {
    let rows = [
        // Held: booked on 20 April, 2 May 15:00-16:00.
        event_row(
            "00UAx00000Mtg01MAB",
            false,
            "2024-05-02T15:00:00.000Z",
            "2024-05-02",
            "60",
            "2024-05-02T15:00:00.000Z",
            "2024-05-02T16:00:00.000Z",
            "2024-05-02",
            false,
            false,
            "2024-04-20T09:00:00.000Z",
            "2024-04-20T09:00:00.000Z",
            false,
        ),
        // Booked on 30 May for 10 June: not held when the export was taken.
        event_row(
            "00UAx00000Mtg02MAB",
            false,
            "2024-06-10T15:00:00.000Z",
            "2024-06-10",
            "30",
            "2024-06-10T15:00:00.000Z",
            "2024-06-10T15:30:00.000Z",
            "2024-06-10",
            false,
            false,
            "2024-05-30T11:00:00.000Z",
            "2024-05-31T17:00:00.000Z",
            false,
        ),
        // No end column value: the end is the start plus DurationInMinutes.
        event_row(
            "00UAx00000Mtg03MAB",
            false,
            "2024-05-06T09:00:00.000Z",
            "2024-05-06",
            "45",
            "",
            "",
            "",
            false,
            false,
            "2024-05-01T09:00:00.000Z",
            "2024-05-01T09:00:00.000Z",
            false,
        ),
        // An all-day event on 8 May: held once the day is over.
        event_row(
            "00UAx00000Mtg04MAB",
            true,
            "",
            "2024-05-08",
            "1440",
            "2024-05-08T00:00:00.000Z",
            "2024-05-08T00:00:00.000Z",
            "2024-05-08",
            false,
            false,
            "2024-05-02T09:00:00.000Z",
            "2024-05-02T09:00:00.000Z",
            false,
        ),
        // In the recycle bin.
        event_row(
            "00UAx00000Mtg05MAB",
            false,
            "2024-05-03T15:00:00.000Z",
            "2024-05-03",
            "30",
            "2024-05-03T15:00:00.000Z",
            "2024-05-03T15:30:00.000Z",
            "2024-05-03",
            true,
            false,
            "2024-04-28T09:00:00.000Z",
            "2024-05-01T09:00:00.000Z",
            false,
        ),
        // Archived (Salesforce archives activities older than a year): still a held meeting.
        event_row(
            "00UAx00000Mtg06MAB",
            false,
            "2023-01-10T15:00:00.000Z",
            "2023-01-10",
            "60",
            "2023-01-10T15:00:00.000Z",
            "2023-01-10T16:00:00.000Z",
            "2023-01-10",
            false,
            false,
            "2023-01-02T09:00:00.000Z",
            "2023-01-02T09:00:00.000Z",
            true,
        ),
    ];
    format!("{EVENT_HEADER}\n{}\n", rows.join("\n"))
}

#[test]
fn an_event_is_held_once_its_end_has_passed_and_scheduled_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let events = events_csv();
    let report = load(
        &mut store,
        &dir.path().join("export"),
        &[("Event.csv", &events)],
        None,
    );
    let stats = &report.loads[0].stats;
    assert_eq!((stats.rows_read, stats.accepted), (6, 5), "{stats:?}");

    // Held: completed, known from its end, booked since its creation.
    let held = activity(&store, "00UAx00000Mtg01MAB");
    assert_eq!(held.status, Some(ActivityStatus::Completed));
    assert_eq!(held.occurred_at, ts("2024-05-02T16:00:00Z"));
    assert_eq!(held.created_at, Some(ts("2024-04-20T09:00:00Z")));
    assert_eq!(held.duration_s, Some(3600.0));
    assert_eq!(held.contact_ids, vec!["003Ax00000VpOneIAF".to_string()]);
    assert_eq!(held.opportunity_id.as_deref(), Some("006Ax00000DealOIAR"));

    // Ahead of the export: scheduled, even though the wall clock (2026) is long past it.
    let ahead = activity(&store, "00UAx00000Mtg02MAB");
    assert_eq!(ahead.status, Some(ActivityStatus::Scheduled));
    assert_eq!(ahead.occurred_at, ts("2024-06-10T15:30:00Z"));

    // Start plus duration.
    let timed = activity(&store, "00UAx00000Mtg03MAB");
    assert_eq!(timed.status, Some(ActivityStatus::Completed));
    assert_eq!(timed.occurred_at, ts("2024-05-06T09:45:00Z"));

    // All day: held at the end of its day.
    let all_day = activity(&store, "00UAx00000Mtg04MAB");
    assert_eq!(all_day.status, Some(ActivityStatus::Completed));
    assert_eq!(all_day.occurred_at, ts("2024-05-09T00:00:00Z"));

    // Archived: real history.
    let archived = activity(&store, "00UAx00000Mtg06MAB");
    assert_eq!(archived.status, Some(ActivityStatus::Completed));

    // Deleted: not a live record, quarantined with its line and the field that says so.
    assert!(store
        .versions(Kind::Activities, "00UAx00000Mtg05MAB")
        .unwrap()
        .is_empty());
    let q = store.quarantine(None).unwrap();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0].line, 6);
    assert!(
        q[0].reasons.iter().any(|r| r.contains("IsDeleted")),
        "{:?}",
        q[0].reasons
    );
}

#[test]
fn a_configured_status_column_still_wins_and_the_export_time_can_be_given() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let header = format!("{EVENT_HEADER},Meeting_Status__c");
    let held = event_row(
        "00UAx00000Mtg01MAB",
        false,
        "2024-05-02T15:00:00.000Z",
        "2024-05-02",
        "60",
        "2024-05-02T15:00:00.000Z",
        "2024-05-02T16:00:00.000Z",
        "2024-05-02",
        false,
        false,
        "2024-04-20T09:00:00.000Z",
        "2024-04-20T09:00:00.000Z",
        false,
    );
    let later = event_row(
        "00UAx00000Mtg03MAB",
        false,
        "2024-05-20T09:00:00.000Z",
        "2024-05-20",
        "45",
        "2024-05-20T09:00:00.000Z",
        "2024-05-20T09:45:00.000Z",
        "2024-05-20",
        false,
        false,
        "2024-05-01T09:00:00.000Z",
        "2024-05-01T09:00:00.000Z",
        false,
    );
    let csv = format!("{header}\n{held},canceled\n{later},\n");
    let config = "exported_at = \"2024-05-10T00:00:00Z\"\n\n[fields.Event]\nMeeting_Status__c = \"status\"\n";
    load(
        &mut store,
        &dir.path().join("export"),
        &[("Event.csv", &csv)],
        Some(config),
    );
    assert_eq!(
        activity(&store, "00UAx00000Mtg01MAB").status,
        Some(ActivityStatus::Canceled)
    );
    // No status given: its end (20 May) is after the stated export time (10 May).
    assert_eq!(
        activity(&store, "00UAx00000Mtg03MAB").status,
        Some(ActivityStatus::Scheduled)
    );
}

#[test]
fn an_invitees_copy_and_a_recurring_series_record_are_not_meetings() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let row = |id: &str, child: bool| {
        event_row(
            id,
            false,
            "2024-05-02T15:00:00.000Z",
            "2024-05-02",
            "60",
            "2024-05-02T15:00:00.000Z",
            "2024-05-02T16:00:00.000Z",
            "2024-05-02",
            false,
            child,
            "2024-04-20T09:00:00.000Z",
            "2024-04-20T09:00:00.000Z",
            false,
        )
    };
    // The third row is the series record of a recurring meeting (Salesforce Classic): it holds the
    // pattern, and each occurrence has a row of its own.
    // (The row ends IsArchived, IsRecurrence, IsReminderSet, EventSubtype.)
    let series = row("00UAx00000Mtg03MAB", false)
        .replace(",false,false,false,Event", ",false,true,false,Event");
    let csv = format!(
        "{EVENT_HEADER}\n{}\n{}\n{series}\n",
        row("00UAx00000Mtg01MAB", false),
        row("00UAx00000Mtg02MAB", true)
    );
    let report = load(
        &mut store,
        &dir.path().join("export"),
        &[("Event.csv", &csv)],
        None,
    );
    assert_eq!(report.loads[0].stats.accepted, 1);
    let mut q = store.quarantine(None).unwrap();
    q.sort_by_key(|r| r.line);
    assert_eq!(q.len(), 2);
    assert_eq!((q[0].line, q[1].line), (3, 4));
    assert!(
        q[0].reasons.iter().any(|r| r.contains("IsChild")),
        "{:?}",
        q[0].reasons
    );
    assert!(
        q[1].reasons.iter().any(|r| r.contains("IsRecurrence")),
        "{:?}",
        q[1].reasons
    );
}

#[test]
fn a_task_status_the_org_added_is_read_through_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    // Task's standard fields (Data Loader); "Done" and "Booked" are values this org added to the
    // Status picklist, IsClosed says which of them close a task.
    let csv =
        "Id,WhoId,WhatId,Subject,ActivityDate,Status,Priority,IsHighPriority,OwnerId,Description,\
Type,IsDeleted,AccountId,IsClosed,CreatedDate,LastModifiedDate,SystemModstamp,IsArchived,\
CallDurationInSeconds,CallType,CallDisposition,CallObject,ReminderDateTime,IsReminderSet,\
RecurrenceActivityId,IsRecurrence,TaskSubtype,CompletedDateTime\n\
00TAx00000Tsk01MAB,003Ax00000VpOneIAF,006Ax00000DealOIAR,Call,2024-05-02,Done,Normal,false,\
005Ax00000RepOnIAJ,,Call,false,001Ax00000AbCdEIAV,true,2024-05-02T09:00:00.000Z,\
2024-05-02T10:00:00.000Z,2024-05-02T10:00:00.000Z,false,600,Outbound,,,,false,,false,Call,\
2024-05-02T10:00:00.000Z\n\
00TAx00000Tsk02MAB,003Ax00000VpOneIAF,006Ax00000DealOIAR,Call back,2024-06-12,Booked,Normal,false,\
005Ax00000RepOnIAJ,,Call,false,001Ax00000AbCdEIAV,false,2024-05-02T09:00:00.000Z,\
2024-05-02T10:00:00.000Z,2024-05-02T10:00:00.000Z,false,,,,,,false,,false,Call,\n";
    load(
        &mut store,
        &dir.path().join("export"),
        &[("Task.csv", csv)],
        None,
    );
    assert_eq!(
        activity(&store, "00TAx00000Tsk01MAB").status,
        Some(ActivityStatus::Completed)
    );
    assert_eq!(
        activity(&store, "00TAx00000Tsk02MAB").status,
        Some(ActivityStatus::Scheduled)
    );
    let notes: Vec<String> = store.flags().unwrap().into_iter().map(|f| f.code).collect();
    assert!(!notes.iter().any(|c| c == "unknown_status"), "{notes:?}");
}

#[test]
fn upper_case_data_loader_headers_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let accounts = "ID,NAME,WEBSITE,INDUSTRY,CREATEDDATE,ISDELETED\n\
001Ax00000AbCdEIAV,Initech,https://initech.com,Software,2024-01-02T09:00:00.000Z,false\n";
    let opps = "ID,ACCOUNTID,OWNERID,NAME,STAGENAME,AMOUNT,CREATEDDATE,CLOSEDATE,ISCLOSED,ISWON\n\
006Ax00000DealOIAR,001Ax00000AbCdEIAV,005Ax00000RepOnIAJ,Initech - Platform,Closed Won,12000,\
2024-02-01T09:00:00.000Z,2024-05-20,true,true\n";
    let report = load(
        &mut store,
        &dir.path().join("export"),
        &[("Account.csv", accounts), ("Opportunity.csv", opps)],
        None,
    );
    for l in &report.loads {
        assert_eq!(l.stats.accepted, 1, "{}: {:?}", l.source, l.stats);
    }
    let opp = store.records(Kind::Opportunities).unwrap().pop().unwrap();
    match opp.record {
        Record::Opportunities(o) => {
            assert_eq!(o.account_id.as_deref(), Some("001Ax00000AbCdEIAV"));
            assert_eq!(o.outcome, winsignal_core::Outcome::Won);
            assert_eq!(o.closed_at, Some(ts("2024-05-20")));
            assert_eq!(o.amount, Some(12000.0));
        }
        other => panic!("{other:?}"),
    }
    // The standard column IsDeleted is read, not kept as a custom attribute.
    match &store.records(Kind::Accounts).unwrap()[0].record {
        Record::Accounts(a) => {
            assert_eq!(a.name.as_deref(), Some("Initech"));
            assert!(a.attrs.is_empty(), "{:?}", a.attrs);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_long_id_in_another_case_is_the_same_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let accounts = "Id,Name\n001Ax00000AbCdEIAV,Initech\n";
    load(
        &mut store,
        &dir.path().join("first"),
        &[("Account.csv", accounts)],
        None,
    );
    // A later export that went through a tool that lower-cased every value.
    let accounts = "Id,Name\n001ax00000abcdeiav,Initech Corp\n";
    let contacts =
        "Id,AccountId,LastName,Title\n003ax00000vponeiaf,001ax00000abcdeiav,Lee,VP Sales\n";
    let report = load(
        &mut store,
        &dir.path().join("second"),
        &[("Account.csv", accounts), ("Contact.csv", contacts)],
        None,
    );
    assert_eq!(
        report.loads[0].stats.updated, 1,
        "{:?}",
        report.loads[0].stats
    );
    let accounts = store.records(Kind::Accounts).unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].id, "001Ax00000AbCdEIAV");
    match &store.records(Kind::Contacts).unwrap()[0].record {
        Record::Contacts(c) => {
            assert_eq!(c.contact_id, "003Ax00000VpOneIAF");
            assert_eq!(c.account_id.as_deref(), Some("001Ax00000AbCdEIAV"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_long_id_whose_checksum_is_wrong_is_quarantined_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    // `IAW` instead of `IAV`: the suffix says `b` is a capital and `A` is not.
    let opps = "Id,AccountId,Name,StageName,CreatedDate\n\
006Ax00000DealOIAR,001Ax00000AbCdEIAW,Platform,Prospecting,2024-02-01T09:00:00.000Z\n";
    let report = load(
        &mut store,
        &dir.path().join("export"),
        &[("Opportunity.csv", opps)],
        None,
    );
    assert_eq!(report.loads[0].stats.quarantined, 1);
    let q = store.quarantine(None).unwrap();
    assert_eq!(q[0].line, 2);
    let reason = q[0].reasons.join("; ");
    assert!(
        reason.contains("AccountId") && reason.contains("001Ax00000AbCdEIAW"),
        "{reason}"
    );
    assert!(reason.contains("checksum"), "{reason}");
}

#[test]
fn history_rows_that_only_change_the_amount_are_left_out_and_a_pushed_close_date_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let opps = "Id,AccountId,Name,StageName,CreatedDate,CloseDate,IsClosed,IsWon\n\
006Ax00000DealOIAR,001Ax00000AbCdEIAV,Platform,Closed Won,2024-02-01T09:00:00.000Z,2024-05-20,true,true\n";
    // As a real org writes it: a row for every change of Amount, CloseDate, Probability or stage,
    // in Id order (which need not be time order).
    let history = "Id,OpportunityId,CreatedById,CreatedDate,StageName,Amount,ExpectedRevenue,CloseDate,\
Probability,ForecastCategory,SystemModstamp,IsDeleted,PrevAmount,PrevCloseDate\n\
0080000000Hst01AAB,006Ax00000DealOIAR,005Ax00000RepOnIAJ,2024-02-01T09:00:00.000Z,Prospecting,10000,1000,2024-06-30,10,Pipeline,2024-02-01T09:00:00.000Z,false,,\n\
0080000000Hst02AAB,006Ax00000DealOIAR,005Ax00000RepOnIAJ,2024-02-20T09:00:00.000Z,Prospecting,12000,1200,2024-06-30,10,Pipeline,2024-02-20T09:00:00.000Z,false,10000,\n\
0080000000Hst04AAB,006Ax00000DealOIAR,005Ax00000RepOnIAJ,2024-04-02T09:00:00.000Z,Proposal,12000,7200,2024-05-31,60,Pipeline,2024-04-02T09:00:00.000Z,false,12000,2024-06-30\n\
0080000000Hst03AAB,006Ax00000DealOIAR,005Ax00000RepOnIAJ,2024-03-01T09:00:00.000Z,Proposal,12000,7200,2024-06-30,60,Pipeline,2024-03-01T09:00:00.000Z,false,12000,\n\
0080000000Hst05AAB,006Ax00000DealOIAR,005Ax00000RepOnIAJ,2024-05-20T09:00:00.000Z,Closed Won,12000,12000,2024-05-20,100,Closed,2024-05-20T09:00:00.000Z,false,12000,2024-05-31\n\
0080000000Hst06AAB,006Ax00000DealOIAR,005Ax00000RepOnIAJ,2024-05-10T09:00:00.000Z,Closed Won,12000,12000,2024-05-20,100,Closed,2024-05-10T09:00:00.000Z,true,12000,2024-05-31\n";
    let report = load(
        &mut store,
        &dir.path().join("export"),
        &[
            ("Opportunity.csv", opps),
            ("OpportunityHistory.csv", history),
        ],
        None,
    );
    let h = &report.loads[1].stats;
    // The deleted row (line 7) is not the deal's entry into Closed Won: the later live row is. The
    // row moving the close date within Proposal (line 4) is kept for the CRM's forecast fields.
    assert_eq!((h.rows_read, h.accepted, h.quarantined), (6, 4, 2), "{h:?}");
    let mut entries: Vec<(String, Ts, Option<Ts>, Option<f64>, Option<String>)> = store
        .records(Kind::StageHistory)
        .unwrap()
        .into_iter()
        .map(|r| match r.record {
            Record::StageHistory(s) => (
                s.stage,
                s.entered_at,
                s.crm.expected_close_at,
                s.crm.probability,
                s.crm.forecast_category,
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    entries.sort_by_key(|e| e.1);
    let row = |stage: &str, at: &str, close: &str, p: f64, category: &str| {
        (
            stage.to_string(),
            ts(at),
            Some(ts(close)),
            Some(p),
            Some(category.to_string()),
        )
    };
    assert_eq!(
        entries,
        vec![
            row(
                "Prospecting",
                "2024-02-01T09:00:00Z",
                "2024-06-30",
                10.0,
                "Pipeline"
            ),
            row(
                "Proposal",
                "2024-03-01T09:00:00Z",
                "2024-06-30",
                60.0,
                "Pipeline"
            ),
            row(
                "Proposal",
                "2024-04-02T09:00:00Z",
                "2024-05-31",
                60.0,
                "Pipeline"
            ),
            row(
                "Closed Won",
                "2024-05-20T09:00:00Z",
                "2024-05-20",
                100.0,
                "Closed"
            ),
        ]
    );
    let mut q = store.quarantine(None).unwrap();
    q.sort_by_key(|r| r.line);
    assert_eq!(q.iter().map(|r| r.line).collect::<Vec<_>>(), vec![3, 7]);
    assert!(q[1].reasons[0].contains("IsDeleted"), "{:?}", q[1].reasons);
    assert!(
        q[0].reasons[0].contains("not a change winsignal reads")
            && q[0].reasons[0].contains("line 2"),
        "{:?}",
        q[0].reasons
    );
}

#[test]
fn an_open_deals_close_date_probability_and_forecast_category_are_the_crms_forecast() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    // An org exporting the label (ForecastCategoryName) and one exporting only the API value
    // (ForecastCategory, where `Forecast` is the label `Commit`); a closed deal's CloseDate is its
    // close; values that cannot be read are left out with a note, the deal kept.
    let opps = "Id,StageName,CreatedDate,CloseDate,IsClosed,IsWon,Probability,ForecastCategoryName,ForecastCategory\n\
006Ax00000Deal1IAB,Negotiation,2024-02-01T09:00:00.000Z,2026-12-15,false,false,80,Commit,Forecast\n\
006Ax00000Deal2IAB,Proposal,2024-02-01T09:00:00.000Z,2027-01-31,false,false,60,,BestCase\n\
006Ax00000Deal3IAB,Closed Won,2024-02-01T09:00:00.000Z,2024-05-20,true,true,100,Closed,Closed\n\
006Ax00000Deal4IAB,Proposal,2024-02-01T09:00:00.000Z,31/02/2025,false,false,150,Pipeline,Pipeline\n";
    let report = load(
        &mut store,
        &dir.path().join("export"),
        &[("Opportunity.csv", opps)],
        None,
    );
    let stats = &report.loads[0].stats;
    assert_eq!((stats.accepted, stats.quarantined), (4, 0), "{stats:?}");
    let deal = |id: &str| match store
        .versions(Kind::Opportunities, id)
        .unwrap()
        .pop()
        .unwrap()
        .record
    {
        Record::Opportunities(o) => o,
        other => panic!("{other:?}"),
    };
    let d1 = deal("006Ax00000Deal1IAB");
    assert_eq!(d1.crm.expected_close_at, Some(ts("2026-12-15")));
    assert_eq!(d1.crm.probability, Some(80.0));
    assert_eq!(d1.crm.forecast_category.as_deref(), Some("Commit"));
    assert!(d1.crm.is_commit());
    let d2 = deal("006Ax00000Deal2IAB");
    assert_eq!(d2.crm.forecast_category.as_deref(), Some("BestCase"));
    assert!(!d2.crm.is_commit());
    let d3 = deal("006Ax00000Deal3IAB");
    assert_eq!(
        (d3.closed_at, d3.crm.expected_close_at),
        (Some(ts("2024-05-20")), None)
    );
    let d4 = deal("006Ax00000Deal4IAB");
    assert_eq!((d4.crm.expected_close_at, d4.crm.probability), (None, None));
    assert_eq!(d4.crm.forecast_category.as_deref(), Some("Pipeline"));
    // Nothing of it is a custom attribute a model could learn the outcome from.
    assert!(d3.attrs.is_empty(), "{:?}", d3.attrs);
    let q = winsignal_ingest::quality::report(&store).unwrap();
    let count = |code: &str| {
        q.flags
            .iter()
            .find(|c| c.code == code)
            .map_or(0, |c| c.count)
    };
    assert_eq!(count("unreadable_expected_close_at"), 1, "{:?}", q.flags);
    assert_eq!(count("probability_out_of_range"), 1, "{:?}", q.flags);
}

#[test]
fn a_time_stamp_from_the_future_does_not_date_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let row = |id: &str, created: &str| {
        event_row(
            id,
            false,
            "2024-06-10T15:00:00.000Z",
            "2024-06-10",
            "30",
            "2024-06-10T15:00:00.000Z",
            "2024-06-10T15:30:00.000Z",
            "2024-06-10",
            false,
            false,
            created,
            "2024-05-31T17:00:00.000Z",
            false,
        )
    };
    // The second row's CreatedDate is a typo from the future: refused, and no evidence that the
    // export was taken after 10 June.
    let csv = format!(
        "{EVENT_HEADER}\n{}\n{}\n",
        row("00UAx00000Mtg02MAB", "2024-05-30T11:00:00.000Z"),
        row("00UAx00000Mtg03MAB", "2031-05-30T11:00:00.000Z")
    );
    let report = load(
        &mut store,
        &dir.path().join("export"),
        &[("Event.csv", &csv)],
        None,
    );
    assert_eq!(report.loads[0].stats.quarantined, 1);
    assert_eq!(
        activity(&store, "00UAx00000Mtg02MAB").status,
        Some(ActivityStatus::Scheduled)
    );
}

#[test]
fn logged_emails_get_their_direction_from_email_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    // No standard Task field says which way an e-mail went; Enhanced Email's EmailMessage does.
    let tasks = "Id,WhoId,WhatId,Subject,ActivityDate,Status,IsClosed,OwnerId,Type,TaskSubtype,CreatedDate,CompletedDateTime\n\
00TAx00000Tsk01MAB,003Ax00000VpOneIAF,006Ax00000DealOIAR,Email: Proposal,2024-05-02,Completed,true,005Ax00000RepOnIAJ,Email,Email,2024-05-02T09:00:00.000Z,2024-05-02T09:00:00.000Z\n\
00TAx00000Tsk02MAB,003Ax00000VpOneIAF,006Ax00000DealOIAR,Re: Proposal,2024-05-03,Completed,true,005Ax00000RepOnIAJ,Email,Email,2024-05-03T09:00:00.000Z,2024-05-03T09:00:00.000Z\n\
00TAx00000Tsk03MAB,003Ax00000VpOneIAF,006Ax00000DealOIAR,Newsletter,2024-05-04,Completed,true,005Ax00000RepOnIAJ,Email,ListEmail,2024-05-04T09:00:00.000Z,2024-05-04T09:00:00.000Z\n";
    let emails = "Id,ActivityId,Subject,Incoming,MessageDate,FromAddress,ToAddress,Status,IsDeleted\n\
02sAx00000Eml01AAX,00tax00000tsk01mab,Proposal,false,2024-05-02T09:00:00.000Z,ana@vendor.com,dana@initech.com,3,false\n\
02sAx00000Eml02AAX,00TAx00000Tsk02MAB,Re: Proposal,true,2024-05-03T09:00:00.000Z,dana@initech.com,ana@vendor.com,0,false\n";
    let report = load(
        &mut store,
        &dir.path().join("export"),
        &[("Task.csv", tasks), ("EmailMessage.csv", emails)],
        None,
    );
    // Read with Task.csv, so not listed as a file left unread.
    assert!(
        report.skipped_files.is_empty(),
        "{:?}",
        report.skipped_files
    );
    let direction = |id: &str| activity(&store, id).direction.map(|d| d.as_str());
    assert_eq!(direction("00TAx00000Tsk01MAB"), Some("outbound"));
    assert_eq!(direction("00TAx00000Tsk02MAB"), Some("inbound"));
    assert_eq!(direction("00TAx00000Tsk03MAB"), Some("outbound"));

    // A corrected EmailMessage.csv beside the same Task.csv is a different load, not an identical one.
    let corrected = emails.replace("Re: Proposal,true,", "Re: Proposal,false,");
    load(
        &mut store,
        &dir.path().join("export"),
        &[("EmailMessage.csv", &corrected)],
        None,
    );
    let direction = |id: &str| activity(&store, id).direction.map(|d| d.as_str());
    assert_eq!(direction("00TAx00000Tsk02MAB"), Some("outbound"));
}

#[test]
fn every_contact_of_a_shared_activity_is_linked() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    // Shared Activities: WhoId holds one contact (here the director), EventRelation / TaskRelation
    // every person and record the activity is related to.
    let meeting = event_row(
        "00UAx00000Mtg01MAB",
        false,
        "2024-05-02T15:00:00.000Z",
        "2024-05-02",
        "60",
        "2024-05-02T15:00:00.000Z",
        "2024-05-02T16:00:00.000Z",
        "2024-05-02",
        false,
        false,
        "2024-04-20T09:00:00.000Z",
        "2024-04-20T09:00:00.000Z",
        false,
    )
    .replace("003Ax00000VpOneIAF", "003Ax00000DirTwIAJ");
    let events = format!("{EVENT_HEADER}\n{meeting}\n");
    let relations = "Id,RelationId,EventId,IsInvitee,IsParent,IsWhat,Status,IsDeleted\n\
0REAx00000Rel01OAB,003Ax00000DirTwIAJ,00UAx00000Mtg01MAB,false,true,false,New,false\n\
0REAx00000Rel02OAB,003ax00000vponeiaf,00UAx00000Mtg01MAB,true,true,false,Accepted,false\n\
0REAx00000Rel03OAB,003Ax00000CeoThIAJ,00UAx00000Mtg01MAB,true,false,false,Declined,false\n\
0REAx00000Rel04OAB,005Ax00000RepOnIAJ,00UAx00000Mtg01MAB,true,false,false,Accepted,false\n\
0REAx00000Rel05OAB,006Ax00000DealOIAR,00UAx00000Mtg01MAB,false,false,true,,false\n";
    let tasks = "Id,WhoId,WhatId,Subject,ActivityDate,Status,OwnerId,TaskSubtype,CreatedDate,CompletedDateTime\n\
00TAx00000Tsk01MAB,003Ax00000DirTwIAJ,006Ax00000DealOIAR,Call,2024-05-02,Completed,005Ax00000RepOnIAJ,Call,2024-05-02T09:00:00.000Z,2024-05-02T09:30:00.000Z\n";
    let task_relations = "Id,RelationId,TaskId,IsWhat,IsDeleted\n\
0RTAx00000Rel01OAB,003Ax00000CeoThIAJ,00TAx00000Tsk01MAB,false,false\n\
0RTAx00000Rel02OAB,003Ax00000VpOneIAF,00TAx00000Tsk01MAB,false,true\n";
    let report = load(
        &mut store,
        &dir.path().join("export"),
        &[
            ("Event.csv", &events),
            ("EventRelation.csv", relations),
            ("Task.csv", tasks),
            ("TaskRelation.csv", task_relations),
        ],
        None,
    );
    assert!(
        report.skipped_files.is_empty(),
        "{:?}",
        report.skipped_files
    );
    // The director (WhoId), then the VP; not the CEO who declined, the rep or the deal.
    assert_eq!(
        activity(&store, "00UAx00000Mtg01MAB").contact_ids,
        vec![
            "003Ax00000DirTwIAJ".to_string(),
            "003Ax00000VpOneIAF".into()
        ]
    );
    // The CEO's relation is live, the VP's deleted.
    assert_eq!(
        activity(&store, "00TAx00000Tsk01MAB").contact_ids,
        vec![
            "003Ax00000DirTwIAJ".to_string(),
            "003Ax00000CeoThIAJ".into()
        ]
    );
}

#[test]
fn date_times_as_the_salesforce_api_writes_them_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    // The REST and SOAP APIs (and exports made through them) write offsets without a colon.
    let opps = "Id,Name,StageName,CreatedDate,CloseDate,IsClosed,IsWon\n\
006Ax00000DealOIAR,Platform,Closed Won,2024-02-01T09:00:00.000+0000,2024-05-20,true,true\n";
    let meeting = event_row(
        "00UAx00000Mtg01MAB",
        false,
        "2024-05-02T15:00:00.000+0000",
        "2024-05-02",
        "60",
        "2024-05-02T17:00:00.000+0200",
        "2024-05-02T18:00:00.000+0200",
        "2024-05-02",
        false,
        false,
        "2024-04-20T09:00:00.000+0000",
        "2024-05-31T17:00:00.000+0000",
        false,
    );
    let events = format!("{EVENT_HEADER}\n{meeting}\n");
    let report = load(
        &mut store,
        &dir.path().join("export"),
        &[("Opportunity.csv", opps), ("Event.csv", &events)],
        None,
    );
    for l in &report.loads {
        assert_eq!(l.stats.quarantined, 0, "{}: {:?}", l.source, l.stats);
    }
    let held = activity(&store, "00UAx00000Mtg01MAB");
    assert_eq!(held.occurred_at, ts("2024-05-02T16:00:00Z"));
    assert_eq!(held.created_at, Some(ts("2024-04-20T09:00:00Z")));
    assert_eq!(held.status, Some(ActivityStatus::Completed));
    match &store.records(Kind::Opportunities).unwrap()[0].record {
        Record::Opportunities(o) => assert_eq!(o.created_at, ts("2024-02-01T09:00:00Z")),
        other => panic!("{other:?}"),
    }
}
