//! The event-time engine: one state, fed by replaying stored history or by applying events and entity
//! records one at a time in any order, and read at any `as_of` through views that only expose what was
//! known strictly before it.
//!
//! State is, per deal and per account, compact timelines kept sorted by the time each item became known
//! (ties by a hash of the item's key). Every event is tied to its deal and account through a *hint*: the
//! fields that identify it (opportunity, account, contact ids, e-mails, domains, product user), resolved
//! against the entities. The engine owns its [`Context`]; when entities arrive or change, every hint is
//! resolved again and the items whose answer changed move (an event whose entity has not arrived yet is
//! parked, and placed when it arrives). A new version of an event replaces the old one by key; an exact
//! repeat or an older version changes nothing. So the state after any arrival order of the same records
//! and events is the one a replay of the final data builds (proved by the property test in
//! `tests/incremental.rs`).

use crate::context::{Context, NONE};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicI64, Ordering};
use winsignal_core::hash::FastMap;
use winsignal_core::{
    ActivityStatus, ActivityType, Direction, Kind, Priority, Record, SpeakerRole,
};
use winsignal_store::{LogPosition, StoreRead};
use xxhash_rust::xxh3::xxh3_64;

const REPLAY_BATCH: usize = 4096;

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
    /// With more than one contact: the key of the whole list (see [`Engine::contact_group`]); else 0.
    pub group: u64,
    /// The hint that tied it to its deal and account.
    pub(crate) hint: u64,
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
    /// The event name's id (see [`Engine::event_name`]).
    pub event: u64,
    /// The hint that tied it to its account. The user is one of the hint's fields, so it is kept with
    /// the hint ([`Engine::user_of`]) rather than in each of the tens of millions of product events:
    /// 40 bytes instead of 48.
    pub(crate) hint: u64,
}

// Timelines hold tens of millions of these: a field added is hundreds of megabytes at the demo's scale
// 10 (BENCHMARKS.md, "Foundations").
const _: () = assert!(std::mem::size_of::<Use>() == 40 && std::mem::size_of::<Act>() == 72);

/// "No value" for content-addressed ids.
pub const NO_ID: u64 = 0;

/// The version of the checkpoint's serialised form. Bump it whenever the state's fields or their
/// meaning change, so saved checkpoints from an older build are recomputed instead of misread.
pub const STATE_FORMAT: u32 = 5;

/// One marketing touch at an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    pub at: i64,
    pub key: u64,
    pub seq: u64,
    pub contact: u32,
    pub kind: winsignal_core::TouchKind,
    pub(crate) hint: u64,
}

/// One support ticket at an account (a mutable record: later versions replace earlier ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub created: i64,
    pub solved: Option<i64>,
    pub priority: Priority,
    pub version: u64,
    pub id: String,
    pub(crate) key: u64,
    pub(crate) hint: u64,
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
    pub(crate) key: u64,
    pub(crate) hint: u64,
}

/// One deal's timelines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DealState {
    pub(crate) acts: Vec<Act>,
    pub(crate) booked: Vec<Act>,
    pub(crate) calls: Vec<Call>,
}

impl DealState {
    /// Activities on the deal, ordered by (known, key).
    pub fn acts(&self) -> &[Act] {
        &self.acts
    }

    /// Meetings booked ahead (created before they take place), ordered by (created, key).
    pub fn booked(&self) -> &[Act] {
        &self.booked
    }

    /// Transcribed calls, ordered by (known, id).
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }
}

/// One account's timelines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountState {
    pub(crate) acts: Vec<Act>,
    pub(crate) usage: Vec<Use>,
    pub(crate) touches: Vec<Touch>,
    pub(crate) tickets: Vec<Ticket>,
}

impl AccountState {
    /// Every activity at the account (on any deal or none), ordered by (known, key).
    pub fn acts(&self) -> &[Act] {
        &self.acts
    }

    /// Product events, ordered by (at, key).
    pub fn usage(&self) -> &[Use] {
        &self.usage
    }

    /// Marketing touches, ordered by (at, key).
    pub fn touches(&self) -> &[Touch] {
        &self.touches
    }

    /// Support tickets, ordered by (created, id).
    pub fn tickets(&self) -> &[Ticket] {
        &self.tickets
    }
}

/// One input to the engine: an event from the log, or a record (ticket, transcript) with its version.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The event's sequence number in the store (for lineage; a higher one is a newer version), or the
    /// record's version.
    pub seq: u64,
    /// The store key: the event's id or content key, the record's id.
    pub key: &'a str,
    pub record: &'a Record,
}

/// What the log says came before an observation under its key: the store knows (it supersedes by
/// key), and telling the engine spares it looking the key up in its own state (see
/// [`Engine::apply_after`]).
#[derive(Debug, Clone, Copy)]
pub enum Before<'a> {
    /// Not known: the engine looks the key up in the state it holds.
    Unknown,
    /// Nothing: the key is new to the log, so the engine cannot hold it.
    Nothing,
    /// This earlier version of the key, which the engine holds (or ignored).
    Version(Observation<'a>),
}

/// What happened to an applied observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Added,
    /// A new version of an item the engine held, which it replaced.
    Replaced,
    /// Exactly what the engine already held.
    Duplicate,
    /// An older version than the one the engine holds; ignored.
    Stale,
    /// Nothing ties it to a known deal or account yet: parked until its entity arrives, and counted in
    /// [`Engine::unattributed`] meanwhile.
    Unattributed,
    /// Kinds the engine does not read as events (entities go through [`Engine::upsert_entities`]).
    Ignored,
}

/// The deals and accounts whose inputs an update changed: a live service rescores exactly these deals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// Deals whose own timelines, account timelines or entity records changed.
    pub deals: BTreeSet<u32>,
    /// Accounts whose timelines or records changed.
    pub accounts: BTreeSet<u32>,
}

impl Touched {
    pub fn is_empty(&self) -> bool {
        self.deals.is_empty() && self.accounts.is_empty()
    }

    pub fn extend(&mut self, other: Touched) {
        self.deals.extend(other.deals);
        self.accounts.extend(other.accounts);
    }

    fn add(&mut self, deal: u32, account: u32) {
        if deal != NONE {
            self.deals.insert(deal);
        }
        if account != NONE {
            self.accounts.insert(account);
        }
    }
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

fn key_hash(key: &str) -> u64 {
    xxh3_64(key.as_bytes())
}

/// Where a hint points: the deal, the account, and (activities, touches) the contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Resolution {
    opp: u32,
    account: u32,
    contact: u32,
    group: u64,
}

/// The fields that tie an event to its entities, by kind:
/// activities (opportunity, account; contacts), product events (account, domain, user, e-mail),
/// touches and tickets (account, contact, e-mail), transcripts (opportunity, account).
///
/// Packed in one allocation: there is a hint per distinct combination (1.3 million at scale 10), where
/// four strings and a list allocated apart took 96 bytes plus five allocations each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PackedHint")]
struct Hint {
    kind: Kind,
    /// The four fields, then the contacts, each as `[u32 LE length][UTF-8 bytes]`; an absent field
    /// is the length `u32::MAX` alone.
    packed: Box<[u8]>,
}

/// A hint as read back, checked before it becomes one.
#[derive(Deserialize)]
struct PackedHint {
    kind: Kind,
    packed: Box<[u8]>,
}

impl TryFrom<PackedHint> for Hint {
    type Error = String;

    fn try_from(p: PackedHint) -> Result<Hint, String> {
        unpack(&p.packed).ok_or_else(|| "a damaged hint".to_string())?;
        Ok(Hint {
            kind: p.kind,
            packed: p.packed,
        })
    }
}

const ABSENT: u32 = u32::MAX;

fn pack<S: AsRef<str>>(fields: [Option<&str>; 4], contacts: &[S]) -> Box<[u8]> {
    fn put(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            // Identifiers are short; one of 4 GB would not be an identifier.
            Some(s) => {
                let len = u32::try_from(s.len()).unwrap_or(ABSENT - 1).min(ABSENT - 1);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&s.as_bytes()[..len as usize]);
            }
            None => out.extend_from_slice(&ABSENT.to_le_bytes()),
        }
    }
    let mut out = Vec::new();
    for f in fields {
        put(&mut out, f);
    }
    for c in contacts {
        put(&mut out, Some(c.as_ref()));
    }
    out.into_boxed_slice()
}

