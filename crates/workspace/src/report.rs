//! The report: discovery, the win model and the rep scorecards as one self-contained HTML page for
//! sales leaders. The page embeds Chart.js and the data as JSON — the whole discovery result (the
//! numbers `discover --json` prints), the win model's holdout evaluation, the open deals most at risk and
//! a line per rep — and draws the tables and charts from it in the browser; it needs no network.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use winsignal_core::Ts;
use winsignal_discover::{Discovery, Interval, Options};
use winsignal_ingest::quality::QualityReport;
use winsignal_score::explain::DealScore;
use winsignal_score::model::{Evaluation, Metrics, WinModel};
use winsignal_score::reps::Scorecards;
use winsignal_store::{Store, StoreRead};

use crate::pipeline::{compute_at, replay, Computed};
use crate::text::n;
use crate::Progress;

const TEMPLATE: &str = include_str!("../assets/report.html");
const CHARTJS: &str = include_str!("../assets/chart.umd.min.js");
const CHARTJS_VERSION: &str = "4.6.1";

/// Builds the report for the workspace as it is now and writes it to `out`: discovery with the
/// catalog of the active win model (or `catalog`, or the built-in default), the model's quality and
/// the open deals it scores, and every rep's scorecard.
pub fn write_report(
    store: &dyn Store,
    catalog: Option<&Path>,
    out: &Path,
    progress: &mut dyn Progress,
) -> Result<()> {
    let snapshot = store.snapshot()?;
    let read: &dyn StoreRead = &*snapshot;
    // The active win model, whose catalog the page uses unless `catalog` says otherwise.
    let latest = crate::models::active_win_model(read)?;
    let catalog = match (&latest, catalog) {
        (Some((id, model)), path) => crate::pipeline::catalog_for_model(path, id, model)?,
        (None, Some(path)) => crate::pipeline::load_catalog(path)?,
        (None, None) => winsignal_features::catalog::default_catalog(),
    };
    let declared = catalog.clone();
    let c = compute_at(store, read, catalog, progress)?;
    let d = crate::insights::discovery(&c, Options::default())?;
    let quality = winsignal_ingest::quality::report(read)?;
    // The same scorecards as `winsignal reps`: from this discovery, so the behaviours coached are the
    // ones the page calls significant.
    let cards = crate::coaching::all_scorecards(read, &c, &d)?;
    let scored = match &latest {
        Some((_, model)) => Some(open_deal_scores(
            store, read, &c.ctx, &declared, model, progress,
        )?),
        None => None,
    };
    let forecast = match &scored {
        Some(Ok((as_of, deals))) => forecast_part(store, &c.ctx, *as_of, deals)?,
        _ => None,
    };
    let model = match (&latest, &scored) {
        (Some((id, model)), Some(scored)) => Some(ModelScores {
            id,
            model,
            scores: match scored {
                Ok((as_of, deals)) => Ok((*as_of, deals.as_slice())),
                Err(why) => Err(why.as_str()),
            },
        }),
        _ => None,
    };
    write(
        out,
        &d,
        &c,
        &quality,
        &Scoring {
            model,
            cards: &cards,
            forecast,
        },
    )
}

/// The report's forecast: `winsignal forecast` of the open deals scored at `as_of` (just after the end
/// of the data, as [`crate::scoring::scores`] takes it; quarters, the current one and the next two),
/// and the last back-test saved in the workspace.
pub fn forecast_part(
    store: &dyn Store,
    ctx: &winsignal_features::Context,
    as_of: Ts,
    deals: &[DealScore],
) -> Result<Option<ForecastPart>> {
    let (forecast, _) = crate::forecast::calibrated(
        store,
        ctx,
        deals,
        as_of,
        &winsignal_score::forecast::ForecastOptions {
            data_end: Some(as_of.plus_millis(-1)),
            ..Default::default()
        },
    )?;
    Ok(Some(ForecastPart {
        forecast,
        backtest: crate::forecast::last_backtest(store)?,
    }))
}

/// The bookings forecast the report shows, and the last back-test, if one was run.
#[derive(Serialize)]
pub struct ForecastPart {
    pub forecast: winsignal_score::forecast::Forecast,
    pub backtest: Option<crate::forecast::Backtest>,
}

