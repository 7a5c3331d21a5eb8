//! The HTTP error body `{ "error": { "code", "message" } }`, the status of every
//! error of the use cases and of the plugin service (mapped here, once), and the
//! JSON body extractor whose rejection is that error.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::chat::error::ChatError;
use crate::plugins::error::PluginError;

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn internal(cause: &dyn std::fmt::Debug) -> Self {
        tracing::error!(error = ?cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error",
        )
    }
}

/// The error body of every failed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `{ code, message }`.
    pub error: ErrorDetail,
}

/// Error code and text.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One of the contract's codes.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

/// The error codes of the HTTP API (the ack codes plus `conflict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No or a wrong bearer token.
    Unauthorized,
    /// The caller may not do this.
    Forbidden,
    /// Nothing has this id or path.
    NotFound,
    /// Bad JSON, ids, values; or a refused plugin.
    InvalidPayload,
    /// The resource exists.
    Conflict,
    /// Too many actions.
    RateLimited,
    /// A plugin rejected it.
    Rejected,
    /// A backend is down; retry.
    Unavailable,
    /// A bug; the cause is logged.
    Internal,
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        use ErrorCode as C;
        let (status, code) = match &e {
            ChatError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, C::Unauthorized),
            ChatError::Forbidden(_) => (StatusCode::FORBIDDEN, C::Forbidden),
            ChatError::Rejected(_) => (StatusCode::FORBIDDEN, C::Rejected),
            ChatError::NotFound(_) => (StatusCode::NOT_FOUND, C::NotFound),
            ChatError::InvalidPayload(_) => (StatusCode::BAD_REQUEST, C::InvalidPayload),
            ChatError::UnknownUsers(_) => (StatusCode::UNPROCESSABLE_ENTITY, C::InvalidPayload),
            ChatError::Conflict(_) => (StatusCode::CONFLICT, C::Conflict),
            ChatError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, C::RateLimited),
            ChatError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, C::Unavailable),
            ChatError::Internal(cause) => return Self::internal(cause),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        let status = match e {
            PluginError::State(e) => return ChatError::from(e).into(),
            PluginError::Store(e) => return ChatError::from(e).into(),
            PluginError::Io { .. } | PluginError::Task(_) => return Self::internal(&e),
            PluginError::NotFound(_) | PluginError::NoKey { .. } | PluginError::NoThread(_) => {
                StatusCode::NOT_FOUND
            }
            PluginError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            PluginError::InvalidManifest(_)
            | PluginError::InvalidComponent(_)
            | PluginError::NameMismatch { .. }
            | PluginError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        };
        let code = if status == StatusCode::NOT_FOUND {
            ErrorCode::NotFound
        } else {
            ErrorCode::InvalidPayload
        };
        Self::new(status, code, e.to_string())
    }
}

macro_rules! rejection_is_invalid_payload {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(r: $rejection) -> Self {
                Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidPayload, r.body_text())
            }
        }
    )*};
}
rejection_is_invalid_payload!(JsonRejection, PathRejection, QueryRejection);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// JSON body extractor whose rejection is our `invalid_payload` error.
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// The answer of an unknown path (under `/api` and `/admin`, after the bearer gate).
pub(super) async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}
