//! The event-time engine: one state, fed by replaying stored history or by applying events one at a time
//! in any order, and read at any `as_of` through views that only expose what was known strictly before it.
//!
//! State is, per deal and per account, compact timelines kept sorted by the time each item became known
//! (ties by a hash of the item's key). Applying an event is an ordered insert that ignores exact duplicates,
//! so the state after any arrival order of the same events is identical — which is why replay, live updates
//! and a recompute from scratch give the same answers (proved by the property test).

use crate::context::{Context, NONE};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use winsignal_core::hash::FastMap;
use winsignal_core::{
    ActivityStatus, ActivityType, Direction, Kind, Priority, Record, SpeakerRole, Ts,
};
use winsignal_store::StoreRead;

const REPLAY_BATCH: usize = 4096;
use xxhash_rust::xxh3::xxh3_64;

/// One activity, as the engine keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Act {
    /// When it became known: the later of when it happened and when it was logged.
    pub known: i64,
    /// When it happened (or is scheduled to).
    pub at: i64,
    /// When it was logged or booked (`at` when the source gives no creation time).
    pub created: i64,
    pub key: u64,
    pub seq: u64,
    pub opp: u32,
    /// The first contact (or NONE).
    pub contact: u32,
    /// With more than one contact: the key of the whole list in `EngineState::contact_groups`; else 0.
    pub group: u64,
    pub ty: ActivityType,
    pub dir: Option<Direction>,
    pub status: Option<ActivityStatus>,
    pub duration_s: f32,
}

/// One product event at an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Use {
    pub at: i64,
    pub key: u64,
    pub seq: u64,
    /// The user's id in `EngineState::users` (a hash of the user id or e-mail), or NO_ID.
    pub user: u64,
    /// The event name's id in `EngineState::events`.
    pub event: u64,
}

/// "No value" for content-addressed ids.
pub const NO_ID: u64 = 0;

/// The version of [`EngineState`]'s serialised form. Bump it whenever the state's fields or their
/// meaning change, so saved checkpoints from an older build are recomputed instead of misread.
pub const STATE_FORMAT: u32 = 1;

/// One marketing touch at an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    pub at: i64,
    pub key: u64,
    pub seq: u64,
    pub contact: u32,
    pub kind: winsignal_core::TouchKind,
}

/// One support ticket at an account (a mutable record: later versions replace earlier ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub created: i64,
    pub solved: Option<i64>,
    pub priority: Priority,
    pub version: u64,
    pub id: String,
}

/// One transcribed call on a deal, reduced to what conversation features need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// When the call ended (known from then on).
    pub known: i64,
    pub started: i64,
    pub rep_talk_s: f64,
    pub talk_s: f64,
    pub rep_questions: u32,
    pub version: u64,
    pub id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DealState {
    /// Activities on the deal, ordered by (known, key).
    pub acts: Vec<Act>,
    /// Meetings booked ahead (created before they take place), ordered by (created, key).
    pub booked: Vec<Act>,
    /// Transcribed calls, ordered by (known, id).
    pub calls: Vec<Call>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountState {
    /// Every activity at the account (on any deal or none), ordered by (known, key).
    pub acts: Vec<Act>,
    /// Product events, ordered by (at, key).
    pub usage: Vec<Use>,
    /// Marketing touches, ordered by (at, key).
    pub touches: Vec<Touch>,
    /// Support tickets, ordered by (created, id).
    pub tickets: Vec<Ticket>,
}

/// One input to the engine: an event from the log, or a record (ticket, transcript) with its version.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The event's sequence number in the store (for lineage), or the record's version.
    pub seq: u64,
    /// The store key: the event's id or content key, the record's id.
    pub key: &'a str,
    pub record: &'a Record,
}

/// What happened to an applied observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Added,
    Replaced,
    Duplicate,
    /// Nothing ties it to a known deal or account; counted in `unattributed`.
    Unattributed,
    /// Kinds the engine does not read (entities).
    Ignored,
}

