//! The model registry over HTTP: the models with their stages, one model with its transitions, which
//! model was active when, and the steps (approve, activate, roll back, retire) for admin and revops
//! tokens, in the caller's name. The rules are the application layer's
//! (`winsignal_workspace::registry`); a refusal by one of them is 409 `conflict`.
//!
//! The live scores follow the registry: [`follow_registry`] checks it four times a second and switches
//! the served model when another process (`winsignal models activate`) changed it; a step taken here
//! switches before it is answered.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use winsignal_core::Ts;
use winsignal_workspace::registry::{self, Registry, Transition};

use crate::api::{accept_body, blocking, caller, parse_body, publish};
use crate::error::{ApiError, Code};
use crate::Service;

type Shared = Arc<Service>;

/// How often the registry is checked for a switch made by another process.
pub(crate) const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// `GET /v1/models`: every saved win model, oldest first, with its stage, who trained and approved
/// it, its training summary (`train --json`'s figures), and which one the scores are from. Any role:
/// models hold no rows.
pub(crate) async fn list(
    State(s): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&s, &headers).await?;
    let service = s.clone();
    let r = blocking(move || Registry::read(&service.store).map_err(ApiError::internal)).await?;
    let models: Vec<Value> = r.models.iter().map(|m| listed(&r, m)).collect();
    Ok(Json(serde_json::json!({
        "active": r.active,
        "implicit": r.implicit,
        "models": models,
    }))
    .into_response())
}

/// A model as the API shows it: its state, its place in the saving order (`seq`) and whether it is
/// the active one.
fn listed(r: &Registry, m: &winsignal_workspace::registry::ModelState) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    v["seq"] = m.saved.into();
    v["active"] = (r.active.as_deref() == Some(m.model_id.as_str())).into();
    v
}

/// `GET /v1/models/{id}`: one model with its stage and every transition of it.
pub(crate) async fn show(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller(&s, &headers).await?;
    let service = s.clone();
    let answer = blocking(move || {
        let r = Registry::read(&service.store).map_err(ApiError::internal)?;
        let m = r.model(&id).map_err(ApiError::registry)?;
        let transitions: Vec<&Transition> = r
            .transitions
            .iter()
            .filter(|t| t.model_id == m.model_id)
            .collect();
        Ok(serde_json::json!({ "model": listed(&r, m), "transitions": transitions }))
    })
    .await?;
    Ok(Json(answer).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActiveQuery {
    at: Option<String>,
}

/// `GET /v1/models/active?at=TIME`: which model was active at a time (default now), the transition
/// that made it so, and its approval.
pub(crate) async fn active(
    State(s): State<Shared>,
    query: Result<Query<ActiveQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(Code::BadQuery, e.body_text()))?;
    caller(&s, &headers).await?;
    let at = match q.at.as_deref() {
        Some(text) => Ts::parse(text).map_err(|_| {
            ApiError::new(
                Code::BadQuery,
                format!("at={text:?}: expected a date (YYYY-MM-DD) or an RFC 3339 time"),
            )
        })?,
        None => Ts::now(),
    };
    let service = s.clone();
    let answer = blocking(move || {
        let r = Registry::read(&service.store).map_err(ApiError::internal)?;
        Ok(r.active_at(at))
    })
    .await?;
    Ok(Json(answer).into_response())
}

/// The body of a step: its reason, and for an activation the gate's override.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepBody {
    reason: String,
    #[serde(default)]
    override_reason: Option<String>,
}

const STEP_SHAPE: &str = r#"{"reason": "<why>"} (activate also takes "override_reason")"#;

/// Which step a POST takes.
#[derive(Clone, Copy)]
enum Step {
    Approve,
    Activate,
    Retire,
    Rollback,
}

async fn step(
    s: Shared,
    id: Option<String>,
    step: Step,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let (principal, _, body) = accept_body(&s, &headers, body).await?;
    if !principal.role.governs_models() {
        return Err(ApiError::new(
            Code::Forbidden,
            "the model registry's steps are for admin and revops tokens",
        ));
    }
    let parsed: StepBody = parse_body(&body, STEP_SHAPE)?;
    if parsed.override_reason.is_some() && !matches!(step, Step::Activate) {
        return Err(ApiError::new(
            Code::BadShape,
            "`override_reason` is for activation only",
        ));
    }
    let service = s.clone();
    let actor = principal.user;
    let transition = blocking(move || {
        let store = &service.store;
        let id = id.unwrap_or_default();
        match step {
            Step::Approve => registry::approve(store, &id, &actor, &parsed.reason),
            Step::Activate => registry::activate(
                store,
                &id,
                &actor,
                &parsed.reason,
                parsed.override_reason.as_deref(),
                &mut winsignal_workspace::Silent,
            ),
            Step::Retire => registry::retire(store, &id, &actor, &parsed.reason),
            Step::Rollback => registry::rollback(store, &actor, &parsed.reason),
        }
        .map_err(ApiError::registry)
    })
    .await?;
    let switched = if matches!(step, Step::Activate | Step::Rollback) {
        switch_if_changed(&s).await?
    } else {
        None
    };
    Ok(Json(serde_json::json!({
        "transition": transition,
        "serving": switched.or_else(|| {
            s.live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
                .and_then(|l| l.model_id().map(str::to_string))
        }),
    }))
    .into_response())
}

