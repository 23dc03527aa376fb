//! Fixtures for the feature tests: canonical records written to a temporary embedded store, read back
//! as a [`Context`], replayed into an [`Engine`], and definitions of the default catalog evaluated at
//! chosen instants. Every timestamp is fixed; nothing depends on the wall clock.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;

use winsignal_core::time::{MS_PER_DAY, MS_PER_HOUR};
use winsignal_core::{
    Account, Activity, ActivityStatus, ActivityType, Contact, Direction, Kind, MarketingTouch,
    Opportunity, OpportunityContact, Outcome, Priority, ProductEvent, Record, Rep, SpeakerRole,
    StageEntry, SupportTicket, TouchKind, Transcript, Ts, Turn,
};
use winsignal_features::catalog::{Catalog, Definition};
use winsignal_features::eval::{evaluate, View};
use winsignal_features::{default_catalog, Context, Engine};
use winsignal_store::{EmbeddedStore, LoadSpec, LoadStats, Store};

pub const DAY: i64 = MS_PER_DAY;
pub const HOUR: i64 = MS_PER_HOUR;
pub const MINUTE: i64 = 60_000;

/// A timestamp from RFC 3339 text (tests only use literals).
pub fn ts(text: &str) -> Ts {
    Ts::parse(text).unwrap()
}

/// `t` moved by `ms` milliseconds.
pub fn at(t: Ts, ms: i64) -> Ts {
    t.plus_millis(ms)
}

// ---------------------------------------------------------------- records

pub fn account(id: &str) -> Account {
    Account {
        account_id: id.into(),
        name: Some(format!("Account {id}")),
        ..Account::default()
    }
}

pub fn contact(id: &str, account_id: &str, title: Option<&str>) -> Contact {
    Contact {
        contact_id: id.into(),
        account_id: Some(account_id.into()),
        email: Some(format!(
            "{}@{}.example",
            id.to_lowercase(),
            account_id.to_lowercase()
        )),
        title: title.map(str::to_string),
        ..Contact::default()
    }
}

pub fn rep(id: &str) -> Rep {
    Rep {
        rep_id: id.into(),
        name: Some(format!("Rep {id}")),
        ..Rep::default()
    }
}

/// An open opportunity.
pub fn opportunity(id: &str, account_id: &str, created: Ts) -> Opportunity {
    Opportunity {
        opportunity_id: id.into(),
        account_id: Some(account_id.into()),
        rep_id: Some("R1".into()),
        name: Some(format!("Deal {id}")),
        opp_type: Some("New Business".into()),
        lead_source: Some("Inbound".into()),
        amount: Some(10_000.0),
        currency: Some("USD".into()),
        created_at: created,
        closed_at: None,
        outcome: Outcome::Open,
        stage: None,
        crm: Default::default(),
        attrs: Default::default(),
    }
}

/// An opportunity closed with `outcome` at `closed`.
pub fn closed(
    id: &str,
    account_id: &str,
    created: Ts,
    closed: Ts,
    outcome: Outcome,
) -> Opportunity {
    Opportunity {
        closed_at: Some(closed),
        outcome,
        ..opportunity(id, account_id, created)
    }
}

pub fn stage(opportunity_id: &str, stage: &str, entered_at: Ts) -> StageEntry {
    StageEntry {
        opportunity_id: opportunity_id.into(),
        stage: stage.into(),
        entered_at,
        crm: Default::default(),
    }
}

pub fn role(opportunity_id: &str, contact_id: &str) -> OpportunityContact {
    OpportunityContact {
        opportunity_id: opportunity_id.into(),
        contact_id: contact_id.into(),
        role: Some("Champion".into()),
        is_primary: None,
    }
}

/// A completed activity on a deal, logged when it happened (`created_at` absent).
pub fn activity(
    id: &str,
    activity_type: ActivityType,
    opportunity_id: &str,
    contacts: &[&str],
    occurred_at: Ts,
) -> Activity {
    Activity {
        activity_id: id.into(),
        activity_type,
        direction: None,
        status: Some(ActivityStatus::Completed),
        rep_id: Some("R1".into()),
        account_id: None,
        opportunity_id: Some(opportunity_id.into()),
        contact_ids: contacts.iter().map(|c| c.to_string()).collect(),
        occurred_at,
        created_at: None,
        duration_s: None,
        subject: None,
    }
}

