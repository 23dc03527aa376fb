//! End-to-end tests of the demo generator: determinism, file shapes, counts, mess and planted effects.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use winsignal_core::Ts;
use winsignal_demo::{generate, DemoConfig, DemoManifest, Layout};

fn small(seed: u64, layout: Layout, mess: bool) -> (tempfile::TempDir, DemoManifest) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DemoConfig {
        seed,
        scale: 0.02,
        layout,
        mess,
    };
    let manifest = generate(&cfg, dir.path(), &mut |_, _| {}).unwrap();
    (dir, manifest)
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<csv::ByteRecord>) {
    let mut r = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .unwrap();
    let header = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r.byte_records().map(|r| r.unwrap()).collect();
    (header, rows)
}

/// Rows as maps from column name to text, skipping rows that are not valid UTF-8.
fn records(path: &Path) -> Vec<BTreeMap<String, String>> {
    let (header, rows) = read_csv(path);
    rows.iter()
        .filter_map(|r| {
            let fields: Option<Vec<&str>> = r.iter().map(|f| std::str::from_utf8(f).ok()).collect();
            fields.map(|f| {
                header
                    .iter()
                    .cloned()
                    .zip(f.into_iter().map(str::to_string))
                    .collect()
            })
        })
        .collect()
}

#[test]
fn same_seed_gives_identical_files_and_other_seed_differs() {
    let (a, ma) = small(7, Layout::Mixed, true);
    let (b, _) = small(7, Layout::Mixed, true);
    let (c, _) = small(8, Layout::Mixed, true);
    for f in &ma.files {
        let x = std::fs::read(a.path().join(&f.path)).unwrap();
        let y = std::fs::read(b.path().join(&f.path)).unwrap();
        assert!(x == y, "{} differs between runs", f.path.display());
    }
    assert_eq!(
        std::fs::read(a.path().join("manifest.json")).unwrap(),
        std::fs::read(b.path().join("manifest.json")).unwrap()
    );
    let x = std::fs::read(a.path().join("salesforce/Opportunity.csv")).unwrap();
    let z = std::fs::read(c.path().join("salesforce/Opportunity.csv")).unwrap();
    assert_ne!(x, z);
}

#[test]
fn mixed_files_have_documented_headers_and_counts() {
    let (dir, m) = small(42, Layout::Mixed, true);
    let expected: &[(&str, &str)] = &[
        ("salesforce/User.csv", "Id,FirstName,LastName,Email,Department,ManagerId,CreatedDate,IsActive"),
        ("salesforce/Account.csv", "Id,Name,Website,Industry,NumberOfEmployees,AnnualRevenue,BillingCountry,ParentId,CreatedDate,Segment__c,Region__c"),
        ("salesforce/Contact.csv", "Id,AccountId,Email,FirstName,LastName,Title,Department,CreatedDate"),
        ("salesforce/Opportunity.csv", "Id,AccountId,OwnerId,Name,Type,LeadSource,Amount,CurrencyIsoCode,CreatedDate,CloseDate,StageName,IsClosed,IsWon,Competitor__c,Discount__c,Probability,ForecastCategoryName"),
        ("salesforce/OpportunityHistory.csv", "Id,OpportunityId,StageName,CreatedDate,Amount,CloseDate,Probability,ForecastCategory"),
        ("salesforce/OpportunityContactRole.csv", "Id,OpportunityId,ContactId,Role,IsPrimary,CreatedDate"),
        ("salesforce/Task.csv", "Id,WhoId,WhatId,AccountId,OwnerId,Subject,Status,ActivityDate,TaskSubtype,Type,CallType,CallDurationInSeconds,CreatedDate,CompletedDateTime,Direction__c"),
        ("salesforce/Event.csv", "Id,WhoId,WhatId,AccountId,OwnerId,Subject,StartDateTime,EndDateTime,DurationInMinutes,ActivityDateTime,CreatedDate,Status__c"),
        ("segment/events.jsonl", ""),
        ("canonical/marketing_touches.csv", "touch_id,occurred_at,kind,contact_id,email,account_id,channel,campaign,url"),
        ("canonical/support_tickets.csv", "ticket_id,created_at,priority,status,account_id,contact_id,requester_email,first_response_at,solved_at,csat,subject"),
        ("canonical/transcripts.jsonl", ""),
    ];
    let listed: Vec<String> = m
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    let wanted: Vec<String> = expected.iter().map(|e| e.0.to_string()).collect();
    assert_eq!(listed, wanted);
    for (f, (_, header)) in m.files.iter().zip(expected) {
        let bytes = std::fs::read(dir.path().join(&f.path)).unwrap();
        let lines = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count() as u64;
        if header.is_empty() {
            assert_eq!(lines, f.rows, "{}", f.path.display());
        } else {
            let first = bytes.split(|&b| b == b'\n').next().unwrap();
            assert_eq!(String::from_utf8_lossy(first), *header);
            assert_eq!(lines - 1, f.rows, "{}", f.path.display());
        }
        assert!(f.injected_bad_rows < f.rows.max(1), "{}", f.path.display());
    }
    let bad: u64 = m.files.iter().map(|f| f.injected_bad_rows).sum();
    assert!((40..=60).contains(&bad), "{bad} bad rows at scale 0.02");
    assert_eq!(m.counts["accounts"], 50);
    assert_eq!(m.counts["reps"], 4);
    assert_eq!(m.counts["opportunities"], 160);
    assert!(m.counts["transcripts"] >= 30);
    assert!(m.counts["activities"] > 5_000);
    assert!(m.counts["product_events"] > 30_000);
}

