//! The routes: parsing a request, asking the application layer, rendering the answer.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use winsignal_core::{Kind, Ts};
use winsignal_score::explain::DealScore;
use winsignal_store::StoreRead;
use winsignal_workspace::live::{DealFilter, Live, ScoreChange};

use crate::error::{ApiError, Code};
use crate::Service;

type Shared = Arc<Service>;

pub(crate) fn router(service: Shared) -> Router {
    let max_body = service.config.max_body;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .route("/", get(dashboard_page))
        .route("/assets/app.js", get(dashboard_script))
        .route("/assets/app.css", get(dashboard_style))
        .route("/v1/me", get(whoami))
        .route("/v1/deals", get(deals))
        .route("/v1/deals/{id}", get(deal))
        .route("/v1/deals/{id}/history", get(history))
        .route("/v1/deals/{id}/lineage", get(lineage))
        .route(
            "/v1/deals/{id}/feedback",
            get(crate::feedback::list).post(crate::feedback::give),
        )
        .route("/v1/events", axum::routing::post(post_events))
        .route("/v1/stream", get(stream))
        .route("/segment/v1/{call}", axum::routing::post(segment))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(crate::models::list))
        .route("/v1/models/active", get(crate::models::active))
        .route(
            "/v1/models/rollback",
            axum::routing::post(crate::models::rollback),
        )
        .route("/v1/models/{id}", get(crate::models::show))
        .route(
            "/v1/models/{id}/approve",
            axum::routing::post(crate::models::approve),
        )
        .route(
            "/v1/models/{id}/activate",
            axum::routing::post(crate::models::activate),
        )
        .route(
            "/v1/models/{id}/retire",
            axum::routing::post(crate::models::retire),
        )
        .route("/v1/review", get(crate::review::list))
        .route(
            "/v1/review/{id}",
            axum::routing::post(crate::review::decide),
        )
        .route("/v1/quality", get(quality))
        .route("/v1/monitor", get(monitor))
        .route("/v1/findings", get(findings))
        .route("/v1/reps", get(reps))
        .route("/v1/reps/{id}", get(rep))
        .route("/v1/accounts", get(accounts))
        .route("/v1/forecast", get(forecast))
        .fallback(|| async { ApiError::new(Code::NotFound, "no such endpoint (see docs/api.md)") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                Code::MethodNotAllowed,
                "this endpoint does not take this method (see docs/api.md)",
            )
        })
        // The body limit is applied by `post_events` itself, to answer with the table's code.
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            observe,
        ))
        .with_state(service)
}

/// Times every request, by its route (the pattern, not the path: ids do not make new series).
async fn observe(
    State(s): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = request.method().as_str().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    s.metrics.observe(&route, &method, status, took);
    tracing::info!(
        method = %method,
        route = %route,
        status,
        ms = took.as_micros() as f64 / 1000.0,
        "request"
    );
    response
}

