//! The one error type of the use cases, and how it maps to the contract's ack error codes.

use serde_json::{Value, json};

use crate::state::StateError;
use crate::store::StoreError;

/// Why a client's action failed. Each variant is one error code of the wire contract.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The caller is not authenticated.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may not do this (not a participant, admin write, plugin deny).
    #[error("{0}")]
    Forbidden(String),
    /// A well-formed id names nothing.
    #[error("{0}")]
    NotFound(String),
    /// The payload has the wrong shape or an out-of-range value.
    #[error("{0}")]
    InvalidPayload(String),
    /// The payload names users that do not exist (HTTP 422, code `invalid_payload`).
    #[error("unknown user ids: {}", .0.join(", "))]
    UnknownUsers(Vec<String>),
    /// The resource already exists (HTTP API only).
    #[error("{0}")]
    Conflict(String),
    /// The caller spent its rate limit; it may try again after `retry_after_ms`.
    #[error("rate limit reached; retry in {retry_after_ms} ms")]
    RateLimited {
        /// Milliseconds until one more action is allowed.
        retry_after_ms: u64,
    },
    /// A policy plugin rejected the message; the text says why.
    #[error("{0}")]
    Rejected(String),
    /// A backend is down; the action had no effect and is safe to retry.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected backend answer; the cause is logged, not sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ChatError {
    /// The contract's error code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::InvalidPayload(_) | Self::UnknownUsers(_) => "invalid_payload",
            Self::Conflict(_) => "conflict",
            Self::RateLimited { .. } => "rate_limited",
            Self::Rejected(_) => "rejected",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// Shorthand for [`ChatError::InvalidPayload`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidPayload(message.into())
    }

    /// The `error` object of a failed ack: `{ code, message, retryAfterMs? }`.
    pub fn to_wire(&self) -> Value {
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        if let Self::RateLimited { retry_after_ms } = self {
            error["retryAfterMs"] = json!(retry_after_ms);
        }
        error
    }
}

impl From<StoreError> for ChatError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::Unavailable("the database is unavailable; retry later".into())
            }
            StoreError::Other(e) => Self::Internal(e),
        }
    }
}

impl From<StateError> for ChatError {
    fn from(err: StateError) -> Self {
        match err {
            StateError::Unavailable(e) => {
                tracing::warn!(error = %e, "state store unavailable");
                Self::Unavailable("the state store is unavailable; retry later".into())
            }
            StateError::BadCursor => Self::invalid(err.to_string()),
            StateError::Other(e) => Self::Internal(e),
        }
    }
}