/// The fields and contacts of packed bytes; `None` if they are not [`pack`]'s.
fn unpack(mut b: &[u8]) -> Option<([Option<&str>; 4], Vec<&str>)> {
    fn next<'a>(b: &mut &'a [u8]) -> Option<Option<&'a str>> {
        let (len, rest) = b.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len);
        if len == ABSENT {
            *b = rest;
            return Some(None);
        }
        let (s, rest) = rest.split_at_checked(len as usize)?;
        *b = rest;
        std::str::from_utf8(s).ok().map(Some)
    }
    let mut fields = [None; 4];
    for f in &mut fields {
        *f = next(&mut b)?;
    }
    let mut contacts = Vec::new();
    while !b.is_empty() {
        contacts.push(next(&mut b)??);
    }
    Some((fields, contacts))
}

/// Every hint met, by a hash of its fields, with its current resolution. Part of the engine's state
/// (checkpointed): an item records its hint, so the items a changed resolution moves can be found.
/// Named by content, so the state does not depend on the order hints were met in.
///
/// Every event looks its hint up, so the map holds only what that lookup reads (the resolution, and
/// where the hint's fields are kept): small buckets stay in cache and grow cheaply, where buckets with
/// the fields inline did neither.
#[derive(Debug, Clone, Default)]
struct Hints {
    /// By hash: what each hint's lookup reads.
    map: FastMap<u64, Met>,
    fields: Vec<Hint>,
    /// The hints that name an opportunity (activities and transcripts), by [`opp_key`] of its id:
    /// the only ones a changed opportunity can resolve differently. Not checkpointed (rebuilt as the
    /// hints are read back).
    by_opp: FastMap<u64, Vec<u64>>,
}

/// The key of an opportunity id in [`Hints::by_opp`]: the same for every form of the id (15 or 18
/// characters, any case).
fn opp_key(id: &str) -> u64 {
    content_id(&winsignal_core::sfdc::to_18(id).to_ascii_lowercase())
}

/// The opportunity a hint names, for [`Hints::by_opp`].
fn opp_named(kind: Kind, fields: &[Option<&str>; 4]) -> Option<u64> {
    match kind {
        Kind::Activities | Kind::Transcripts => fields[0].map(opp_key),
        _ => None,
    }
}

/// A hint as every event of it reads it.
#[derive(Debug, Clone, Copy)]
struct Met {
    /// Its current resolution.
    res: Resolution,
    /// Its index in [`Hints::fields`].
    index: u32,
    /// For product events, the user's id (a hash of the user id or e-mail), or [`NO_ID`].
    user: u64,
}

/// The product user named by a hint's fields (account, domain, user id, e-mail): the user id, else the
/// e-mail, as a content id; [`NO_ID`] for other kinds or without either.
fn user_of_fields(kind: Kind, fields: &[Option<&str>; 4]) -> u64 {
    match kind {
        Kind::ProductEvents => fields[2].or(fields[3]).map_or(NO_ID, content_id),
        _ => NO_ID,
    }
}

/// The identifying fields of an event record.
fn hint_fields(record: &Record) -> Option<(Kind, [Option<&str>; 4], &[String])> {
    let none: &[String] = &[];
    Some(match record {
        Record::Activities(a) => (
            Kind::Activities,
            [
                a.opportunity_id.as_deref(),
                a.account_id.as_deref(),
                None,
                None,
            ],
            &a.contact_ids[..],
        ),
        Record::ProductEvents(e) => (
            Kind::ProductEvents,
            [
                e.account_id.as_deref(),
                e.account_domain.as_deref(),
                e.user_id.as_deref(),
                e.user_email.as_deref(),
            ],
            none,
        ),
        Record::MarketingTouches(t) => (
            Kind::MarketingTouches,
            [
                t.account_id.as_deref(),
                t.contact_id.as_deref(),
                t.email.as_deref(),
                None,
            ],
            none,
        ),
        Record::SupportTickets(t) => (
            Kind::SupportTickets,
            [
                t.account_id.as_deref(),
                t.contact_id.as_deref(),
                t.requester_email.as_deref(),
                None,
            ],
            none,
        ),
        Record::Transcripts(t) => (
            Kind::Transcripts,
            [
                t.opportunity_id.as_deref(),
                t.account_id.as_deref(),
                None,
                None,
            ],
            none,
        ),
        _ => return None,
    })
}

fn hint_hash<S: AsRef<str>>(
    scratch: &mut Vec<u8>,
    kind: Kind,
    fields: [Option<&str>; 4],
    contacts: &[S],
) -> u64 {
    scratch.clear();
    scratch.push(kind as u8);
    for x in fields {
        match x {
            Some(s) => {
                scratch.push(1);
                scratch.extend_from_slice(s.as_bytes());
                scratch.push(0);
            }
            None => scratch.push(2),
        }
    }
    for c in contacts {
        scratch.extend_from_slice(c.as_ref().as_bytes());
        scratch.push(0);
    }
    xxh3_64(scratch)
}

/// Resolves identifying fields against the entities; with the contact list when there is more than one.
fn resolve_hint<S: AsRef<str>>(
    ctx: &Context,
    kind: Kind,
    f: [Option<&str>; 4],
    contact_ids: &[S],
) -> (Resolution, Option<Vec<u32>>) {
    let account_of = |found: Option<(String, winsignal_core::resolve::MatchMethod)>| {
        found.and_then(|(a, _)| ctx.account(&a)).unwrap_or(NONE)
    };
    let mut r = Resolution {
        opp: NONE,
        account: NONE,
        contact: NONE,
        group: 0,
    };
    let mut list = None;
    match kind {
        Kind::Activities => {
            r.opp = f[0].and_then(|o| ctx.opportunity(o)).unwrap_or(NONE);
            r.account = if r.opp != NONE && ctx.opps[r.opp as usize].account != NONE {
                ctx.opps[r.opp as usize].account
            } else {
                account_of(ctx.resolver.account_of_activity(f[1], f[0], contact_ids))
            };
            let mut contacts: Vec<u32> = contact_ids
                .iter()
                .filter_map(|c| ctx.contact(c.as_ref()))
                .collect();
            contacts.sort_unstable();
            contacts.dedup();
            r.contact = contacts.first().copied().unwrap_or(NONE);
            if contacts.len() > 1 {
                let bytes: Vec<u8> = contacts.iter().flat_map(|c| c.to_le_bytes()).collect();
                r.group = xxh3_64(&bytes).max(1);
                list = Some(contacts);
            }
        }
        Kind::ProductEvents => {
            r.account = account_of(
                ctx.resolver
                    .account_of_product_event(f[0], f[1], f[2], f[3]),
            );
        }
        Kind::MarketingTouches => {
            r.account = account_of(ctx.resolver.account_of_person_event(f[0], f[1], f[2]));
            r.contact = f[1]
                .and_then(|c| ctx.contact(c))
                .or_else(|| {
                    let c = ctx.resolver.contact_by_email(f[2]?)?;
                    ctx.contact(&c)
                })
                .unwrap_or(NONE);
        }
        Kind::SupportTickets => {
            r.account = account_of(ctx.resolver.account_of_person_event(f[0], f[1], f[2]));
        }
        Kind::Transcripts => {
            r.opp = f[0].and_then(|o| ctx.opportunity(o)).unwrap_or(NONE);
        }
        _ => {}
    }
    (r, list)
}

impl Hint {
    fn resolve(&self, ctx: &Context) -> (Resolution, Option<Vec<u32>>) {
        // Checked when made and when read back, so always some.
        let (fields, contacts) = unpack(&self.packed).unwrap_or_default();
        resolve_hint(ctx, self.kind, fields, &contacts)
    }
}

impl Hints {
    /// The hint of these fields and its resolution; the contact list when its group is new to `seen`.
    fn intern(
        &mut self,
        ctx: &Context,
        scratch: &mut Vec<u8>,
        seen_groups: &mut FastMap<u64, ()>,
        (kind, fields, contacts): (Kind, [Option<&str>; 4], &[String]),
    ) -> (u64, Resolution, Option<Vec<u32>>) {
        let h = hint_hash(scratch, kind, fields, contacts);
        if let Some(&Met { res: r, index, .. }) = self.map.get(&h) {
            if r.group == 0 || seen_groups.contains_key(&r.group) {
                return (h, r, None);
            }
            seen_groups.insert(r.group, ());
            let (_, list) = self.fields[index as usize].resolve(ctx);
            return (h, r, list);
        }
        let (r, list) = resolve_hint(ctx, kind, fields, contacts);
        let hint = Hint {
            kind,
            packed: pack(fields, contacts),
        };
        self.push(
            h,
            hint,
            r,
            user_of_fields(kind, &fields),
            opp_named(kind, &fields),
        );
        let list = if r.group != 0 && seen_groups.insert(r.group, ()).is_none() {
            list
        } else {
            None
        };
        (h, r, list)
    }

    fn resolution(&self, h: u64) -> Resolution {
        self.map.get(&h).map_or(
            Resolution {
                opp: NONE,
                account: NONE,
                contact: NONE,
                group: 0,
            },
            |m| m.res,
        )
    }

