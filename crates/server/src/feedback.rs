//! Reps' feedback on a deal's next actions over HTTP: given on an action the deal's live score offers,
//! within the caller's scope, and read back with the deal (`winsignal_workspace::feedback`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use winsignal_workspace::feedback::{self, Verdict};

use crate::api::{accept_body, blocking, caller, no_open_deal, parse_body, with_live};
use crate::error::ApiError;
use crate::Service;

type Shared = Arc<Service>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    behaviour: String,
    verdict: Verdict,
    #[serde(default)]
    comment: String,
}

const FEEDBACK_SHAPE: &str =
    r#"{"behaviour": "<an action's behaviour>", "verdict": "done|not_relevant", "comment": "..."}"#;

/// `POST /v1/deals/{id}/feedback`: the caller's feedback on one of the deal's current actions.
pub(crate) async fn give(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let (principal, scope, body) = accept_body(&s, &headers, body).await?;
    let parsed: FeedbackBody = parse_body(&body, FEEDBACK_SHAPE)?;
    let (deal, model_id) = with_live(&s, |live| {
        live.deal(&scope, &id).map(|d| {
            d.cloned()
                .map(|d| (d, live.model_id().unwrap_or_default().to_string()))
        })
    })?
    .map_err(ApiError::internal)?
    .ok_or_else(|| no_open_deal(&id))?;
    let service = s.clone();
    let given = blocking(move || {
        feedback::record(
            &service.store,
            &deal,
            &model_id,
            &principal.user,
            &parsed.behaviour,
            parsed.verdict,
            &parsed.comment,
        )
        .map_err(ApiError::registry)
    })
    .await?;
    // An action marked not relevant leaves the deal's score at once. The feedback is recorded already:
    // a failure here is logged (the server's next look takes it in), not answered as a failed request.
    if let Err(e) = crate::models::follow_review(&s).await {
        tracing::error!(error = %e.message, "taking feedback into the live state failed");
    }
    Ok(Json(serde_json::json!({ "feedback": given })).into_response())
}

/// `GET /v1/deals/{id}/feedback`: every piece of feedback on an open deal the caller may see, oldest
/// first.
pub(crate) async fn list(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, scope) = caller(&s, &headers).await?;
    let deal_id = with_live(&s, |live| {
        live.deal(&scope, &id)
            .map(|d| d.map(|d| d.opportunity_id.clone()))
    })?
    .map_err(ApiError::internal)?
    .ok_or_else(|| no_open_deal(&id))?;
    let service = s.clone();
    let given = blocking(move || {
        feedback::list(&service.store, Some(&deal_id)).map_err(ApiError::internal)
    })
    .await?;
    Ok(Json(serde_json::json!({ "feedback": given })).into_response())
}
