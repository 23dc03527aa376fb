//! The OpenAPI 3.1 description of the API, served at `GET /openapi.json`. It is built here, beside the
//! routes, from the same definitions the server answers with: the error codes from [`Code::ALL`], the
//! event kinds from [`Kind::ALL`], the body limit from the running configuration. The conformance test
//! (`crates/cli/tests/conformance.rs`) runs schemathesis against a live server with it, and the serve
//! test checks that every path it lists is routed.

use serde_json::{json, Map, Value};
use winsignal_core::Kind;

use crate::error::Code;

/// Who may call an operation.
#[derive(Clone, Copy, PartialEq)]
enum Auth {
    /// No token.
    Open,
    /// Any valid token.
    Token,
    /// An admin's or revops' token.
    Operations,
}

/// One operation: what it takes and what it answers.
struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    auth: Auth,
    /// Query parameters: name, JSON schema, description.
    query: Vec<(&'static str, Value, &'static str)>,
    /// The JSON request body's schema.
    body: Option<Value>,
    /// The success answer: its content type and schema.
    ok: (&'static str, Value),
    /// Error codes beyond the ones every operation of its kind has.
    errors: Vec<Code>,
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(t: &str) -> Value {
    json!({ "type": [t, "null"] })
}

fn operations() -> Vec<Op> {
    let live = vec![Code::NotReady];
    let write: Vec<Code> = vec![
        Code::NotReady,
        Code::BadJson,
        Code::BadShape,
        Code::TooLarge,
        Code::UnsupportedMediaType,
        Code::Busy,
    ];
    let positioned = |inner: &str, schema: Value| {
        object(
            &["position", "computed_at", inner],
            json!({"position": {"type": "integer", "minimum": 0}, "computed_at": {"type": "string"}, inner: schema}),
        )
    };
    vec![
        Op {
            method: "get",
            path: "/healthz",
            id: "healthz",
            summary: "The process is alive (answers before the workspace is loaded).",
            auth: Auth::Open,
            query: vec![],
            body: None,
            ok: ("application/json", object(&["status"], json!({"status": {"const": "ok"}}))),
            errors: vec![],
        },
        Op {
            method: "get",
            path: "/readyz",
            id: "readyz",
            summary: "The workspace is loaded: the log position and the active model.",
            auth: Auth::Open,
            query: vec![],
            body: None,
            ok: (
                "application/json",
                object(
                    &["status", "position", "model_id"],
                    json!({"status": {"const": "ready"}, "position": {"type": "integer"}, "model_id": nullable("string")}),
                ),
            ),
            errors: vec![Code::NotReady],
        },
        Op {
            method: "get",
            path: "/openapi.json",
            id: "openapi",
            summary: "This description.",
            auth: Auth::Open,
            query: vec![],
            body: None,
            ok: ("application/json", json!({"type": "object"})),
            errors: vec![],
        },
        Op {
            method: "get",
            path: "/",
            id: "dashboard",
            summary: "The dashboard (HTML; its script and style are under /assets/).",
            auth: Auth::Open,
            query: vec![],
            body: None,
            ok: ("text/html", json!({"type": "string"})),
            errors: vec![],
        },
        Op {
            method: "get",
            path: "/v1/me",
            id: "whoami",
            summary: "Who the token belongs to.",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: (
                "application/json",
                object(
                    &["user", "role", "rep_id", "sees_operations"],
                    json!({"user": {"type": "string"}, "role": {"enum": ["admin", "revops", "manager", "rep"]},
                           "rep_id": nullable("string"), "sees_operations": {"type": "boolean"}}),
                ),
            ),
            errors: vec![],
        },
        Op {
            method: "get",
            path: "/v1/deals",
            id: "listDeals",
            summary: "Open deals in the caller's scope, riskiest first.",
            auth: Auth::Token,
            query: vec![
                ("rep", json!({"type": "string"}), "Only this rep's deals."),
                ("stage", json!({"type": "string"}), "Only deals at this stage."),
                ("max_p_win", json!({"type": "number"}), "Only deals with P(win) at most this."),
                ("limit", json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}), "At most this many deals."),
            ],
            body: None,
            ok: (
                "application/json",
                object(
                    &["position", "model_id", "deals"],
                    json!({"position": {"type": "integer"}, "model_id": nullable("string"),
                           "deals": {"type": "array", "items": reference("DealRow")}}),
                ),
            ),
            errors: [live.clone(), vec![Code::BadQuery]].concat(),
        },
        Op {
            method: "get",
            path: "/v1/deals/{id}",
            id: "getDeal",
            summary: "One open deal's score with its factors and next actions (`score --json`'s deal), and the reviewers' standing correction of its P(win).",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: (
                "application/json",
                object(
                    &["position", "model_id", "deal", "review"],
                    json!({"position": {"type": "integer"}, "model_id": nullable("string"), "deal": reference("Deal"),
                           "review": {"oneOf": [{"type": "null"}, reference("Decision")]}}),
                ),
            ),
            errors: [live.clone(), vec![Code::NotFound]].concat(),
        },
        Op {
            method: "get",
            path: "/v1/deals/{id}/history",
            id: "getDealHistory",
            summary: "A deal's recorded score changes, oldest first.",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: (
                "application/json",
                object(&["history"], json!({"history": {"type": "array", "items": {
                    "allOf": [reference("ScoreChange"), object(&["seq", "recorded_at"], json!({"seq": {"type": "integer"}, "recorded_at": {"type": "string"}}))]
                }}})),
            ),
            errors: vec![Code::NotFound],
        },
        Op {
            method: "get",
            path: "/v1/deals/{id}/lineage",
            id: "getDealLineage",
            summary: "`explain --json` of the live state: the events and source rows behind each factor.",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: (
                "application/json",
                object(&["model_id", "deal", "lineage"], json!({"model_id": {"type": "string"}, "deal": reference("Deal"), "lineage": {"type": "array"}})),
            ),
            errors: [live.clone(), vec![Code::NotFound]].concat(),
        },
        Op {
            method: "get",
            path: "/v1/deals/{id}/feedback",
            id: "listDealFeedback",
            summary: "Every piece of feedback on an open deal's actions, oldest first.",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: (
                "application/json",
                object(&["feedback"], json!({"feedback": {"type": "array", "items": reference("Feedback")}})),
            ),
            errors: [live.clone(), vec![Code::NotFound]].concat(),
        },
        Op {
            method: "post",
            path: "/v1/deals/{id}/feedback",
            id: "giveDealFeedback",
            summary: "The caller's feedback (`done`, `not_relevant`) on one of the open deal's current actions.",
            auth: Auth::Token,
            query: vec![],
            body: Some(reference("FeedbackBody")),
            ok: (
                "application/json",
                object(&["feedback"], json!({"feedback": reference("Feedback")})),
            ),
            errors: [write.clone(), vec![Code::NotFound]].concat(),
        },
        Op {
            method: "post",
            path: "/v1/events",
            id: "postEvents",
            summary: "Canonical records and events in, through the same checks as `winsignal ingest`; answered after the commit, item by item.",
            auth: Auth::Token,
            query: vec![],
            body: Some(reference("EventsBody")),
            ok: ("application/json", reference("EventsAnswer")),
            errors: write.clone(),
        },
        Op {
            method: "get",
            path: "/v1/stream",
            id: "stream",
            summary: "Server-Sent Events: `score_change` events of deals in the caller's scope, as they are made.",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: ("text/event-stream", json!({"type": "string"})),
            errors: live.clone(),
        },
        Op {
            method: "get",
            path: "/v1/models",
            id: "listModels",
            summary: "Saved win models, oldest first, with their stages (candidate, approved, active, retired), who trained and approved them, and the active one marked.",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: (
                "application/json",
                object(&["active", "implicit", "models"], json!({
                    "active": nullable("string"), "implicit": {"type": "boolean"},
                    "models": {"type": "array", "items": reference("ModelState")}})),
            ),
            errors: vec![],
        },
        Op {
            method: "get",
            path: "/v1/models/active",
            id: "activeModel",
            summary: "Which model was active at a time (default now), the transition that made it so, and its approval.",
            auth: Auth::Token,
            query: vec![(
                "at",
                json!({"type": "string", "format": "date"}),
                "A date (YYYY-MM-DD; its first instant, UTC); an RFC 3339 time is taken too.",
            )],
            body: None,
            ok: (
                "application/json",
                object(&["at", "model_id", "activation", "approval", "note"], json!({
                    "at": {"type": "integer"}, "model_id": nullable("string"),
                    "activation": {"oneOf": [{"type": "null"}, reference("Transition")]},
                    "approval": {"oneOf": [{"type": "null"}, reference("Transition")]},
                    "note": nullable("string")})),
            ),
            errors: vec![Code::BadQuery],
        },
        Op {
            method: "get",
            path: "/v1/models/{id}",
            id: "getModel",
            summary: "One model (its id, or a prefix of at least 6 characters) with its stage and transitions.",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: (
                "application/json",
                object(&["model", "transitions"], json!({
                    "model": reference("ModelState"),
                    "transitions": {"type": "array", "items": reference("Transition")}})),
            ),
            errors: vec![Code::NotFound],
        },
        Op {
            method: "post",
            path: "/v1/models/{id}/approve",
            id: "approveModel",
            summary: "Approve a candidate, in the caller's name; refused (409) to whoever trained it.",
            auth: Auth::Operations,
            query: vec![],
            body: Some(reference("StepBody")),
            ok: ("application/json", reference("StepAnswer")),
            errors: [write.clone(), vec![Code::NotFound, Code::Conflict]].concat(),
        },
        Op {
            method: "post",
            path: "/v1/models/{id}/activate",
            id: "activateModel",
            summary: "Activate an approved model after the gate (refused, 409, when worse than the active model beyond the tolerances, unless `override_reason` is given); the live scores switch before the answer.",
            auth: Auth::Operations,
            query: vec![],
            body: Some(reference("ActivateBody")),
            ok: ("application/json", reference("StepAnswer")),
            errors: [write.clone(), vec![Code::NotFound, Code::Conflict]].concat(),
        },
        Op {
            method: "post",
            path: "/v1/models/{id}/retire",
            id: "retireModel",
            summary: "Set aside a model that is not active.",
            auth: Auth::Operations,
            query: vec![],
            body: Some(reference("StepBody")),
            ok: ("application/json", reference("StepAnswer")),
            errors: [write.clone(), vec![Code::NotFound, Code::Conflict]].concat(),
        },
        Op {
            method: "post",
            path: "/v1/models/rollback",
            id: "rollbackModel",
            summary: "Make the model active before the current one active again; the live scores switch before the answer.",
            auth: Auth::Operations,
            query: vec![],
            body: Some(reference("StepBody")),
            ok: ("application/json", reference("StepAnswer")),
            errors: [write.clone(), vec![Code::Conflict]].concat(),
        },
        Op {
            method: "get",
            path: "/v1/review",
            id: "listReview",
            summary: "The review queue's items the caller's scope allows: waiting ones, or with `all` decided ones too, with their decisions.",
            auth: Auth::Token,
            query: vec![(
                "all",
                json!({"type": "boolean"}),
                "Also the decided items.",
            )],
            body: None,
            ok: (
                "application/json",
                object(&["items"], json!({"items": {"type": "array", "items": reference("ReviewItem")}})),
            ),
            errors: vec![Code::BadQuery],
        },
        Op {
            method: "post",
            path: "/v1/review/{id}",
            id: "decideReview",
            summary: "Accept, edit (with the corrected P(win)) or reject an item, with a reason code, in the caller's name; admin, revops and manager tokens, within their scope.",
            auth: Auth::Token,
            query: vec![],
            body: Some(reference("DecideBody")),
            ok: (
                "application/json",
                object(&["decision"], json!({"decision": reference("Decision")})),
            ),
            errors: [write.clone(), vec![Code::Forbidden, Code::NotFound, Code::Conflict, Code::BadQuery]].concat(),
        },
        Op {
            method: "get",
            path: "/v1/quality",
            id: "quality",
            summary: "`winsignal quality --json`.",
            auth: Auth::Operations,
            query: vec![],
            body: None,
            ok: ("application/json", json!({"type": "object"})),
            errors: vec![],
        },
        Op {
            method: "get",
            path: "/v1/monitor",
            id: "monitor",
            summary: "The latest monitoring check's figures (`winsignal monitor check`; null before the first), the alerts firing, and the last 20 alerts recorded, newest first.",
            auth: Auth::Operations,
            query: vec![],
            body: None,
            ok: (
                "application/json",
                object(&["figures", "firing", "recent"], json!({
                    "figures": {"oneOf": [{"type": "null"}, {"type": "object"}]},
                    "firing": {"type": "array", "items": reference("Alert")},
                    "recent": {"type": "array", "items": object(&["seq", "alert"],
                        json!({"seq": {"type": "integer"}, "alert": reference("Alert")}))}})),
            ),
            errors: vec![],
        },
        Op {
            method: "get",
            path: "/v1/findings",
            id: "findings",
            summary: "`winsignal discover --json`, within the caller's scope.",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: ("application/json", positioned("findings", object(&["findings", "details"], json!({"findings": {"type": "array"}, "details": {"type": "array"}})))),
            errors: vec![],
        },
        Op {
            method: "get",
            path: "/v1/reps",
            id: "listReps",
            summary: "`winsignal reps --json` with the cards of the reps in the caller's scope.",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: ("application/json", positioned("scorecards", object(&["reps"], json!({"reps": {"type": "array"}})))),
            errors: vec![],
        },
        Op {
            method: "get",
            path: "/v1/reps/{id}",
            id: "getRep",
            summary: "One rep's scorecard and coaching.",
            auth: Auth::Token,
            query: vec![],
            body: None,
            ok: ("application/json", positioned("card", object(&["rep_id"], json!({"rep_id": {"type": "string"}})))),
            errors: vec![Code::NotFound],
        },
        Op {
            method: "get",
            path: "/v1/accounts",
            id: "accounts",
            summary: "`winsignal accounts --prioritise --json` of the live state.",
            auth: Auth::Operations,
            query: vec![("top", json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}), "How many ranked accounts (default 20).")],
            body: None,
            ok: (
                "application/json",
                object(&["position", "accounts"], json!({"position": {"type": "integer"}, "accounts": object(&["ranked"], json!({"ranked": {"type": "array"}}))})),
            ),
            errors: [live.clone(), vec![Code::BadQuery]].concat(),
        },
        Op {
            method: "get",
            path: "/v1/forecast",
            id: "forecast",
            summary: "`winsignal forecast --json` of the live state: bookings per period, their parts and P10–P90 range, each open deal's share, the stage-weighted pipeline.",
            auth: Auth::Operations,
            query: vec![
                ("period", json!({"enum": ["month", "quarter"]}), "Calendar months or quarters (default quarter)."),
                ("periods", json!({"type": "integer", "minimum": 1, "maximum": 12}), "How many periods, the current one first (default 3)."),
            ],
            body: None,
            ok: (
                "application/json",
                object(&["position", "model_id", "forecast"], json!({"position": {"type": "integer"}, "model_id": nullable("string"),
                    "forecast": object(&["as_of", "kind", "periods", "deals", "notes"], json!({
                        "as_of": {"type": "integer"}, "kind": {"enum": ["month", "quarter"]},
                        "periods": {"type": "array", "items": object(&["label", "start", "end", "expected", "p10", "p50", "p90", "stage_weighted"], json!({
                            "label": {"type": "string"}, "start": {"type": "integer"}, "end": {"type": "integer"},
                            "expected": {"type": "number"}, "p10": {"type": "number"}, "p50": {"type": "number"}, "p90": {"type": "number"},
                            "stage_weighted": {"type": "number"},
                            "crm_weighted": nullable("number"), "commit": nullable("number"),
                            "committed": nullable("number"), "slip": nullable("number")}))},
                        "deals": {"type": "array"}, "notes": {"type": "array", "items": {"type": "string"}}}))})),
            ),
            errors: [live, vec![Code::BadQuery, Code::NotFound]].concat(),
        },
        Op {
            method: "get",
            path: "/metrics",
            id: "metrics",
            summary: "Prometheus metrics (text exposition format 0.0.4).",
            auth: Auth::Operations,
            query: vec![],
            body: None,
            ok: ("text/plain", json!({"type": "string"})),
            errors: vec![],
        },
    ]
    .into_iter()
    .chain(segment_operations(&write))
    .map(|mut op| {
        // Every store read can fail; a token is checked against the store.
        if op.auth != Auth::Open {
            op.errors.extend([Code::Unauthorized, Code::Internal]);
        }
        if op.auth == Auth::Operations {
            op.errors.push(Code::Forbidden);
        }
        op
    })
    .collect()
}