/// `POST /v1/models/{id}/approve`.
pub(crate) async fn approve(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    step(s, Some(id), Step::Approve, headers, body).await
}

/// `POST /v1/models/{id}/activate`.
pub(crate) async fn activate(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    step(s, Some(id), Step::Activate, headers, body).await
}

/// `POST /v1/models/{id}/retire`.
pub(crate) async fn retire(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    step(s, Some(id), Step::Retire, headers, body).await
}

/// `POST /v1/models/rollback`.
pub(crate) async fn rollback(
    State(s): State<Shared>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    step(s, None, Step::Rollback, headers, body).await
}

/// Switches the live scores to the registry's active model if it is not the one served: prepared under
/// a read lock (requests keep being answered), put in place under the write lock, with no commit in
/// between. Publishes the score changes. Returns the model switched to, if any.
/// Takes into the live state the reviewers' corrections and the actions reps dismissed, if decisions
/// or feedback were recorded since it last looked (by this server or another process).
pub(crate) async fn follow_review(s: &Shared) -> Result<(), ApiError> {
    let service = s.clone();
    blocking(move || {
        let (overrides_seen, dismissed_seen) = {
            let live = service
                .live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match live.as_ref() {
                Some(l) => (l.overrides_seen(), l.dismissed_seen()),
                None => return Ok(()),
            }
        };
        let overrides =
            winsignal_workspace::review::Overrides::newer_than(&service.store, overrides_seen)
                .map_err(ApiError::internal)?;
        let dismissed =
            winsignal_workspace::feedback::Dismissed::newer_than(&service.store, dismissed_seen)
                .map_err(ApiError::internal)?;
        if overrides.is_none() && dismissed.is_none() {
            return Ok(());
        }
        if let Some(live) = service
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
        {
            if let Some(o) = overrides {
                live.set_overrides(o);
            }
            if let Some(d) = dismissed {
                live.set_dismissed(d).map_err(ApiError::internal)?;
            }
        }
        Ok(())
    })
    .await
}

pub(crate) async fn switch_if_changed(s: &Shared) -> Result<Option<String>, ApiError> {
    let service = s.clone();
    let differs = blocking(move || {
        let active = winsignal_workspace::models::active_win_model_id(&service.store)
            .map_err(ApiError::internal)?;
        let live = service
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(live
            .as_ref()
            .is_some_and(|l| active.is_some() && l.model_id() != active.as_deref()))
    })
    .await?;
    if !differs {
        return Ok(None);
    }
    let _writing = s.writing.lock().await;
    let service = s.clone();
    let done = blocking(move || {
        let prepared = {
            let live = service
                .live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(live) = live.as_ref() else {
                return Ok(None);
            };
            live.prepare_switch(&service.store)
                .map_err(ApiError::internal)?
        };
        let Some(prepared) = prepared else {
            return Ok(None);
        };
        let id = prepared.model_id().to_string();
        let mut live = service
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(live) = live.as_mut() else {
            return Ok(None);
        };
        let changes = live
            .switch(&service.store, prepared)
            .map_err(ApiError::internal)?;
        Ok(Some((id, changes)))
    })
    .await?;
    let Some((id, changes)) = done else {
        return Ok(None);
    };
    publish(s, &changes);
    s.metrics
        .score_changes
        .fetch_add(changes.len() as u64, std::sync::atomic::Ordering::Relaxed);
    s.metrics
        .model_switches
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(model = %id, score_changes = changes.len(), "switched the served model");
    Ok(Some(id))
}

/// Every [`FOLLOW_EVERY`], switches to the registry's active model when another process changed it,
/// and takes in review decisions recorded since the last look.
/// Runs until the server stops.
pub(crate) async fn follow_registry(s: Shared) {
    let mut every = tokio::time::interval(FOLLOW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = switch_if_changed(&s).await {
            tracing::error!(error = %e.message, "following the model registry failed");
        }
        if let Err(e) = follow_review(&s).await {
            tracing::error!(error = %e.message, "following the review decisions and feedback failed");
        }
    }
}