    /// The product user of hint `h` ([`NO_ID`] if none).
    fn user(&self, h: u64) -> u64 {
        self.map.get(&h).map_or(NO_ID, |m| m.user)
    }

    fn push(&mut self, h: u64, hint: Hint, res: Resolution, user: u64, opp: Option<u64>) {
        let index = u32::try_from(self.fields.len()).unwrap_or(u32::MAX);
        self.fields.push(hint);
        self.map.insert(h, Met { res, index, user });
        if let Some(o) = opp {
            self.by_opp.entry(o).or_default().push(h);
        }
    }

    /// Sorted by hash, so checkpoints do not depend on the order hints were met in.
    fn sorted(&self) -> Vec<(u64, &Hint, Resolution)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|(h, m)| (*h, &self.fields[m.index as usize], m.res))
            .collect();
        v.sort_unstable_by_key(|x| x.0);
        v
    }
}

/// An event as the state keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Item {
    Act(Act),
    Use(Use),
    Touch(Touch),
    // Tickets and calls are few and large: boxed, so every item (and every prepared item crossing the
    // replay threads) is the size of an activity, not of a call. Serialised as the value itself.
    Ticket(Box<Ticket>),
    Call(Box<Call>),
}

impl Item {
    fn kind(&self) -> Kind {
        match self {
            Item::Act(_) => Kind::Activities,
            Item::Use(_) => Kind::ProductEvents,
            Item::Touch(_) => Kind::MarketingTouches,
            Item::Ticket(_) => Kind::SupportTickets,
            Item::Call(_) => Kind::Transcripts,
        }
    }

    fn key(&self) -> u64 {
        match self {
            Item::Act(x) => x.key,
            Item::Use(x) => x.key,
            Item::Touch(x) => x.key,
            Item::Ticket(x) => x.key,
            Item::Call(x) => x.key,
        }
    }

    fn hint(&self) -> u64 {
        match self {
            Item::Act(x) => x.hint,
            Item::Use(x) => x.hint,
            Item::Touch(x) => x.hint,
            Item::Ticket(x) => x.hint,
            Item::Call(x) => x.hint,
        }
    }

    /// The time the item is ordered by in its timelines.
    fn time(&self) -> i64 {
        match self {
            Item::Act(x) => x.known,
            Item::Use(x) => x.at,
            Item::Touch(x) => x.at,
            Item::Ticket(x) => x.created,
            Item::Call(x) => x.known,
        }
    }

    /// Its store sequence number or record version: a higher one is a newer version.
    fn version(&self) -> u64 {
        match self {
            Item::Act(x) => x.seq,
            Item::Use(x) => x.seq,
            Item::Touch(x) => x.seq,
            Item::Ticket(x) => x.version,
            Item::Call(x) => x.version,
        }
    }
}

struct HashWriter<'a>(&'a mut xxhash_rust::xxh3::Xxh3);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether an item of this kind with this resolution has nowhere to go (is parked).
fn unplaced(kind: Kind, r: &Resolution) -> bool {
    match kind {
        Kind::Activities => r.opp == NONE && r.account == NONE,
        Kind::Transcripts => r.opp == NONE,
        _ => r.account == NONE,
    }
}

/// Where the engine holds an item: its hint (so its placement) and its time (so its position).
#[derive(Debug, Clone, Copy)]
struct Loc {
    hint: u64,
    time: i64,
}

/// The engine state: timelines, names, parked items. Private: read it through [`Engine`]'s methods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct EngineState {
    pub(crate) deals: Vec<DealState>,
    pub(crate) accounts: Vec<AccountState>,
    pub(crate) users: Interner,
    pub(crate) events: Interner,
    /// Contact lists of activities with more than one contact, by a hash of the list.
    pub(crate) contact_groups: BTreeMap<u64, Vec<u32>>,
    /// Items nothing ties to a known deal or account yet, by (hint, kind, key).
    parked: BTreeMap<(u64, u8, u64), Item>,
    /// The number of parked items, by kind.
    unattributed: BTreeMap<String, u64>,
    applied: u64,
    #[serde(skip)]
    horizon: HorizonCache,
    #[serde(skip)]
    reshapes: Reshapes,
}

/// How many times an item was taken out of a deal's or an account's timelines, or the entities a deal's
/// values read changed, counted from the engine's start: for every deal (`all`), and per deal and per
/// account. While a deal's counts stand still, its timelines and its account's only gained items, so a
/// reader that remembers the last item it read of each ([`crate::memo`]) knows whether everything it
/// read is still there, in place. Not part of the state's value: equal whatever it holds, never
/// checkpointed.
#[derive(Debug, Default, Clone)]
struct Reshapes {
    all: u64,
    deals: FastMap<u32, u64>,
    accounts: FastMap<u32, u64>,
}

impl Reshapes {
    fn of(&mut self, opp: u32, account: u32) {
        if opp != NONE {
            *self.deals.entry(opp).or_default() += 1;
        }
        if account != NONE {
            *self.accounts.entry(account).or_default() += 1;
        }
    }
}

/// A deal's [`Engine::reshapes`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reshaped {
    all: u64,
    deal: u64,
    account: u32,
    of_account: u64,
}

impl PartialEq for Reshapes {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// The latest time the timelines' items hold (see [`Engine::horizon`]), kept up to date as items are
/// placed, so a rescore does not scan every timeline to find it (about 7 ms at the demo's scale 1).
/// Unknown (found by a scan on the next read) until first read, and after an item that may have held it
/// is taken out. Not part of the state's value: equal whatever it holds, never checkpointed.
#[derive(Debug)]
struct HorizonCache(AtomicI64);

/// [`HorizonCache`] holding nothing known (no item time is `i64::MAX`).
const UNKNOWN: i64 = i64::MAX;

impl Default for HorizonCache {
    fn default() -> Self {
        HorizonCache(AtomicI64::new(UNKNOWN))
    }
}

impl Clone for HorizonCache {
    fn clone(&self) -> Self {
        HorizonCache(AtomicI64::new(self.0.load(Ordering::Relaxed)))
    }
}

impl PartialEq for HorizonCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl HorizonCache {
    fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|&t| t != UNKNOWN)
    }

    fn set(&self, t: i64) {
        self.0.store(t, Ordering::Relaxed);
    }

    /// An item of time `t` was placed.
    fn placed(&mut self, t: Option<i64>) {
        let v = self.0.get_mut();
        if let (Some(t), true) = (t, *v != UNKNOWN) {
            *v = (*v).max(t);
        }
    }

    /// An item of time `t` was taken out: if it may have been the latest, the latest is unknown.
    fn taken(&mut self, t: Option<i64>) {
        let v = self.0.get_mut();
        if t.is_some_and(|t| *v != UNKNOWN && t >= *v) {
            *v = UNKNOWN;
        }
    }
}

/// The time an item placed in a timeline gives the horizon: an activity's creation, and the time it
/// happened unless it is only scheduled; a product event's or touch's time; a ticket's creation. Calls
/// give none.
fn horizon_time(item: &Item) -> Option<i64> {
    match item {
        Item::Act(a) if a.status == Some(ActivityStatus::Scheduled) => Some(a.created),
        Item::Act(a) => Some(a.at.max(a.created)),
        Item::Use(u) => Some(u.at),
        Item::Touch(t) => Some(t.at),
        Item::Ticket(t) => Some(t.created),
        Item::Call(_) => None,
    }
}

/// Inserts keeping `v` ordered by `order`; an element equal under `order` is a duplicate.
fn insert_sorted<T, K: Ord>(v: &mut Vec<T>, item: T, order: impl Fn(&T) -> K) -> bool {
    let k = order(&item);
    // Timelines are most of the engine's memory, and replay fills them one item at a time: growing by an
    // eighth instead of doubling leaves at most an eighth of their capacity unused instead of up to half
    // (peak RSS of the scale-10 replay 146 MB lower than growing by a quarter, 4.29 -> 4.14 GB), and
    // copying more often did not show in the time (BENCHMARKS.md, "Foundations").
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(4));
    }
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

/// Removes the element ordered at `k` from `v`, if there is one.
fn remove_sorted<T, K: Ord>(v: &mut Vec<T>, k: K, order: impl Fn(&T) -> K) -> Option<T> {
    v.binary_search_by(|e| order(e).cmp(&k))
        .ok()
        .map(|i| v.remove(i))
}

/// An observation turned into an item with its resolution: what the state stores. Preparing reads only
/// the entities and the hints (never the timelines), so replay prepares on the decoding thread while
/// another inserts.
#[derive(Debug)]
enum Prepared {
    Item {
        item: Item,
        res: Resolution,
        /// Names and lists met for the first time (rare: boxed, so the common item stays small).
        firsts: Option<Box<Firsts>>,
    },
    Ignored,
}