#[test]
fn without_mess_nothing_is_bad_and_json_lines_parse() {
    let (dir, m) = small(42, Layout::Mixed, false);
    assert_eq!(m.files.iter().map(|f| f.injected_bad_rows).sum::<u64>(), 0);
    for rel in ["segment/events.jsonl", "canonical/transcripts.jsonl"] {
        let text = std::fs::read_to_string(dir.path().join(rel)).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.is_object());
        }
    }
    let text = std::fs::read_to_string(dir.path().join("segment/events.jsonl")).unwrap();
    let types: BTreeSet<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["group", "identify", "page", "track"]
    );
}

#[test]
fn strongest_and_weakest_reps_are_users_and_ids_are_salesforce_shaped() {
    let (dir, m) = small(42, Layout::Mixed, true);
    let users = records(&dir.path().join("salesforce/User.csv"));
    let ids: BTreeSet<&str> = users.iter().map(|u| u["Id"].as_str()).collect();
    assert!(ids.contains(m.strongest_rep.as_str()));
    assert!(ids.contains(m.weakest_rep.as_str()));
    assert_ne!(m.strongest_rep, m.weakest_rep);
    for id in ids {
        assert_eq!(id.len(), 18);
        assert_eq!(winsignal_core::sfdc::to_18(&id[..15]), id);
        assert!(id.starts_with("005"));
    }
}

#[test]
fn nothing_good_is_after_data_end() {
    let (dir, m) = small(42, Layout::Mixed, true);
    let end = m.data_end;
    let parse = |s: &str| Ts::parse(s).ok();
    for t in records(&dir.path().join("salesforce/Task.csv")) {
        if let (Some(c), Some(a)) = (parse(&t["CreatedDate"]), parse(&t["ActivityDate"])) {
            assert!(c <= end && a <= end, "{t:?}");
        }
    }
    for e in records(&dir.path().join("salesforce/Event.csv")) {
        if let Some(s) = e.get("StartDateTime").and_then(|s| parse(s)) {
            if s.0 < Ts::from_ymd(2030, 1, 1).unwrap().0 {
                assert!(s <= end.plus_days(30.0), "{e:?}");
                if s > end {
                    assert_eq!(e["Status__c"], "Scheduled");
                }
            }
        }
    }
}

