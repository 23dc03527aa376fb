//! `winsignal reps`: rep scorecards — win rate, cycle time and deal size adjusted for deal mix and
//! pooled toward the average rep, adoption of the behaviours that go with winning against the team and
//! the best quarter of reps, and coaching priorities ranked by the wins they could add.

use crate::features::{compute, CatalogArg};
use crate::output::n;
use crate::Global;
use anyhow::{bail, Result};
use clap::Args;
use winsignal_discover::Interval;
use winsignal_score::reps::{ContinuousScore, RepCard, Scorecards};
use winsignal_store::Store;
use winsignal_workspace::coaching::{all_scorecards, same_id};

#[derive(Args)]
pub struct RepsArgs {
    /// Show this rep's card (Salesforce ids in either form); every rep in a table when omitted.
    #[arg(value_name = "REP_ID")]
    pub rep: Option<String>,
    /// Only the reps whose manager is ID.
    #[arg(long, value_name = "ID")]
    pub manager: Option<String>,
    /// Print the scorecards as JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub catalog: CatalogArg,
}

pub fn run(global: &Global, store: &dyn Store, args: &RepsArgs) -> Result<()> {
    let catalog = args.catalog.load()?;
    let c = compute(store, catalog, global.quiet)?;
    if !global.quiet {
        eprintln!(
            "fitting discovery and rep models for {} snapshots…",
            n(c.snapshots.len() as u64)
        );
    }
    // The same discovery as `winsignal discover` (every outcome, rules, the timing check, fields
    // changed at close), so the behaviours coached here are exactly the ones it calls significant.
    let discovery =
        winsignal_workspace::insights::discovery(&c, winsignal_discover::Options::default())?;
    let mut cards = all_scorecards(store, &c, &discovery)?;
    // A team whose coaching focus changed with these findings waits for review, if the rule is set.
    winsignal_workspace::review::enqueue_coaching(store, &cards, &c.catalog.name)?;
    if let Some(m) = &args.manager {
        cards
            .reps
            .retain(|r| r.manager_id.as_deref().is_some_and(|id| same_id(id, m)));
        if cards.reps.is_empty() {
            bail!(
                "no rep with deals has manager {m:?} in {} (the rep records' manager_id)",
                global.data.display()
            );
        }
    }
    if let Some(id) = &args.rep {
        cards.reps.retain(|r| same_id(&r.rep_id, id));
        if cards.reps.is_empty() {
            bail!(
                "no rep {id:?} with deals{} in {}",
                if args.manager.is_some() {
                    " under that manager"
                } else {
                    ""
                },
                global.data.display()
            );
        }
    }
    if args.json {
        return crate::output::print_json(&cards);
    }
    match cards.reps.first() {
        Some(card) if args.rep.is_some() => print_card(&cards, card),
        _ => print_table(&cards),
    }
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.0} %", 100.0 * x)
}

fn pct_interval(i: &Interval) -> String {
    format!(
        "{:.0} % ({:.0}–{:.0})",
        100.0 * i.estimate,
        100.0 * i.low,
        100.0 * i.high
    )
}

fn money(x: f64) -> String {
    n(x.round().max(0.0) as u64)
}

/// A rank as printed: `=1` when shared, `–` when none.
pub(crate) fn rank_text(rank: Option<usize>, tied: bool) -> String {
    match rank {
        Some(r) if tied => format!("={r}"),
        Some(r) => r.to_string(),
        None => "–".into(),
    }
}

/// The data-level warnings, one line each, above everything else.
fn print_warnings(cards: &Scorecards) {
    for w in &cards.warnings {
        println!("Note: {}.", w.text);
    }
    if !cards.warnings.is_empty() {
        println!();
    }
}