/// What a prepared item carries the first time its preparer meets a contact list or a name.
#[derive(Debug, Default)]
struct Firsts {
    /// The contact list behind the resolution's group.
    group: Option<Vec<u32>>,
    /// The user's and the event's names.
    user: Option<Box<str>>,
    event: Option<Box<str>>,
}

/// Turns observations into [`Prepared`] items. The `seen` sets only save sending a name twice (a cache,
/// not state: the state keeps the first name it receives).
#[derive(Default)]
struct Preparer {
    seen_users: FastMap<u64, ()>,
    seen_events: FastMap<u64, ()>,
    seen_groups: FastMap<u64, ()>,
    /// The bytes hashed for a hint (reused, not reallocated per event).
    scratch: Vec<u8>,
}

impl Preparer {
    /// The name behind a content id, if this preparer has not sent it yet.
    fn first(seen: &mut FastMap<u64, ()>, id: u64, name: &str) -> Option<Box<str>> {
        seen.insert(id, ()).is_none().then(|| name.into())
    }

    fn prepare(&mut self, ctx: &Context, hints: &mut Hints, obs: &Observation<'_>) -> Prepared {
        let Some(fields) = hint_fields(obs.record) else {
            return Prepared::Ignored;
        };
        let (hint, res, group) =
            hints.intern(ctx, &mut self.scratch, &mut self.seen_groups, fields);
        let key = key_hash(obs.key);
        let (mut user_name, mut event_name) = (None, None);
        let item = match obs.record {
            Record::Activities(a) => {
                let at = a.occurred_at.0;
                let created = a.created_at.map_or(at, |c| c.0);
                Item::Act(Act {
                    known: at.max(created),
                    at,
                    created,
                    key,
                    seq: obs.seq,
                    opp: res.opp,
                    contact: res.contact,
                    group: res.group,
                    hint,
                    ty: a.activity_type,
                    dir: a.direction,
                    status: a.status,
                    duration_s: a.duration_s.unwrap_or(0.0) as f32,
                })
            }
            Record::ProductEvents(e) => {
                let user = match e.user_id.as_deref().or(e.user_email.as_deref()) {
                    Some(u) => {
                        let id = content_id(u);
                        user_name = Self::first(&mut self.seen_users, id, u);
                        id
                    }
                    None => NO_ID,
                };
                let event = content_id(&e.event);
                event_name = Self::first(&mut self.seen_events, event, &e.event);
                debug_assert_eq!(user, hints.user(hint));
                Item::Use(Use {
                    at: e.occurred_at.0,
                    key,
                    seq: obs.seq,
                    event,
                    hint,
                })
            }
            Record::MarketingTouches(t) => Item::Touch(Touch {
                at: t.occurred_at.0,
                key,
                seq: obs.seq,
                contact: res.contact,
                kind: t.kind,
                hint,
            }),
            Record::SupportTickets(t) => Item::Ticket(Box::new(Ticket {
                created: t.created_at.0,
                solved: t.solved_at.map(|s| s.0),
                priority: t.priority,
                version: obs.seq,
                id: t.ticket_id.clone(),
                key,
                hint,
            })),
            Record::Transcripts(t) => Item::Call(Box::new(call_of(t, obs.seq, key, hint))),
            _ => return Prepared::Ignored,
        };
        let firsts = (group.is_some() || user_name.is_some() || event_name.is_some()).then(|| {
            Box::new(Firsts {
                group,
                user: user_name,
                event: event_name,
            })
        });
        Prepared::Item { item, res, firsts }
    }
}

impl EngineState {
    /// Puts a prepared observation in its timelines (or parks it). Returns whether it was new, and the
    /// deal and account it went to.
    fn insert(&mut self, p: Prepared) -> (bool, u32, u32) {
        let Prepared::Item { item, res, firsts } = p else {
            return (false, NONE, NONE);
        };
        self.applied += 1;
        let Firsts { group, user, event } = firsts.map(|f| *f).unwrap_or_default();
        if let Some(list) = group {
            self.contact_groups.entry(res.group).or_insert(list);
        }
        if let Item::Use(u) = &item {
            if let Some(name) = user {
                // The user's id is the content id of its name (see `user_of_fields`).
                self.users.names.entry(content_id(&name)).or_insert(name);
            }
            if let Some(name) = event {
                self.events.names.entry(u.event).or_insert(name);
            }
        }
        self.place(item, &res)
    }

    /// Puts an item where its resolution says, with the resolution's deal and contacts.
    fn place(&mut self, item: Item, res: &Resolution) -> (bool, u32, u32) {
        let t = (!unplaced(item.kind(), res))
            .then(|| horizon_time(&item))
            .flatten();
        let out = self.place_in_timelines(item, res);
        self.horizon.placed(t);
        out
    }

    fn place_in_timelines(&mut self, item: Item, res: &Resolution) -> (bool, u32, u32) {
        if unplaced(item.kind(), res) {
            let kind = item.kind();
            let slot = (item.hint(), kind as u8, item.key());
            let new = self.parked.insert(slot, item).is_none();
            if new {
                *self
                    .unattributed
                    .entry(kind.as_str().to_string())
                    .or_default() += 1;
            }
            return (new, NONE, NONE);
        }
        match item {
            Item::Act(mut act) => {
                act.opp = res.opp;
                act.contact = res.contact;
                act.group = res.group;
                let mut new = false;
                if act.opp != NONE {
                    let deal = &mut self.deals[act.opp as usize];
                    new |= insert_sorted(&mut deal.acts, act, |e| (e.known, e.key));
                    if act.created < act.at && act.ty == ActivityType::Meeting {
                        insert_sorted(&mut deal.booked, act, |e| (e.created, e.key));
                    }
                }
                if res.account != NONE {
                    new |= insert_sorted(&mut self.accounts[res.account as usize].acts, act, |e| {
                        (e.known, e.key)
                    });
                }
                (new, act.opp, res.account)
            }
            Item::Use(u) => {
                let usage = &mut self.accounts[res.account as usize].usage;
                (
                    insert_sorted(usage, u, |u| (u.at, u.key)),
                    NONE,
                    res.account,
                )
            }
            Item::Touch(mut t) => {
                t.contact = res.contact;
                let touches = &mut self.accounts[res.account as usize].touches;
                (
                    insert_sorted(touches, t, |u| (u.at, u.key)),
                    NONE,
                    res.account,
                )
            }
            Item::Ticket(t) => {
                let tickets = &mut self.accounts[res.account as usize].tickets;
                let new = insert_sorted(tickets, *t, |x| (x.created, x.id.clone()));
                (new, NONE, res.account)
            }
            Item::Call(c) => {
                let calls = &mut self.deals[res.opp as usize].calls;
                (
                    insert_sorted(calls, *c, |x| (x.known, x.id.clone())),
                    res.opp,
                    NONE,
                )
            }
        }
    }

    /// Takes out the item of this kind and key placed by `res` at `time`. Returns it, with the deal and
    /// account it was taken from.
    fn unplace(
        &mut self,
        kind: Kind,
        key: u64,
        hint: u64,
        time: i64,
        res: &Resolution,
    ) -> Option<(Item, u32, u32)> {
        let out = self.take_out(kind, key, hint, time, res);
        if let (Some((item, opp, account)), false) = (&out, unplaced(kind, res)) {
            self.horizon.taken(horizon_time(item));
            self.reshapes.of(*opp, *account);
        }
        out
    }

    fn take_out(
        &mut self,
        kind: Kind,
        key: u64,
        hint: u64,
        time: i64,
        res: &Resolution,
    ) -> Option<(Item, u32, u32)> {
        if unplaced(kind, res) {
            let item = self.parked.remove(&(hint, kind as u8, key))?;
            if let Some(n) = self.unattributed.get_mut(kind.as_str()) {
                *n -= 1;
                if *n == 0 {
                    self.unattributed.remove(kind.as_str());
                }
            }
            return Some((item, NONE, NONE));
        }
        let (opp, account) = (res.opp, res.account);
        match kind {
            Kind::Activities => {
                let mut found = None;
                if opp != NONE {
                    let deal = &mut self.deals[opp as usize];
                    found = remove_sorted(&mut deal.acts, (time, key), |e| (e.known, e.key));
                    if let Some(i) = deal.booked.iter().position(|e| e.key == key) {
                        deal.booked.remove(i);
                    }
                }
                if account != NONE {
                    let acts = &mut self.accounts[account as usize].acts;
                    let there = remove_sorted(acts, (time, key), |e| (e.known, e.key));
                    found = found.or(there);
                }
                found.map(|a| (Item::Act(a), opp, account))
            }
            Kind::ProductEvents => {
                let usage = &mut self.accounts[account as usize].usage;
                remove_sorted(usage, (time, key), |e| (e.at, e.key))
                    .map(|u| (Item::Use(u), NONE, account))
            }
            Kind::MarketingTouches => {
                let touches = &mut self.accounts[account as usize].touches;
                remove_sorted(touches, (time, key), |e| (e.at, e.key))
                    .map(|t| (Item::Touch(t), NONE, account))
            }
            Kind::SupportTickets => {
                let tickets = &mut self.accounts[account as usize].tickets;
                let i = tickets.iter().position(|t| t.key == key)?;
                Some((Item::Ticket(Box::new(tickets.remove(i))), NONE, account))
            }
            Kind::Transcripts => {
                let calls = &mut self.deals[opp as usize].calls;
                let i = calls.iter().position(|c| c.key == key)?;
                Some((Item::Call(Box::new(calls.remove(i))), opp, NONE))
            }
            _ => None,
        }
    }