/// Segment's calls, one operation each: a single message (its `type`, when given, the call's), or a
/// batch of them.
fn segment_operations(write: &[Code]) -> Vec<Op> {
    const CALLS: [(&str, &str, &str); 6] = [
        ("/segment/v1/track", "segmentTrack", "track"),
        ("/segment/v1/identify", "segmentIdentify", "identify"),
        ("/segment/v1/page", "segmentPage", "page"),
        ("/segment/v1/screen", "segmentScreen", "screen"),
        ("/segment/v1/group", "segmentGroup", "group"),
        ("/segment/v1/alias", "segmentAlias", "alias"),
    ];
    let answer = || json!({"allOf": [reference("EventsAnswer"), object(&["success"], json!({"success": {"const": true}}))]});
    let mut ops: Vec<Op> = CALLS
        .iter()
        .map(|(path, id, call)| Op {
            method: "post",
            path,
            id,
            summary: "One message of Segment's HTTP Tracking API; the token as the write key (HTTP Basic user name) or a bearer token.",
            auth: Auth::Token,
            query: vec![],
            body: Some(json!({"type": "object", "properties": {"type": {"const": call}}})),
            ok: ("application/json", answer()),
            errors: write.to_vec(),
        })
        .collect();
    ops.push(Op {
        method: "post",
        path: "/segment/v1/batch",
        id: "segmentBatch",
        summary:
            "A batch of Segment messages; a batch `context` is each message's when it has none.",
        auth: Auth::Token,
        query: vec![],
        body: Some(json!({
            "type": "object", "required": ["batch"],
            "properties": {
                "batch": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                "context": {"type": "object"}}})),
        ok: ("application/json", answer()),
        errors: write.to_vec(),
    });
    ops
}

