//! A command reads one consistent state of the store, and what it saves for later (the engine
//! checkpoint) is the state it was built from: an ingest that commits while a feature pass is running
//! changes neither that pass's answer nor any later one's.
//!
//! The ingest is placed exactly between the pass's first read (the entities) and the rest with a
//! fault-injection point and two barriers — no sleeps. Found by fault testing (issue 15): before, the
//! pass mixed the two states and saved the engine state built from them under the new data's key, so
//! every later `discover`, `train`, `score` and `report` reused it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Barrier};

use winsignal_core::{
    Account, Activity, ActivityStatus, ActivityType, Direction, Kind, Opportunity, Outcome, Record,
    StageEntry, Ts,
};
use winsignal_store::{EmbeddedStore, LoadSpec, LoadStats, Store};
use winsignal_workspace::{compute, fault, Silent};

const DAY: i64 = 86_400_000;

fn t0() -> Ts {
    Ts::parse("2025-01-01T00:00:00Z").unwrap()
}

fn account(i: usize) -> Record {
    Record::Accounts(Account {
        account_id: format!("A{i}"),
        name: Some(format!("Account {i}")),
        segment: Some(
            if i.is_multiple_of(2) {
                "SMB"
            } else {
                "Enterprise"
            }
            .into(),
        ),
        ..Account::default()
    })
}

fn opportunity(i: usize, outcome: Outcome) -> Record {
    opportunity_of(i, i % 10, outcome)
}

fn opportunity_of(i: usize, account: usize, outcome: Outcome) -> Record {
    let created = t0().plus_millis(i as i64 * DAY);
    Record::Opportunities(Opportunity {
        opportunity_id: format!("O{i}"),
        account_id: Some(format!("A{account}")),
        rep_id: Some(format!("R{}", i % 3)),
        name: None,
        opp_type: Some(
            if i.is_multiple_of(2) {
                "New"
            } else {
                "Renewal"
            }
            .into(),
        ),
        lead_source: None,
        amount: Some(1_000.0 * (1 + i % 7) as f64),
        currency: None,
        created_at: created,
        closed_at: (outcome != Outcome::Open).then(|| created.plus_millis(60 * DAY)),
        outcome,
        stage: Some("Discovery".into()),
        crm: Default::default(),
        attrs: Default::default(),
    })
}

fn stage(i: usize) -> Record {
    Record::StageHistory(StageEntry {
        opportunity_id: format!("O{i}"),
        stage: "Discovery".into(),
        entered_at: t0().plus_millis(i as i64 * DAY + 2 * DAY),
        crm: Default::default(),
    })
}

fn activity(id: &str, i: usize, day: i64, ty: ActivityType) -> Record {
    Record::Activities(Activity {
        activity_id: id.into(),
        opportunity_id: Some(format!("O{i}")),
        // Tied to an account through the deal, so a deal moved to another account moves them too.
        account_id: None,
        activity_type: ty,
        direction: Some(Direction::Outbound),
        status: None,
        rep_id: Some(format!("R{}", i % 3)),
        contact_ids: Vec::new(),
        occurred_at: t0().plus_millis(i as i64 * DAY + day * DAY),
        created_at: None,
        duration_s: None,
        subject: None,
    })
}

/// The first export: 40 deals, half closed, with stage entries and a few activities each.
fn first() -> Vec<Record> {
    let mut r: Vec<Record> = (0..10).map(account).collect();
    for i in 0..40 {
        let outcome = match i % 4 {
            0 => Outcome::Won,
            1 => Outcome::Lost,
            _ => Outcome::Open,
        };
        r.push(opportunity(i, outcome));
        r.push(stage(i));
        for k in 0..(i % 5) {
            r.push(activity(
                &format!("a{i}-{k}"),
                i,
                3 + k as i64,
                ActivityType::Email,
            ));
        }
    }
    r
}