/// `GET /metrics`: Prometheus text, for an admin's or revops' token (a scrape job's `authorization`).
async fn metrics(State(s): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (principal, _) = caller(&s, &headers).await?;
    if !principal.role.sees_operations() {
        return Err(ApiError::new(
            Code::Forbidden,
            "metrics are for admin and revops tokens",
        ));
    }
    let (model, ready) = {
        let live = s
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            live.as_ref().and_then(|l| l.model_id().map(str::to_string)),
            live.is_some(),
        )
    };
    let service = s.clone();
    let (backlogs, review_waiting, monitoring) = blocking(move || {
        let backlogs = winsignal_workspace::hooks::list(&service.store)
            .map(|l| {
                l.into_iter()
                    .map(|h| (h.name, h.backlog))
                    .collect::<Vec<_>>()
            })
            .map_err(ApiError::internal)?;
        let waiting = winsignal_workspace::review::list(
            &service.store,
            &winsignal_workspace::access::Scope::All,
            false,
        )
        .map_err(ApiError::internal)?
        .len() as u64;
        let monitoring =
            winsignal_workspace::alerts::latest(&service.store).map_err(ApiError::internal)?;
        Ok((backlogs, waiting, monitoring))
    })
    .await?;
    let text = s.metrics.render(
        model.as_deref(),
        ready,
        &backlogs,
        review_waiting,
        monitoring.as_ref(),
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `GET /v1/quality`: `winsignal quality --json`, for admin and revops tokens (it lists rows of every
/// rep's deals).
async fn quality(State(s): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (principal, _) = caller(&s, &headers).await?;
    if !principal.role.sees_operations() {
        return Err(ApiError::new(
            Code::Forbidden,
            "data quality is for admin and revops tokens",
        ));
    }
    let service = s.clone();
    let report = blocking(move || {
        winsignal_ingest::quality::report(&service.store).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(report).into_response())
}

/// `GET /v1/monitor`: the latest monitoring check's figures, the alerts firing, and the last 20 alerts
/// recorded, for admin and revops tokens.
async fn monitor(State(s): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (principal, _) = caller(&s, &headers).await?;
    if !principal.role.sees_operations() {
        return Err(ApiError::new(
            Code::Forbidden,
            "monitoring is for admin and revops tokens",
        ));
    }
    let service = s.clone();
    let answer = blocking(move || {
        use winsignal_workspace::alerts;
        let figures = alerts::latest(&service.store).map_err(ApiError::internal)?;
        let firing = alerts::firing(&service.store).map_err(ApiError::internal)?;
        let recent: Vec<serde_json::Value> = alerts::recent(&service.store, 20)
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|(seq, alert)| serde_json::json!({ "seq": seq, "alert": alert }))
            .collect();
        Ok(serde_json::json!({ "figures": figures, "firing": firing, "recent": recent }))
    })
    .await?;
    Ok(Json(answer).into_response())
}

/// How long computed findings and scorecards are served after the data changed before they are
/// computed again (a discovery takes seconds; the data may change many times a second).
const INSIGHTS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// The findings and scorecards: the cached ones when they are of the store's position or younger than
/// [`INSIGHTS_MAX_AGE`], else computed now (on a blocking thread; concurrent callers wait for it).
async fn insights(
    s: &Shared,
) -> Result<(Arc<winsignal_workspace::insights::Insights>, Ts), ApiError> {
    let mut cached = s.insights.lock().await;
    let service = s.clone();
    let position = blocking(move || service.store.position().map_err(ApiError::internal)).await?;
    if let Some(c) = cached.as_ref() {
        if c.insights.position == position.0 || c.at.elapsed() < INSIGHTS_MAX_AGE {
            return Ok((c.insights.clone(), c.at_wall));
        }
    }
    let service = s.clone();
    let computed = blocking(move || {
        winsignal_workspace::insights::compute(
            &service.store,
            service.config.catalog.clone(),
            &mut winsignal_workspace::Silent,
        )
        .map_err(ApiError::internal)
    })
    .await?;
    let c = crate::Computed {
        at: std::time::Instant::now(),
        at_wall: Ts::now(),
        insights: Arc::new(computed),
    };
    let out = (c.insights.clone(), c.at_wall);
    *cached = Some(c);
    Ok(out)
}

/// `GET /v1/findings`: `winsignal discover --json` of the data as of `position`, within the caller's
/// scope (other reps' adoption and the ids of deals left out are removed for a partial scope).
async fn findings(State(s): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (_, scope) = caller(&s, &headers).await?;
    let (insights, at) = insights(&s).await?;
    let found = winsignal_workspace::insights::findings_for(&insights.discovery, &scope);
    Ok(Json(serde_json::json!({
        "position": insights.position,
        "computed_at": at.to_rfc3339(),
        "findings": found,
    }))
    .into_response())
}

/// `GET /v1/reps`: `winsignal reps --json` with the cards of the reps in the caller's scope.
async fn reps(State(s): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (_, scope) = caller(&s, &headers).await?;
    let (insights, at) = insights(&s).await?;
    let cards = winsignal_workspace::insights::scorecards_for(&insights.scorecards, &scope);
    Ok(Json(serde_json::json!({
        "position": insights.position,
        "computed_at": at.to_rfc3339(),
        "scorecards": cards,
    }))
    .into_response())
}

/// `GET /v1/reps/{id}`: one rep's card, if in the caller's scope.
async fn rep(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, scope) = caller(&s, &headers).await?;
    let (insights, at) = insights(&s).await?;
    let cards = winsignal_workspace::insights::scorecards_for(&insights.scorecards, &scope);
    let card = cards
        .reps
        .iter()
        .find(|c| winsignal_workspace::coaching::same_id(&c.rep_id, &id))
        .ok_or_else(|| {
            ApiError::new(
                Code::NotFound,
                format!("no scorecard of a rep {id:?} that this token may see"),
            )
        })?;
    Ok(Json(serde_json::json!({
        "position": insights.position,
        "computed_at": at.to_rfc3339(),
        "mean_win_rate": cards.mean_win_rate,
        "card": card,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountsQuery {
    /// Any u64 (the OpenAPI document says so); more than there are accounts is all of them.
    top: Option<u64>,
}

/// `GET /v1/accounts`: `winsignal accounts --prioritise --json` of the live state, the `top` first
/// (default 20). For admin and revops tokens: accounts without an open deal belong to no rep's scope.
async fn accounts(
    State(s): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<AccountsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(Code::BadQuery, e.body_text()))?;
    let (principal, _) = caller(&s, &headers).await?;
    if !principal.role.sees_operations() {
        return Err(ApiError::new(
            Code::Forbidden,
            "account priorities are for admin and revops tokens (accounts without an open deal are in no rep's scope)",
        ));
    }
    let service = s.clone();
    let top = q
        .top
        .map_or(20, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let ranked = blocking(move || {
        with_live(&service, |live| {
            let mut p = live.accounts();
            p.ranked.truncate(top);
            (live.position().0, p)
        })
    })
    .await?;
    Ok(Json(serde_json::json!({
        "position": ranked.0,
        "accounts": ranked.1,
    }))
    .into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ForecastQuery {
    period: Option<String>,
    periods: Option<usize>,
}

/// `GET /v1/forecast`: `winsignal forecast --json` of the live state (bookings per `period`, `month`
/// or `quarter` (default), for `periods` periods (1 to 12, default 3)). For admin and revops tokens: the
/// forecast is of the whole pipeline, deals to come included.
async fn forecast(
    State(s): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<ForecastQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(Code::BadQuery, e.body_text()))?;
    let (principal, _) = caller(&s, &headers).await?;
    if !principal.role.sees_operations() {
        return Err(ApiError::new(
            Code::Forbidden,
            "the forecast is for admin and revops tokens (it covers every rep's deals and the deals to come)",
        ));
    }
    let kind = q
        .period
        .as_deref()
        .unwrap_or("quarter")
        .parse()
        .map_err(|e: String| ApiError::new(Code::BadQuery, e))?;
    let periods = q.periods.unwrap_or(3);
    if !(1..=12).contains(&periods) {
        return Err(ApiError::new(
            Code::BadQuery,
            format!("periods={periods}: give 1 to 12"),
        ));
    }
    let opts = winsignal_score::forecast::ForecastOptions {
        kind,
        periods,
        ..Default::default()
    };
    let service = s.clone();
    let (position, model_id, f) = blocking(move || {
        let live = service
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(live) = live.as_ref() else {
            return Err(not_ready());
        };
        let f = live
            .forecast(&service.store, &opts)
            .map_err(ApiError::internal)?;
        Ok((live.position().0, live.model_id().map(str::to_string), f))
    })
    .await?;
    let Some(f) = f else {
        return Err(ApiError::new(
            Code::NotFound,
            "no forecast: no win model is trained yet (run `winsignal train`)",
        ));
    };
    Ok(Json(serde_json::json!({
        "position": position,
        "model_id": model_id,
        "forecast": f,
    }))
    .into_response())
}

/// The dashboard's files, built into the binary (no CDN, nothing fetched at run time).
const DASHBOARD_HTML: &str = include_str!("../assets/index.html");
const DASHBOARD_JS: &str = include_str!("../assets/app.js");
const DASHBOARD_CSS: &str = include_str!("../assets/app.css");

/// What the dashboard's pages may load and run: only its own files and this API.
const DASHBOARD_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn dashboard_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard. No token: the page asks for one and calls the API with it.
async fn dashboard_page() -> Response {
    dashboard_file("text/html; charset=utf-8", DASHBOARD_HTML)
}

async fn dashboard_script() -> Response {
    dashboard_file("text/javascript; charset=utf-8", DASHBOARD_JS)
}

async fn dashboard_style() -> Response {
    dashboard_file("text/css; charset=utf-8", DASHBOARD_CSS)
}

/// `GET /v1/me`: who the token belongs to, their role and rep, and whether they see operations
/// (metrics, data quality, account priorities).
async fn whoami(State(s): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (principal, _) = caller(&s, &headers).await?;
    Ok(Json(serde_json::json!({
        "user": principal.user,
        "role": principal.role.as_str(),
        "rep_id": principal.rep_id,
        "sees_operations": principal.role.sees_operations(),
    }))
    .into_response())
}

/// `GET /openapi.json`: the OpenAPI 3.1 description of this API.
async fn openapi(State(s): State<Shared>) -> Json<Value> {
    Json(crate::openapi::document(s.config.max_body))
}

async fn healthz() -> Json<Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn readyz(State(s): State<Shared>) -> Response {
    let live = s
        .live
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match live.as_ref() {
        Some(l) => Json(serde_json::json!({
            "status": "ready",
            "position": l.position().0,
            "model_id": l.model_id(),
        }))
        .into_response(),
        None => not_ready().into_response(),
    }
}

fn not_ready() -> ApiError {
    ApiError::new(
        Code::NotReady,
        "the workspace is still loading; try again shortly (GET /readyz says when)",
    )
}

/// Runs `f` over the live state, or answers 503 while it loads.
pub(crate) fn with_live<T>(s: &Service, f: impl FnOnce(&Live) -> T) -> Result<T, ApiError> {
    let live = s
        .live
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    live.as_ref().map(f).ok_or_else(not_ready)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DealsQuery {
    rep: Option<String>,
    stage: Option<String>,
    max_p_win: Option<f64>,
    /// Any u64 (the OpenAPI document says so); more than there are deals is all of them.
    limit: Option<u64>,
}

/// One open deal in a list: its score, the factor that drags it most and the first next action.
#[derive(Serialize)]
struct DealRow<'a> {
    opportunity_id: &'a str,
    account_id: Option<&'a str>,
    rep_id: Option<&'a str>,
    stage: Option<&'a str>,
    amount: Option<f64>,
    p_win: f64,
    /// When the score is of (RFC 3339).
    as_of: String,
    biggest_drag: Option<Factor<'a>>,
    next_action: Option<Action<'a>>,
}

#[derive(Serialize)]
struct Factor<'a> {
    term: &'a str,
    points: f64,
}

#[derive(Serialize)]
struct Action<'a> {
    behaviour: &'a str,
    title: &'a str,
    uplift_points: f64,
}

fn row(d: &DealScore) -> DealRow<'_> {
    DealRow {
        opportunity_id: &d.opportunity_id,
        account_id: d.account_id.as_deref(),
        rep_id: d.rep_id.as_deref(),
        stage: d.stage.as_deref(),
        amount: d.amount,
        p_win: d.p_win,
        as_of: d.as_of.to_rfc3339(),
        biggest_drag: winsignal_workspace::scoring::biggest_drag(d).map(|f| Factor {
            term: &f.term,
            points: f.points,
        }),
        next_action: d.actions.first().map(|a| Action {
            behaviour: &a.behaviour,
            title: &a.title,
            uplift_points: a.uplift_points,
        }),
    }
}

async fn deals(
    State(s): State<Shared>,
    headers: HeaderMap,
    query: Result<Query<DealsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(Code::BadQuery, e.body_text()))?;
    let (_, scope) = caller(&s, &headers).await?;
    let filter = DealFilter {
        rep: q.rep,
        stage: q.stage,
        max_p_win: q.max_p_win,
        limit: q.limit.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    // A deal's explanation is made when first read: listing many may take a while.
    let service = s.clone();
    let body = blocking(move || {
        with_live(&service, |live| {
            let rows: Vec<DealRow<'_>> = live
                .deals(&scope, &filter)
                .map_err(ApiError::internal)?
                .into_iter()
                .map(row)
                .collect();
            Ok(serde_json::json!({
                "position": live.position().0,
                "model_id": live.model_id(),
                "deals": rows,
            }))
        })?
    })
    .await?;
    Ok(Json(body).into_response())
}

async fn deal(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, scope) = caller(&s, &headers).await?;
    with_live(&s, |live| {
        match live.deal(&scope, &id).map_err(ApiError::internal)? {
            Some(d) => Ok(Json(serde_json::json!({
                "position": live.position().0,
                "model_id": live.model_id(),
                "deal": d,
                "review": live.review_override(&d.opportunity_id),
            }))
            .into_response()),
            None => Err(no_open_deal(&id)),
        }
    })?
}

/// `GET /v1/deals/{id}/lineage`: `winsignal explain --json` of the live state: the deal's score and, for
/// every behaviour among its factors, the events behind it with their source rows.
async fn lineage(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, scope) = caller(&s, &headers).await?;
    let service = s.clone();
    let wanted = id.clone();
    let explained = blocking(move || {
        with_live(&service, |live| {
            live.explain(&service.store, &scope, &wanted)
                .map_err(ApiError::internal)
        })?
    })
    .await?;
    match explained {
        Some(e) => Ok(Json(e).into_response()),
        None => Err(no_open_deal(&id)),
    }
}

/// One recorded score change of a deal.
#[derive(Serialize)]
struct HistoryEntry {
    /// Its number in the score history (all deals), in the order recorded.
    seq: u64,
    /// When it was recorded (RFC 3339).
    recorded_at: String,
    #[serde(flatten)]
    change: winsignal_workspace::live::ScoreChange,
}

async fn history(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, scope) = caller(&s, &headers).await?;
    let service = s.clone();
    let wanted = id.clone();
    let found = blocking(move || {
        winsignal_workspace::live::history(&service.store, &scope, &wanted)
            .map_err(ApiError::internal)
    })
    .await?;
    match found {
        Some(entries) => {
            let history: Vec<HistoryEntry> = entries
                .into_iter()
                .map(|(seq, at, change)| HistoryEntry {
                    seq,
                    recorded_at: at.to_rfc3339(),
                    change,
                })
                .collect();
            Ok(Json(serde_json::json!({ "history": history })).into_response())
        }
        None => Err(ApiError::new(
            Code::NotFound,
            format!("no score history of a deal {id:?} that this token may see"),
        )),
    }
}

/// Runs store work on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)?
}

