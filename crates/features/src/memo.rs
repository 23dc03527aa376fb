//! Definition values remembered per deal, so rescoring a deal after new events reads only those events
//! instead of its whole history, and gives the value a full evaluation ([`crate::eval::evaluate`]) gives,
//! to the bit.
//!
//! What a value was computed from is remembered as a mark per timeline: how many items of the view's
//! timeline were read, and which item was the last. While the deal's [`Engine::reshapes`] count stands
//! still no item was taken out of its timelines or its account's, and no entity its values read
//! changed, so if the marked item is still at its place, every item read before is still there, in
//! order, and the timeline only gained items after the mark. Then:
//! - a definition that reads none of the timelines that grew, and whose value does not depend on the
//!   landmark's time (or the time is the same), keeps its value;
//! - an activity aggregate that is a fold ([`ActFold`]) and a count of product events, touches or
//!   tickets ([`count_timed`]) and distinct users of product events or contacts of touches
//!   ([`distinct_timed`]) read on from their marks, while what they read before is weighed the
//!   same ([`Slot::carries_over`]): a window of the last N days while no item read has left it (its
//!   start passed no item), a decayed window while the landmark is within the same 64 half-lives;
//! - a follow-up or reply aggregate ([`PairFold`]) reads the new replies against the hits it keeps, then
//!   the new hits, at any later time;
//! - a graph definition keeps its value while no won deal closed between the two times;
//! - anything else is evaluated again.
//!
//! An item placed before a mark (a late event, or one of the same time that sorts before) makes what
//! reads that timeline evaluated again from scratch, except an activity aggregate whose value does not
//! depend on the order it reads in (counts, shares, distinct contacts, seniority levels), which reads
//! the new activities wherever they were placed, when they can be told from those read (they are among
//! the last [`TAIL`] read, which the memo keeps); every other case (items taken out, entities
//! changed, an earlier landmark) makes all of the deal's values evaluated again.

use crate::catalog::{Aggregate, Catalog, Definition, Reads, Scope, Window};
use crate::engine::{Engine, Reshaped};
use crate::eval::{
    count_timed, distinct_timed, evaluate, fold_activities, fold_pairs, pair_parts, ActFold, Decay,
    PairFold, View,
};
use winsignal_core::hash::FastMap;
use winsignal_core::parallel::{share_out, ITEMS_PER_THREAD};

/// The timelines a view reads.
#[derive(Debug, Clone, Copy)]
enum Line {
    DealActs = 0,
    Booked,
    Calls,
    AccountActs,
    Usage,
    Touches,
    Tickets,
}

const LINES: usize = 7;

/// How much of a timeline was read: its length in the view, and the last item's (key, version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    len: usize,
    last: (u64, u64),
}

fn marks(v: &View<'_>) -> [Mark; LINES] {
    fn mark<T>(items: &[T], id: impl Fn(&T) -> (u64, u64)) -> Mark {
        Mark {
            len: items.len(),
            last: items.last().map_or((0, 0), id),
        }
    }
    let mut out = [Mark {
        len: 0,
        last: (0, 0),
    }; LINES];
    out[Line::DealActs as usize] = mark(v.deal_acts, |a| (a.key, a.seq));
    out[Line::Booked as usize] = mark(v.deal_booked, |a| (a.key, a.seq));
    out[Line::Calls as usize] = mark(v.calls, |c| (c.key, c.version));
    out[Line::AccountActs as usize] = mark(v.account_acts, |a| (a.key, a.seq));
    out[Line::Usage as usize] = mark(v.usage, |u| (u.key, u.seq));
    out[Line::Touches as usize] = mark(v.touches, |t| (t.key, t.seq));
    out[Line::Tickets as usize] = mark(v.tickets, |t| (t.key, t.version));
    out
}