fn print_table(cards: &Scorecards) {
    print_warnings(cards);
    if cards.ranking.comparable {
        println!(
            "Rep scorecards: win rate adjusted for deal mix and pooled toward the average rep ({} on \
             the team's deal mix), with 95 % intervals.",
            pct(cards.mean_win_rate)
        );
    } else {
        println!(
            "Rep scorecards: no win rates or ranks (see the note above); days to close and deal size \
             of won deals are still adjusted for deal mix."
        );
    }
    println!(
        "{:>4}  {:<7}  {:<18}  {:<20}  {:<16}  {:>6}  {:>5}  {:>5}  {:<17}  {:<12}  {:>7}  {:>6}  top coaching priority",
        "rank", "range", "rep", "name", "team", "closed", "won", "raw", "adjusted (95 %)", "beyond bhv.", "cycle", "size"
    );
    for c in &cards.reps {
        let top = c
            .coaching
            .first()
            .map(|p| format!("{} (+{:.1} wins)", p.behaviour, p.expected_extra_wins))
            .unwrap_or_default();
        let beyond = match (&c.beyond_behaviours, c.rank_beyond_behaviours) {
            (Some(b), Some(_)) => format!(
                "{} #{}",
                pct(b.adjusted_win_rate.estimate),
                rank_text(c.rank_beyond_behaviours, c.rank_beyond_behaviours_tied)
            ),
            _ => "–".into(),
        };
        // Without comparable win rates a raw 100 % is an artefact of how reps were recorded.
        let raw = if cards.ranking.comparable {
            c.win_rate.map_or("–".into(), pct)
        } else {
            "–".into()
        };
        let ratio = |s: &Option<ContinuousScore>| {
            s.as_ref()
                .map_or("–".into(), |s| format!("×{:.2}", s.ratio.estimate))
        };
        println!(
            "{:>4}  {:<7}  {:<18}  {:<20}  {:<16}  {:>6}  {:>5}  {:>5}  {:<17}  {:<12}  {:>7}  {:>6}  {top}",
            rank_text(c.rank, c.rank_tied),
            c.rank_range
                .map_or("–".into(), |[lo, hi]| format!("{lo}–{hi}")),
            c.rep_id,
            truncate(c.name.as_deref().unwrap_or(""), 20),
            truncate(c.team.as_deref().unwrap_or(""), 16),
            n(c.closed as u64),
            n(c.won as u64),
            raw,
            c.win
                .as_ref()
                .map_or("–".into(), |w| pct_interval(&w.adjusted_win_rate)),
            beyond,
            ratio(&c.cycle),
            ratio(&c.deal_size),
        );
    }
    println!();
    let unranked: Vec<&RepCard> = cards.reps.iter().filter(|c| c.rank.is_none()).collect();
    if cards.ranking.comparable && !unranked.is_empty() {
        println!(
            "Not ranked ({} reps; a rank needs at least {} closed deals with {} wins and {} losses):",
            unranked.len(),
            cards.ranking.min_closed,
            cards.ranking.min_wins,
            cards.ranking.min_losses
        );
        const SHOWN: usize = 20;
        for c in unranked.iter().take(SHOWN) {
            println!(
                "  {}: {}",
                c.rep_id,
                c.unranked_reason.as_deref().unwrap_or("")
            );
        }
        if unranked.len() > SHOWN {
            println!(
                "  … and {} more (`--json` lists every reason)",
                unranked.len() - SHOWN
            );
        }
        println!();
    }
    if cards.reps.iter().any(|c| c.rank_tied) {
        println!(
            "`=` marks a shared rank: those reps' adjusted win rates are equal, and the next rank is \
             skipped."
        );
    }
    if cards.ranking.comparable {
        println!(
            "Reps differ beyond the deal mix by a standard deviation of {:.2} on the log odds of \
             winning ({}).",
            cards.win_model.between_rep_sd,
            if cards.win_model.between_rep_sd == 0.0 {
                "0: reps do not differ more than chance would make them"
            } else {
                "0 would mean no more than chance"
            }
        );
        println!(
            "A rank is only as firm as the intervals: `range` is the ranks a rep's 95 % interval \
             allows (from 1 + the reps whose interval lies wholly above theirs to the ranked reps \
             minus those wholly below)."
        );
    }
    println!(
        "`beyond bhv.`: the win rate also adjusted for the behaviours that go with winning, and its \
         rank (what a rep adds that the measured behaviours do not explain). `cycle` and `size`: days \
         to close and amount of won deals as a multiple of the average rep's on the same mix."
    );
    println!(
        "`winsignal reps REP_ID` shows one rep's card. {}",
        cards.caveat
    );
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}