/// The answer for a deal that is not open, does not exist, or is outside the caller's scope: the same
/// for all three.
pub(crate) fn no_open_deal(id: &str) -> ApiError {
    ApiError::new(
        Code::NotFound,
        format!("no open deal {id:?} that this token may see"),
    )
}

/// The caller, read on a blocking thread (the users and reps are read from the store).
pub(crate) async fn caller(
    s: &Shared,
    headers: &HeaderMap,
) -> Result<
    (
        winsignal_workspace::access::Principal,
        winsignal_workspace::access::Scope,
    ),
    ApiError,
> {
    let (s, headers) = (s.clone(), headers.clone());
    blocking(move || s.caller(&headers)).await
}

/// `POST /v1/events`: `{"items": [{"kind": "<canonical kind>", "record": {...}}, ...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsBody {
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    kind: String,
    /// The record's JSON text as sent: the ingest reads it, as it reads a line of a file (parsed once,
    /// not into a tree here and again there).
    record: Box<serde_json::value::RawValue>,
}

/// What became of one item of a batch.
#[derive(Serialize)]
struct ItemResult {
    index: usize,
    /// The item's kind (a Segment message's `type`).
    kind: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
    /// Where the item's row is recorded (lineage leads there): the load and the line of its file.
    load_id: u64,
    line: u64,
}