fn schemas(max_body: usize) -> Value {
    let kinds: Vec<&str> = winsignal_ingest::sources::canonical_kinds()
        .map(Kind::as_str)
        .collect();
    let codes: Vec<Value> = Code::ALL
        .iter()
        .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
        .collect();
    let factor = object(
        &["term", "points"],
        json!({"term": {"type": "string"}, "points": {"type": "number"}}),
    );
    json!({
        "Error": object(&["error"], json!({"error": object(&["code", "message"], json!({
            "code": {"enum": codes}, "message": {"type": "string"}}))})),
        "DealRow": object(
            &["opportunity_id", "p_win", "as_of"],
            json!({"opportunity_id": {"type": "string"}, "account_id": nullable("string"),
                   "rep_id": nullable("string"), "stage": nullable("string"), "amount": nullable("number"),
                   "p_win": {"type": "number", "minimum": 0, "maximum": 1}, "as_of": {"type": "string"},
                   "biggest_drag": {"oneOf": [{"type": "null"}, factor]},
                   "next_action": {"oneOf": [{"type": "null"}, object(&["behaviour", "title", "uplift_points"], json!({
                       "behaviour": {"type": "string"}, "title": {"type": "string"}, "uplift_points": {"type": "number"}}))]}})),
        "Deal": object(
            &["opportunity_id", "p_win", "logit", "factors", "actions", "as_of"],
            json!({"opportunity_id": {"type": "string"}, "p_win": {"type": "number", "minimum": 0, "maximum": 1},
                   "logit": {"type": "number"}, "as_of": {"type": "integer"},
                   "idle_days": {"type": "number", "minimum": 0},
                   "factors": {"type": "array", "items": object(&["term", "logit", "points", "text"], json!({
                       "term": {"type": "string"}, "logit": {"type": "number"}, "points": {"type": "number"}, "text": {"type": "string"}}))},
                   "actions": {"type": "array"}})),
        "Alert": object(
            &["key", "kind", "state", "model_id", "summary", "recommendation", "rollback_to", "value", "threshold", "features", "checked_at"],
            json!({"key": {"type": "string"}, "kind": {"enum": ["performance", "drift"]},
                   "state": {"enum": ["firing", "resolved"]}, "model_id": {"type": "string"},
                   "summary": {"type": "string"}, "recommendation": nullable("string"),
                   "rollback_to": nullable("string"), "value": nullable("number"), "threshold": nullable("number"),
                   "features": {"type": "array", "items": {"type": "string"}}, "checked_at": {"type": "integer"}})),
        "ScoreChange": object(
            &["opportunity_id", "position", "model_id", "as_of", "before", "after", "moved_by"],
            json!({"opportunity_id": {"type": "string"}, "position": {"type": "integer"},
                   "rep_id": nullable("string"), "model_id": {"type": "string"}, "as_of": {"type": "integer"},
                   "before": nullable("number"), "after": nullable("number"),
                   "moved_by": {"type": "array", "items": object(&["term", "logit_change"], json!({
                       "term": {"type": "string"}, "logit_change": {"type": "number"}}))},
                   "stage": nullable("string"), "previous_stage": nullable("string"),
                   "account_id": nullable("string"), "amount": nullable("number"),
                   "reasons": {"type": "array", "items": {"type": "string"}},
                   "next_action": {"type": ["object", "null"]},
                   "idle_days": nullable("number"), "previous_idle_days": nullable("number")})),
        "ModelState": object(
            &["model_id", "seq", "saved", "stage", "active", "summary"],
            json!({"model_id": {"type": "string"}, "seq": {"type": "integer"}, "saved": {"type": "integer"},
                   "stage": {"enum": ["candidate", "approved", "active", "retired"]},
                   "active": {"type": "boolean"},
                   "trained_by": nullable("string"), "trained_at": nullable("integer"),
                   "approved_by": nullable("string"), "approved_at": nullable("integer"),
                   "approval_reason": nullable("string"), "activated_at": nullable("integer"),
                   "summary": {}})),
        "Transition": object(
            &["seq", "at", "actor", "model_id", "action", "reason"],
            json!({"seq": {"type": "integer"}, "at": {"type": "integer"}, "actor": {"type": "string"},
                   "model_id": {"type": "string"},
                   "action": {"enum": ["trained", "approved", "activated", "rolled_back", "retired"]},
                   "reason": {"type": "string"}, "previous": {"type": "string"},
                   "gate": {"type": "object"}, "override_reason": {"type": "string"}})),
        "Feedback": object(
            &["seq", "at", "user", "opportunity_id", "behaviour", "verdict", "comment", "model_id", "p_win", "uplift_points"],
            json!({"seq": {"type": "integer"}, "at": {"type": "integer"}, "user": {"type": "string"},
                   "opportunity_id": {"type": "string"}, "behaviour": {"type": "string"},
                   "verdict": {"enum": ["done", "not_relevant"]}, "comment": {"type": "string"},
                   "model_id": {"type": "string"}, "p_win": {"type": "number"}, "uplift_points": {"type": "number"}})),
        "FeedbackBody": {
            "type": "object", "required": ["behaviour", "verdict"], "additionalProperties": false,
            "properties": {"behaviour": {"type": "string"}, "verdict": {"enum": ["done", "not_relevant"]},
                           "comment": {"type": "string"}}},
        "ReviewItem": object(
            &["id", "created_at", "kind", "why", "decision"],
            json!({"id": {"type": "integer"}, "created_at": {"type": "integer"},
                   "kind": {"enum": ["score_change", "strategic_action", "coaching_change"]}, "why": {"type": "string"},
                   "change": reference("ScoreChange"),
                   "coaching": reference("CoachingChange"),
                   "decision": {"oneOf": [{"type": "null"}, reference("Decision")]}})),
        "CoachingChange": object(
            &["team", "rep_ids", "previous", "now"],
            json!({"team": {"type": "string"}, "rep_ids": {"type": "array", "items": {"type": "string"}},
                   "previous": {"oneOf": [{"type": "null"}, reference("CoachingFocus")]},
                   "now": {"oneOf": [{"type": "null"}, reference("CoachingFocus")]}})),
        "CoachingFocus": object(
            &["behaviour", "title", "expected_extra_wins", "reps"],
            json!({"behaviour": {"type": "string"}, "title": {"type": "string"},
                   "expected_extra_wins": {"type": "number"}, "reps": {"type": "integer"}})),
        "Decision": object(
            &["item", "at", "reviewer", "verdict", "reason_code", "comment", "model_id", "p_win"],
            json!({"item": {"type": "integer"}, "at": {"type": "integer"}, "reviewer": {"type": "string"},
                   "verdict": {"enum": ["accept", "edit", "reject"]},
                   "reason_code": {"enum": ["agree", "wrong_data", "missing_context", "model_error", "other"]},
                   "comment": {"type": "string"}, "corrected_p_win": {"type": "number"},
                   "model_id": {"type": "string"}, "p_win": nullable("number")})),
        "DecideBody": {
            "type": "object", "required": ["verdict", "reason_code"], "additionalProperties": false,
            "properties": {"verdict": {"enum": ["accept", "edit", "reject"]},
                           "reason_code": {"enum": ["agree", "wrong_data", "missing_context", "model_error", "other"]},
                           "comment": {"type": "string"},
                           "corrected_p_win": {"type": "number", "minimum": 0, "maximum": 1}}},
        "StepBody": {
            "type": "object", "required": ["reason"], "additionalProperties": false,
            "properties": {"reason": {"type": "string", "minLength": 1, "pattern": "\\S"}}},
        "ActivateBody": {
            "type": "object", "required": ["reason"], "additionalProperties": false,
            "properties": {"reason": {"type": "string", "minLength": 1, "pattern": "\\S"},
                           "override_reason": {"type": "string", "minLength": 1, "pattern": "\\S"}}},
        "StepAnswer": object(
            &["transition", "serving"],
            json!({"transition": reference("Transition"), "serving": nullable("string")})),
        "EventsBody": {
            "type": "object", "required": ["items"], "additionalProperties": false,
            "description": format!("At most {max_body} bytes."),
            "properties": {"items": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["kind", "record"], "additionalProperties": false,
                "properties": {"kind": {"enum": kinds}, "record": {"type": "object"}}}}}},
        "EventsAnswer": object(
            &["accepted", "quarantined", "items", "position", "score_changes"],
            json!({"accepted": {"type": "integer"}, "quarantined": {"type": "integer"},
                   "position": {"type": "integer"},
                   "items": {"type": "array", "items": object(&["index", "kind", "status", "load_id", "line"], json!({
                       "index": {"type": "integer"}, "kind": {"type": "string"},
                       "status": {"enum": ["accepted", "quarantined"]},
                       "reasons": {"type": "array", "items": {"type": "string"}},
                       "load_id": {"type": "integer"}, "line": {"type": "integer"}}))},
                   "score_changes": {"type": "array", "items": reference("ScoreChange")}})),
    })
}