fn continuous_line(label: &str, s: &ContinuousScore, fmt: fn(f64) -> String) {
    println!(
        "  {label:<22} ×{:.2} the average rep on the same mix (95 % CI ×{:.2}–×{:.2}); own median {}, \
         on the team's mix {} ({}–{}); n = {}, pulled {} toward the average",
        s.ratio.estimate,
        s.ratio.low,
        s.ratio.high,
        fmt(s.raw_median),
        fmt(s.adjusted.estimate),
        fmt(s.adjusted.low),
        fmt(s.adjusted.high),
        n(s.n as u64),
        pct(s.shrinkage)
    );
}

pub(crate) fn print_card(cards: &Scorecards, c: &RepCard) {
    print_warnings(cards);
    println!(
        "Rep {}  {}  ({}{})",
        c.rep_id,
        c.name.as_deref().unwrap_or(""),
        c.team.as_deref().unwrap_or("no team"),
        c.manager_id
            .as_deref()
            .map_or(String::new(), |m| format!(", manager {m}"))
    );
    println!(
        "  deals {}: {} closed ({} won), {} open{}",
        n(c.deals as u64),
        n(c.closed as u64),
        n(c.won as u64),
        n(c.open as u64),
        match (c.rank, c.rank_range) {
            (Some(_), Some([lo, hi])) => format!(
                "; rank {} of {} by adjusted win rate{} (the intervals allow {}–{})",
                rank_text(c.rank, c.rank_tied),
                cards.ranking.ranked,
                if c.rank_tied { ", shared" } else { "" },
                lo,
                hi
            ),
            _ => String::new(),
        }
    );
    if let Some(reason) = &c.unranked_reason {
        if cards.ranking.comparable {
            println!("  not ranked: {reason}");
        }
    }
    if let Some(w) = &c.win {
        println!(
            "  {:<22} raw {}   adjusted {}   average rep {}",
            "win rate",
            c.win_rate.map_or("–".into(), pct),
            pct_interval(&w.adjusted_win_rate),
            pct(cards.mean_win_rate)
        );
        println!(
            "  {:<22} expected wins for this deal mix {:.1}, observed {} (×{:.2}; ×{:.2} after pooling), pulled {} toward the average",
            "",
            w.expected_wins,
            w.observed_wins,
            w.ratio,
            w.ratio_pooled,
            pct(w.shrinkage)
        );
    } else if !cards.ranking.comparable {
        println!("  win rate: not comparable between reps in this data (see the note above)");
    } else {
        println!("  win rate: no closed deals yet");
    }
    if let (Some(b), Some(_)) = (&c.beyond_behaviours, c.rank_beyond_behaviours) {
        println!(
            "  {:<22} {} (rank {}): also adjusted for the behaviours below — what the rep adds that \
             they do not explain",
            "beyond behaviours",
            pct_interval(&b.adjusted_win_rate),
            rank_text(c.rank_beyond_behaviours, c.rank_beyond_behaviours_tied)
        );
    }
    if let Some(s) = &c.cycle {
        continuous_line("days to close (won)", s, |x| format!("{x:.0}"));
    }
    if let Some(s) = &c.deal_size {
        continuous_line("amount (won)", s, money);
    }
    if !c.adoption.is_empty() {
        println!();
        println!(
            "Adoption of the behaviours that go with winning (rep / team / best quarter of reps):"
        );
        for (a, b) in c.adoption.iter().zip(&cards.behaviours) {
            let opt = |x: Option<f64>| x.map_or("–".into(), pct);
            println!(
                "  {:<34} {:<18} {:>5} / {:>5} / {:>5}   (n = {}){}",
                truncate(&b.title, 34),
                a.landmark,
                opt(a.rate),
                opt(a.team),
                opt(a.top_quartile),
                n(a.n as u64),
                if b.helps {
                    ""
                } else {
                    "  goes with losing: lower is better"
                }
            );
        }
    }
    println!();
    if c.coaching.is_empty() {
        println!(
            "Coaching priorities: none — at or above the best quarter of reps on every behaviour."
        );
    } else {
        println!("Coaching priorities (expected extra wins on the open pipeline):");
        for (i, p) in c.coaching.iter().enumerate() {
            println!("  {}. {}", i + 1, p.text);
        }
    }
    println!();
    println!("{}", cards.caveat);
}