#[derive(Serialize)]
struct EventsAnswer {
    accepted: usize,
    quarantined: usize,
    items: Vec<ItemResult>,
    /// The log position the state is of after this batch.
    position: u64,
    /// The scores this batch changed.
    score_changes: Vec<ScoreChange>,
}

async fn post_events(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let (principal, scope, body) = accept_body(&s, &headers, body).await?;
    let parsed: EventsBody = parse_body(&body, EVENTS_SHAPE)?;
    let items = check_items(parsed.items)?;
    let files = canonical_files(&items);
    let answer = write(
        &s,
        principal.user,
        scope,
        winsignal_ingest::Format::Canonical,
        files,
        items.len(),
    )
    .await?;
    Ok(Json(answer).into_response())
}

/// `POST /segment/v1/{track|identify|page|screen|group|alias|batch}`: Segment's HTTP Tracking API, so a
/// Segment library or destination pointed at `http://<server>/segment` sends here. Messages are read by
/// the Segment connector, as `winsignal ingest --format segment` reads a file of them. As Segment's own
/// servers do, a message without `receivedAt` gets the time it was received, a single call's `type` is
/// the path's when absent, and a batch's `context` is each message's when it has none.
async fn segment(
    State(s): State<Shared>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    const CALLS: [&str; 7] = [
        "track", "identify", "page", "screen", "group", "alias", "batch",
    ];
    if !CALLS.contains(&call.as_str()) {
        return Err(ApiError::new(
            Code::NotFound,
            format!(
                "no Segment call {call:?}; expected one of {}",
                CALLS.join(", ")
            ),
        ));
    }
    let (principal, scope, body) = accept_body(&s, &headers, body).await?;
    let value: Value = parse_body(&body, "a Segment message, or {\"batch\": [...]}")?;
    let received = Value::String(Ts::now().to_rfc3339());
    let mut messages = match (call.as_str(), value) {
        ("batch", Value::Object(mut b)) => {
            let context = b.remove("context");
            if context.as_ref().is_some_and(|c| !c.is_object()) {
                return Err(ApiError::new(
                    Code::BadShape,
                    "a batch's `context` is a JSON object (Segment's context fields)",
                ));
            }
            let Some(Value::Array(batch)) = b.remove("batch") else {
                return Err(ApiError::new(
                    Code::BadShape,
                    "a batch is {\"batch\": [message, ...]}",
                ));
            };
            let mut out = Vec::with_capacity(batch.len());
            for (i, m) in batch.into_iter().enumerate() {
                let Value::Object(mut m) = m else {
                    return Err(ApiError::new(
                        Code::BadShape,
                        format!("batch[{i}] is not a JSON object"),
                    ));
                };
                if let Some(c) = &context {
                    m.entry("context").or_insert_with(|| c.clone());
                }
                out.push(m);
            }
            out
        }
        (_, Value::Object(mut m)) => {
            match m.get("type") {
                None => {
                    m.insert("type".into(), Value::String(call.clone()));
                }
                Some(t) if t == &Value::String(call.clone()) => {}
                Some(t) => {
                    return Err(ApiError::new(
                        Code::BadShape,
                        format!("a message of type {t} sent to /segment/v1/{call}"),
                    ))
                }
            }
            vec![m]
        }
        _ => {
            return Err(ApiError::new(
                Code::BadShape,
                "a Segment message is a JSON object",
            ))
        }
    };
    if messages.is_empty() {
        return Err(ApiError::new(Code::BadShape, "`batch` is empty"));
    }
    let mut lines = Vec::with_capacity(messages.len());
    for (index, m) in messages.iter_mut().enumerate() {
        m.entry("receivedAt").or_insert_with(|| received.clone());
        let kind = m
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let line = serde_json::to_string(m).map_err(ApiError::internal)?;
        lines.push(Line {
            owner: 0,
            index,
            kind,
            text: line,
        });
    }
    let files = vec![LinesFile {
        name: "segment.jsonl".into(),
        lines,
    }];
    let n = messages.len();
    let answer = write(
        &s,
        principal.user,
        scope,
        winsignal_ingest::Format::Segment,
        files,
        n,
    )
    .await?;
    // Segment's libraries look for `success`; the rest is this API's answer.
    let mut out = serde_json::to_value(&answer).map_err(ApiError::internal)?;
    out["success"] = Value::Bool(true);
    Ok(Json(out).into_response())
}