/// Values named by a hash of their content, so the ids (and the state) do not depend on the order values
/// arrive in. A 64-bit collision between two of the ~10^6 values a workspace holds has a probability
/// around 10^-8; the first value seen under an id keeps it. Kept in a hash map (a lookup per product
/// event); serialised sorted by id, so checkpoints do not depend on arrival order either.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interner {
    names: FastMap<u64, Box<str>>,
}

impl Serialize for Interner {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let sorted: BTreeMap<u64, &str> = self.names.iter().map(|(k, v)| (*k, &**v)).collect();
        sorted.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Interner {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let sorted = BTreeMap::<u64, String>::deserialize(deserializer)?;
        Ok(Interner {
            names: sorted
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_str()))
                .collect(),
        })
    }
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> u64 {
        let id = content_id(s);
        self.names.entry(id).or_insert_with(|| s.into());
        id
    }

    pub fn get(&self, s: &str) -> Option<u64> {
        let id = content_id(s);
        self.names.contains_key(&id).then_some(id)
    }

    pub fn name(&self, id: u64) -> Option<&str> {
        self.names.get(&id).map(|n| &**n)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn content_id(s: &str) -> u64 {
    key_hash(s).max(1)
}

/// The engine state: serialisable, so a server can checkpoint and restore it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    pub deals: Vec<DealState>,
    pub accounts: Vec<AccountState>,
    pub users: Interner,
    pub events: Interner,
    /// Contact lists of activities with more than one contact, by a hash of the list.
    pub contact_groups: BTreeMap<u64, Vec<u32>>,
    /// Observations no deal or account could be found for, by kind.
    pub unattributed: BTreeMap<String, u64>,
    pub applied: u64,
}

/// The engine: the entities it computes about, and its state.
pub struct Engine<'c> {
    pub ctx: &'c Context,
    pub state: EngineState,
    prep: Preparer,
}

fn key_hash(key: &str) -> u64 {
    xxh3_64(key.as_bytes())
}

/// Inserts keeping `v` ordered by `order`; an element equal under `order` is a duplicate.
fn insert_sorted<T, K: Ord>(v: &mut Vec<T>, item: T, order: impl Fn(&T) -> K) -> bool {
    let k = order(&item);
    // Replay delivers events in time order: appending is the common case and needs no search, and a late
    // item usually belongs a few places from the end, so look there before searching the whole timeline
    // (whose start is long out of the cache).
    let mut lo = v.len();
    for _ in 0..8 {
        match lo.checked_sub(1).map(|i| order(&v[i]).cmp(&k)) {
            None | Some(std::cmp::Ordering::Less) => {
                v.insert(lo, item);
                return true;
            }
            Some(std::cmp::Ordering::Equal) => return false,
            Some(std::cmp::Ordering::Greater) => lo -= 1,
        }
    }
    match v[..lo].binary_search_by(|e| order(e).cmp(&k)) {
        Ok(_) => false,
        Err(pos) => {
            v.insert(pos, item);
            true
        }
    }
}

/// An observation resolved to dense ids and compact values: what the state stores. Preparing reads only
/// the entities (never the state), so replay prepares on the decoding thread while this one inserts.
#[derive(Debug)]
enum Prepared {
    Act {
        act: Act,
        account: u32,
        /// The contact list behind `act.group`, the first time this preparer meets it.
        group: Option<Vec<u32>>,
    },
    Use {
        account: u32,
        item: Use,
        /// The user's and the event's names, the first time this preparer meets them.
        user: Option<Box<str>>,
        event: Option<Box<str>>,
    },
    Touch {
        account: u32,
        item: Touch,
    },
    Ticket {
        account: u32,
        item: Ticket,
    },
    Call {
        opp: u32,
        item: Call,
    },
    Unattributed(Kind),
    Ignored,
}