    /// Takes out every item of hint `h` (of kind `kind`) placed by `res`.
    fn take_hint(&mut self, h: u64, kind: Kind, res: &Resolution) -> Vec<Item> {
        let out = self.take_hint_out(h, kind, res);
        if !unplaced(kind, res) {
            for item in &out {
                self.horizon.taken(horizon_time(item));
            }
            if !out.is_empty() {
                self.reshapes.of(res.opp, res.account);
            }
        }
        out
    }

    fn take_hint_out(&mut self, h: u64, kind: Kind, res: &Resolution) -> Vec<Item> {
        if unplaced(kind, res) {
            let keys: Vec<(u64, u8, u64)> = self
                .parked
                .range((h, 0, 0)..=(h, u8::MAX, u64::MAX))
                .map(|(k, _)| *k)
                .collect();
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(item) = self.parked.remove(&k) {
                    if let Some(n) = self.unattributed.get_mut(item.kind().as_str()) {
                        *n -= 1;
                        if *n == 0 {
                            self.unattributed.remove(item.kind().as_str());
                        }
                    }
                    out.push(item);
                }
            }
            return out;
        }
        fn take<T: Clone>(v: &mut Vec<T>, mine: impl Fn(&T) -> bool) -> Vec<T> {
            let out: Vec<T> = v.iter().filter(|x| mine(x)).cloned().collect();
            if !out.is_empty() {
                v.retain(|x| !mine(x));
            }
            out
        }
        let (opp, account) = (res.opp, res.account);
        let mut out = Vec::new();
        match kind {
            Kind::Activities => {
                let mut acts = Vec::new();
                if opp != NONE {
                    let deal = &mut self.deals[opp as usize];
                    acts = take(&mut deal.acts, |a| a.hint == h);
                    take(&mut deal.booked, |a| a.hint == h);
                }
                if account != NONE {
                    for a in take(&mut self.accounts[account as usize].acts, |a| a.hint == h) {
                        if !acts.iter().any(|x| x.key == a.key) {
                            acts.push(a);
                        }
                    }
                }
                out.extend(acts.into_iter().map(Item::Act));
            }
            Kind::ProductEvents => {
                let usage = &mut self.accounts[account as usize].usage;
                out.extend(take(usage, |u| u.hint == h).into_iter().map(Item::Use));
            }
            Kind::MarketingTouches => {
                let touches = &mut self.accounts[account as usize].touches;
                out.extend(take(touches, |u| u.hint == h).into_iter().map(Item::Touch));
            }
            Kind::SupportTickets => {
                let tickets = &mut self.accounts[account as usize].tickets;
                out.extend(
                    take(tickets, |u| u.hint == h)
                        .into_iter()
                        .map(|t| Item::Ticket(Box::new(t))),
                );
            }
            Kind::Transcripts => {
                let calls = &mut self.deals[opp as usize].calls;
                out.extend(
                    take(calls, |u| u.hint == h)
                        .into_iter()
                        .map(|c| Item::Call(Box::new(c))),
                );
            }
            _ => {}
        }
        out
    }

    /// Where every item is, by (kind, key).
    fn locations(&self) -> FastMap<(u8, u64), Loc> {
        let mut index = FastMap::default();
        let mut add = |item: Item| {
            let loc = Loc {
                hint: item.hint(),
                time: item.time(),
            };
            index.insert((item.kind() as u8, item.key()), loc);
        };
        for d in &self.deals {
            d.acts.iter().for_each(|a| add(Item::Act(*a)));
            d.calls
                .iter()
                .for_each(|c| add(Item::Call(Box::new(c.clone()))));
        }
        for a in &self.accounts {
            a.acts.iter().for_each(|x| add(Item::Act(*x)));
            a.usage.iter().for_each(|x| add(Item::Use(*x)));
            a.touches.iter().for_each(|x| add(Item::Touch(*x)));
            a.tickets
                .iter()
                .for_each(|x| add(Item::Ticket(Box::new(x.clone()))));
        }
        for item in self.parked.values() {
            add(item.clone());
        }
        index
    }
}

/// The engine: the entities it computes about (its own [`Context`]), and its state.
pub struct Engine {
    ctx: Context,
    pub(crate) state: EngineState,
    hints: Hints,
    prep: Preparer,
    /// Where each item is, by (kind, key): built on the first live update (a replay never needs it).
    index: Option<FastMap<(u8, u64), Loc>>,
}

/// How many deals, or accounts, one part of a checkpoint holds. A checkpoint is written and read a part
/// at a time: restoring never holds the whole checkpoint's bytes beside the state they decode into (at
/// scale 10 the bytes are about 2.2 GB), only one part's (64 accounts of the scale-10 demo average 7 MB;
/// parts of 4,096 held 400 MB).
const PART: usize = 64;

/// A checkpoint's first part: everything but the deals' and accounts' timelines, which follow in parts
/// of [`PART`]. Each part is framed as `[u64 LE length][postcard bytes]`.
#[derive(Serialize)]
struct HeadRef<'a> {
    format: u32,
    position: LogPosition,
    slots: [Vec<String>; 3],
    hints: Vec<(u64, &'a Hint, Resolution)>,
    users: &'a Interner,
    events: &'a Interner,
    contact_groups: &'a BTreeMap<u64, Vec<u32>>,
    parked: &'a BTreeMap<(u64, u8, u64), Item>,
    unattributed: &'a BTreeMap<String, u64>,
    applied: u64,
    deals: u64,
    accounts: u64,
}

/// [`HeadRef`] as read back.
#[derive(Deserialize)]
struct Head {
    format: u32,
    position: LogPosition,
    slots: [Vec<String>; 3],
    hints: Vec<(u64, Hint, Resolution)>,
    users: Interner,
    events: Interner,
    contact_groups: BTreeMap<u64, Vec<u32>>,
    parked: BTreeMap<(u64, u8, u64), Item>,
    unattributed: BTreeMap<String, u64>,
    applied: u64,
    deals: u64,
    accounts: u64,
}

/// A checkpoint decoded from its bytes, not yet laid over the entities (see [`Engine::resume`]).
pub struct Checkpoint(Saved);

impl Checkpoint {
    /// Decodes a checkpoint's bytes ([`Engine::checkpoint`]'s).
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
        Checkpoint::read(bytes, bytes.len() as u64)
    }

    /// Reads a checkpoint of `len` bytes from `r` a part at a time, and then reads `r` to its end (a
    /// reader that checks a checksum there, as the store's named state does, fails if the bytes are
    /// not the ones written: then nothing decoded is returned).
    pub fn read(mut r: impl Read, len: u64) -> Result<Checkpoint, String> {
        let unreadable =
            |e: &dyn std::fmt::Display| format!("engine checkpoint is not readable: {e}");
        let mut left = len;
        let mut buf = Vec::new();
        let head: Head = read_part(&mut r, &mut buf, &mut left)?;
        if head.format != STATE_FORMAT {
            return Err(format!(
                "engine checkpoint has format {}, this build reads {STATE_FORMAT}",
                head.format
            ));
        }
        // Every part holds at least one entity: counts beyond what the bytes could hold are damage.
        let plausible = |n: u64| n <= left;
        if !plausible(head.deals) || !plausible(head.accounts) {
            return Err(unreadable(&"its counts do not fit its length"));
        }
        let mut deals = Vec::with_capacity(head.deals as usize);
        while (deals.len() as u64) < head.deals {
            let part: Vec<DealState> = read_part(&mut r, &mut buf, &mut left)?;
            if part.is_empty() {
                return Err(unreadable(&"an empty part"));
            }
            deals.extend(part);
        }
        let mut accounts = Vec::with_capacity(head.accounts as usize);
        while (accounts.len() as u64) < head.accounts {
            let part: Vec<AccountState> = read_part(&mut r, &mut buf, &mut left)?;
            if part.is_empty() {
                return Err(unreadable(&"an empty part"));
            }
            accounts.extend(part);
        }
        if deals.len() as u64 != head.deals || accounts.len() as u64 != head.accounts {
            return Err(unreadable(&"its parts do not add up to its counts"));
        }
        // To the end: nothing may follow, and a checking reader checks there.
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).map_err(|e| unreadable(&e))?;
        if !rest.is_empty() {
            return Err(unreadable(&"bytes follow its last part"));
        }
        Ok(Checkpoint(Saved {
            position: head.position,
            slots: head.slots,
            hints: head.hints,
            state: EngineState {
                deals,
                accounts,
                users: head.users,
                events: head.events,
                contact_groups: head.contact_groups,
                parked: head.parked,
                unattributed: head.unattributed,
                applied: head.applied,
                horizon: HorizonCache::default(),
                reshapes: Reshapes::default(),
            },
        }))
    }

    /// The log position the checkpoint reflects.
    pub fn position(&self) -> LogPosition {
        self.0.position
    }
}