const EVENTS_SHAPE: &str = r#"{"items": [{"kind": "activities", "record": {...}}, ...]}"#;

/// The caller and the body of a request that writes: a token, the workspace loaded (nothing is committed
/// that the live state could not take in), a JSON body within the size limit.
pub(crate) async fn accept_body(
    s: &Shared,
    headers: &HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<
    (
        winsignal_workspace::access::Principal,
        winsignal_workspace::access::Scope,
        axum::body::Bytes,
    ),
    ApiError,
> {
    let (principal, scope) = caller(s, headers).await?;
    with_live(s, |_| ())?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            Code::UnsupportedMediaType,
            "send the body as `Content-Type: application/json`",
        ));
    }
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                Code::TooLarge,
                format!(
                    "the body is larger than {} bytes: send the items in smaller batches",
                    s.config.max_body
                ),
            )
        } else {
            ApiError::new(Code::BadJson, e.body_text())
        }
    })?;
    Ok((principal, scope, body))
}

/// A request's items waiting to be committed.
pub(crate) struct Pending {
    user: String,
    format: winsignal_ingest::Format,
    files: Vec<LinesFile>,
    items: usize,
    reply: tokio::sync::oneshot::Sender<Result<Committed, ApiError>>,
}

/// What a commit did for one request: its items' fates, and everything the commit changed.
struct Committed {
    items: Vec<ItemResult>,
    position: u64,
    score_changes: Vec<ScoreChange>,
}