/// The open deals scored with `model` as of the end of the data, or why they could not be (a model
/// trained with another catalog): the page says so instead of failing. The catalog's categorical
/// definitions are split into the levels the model was trained on (as `score` does), whatever levels
/// the data have now.
fn open_deal_scores(
    store: &dyn Store,
    read: &dyn StoreRead,
    ctx: &winsignal_features::Context,
    declared: &winsignal_features::Catalog,
    model: &WinModel,
    progress: &mut dyn Progress,
) -> Result<std::result::Result<(Ts, Vec<DealScore>), String>> {
    let catalog = crate::catalogs::resolve_for(read, declared, ctx, &model.trained_on.versions)?;
    let engine = replay(store, read, ctx.clone(), progress)?;
    Ok(
        match crate::scoring::scores(&engine, &catalog, model, None, None) {
            Ok((as_of, deals, _)) => Ok((as_of, deals)),
            Err(e) => Err(format!("{e:#}")),
        },
    )
}

/// What the report shows beyond discovery: the win model with the open deals it scores, and the rep
/// scorecards.
pub struct Scoring<'a> {
    /// The win model; none when the workspace has none yet (the page says to run `winsignal train`).
    pub model: Option<ModelScores<'a>>,
    /// Every rep's scorecard (they need no model).
    pub cards: &'a Scorecards,
    /// The bookings forecast (none without a model).
    pub forecast: Option<ForecastPart>,
}

/// A saved win model and the open deals scored with it.
pub struct ModelScores<'a> {
    pub id: &'a str,
    pub model: &'a WinModel,
    /// When the open deals were scored, and their scores; or why they could not be scored.
    pub scores: std::result::Result<(Ts, &'a [DealScore]), &'a str>,
}

/// Writes the report for a discovery, with the win model's quality, the open deals most at risk and the
/// rep scorecards.
pub fn write(
    out: &Path,
    d: &Discovery,
    c: &Computed,
    quality: &QualityReport,
    scoring: &Scoring<'_>,
) -> Result<()> {
    let page = html(d, c, quality, scoring)?;
    crate::files::write_atomically(out, |w| {
        use std::io::Write as _;
        Ok(w.write_all(page.as_bytes())?)
    })
}

/// How many of the open deals most at risk the page lists.
const AT_RISK_ROWS: usize = 25;

/// How many of the model's terms, most important first, the page names.
const TOP_TERMS: usize = 10;

/// The page's data about the win model (dates as `YYYY-MM-DD`).
#[derive(Serialize)]
struct ModelJson<'a> {
    id: &'a str,
    /// What to read before trusting the model, most serious first (shown first).
    warnings: &'a [winsignal_score::model::Warning],
    /// What the holdout really is.
    split: &'a winsignal_score::dataset::SplitInfo,
    /// The candidate kept on the calibration deals (absent for models saved before the comparison).
    chosen: Option<&'a str>,
    /// Why the model was or was not recalibrated.
    recalibration: Option<&'a str>,
    catalog: &'a str,
    definitions: usize,
    excluded: &'a [winsignal_score::dataset::Excluded],
    calibration_from: String,
    cutoff: String,
    latest_close: String,
    rows_train: usize,
    rows_calibration: usize,
    rows_test: usize,
    deals_train: usize,
    deals_test: usize,
    /// The correction applied to the boosting machine's logit (none when it was calibrated already).
    calibration: Option<winsignal_learn::Calibration>,
    calibration_check: &'a Metrics,
    evaluation: &'a Evaluation,
    /// The most important terms, first the largest mean |logit contribution|.
    terms: Vec<TermJson<'a>>,
    /// Why the open deals could not be scored with this model.
    scores_error: Option<&'a str>,
    as_of: Option<String>,
    open_deals: usize,
    /// What the at-risk table is ordered by (`amount_at_risk` or `p_loss`) and the rule in words.
    risk_basis: &'static str,
    risk_note: String,
    at_risk: Vec<DealRow<'a>>,
}

/// One open deal of the at-risk table.
#[derive(Serialize)]
struct DealRow<'a> {
    opportunity_id: &'a str,
    account_id: Option<&'a str>,
    rep_id: Option<&'a str>,
    stage: Option<&'a str>,
    age_days: f64,
    amount: Option<f64>,
    p_win: f64,
    /// The factor pulling P(win) down the most.
    drag: Option<Drag<'a>>,
    /// The best next action.
    action: Option<NextAction<'a>>,
}

#[derive(Serialize)]
struct TermJson<'a> {
    name: &'a str,
    importance: f64,
}

#[derive(Serialize)]
struct Drag<'a> {
    term: &'a str,
    /// The deal's value in words.
    value: &'a str,
    points: f64,
}