/// The timelines (a bit set of [`Line`]s) whose items up to `before`'s mark are still their first items
/// in `now`: the marked item is where it was (with no item taken out since, nothing can have come before
/// it). On the others an item came before the mark (a late event): what read them starts over.
fn still_prefix(before: &[Mark; LINES], now: &[Mark; LINES], v: &View<'_>) -> u8 {
    fn at<T>(items: &[T], m: &Mark, id: impl Fn(&T) -> (u64, u64)) -> bool {
        m.len == 0 || items.get(m.len - 1).is_some_and(|x| id(x) == m.last)
    }
    let kept = [
        at(v.deal_acts, &before[Line::DealActs as usize], |a| {
            (a.key, a.seq)
        }),
        at(v.deal_booked, &before[Line::Booked as usize], |a| {
            (a.key, a.seq)
        }),
        at(v.calls, &before[Line::Calls as usize], |c| {
            (c.key, c.version)
        }),
        at(v.account_acts, &before[Line::AccountActs as usize], |a| {
            (a.key, a.seq)
        }),
        at(v.usage, &before[Line::Usage as usize], |u| (u.key, u.seq)),
        at(v.touches, &before[Line::Touches as usize], |t| {
            (t.key, t.seq)
        }),
        at(v.tickets, &before[Line::Tickets as usize], |t| {
            (t.key, t.version)
        }),
    ];
    kept.iter()
        .zip(before.iter().zip(now))
        .enumerate()
        .filter(|(_, (kept, (b, n)))| **kept && b.len <= n.len)
        .fold(0, |bits, (i, _)| bits | 1 << i)
}

fn scope_line(scope: Scope) -> Line {
    match scope {
        Scope::Deal => Line::DealActs,
        Scope::Account => Line::AccountActs,
    }
}

/// The timelines a definition reads, as a bit set of [`Line`]s. The entities it reads are covered by
/// [`Engine::reshapes`].
fn reads(def: &Definition) -> u8 {
    let bit = |l: Line| 1u8 << l as u8;
    match &def.reads {
        Reads::Activities { scope, .. } => {
            let mut out = bit(scope_line(*scope));
            match &def.aggregate {
                Aggregate::ScheduledAfter => out |= bit(Line::Booked),
                Aggregate::FollowUpShare { then_scope, .. }
                | Aggregate::ReplyHoursMedian { then_scope, .. } => {
                    out |= bit(scope_line(*then_scope))
                }
                _ => {}
            }
            out
        }
        Reads::ProductEvents { .. } => bit(Line::Usage),
        Reads::MarketingTouches { .. } => bit(Line::Touches),
        Reads::SupportTickets { .. } => bit(Line::Tickets),
        Reads::Transcripts => bit(Line::Calls),
        Reads::Graph if crate::graph::reads_deal_activities(&def.aggregate) => bit(Line::DealActs),
        Reads::Graph => 0,
        Reads::Attribute { .. } => 0,
    }
}

/// The earliest time at or after `start` of the items from `from` on of the timeline `def` reads (all
/// of them, whatever its filter), `i64::MAX` when there is none: the next item to leave a window of
/// the last N days starting at `start` as the time moves on.
fn next_exit(def: &Definition, v: &View<'_>, start: i64, from: usize) -> i64 {
    fn earliest<T>(items: &[T], from: usize, start: i64, at: impl Fn(&T) -> i64) -> i64 {
        items
            .get(from..)
            .unwrap_or_default()
            .iter()
            .map(at)
            .filter(|&t| t >= start)
            .min()
            .unwrap_or(i64::MAX)
    }
    match &def.reads {
        Reads::Activities { scope, .. } => earliest(v.acts(*scope), from, start, |a| a.at),
        Reads::ProductEvents { .. } => earliest(v.usage, from, start, |u| u.at),
        Reads::MarketingTouches { .. } => earliest(v.touches, from, start, |t| t.at),
        Reads::SupportTickets { .. } => earliest(v.tickets, from, start, |t| t.created),
        _ => i64::MIN,
    }
}

/// Whether the window's start or weights move with the landmark's time.
fn window_moves(def: &Definition) -> bool {
    matches!(def.window, Window::Trailing { .. } | Window::Decayed { .. })
}

/// Whether the value can change with the landmark's time alone, with the same items read.
fn moves_with_time(def: &Definition) -> bool {
    window_moves(def)
        || matches!(
            def.aggregate,
            Aggregate::DaysSince
                | Aggregate::OpenAt
                | Aggregate::ScheduledAfter
                | Aggregate::FollowUpShare { .. }
        )
        || matches!(def.reads, Reads::Graph | Reads::Attribute { .. })
}

