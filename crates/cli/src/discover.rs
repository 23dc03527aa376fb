//! `winsignal discover`: which behaviours go with winning, closing faster and closing bigger.

use crate::features::{compute, CatalogArg};
use crate::Global;
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::io::Write;
use winsignal_discover::{Discovery, Finding, Options, Outcome, Status};
use winsignal_store::Store;

use crate::output::n;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutcomeArg {
    /// Won versus lost (logistic regression).
    Win,
    /// Time from the landmark to close-won (Cox proportional hazards).
    CycleTime,
    /// Log amount of won deals (linear regression).
    DealSize,
    /// All three.
    All,
}

#[derive(Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    pub catalog: CatalogArg,
    /// Which outcome to analyse.
    #[arg(long, value_enum, default_value = "all")]
    pub outcome: OutcomeArg,
    /// Only this landmark (repeatable), e.g. `stage:Proposal` or `age:30d`; every landmark when omitted.
    #[arg(long, value_name = "STAGE|AGE")]
    pub landmark: Vec<String>,
    /// Print the whole result as JSON on stdout (schema in docs/discover.md).
    #[arg(long)]
    pub json: bool,
    /// How many behaviours (and rules) to list per outcome (text output).
    #[arg(long, default_value_t = 12)]
    pub top: usize,
    /// Keep columns flagged as possible leakage (see `leakage` in the JSON): flagged controls stay in
    /// the models and the findings reading a flagged column are not marked.
    #[arg(long)]
    pub keep_suspect_columns: bool,
}

pub fn options(args: &DiscoverArgs) -> Options {
    let outcomes = match args.outcome {
        OutcomeArg::Win => vec![Outcome::Win],
        OutcomeArg::CycleTime => vec![Outcome::CycleTime],
        OutcomeArg::DealSize => vec![Outcome::DealSize],
        OutcomeArg::All => Outcome::ALL.to_vec(),
    };
    Options {
        outcomes,
        landmarks: args
            .landmark
            .iter()
            .map(|l| normalise_landmark(l))
            .collect(),
        keep_suspect: args.keep_suspect_columns,
        ..Options::default()
    }
}

/// `Proposal` → `stage:Proposal`, `30` or `30d` → `age:30d`; full names pass through.
fn normalise_landmark(l: &str) -> String {
    if l.contains(':') || l == "created" {
        return l.to_string();
    }
    let digits = l.trim_end_matches('d');
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        return format!("age:{digits}d");
    }
    format!("stage:{l}")
}

