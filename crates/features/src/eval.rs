//! Evaluating definitions at a landmark. Every read goes through [`View`], which only hands out the part
//! of each timeline known strictly before `as_of`; nothing here can see a later event.

use crate::catalog::{ActivityFilter, Aggregate, Definition, Reads, Scope, Window};
use crate::context::{Context, NONE};
use crate::engine::{Act, Call, Engine, Interner, Ticket, Touch, Use, NO_ID};
use crate::seniority::Seniority;
use winsignal_core::time::MS_PER_DAY;
use winsignal_core::{AttrValue, Outcome};

const MS_PER_HOUR: f64 = 3_600_000.0;

/// What a value was computed from, for lineage.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Activity(&'a Act),
    ProductEvent(&'a Use),
    Touch(&'a Touch),
    Ticket(&'a Ticket),
    Call(&'a Call),
    /// An earlier deal (champion reuse, prior wins).
    Opportunity(u32),
    /// A field or attribute of the deal or account.
    Attribute,
}

/// One deal's timelines cut at `as_of`.
pub struct View<'a> {
    pub ctx: &'a Context,
    pub opp: u32,
    pub as_of: i64,
    pub(crate) deal_acts: &'a [Act],
    pub(crate) deal_booked: &'a [Act],
    pub(crate) calls: &'a [Call],
    pub(crate) account_acts: &'a [Act],
    pub(crate) usage: &'a [Use],
    pub(crate) touches: &'a [Touch],
    pub(crate) tickets: &'a [Ticket],
    events: &'a Interner,
    engine: &'a Engine,
    groups: &'a std::collections::BTreeMap<u64, Vec<u32>>,
}

pub(crate) fn known_before<T>(v: &[T], as_of: i64, t: impl Fn(&T) -> i64) -> &[T] {
    // Live scoring is at the end of the data: every item is known before it, and the search (with a
    // cache miss at each step on a long timeline) can be skipped.
    if v.last().is_none_or(|e| t(e) < as_of) {
        return v;
    }
    &v[..v.partition_point(|e| t(e) < as_of)]
}

/// Where to read `items` (in the order of `at`) from: the first at or after position `resume` that is
/// at or after `start`. Reading on ([`crate::memo`]) with the item before `resume` already at or after
/// `start`, that is `resume`, without a search.
fn read_from<T>(items: &[T], resume: usize, start: i64, at: impl Fn(&T) -> i64) -> usize {
    match resume.checked_sub(1).and_then(|i| items.get(i)) {
        Some(before) if at(before) >= start => resume,
        _ => resume.max(items.partition_point(|x| at(x) < start)),
    }
}

impl<'a> View<'a> {
    pub fn new(engine: &'a Engine, opp: u32, as_of: i64) -> View<'a> {
        let ctx = engine.context();
        let deal = &engine.state.deals[opp as usize];
        let account = ctx.opps[opp as usize].account;
        let empty = (&[][..], &[][..], &[][..], &[][..]);
        let (account_acts, usage, touches, tickets) = if account == NONE {
            empty
        } else {
            let a = &engine.state.accounts[account as usize];
            (
                known_before(&a.acts, as_of, |e| e.known),
                known_before(&a.usage, as_of, |e| e.at),
                known_before(&a.touches, as_of, |e| e.at),
                known_before(&a.tickets, as_of, |e| e.created),
            )
        };
        View {
            ctx,
            opp,
            as_of,
            deal_acts: known_before(&deal.acts, as_of, |e| e.known),
            deal_booked: known_before(&deal.booked, as_of, |e| e.created),
            calls: known_before(&deal.calls, as_of, |e| e.known),
            account_acts,
            usage,
            touches,
            tickets,
            events: &engine.state.events,
            engine,
            groups: &engine.state.contact_groups,
        }
    }

    /// Every contact on the deal's completed (or status-less) activities known before `as_of`, sorted:
    /// the people already engaged on the deal.
    pub fn engaged_contacts(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .deal_acts
            .iter()
            .filter(|a| {
                a.status.is_none() || a.status == Some(winsignal_core::ActivityStatus::Completed)
            })
            .flat_map(|a| self.contacts(a).iter().copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every contact of an activity.
    pub fn contacts(&self, a: &'a Act) -> &'a [u32] {
        if a.group != 0 {
            if let Some(g) = self.groups.get(&a.group) {
                return g;
            }
        }
        if a.contact == NONE {
            &[]
        } else {
            std::slice::from_ref(&a.contact)
        }
    }

    fn created(&self) -> i64 {
        self.ctx.opps[self.opp as usize].created.0
    }

    /// The earliest event time a window admits, and its decay if it has one.
    pub(crate) fn window_start(&self, w: &Window, deal_scoped: bool) -> (i64, Option<Decay>) {
        match *w {
            Window::DealToDate if deal_scoped => (i64::MIN, None),
            Window::DealToDate => (self.created(), None),
            Window::Trailing { days } => (self.as_of - (days * MS_PER_DAY as f64) as i64, None),
            Window::Decayed { half_life_days } => {
                (i64::MIN, Some(Decay::at(self.as_of, half_life_days)))
            }
            Window::AllHistory => (i64::MIN, None),
        }
    }

    pub(crate) fn acts(&self, scope: Scope) -> &'a [Act] {
        match scope {
            Scope::Deal => self.deal_acts,
            Scope::Account => self.account_acts,
        }
    }

    fn seniority(&self, contact: u32) -> Seniority {
        if contact == NONE {
            Seniority::Unknown
        } else {
            self.ctx.contacts[contact as usize].seniority
        }
    }

    fn matches(&self, a: &'a Act, f: &ActivityFilter) -> bool {
        (f.types.is_empty() || f.types.contains(&a.ty))
            && (f.direction.is_empty() || a.dir.is_some_and(|d| f.direction.contains(&d)))
            && (f.status.is_empty() || a.status.is_some_and(|s| f.status.contains(&s)))
            && (f.seniority.is_empty() || {
                let cs = self.contacts(a);
                if cs.is_empty() {
                    f.seniority.contains(&Seniority::Unknown)
                } else {
                    cs.iter().any(|&c| f.seniority.contains(&self.seniority(c)))
                }
            })
    }
}

/// A decayed window weighs an item 2^(−age / half-life) at the landmark. The sum is taken against an
/// anchor, the latest multiple of 64 half-lives (since 1970) not after the landmark: each item adds
/// 2^((time − anchor) / half-life), at most 2^64, and the sum is multiplied once by
/// 2^(−(landmark − anchor) / half-life). Every evaluation sums this way, so a live state that kept the
/// sum adds only the items that arrived, while the landmark stays in the same 64 half-lives, and gets the
/// value a full evaluation gives, to the bit ([`crate::memo`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decay {
    pub(crate) anchor: i64,
    /// ln 2 per half-life, per millisecond.
    rate: f64,
    /// 2^(−(landmark − anchor) / half-life).
    scale: f64,
}

impl Decay {
    pub(crate) fn at(as_of: i64, half_life_days: f64) -> Decay {
        let half_life = half_life_days * MS_PER_DAY as f64;
        let cell = ((64.0 * half_life) as i64).max(1);
        let anchor = as_of.div_euclid(cell) * cell;
        let rate = std::f64::consts::LN_2 / half_life;
        Decay {
            anchor,
            rate,
            scale: (-((as_of - anchor) as f64) * rate).exp(),
        }
    }

    /// An item's share of the sum before scaling.
    fn term(&self, at: i64) -> f64 {
        ((at - self.anchor) as f64 * self.rate).exp()
    }
}

/// What an item at `at` adds to a (decayed) sum before scaling, and its weight at the landmark.
fn term(decay: Option<&Decay>, at: i64) -> (f64, f64) {
    match decay {
        None => (1.0, 1.0),
        Some(d) => {
            let t = d.term(at);
            (t, t * d.scale)
        }
    }
}

/// A (decayed) sum at the landmark from its unscaled total.
fn scaled(decay: Option<&Decay>, total: f64) -> f64 {
    decay.map_or(total, |d| total * d.scale)
}

/// The value of a definition at the view's landmark; NaN when it is undefined (e.g. no transcripts).
/// `sink` receives every item the value was computed from, with its weight.
pub fn evaluate<'a>(def: &Definition, v: &View<'a>, sink: &mut dyn FnMut(Source<'a>, f64)) -> f64 {
    match &def.reads {
        Reads::Activities { scope, filter } => activities(def, v, *scope, filter, sink),
        Reads::ProductEvents { events } => product(def, v, events, sink),
        Reads::MarketingTouches { touch_kinds } => {
            let (start, decay) = v.window_start(&def.window, false);
            let items = v.touches;
            let matched = |t: &Touch| touch_matches(touch_kinds, t);
            timed(
                &def.aggregate,
                v,
                items,
                start,
                decay,
                |t| t.at,
                matched,
                touch_contact,
                Source::Touch,
                sink,
                &def.window,
            )
        }
        Reads::SupportTickets { priority } => {
            let matched = |t: &Ticket| ticket_matches(priority, t);
            if def.aggregate == Aggregate::OpenAt {
                let mut n = 0.0;
                for t in v.tickets.iter().filter(|t| matched(t)) {
                    if t.solved.is_none_or(|s| s >= v.as_of) {
                        n += 1.0;
                        sink(Source::Ticket(t), 1.0);
                    }
                }
                return n;
            }
            let (start, decay) = v.window_start(&def.window, false);
            timed(
                &def.aggregate,
                v,
                v.tickets,
                start,
                decay,
                |t| t.created,
                matched,
                |_| None,
                Source::Ticket,
                sink,
                &def.window,
            )
        }
        Reads::Transcripts => {
            let (mut rep, mut talk, mut questions, mut n) = (0.0, 0.0, 0.0, 0.0);
            for c in v.calls {
                rep += c.rep_talk_s;
                talk += c.talk_s;
                questions += c.rep_questions as f64;
                n += 1.0;
                sink(Source::Call(c), 1.0);
            }
            match def.aggregate {
                Aggregate::RepTalkShare if talk > 0.0 => rep / talk,
                Aggregate::QuestionsPerHour if talk > 0.0 => questions / (talk / 3600.0),
                Aggregate::Count => n,
                _ => f64::NAN,
            }
        }
        Reads::Graph => crate::graph::evaluate(&def.aggregate, v, sink),
        Reads::Attribute {
            attribute,
            equals,
            missing,
            other_than,
        } => {
            let value = v.ctx.attribute(v.opp, attribute.entity, &attribute.name);
            sink(Source::Attribute, 1.0);
            let value = value.filter(|x| !is_missing(x, missing));
            if let Some(other_than) = other_than {
                return match value {
                    Some(x) => (!other_than.iter().any(|l| same_value(&x, l))) as u8 as f64,
                    None => f64::NAN,
                };
            }
            match (value, equals) {
                (Some(AttrValue::Number(x)), None) => x,
                (Some(AttrValue::Boolean(b)), None) => b as u8 as f64,
                (Some(AttrValue::Date(d)), None) => (v.as_of - d.0) as f64 / MS_PER_DAY as f64,
                (Some(x), Some(e)) => same_value(&x, e) as u8 as f64,
                _ => f64::NAN,
            }
        }
    }
}

/// Whether an attribute's value is the text `level`: text trimmed and ignoring case, a number equal to
/// the level read as a number, a boolean as `true`/`yes`/`1`…, a date as `YYYY-MM-DD`.
pub fn same_value(value: &AttrValue, level: &str) -> bool {
    match value {
        AttrValue::Text(t) => t.trim().eq_ignore_ascii_case(level.trim()),
        AttrValue::Number(x) => level.trim().parse::<f64>().is_ok_and(|y| y == *x),
        AttrValue::Boolean(b) => winsignal_core::parse_bool(level).is_some_and(|y| y == *b),
        AttrValue::Date(d) => d.to_date_string() == level.trim(),
    }
}

/// Whether a value is one of the catalog's missing markers, or blank text.
pub fn is_missing(value: &AttrValue, markers: &[String]) -> bool {
    matches!(value, AttrValue::Text(t) if t.trim().is_empty())
        || markers.iter().any(|m| same_value(value, m))
}

fn product<'a>(
    def: &Definition,
    v: &View<'a>,
    events: &[String],
    sink: &mut dyn FnMut(Source<'a>, f64),
) -> f64 {
    let (start, decay) = v.window_start(&def.window, false);
    let names: Vec<&str> = events.iter().map(String::as_str).collect();
    let matched = |u: &Use| use_matches(&names, v, u);
    timed(
        &def.aggregate,
        v,
        v.usage,
        start,
        decay,
        |u| u.at,
        matched,
        |u| use_user(v, u),
        Source::ProductEvent,
        sink,
        &def.window,
    )
}

/// The user of a product event, if known.
fn use_user(v: &View<'_>, u: &Use) -> Option<u64> {
    Some(v.engine.user_of(u)).filter(|&id| id != NO_ID)
}

/// The contact a touch reached, if known.
fn touch_contact(t: &Touch) -> Option<u64> {
    (t.contact != NONE).then_some(t.contact as u64)
}

/// Whether a touch is of one of the kinds (any kind when none is named).
fn touch_matches(kinds: &[winsignal_core::TouchKind], t: &Touch) -> bool {
    kinds.is_empty() || kinds.contains(&t.kind)
}

/// Whether a ticket is of one of the priorities (any when none is named).
fn ticket_matches(priority: &[winsignal_core::Priority], t: &Ticket) -> bool {
    priority.is_empty() || priority.contains(&t.priority)
}

/// Whether a product event is one of the named events (any when none is named).
fn use_matches(names: &[&str], v: &View<'_>, u: &Use) -> bool {
    names.is_empty() || v.events.name(u.event).is_some_and(|n| names.contains(&n))
}

/// Adds the matched items of `items[from..]` (ordered by time, all in the window) onto `total`, one at
/// a time and in order, each by its unscaled decay term (1 without decay).
#[allow(clippy::too_many_arguments)]
fn add_up<'a, T>(
    mut total: f64,
    items: &'a [T],
    from: usize,
    decay: Option<&Decay>,
    at: impl Fn(&T) -> i64,
    matched: impl Fn(&T) -> bool,
    source: impl Fn(&'a T) -> Source<'a>,
    sink: &mut dyn FnMut(Source<'a>, f64),
) -> f64 {
    for e in items[from..].iter().filter(|e| matched(e)) {
        let (t, w) = term(decay, at(e));
        total += t;
        sink(source(e), w);
    }
    total
}

/// Adds the people (`who`) of the matched items of `items[from..]` (all in the window) not in `seen` yet
/// to it, in order.
fn add_distinct<'a, T>(
    seen: &mut Vec<u64>,
    items: &'a [T],
    from: usize,
    matched: impl Fn(&T) -> bool,
    who: impl Fn(&T) -> Option<u64>,
    source: impl Fn(&'a T) -> Source<'a>,
    sink: &mut dyn FnMut(Source<'a>, f64),
) {
    for e in items[from..].iter().filter(|e| matched(e)) {
        if let Some(id) = who(e) {
            if !seen.contains(&id) {
                seen.push(id);
                sink(source(e), 1.0);
            }
        }
    }
}

/// For distinct users of product events or distinct contacts of touches: `seen` after adding the
/// people of the matched items of the view's timeline from position `resume` on (from the window's
/// start when that is later), and the value at the landmark. `None` for any other definition. A full
/// evaluation is `resume` 0 onto none; [`crate::memo`] resumes where it stopped.
pub(crate) fn distinct_timed(
    def: &Definition,
    v: &View<'_>,
    seen: &mut Vec<u64>,
    resume: usize,
) -> Option<f64> {
    if !matches!(
        def.aggregate,
        Aggregate::DistinctUsers | Aggregate::DistinctContacts
    ) {
        return None;
    }
    let (start, _) = v.window_start(&def.window, false);
    let sink = &mut |_: Source<'_>, _| {};
    match &def.reads {
        Reads::ProductEvents { events } => {
            let names: Vec<&str> = events.iter().map(String::as_str).collect();
            let from = read_from(v.usage, resume, start, |u| u.at);
            let matched = |u: &Use| use_matches(&names, v, u);
            let who = |u: &Use| use_user(v, u);
            add_distinct(
                seen,
                v.usage,
                from,
                matched,
                who,
                Source::ProductEvent,
                sink,
            );
        }
        Reads::MarketingTouches { touch_kinds } => {
            let from = read_from(v.touches, resume, start, |t| t.at);
            let matched = |t: &Touch| touch_matches(touch_kinds, t);
            add_distinct(
                seen,
                v.touches,
                from,
                matched,
                touch_contact,
                Source::Touch,
                sink,
            );
        }
        _ => return None,
    }
    Some(seen.len() as f64)
}

/// A count's (or exists') value at the landmark from its unscaled total.
fn count_value(agg: &Aggregate, decay: Option<&Decay>, total: f64) -> f64 {
    if *agg == Aggregate::Exists {
        (total > 0.0) as u8 as f64
    } else {
        scaled(decay, total)
    }
}

/// For a count (or exists) of product events, touches or tickets: the unscaled total after adding the
/// matched items of the view's timeline from position `resume` on (from the window's start when that is
/// later) onto `total`, and the value at the landmark. `None` for any other definition. A full
/// evaluation is `resume` 0 onto 0; [`crate::memo`] resumes where it stopped.
pub(crate) fn count_timed(
    def: &Definition,
    v: &View<'_>,
    total: f64,
    resume: usize,
) -> Option<(f64, f64)> {
    if !matches!(def.aggregate, Aggregate::Count | Aggregate::Exists) {
        return None;
    }
    let (start, decay) = v.window_start(&def.window, false);
    let d = decay.as_ref();
    let sink = &mut |_: Source<'_>, _| {};
    let total = match &def.reads {
        Reads::ProductEvents { events } => {
            let names: Vec<&str> = events.iter().map(String::as_str).collect();
            let from = read_from(v.usage, resume, start, |u| u.at);
            let matched = |u: &Use| use_matches(&names, v, u);
            add_up(
                total,
                v.usage,
                from,
                d,
                |u| u.at,
                matched,
                Source::ProductEvent,
                sink,
            )
        }
        Reads::MarketingTouches { touch_kinds } => {
            let from = read_from(v.touches, resume, start, |t| t.at);
            let matched = |t: &Touch| touch_matches(touch_kinds, t);
            add_up(
                total,
                v.touches,
                from,
                d,
                |t| t.at,
                matched,
                Source::Touch,
                sink,
            )
        }
        Reads::SupportTickets { priority } => {
            let from = read_from(v.tickets, resume, start, |t| t.created);
            let matched = |t: &Ticket| ticket_matches(priority, t);
            add_up(
                total,
                v.tickets,
                from,
                d,
                |t| t.created,
                matched,
                Source::Ticket,
                sink,
            )
        }
        _ => return None,
    };
    Some((total, count_value(&def.aggregate, d, total)))
}

/// Aggregates over a timeline ordered by event time (product events, touches, tickets).
#[allow(clippy::too_many_arguments)]
fn timed<'a, T>(
    agg: &Aggregate,
    v: &View<'a>,
    items: &'a [T],
    start: i64,
    decay: Option<Decay>,
    at: impl Fn(&T) -> i64,
    matched: impl Fn(&T) -> bool,
    who: impl Fn(&T) -> Option<u64>,
    source: impl Fn(&'a T) -> Source<'a>,
    sink: &mut dyn FnMut(Source<'a>, f64),
    window: &Window,
) -> f64 {
    let from = items.partition_point(|e| at(e) < start);
    let in_window = &items[from..];
    match agg {
        Aggregate::Count | Aggregate::Exists => {
            let total = add_up(0.0, items, from, decay.as_ref(), at, matched, source, sink);
            count_value(agg, decay.as_ref(), total)
        }
        Aggregate::DistinctUsers | Aggregate::DistinctContacts => {
            let mut seen: Vec<u64> = Vec::new();
            add_distinct(&mut seen, items, from, matched, who, source, sink);
            seen.len() as f64
        }
        Aggregate::DaysSince => match in_window.iter().rev().find(|e| matched(e)) {
            Some(e) => {
                sink(source(e), 1.0);
                (v.as_of - at(e)) as f64 / MS_PER_DAY as f64
            }
            None => f64::NAN,
        },
        Aggregate::Share => {
            let (mut hit, mut all) = (0.0, 0.0);
            for e in in_window {
                all += 1.0;
                if matched(e) {
                    hit += 1.0;
                    sink(source(e), 1.0);
                }
            }
            if all > 0.0 {
                hit / all
            } else {
                f64::NAN
            }
        }
        Aggregate::Growth => {
            let Window::Trailing { days } = *window else {
                return f64::NAN;
            };
            let len = (days * MS_PER_DAY as f64) as i64;
            let prior_start = start - len;
            let from_prior = items.partition_point(|e| at(e) < prior_start);
            let (mut now, mut before) = (0.0, 0.0);
            for e in items[from_prior..].iter().filter(|e| matched(e)) {
                if at(e) >= start {
                    now += 1.0;
                    sink(source(e), 1.0);
                } else {
                    before += 1.0;
                    sink(source(e), -1.0);
                }
            }
            now - before
        }
        _ => f64::NAN,
    }
}

fn activities<'a>(
    def: &Definition,
    v: &View<'a>,
    scope: Scope,
    filter: &ActivityFilter,
    sink: &mut dyn FnMut(Source<'a>, f64),
) -> f64 {
    if let Some((_, value)) = fold_activities(def, v, scope, filter, sink) {
        return value;
    }
    if let Some((_, value)) = fold_pairs(def, v, scope, filter, sink) {
        return value;
    }
    let (start, _) = v.window_start(&def.window, scope == Scope::Deal);
    let all = v.acts(scope);
    // Known time is never before event time, so the window's start bounds the known-time order too.
    let from = all.partition_point(|a| a.known < start);
    let acts = &all[from..];
    let hits = || {
        acts.iter()
            .filter(move |a| a.at >= start && v.matches(a, filter))
    };
    match &def.aggregate {
        Aggregate::Median { .. } => {
            let mut xs: Vec<f64> = Vec::new();
            for a in hits() {
                xs.push(a.duration_s as f64);
                sink(Source::Activity(a), 1.0);
            }
            median(&mut xs)
        }
        Aggregate::ScheduledAfter => {
            // Whether a booked meeting will be held is not known yet, so status does not filter.
            let f = ActivityFilter {
                status: Vec::new(),
                ..filter.clone()
            };
            let mut n = 0.0;
            for a in v
                .deal_booked
                .iter()
                .filter(|a| a.at >= v.as_of && a.created >= start)
            {
                if v.matches(a, &f) {
                    n += 1.0;
                    sink(Source::Activity(a), 1.0);
                }
            }
            n
        }
        Aggregate::Growth => {
            let Window::Trailing { days } = def.window else {
                return f64::NAN;
            };
            let prior_start = start - (days * MS_PER_DAY as f64) as i64;
            let (mut now, mut before) = (0.0, 0.0);
            for a in all
                .iter()
                .filter(|a| a.at >= prior_start && v.matches(a, filter))
            {
                if a.at >= start {
                    now += 1.0;
                    sink(Source::Activity(a), 1.0);
                } else {
                    before += 1.0;
                    sink(Source::Activity(a), -1.0);
                }
            }
            now - before
        }
        _ => f64::NAN,
    }
}

/// The running state of an activity aggregate that reads a timeline item by item, in order: a batch
/// evaluation folds it over the whole timeline, and [`crate::memo`] keeps it and folds only the
/// activities that arrived since, which gives the same value to the bit (the same additions in the same
/// order).
#[derive(Debug, Clone)]
pub(crate) enum ActFold {
    /// Count, Exists, Sum: the (weighted) total.
    Total(f64),
    /// Distinct contacts: the contacts met.
    Contacts(Vec<u32>),
    /// Seniority coverage: the levels met.
    Levels(Vec<Seniority>),
    /// Share: matched activities and all activities in the window.
    Share { hit: f64, all: f64 },
    /// Latest, DaysSince: the position in the timeline of the latest matched activity, by (time, key).
    Latest(Option<usize>),
}

impl ActFold {
    /// The fold of an aggregate, if it is one that reads each activity once and in any prefix.
    pub(crate) fn new(agg: &Aggregate) -> Option<ActFold> {
        Some(match agg {
            Aggregate::Count | Aggregate::Exists | Aggregate::Sum { .. } => ActFold::Total(0.0),
            Aggregate::DistinctContacts => ActFold::Contacts(Vec::new()),
            Aggregate::SeniorityCoverage => ActFold::Levels(Vec::new()),
            Aggregate::Share => ActFold::Share { hit: 0.0, all: 0.0 },
            Aggregate::Latest { .. } | Aggregate::DaysSince => ActFold::Latest(None),
            _ => return None,
        })
    }

    /// Reads `all[i]`, the next activity of the timeline. `start` and `decay`: the window's.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push<'a>(
        &mut self,
        agg: &Aggregate,
        v: &View<'a>,
        filter: &ActivityFilter,
        (start, decay): (i64, Option<Decay>),
        all: &'a [Act],
        i: usize,
        sink: &mut dyn FnMut(Source<'a>, f64),
    ) {
        let a = &all[i];
        if a.at < start {
            return;
        }
        if let ActFold::Share { hit, all } = self {
            *all += 1.0;
            if v.matches(a, filter) {
                *hit += 1.0;
                sink(Source::Activity(a), 1.0);
            }
            return;
        }
        if !v.matches(a, filter) {
            return;
        }
        match self {
            ActFold::Total(total) => {
                let (t, w) = term(decay.as_ref(), a.at);
                *total += match agg {
                    Aggregate::Sum { .. } => t * a.duration_s as f64,
                    _ => t,
                };
                sink(Source::Activity(a), w);
            }
            ActFold::Contacts(seen) => {
                let mut new = false;
                for &c in v.contacts(a) {
                    if !seen.contains(&c) {
                        seen.push(c);
                        new = true;
                    }
                }
                if new {
                    sink(Source::Activity(a), 1.0);
                }
            }
            ActFold::Levels(levels) => {
                let mut new = false;
                for &c in v.contacts(a) {
                    let s = v.seniority(c);
                    if s != Seniority::Unknown && !levels.contains(&s) {
                        levels.push(s);
                        new = true;
                    }
                }
                if new {
                    sink(Source::Activity(a), 1.0);
                }
            }
            ActFold::Latest(best) => {
                if best.is_none_or(|b| (all[b].at, all[b].key) < (a.at, a.key)) {
                    *best = Some(i);
                }
            }
            ActFold::Share { .. } => {}
        }
    }

    /// The value at the view's landmark of what was read of `all`.
    pub(crate) fn value<'a>(
        &self,
        agg: &Aggregate,
        v: &View<'a>,
        decay: Option<&Decay>,
        all: &'a [Act],
        sink: &mut dyn FnMut(Source<'a>, f64),
    ) -> f64 {
        match self {
            ActFold::Total(total) if *agg == Aggregate::Exists => (*total > 0.0) as u8 as f64,
            ActFold::Total(total) => scaled(decay, *total),
            ActFold::Contacts(seen) => seen.len() as f64,
            ActFold::Levels(levels) => levels.len() as f64,
            ActFold::Share { hit, all } if *all > 0.0 => hit / all,
            ActFold::Share { .. } | ActFold::Latest(None) => f64::NAN,
            ActFold::Latest(Some(b)) => {
                let a = &all[*b];
                sink(Source::Activity(a), 1.0);
                match agg {
                    Aggregate::DaysSince => (v.as_of - a.at) as f64 / MS_PER_DAY as f64,
                    _ => a.duration_s as f64,
                }
            }
        }
    }
}

/// An activity aggregate that is a fold ([`ActFold`]) over the view's timeline of `scope`: the fold
/// and its value. `None` for the other aggregates.
pub(crate) fn fold_activities<'a>(
    def: &Definition,
    v: &View<'a>,
    scope: Scope,
    filter: &ActivityFilter,
    sink: &mut dyn FnMut(Source<'a>, f64),
) -> Option<(ActFold, f64)> {
    let mut fold = ActFold::new(&def.aggregate)?;
    let window = v.window_start(&def.window, scope == Scope::Deal);
    let all = v.acts(scope);
    // Known time is never before event time, so the window's start bounds the known-time order too:
    // what comes before it the fold would skip.
    let from = all.partition_point(|a| a.known < window.0);
    for i in from..all.len() {
        fold.push(&def.aggregate, v, filter, window, all, i, sink);
    }
    let value = fold.value(&def.aggregate, v, window.1.as_ref(), all, sink);
    Some((fold, value))
}

/// A follow-up or reply aggregate (`follow_up_share`, `reply_hours_median`) read item by item: the
/// matched activities (hits) of the deal's timeline, each with the earliest activity after it (by time,
/// then key) of the `then` timeline that matches `then` (and, for a follow-up, comes within its hours).
/// A batch evaluation reads both timelines whole; [`crate::memo`] keeps the pairs and reads only what
/// arrived: new `then` activities against the hits it has, then new hits against every `then` activity.
#[derive(Debug, Clone)]
pub(crate) struct PairFold {
    /// (the hit's position in its timeline, the position of its earliest follower in the `then`
    /// timeline).
    hits: Vec<(usize, Option<usize>)>,
}

/// The parts of a pair aggregate: the `then` filter and scope, and a follow-up's hours in ms.
pub(crate) fn pair_parts(agg: &Aggregate) -> Option<(&ActivityFilter, Scope, Option<i64>)> {
    match agg {
        Aggregate::FollowUpShare {
            within_hours,
            then,
            then_scope,
        } => Some((then, *then_scope, Some((within_hours * MS_PER_HOUR) as i64))),
        Aggregate::ReplyHoursMedian { then, then_scope } => Some((then, *then_scope, None)),
        _ => None,
    }
}

impl PairFold {
    /// Whether `f` follows `m` as the aggregate asks, earlier than the follower `best` if any.
    fn follows(m: &Act, f: &Act, within: Option<i64>, best: Option<&Act>) -> bool {
        f.at > m.at
            && within.is_none_or(|w| f.at <= m.at + w)
            && best.is_none_or(|b| (f.at, f.key) < (b.at, b.key))
    }

    /// Reads `then_all[range]`, new activities of the `then` timeline, against the hits read so far.
    pub(crate) fn read_then(
        &mut self,
        agg: &Aggregate,
        v: &View<'_>,
        hits_all: &[Act],
        then_all: &[Act],
        range: std::ops::Range<usize>,
    ) {
        let Some((then, _, within)) = pair_parts(agg) else {
            return;
        };
        for i in range {
            let f = &then_all[i];
            if !v.matches(f, then) {
                continue;
            }
            for (h, best) in &mut self.hits {
                if Self::follows(&hits_all[*h], f, within, best.map(|b| &then_all[b])) {
                    *best = Some(i);
                }
            }
        }
    }

    /// Reads `hits_all[range]`, new activities of the deal's timeline: each matched one from the
    /// window's start on is a hit, paired with its earliest follower among all of `then_all`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read_hits(
        &mut self,
        agg: &Aggregate,
        v: &View<'_>,
        filter: &ActivityFilter,
        start: i64,
        hits_all: &[Act],
        then_all: &[Act],
        range: std::ops::Range<usize>,
    ) {
        let Some((then, _, within)) = pair_parts(agg) else {
            return;
        };
        for h in range {
            let m = &hits_all[h];
            if m.at < start || !v.matches(m, filter) {
                continue;
            }
            let mut best: Option<usize> = None;
            for (i, f) in then_all.iter().enumerate() {
                if Self::follows(m, f, within, best.map(|b| &then_all[b])) && v.matches(f, then) {
                    best = Some(i);
                }
            }
            self.hits.push((h, best));
        }
    }

    /// The value at the view's landmark: a follow-up share (hits still inside their follow-up hours
    /// undecided), or the median reply hours of the hits from the window's start on that have a reply.
    pub(crate) fn value<'a>(
        &self,
        agg: &Aggregate,
        v: &View<'a>,
        start: i64,
        hits_all: &'a [Act],
        then_all: &'a [Act],
        sink: &mut dyn FnMut(Source<'a>, f64),
    ) -> f64 {
        match pair_parts(agg) {
            Some((_, _, Some(within))) => {
                let (mut decided, mut followed) = (0.0, 0.0);
                // Hits read when the window started earlier may have left it since.
                for &(h, best) in self.hits.iter().filter(|(h, _)| hits_all[*h].at >= start) {
                    let m = &hits_all[h];
                    match best {
                        Some(b) => {
                            decided += 1.0;
                            followed += 1.0;
                            sink(Source::Activity(m), 1.0);
                            sink(Source::Activity(&then_all[b]), 1.0);
                        }
                        // Still inside its follow-up window at the landmark: not yet decided.
                        None if m.at + within >= v.as_of => {}
                        None => {
                            decided += 1.0;
                            sink(Source::Activity(m), 0.0);
                        }
                    }
                }
                if decided > 0.0 {
                    followed / decided
                } else {
                    f64::NAN
                }
            }
            Some((_, _, None)) => {
                let mut hours: Vec<f64> = Vec::new();
                for &(h, best) in &self.hits {
                    let m = &hits_all[h];
                    if let (Some(b), true) = (best, m.at >= start) {
                        let r = &then_all[b];
                        hours.push((r.at - m.at) as f64 / MS_PER_HOUR);
                        sink(Source::Activity(m), 1.0);
                        sink(Source::Activity(r), 1.0);
                    }
                }
                median(&mut hours)
            }
            None => f64::NAN,
        }
    }
}

/// A pair aggregate ([`PairFold`]) over the view's timelines: the fold and its value. `None` for the
/// other aggregates.
pub(crate) fn fold_pairs<'a>(
    def: &Definition,
    v: &View<'a>,
    scope: Scope,
    filter: &ActivityFilter,
    sink: &mut dyn FnMut(Source<'a>, f64),
) -> Option<(PairFold, f64)> {
    let (_, then_scope, _) = pair_parts(&def.aggregate)?;
    let (start, _) = v.window_start(&def.window, scope == Scope::Deal);
    let (hits_all, then_all) = (v.acts(scope), v.acts(then_scope));
    let mut fold = PairFold { hits: Vec::new() };
    // Known time is never before event time: what is known before the window's start is before it.
    let from = hits_all.partition_point(|a| a.known < start);
    fold.read_hits(
        &def.aggregate,
        v,
        filter,
        start,
        hits_all,
        then_all,
        from..hits_all.len(),
    );
    let value = fold.value(&def.aggregate, v, start, hits_all, then_all, sink);
    Some((fold, value))
}

fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Whether the deal was won before `as_of` (used by graph features).
pub fn won_before(ctx: &Context, opp: u32, as_of: i64) -> bool {
    let o = &ctx.opps[opp as usize];
    o.outcome == Outcome::Won && o.closed.is_some_and(|c| c.0 < as_of)
}