#[derive(Serialize)]
struct NextAction<'a> {
    title: &'a str,
    uplift_points: f64,
    coaching: &'a str,
}

#[derive(Serialize)]
struct TopPriority<'a> {
    behaviour: &'a str,
    title: &'a str,
    expected_extra_wins: f64,
    text: &'a str,
}

/// One rep's line of the scorecard table.
#[derive(Serialize)]
struct RepRow<'a> {
    rank: Option<usize>,
    /// The rank is shared (shown `=1`).
    rank_tied: bool,
    /// Why the rep has no rank.
    unranked_reason: Option<&'a str>,
    rep_id: &'a str,
    name: Option<&'a str>,
    team: Option<&'a str>,
    deals: usize,
    closed: usize,
    won: usize,
    open: usize,
    win_rate: Option<f64>,
    adjusted: Option<&'a Interval>,
    beyond_behaviours: Option<&'a Interval>,
    rank_beyond_behaviours: Option<usize>,
    rank_beyond_behaviours_tied: bool,
    /// The top coaching priority.
    coaching: Option<TopPriority<'a>>,
}

#[derive(Serialize)]
struct RepsJson<'a> {
    mean_win_rate: f64,
    between_rep_sd: f64,
    caveat: &'a str,
    /// Problems with the data that weaken or prevent the ranks, in words.
    warnings: Vec<&'a str>,
    reps: Vec<RepRow<'a>>,
}

fn model_json<'a>(m: &ModelScores<'a>) -> ModelJson<'a> {
    let t = &m.model.trained_on;
    let mut terms: Vec<TermJson<'a>> = m
        .model
        .ebm
        .terms()
        .iter()
        .map(|t| TermJson {
            name: &t.name,
            importance: t.importance,
        })
        .collect();
    terms.sort_by(|a, b| {
        b.importance
            .total_cmp(&a.importance)
            .then(a.name.cmp(b.name))
    });
    terms.truncate(TOP_TERMS);
    let (as_of, deals) = match m.scores {
        Ok((as_of, deals)) => (Some(as_of.to_date_string()), deals),
        Err(_) => (None, &[][..]),
    };
    let risk = winsignal_score::explain::rank_by_risk(deals);
    let at_risk = risk
        .deals
        .iter()
        .take(AT_RISK_ROWS)
        .map(|r| &deals[r.index])
        .map(|d| DealRow {
            opportunity_id: &d.opportunity_id,
            account_id: d.account_id.as_deref(),
            rep_id: d.rep_id.as_deref(),
            stage: d.stage.as_deref(),
            age_days: d.age_days,
            amount: d.amount,
            p_win: d.p_win,
            drag: crate::scoring::biggest_drag(d).map(|f| Drag {
                term: &f.term,
                value: &f.value,
                points: f.points,
            }),
            action: d.actions.first().map(|a| NextAction {
                title: &a.title,
                uplift_points: a.uplift_points,
                coaching: &a.coaching,
            }),
        })
        .collect();
    ModelJson {
        id: m.id,
        warnings: &m.model.warnings,
        split: &t.split,
        chosen: m.model.selection.as_ref().map(|s| s.chosen.as_str()),
        recalibration: m.model.recalibration.as_ref().map(|r| r.reason.as_str()),
        catalog: &t.catalog,
        definitions: t.versions.len(),
        excluded: &t.excluded,
        calibration_from: t.calibration_from.to_date_string(),
        cutoff: t.cutoff.to_date_string(),
        latest_close: t.latest_close.to_date_string(),
        rows_train: t.rows_train,
        rows_calibration: t.rows_calibration,
        rows_test: t.rows_test,
        deals_train: t.deals_train,
        deals_test: t.deals_test,
        calibration: m.model.calibration,
        calibration_check: &m.model.calibration_check,
        evaluation: &m.model.evaluation,
        terms,
        scores_error: m.scores.err(),
        as_of,
        open_deals: deals.len(),
        risk_basis: risk.basis.as_str(),
        risk_note: risk.note,
        at_risk,
    }
}