/// Turns observations into [`Prepared`] items. Account resolution is a pure function of a record's
/// identifying fields and the entities, so it is memoised by a hash of those fields; the `seen` sets only
/// save sending a name twice (a cache, not state: the state keeps the first name it receives).
#[derive(Default)]
struct Preparer {
    resolved: FastMap<u64, u32>,
    seen_users: FastMap<u64, ()>,
    seen_events: FastMap<u64, ()>,
    seen_groups: FastMap<u64, ()>,
    /// The bytes hashed for the resolution key (reused, not reallocated per event).
    scratch: Vec<u8>,
}

impl Preparer {
    fn account_of(&mut self, ctx: &Context, record: &Record) -> u32 {
        let hints: [Option<&str>; 4] = match record {
            Record::ProductEvents(e) => [
                e.account_id.as_deref(),
                e.account_domain.as_deref(),
                e.user_id.as_deref(),
                e.user_email.as_deref(),
            ],
            Record::MarketingTouches(t) => [
                t.account_id.as_deref(),
                t.contact_id.as_deref(),
                t.email.as_deref(),
                None,
            ],
            _ => return resolve(ctx, record),
        };
        let buf = &mut self.scratch;
        buf.clear();
        buf.push(record.kind() as u8);
        for x in hints {
            match x {
                Some(s) => {
                    buf.push(1);
                    buf.extend_from_slice(s.as_bytes());
                    buf.push(0);
                }
                None => buf.push(2),
            }
        }
        let key = xxh3_64(buf);
        if let Some(&a) = self.resolved.get(&key) {
            return a;
        }
        let a = resolve(ctx, record);
        self.resolved.insert(key, a);
        a
    }

    /// The name behind a content id, if this preparer has not sent it yet.
    fn first(seen: &mut FastMap<u64, ()>, id: u64, name: &str) -> Option<Box<str>> {
        seen.insert(id, ()).is_none().then(|| name.into())
    }

    fn prepare(&mut self, ctx: &Context, obs: &Observation<'_>) -> Prepared {
        let key = key_hash(obs.key);
        match obs.record {
            Record::Activities(a) => {
                let opp = a
                    .opportunity_id
                    .as_deref()
                    .and_then(|o| ctx.opportunity(o))
                    .unwrap_or(NONE);
                let account = if opp != NONE && ctx.opps[opp as usize].account != NONE {
                    ctx.opps[opp as usize].account
                } else {
                    self.account_of(ctx, obs.record)
                };
                if opp == NONE && account == NONE {
                    return Prepared::Unattributed(Kind::Activities);
                }
                let at = a.occurred_at.0;
                let created = a.created_at.map_or(at, |c| c.0);
                let mut contacts: Vec<u32> = a
                    .contact_ids
                    .iter()
                    .filter_map(|c| ctx.contact(c))
                    .collect();
                contacts.sort_unstable();
                contacts.dedup();
                let contact = contacts.first().copied().unwrap_or(NONE);
                let (group, list) = if contacts.len() > 1 {
                    let bytes: Vec<u8> = contacts.iter().flat_map(|c| c.to_le_bytes()).collect();
                    let g = xxh3_64(&bytes).max(1);
                    let first = self.seen_groups.insert(g, ()).is_none();
                    (g, first.then_some(contacts))
                } else {
                    (0, None)
                };
                let act = Act {
                    known: at.max(created),
                    at,
                    created,
                    key,
                    seq: obs.seq,
                    opp,
                    contact,
                    group,
                    ty: a.activity_type,
                    dir: a.direction,
                    status: a.status,
                    duration_s: a.duration_s.unwrap_or(0.0) as f32,
                };
                Prepared::Act {
                    act,
                    account,
                    group: list,
                }
            }
            Record::ProductEvents(e) => {
                let account = self.account_of(ctx, obs.record);
                if account == NONE {
                    return Prepared::Unattributed(Kind::ProductEvents);
                }
                let (user, user_name) = match e.user_id.as_deref().or(e.user_email.as_deref()) {
                    Some(u) => {
                        let id = content_id(u);
                        (id, Self::first(&mut self.seen_users, id, u))
                    }
                    None => (NO_ID, None),
                };
                let event = content_id(&e.event);
                Prepared::Use {
                    account,
                    item: Use {
                        at: e.occurred_at.0,
                        key,
                        seq: obs.seq,
                        user,
                        event,
                    },
                    user: user_name,
                    event: Self::first(&mut self.seen_events, event, &e.event),
                }
            }
            Record::MarketingTouches(t) => {
                let account = self.account_of(ctx, obs.record);
                if account == NONE {
                    return Prepared::Unattributed(Kind::MarketingTouches);
                }
                let contact = t
                    .contact_id
                    .as_deref()
                    .and_then(|c| ctx.contact(c))
                    .or_else(|| {
                        let c = ctx.resolver.contact_by_email(t.email.as_deref()?)?;
                        ctx.contact(&c)
                    })
                    .unwrap_or(NONE);
                Prepared::Touch {
                    account,
                    item: Touch {
                        at: t.occurred_at.0,
                        key,
                        seq: obs.seq,
                        contact,
                        kind: t.kind,
                    },
                }
            }
            Record::SupportTickets(t) => {
                let account = self.account_of(ctx, obs.record);
                if account == NONE {
                    return Prepared::Unattributed(Kind::SupportTickets);
                }
                Prepared::Ticket {
                    account,
                    item: Ticket {
                        created: t.created_at.0,
                        solved: t.solved_at.map(|s| s.0),
                        priority: t.priority,
                        version: obs.seq,
                        id: t.ticket_id.clone(),
                    },
                }
            }
            Record::Transcripts(t) => {
                let opp = t
                    .opportunity_id
                    .as_deref()
                    .and_then(|o| ctx.opportunity(o))
                    .unwrap_or(NONE);
                if opp == NONE {
                    return Prepared::Unattributed(Kind::Transcripts);
                }
                Prepared::Call {
                    opp,
                    item: call_of(t, obs.seq),
                }
            }
            _ => Prepared::Ignored,
        }
    }
}