/// Whether a graph definition's value at `before` is its value at the view's landmark, with the same
/// activities read: the graph reads the time only through which deals were won before it, so while no
/// won deal closed in between (the entities are the same while the reshapes stand still).
fn graph_stays(def: &Definition, v: &View<'_>, before: i64) -> bool {
    matches!(def.reads, Reads::Graph) && !v.ctx.wins_between(before, v.as_of)
}

/// What a definition that reads its timeline once, in order, keeps to read on.
#[derive(Debug, Clone)]
enum Fold {
    /// Evaluated again whenever what it reads changed.
    None,
    /// An activity aggregate ([`ActFold`]).
    Acts(ActFold),
    /// A count of product events, touches or tickets: its unscaled total ([`count_timed`]).
    Count(f64),
    /// Distinct users of product events or contacts of touches: those met ([`distinct_timed`]).
    Seen(Vec<u64>),
    /// A follow-up or reply aggregate ([`PairFold`]): it reads on at any later time, as its value is
    /// made at the landmark from the pairs.
    Pairs(PairFold),
    /// Champion reuse: the contacts met, and whether each was a champion
    /// ([`crate::graph::champions`]). It reads on while no won deal closed in between.
    Champions(Vec<(u32, bool)>),
}

/// One definition's remembered value, and its fold when it is one.
#[derive(Debug, Clone)]
struct Slot {
    value: f64,
    fold: Fold,
    /// For a window of the last N days: the earliest time at or after the window's start of the
    /// items read ([`next_exit`]). Until the start passes it, no item read has left the window.
    exit: i64,
}

impl Slot {
    fn evaluate(def: &Definition, v: &View<'_>) -> Slot {
        let (value, fold) = Slot::fold(def, v);
        let exit = match def.window {
            Window::Trailing { .. } if !matches!(fold, Fold::None) => {
                next_exit(def, v, v.window_start(&def.window, false).0, 0)
            }
            _ => i64::MIN,
        };
        Slot { value, fold, exit }
    }

    fn fold(def: &Definition, v: &View<'_>) -> (f64, Fold) {
        if let Reads::Activities { scope, filter } = &def.reads {
            if let Some((fold, value)) = fold_activities(def, v, *scope, filter, &mut |_, _| {}) {
                return (value, Fold::Acts(fold));
            }
            if let Some((fold, value)) = fold_pairs(def, v, *scope, filter, &mut |_, _| {}) {
                return (value, Fold::Pairs(fold));
            }
        }
        if let Some((total, value)) = count_timed(def, v, 0.0, 0) {
            return (value, Fold::Count(total));
        }
        let mut seen = Vec::new();
        if let Some(value) = distinct_timed(def, v, &mut seen, 0) {
            return (value, Fold::Seen(seen));
        }
        if let (Reads::Graph, Aggregate::ChampionReuse) = (&def.reads, &def.aggregate) {
            let mut checked = Vec::new();
            let value = crate::graph::champions(v, &mut checked, 0, &mut |_, _| {});
            return (value, Fold::Champions(checked));
        }
        (evaluate(def, v, &mut |_, _| {}), Fold::None)
    }

    /// Whether the fold made at `before` reads on at the view's landmark (not earlier): what it read
    /// is weighed the same at both times. A window of the last N days is, while its start passed no
    /// item read; a decayed window, while both times are within the same 64 half-lives ([`Decay`]).
    fn carries_over(&self, def: &Definition, before: i64, v: &View<'_>) -> bool {
        match def.window {
            Window::DealToDate | Window::AllHistory => true,
            Window::Trailing { .. } => {
                before == v.as_of || v.window_start(&def.window, false).0 <= self.exit
            }
            Window::Decayed { half_life_days } => {
                Decay::at(before, half_life_days).anchor
                    == Decay::at(v.as_of, half_life_days).anchor
            }
        }
    }