/// Reads one `[u64 LE length][postcard bytes]` part into `buf` and decodes it; `left` bounds the
/// length (a damaged length is an error, not an allocation of whatever it says).
fn read_part<T: serde::de::DeserializeOwned>(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
    left: &mut u64,
) -> Result<T, String> {
    let unreadable = |e: &dyn std::fmt::Display| format!("engine checkpoint is not readable: {e}");
    let mut n = [0u8; 8];
    r.read_exact(&mut n).map_err(|e| unreadable(&e))?;
    let n = u64::from_le_bytes(n);
    if n.saturating_add(8) > *left {
        return Err(unreadable(&"a part runs past its end"));
    }
    *left -= n + 8;
    buf.clear();
    buf.resize(usize::try_from(n).map_err(|e| unreadable(&e))?, 0);
    r.read_exact(buf).map_err(|e| unreadable(&e))?;
    postcard::from_bytes(buf).map_err(|e| unreadable(&e))
}

/// Writes one part (see [`read_part`]), encoding it in `buf` first.
fn write_part<T: Serialize + ?Sized>(
    w: &mut impl Write,
    buf: &mut Vec<u8>,
    value: &T,
) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("engine checkpoint could not be written: {e}");
    buf.clear();
    let bytes = postcard::to_extend(value, std::mem::take(buf)).map_err(|e| failed(&e))?;
    w.write_all(&(bytes.len() as u64).to_le_bytes())
        .and_then(|()| w.write_all(&bytes))
        .map_err(|e| failed(&e))?;
    *buf = bytes;
    Ok(())
}

struct Saved {
    position: LogPosition,
    slots: [Vec<String>; 3],
    hints: Vec<(u64, Hint, Resolution)>,
    state: EngineState,
}

impl Engine {
    /// An engine with no events yet over these entities.
    pub fn new(ctx: Context) -> Engine {
        let state = EngineState {
            deals: vec![DealState::default(); ctx.opps.len()],
            accounts: vec![AccountState::default(); ctx.accounts.len()],
            ..EngineState::default()
        };
        Engine {
            ctx,
            state,
            hints: Hints::default(),
            prep: Preparer::default(),
            index: None,
        }
    }

    /// When a deal last moved, as known at `as_of`: the latest of its creation, its stage entries and
    /// the activities and calls on it that had happened by then (a meeting booked ahead counts once
    /// it takes place). What "stalled" is measured from.
    pub fn last_activity(&self, opp: u32, as_of: winsignal_core::Ts) -> winsignal_core::Ts {
        let Some(o) = self.ctx.opps.get(opp as usize) else {
            return winsignal_core::Ts(i64::MIN);
        };
        let t = as_of.0;
        let mut last = o.created.0;
        for (at, _) in o.stages.iter().filter(|(at, _)| at.0 < t) {
            last = last.max(at.0);
        }
        if let Some(deal) = self.state.deals.get(opp as usize) {
            // Activities are in (known, key) order and none happened after it became known: read
            // back from the last one known by then, until one became known no later than the latest
            // found (every one before it happened no later).
            for a in crate::eval::known_before(&deal.acts, t, |a| a.known)
                .iter()
                .rev()
            {
                if a.known <= last {
                    break;
                }
                last = last.max(a.at);
            }
            for a in &deal.booked {
                if a.known < t && a.at < t {
                    last = last.max(a.at);
                }
            }
            // Calls are in (known, id) order.
            if let Some(c) = crate::eval::known_before(&deal.calls, t, |c| c.known).last() {
                last = last.max(c.known);
            }
        }
        winsignal_core::Ts(last)
    }

    /// How many times deal `opp`'s timelines or its account's lost an item, or the entities its values
    /// read changed, since the engine started (see [`crate::memo`]): for every deal, for the deal, and
    /// for its account (with the account's slot, as a deal can move to another account). While it is
    /// unchanged, those timelines only gained items.
    pub fn reshapes(&self, opp: u32) -> Reshaped {
        let r = &self.state.reshapes;
        let account = self.ctx.opps.get(opp as usize).map_or(NONE, |o| o.account);
        let count = |m: &FastMap<u32, u64>, k: u32| m.get(&k).copied().unwrap_or(0);
        Reshaped {
            all: r.all,
            deal: count(&r.deals, opp),
            account,
            of_account: count(&r.accounts, account),
        }
    }

    /// The entities, as the engine currently knows them.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The entities, for keeping after the engine is dropped.
    pub fn into_context(self) -> Context {
        self.ctx
    }

    /// One deal's timelines (`opp` is a slot of [`Engine::context`]).
    pub fn deal(&self, opp: u32) -> &DealState {
        &self.state.deals[opp as usize]
    }

    /// One account's timelines (`account` is a slot of [`Engine::context`]).
    pub fn account(&self, account: u32) -> &AccountState {
        &self.state.accounts[account as usize]
    }

    /// Every deal's timelines, by slot.
    pub fn deals(&self) -> &[DealState] {
        &self.state.deals
    }

    /// Every account's timelines, by slot.
    pub fn accounts(&self) -> &[AccountState] {
        &self.state.accounts
    }

    /// The end of the data the engine holds: the latest time anywhere in the entities and the placed
    /// items (an activity's creation, and its time unless only scheduled; a product event's or touch's
    /// time; a ticket's creation). Kept as items are placed, so reading it is cheap.
    pub fn horizon(&self) -> winsignal_core::Ts {
        let items = match self.state.horizon.get() {
            Some(t) => t,
            None => {
                let t = self.scan_horizon();
                self.state.horizon.set(t);
                t
            }
        };
        winsignal_core::Ts(items.max(self.context().latest_entity_time.0))
    }

    /// The latest time of the placed items, from every timeline.
    fn scan_horizon(&self) -> i64 {
        let mut latest = i64::MIN;
        let act = |x: &Act| horizon_time(&Item::Act(*x)).unwrap_or(i64::MIN);
        for a in &self.state.accounts {
            latest = a.acts.iter().map(act).fold(latest, i64::max);
            let last = [
                a.usage.last().map(|x| x.at),
                a.touches.last().map(|x| x.at),
                a.tickets.iter().map(|x| x.created).max(),
            ];
            latest = last.into_iter().flatten().fold(latest, i64::max);
        }
        for d in &self.state.deals {
            latest = d.acts.iter().map(act).fold(latest, i64::max);
        }
        latest
    }

    /// The id of a product event's user (a hash of the user id or e-mail; see [`Engine::user_name`]),
    /// or [`NO_ID`] when the event names none.
    pub fn user_of(&self, u: &Use) -> u64 {
        self.hints.user(u.hint)
    }

    /// A product user's id or e-mail, from [`Engine::user_of`].
    pub fn user_name(&self, user: u64) -> Option<&str> {
        self.state.users.name(user)
    }

    /// A product event's name, from [`Use::event`].
    pub fn event_name(&self, event: u64) -> Option<&str> {
        self.state.events.name(event)
    }

    /// The id [`Use::event`] holds for an event name, if any product event has it.
    pub fn event_id(&self, name: &str) -> Option<u64> {
        self.state.events.get(name)
    }

    /// The contacts of an activity with more than one, from [`Act::group`].
    pub fn contact_group(&self, group: u64) -> Option<&[u32]> {
        self.state.contact_groups.get(&group).map(|g| &g[..])
    }

    /// Events nothing ties to a known deal or account (yet), by kind.
    pub fn unattributed(&self) -> &BTreeMap<String, u64> {
        &self.state.unattributed
    }