/// At scale 0.02 (160 deals) the strongest planted effect is visible in the raw files: deals with a
/// completed meeting or call with an executive in their first 30 days win more often.
#[test]
fn exec_engaged_deals_win_more_often() {
    let (dir, _) = small(42, Layout::Mixed, false);
    let p = dir.path().join("salesforce");
    let key = |s: &str| s.get(..15).unwrap_or(s).to_string();
    let execs: BTreeSet<String> = records(&p.join("Contact.csv"))
        .into_iter()
        .filter(|c| {
            ["VP", "Vice President", "Chief", "CEO", "CTO", "Head of"]
                .iter()
                .any(|t| c["Title"].contains(t))
        })
        .map(|c| key(&c["Id"]))
        .collect();
    let opps: BTreeMap<String, (Ts, bool, bool)> = records(&p.join("Opportunity.csv"))
        .into_iter()
        .map(|o| {
            (
                key(&o["Id"]),
                (
                    Ts::parse(&o["CreatedDate"]).unwrap(),
                    o["IsClosed"] == "true",
                    o["IsWon"] == "true",
                ),
            )
        })
        .collect();
    let mut engaged = BTreeSet::new();
    let mut mark = |what: &str, who: &str, at: &str| {
        if let (Some(o), Ok(at)) = (opps.get(&key(what)), Ts::parse(at)) {
            if execs.contains(&key(who)) && at <= o.0.plus_days(30.0) {
                engaged.insert(key(what));
            }
        }
    };
    for e in records(&p.join("Event.csv")) {
        if e["Status__c"] == "Completed" {
            mark(&e["WhatId"], &e["WhoId"], &e["StartDateTime"]);
        }
    }
    for t in records(&p.join("Task.csv")) {
        if t["TaskSubtype"] == "Call" && t["Status"] == "Completed" {
            mark(&t["WhatId"], &t["WhoId"], &t["CompletedDateTime"]);
        }
    }
    let (mut n, mut won) = ([0.0f64; 2], [0.0f64; 2]);
    for (id, (_, closed, is_won)) in &opps {
        if *closed {
            let g = usize::from(engaged.contains(id));
            n[g] += 1.0;
            won[g] += f64::from(u8::from(*is_won));
        }
    }
    assert!(n[0] >= 20.0 && n[1] >= 20.0, "{n:?}");
    assert!(
        won[1] / n[1] > won[0] / n[0],
        "with {}/{} without {}/{}",
        won[1],
        n[1],
        won[0],
        n[0]
    );
}

#[test]
fn canonical_layout_writes_every_kind() {
    let (dir, m) = small(42, Layout::Canonical, true);
    let kinds: Vec<&str> = m.files.iter().filter_map(|f| f.kind.as_deref()).collect();
    assert_eq!(
        kinds,
        [
            "reps",
            "accounts",
            "contacts",
            "opportunities",
            "stage_history",
            "opportunity_contacts",
            "activities",
            "product_events",
            "marketing_touches",
            "support_tickets",
            "transcripts"
        ]
    );
    assert!(m
        .files
        .iter()
        .all(|f| f.format == "canonical" && f.path.starts_with("canonical")));
    let (header, rows) = read_csv(&dir.path().join("canonical/activities.csv"));
    assert_eq!(
        header.join(","),
        "activity_id,type,direction,status,rep_id,account_id,opportunity_id,contact_ids,occurred_at,created_at,duration_s,subject"
    );
    let f = m
        .files
        .iter()
        .find(|f| f.kind.as_deref() == Some("activities"))
        .unwrap();
    assert_eq!(rows.len() as u64, f.rows);
    let (header, _) = read_csv(&dir.path().join("canonical/product_events.csv"));
    assert_eq!(
        header.join(","),
        "event_id,occurred_at,event,user_id,user_email,account_id,account_domain,properties"
    );
    let bad: u64 = m.files.iter().map(|f| f.injected_bad_rows).sum();
    assert!((30..=80).contains(&bad), "{bad}");
}

#[test]
fn rejects_a_nonsense_scale() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DemoConfig {
        scale: f64::NAN,
        ..DemoConfig::default()
    };
    assert!(generate(&cfg, dir.path(), &mut |_, _| {}).is_err());
}

/// Run with `cargo test -p winsignal-demo --release -- --ignored --nocapture`.
#[test]
#[ignore]
fn full_scale_generation_time() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let m = generate(&DemoConfig::default(), dir.path(), &mut |_, _| {}).unwrap();
    let secs = started.elapsed().as_secs_f64();
    let bad: u64 = m.files.iter().map(|f| f.injected_bad_rows).sum();
    println!(
        "scale 1.0 generated in {secs:.2} s; counts {:?}; bad rows {bad}",
        m.counts
    );
    assert!(secs < 30.0);
}
