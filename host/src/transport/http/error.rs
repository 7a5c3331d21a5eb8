//! The HTTP error body `{ "error": { "code", "message" } }` and its status codes.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ChatError;

/// An error answered over HTTP.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        let status = match &e {
            ChatError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ChatError::Forbidden(_) | ChatError::Rejected(_) => StatusCode::FORBIDDEN,
            ChatError::NotFound(_) => StatusCode::NOT_FOUND,
            ChatError::InvalidPayload(_) => StatusCode::BAD_REQUEST,
            ChatError::UnknownUsers(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ChatError::Conflict(_) => StatusCode::CONFLICT,
            ChatError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ChatError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ChatError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self {
            status,
            code: e.code(),
            message: e.to_string(),
        }
    }
}

macro_rules! rejection_is_invalid_payload {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(r: $rejection) -> Self {
                Self::new(StatusCode::BAD_REQUEST, "invalid_payload", r.body_text())
            }
        }
    )*};
}
rejection_is_invalid_payload!(JsonRejection, PathRejection, QueryRejection);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, Json(body)).into_response()
    }
}
