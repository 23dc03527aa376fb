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

fn known_before<T>(v: &[T], as_of: i64, t: impl Fn(&T) -> i64) -> &[T] {
    &v[..v.partition_point(|e| t(e) < as_of)]
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

    /// The earliest event time a window admits, and the decay half-life if any.
    pub(crate) fn window_start(&self, w: &Window, deal_scoped: bool) -> (i64, Option<f64>) {
        match *w {
            Window::DealToDate if deal_scoped => (i64::MIN, None),
            Window::DealToDate => (self.created(), None),
            Window::Trailing { days } => (self.as_of - (days * MS_PER_DAY as f64) as i64, None),
            Window::Decayed { half_life_days } => (i64::MIN, Some(half_life_days)),
            Window::AllHistory => (i64::MIN, None),
        }
    }

    fn weight(&self, at: i64, half_life: Option<f64>) -> f64 {
        match half_life {
            None => 1.0,
            Some(h) => {
                (-(self.as_of - at) as f64 / (h * MS_PER_DAY as f64) * std::f64::consts::LN_2).exp()
            }
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

/// The value of a definition at the view's landmark; NaN when it is undefined (e.g. no transcripts).
/// `sink` receives every item the value was computed from, with its weight.
pub fn evaluate<'a>(def: &Definition, v: &View<'a>, sink: &mut dyn FnMut(Source<'a>, f64)) -> f64 {
    match &def.reads {
        Reads::Activities { scope, filter } => activities(def, v, *scope, filter, sink),
        Reads::ProductEvents { events } => product(def, v, events, sink),
        Reads::MarketingTouches { touch_kinds } => {
            let (start, hl) = v.window_start(&def.window, false);
            let items = v.touches;
            let matched = |t: &Touch| touch_kinds.is_empty() || touch_kinds.contains(&t.kind);
            timed(
                &def.aggregate,
                v,
                items,
                start,
                hl,
                |t| t.at,
                matched,
                |t| (t.contact != NONE).then_some(t.contact as u64),
                Source::Touch,
                sink,
                &def.window,
            )
        }
        Reads::SupportTickets { priority } => {
            let matched = |t: &Ticket| priority.is_empty() || priority.contains(&t.priority);
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
            let (start, hl) = v.window_start(&def.window, false);
            timed(
                &def.aggregate,
                v,
                v.tickets,
                start,
                hl,
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
        Reads::Graph => crate::graph::evaluate(&def.aggregate, v, v.deal_acts, sink),
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
    let (start, hl) = v.window_start(&def.window, false);
    let names: Vec<&str> = events.iter().map(String::as_str).collect();
    let matched =
        |u: &Use| names.is_empty() || v.events.name(u.event).is_some_and(|n| names.contains(&n));
    timed(
        &def.aggregate,
        v,
        v.usage,
        start,
        hl,
        |u| u.at,
        matched,
        |u| Some(v.engine.user_of(u)).filter(|&id| id != NO_ID),
        Source::ProductEvent,
        sink,
        &def.window,
    )
}

/// Aggregates over a timeline ordered by event time (product events, touches, tickets).
#[allow(clippy::too_many_arguments)]
fn timed<'a, T>(
    agg: &Aggregate,
    v: &View<'a>,
    items: &'a [T],
    start: i64,
    half_life: Option<f64>,
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
            let mut total = 0.0;
            for e in in_window.iter().filter(|e| matched(e)) {
                let w = v.weight(at(e), half_life);
                total += w;
                sink(source(e), w);
            }
            if *agg == Aggregate::Exists {
                (total > 0.0) as u8 as f64
            } else {
                total
            }
        }
        Aggregate::DistinctUsers | Aggregate::DistinctContacts => {
            let mut seen: Vec<u64> = Vec::new();
            for e in in_window.iter().filter(|e| matched(e)) {
                if let Some(id) = who(e) {
                    if !seen.contains(&id) {
                        seen.push(id);
                        sink(source(e), 1.0);
                    }
                }
            }
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
        Aggregate::FollowUpShare {
            within_hours,
            then,
            then_scope,
        } => {
            let within = (within_hours * MS_PER_HOUR) as i64;
            let followers = v.acts(*then_scope);
            let (mut decided, mut followed) = (0.0, 0.0);
            for m in hits() {
                let next = followers
                    .iter()
                    .filter(|f| f.at > m.at && f.at <= m.at + within && v.matches(f, then))
                    .min_by_key(|f| (f.at, f.key));
                match next {
                    Some(f) => {
                        decided += 1.0;
                        followed += 1.0;
                        sink(Source::Activity(m), 1.0);
                        sink(Source::Activity(f), 1.0);
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
        Aggregate::ReplyHoursMedian { then, then_scope } => {
            let replies = v.acts(*then_scope);
            let mut hours: Vec<f64> = Vec::new();
            for m in hits() {
                let reply = replies
                    .iter()
                    .filter(|f| f.at > m.at && v.matches(f, then))
                    .min_by_key(|f| (f.at, f.key));
                if let Some(r) = reply {
                    hours.push((r.at - m.at) as f64 / MS_PER_HOUR);
                    sink(Source::Activity(m), 1.0);
                    sink(Source::Activity(r), 1.0);
                }
            }
            median(&mut hours)
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

    /// Reads `all[i]`, the next activity of the timeline. `start` and `half_life`: the window's.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push<'a>(
        &mut self,
        agg: &Aggregate,
        v: &View<'a>,
        filter: &ActivityFilter,
        (start, half_life): (i64, Option<f64>),
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
                let w = v.weight(a.at, half_life);
                *total += match agg {
                    Aggregate::Sum { .. } => w * a.duration_s as f64,
                    _ => w,
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
        all: &'a [Act],
        sink: &mut dyn FnMut(Source<'a>, f64),
    ) -> f64 {
        match self {
            ActFold::Total(total) if *agg == Aggregate::Exists => (*total > 0.0) as u8 as f64,
            ActFold::Total(total) => *total,
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
    let value = fold.value(&def.aggregate, v, all, sink);
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
