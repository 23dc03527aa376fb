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
        .route("/v1/deals", get(deals))
        .route("/v1/deals/{id}", get(deal))
        .route("/v1/events", axum::routing::post(post_events))
        .route("/v1/stream", get(stream))
        .fallback(|| async { ApiError::new(Code::NotFound, "no such endpoint (see docs/api.md)") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                Code::MethodNotAllowed,
                "this endpoint does not take this method (see docs/api.md)",
            )
        })
        // The body limit is applied by `post_events` itself, to answer with the table's code.
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(service)
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
fn with_live<T>(s: &Service, f: impl FnOnce(&Live) -> T) -> Result<T, ApiError> {
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
    limit: Option<usize>,
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
    };
    with_live(&s, |live| {
        let rows: Vec<DealRow<'_>> = live
            .deals(&scope, &filter)
            .into_iter()
            .take(q.limit.unwrap_or(usize::MAX))
            .map(row)
            .collect();
        Json(serde_json::json!({
            "position": live.position().0,
            "model_id": live.model_id(),
            "deals": rows,
        }))
        .into_response()
    })
}

async fn deal(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, scope) = caller(&s, &headers).await?;
    with_live(&s, |live| match live.deal(&scope, &id) {
        Some(d) => Ok(Json(serde_json::json!({
            "position": live.position().0,
            "model_id": live.model_id(),
            "deal": d,
        }))
        .into_response()),
        None => Err(ApiError::new(
            Code::NotFound,
            format!("no open deal {id:?} that this token may see"),
        )),
    })?
}

/// The caller, read on a blocking thread (the users and reps are read from the store).
async fn caller(
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
    tokio::task::spawn_blocking(move || s.caller(&headers))
        .await
        .map_err(ApiError::internal)?
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
    record: serde_json::Map<String, Value>,
}

/// What became of one item of a batch.
#[derive(Serialize)]
struct ItemResult {
    index: usize,
    kind: Kind,
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
    let (principal, _) = caller(&s, &headers).await?;
    // Nothing is committed that the live state could not take in.
    with_live(&s, |_| ())?;
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
    let parsed: EventsBody = parse_body(&body)?;
    let items = check_items(parsed.items)?;
    // One ingest at a time from this process; the store's own lock orders it with other processes.
    let _writing = s.writing.lock().await;
    let service = s.clone();
    let user = principal.user.clone();
    let answer = tokio::task::spawn_blocking(move || ingest(&service, &user, items))
        .await
        .map_err(ApiError::internal)??;
    // Published while the write lock is held, so streams see changes in the order they were made.
    let mut number = s
        .published
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for change in &answer.score_changes {
        *number += 1;
        // No stream open is not an error.
        let _ = s.changes.send(Arc::new(crate::Published {
            number: *number,
            change: change.clone(),
        }));
    }
    drop(number);
    Ok(Json(answer).into_response())
}

/// The body as JSON of the documented shape, or the table's error naming where it is not.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            Code::BadJson,
            format!(
                "the body is not JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    serde_path_to_error(value)
}

fn serde_path_to_error<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            Code::BadShape,
            format!(
                "the body is not of the documented shape: {e}; expected {{\"items\": [{{\"kind\": \"activities\", \"record\": {{...}}}}, ...]}}"
            ),
        )
    })
}

/// The items with their kinds, or 422 naming the first item of no event or entity kind.
fn check_items(items: Vec<Item>) -> Result<Vec<(Kind, serde_json::Map<String, Value>)>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::new(Code::BadShape, "`items` is empty"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item.kind.parse::<Kind>() {
            Ok(kind) => Ok((kind, item.record)),
            Err(_) => Err(ApiError::new(
                Code::BadShape,
                format!(
                    "items[{i}].kind is {:?}; expected one of: {}",
                    item.kind,
                    Kind::ALL.map(Kind::as_str).join(", ")
                ),
            )),
        })
        .collect()
}

/// Ingests the items as `winsignal ingest` would a folder of canonical JSON Lines files (one per kind,
/// the items in their order), then brings the live state up to date.
fn ingest(
    s: &Service,
    user: &str,
    items: Vec<(Kind, serde_json::Map<String, Value>)>,
) -> Result<EventsAnswer, ApiError> {
    let dir = tempfile::tempdir().map_err(ApiError::internal)?;
    // Per kind: its file, and for each line (1-based) the item's index.
    let mut files: BTreeMap<Kind, (std::fs::File, Vec<usize>)> = BTreeMap::new();
    for (index, (kind, record)) in items.iter().enumerate() {
        if !files.contains_key(kind) {
            let path = dir.path().join(format!("{}.jsonl", kind.as_str()));
            let file = std::fs::File::create(&path).map_err(ApiError::internal)?;
            files.insert(*kind, (file, Vec::new()));
        }
        let (file, lines) = files.get_mut(kind).expect("inserted above");
        let line = serde_json::to_string(record).map_err(ApiError::internal)?;
        writeln!(file, "{line}").map_err(ApiError::internal)?;
        lines.push(index);
    }
    for (file, _) in files.values_mut() {
        file.flush().map_err(ApiError::internal)?;
    }
    let now = Ts::now();
    let request = format!("api:{}:{}", user, now.to_rfc3339());
    let req = winsignal_ingest::IngestRequest {
        format: Some(winsignal_ingest::Format::Canonical),
        now,
        origin: Some(winsignal_ingest::Origin {
            source_prefix: "api".into(),
            label: request,
        }),
        ..winsignal_ingest::IngestRequest::new(dir.path())
    };
    let report =
        winsignal_ingest::ingest(&s.store, &req, &mut |_| {}).map_err(ApiError::internal)?;
    // Committed: every answer from here on reports items that are in the store.
    let mut results: Vec<Option<ItemResult>> = items.iter().map(|_| None).collect();
    for load in &report.loads {
        let Some(&kind) = load.kinds.first() else {
            continue;
        };
        let Some((_, lines)) = files.get(&kind) else {
            continue;
        };
        let quarantined: BTreeMap<u64, Vec<String>> = s
            .store
            .quarantine(Some(load.load_id))
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|q| (q.line, q.reasons))
            .collect();
        for (i, &index) in lines.iter().enumerate() {
            let line = i as u64 + 1;
            let reasons = quarantined.get(&line).cloned().unwrap_or_default();
            results[index] = Some(ItemResult {
                index,
                kind,
                status: if quarantined.contains_key(&line) {
                    "quarantined"
                } else {
                    "accepted"
                },
                reasons,
                load_id: load.load_id,
                line,
            });
        }
    }
    let items: Vec<ItemResult> = results
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
        .collect::<Result<_, _>>()?;
    let mut live = s
        .live
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(live) = live.as_mut() else {
        return Err(not_ready());
    };
    let score_changes = live.refresh(&s.store).map_err(ApiError::internal)?;
    Ok(EventsAnswer {
        accepted: items.iter().filter(|i| i.status == "accepted").count(),
        quarantined: items.iter().filter(|i| i.status == "quarantined").count(),
        position: live.position().0,
        items,
        score_changes,
    })
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
    let state = (s.changes.subscribe(), s.stopping.clone(), scope);
    let events = futures_util::stream::unfold(state, |(mut rx, mut stopping, scope)| async move {
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
            return Some((event, (rx, stopping, scope)));
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}
