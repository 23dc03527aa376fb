//! `winsignal forecast`: bookings per period, and its back-test.

use anyhow::{bail, Context as _, Result};
use clap::Args;
use serde::Serialize;
use winsignal_core::Ts;
use winsignal_score::forecast::{Forecast, ForecastOptions, PeriodKind, Scenario};
use winsignal_store::Store;
use winsignal_workspace::forecast::{Accuracy, Backtest};

use crate::progress::Bar;
use crate::Global;

#[derive(Args)]
pub struct ForecastArgs {
    #[command(flatten)]
    pub catalog: crate::features::ModelCatalogArg,
    /// Count bookings per calendar month or quarter (UTC).
    #[arg(long, default_value = "quarter", value_name = "month|quarter")]
    pub period: PeriodKind,
    /// How many periods to forecast, the one holding the as-of date first.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub periods: usize,
    /// Forecast as of this date (RFC 3339 or YYYY-MM-DD) from what was known before it; the default is
    /// the end of the data.
    #[arg(long, value_name = "DATE", conflicts_with = "backtest")]
    pub as_of: Option<String>,
    /// Forecast with this saved model; the latest win model by default.
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// Back-test instead: at every weekly point, the period's forecast made with what was known then
    /// (the model trained again on the deals closed before the period began) against what was booked,
    /// beside the stage-weighted pipeline.
    #[arg(long)]
    pub backtest: bool,
    /// The back-test's first point (the first period starting on or after it); by default two years
    /// before the end of the data, or a year after its start if that is later.
    #[arg(long, value_name = "DATE", requires = "backtest")]
    pub from: Option<String>,
    /// A scenario, `BEHAVIOUR=N%`: if reps gained the behaviour (a yes/no behaviour of the win model,
    /// e.g. exec_engaged) on N % of the open deals that lack it, the change in each period's bookings,
    /// from each deal's uplift in P(win) by the model, with a P10–P90 range. An association-based
    /// projection, not a promise. Repeatable.
    #[arg(long, value_name = "BEHAVIOUR=N%", value_parser = parse_scenario, conflicts_with = "backtest")]
    pub scenario: Vec<(String, f64)>,
    /// How many simulations the P10–P90 range is drawn from.
    #[arg(long, default_value_t = 4000, value_name = "N")]
    pub simulations: usize,
    /// Print the forecast (or the back-test) as JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ForecastOut<'a> {
    model_id: &'a str,
    #[serde(flatten)]
    forecast: &'a Forecast,
    scenarios: &'a [Scenario],
}

/// `exec_engaged=50%` (or `=50`): the behaviour and the share, 0 to 1.
fn parse_scenario(text: &str) -> Result<(String, f64), String> {
    let expected =
        || format!("{text:?}: expected BEHAVIOUR=N% with N from 0 to 100, e.g. exec_engaged=50%");
    let (behaviour, share) = text.split_once('=').ok_or_else(expected)?;
    let n: f64 = share
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| expected())?;
    if behaviour.trim().is_empty() || !(0.0..=100.0).contains(&n) {
        return Err(expected());
    }
    Ok((behaviour.trim().to_string(), n / 100.0))
}