fn resolve(ctx: &Context, record: &Record) -> u32 {
    ctx.resolver
        .account_of(record)
        .and_then(|(a, _)| ctx.account(&a))
        .unwrap_or(NONE)
}

impl EngineState {
    /// Puts a prepared observation in its timelines.
    fn insert(&mut self, p: Prepared) -> Applied {
        if !matches!(p, Prepared::Ignored) {
            self.applied += 1;
        }
        let added = |new: bool| {
            if new {
                Applied::Added
            } else {
                Applied::Duplicate
            }
        };
        match p {
            Prepared::Act {
                act,
                account,
                group,
            } => {
                if let Some(list) = group {
                    self.contact_groups.entry(act.group).or_insert(list);
                }
                let mut new = false;
                if act.opp != NONE {
                    let deal = &mut self.deals[act.opp as usize];
                    new |= insert_sorted(&mut deal.acts, act, |e| (e.known, e.key));
                    if act.created < act.at && act.ty == ActivityType::Meeting {
                        insert_sorted(&mut deal.booked, act, |e| (e.created, e.key));
                    }
                }
                if account != NONE {
                    new |= insert_sorted(&mut self.accounts[account as usize].acts, act, |e| {
                        (e.known, e.key)
                    });
                }
                added(new)
            }
            Prepared::Use {
                account,
                item,
                user,
                event,
            } => {
                if let Some(name) = user {
                    self.users.names.entry(item.user).or_insert(name);
                }
                if let Some(name) = event {
                    self.events.names.entry(item.event).or_insert(name);
                }
                let usage = &mut self.accounts[account as usize].usage;
                added(insert_sorted(usage, item, |u| (u.at, u.key)))
            }
            Prepared::Touch { account, item } => {
                let touches = &mut self.accounts[account as usize].touches;
                added(insert_sorted(touches, item, |u| (u.at, u.key)))
            }
            Prepared::Ticket { account, item } => {
                let id = item.id.clone();
                upsert(
                    &mut self.accounts[account as usize].tickets,
                    item,
                    |x| x.id == id,
                    |x| x.version,
                    |x| (x.created, x.id.clone()),
                )
            }
            Prepared::Call { opp, item } => {
                let id = item.id.clone();
                upsert(
                    &mut self.deals[opp as usize].calls,
                    item,
                    |x| x.id == id,
                    |x| x.version,
                    |x| (x.known, x.id.clone()),
                )
            }
            Prepared::Unattributed(kind) => {
                *self
                    .unattributed
                    .entry(kind.as_str().to_string())
                    .or_default() += 1;
                Applied::Unattributed
            }
            Prepared::Ignored => Applied::Ignored,
        }
    }
}