fn reps_json<'a>(cards: &'a Scorecards) -> RepsJson<'a> {
    RepsJson {
        mean_win_rate: cards.mean_win_rate,
        between_rep_sd: cards.win_model.between_rep_sd,
        caveat: cards.caveat,
        warnings: cards.warnings.iter().map(|w| w.text.as_str()).collect(),
        reps: cards
            .reps
            .iter()
            .map(|c| RepRow {
                rank: c.rank,
                rank_tied: c.rank_tied,
                unranked_reason: c.unranked_reason.as_deref(),
                rep_id: &c.rep_id,
                name: c.name.as_deref(),
                team: c.team.as_deref(),
                deals: c.deals,
                closed: c.closed,
                won: c.won,
                open: c.open,
                // Without comparable win rates a raw 100 % is an artefact of how reps were recorded
                // (the warning above the table says so), as in `reps`.
                win_rate: c.win_rate.filter(|_| cards.ranking.comparable),
                adjusted: c.win.as_ref().map(|w| &w.adjusted_win_rate),
                beyond_behaviours: c.beyond_behaviours.as_ref().map(|w| &w.adjusted_win_rate),
                rank_beyond_behaviours: c.rank_beyond_behaviours,
                rank_beyond_behaviours_tied: c.rank_beyond_behaviours_tied,
                coaching: c.coaching.first().map(|p| TopPriority {
                    behaviour: &p.behaviour,
                    title: &p.title,
                    expected_extra_wins: p.expected_extra_wins,
                    text: &p.text,
                }),
            })
            .collect(),
    }
}

/// Data-quality warnings from ingest and from the engine, in words.
fn warnings(c: &Computed, q: &QualityReport) -> Vec<String> {
    let mut out = Vec::new();
    // Both out of the latest load of each file: a file loaded twice counts its rows once.
    let read = q.quarantine.rows_read;
    if q.quarantine.total > 0 {
        let reasons: Vec<String> = q
            .quarantine
            .by_reason
            .iter()
            .take(4)
            .map(|r| format!("{} ({})", r.code, n(r.count)))
            .collect();
        out.push(format!(
            "{} of {} rows read were quarantined (not used); most common reasons: {}. `winsignal quality` lists them.",
            n(q.quarantine.total),
            n(read),
            reasons.join(", ")
        ));
    }
    for m in &q.identity {
        if m.total > 0 && m.rate < 0.95 {
            out.push(format!(
                "{:.1} % of {} {} from {} could be tied to an account.",
                100.0 * m.rate,
                n(m.total),
                m.kind.as_str(),
                m.source
            ));
        }
    }
    let orphans: u64 = q.orphans.iter().map(|o| o.count).sum();
    if orphans > 0 {
        out.push(format!(
            "{} references point to records that are not in the data (kept and flagged).",
            n(orphans)
        ));
    }
    for (kind, count) in &c.unattributed {
        out.push(format!(
            "{} {kind} are not tied to any deal or account and are left out of the behaviours.",
            n(*count)
        ));
    }
    for drift in &q.drift {
        if !drift.added.is_empty() || !drift.missing.is_empty() || !drift.retyped.is_empty() {
            out.push(format!(
                "The columns of {} changed between loads {} and {} (added {}, missing {}, retyped {}).",
                drift.source,
                drift.previous_load_id,
                drift.load_id,
                drift.added.len(),
                drift.missing.len(),
                drift.retyped.len()
            ));
        }
    }
    out
}

fn html(d: &Discovery, c: &Computed, q: &QualityReport, scoring: &Scoring<'_>) -> Result<String> {
    let start = c
        .snapshots
        .iter()
        .map(|s| s.as_of.0 - (s.age_days * winsignal_core::time::MS_PER_DAY as f64) as i64)
        .min()
        .map_or_else(
            || "—".to_string(),
            |t| winsignal_core::Ts(t).to_date_string(),
        );
    let data = serde_json::json!({
        "discovery": d,
        "quality": warnings(c, q),
        "period_start": start,
        "period_end": c.horizon.to_date_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "model": scoring.model.as_ref().map(model_json),
        "reps": reps_json(scoring.cards),
        "forecast": scoring.forecast.as_ref().map(|f| serde_json::json!({
            "as_of": f.forecast.as_of.to_date_string(),
            "periods": f.forecast.periods,
            "notes": f.forecast.notes,
            "top_deals": f.forecast.deals.iter().take(10).collect::<Vec<_>>(),
            "backtest": f.backtest,
        })),
    });
    // Inside a <script> element neither "</script" nor "<!--" may appear (user text such as a catalog
    // title could contain them): escaping every <, > and & keeps the JSON identical and the tokenizer
    // blind to it.
    let json = serde_json::to_string(&data)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    Ok(TEMPLATE
        .replace("{{CHARTJS_VERSION}}", CHARTJS_VERSION)
        .replacen("{{DATA}}", &json, 1)
        .replacen("{{CHARTJS}}", CHARTJS, 1))
}
