//! Every error the API answers with: one table of codes (docs/api.md lists it), each with its HTTP
//! status, and a message that says what was expected.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error code of the API. The table is the contract: codes are never renamed or reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// 401: no token, or one not known or revoked.
    Unauthorized,
    /// 403: the token is known but its role may not use this endpoint.
    Forbidden,
    /// 404: no such endpoint, or no such row the caller may see (the two are not told apart).
    NotFound,
    /// 405: the endpoint exists but not with this method.
    MethodNotAllowed,
    /// 400: the body is not JSON.
    BadJson,
    /// 422: the body is JSON but not the documented shape (a missing or mistyped field, an unknown
    /// kind); the message names the place.
    BadShape,
    /// 413: the body is larger than the server takes.
    TooLarge,
    /// 415: the body is not declared as `application/json`.
    UnsupportedMediaType,
    /// 400: a query parameter is not of the documented form.
    BadQuery,
    /// 409: a rule of the workspace refuses the step in its current state (the two-person rule, the
    /// model gate, a model not approved, nothing to roll back to); the message says which.
    Conflict,
    /// 503: the workspace is still loading.
    NotReady,
    /// 503: another process holds the store's write lock for longer than the wait.
    Busy,
    /// 500: anything else; the message says what failed.
    Internal,
}

impl Code {
    /// Every code, in the table's order.
    pub const ALL: [Code; 13] = [
        Code::Unauthorized,
        Code::Forbidden,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::BadJson,
        Code::BadShape,
        Code::TooLarge,
        Code::UnsupportedMediaType,
        Code::BadQuery,
        Code::Conflict,
        Code::NotReady,
        Code::Busy,
        Code::Internal,
    ];

    pub fn status(self) -> StatusCode {
        match self {
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::BadJson | Code::BadQuery => StatusCode::BAD_REQUEST,
            Code::BadShape => StatusCode::UNPROCESSABLE_ENTITY,
            Code::Conflict => StatusCode::CONFLICT,
            Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::NotReady | Code::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer: `{"error": {"code": ..., "message": ...}}` with the code's status.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// An error of the application layer: the store being busy is the client's to retry; anything
    /// else is the server's.
    pub fn internal(e: impl Into<anyhow::Error>) -> ApiError {
        let e = e.into();
        let busy = e.chain().any(|c| {
            c.downcast_ref::<winsignal_store::StoreError>()
                .is_some_and(|s| s.kind() == winsignal_store::ErrorKind::Unavailable)
        });
        let code = if busy { Code::Busy } else { Code::Internal };
        ApiError::new(code, format!("{e:#}"))
    }

    /// An error of a registry or review step ([`winsignal_workspace::Refusal`]): a missing model is 404, a rule's refusal 409, an incomplete request
    /// 422, anything else as [`ApiError::internal`].
    pub fn registry(e: anyhow::Error) -> ApiError {
        use winsignal_workspace::Refusal;
        match e.downcast_ref::<Refusal>() {
            Some(Refusal::NotFound(m)) => ApiError::new(Code::NotFound, m.clone()),
            Some(Refusal::Rule(m)) => ApiError::new(Code::Conflict, m.clone()),
            Some(Refusal::BadRequest(m)) => ApiError::new(Code::BadShape, m.clone()),
            None => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a ApiError,
        }
        let status = self.code.status();
        (status, axum::Json(Body { error: &self })).into_response()
    }
}