    /// Reads the activities placed among those read (`placed`, per [`ACT_LINES`]), for an activity
    /// fold whose value does not depend on the order ([`order_free`]) reading that one timeline.
    /// Whether it could; the value is then the one a full evaluation gives.
    fn read_placed(
        &mut self,
        def: &Definition,
        v: &View<'_>,
        placed: &[Option<Vec<usize>>; 2],
        before: i64,
    ) -> bool {
        let (Fold::Acts(_), Reads::Activities { scope, filter }) = (&self.fold, &def.reads) else {
            return false;
        };
        let line = scope_line(*scope);
        let Some(Some(new)) = ACT_LINES
            .iter()
            .find(|(l, _)| *l as u8 == line as u8)
            .map(|(_, slot)| &placed[*slot])
        else {
            return false;
        };
        if !order_free(def) || reads(def) != 1 << line as u8 || !self.carries_over(def, before, v) {
            return false;
        }
        let Fold::Acts(fold) = &mut self.fold else {
            return false;
        };
        let window = v.window_start(&def.window, *scope == Scope::Deal);
        let all = v.acts(*scope);
        for &i in new {
            fold.push(&def.aggregate, v, filter, window, all, i, &mut |_, _| {});
        }
        self.value = fold.value(&def.aggregate, v, window.1.as_ref(), all, &mut |_, _| {});
        if let Window::Trailing { .. } = def.window {
            let earliest = new.iter().map(|&i| all[i].at).filter(|&t| t >= window.0);
            self.exit = earliest.fold(self.exit, i64::min);
        }
        true
    }

    /// After reading on from `read` (the line's mark): the new items' earliest time in the window
    /// counts too.
    fn read_on(&mut self, def: &Definition, v: &View<'_>, read: usize) {
        if let Window::Trailing { .. } = def.window {
            let start = v.window_start(&def.window, false).0;
            self.exit = self.exit.min(next_exit(def, v, start, read));
        }
    }
}

