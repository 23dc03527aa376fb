//! The review queue over HTTP: the items the caller's scope allows, and decisions by admin, revops and
//! manager tokens in the caller's name. The rules are the application layer's
//! (`winsignal_workspace::review`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use winsignal_workspace::review::{self, Ask, Verdict};

use crate::api::{accept_body, blocking, caller, parse_body};
use crate::error::{ApiError, Code};
use crate::Service;

type Shared = Arc<Service>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    all: Option<bool>,
}

/// `GET /v1/review?all=true`: the items waiting for a decision (with `all`, decided ones too) that the
/// caller's scope allows, oldest first.
pub(crate) async fn list(
    State(s): State<Shared>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(Code::BadQuery, e.body_text()))?;
    let (_, scope) = caller(&s, &headers).await?;
    let service = s.clone();
    let items = blocking(move || {
        review::list(&service.store, &scope, q.all.unwrap_or(false)).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    verdict: Verdict,
    reason_code: String,
    #[serde(default)]
    comment: String,
    #[serde(default)]
    corrected_p_win: Option<f64>,
}

const DECIDE_SHAPE: &str = r#"{"verdict": "accept|edit|reject", "reason_code": "agree|wrong_data|missing_context|model_error|other", "comment": "...", "corrected_p_win": 0.3 (edit only)}"#;

/// `POST /v1/review/{id}`: decide an item, in the caller's name.
pub(crate) async fn decide(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let (principal, scope, body) = accept_body(&s, &headers, body).await?;
    let Ok(id) = id.parse::<u64>() else {
        return Err(ApiError::new(
            Code::NotFound,
            format!("no review item {id:?}: items are numbered from 1"),
        ));
    };
    if !principal.role.reviews() {
        return Err(ApiError::new(
            Code::Forbidden,
            "reviewing is for admin, revops and manager tokens",
        ));
    }
    let parsed: DecideBody = parse_body(&body, DECIDE_SHAPE)?;
    let service = s.clone();
    let decision = blocking(move || {
        review::decide(
            &service.store,
            id,
            &principal.user,
            principal.role,
            &scope,
            &Ask {
                verdict: parsed.verdict,
                reason_code: &parsed.reason_code,
                comment: &parsed.comment,
                corrected_p_win: parsed.corrected_p_win,
            },
        )
        .map_err(ApiError::registry)
    })
    .await?;
    // An edit is shown beside the deal's score from now on. The decision is recorded already: a failure
    // here is logged (the server's next look takes it in), not answered as a failed request.
    if let Err(e) = crate::models::follow_review(&s).await {
        tracing::error!(error = %e.message, "taking a review decision into the live state failed");
    }
    Ok(Json(serde_json::json!({ "decision": decision })).into_response())
}