pub fn run(global: &Global, store: &dyn Store, args: &ForecastArgs) -> Result<()> {
    if args.periods == 0 || args.periods > 12 {
        bail!("--periods {}: give 1 to 12", args.periods);
    }
    if args.simulations < 100 {
        bail!(
            "--simulations {}: at least 100 are needed for a P10–P90 range",
            args.simulations
        );
    }
    let date = |flag: &str, text: &str| {
        Ts::parse(text).with_context(|| {
            format!("{flag} {text:?}: expected a date (YYYY-MM-DD) or an RFC 3339 time")
        })
    };
    let opts = ForecastOptions {
        kind: args.period,
        periods: args.periods,
        simulations: args.simulations,
        ..ForecastOptions::default()
    };
    let mut bar = Bar::new(global.quiet);
    let catalog = args.catalog.catalog.as_deref();
    if args.backtest {
        let from = args
            .from
            .as_deref()
            .map(|t| date("--from", t))
            .transpose()?;
        let b = winsignal_workspace::forecast::backtest(
            store,
            catalog,
            args.model.as_deref(),
            from,
            &opts,
            &mut bar,
        )?;
        if args.json {
            return crate::output::print_json(&b);
        }
        print_backtest(&b);
        return Ok(());
    }
    let as_of = args
        .as_of
        .as_deref()
        .map(|t| date("--as-of", t))
        .transpose()?;
    let (id, f, scenarios) = winsignal_workspace::forecast::forecast_at(
        store,
        catalog,
        args.model.as_deref(),
        as_of,
        &opts,
        &args.scenario,
        &mut bar,
    )?;
    if args.json {
        return crate::output::print_json(&ForecastOut {
            model_id: &id,
            forecast: &f,
            scenarios: &scenarios,
        });
    }
    print_forecast(&id, &f);
    for s in &scenarios {
        print_scenario(s);
    }
    Ok(())
}

/// An amount as printed: whole units with thousands separators (never negative: bookings).
fn money(x: f64) -> String {
    crate::output::n(x.round().max(0.0) as u64)
}

fn print_forecast(model_id: &str, f: &Forecast) {
    println!(
        "Bookings forecast as of {} (model {model_id}):",
        f.as_of.to_rfc3339()
    );
    println!(
        "{:<9} {:>14} {:>14} {:>14} {:>14} {:>27} {:>15}",
        "period",
        "won so far",
        "open deals",
        "new deals",
        "expected",
        "P10 – P90",
        "stage-weighted"
    );
    for p in &f.periods {
        println!(
            "{:<9} {:>14} {:>14} {:>14} {:>14} {:>27} {:>15}",
            p.period.label,
            money(p.closed_won),
            money(p.open_expected),
            money(p.new_expected),
            money(p.expected),
            format!("{} – {}", money(p.p10), money(p.p90)),
            money(p.stage_weighted)
        );
    }
    if f.periods
        .iter()
        .any(|p| p.crm_weighted.is_some() || p.commit.is_some() || p.committed.is_some())
    {
        let opt = |x: Option<f64>| x.map_or("–".into(), money);
        println!(
            "\nFrom the CRM's own fields (probability, forecast category, expected close date):"
        );
        println!(
            "{:<9} {:>14} {:>14} {:>14} {:>22}",
            "period", "CRM-weighted", "commit", "committed", "slip to the next"
        );
        for p in &f.periods {
            println!(
                "{:<9} {:>14} {:>14} {:>14} {:>22}",
                p.period.label,
                opt(p.crm_weighted),
                opt(p.commit),
                opt(p.committed),
                pct(p.slip)
            );
        }
    }
    let first = f.periods.first().map_or("", |p| p.period.label.as_str());
    println!("\nThe open deals carrying {first} most:");
    for d in f.deals.iter().take(10).filter(|d| d.expected[0] > 0.0) {
        println!(
            "  {:<20} {:>12} × P(win) {:>3.0}% × P(closes in {first}) {:>3.0}% = {}",
            d.opportunity_id,
            money(d.amount.unwrap_or(0.0)),
            d.p_win * 100.0,
            if d.p_win > 0.0 {
                d.p_in_period[0] / d.p_win * 100.0
            } else {
                0.0
            },
            money(d.expected[0])
        );
    }
    if let Some(c) = &f.changes {
        println!("\nSince {}:", c.since.to_date_string());
        for p in &c.periods {
            let d = p.expected_now - p.expected_before;
            println!(
                "  {:<9} {} → {} ({}{})",
                p.label,
                money(p.expected_before),
                money(p.expected_now),
                if d < 0.0 { "-" } else { "+" },
                money(d.abs())
            );
        }
        for d in &c.deals {
            let change = d.now - d.before;
            println!(
                "  {:<20} {}{} ({})",
                d.opportunity_id,
                if change < 0.0 { "-" } else { "+" },
                money(change.abs()),
                d.what
            );
        }
    }
    println!(
        "\nNew deals: {:.1} created a day lately; what they bring is taken from {} deals created earlier.",
        f.creation_per_day, f.new_deal_examples
    );
    for n in &f.notes {
        println!("Note: {n}.");
    }
    println!(
        "The range is from {} simulations of every deal; `forecast --backtest` shows how often such ranges held.",
        f.simulations
    );
}