/// The OpenAPI 3.1 document; `max_body` is the server's body limit (said in the events body's
/// description).
pub(crate) fn document(max_body: usize) -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let mut responses = Map::new();
        let mut ok = json!({"description": "OK", "content": { op.ok.0: {"schema": op.ok.1} }});
        if op.id == "listDeals" {
            // A listed deal's id leads to its own operations.
            let id = json!({"id": "$response.body#/deals/0/opportunity_id"});
            ok["links"] = json!({
                "GetDeal": {"operationId": "getDeal", "parameters": id},
                "GetDealHistory": {"operationId": "getDealHistory", "parameters": id},
                "GetDealLineage": {"operationId": "getDealLineage", "parameters": id},
            });
        }
        responses.insert("200".into(), ok);
        // Unknown methods on a path get 405; every error has the one envelope.
        let mut errors = op.errors.clone();
        errors.push(Code::MethodNotAllowed);
        for code in errors {
            let status = code.status().as_u16().to_string();
            let entry = responses.entry(status).or_insert_with(|| {
                json!({"description": "", "content": {"application/json": {"schema": reference("Error")}}})
            });
            let name = serde_json::to_value(code).unwrap_or(Value::Null);
            let text = entry["description"].as_str().unwrap_or("").to_string();
            let name = name.as_str().unwrap_or("");
            entry["description"] = if text.is_empty() {
                Value::String(format!("`{name}`"))
            } else {
                Value::String(format!("{text}, `{name}`"))
            };
        }
        let mut parameters: Vec<Value> = op
            .query
            .iter()
            .map(|(name, schema, description)| {
                json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
            })
            .collect();
        for segment in op.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let schema = if name == "call" {
                    json!({"enum": ["track", "identify", "page", "screen", "group", "alias", "batch"]})
                } else {
                    json!({"type": "string", "minLength": 1})
                };
                parameters
                    .push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
            }
        }
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "parameters": parameters,
            "responses": responses,
        });
        operation["security"] = match op.auth {
            Auth::Open => json!([]),
            Auth::Token | Auth::Operations => json!([{"bearer": []}]),
        };
        if let Some(body) = op.body {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body}}});
        }
        let item = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        item[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "winsignal",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP API of `winsignal serve` (docs/api.md). Tokens come from `winsignal users`; row scope is the token's role's.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas(max_body),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "A token from `winsignal users add` or `users token`."}},
        },
    })
}