pub fn run(global: &Global, store: &dyn Store, args: &DiscoverArgs) -> Result<()> {
    let catalog = args.catalog.load()?;
    let c = compute(store, catalog, global.quiet)?;
    if let Some(note) = winsignal_workspace::catalogs::reads_nothing(&c) {
        eprintln!("{note}");
    }
    if !global.quiet {
        eprintln!("fitting models for {} snapshots…", c.snapshots.len());
    }
    let started = std::time::Instant::now();
    let d = winsignal_workspace::insights::discovery(&c, options(args))?;
    if !global.quiet {
        eprintln!(
            "fitted {} models in {:.1} s",
            d.findings.len() + d.rules.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if args.json {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::new(stdout.lock());
        serde_json::to_writer(&mut w, &d)?;
        writeln!(w)?;
        return Ok(());
    }
    print_findings(&d, args.top);
    Ok(())
}

fn effect_words(f: &Finding) -> String {
    let Some(e) = &f.effect else {
        return String::new();
    };
    let per = f
        .step
        .map(|s| {
            let kind = if f.step_kind == Some("sd") {
                "SD"
            } else {
                "IQR"
            };
            format!(" per {} ({kind})", trim(s))
        })
        .unwrap_or_default();
    match e.scale {
        "odds_ratio" => {
            let ame = e
                .ame_pp
                .map(|a| format!(", {:+.1} pts [{:+.1}, {:+.1}]", a.estimate, a.low, a.high))
                .unwrap_or_default();
            format!(
                "odds ×{:.2} [{:.2}, {:.2}]{per}{ame}",
                e.estimate, e.low, e.high
            )
        }
        "hazard_ratio" => format!(
            "closes won ×{:.2} as fast [{:.2}, {:.2}]{per}",
            e.estimate, e.low, e.high
        ),
        _ => format!(
            "amount {:+.0} % [{:+.0}, {:+.0}]{per}",
            e.estimate, e.low, e.high
        ),
    }
}

/// A q-value in words: below the smallest double it prints as "< 1e-300", not "0e0".
fn q_words(q: f64) -> String {
    if q == 0.0 {
        "< 1e-300".into()
    } else {
        format!("{q:.0e}")
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn raw_words(f: &Finding) -> String {
    let (Some(a), Some(b)) = (f.raw.with, f.raw.without) else {
        return String::new();
    };
    match f.outcome {
        Outcome::Win => format!("win rate {:.0} % vs {:.0} %", 100.0 * a, 100.0 * b),
        Outcome::CycleTime => format!("median {a:.0} vs {b:.0} days to close won"),
        Outcome::DealSize => format!("typical won amount {a:.0} vs {b:.0}"),
    }
}

/// Per outcome, each yes/no behaviour that is significant somewhere, at the landmark with the strongest
/// evidence (and at how many landmarks it is significant), strongest effects first; then the rules.
pub fn print_findings(d: &Discovery, top: usize) {
    let count = |s: Status| d.findings.iter().filter(|f| f.status == s).count();
    let significant = d.findings.iter().filter(|f| f.significant).count()
        + d.rules.iter().filter(|r| r.significant).count();
    println!(
        "Discovery over {} snapshots of {} opportunities at {} landmarks ({}): {} tests, {} significant at q < {}; {} not enough data, {} refused.",
        n(d.snapshots as u64),
        n(d.opportunities as u64),
        d.landmarks.len(),
        d.catalog,
        n(d.tests as u64),
        n(significant as u64),
        d.fdr,
        n(count(Status::NotEnoughData) as u64),
        n(count(Status::Refused) as u64),
    );
    let errors = match d.cluster {
        "rep" => "standard errors clustered by rep",
        "deal" => "robust standard errors by deal (no deal has a rep)",
        _ => "standard errors clustered by rep (a deal without a rep counts as its own cluster)",
    };
    println!("Adjusted for: {}; {errors}.", d.controls.join(", "));
    if let Some(line) = d.unobserved.sentence() {
        println!("{line}.");
    }
    if !d.leakage.is_empty() {
        println!("Possible leakage, by column (flagged controls are left out of the models unless --keep-suspect-columns):");
        for f in &d.leakage {
            println!("  {}: {}", f.column, f.evidence);
        }
    }
    for outcome in [Outcome::Win, Outcome::CycleTime, Outcome::DealSize] {
        let mine: Vec<&Finding> = d
            .findings
            .iter()
            .filter(|f| f.outcome == outcome && f.kind == "yes_no")
            .collect();
        if mine.is_empty() {
            continue;
        }
        let mut best: Vec<(&Finding, usize, usize)> = Vec::new();
        let mut ids: Vec<&str> = Vec::new();
        for f in &mine {
            if !ids.contains(&f.behaviour.as_str()) {
                ids.push(&f.behaviour);
            }
        }
        for id in ids {
            let of: Vec<&&Finding> = mine.iter().filter(|f| f.behaviour == id).collect();
            let sig: Vec<&&Finding> = of.iter().copied().filter(|f| f.significant).collect();
            let p = |f: &Finding| f.effect.as_ref().map_or(1.0, |e| e.p);
            if let Some(b) = sig.iter().min_by(|a, b| p(a).total_cmp(&p(b))) {
                best.push((b, sig.len(), of.len()));
            }
        }
        let strength = |f: &Finding| {
            f.effect.as_ref().map_or(0.0, |e| match e.scale {
                "percent_change" => (1.0 + e.estimate / 100.0).ln().abs(),
                _ => e.estimate.ln().abs(),
            })
        };
        best.sort_by(|a, b| strength(b.0).total_cmp(&strength(a.0)));
        println!();
        println!(
            "{} — significant behaviours, at the landmark with the strongest evidence:",
            match outcome {
                Outcome::Win => "Winning (adjusted odds ratio; average effect on the win rate)",
                Outcome::CycleTime =>
                    "Closing faster (adjusted hazard ratio of closing won; > 1 is faster)",
                Outcome::DealSize => "Closing bigger (adjusted change in the amount of won deals)",
            }
        );
        if best.is_empty() {
            println!("  none");
        }
        for (f, sig, of) in best.iter().take(top) {
            println!(
                "  {:<22} {:<20} {}; {}  q = {}  (significant at {sig} of {of} landmarks){}",
                f.behaviour,
                f.landmark,
                effect_words(f),
                raw_words(f),
                q_words(f.effect.as_ref().map_or(f64::NAN, |e| e.q)),
                f.leakage
                    .as_ref()
                    .map(|_| "  [possible leakage]")
                    .unwrap_or_default()
            );
        }
    }
    print_column_tests(d);
    let mut rules: Vec<_> = d.rules.iter().filter(|r| r.significant).collect();
    rules.sort_by(|a, b| {
        let p = |r: &winsignal_discover::Rule| r.effect.as_ref().map_or(1.0, |e| e.p);
        p(a).total_cmp(&p(b))
    });
    if !rules.is_empty() {
        println!();
        println!("Rules (threshold chosen on half the deals, effect estimated on the other half):");
        for r in rules.iter().take(top) {
            if let Some(e) = &r.effect {
                println!(
                    "  {}; adjusted odds ×{:.2} [{:.2}, {:.2}]",
                    r.text, e.estimate, e.low, e.high
                );
            }
        }
    }
    println!();
    println!("{}", d.caveat);
}

/// Each categorical column tested as a whole: per outcome, the landmark with the smallest p-value.
fn print_column_tests(d: &Discovery) {
    if d.column_tests.is_empty() {
        return;
    }
    println!();
    println!("Categorical columns as a whole (all levels together against the most common; Wald F test):");
    let mut seen: Vec<(Outcome, &str)> = Vec::new();
    for t in &d.column_tests {
        if seen.contains(&(t.outcome, t.behaviour.as_str())) {
            continue;
        }
        seen.push((t.outcome, t.behaviour.as_str()));
        let of: Vec<&winsignal_discover::ColumnTest> = d
            .column_tests
            .iter()
            .filter(|c| c.outcome == t.outcome && c.behaviour == t.behaviour)
            .collect();
        let best = of
            .iter()
            .filter(|c| c.p.is_some())
            .min_by(|a, b| a.p.unwrap_or(1.0).total_cmp(&b.p.unwrap_or(1.0)));
        let outcome = match t.outcome {
            Outcome::Win => "winning",
            Outcome::CycleTime => "closing faster",
            Outcome::DealSize => "closing bigger",
        };
        match best {
            Some(c) => println!(
                "  {:<22} {:<14} {:<20} F({}, {}) = {:.2}, p = {}, q = {}{}  ({} level{} against {})",
                c.behaviour,
                outcome,
                c.landmark,
                c.df1,
                c.df2.map_or("?".into(), |x| format!("{x:.0}")),
                c.f.unwrap_or(f64::NAN),
                q_words(c.p.unwrap_or(f64::NAN)),
                q_words(c.q.unwrap_or(f64::NAN)),
                match (c.significant, c.leakage.is_some()) {
                    (true, true) => "  significant  [possible leakage]",
                    (true, false) => "  significant",
                    (false, true) => "  [possible leakage]",
                    (false, false) => "",
                },
                c.levels.len(),
                if c.levels.len() == 1 { "" } else { "s" },
                c.reference.as_deref().unwrap_or("?"),
            ),
            None => println!(
                "  {:<22} {:<14} {}",
                t.behaviour,
                outcome,
                t.note.as_deref().unwrap_or("no test")
            ),
        }
    }
}