/// The second: new meetings on many deals, two open deals closed, and two deals moved to another
/// account (taking their activities with them); as many entities as before.
fn second() -> Vec<Record> {
    let mut r = Vec::new();
    for i in (0..40).step_by(3) {
        r.push(activity(&format!("m{i}"), i, 10, ActivityType::Meeting));
    }
    r.push(opportunity(2, Outcome::Won));
    r.push(opportunity(3, Outcome::Lost));
    r.push(opportunity_of(14, 1, Outcome::Open));
    r.push(opportunity_of(19, 2, Outcome::Open));
    // A completed meeting on O24 (account A4) and, two hours later, an outbound e-mail on O14: a fast
    // follow-up at A4 while O14 was A4's, none once O14 is A1's.
    let meeting = activity("f24", 24, 20, ActivityType::Meeting);
    let Record::Activities(mut meeting) = meeting else {
        unreachable!()
    };
    meeting.status = Some(ActivityStatus::Completed);
    let email_at = meeting.occurred_at.plus_millis(2 * 3_600_000);
    let Record::Activities(mut email) = activity("f14", 14, 0, ActivityType::Email) else {
        unreachable!()
    };
    email.occurred_at = email_at;
    r.push(Record::Activities(meeting));
    r.push(Record::Activities(email));
    r
}

fn write(dir: &Path, name: &str, records: &[Record]) {
    let store = EmbeddedStore::open(dir).unwrap();
    let mut batch = store.begin().unwrap();
    let load = batch
        .start_load(&LoadSpec {
            source: format!("test:{name}"),
            format: "canonical".into(),
            path: name.into(),
            file_hash: name.into(),
            file_bytes: 0,
            identity: name.into(),
            recipe: Default::default(),
        })
        .unwrap();
    let mut kinds: Vec<Kind> = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        batch.put(load, i as u64 + 2, None, rec).unwrap();
        if !kinds.contains(&rec.kind()) {
            kinds.push(rec.kind());
        }
    }
    kinds.sort();
    let n = records.len() as u64;
    let stats = LoadStats {
        rows_read: n,
        accepted: n,
        new: n,
        ..LoadStats::default()
    };
    batch.finish_load(load, &[], &kinds, &stats).unwrap();
    batch.commit().unwrap();
}

/// Everything a feature pass answers, as text to compare.
fn answer(dir: &Path) -> String {
    let store = EmbeddedStore::open(dir).unwrap();
    let c = compute(&store, winsignal_features::default_catalog(), &mut Silent).unwrap();
    digest(&c)
}

fn digest(c: &winsignal_workspace::Computed) -> String {
    format!(
        "{} events, {:?} unattributed, horizon {}\n{}",
        c.events,
        c.unattributed,
        c.horizon.0,
        serde_json::to_string(&c.snapshots).unwrap()
    )
}

/// Stops the first thread that reaches `point` until the test has passed `reached` and then `resume`
/// (the barriers the thread waits on too).
fn stop_once_at(point: &'static str) -> (Arc<Barrier>, Arc<Barrier>) {
    let reached = Arc::new(Barrier::new(2));
    let resume = Arc::new(Barrier::new(2));
    let (r, g) = (reached.clone(), resume.clone());
    let armed = std::sync::atomic::AtomicBool::new(true);
    fault::set_hook(move |at| {
        if at == point && armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            r.wait();
            g.wait();
        }
    });
    (reached, resume)
}