/// Commits the request's items and answers for them. Requests that arrive while a commit is running
/// wait in a queue; the next commit takes every waiting request of one user and format together (one
/// transaction, one catch-up, each touched deal rescored once), then the next such group: under load, a
/// commit's cost is shared instead of queued behind. The store's own lock orders commits with other
/// processes. Score changes go to the streams in the order made.
async fn write(
    s: &Shared,
    user: String,
    scope: winsignal_workspace::access::Scope,
    format: winsignal_ingest::Format,
    files: Vec<LinesFile>,
    items: usize,
) -> Result<EventsAnswer, ApiError> {
    let (reply, mut answered) = tokio::sync::oneshot::channel();
    s.queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Pending {
            user,
            format,
            files,
            items,
            reply,
        });
    let committed = {
        let _writing = s.writing.lock().await;
        match answered.try_recv() {
            // Committed by the request that held the lock before.
            Ok(done) => done,
            Err(_) => {
                let queued = std::mem::take(
                    &mut *s
                        .queue
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                );
                for group in groups(queued) {
                    commit_group(s, group).await;
                }
                answered.await.map_err(ApiError::internal)?
            }
        }
    }?;
    let mut answer = EventsAnswer {
        accepted: committed
            .items
            .iter()
            .filter(|i| i.status == "accepted")
            .count(),
        quarantined: committed
            .items
            .iter()
            .filter(|i| i.status == "quarantined")
            .count(),
        items: committed.items,
        position: committed.position,
        score_changes: committed.score_changes,
    };
    // The answer names only the changes of deals the caller may see (the streams do the same).
    answer
        .score_changes
        .retain(|c| scope.allows(c.rep_id.as_deref()));
    Ok(answer)
}

/// The waiting requests in groups of one user and format, in the order the groups' first requests
/// arrived, each group's requests in their order.
fn groups(queued: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut out: Vec<Vec<Pending>> = Vec::new();
    for p in queued {
        match out
            .iter_mut()
            .find(|g| g[0].user == p.user && g[0].format == p.format)
        {
            Some(g) => g.push(p),
            None => out.push(vec![p]),
        }
    }
    out
}

/// Commits one group as one ingest, answers each of its requests, and publishes the changes.
async fn commit_group(s: &Shared, group: Vec<Pending>) {
    let user = group[0].user.clone();
    let format = group[0].format;
    // One file per name for the whole group, each line still knowing its request and item.
    let mut merged: BTreeMap<String, LinesFile> = BTreeMap::new();
    let mut counts = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    for (owner, p) in group.into_iter().enumerate() {
        counts.push(p.items);
        replies.push(p.reply);
        for f in p.files {
            let file = merged.entry(f.name.clone()).or_insert_with(|| LinesFile {
                name: f.name.clone(),
                lines: Vec::new(),
            });
            file.lines
                .extend(f.lines.into_iter().map(|l| Line { owner, ..l }));
        }
    }
    let files: Vec<LinesFile> = merged.into_values().collect();
    let service = s.clone();
    let who = user.clone();
    let requests = counts.len();
    let done = blocking(move || ingest(&service, &user, format, &files, &counts)).await;
    let (per_request, position, changes) = match done {
        Ok(done) => done,
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
            return;
        }
    };
    publish(s, &changes);
    use std::sync::atomic::Ordering::Relaxed;
    let accepted = per_request
        .iter()
        .flatten()
        .filter(|i| i.status == "accepted")
        .count();
    let quarantined = per_request.iter().map(Vec::len).sum::<usize>() - accepted;
    let m = &s.metrics;
    m.items_accepted.fetch_add(accepted as u64, Relaxed);
    m.items_quarantined.fetch_add(quarantined as u64, Relaxed);
    m.score_changes.fetch_add(changes.len() as u64, Relaxed);
    tracing::info!(
        user = %who,
        requests,
        accepted,
        quarantined,
        score_changes = changes.len(),
        position,
        "committed"
    );
    for (items, reply) in per_request.into_iter().zip(replies) {
        let _ = reply.send(Ok(Committed {
            items,
            position,
            score_changes: changes.clone(),
        }));
    }
}

/// Sends recorded changes to the streams and wakes the webhook deliveries. Called while the write
/// lock is held, so streams see changes in the order they were made.
pub(crate) fn publish(s: &Service, changes: &[ScoreChange]) {
    let mut number = s
        .published
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for change in changes {
        *number += 1;
        // No stream open is not an error.
        let _ = s.changes.send(Arc::new(crate::Published {
            number: *number,
            change: change.clone(),
        }));
    }
    drop(number);
    if !changes.is_empty() {
        s.outbox.wake();
    }
}