/// The line a count of product events, touches or tickets reads.
fn timed_line(def: &Definition) -> Option<Line> {
    match def.reads {
        Reads::ProductEvents { .. } => Some(Line::Usage),
        Reads::MarketingTouches { .. } => Some(Line::Touches),
        Reads::SupportTickets { .. } => Some(Line::Tickets),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct DealMemo {
    /// The engine's [`Engine::reshapes`] of the deal when the values were remembered.
    reshapes: Reshaped,
    as_of: i64,
    marks: [Mark; LINES],
    /// The (key, seq) of the last [`TAIL`] activities read of the deal's and of its account's
    /// timelines, oldest first: what tells new activities placed among them ([`placed_among`]).
    tails: [Vec<(u64, u64)>; 2],
    slots: Vec<Slot>,
}

/// How many of the last activities read a deal's memo keeps to tell late ones placed among them.
const TAIL: usize = 32;

/// The activity timelines, with their slot in [`DealMemo::tails`].
const ACT_LINES: [(Line, usize); 2] = [(Line::DealActs, 0), (Line::AccountActs, 1)];

/// Keeps in `tail` the (key, seq) of the last [`TAIL`] of `items`.
fn keep_tail(tail: &mut Vec<(u64, u64)>, items: &[crate::engine::Act]) {
    tail.clear();
    tail.extend(
        items[items.len().saturating_sub(TAIL)..]
            .iter()
            .map(|a| (a.key, a.seq)),
    );
}

/// The positions in `items` of the activities that are not among those read up to `mark` (whose last
/// `tail` were kept), when some were placed before the mark's item: every item after it, and those
/// placed among the kept tail. `None` when they cannot be told (one was placed before the tail, or
/// the marked item is not there). With nothing taken out since, the items read are all still there, in
/// their order.
fn placed_among(
    items: &[crate::engine::Act],
    mark: &Mark,
    tail: &[(u64, u64)],
) -> Option<Vec<usize>> {
    let id = |a: &crate::engine::Act| (a.key, a.seq);
    let last_read = mark.len.checked_sub(1)?;
    let at = (last_read..items.len()).find(|&i| id(&items[i]) == mark.last)?;
    let mut out: Vec<usize> = (at + 1..items.len()).collect();
    let (mut before, mut i, mut t) = (at - last_read, at, tail.len().checked_sub(1)?);
    while before > 0 {
        // items[i] is tail[t]; the read item before it is tail[t - 1], and any other is new.
        if t == 0 || i == 0 {
            return None;
        }
        i -= 1;
        if id(&items[i]) == tail[t - 1] {
            t -= 1;
        } else {
            out.push(i);
            before -= 1;
        }
    }
    Some(out)
}

/// Whether an activity aggregate's value is the same whatever order its activities are read in, to
/// the bit: counts and shares of whole numbers, and sets of contacts or levels.
fn order_free(def: &Definition) -> bool {
    matches!(
        def.aggregate,
        Aggregate::Count
            | Aggregate::Exists
            | Aggregate::Share
            | Aggregate::DistinctContacts
            | Aggregate::SeniorityCoverage
    ) && !matches!(def.window, Window::Decayed { .. })
}

/// The remembered values of one catalog's definitions, per deal (see the module's documentation).
#[derive(Debug)]
pub struct Memo {
    /// The catalog's definitions (id, version) the values are of.
    catalog: Vec<(String, u32)>,
    deals: FastMap<u32, DealMemo>,
    /// With fewer deals than this for each core, [`Memo::values_of`] keeps to one thread.
    per_thread: usize,
}

impl Default for Memo {
    fn default() -> Memo {
        Memo {
            catalog: Vec::new(),
            deals: FastMap::default(),
            per_thread: ITEMS_PER_THREAD,
        }
    }
}

impl Memo {
    pub fn new() -> Memo {
        Memo::default()
    }

    /// A memo that shares deals out among threads from `per_thread` deals for each on (the default
    /// is [`ITEMS_PER_THREAD`]); for tests of the sharing with few deals.
    pub fn sharing_from(per_thread: usize) -> Memo {
        Memo {
            per_thread: per_thread.max(1),
            ..Memo::default()
        }
    }

    /// The value of every definition of `catalog` for deal `opp` at `as_of`, as
    /// [`crate::eval::evaluate`] gives it, reading only what changed since the deal's last values.
    pub fn values(&mut self, engine: &Engine, catalog: &Catalog, opp: u32, as_of: i64) -> Vec<f64> {
        self.keep_catalog(catalog);
        let mut held = self.deals.remove(&opp);
        let values = deal_values(&mut held, engine, catalog, opp, as_of);
        self.deals.extend(held.map(|m| (opp, m)));
        values
    }

    /// [`Memo::values`] of each (deal, time) of `deals`, in their order, the deals shared out among
    /// the machine's cores when there are enough of them to be worth it (each deal's values are its
    /// own, so they are the same to the bit either way).
    pub fn values_of(
        &mut self,
        engine: &Engine,
        catalog: &Catalog,
        deals: &[(u32, i64)],
    ) -> Vec<Vec<f64>> {
        self.keep_catalog(catalog);
        let mut held: Vec<(u32, i64, Option<DealMemo>)> = deals
            .iter()
            .map(|&(opp, as_of)| (opp, as_of, self.deals.remove(&opp)))
            .collect();
        let values = share_out(&mut held, self.per_thread, |(opp, as_of, m)| {
            deal_values(m, engine, catalog, *opp, *as_of)
        });
        self.deals.extend(
            held.into_iter()
                .filter_map(|(opp, _, m)| m.map(|m| (opp, m))),
        );
        values
    }

    /// Forgets every deal's values if `catalog` is not the one they are of.
    fn keep_catalog(&mut self, catalog: &Catalog) {
        let same_catalog = self.catalog.len() == catalog.behaviours.len()
            && self
                .catalog
                .iter()
                .zip(&catalog.behaviours)
                .all(|((id, version), d)| *id == d.id && *version == d.version);
        if !same_catalog {
            self.deals.clear();
            self.catalog = catalog
                .behaviours
                .iter()
                .map(|d| (d.id.clone(), d.version))
                .collect();
        }
    }
}

/// The values of deal `opp` at `as_of`, read on from `held` (the deal's memo) when it can be, else
/// evaluated; `held` is left holding the deal's memo as of these values.
fn deal_values(
    held: &mut Option<DealMemo>,
    engine: &Engine,
    catalog: &Catalog,
    opp: u32,
    as_of: i64,
) -> Vec<f64> {
    let v = View::new(engine, opp, as_of);
    let now = marks(&v);
    let reshapes = engine.reshapes(opp);
    let memo = held
        .as_mut()
        .filter(|m| m.reshapes == reshapes && m.as_of <= as_of);
    let Some(m) = memo else {
        let slots: Vec<Slot> = catalog
            .behaviours
            .iter()
            .map(|d| Slot::evaluate(d, &v))
            .collect();
        let values = slots.iter().map(|s| s.value).collect();
        *held = Some(DealMemo {
            reshapes,
            as_of,
            marks: now,
            tails: [v.deal_acts, v.account_acts].map(|items| {
                let mut t = Vec::new();
                keep_tail(&mut t, items);
                t
            }),
            slots,
        });
        return values;
    };
    let intact = still_prefix(&m.marks, &now, &v);
    // The activities new to each activity timeline an item was placed in before its mark, when
    // they can be told.
    let placed: [Option<Vec<usize>>; 2] = ACT_LINES.map(|(line, slot)| {
        let l = line as usize;
        if intact & 1 << l != 0 {
            return None;
        }
        let items = v.acts(if slot == 0 {
            Scope::Deal
        } else {
            Scope::Account
        });
        placed_among(items, &m.marks[l], &m.tails[slot])
    });
    let same_time = m.as_of == as_of;
    let grew: u8 = m
        .marks
        .iter()
        .zip(&now)
        .enumerate()
        .filter(|(_, (b, n))| b.len != n.len)
        .fold(0, |bits, (i, _)| bits | 1 << i);
    for (def, slot) in catalog.behaviours.iter().zip(&mut m.slots) {
        if reads(def) & !intact != 0 {
            if !slot.read_placed(def, &v, &placed, m.as_of) {
                *slot = Slot::evaluate(def, &v);
            }
            continue;
        }
        let changed = reads(def) & grew != 0;
        if !changed && (same_time || !moves_with_time(def) || graph_stays(def, &v, m.as_of)) {
            continue;
        }
        let carries = slot.carries_over(def, m.as_of, &v);
        match (&mut slot.fold, &def.reads) {
            (Fold::Acts(fold), Reads::Activities { scope, filter }) if carries => {
                let line = scope_line(*scope) as usize;
                let window = v.window_start(&def.window, *scope == Scope::Deal);
                let all = v.acts(*scope);
                for i in m.marks[line].len..all.len() {
                    fold.push(&def.aggregate, &v, filter, window, all, i, &mut |_, _| {});
                }
                let decay = window.1.as_ref();
                slot.value = fold.value(&def.aggregate, &v, decay, all, &mut |_, _| {});
                slot.read_on(def, &v, m.marks[line].len);
            }
            (Fold::Pairs(fold), Reads::Activities { scope, filter }) => {
                let agg = &def.aggregate;
                let then_scope = pair_parts(agg).map_or(*scope, |p| p.1);
                let (start, _) = v.window_start(&def.window, *scope == Scope::Deal);
                let (hits, then) = (v.acts(*scope), v.acts(then_scope));
                let hits_read = m.marks[scope_line(*scope) as usize].len;
                let then_read = m.marks[scope_line(then_scope) as usize].len;
                fold.read_then(agg, &v, hits, then, then_read..then.len());
                fold.read_hits(agg, &v, filter, start, hits, then, hits_read..hits.len());
                slot.value = fold.value(agg, &v, start, hits, then, &mut |_, _| {});
            }
            (Fold::Count(total), _) if carries => {
                let line = timed_line(def).map_or(0, |l| m.marks[l as usize].len);
                if let Some((t, value)) = count_timed(def, &v, *total, line) {
                    (*total, slot.value) = (t, value);
                }
                slot.read_on(def, &v, line);
            }
            (Fold::Champions(checked), _) if graph_stays(def, &v, m.as_of) => {
                let line = Line::DealActs as usize;
                slot.value =
                    crate::graph::champions(&v, checked, m.marks[line].len, &mut |_, _| {});
            }
            (Fold::Seen(seen), _) if carries => {
                let line = timed_line(def).map_or(0, |l| m.marks[l as usize].len);
                if let Some(value) = distinct_timed(def, &v, seen, line) {
                    slot.value = value;
                }
                slot.read_on(def, &v, line);
            }
            _ => *slot = Slot::evaluate(def, &v),
        }
    }
    m.as_of = as_of;
    m.marks = now;
    for (line, slot) in ACT_LINES {
        if grew & 1 << line as u8 != 0 {
            let items = v.acts(if slot == 0 {
                Scope::Deal
            } else {
                Scope::Account
            });
            keep_tail(&mut m.tails[slot], items);
        }
    }
    m.slots.iter().map(|s| s.value).collect()
}