    /// A digest of the timelines, names and parked items (not of [`Engine::applied`]): equal for two
    /// engines that hold the same events over entities in the same slots, whatever order they came in.
    pub fn state_digest(&self) -> u64 {
        let state = EngineState {
            applied: 0,
            ..self.state.clone()
        };
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        // Serialising plain data into a hasher cannot fail.
        let _ = postcard::to_io(&state, &mut HashWriter(&mut hasher));
        hasher.digest()
    }

    /// Observations applied (replayed or live), repeats included.
    pub fn applied(&self) -> u64 {
        self.state.applied
    }

    /// Builds the state by replaying everything in the store: the event log in event-time order, then
    /// tickets and transcripts. Every item goes through the same prepare-then-insert steps as
    /// [`Engine::apply`]; for the log, a second thread prepares what the store decoded while this one
    /// inserts.
    pub fn replay(
        ctx: Context,
        store: &(impl StoreRead + ?Sized),
        progress: &mut dyn FnMut(u64),
    ) -> winsignal_store::Result<Engine> {
        let mut engine = Engine::new(ctx);
        let kinds = [
            Kind::Activities,
            Kind::ProductEvents,
            Kind::MarketingTouches,
        ];
        let events = store.events(&kinds)?;
        let mut n = 0u64;
        let mut failure = None;
        let Engine {
            ctx,
            state,
            hints,
            prep,
            ..
        } = &mut engine;
        let ctx: &Context = ctx;
        std::thread::scope(|scope| {
            let (tx, rx) =
                std::sync::mpsc::sync_channel::<winsignal_store::Result<Vec<Prepared>>>(8);
            // Inserted batches go back to the preparing thread to be refilled, instead of a fresh
            // allocation (and a fresh page-zeroing pass by the kernel) per batch.
            let (recycle, reuse) = std::sync::mpsc::sync_channel::<Vec<Prepared>>(16);
            let (prep, hints) = (&mut *prep, &mut *hints);
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
                            hints,
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
                let obs = Observation {
                    seq: rec.version,
                    key: &rec.id,
                    record: &rec.record,
                };
                state.insert(prep.prepare(ctx, hints, &obs));
                n += 1;
            }
        }
        progress(n);
        Ok(engine)
    }

    /// Applies one event (or ticket, or transcript). Arrival order does not matter: late and out-of-order
    /// items are inserted in place; a new version (a higher `seq`) replaces the one held under the same
    /// key wherever it was; an exact repeat or an older version changes nothing; an event whose entity
    /// has not arrived is parked until it does. Returns what happened and the deals and accounts whose
    /// inputs changed.
    pub fn apply(&mut self, obs: &Observation<'_>) -> (Applied, Touched) {
        self.apply_after(obs, Before::Unknown)
    }

    /// [`Engine::apply`], told what the log holds before `obs` under its key. Without it the engine
    /// finds an earlier version through an index of every item it holds, built on first use (about a
    /// second for the scale-1 demo's 3.8 million items): the cost a process that restored a
    /// checkpoint to apply a few new events does not need to pay.
    pub fn apply_after(&mut self, obs: &Observation<'_>, before: Before<'_>) -> (Applied, Touched) {
        // Where the earlier version is held, when the log says so and no index is built yet.
        let told = match (&self.index, before) {
            (None, Before::Nothing) => Some(None),
            (None, Before::Version(old)) => Some(self.locate(&old)),
            _ => None,
        };
        let p = self.prep.prepare(&self.ctx, &mut self.hints, obs);
        let Prepared::Item { item, res, .. } = &p else {
            return (Applied::Ignored, Touched::default());
        };
        let (kind, key, res) = (item.kind(), item.key(), *res);
        let loc = Loc {
            hint: item.hint(),
            time: item.time(),
        };
        let new_version = item.version();
        let new_item = item.clone();
        let old = match told {
            Some(old) => old,
            None => self
                .index
                .get_or_insert_with(|| self.state.locations())
                .get(&(kind as u8, key))
                .copied(),
        };
        let mut touched = Touched::default();
        let mut applied = Applied::Added;
        if let Some(old) = old {
            let old_res = self.hints.resolution(old.hint);
            if let Some((held, deal, account)) =
                self.state.unplace(kind, key, old.hint, old.time, &old_res)
            {
                // The held item carries its hint's current resolution, as the new one does.
                let same = held == new_item;
                if same || held.version() >= new_version {
                    // Keep what was there.
                    self.state.place(held, &old_res);
                    self.state.applied += 1;
                    let what = if same {
                        Applied::Duplicate
                    } else {
                        Applied::Stale
                    };
                    return (what, touched);
                }
                touched.add(deal, account);
                applied = Applied::Replaced;
            }
        }
        let (_, deal, account) = self.state.insert(p);
        if let Some(index) = &mut self.index {
            index.insert((kind as u8, key), loc);
        }
        if applied == Applied::Added && unplaced(kind, &res) {
            applied = Applied::Unattributed;
        }
        touched.add(deal, account);
        (applied, self.with_account_deals(touched))
    }

    /// Where the engine holds the item of `obs` (its hint and its time), if it reads one from it.
    /// Side-effect free but for interning the hint, which applying `obs` did before.
    fn locate(&mut self, obs: &Observation<'_>) -> Option<Loc> {
        match Preparer::default().prepare(&self.ctx, &mut self.hints, obs) {
            Prepared::Item { item, .. } => Some(Loc {
                hint: item.hint(),
                time: item.time(),
            }),
            Prepared::Ignored => None,
        }
    }

    /// Adds the deals of every touched account (their views read the account's timelines).
    fn with_account_deals(&self, mut touched: Touched) -> Touched {
        for &a in &touched.accounts {
            if let Some(info) = self.ctx.accounts.get(a as usize) {
                touched.deals.extend(info.opportunities.iter().copied());
            }
        }
        touched
    }

    /// Adds an entity record (account, contact, rep, opportunity, stage entry, contact role, product
    /// user) or replaces the version held under its id. See [`Engine::upsert_entities`].
    pub fn upsert_entity(&mut self, record: &Record) -> Touched {
        self.upsert_entities(std::iter::once(record))
    }

    /// Adds entity records or replaces the versions held under their ids: new entities get new slots,
    /// everything derived from the entities is brought up to date, events tied to them are resolved
    /// again (parked events whose entity arrived are placed; an event whose entity changed moves).
    /// Returns the deals and accounts whose inputs changed; a change that can reach every deal (a deal
    /// closing feeds prior wins and lookalike profiles, a new account can join a family) touches every
    /// deal. Records of event kinds are ignored (use [`Engine::apply`]).
    pub fn upsert_entities<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> Touched {
        let (changed, before) = self.ctx.upsert(records);
        let Some(before) = before else {
            return Touched::default();
        };
        let ctx = &self.ctx;
        self.state
            .deals
            .resize_with(ctx.opps.len(), DealState::default);
        self.state
            .accounts
            .resize_with(ctx.accounts.len(), AccountState::default);
        let mut touched = Touched::default();
        let mut everyone = false;
        for (i, p) in &before.opps {
            let o = &ctx.opps[*i as usize];
            match p {
                None => {
                    touched.deals.insert(*i);
                    everyone |= o.closed.is_some();
                }
                Some(p) if p != o => {
                    touched.deals.insert(*i);
                    everyone |= p.outcome != o.outcome
                        || p.closed != o.closed
                        || p.account != o.account
                        || p.roles != o.roles;
                }
                Some(_) => {}
            }
        }
        for (i, p) in &before.accounts {
            let a = &ctx.accounts[*i as usize];
            match p {
                None => {
                    touched.accounts.insert(*i);
                    everyone = true;
                }
                Some(p) if p != a => {
                    touched.accounts.insert(*i);
                    let lists_only = p.opportunities != a.opportunities || p.contacts != a.contacts;
                    let mut same_fields = p.clone();
                    same_fields.opportunities.clone_from(&a.opportunities);
                    same_fields.contacts.clone_from(&a.contacts);
                    everyone |= !(lists_only && same_fields == *a);
                }
                Some(_) => {}
            }
        }
        for (i, p) in &before.contacts {
            let c = &ctx.contacts[*i as usize];
            match p {
                None if c.account != NONE => {
                    touched.accounts.insert(c.account);
                }
                None => {}
                Some(p) => everyone |= p != c,
            }
        }
        if changed.identities {
            let only = changed
                .only_opportunities
                .then_some(&changed.opportunities[..]);
            touched.extend(self.resolve_again(only));
        }
        if everyone {
            touched.deals.extend(0..self.ctx.opps.len() as u32);
        }
        let touched = self.with_account_deals(touched);
        let reshapes = &mut self.state.reshapes;
        if everyone {
            reshapes.all += 1;
        } else {
            touched.deals.iter().for_each(|&d| reshapes.of(d, NONE));
            touched.accounts.iter().for_each(|&a| reshapes.of(NONE, a));
        }
        touched
    }