/// Every `serve --rescore-every`, rescores every open deal as of the clock ([`Live::tick`]), between
/// commits, and publishes the changes as a commit does. Runs until the server stops.
pub(crate) async fn rescore_on_the_clock(s: Shared) {
    let mut every = tokio::time::interval(s.config.rescore_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: the scores were just made.
    every.tick().await;
    loop {
        every.tick().await;
        let _writing = s.writing.lock().await;
        let service = s.clone();
        let done = blocking(move || -> Result<Vec<ScoreChange>, ApiError> {
            let stalls: Vec<f64> = winsignal_workspace::hooks::hooks(&service.store)
                .map_err(ApiError::internal)?
                .hooks
                .values()
                .filter_map(|h| match h.trigger {
                    winsignal_workspace::hooks::Trigger::Stalled { days } => Some(days),
                    _ => None,
                })
                .collect();
            let mut live = service
                .live
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(live) = live.as_mut() else {
                return Ok(Vec::new());
            };
            live.tick(&service.store, &stalls)
                .map_err(ApiError::internal)
        })
        .await;
        match done {
            Ok(changes) => {
                publish(&s, &changes);
                s.metrics
                    .score_changes
                    .fetch_add(changes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(score_changes = changes.len(), "rescored on the clock");
            }
            Err(e) => tracing::error!(error = %e.message, "rescoring on the clock failed"),
        }
    }
}

/// The body as JSON of the documented shape, or the table's error naming where it is not: `bad_json`
/// when the body is not JSON at all, `bad_shape` when it is JSON of another shape.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    shape: &str,
) -> Result<T, ApiError> {
    let not_json = |e: serde_json::Error| {
        ApiError::new(
            Code::BadJson,
            format!(
                "the body is not JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    };
    serde_json::from_slice(body).map_err(|e| {
        // A shape error stops the reading where it is found: whether the rest is JSON is checked
        // (on this path only, without building anything).
        if !e.is_data() {
            return not_json(e);
        }
        if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            return not_json(syntax);
        }
        ApiError::new(
            Code::BadShape,
            format!("the body is not of the documented shape: {e}; expected {shape}"),
        )
    })
}

/// The items with their kinds, or 422 naming the first item of no event or entity kind, or whose
/// record is not a JSON object.
fn check_items(
    items: Vec<Item>,
) -> Result<Vec<(Kind, Box<serde_json::value::RawValue>)>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::new(Code::BadShape, "`items` is empty"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let canonical = winsignal_ingest::sources::canonical_kinds;
            let text = item.record.get();
            if !text.starts_with('{') {
                // Named by its start: the record can be as long as the body.
                let mut start: String = text.chars().take(40).collect();
                if start.len() < text.len() {
                    start.push('…');
                }
                return Err(ApiError::new(
                    Code::BadShape,
                    format!("items[{i}].record is {start}; expected a JSON object"),
                ));
            }
            match item.kind.parse::<Kind>() {
                Ok(kind) if canonical().any(|k| k == kind) => Ok((kind, item.record)),
                _ => Err(ApiError::new(
                    Code::BadShape,
                    format!(
                        "items[{i}].kind is {:?}; expected one of: {}{}",
                        item.kind,
                        canonical().map(Kind::as_str).collect::<Vec<_>>().join(", "),
                        if item.kind == Kind::ProductUsers.as_str() {
                            " (product users come from Segment identify and group messages: POST /segment/v1/…)"
                        } else {
                            ""
                        }
                    ),
                )),
            }
        })
        .collect()
}

/// One file of an ingest made from requests: its name and its lines.
struct LinesFile {
    name: String,
    lines: Vec<Line>,
}

/// A line of such a file: which request of the commit it is from (`owner`), which item of that request,
/// the kind (or Segment message type) the answer names, and the JSON text.
struct Line {
    owner: usize,
    index: usize,
    kind: String,
    text: String,
}

/// The canonical items as a folder of JSON Lines files, one per kind, the items in their order. A
/// record's text is kept as sent, on one line: a line break in JSON text can only be whitespace
/// between tokens (a string cannot hold one raw), so it becomes a space.
fn canonical_files(items: &[(Kind, Box<serde_json::value::RawValue>)]) -> Vec<LinesFile> {
    let mut files: BTreeMap<Kind, LinesFile> = BTreeMap::new();
    for (index, (kind, record)) in items.iter().enumerate() {
        let text = record.get();
        let line = if text.contains(['\n', '\r']) {
            text.replace(['\n', '\r'], " ")
        } else {
            text.to_string()
        };
        files
            .entry(*kind)
            .or_insert_with(|| LinesFile {
                name: format!("{}.jsonl", kind.as_str()),
                lines: Vec::new(),
            })
            .lines
            .push(Line {
                owner: 0,
                index,
                kind: kind.as_str().to_string(),
                text: line,
            });
    }
    files.into_values().collect()
}

/// Ingests `files` as `winsignal ingest --format <format>` would a folder holding them (the same checks,
/// quarantine and provenance: one atomic batch), then brings the live state up to date. `items` is the
/// number of items the request held: each must be answered.
/// Ingests `files` as `winsignal ingest --format <format>` would a folder holding them (the same checks,
/// quarantine and provenance: one atomic batch), then brings the live state up to date. `counts[r]` is
/// the number of items request `r` of the commit held: each must be answered. Returns each request's
/// item results, the log position after the commit, and the score changes it made.
fn ingest(
    s: &Service,
    user: &str,
    format: winsignal_ingest::Format,
    files: &[LinesFile],
    counts: &[usize],
) -> Result<(Vec<Vec<ItemResult>>, u64, Vec<ScoreChange>), ApiError> {
    let dir = tempfile::tempdir().map_err(ApiError::internal)?;
    for f in files {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(dir.path().join(&f.name)).map_err(ApiError::internal)?,
        );
        for line in &f.lines {
            writeln!(out, "{}", line.text).map_err(ApiError::internal)?;
        }
        out.flush().map_err(ApiError::internal)?;
    }
    let now = Ts::now();
    let req = winsignal_ingest::IngestRequest {
        format: Some(format),
        now,
        origin: Some(winsignal_ingest::Origin {
            source_prefix: "api".into(),
            label: format!("api:{}:{}", user, now.to_rfc3339()),
        }),
        ..winsignal_ingest::IngestRequest::new(dir.path())
    };
    let started = std::time::Instant::now();
    let report =
        winsignal_ingest::ingest(&s.store, &req, &mut |_| {}).map_err(ApiError::internal)?;
    let ingested = started.elapsed();
    // Committed: every answer from here on reports items that are in the store.
    let mut results: Vec<Vec<Option<ItemResult>>> = counts
        .iter()
        .map(|&n| (0..n).map(|_| None).collect())
        .collect();
    for load in &report.loads {
        let Some(file) = files
            .iter()
            .find(|f| load.path.ends_with(&format!("/{}", f.name)))
        else {
            continue;
        };
        let quarantined: BTreeMap<u64, Vec<String>> = s
            .store
            .quarantine(Some(load.load_id))
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|q| (q.line, q.reasons))
            .collect();
        for (i, l) in file.lines.iter().enumerate() {
            let line = i as u64 + 1;
            let reasons = quarantined.get(&line).cloned();
            results[l.owner][l.index] = Some(ItemResult {
                index: l.index,
                kind: l.kind.clone(),
                status: if reasons.is_some() {
                    "quarantined"
                } else {
                    "accepted"
                },
                reasons: reasons.unwrap_or_default(),
                load_id: load.load_id,
                line,
            });
        }
    }
    let per_request: Vec<Vec<ItemResult>> = results
        .into_iter()
        .map(|items| {
            items
                .into_iter()
                .enumerate()
                .map(|(index, r)| {
                    r.ok_or_else(|| {
                        ApiError::new(
                            Code::Internal,
                            format!("item {index} was read by no load of the ingest"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let mut live = s
        .live
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(live) = live.as_mut() else {
        return Err(not_ready());
    };
    let refreshing = std::time::Instant::now();
    let score_changes = live.refresh(&s.store).map_err(ApiError::internal)?;
    tracing::debug!(
        ingest_ms = ingested.as_secs_f64() * 1000.0,
        answers_ms = (refreshing - started - ingested).as_secs_f64() * 1000.0,
        refresh_ms = refreshing.elapsed().as_secs_f64() * 1000.0,
        "commit phases"
    );
    Ok((per_request, live.position().0, score_changes))
}

/// `GET /v1/stream`: Server-Sent Events, one `score_change` event per change of a deal the caller may
/// see, as it is made (the `data` is a `score_changes[]` item of `POST /v1/events`; the `id` numbers the
/// changes since the server started). A client that falls more than 65,536 changes behind gets a
/// `lagged` event (`{"missed": n}`) and should read `/v1/deals` again. A comment every 15 s keeps the
/// connection open through proxies. The stream ends when the server stops.
async fn stream(State(s): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (_, scope) = caller(&s, &headers).await?;
    with_live(&s, |_| ())?;
    let state = (
        s.changes.subscribe(),
        s.stopping.clone(),
        scope,
        OpenStream::new(s.clone()),
    );
    let events =
        futures_util::stream::unfold(state, |(mut rx, mut stopping, scope, open)| async move {
            loop {
                if *stopping.borrow() {
                    return None;
                }
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = stopping.changed() => return None,
                };
                let event = match next {
                    // The scope is the application layer's rule; the stream only applies it.
                    Ok(p) if scope.allows(p.change.rep_id.as_deref()) => Event::default()
                        .event("score_change")
                        .id(p.number.to_string())
                        .json_data(&p.change),
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Event::default()
                        .event("lagged")
                        .json_data(serde_json::json!({ "missed": n })),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                };
                return Some((event, (rx, stopping, scope, open)));
            }
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}

/// Counted in `winsignal_open_streams` while a stream lives.
struct OpenStream(Shared);

impl OpenStream {
    fn new(s: Shared) -> OpenStream {
        s.metrics
            .open_streams
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenStream(s)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0
            .metrics
            .open_streams
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