fn print_scenario(s: &Scenario) {
    println!(
        "\nScenario: {} gained on {:.0} % of the {} open deals that lack it (mean uplift {:+.1} points of P(win)):",
        s.behaviour,
        100.0 * s.share,
        s.deals_lacking,
        s.mean_uplift_points
    );
    let signed = |x: f64| {
        if x < 0.0 {
            format!("-{}", money(-x))
        } else {
            format!("+{}", money(x))
        }
    };
    for p in &s.periods {
        println!(
            "  {:<9} {:>14} expected (P10 {}, P90 {})",
            p.label,
            signed(p.expected_change),
            signed(p.p10),
            signed(p.p90)
        );
    }
    println!("  This is {}.", s.caveat);
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{:.1}%", x * 100.0))
}

fn print_backtest(b: &Backtest) {
    println!(
        "Back-test: {} weekly points, each forecasting its {} with what was known then ({:.1} s).",
        b.points.len(),
        match b.kind {
            PeriodKind::Month => "month",
            PeriodKind::Quarter => "quarter",
        },
        b.seconds
    );
    println!(
        "{:>5} {:>7} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12}",
        "week",
        "points",
        "MAPE",
        "bias",
        "85–115%",
        "P10–P90",
        "stage MAPE",
        "stage bias",
        "stage 85–115"
    );
    let row = |label: String, a: &Accuracy| {
        println!(
            "{:>5} {:>7} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>12}",
            label,
            a.points,
            pct(a.mape),
            pct(a.bias),
            pct(a.within_85_115),
            pct(a.coverage_p10_p90),
            pct(a.stage_weighted_mape),
            pct(a.stage_weighted_bias),
            pct(a.stage_weighted_within_85_115)
        );
    };
    for a in &b.by_week {
        row(a.week.map_or("all".into(), |w| w.to_string()), a);
    }
    row("all".into(), &b.overall);
    let crm = |a: &Accuracy| {
        a.crm_weighted_mape.is_some() || a.commit_mape.is_some() || a.slip_points > 0
    };
    if crm(&b.overall) {
        println!("\nThe CRM's own figures at the same points, and the slip of the committed amount to the next period:");
        println!(
            "{:>5} {:>10} {:>10} {:>12} {:>12} {:>13} {:>12} {:>11}",
            "week",
            "CRM MAPE",
            "CRM bias",
            "commit MAPE",
            "commit bias",
            "slip expected",
            "slip actual",
            "slip error"
        );
        let row = |label: String, a: &Accuracy| {
            println!(
                "{:>5} {:>10} {:>10} {:>12} {:>12} {:>13} {:>12} {:>11}",
                label,
                pct(a.crm_weighted_mape),
                pct(a.crm_weighted_bias),
                pct(a.commit_mape),
                pct(a.commit_bias),
                pct(a.slip_expected),
                pct(a.slip_actual),
                pct(a.slip_error)
            );
        };
        for a in &b.by_week {
            row(a.week.map_or("all".into(), |w| w.to_string()), a);
        }
        row("all".into(), &b.overall);
    }
    for n in &b.notes {
        println!("Note: {n}.");
    }
    if !b.points.is_empty() {
        println!(
            "Each period's P10–P90 used the shared shock (to every deal's log-odds) whose ranges held the earlier periods' actuals closest to 80 % of the time; over every point that is {}, which `forecast` now uses.",
            b.shared_shock
        );
    }
}