impl<'c> Engine<'c> {
    pub fn new(ctx: &'c Context) -> Engine<'c> {
        Engine {
            ctx,
            state: EngineState {
                deals: vec![DealState::default(); ctx.opps.len()],
                accounts: vec![AccountState::default(); ctx.accounts.len()],
                ..EngineState::default()
            },
            prep: Preparer::default(),
        }
    }

    /// Restores a checkpoint taken by [`Engine::checkpoint`] against the same entities.
    pub fn restore(ctx: &'c Context, bytes: &[u8]) -> Result<Engine<'c>, String> {
        let state: EngineState = postcard::from_bytes(bytes)
            .map_err(|e| format!("engine checkpoint is not readable: {e}"))?;
        Engine::with_state(ctx, state)
    }

    /// Writes a checkpoint to `w` as it is serialised (no copy of the whole state in memory); read it
    /// back with [`Engine::restore_from`]. The bytes are the same as [`Engine::checkpoint`]'s.
    pub fn write_checkpoint(&self, w: impl std::io::Write) -> Result<(), String> {
        postcard::to_io(&self.state, w)
            .map(|_| ())
            .map_err(|e| format!("engine checkpoint could not be written: {e}"))
    }

    /// Restores a checkpoint written by [`Engine::write_checkpoint`], reading it as it decodes.
    pub fn restore_from(ctx: &'c Context, r: impl std::io::Read) -> Result<Engine<'c>, String> {
        // The scratch buffer only has to hold the longest single string or byte run of the state.
        let mut scratch = vec![0u8; 1 << 20];
        let (state, _): (EngineState, _) = postcard::from_io((r, &mut scratch[..]))
            .map_err(|e| format!("engine checkpoint is not readable: {e}"))?;
        Engine::with_state(ctx, state)
    }

    fn with_state(ctx: &'c Context, state: EngineState) -> Result<Engine<'c>, String> {
        if state.deals.len() != ctx.opps.len() || state.accounts.len() != ctx.accounts.len() {
            return Err(format!(
                "engine checkpoint is for {} deals and {} accounts; the store has {} and {}",
                state.deals.len(),
                state.accounts.len(),
                ctx.opps.len(),
                ctx.accounts.len()
            ));
        }
        Ok(Engine {
            ctx,
            state,
            prep: Preparer::default(),
        })
    }

    pub fn checkpoint(&self) -> Vec<u8> {
        #[allow(clippy::expect_used)]
        postcard::to_allocvec(&self.state).expect("engine state serialises (plain data)")
    }

    /// Builds the state by replaying everything in the store: the event log in event-time order, then
    /// tickets and transcripts. Every item goes through the same prepare-then-insert steps as
    /// [`Engine::apply`]; for the log, a second thread prepares what the store decoded while this one inserts.
    pub fn replay(
        ctx: &'c Context,
        store: &dyn StoreRead,
        progress: &mut dyn FnMut(u64),
    ) -> winsignal_store::Result<Engine<'c>> {
        let mut engine = Engine::new(ctx);
        let kinds = [
            Kind::Activities,
            Kind::ProductEvents,
            Kind::MarketingTouches,
        ];
        let events = store.events(&kinds)?;
        let mut n = 0u64;
        let mut failure = None;
        let state = &mut engine.state;
        let prep = &mut engine.prep;
        std::thread::scope(|scope| {
            let (tx, rx) =
                std::sync::mpsc::sync_channel::<winsignal_store::Result<Vec<Prepared>>>(8);
            // Inserted batches go back to the preparing thread to be refilled, instead of a fresh
            // allocation (and a fresh page-zeroing pass by the kernel) per batch.
            let (recycle, reuse) = std::sync::mpsc::sync_channel::<Vec<Prepared>>(16);
            scope.spawn(move || {
                let fresh = || {
                    reuse
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(REPLAY_BATCH))
                };
                let mut batch = fresh();
                for ev in events {
                    match ev {
                        Ok(ev) => batch.push(prep.prepare(
                            ctx,
                            &Observation {
                                seq: ev.seq,
                                key: &ev.key,
                                record: &ev.record,
                            },
                        )),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                    if batch.len() == REPLAY_BATCH {
                        let full = std::mem::replace(&mut batch, fresh());
                        if tx.send(Ok(full)).is_err() {
                            return;
                        }
                    }
                }
                let _ = tx.send(Ok(batch));
            });
            for batch in rx {
                match batch {
                    Ok(mut batch) => {
                        n += batch.len() as u64;
                        for p in batch.drain(..) {
                            state.insert(p);
                        }
                        progress(n);
                        let _ = recycle.try_send(batch);
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        for kind in [Kind::SupportTickets, Kind::Transcripts] {
            for rec in store.records(kind)? {
                engine.apply(&Observation {
                    seq: rec.version,
                    key: &rec.id,
                    record: &rec.record,
                });
                n += 1;
            }
        }
        progress(n);
        Ok(engine)
    }

    /// Applies one observation. Arrival order does not matter: late and out-of-order items are inserted in
    /// place, exact duplicates are ignored, and a newer version of a ticket or transcript replaces the older.
    pub fn apply(&mut self, obs: &Observation<'_>) -> Applied {
        let p = self.prep.prepare(self.ctx, obs);
        self.state.insert(p)
    }
}

fn upsert<T, K: Ord>(
    v: &mut Vec<T>,
    item: T,
    same: impl Fn(&T) -> bool,
    version: impl Fn(&T) -> u64,
    order: impl Fn(&T) -> K,
) -> Applied {
    let mut replaced = false;
    if let Some(pos) = v.iter().position(&same) {
        if version(&v[pos]) >= version(&item) {
            return Applied::Duplicate;
        }
        v.remove(pos);
        replaced = true;
    }
    let k = order(&item);
    let pos = v.partition_point(|e| order(e) < k);
    v.insert(pos, item);
    if replaced {
        Applied::Replaced
    } else {
        Applied::Added
    }
}

/// Rep talk time, total talk time and rep questions of a transcript.
fn call_of(t: &winsignal_core::Transcript, version: u64) -> Call {
    let mut rep_talk_s = 0.0;
    let mut talk_s = 0.0;
    let mut rep_questions = 0;
    let mut end = 0.0f64;
    for turn in &t.turns {
        let len = (turn.end_s - turn.start_s).max(0.0);
        talk_s += len;
        end = end.max(turn.end_s);
        if turn.role == SpeakerRole::Rep {
            rep_talk_s += len;
            rep_questions += count_questions(&turn.text);
        }
    }
    Call {
        known: t.started_at.0 + (end * 1000.0).ceil() as i64,
        started: t.started_at.0,
        rep_talk_s,
        talk_s,
        rep_questions,
        version,
        id: t.call_id.clone(),
    }
}

/// Sentences ending in "?" (a run of "?" or "?!" counts once).
pub fn count_questions(text: &str) -> u32 {
    let mut n = 0;
    let mut prev_q = false;
    for c in text.chars() {
        let q = c == '?';
        if q && !prev_q {
            n += 1;
        }
        prev_q = q || (prev_q && c == '!');
    }
    n
}

#[allow(dead_code)]
fn _assert_ts(_: Ts) {}