/// The fault hook is one per process: the tests that use it, or run a pass another test's hook could
/// stop, take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn an_ingest_during_a_feature_pass_changes_neither_its_answer_nor_a_later_one() {
    let _serial = serial();
    // What a clean computation gives for each state of the data, in workspaces of their own.
    let only_first = tempfile::tempdir().unwrap();
    write(only_first.path(), "first", &first());
    let before = answer(only_first.path());
    let both = tempfile::tempdir().unwrap();
    write(both.path(), "first", &first());
    write(both.path(), "second", &second());
    let after = answer(both.path());
    assert_ne!(before, after, "the second export must change the answer");

    // The workspace under test: the first export, then a pass stopped after its first read while the
    // second export is committed.
    let ws = tempfile::tempdir().unwrap();
    write(ws.path(), "first", &first());
    let (reached, resume) = stop_once_at("pipeline:after-entities");
    let dir = ws.path().to_path_buf();
    let pass = std::thread::spawn(move || answer(&dir));
    reached.wait();
    write(ws.path(), "second", &second());
    resume.wait();
    let during = pass.join().unwrap();
    fault::clear_hook();

    // The next pass must see the store as it is now. The interrupted pass saved a checkpoint of the
    // state it read; this one restores it and applies only what the second export changed (deals moved
    // to other accounts, taking their activities along; new meetings; closed deals).
    let points = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = points.clone();
    fault::set_hook(move |point| seen.lock().unwrap().push(point.to_string()));
    let later = answer(ws.path());
    fault::clear_hook();
    assert!(
        points
            .lock()
            .unwrap()
            .iter()
            .any(|p| p == "pipeline:catch-up"),
        "the pass after the ingest caught up from the checkpoint: {:?}",
        points.lock().unwrap()
    );
    let mut wrong = Vec::new();
    if during != before {
        wrong.push(
            "the pass that was running when the second export committed must answer for the store \
             as it was when it started, not a mix of the two",
        );
    }
    if later != after {
        wrong.push(
            "a pass after the ingest must equal a clean computation of the current data, not reuse \
             a checkpoint the interrupted pass saved for the wrong state",
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("; and "));
}

/// Two passes that record behaviour definitions at once both keep theirs: each adds to the registry as
/// it is when it saves, not as it was when it started (before, the later save wrote back what it had
/// read at its start, and the other pass's definitions were lost).
#[test]
fn definitions_a_concurrent_pass_recorded_are_kept() {
    let _serial = serial();
    let ws = tempfile::tempdir().unwrap();
    write(ws.path(), "first", &first());
    let mut other = winsignal_features::default_catalog();
    other.behaviours.truncate(1);
    other.behaviours[0].id = "exec_engaged_elsewhere".into();
    let (reached, resume) = stop_once_at("pipeline:after-entities");
    let dir = ws.path().to_path_buf();
    let pass = std::thread::spawn(move || answer(&dir));
    reached.wait();
    let store = EmbeddedStore::open(ws.path()).unwrap();
    compute(&store, other, &mut Silent).unwrap();
    resume.wait();
    pass.join().unwrap();
    fault::clear_hook();

    let mut state = store.state("behaviour-registry").unwrap().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut state.bytes, &mut text).unwrap();
    let registry = winsignal_features::registry::Registry::parse(&text).unwrap();
    let ids: Vec<&str> = registry
        .versions
        .keys()
        .map(|k| k.split('@').next().unwrap())
        .collect();
    assert!(ids.contains(&"exec_engaged_elsewhere"), "{ids:?}");
    assert!(ids.contains(&"exec_engaged"), "{ids:?}");
}

/// A registry that is not one (valid bytes, not a registry) stops the pass with where it is kept.
#[test]
fn a_damaged_registry_is_an_error_naming_where_it_is_kept() {
    let _serial = serial();
    let ws = tempfile::tempdir().unwrap();
    write(ws.path(), "first", &first());
    let store = EmbeddedStore::open(ws.path()).unwrap();
    store
        .put_state("behaviour-registry", "", &mut |w| w.write_all(b"not json"))
        .unwrap();
    let err = compute(&store, winsignal_features::default_catalog(), &mut Silent)
        .err()
        .unwrap();
    let text = format!("{err:#}");
    assert!(
        text.contains("behaviour registry") && text.contains("state/behaviour-registry.state"),
        "{text}"
    );
}