/// A completed meeting on a deal.
pub fn meeting(id: &str, opportunity_id: &str, contacts: &[&str], occurred_at: Ts) -> Activity {
    Activity {
        duration_s: Some(1800.0),
        ..activity(
            id,
            ActivityType::Meeting,
            opportunity_id,
            contacts,
            occurred_at,
        )
    }
}

/// A completed call on a deal.
pub fn call(id: &str, opportunity_id: &str, contacts: &[&str], occurred_at: Ts) -> Activity {
    Activity {
        direction: Some(Direction::Outbound),
        duration_s: Some(600.0),
        ..activity(
            id,
            ActivityType::Call,
            opportunity_id,
            contacts,
            occurred_at,
        )
    }
}

/// A completed e-mail on a deal in the given direction.
pub fn email(
    id: &str,
    opportunity_id: &str,
    direction: Direction,
    contacts: &[&str],
    occurred_at: Ts,
) -> Activity {
    Activity {
        direction: Some(direction),
        ..activity(
            id,
            ActivityType::Email,
            opportunity_id,
            contacts,
            occurred_at,
        )
    }
}

/// A meeting booked at `booked_at` to take place at `occurred_at` (status scheduled).
pub fn booked_meeting(id: &str, opportunity_id: &str, booked_at: Ts, occurred_at: Ts) -> Activity {
    Activity {
        status: Some(ActivityStatus::Scheduled),
        created_at: Some(booked_at),
        ..meeting(id, opportunity_id, &[], occurred_at)
    }
}

pub fn product_event(id: &str, account_id: &str, user_id: &str, occurred_at: Ts) -> ProductEvent {
    ProductEvent {
        event_id: Some(id.into()),
        occurred_at,
        event: "Report Exported".into(),
        user_id: Some(user_id.into()),
        user_email: None,
        account_id: Some(account_id.into()),
        account_domain: None,
        properties: None,
    }
}

pub fn touch(id: &str, account_id: &str, kind: TouchKind, occurred_at: Ts) -> MarketingTouch {
    MarketingTouch {
        touch_id: Some(id.into()),
        occurred_at,
        kind,
        contact_id: None,
        email: None,
        account_id: Some(account_id.into()),
        channel: None,
        campaign: None,
        url: None,
    }
}

/// A ticket; `solved_at` None means still open.
pub fn ticket(
    id: &str,
    account_id: &str,
    priority: Priority,
    created_at: Ts,
    solved_at: Option<Ts>,
) -> SupportTicket {
    SupportTicket {
        ticket_id: id.into(),
        created_at,
        priority,
        status: Some(
            if solved_at.is_some() {
                "solved"
            } else {
                "open"
            }
            .into(),
        ),
        account_id: Some(account_id.into()),
        contact_id: None,
        requester_email: None,
        first_response_at: None,
        solved_at,
        csat: None,
        subject: None,
    }
}

/// A turn of a transcript: who speaks, from and to (seconds into the call), what they say.
pub fn turn(role: SpeakerRole, start_s: f64, end_s: f64, text: &str) -> Turn {
    Turn {
        speaker: None,
        role,
        start_s,
        end_s,
        text: text.into(),
    }
}

pub fn transcript(id: &str, opportunity_id: &str, started_at: Ts, turns: Vec<Turn>) -> Transcript {
    Transcript {
        call_id: id.into(),
        started_at,
        activity_id: None,
        opportunity_id: Some(opportunity_id.into()),
        account_id: None,
        turns,
    }
}

/// Canonical records of every kind, so fixtures can list them side by side.
pub trait IntoRecord {
    fn into_record(self) -> Record;
}

macro_rules! into_record {
    ($($t:ty => $v:ident),+ $(,)?) => {
        $(impl IntoRecord for $t {
            fn into_record(self) -> Record { Record::$v(self) }
        })+
    };
}

into_record!(
    Account => Accounts,
    Contact => Contacts,
    Rep => Reps,
    Opportunity => Opportunities,
    StageEntry => StageHistory,
    OpportunityContact => OpportunityContacts,
    Activity => Activities,
    ProductEvent => ProductEvents,
    MarketingTouch => MarketingTouches,
    SupportTicket => SupportTickets,
    Transcript => Transcripts,
);