    /// Resolves the hints against the entities again and moves the items whose resolution changed:
    /// every hint, or when only opportunities changed (`only`: their ids, 18-character, lower case),
    /// the hints that name one of them. Opportunities are read by resolution only through the
    /// opportunity field of activities and transcripts (the deal, and the account of the deal), so no
    /// other hint can resolve differently.
    fn resolve_again(&mut self, only: Option<&[String]>) -> Touched {
        let mut touched = Touched::default();
        let mut moved = Vec::new();
        let Hints {
            map,
            fields,
            by_opp,
        } = &mut self.hints;
        let hints: Vec<u64> = match only {
            Some(ids) => {
                let mut hs: Vec<u64> = ids
                    .iter()
                    .flat_map(|id| by_opp.get(&opp_key(id)).into_iter().flatten().copied())
                    .collect();
                hs.sort_unstable();
                hs.dedup();
                hs
            }
            None => map.keys().copied().collect(),
        };
        for h in hints {
            let Some(Met {
                res: old, index, ..
            }) = map.get_mut(&h)
            else {
                continue;
            };
            let hint = &fields[*index as usize];
            let (new, list) = hint.resolve(&self.ctx);
            if new != *old {
                moved.push((h, hint.kind, *old, new, list));
                *old = new;
            }
        }
        moved.sort_unstable_by_key(|m| m.0);
        for (h, kind, old, new, list) in moved {
            if let Some(list) = list {
                self.state.contact_groups.entry(new.group).or_insert(list);
            }
            for item in self.state.take_hint(h, kind, &old) {
                if !unplaced(kind, &old) {
                    touched.add(old.opp, old.account);
                }
                let (_, deal, account) = self.state.place(item, &new);
                touched.add(deal, account);
            }
        }
        touched
    }

    /// Brings the engine from the store state at `from` (the position its checkpoint reflects) to the
    /// state `store` reads (take a snapshot for one consistent state): applies the entity records and
    /// events committed after `from`, in commit order, and returns what they touched. Every version
    /// is applied, the ones replaced later in the stream included: a newer version replaces the older
    /// by key, so the result is the engine a replay of the newer state builds.
    pub fn catch_up(
        &mut self,
        store: &(impl StoreRead + ?Sized),
        from: LogPosition,
    ) -> winsignal_store::Result<Touched> {
        let changes = store.records_since(from)?;
        let entities = changes
            .iter()
            .filter(|c| Context::READS.contains(&c.record.kind))
            .map(|c| &c.record.record);
        let mut touched = self.upsert_entities(entities);
        // The log says which earlier version each change replaces: the engine is told (see
        // [`Engine::apply_after`]) instead of indexing everything it holds to find out.
        for c in &changes {
            if matches!(c.record.kind, Kind::SupportTickets | Kind::Transcripts) {
                let older = match c.replaces {
                    Some(version) => store
                        .versions(c.record.kind, &c.record.id)?
                        .into_iter()
                        .find(|r| r.version == version),
                    None => None,
                };
                let before = match (&older, c.replaces) {
                    (_, None) => Before::Nothing,
                    (Some(r), Some(_)) => Before::Version(Observation {
                        seq: r.version,
                        key: &r.id,
                        record: &r.record,
                    }),
                    (None, Some(_)) => Before::Unknown,
                };
                let obs = Observation {
                    seq: c.record.version,
                    key: &c.record.id,
                    record: &c.record.record,
                };
                touched.extend(self.apply_after(&obs, before).1);
            }
        }
        let kinds = [
            Kind::Activities,
            Kind::ProductEvents,
            Kind::MarketingTouches,
        ];
        let mut events = store.events_since(from, &kinds)?.peekable();
        while events.peek().is_some() {
            let chunk = events
                .by_ref()
                .take(REPLAY_BATCH)
                .collect::<winsignal_store::Result<Vec<_>>>()?;
            let replaced: Vec<u64> = chunk.iter().filter_map(|c| c.supersedes).collect();
            let older: FastMap<u64, winsignal_store::StoredEvent> = if replaced.is_empty() {
                FastMap::default()
            } else {
                store
                    .events_by_seq(&replaced)?
                    .into_iter()
                    .map(|e| (e.seq, e))
                    .collect()
            };
            for change in &chunk {
                let before = match change.supersedes {
                    None => Before::Nothing,
                    Some(seq) => older.get(&seq).map_or(Before::Unknown, |e| {
                        Before::Version(Observation {
                            seq: e.seq,
                            key: &e.key,
                            record: &e.record,
                        })
                    }),
                };
                let obs = Observation {
                    seq: change.event.seq,
                    key: &change.event.key,
                    record: &change.event.record,
                };
                touched.extend(self.apply_after(&obs, before).1);
            }
        }
        Ok(touched)
    }

    /// The engine's state and the log position it reflects, as bytes; read back with
    /// [`Engine::restore`].
    pub fn checkpoint(&self, position: LogPosition) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_checkpoint(&mut out, position);
        out
    }

    /// Writes a checkpoint to `w` as it is serialised (no copy of the whole state in memory); the bytes
    /// are [`Engine::checkpoint`]'s.
    pub fn write_checkpoint(&self, mut w: impl Write, position: LogPosition) -> Result<(), String> {
        let st = &self.state;
        let head = HeadRef {
            format: STATE_FORMAT,
            position,
            slots: self.ctx.slot_ids(),
            hints: self.hints.sorted(),
            users: &st.users,
            events: &st.events,
            contact_groups: &st.contact_groups,
            parked: &st.parked,
            unattributed: &st.unattributed,
            applied: st.applied,
            deals: st.deals.len() as u64,
            accounts: st.accounts.len() as u64,
        };
        let mut buf = Vec::new();
        write_part(&mut w, &mut buf, &head)?;
        for part in st.deals.chunks(PART) {
            write_part(&mut w, &mut buf, part)?;
        }
        for part in st.accounts.chunks(PART) {
            write_part(&mut w, &mut buf, part)?;
        }
        Ok(())
    }

    /// Restores a checkpoint over `ctx`, the entities as they are now (every entity the checkpoint
    /// knew, and any that arrived since; a context read from the store will do): the engine is as if it
    /// had applied the checkpoint's events to these entities. Returns it with the log position the
    /// checkpoint reflects; apply what came after (see [`Engine::catch_up`]).
    pub fn restore(bytes: &[u8], ctx: Context) -> Result<(Engine, LogPosition), String> {
        Engine::resume(Checkpoint::decode(bytes)?, ctx)
    }

    /// [`Engine::restore`] from a checkpoint already decoded (which needs no entities, so it can be
    /// decoded while they are read).
    pub fn resume(checkpoint: Checkpoint, ctx: Context) -> Result<(Engine, LogPosition), String> {
        Engine::from_saved(checkpoint.0, ctx)
    }

    /// [`Engine::restore`], reading the checkpoint's `len` bytes from `r` a part at a time.
    pub fn restore_from(
        r: impl Read,
        len: u64,
        ctx: Context,
    ) -> Result<(Engine, LogPosition), String> {
        Engine::resume(Checkpoint::read(r, len)?, ctx)
    }

    fn from_saved(saved: Saved, mut ctx: Context) -> Result<(Engine, LogPosition), String> {
        // The entities the checkpoint knew keep their slots; new ones follow.
        ctx.arrange(&saved.slots)?;
        if saved.state.deals.len() != saved.slots[0].len()
            || saved.state.accounts.len() != saved.slots[1].len()
        {
            return Err("engine checkpoint is inconsistent".to_string());
        }
        let mut engine = Engine {
            ctx,
            state: saved.state,
            hints: Hints::default(),
            prep: Preparer::default(),
            index: None,
        };
        engine.hints.map.reserve(saved.hints.len());
        engine.hints.fields.reserve_exact(saved.hints.len());
        for (h, hint, r) in saved.hints {
            // Checked when read back (`PackedHint`), so the fields are there.
            let (user, opp) = unpack(&hint.packed).map_or((NO_ID, None), |(f, _)| {
                (user_of_fields(hint.kind, &f), opp_named(hint.kind, &f))
            });
            engine.hints.push(h, hint, r, user, opp);
        }
        engine
            .state
            .deals
            .resize_with(engine.ctx.opps.len(), DealState::default);
        engine
            .state
            .accounts
            .resize_with(engine.ctx.accounts.len(), AccountState::default);
        engine.resolve_again(None);
        Ok((engine, saved.position))
    }
}

/// Rep talk time, total talk time and rep questions of a transcript.
fn call_of(t: &winsignal_core::Transcript, version: u64, key: u64, hint: u64) -> Call {
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
        key,
        hint,
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