impl IntoRecord for Record {
    fn into_record(self) -> Record {
        self
    }
}

// ---------------------------------------------------------------- store, context, engine

/// Records to be loaded, in the order they are written.
#[derive(Debug, Clone, Default)]
pub struct Fixture {
    pub records: Vec<Record>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::default()
    }

    pub fn add(&mut self, record: impl IntoRecord) -> &mut Fixture {
        self.records.push(record.into_record());
        self
    }

    /// Writes the records to a fresh store (one load, one batch) and reads the entities back.
    pub fn build(&self) -> Built {
        let dir = tempfile::tempdir().unwrap();
        let mut store = EmbeddedStore::open(dir.path()).unwrap();
        write(&mut store, &self.records);
        let ctx = Context::from_store(&store).unwrap();
        Built {
            _dir: dir,
            store,
            ctx,
        }
    }
}

/// Writes `records` as one load, the way a connector does.
pub fn write(store: &mut EmbeddedStore, records: &[Record]) {
    write_file(store, records, "fixture");
}

/// Writes `records` as one load of a file named `path` (another name is another file).
#[allow(dead_code)]
pub fn write_file(store: &mut EmbeddedStore, records: &[Record], path: &str) {
    let mut batch = store.begin().unwrap();
    let load = batch
        .start_load(&LoadSpec {
            source: "test:fixture".into(),
            format: "canonical".into(),
            path: path.into(),
            file_hash: path.into(),
            file_bytes: 0,
            identity: String::new(),
            recipe: Default::default(),
        })
        .unwrap();
    let mut kinds: BTreeSet<Kind> = BTreeSet::new();
    for (i, r) in records.iter().enumerate() {
        batch.put(load, i as u64 + 2, None, r).unwrap();
        kinds.insert(r.kind());
    }
    let n = records.len() as u64;
    let stats = LoadStats {
        rows_read: n,
        accepted: n,
        new: n,
        ..LoadStats::default()
    };
    let kinds: Vec<Kind> = kinds.into_iter().collect();
    batch.finish_load(load, &[], &kinds, &stats).unwrap();
    batch.commit().unwrap();
}

/// A store with its entities read back.
pub struct Built {
    _dir: tempfile::TempDir,
    pub store: EmbeddedStore,
    pub ctx: Context,
}

impl Built {
    /// Replays everything in the store.
    pub fn engine(&self) -> Engine {
        Engine::replay(self.ctx.clone(), &self.store, &mut |_| {}).unwrap()
    }
}

/// A definition of the default catalog by id.
pub fn definition(id: &str) -> Definition {
    definition_in(&default_catalog(), id)
}

pub fn definition_in(catalog: &Catalog, id: &str) -> Definition {
    catalog
        .behaviours
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("no definition {id:?} in the catalog"))
        .clone()
}

/// The measure of default-catalog definition `id` for opportunity `opp_id` at `as_of`.
pub fn value(engine: &Engine, opp_id: &str, as_of: Ts, id: &str) -> f64 {
    let opp = engine
        .context()
        .opportunity(opp_id)
        .unwrap_or_else(|| panic!("no opportunity {opp_id:?}"));
    let view = View::new(engine, opp, as_of.0);
    evaluate(&definition(id), &view, &mut |_, _| {})
}

/// The yes/no of default-catalog behaviour `id` (None when its measure is undefined).
pub fn flag(engine: &Engine, opp_id: &str, as_of: Ts, id: &str) -> Option<bool> {
    let def = definition(id);
    let t = def
        .threshold
        .unwrap_or_else(|| panic!("{id} is not a yes/no behaviour"));
    t.test(value(engine, opp_id, as_of, id))
}

/// Asserts two floats are equal bit for bit (so NaN equals NaN), naming what differs.
#[track_caller]
pub fn assert_same_bits(a: f64, b: f64, what: &str) {
    assert!(
        a.to_bits() == b.to_bits(),
        "{what}: {a:?} ({:#x}) != {b:?} ({:#x})",
        a.to_bits(),
        b.to_bits()
    );
}

/// Asserts `a` is within `tolerance` of `want`.
#[track_caller]
pub fn assert_close(a: f64, want: f64, tolerance: f64, what: &str) {
    assert!(
        (a - want).abs() <= tolerance,
        "{what}: got {a:?}, want {want:?} ± {tolerance}"
    );
}
