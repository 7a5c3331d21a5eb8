//! The bearer gate of `/api` and `/admin`: the service token or an admin JWT.
//! It runs before routing, so an unknown path under those prefixes answers 401
//! to a caller without a token, like a known one.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ErrorCode;
use super::{ApiError, HttpContext};
use crate::domain::{Actor, Role, is_valid_id};

/// A caller the gate let in, as the [`Actor`] of its actions: an admin JWT's
/// subject; for the service token, the user id in [`OPERATOR_HEADER`] when
/// the request names one, else `service`.
#[derive(Clone)]
pub struct ServiceCaller(pub Actor);

/// The header by which a service-token request names who is acting (an
/// operator of the admin console), so the event stream records them instead
/// of `service`; ignored with a JWT, whose subject acts.
pub const OPERATOR_HEADER: &str = "x-chat-operator";

/// The actor of a service-token request: [`OPERATOR_HEADER`] (in the user-id
/// format, else 400) or `service`.
fn operator(parts: &Parts) -> Result<String, ApiError> {
    let Some(value) = parts.headers.get(OPERATOR_HEADER) else {
        return Ok("service".into());
    };
    value
        .to_str()
        .ok()
        .filter(|v| is_valid_id(v))
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidPayload,
                "X-Chat-Operator must be 1-64 characters of A-Z a-z 0-9 _ . : -",
            )
        })
}

/// The answer to a request without an `Authorization` header.
const TOKEN_REQUIRED: &str = "a bearer token is required";

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What an `Authorization` header holds.
enum Credential<'a> {
    /// No header.
    Missing,
    /// A header that is not `Bearer <token>`.
    NotBearer,
    /// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 9110).
    Bearer(&'a str),
}

fn credential(parts: &Parts) -> Credential<'_> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Credential::Missing;
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .map_or(Credential::NotBearer, Credential::Bearer)
}

fn caller(parts: &Parts, ctx: &HttpContext) -> Result<Actor, ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message);
    let token = match credential(parts) {
        Credential::Missing => return Err(unauthorized(TOKEN_REQUIRED)),
        Credential::NotBearer => {
            return Err(unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ));
        }
        Credential::Bearer(token) => token,
    };
    if constant_time_eq(token.as_bytes(), ctx.service_token.as_bytes()) {
        return Ok(Actor {
            user_id: operator(parts)?,
            role: Role::Admin,
            connection: None,
        });
    }
    let identity = ctx
        .verifier
        .verify(token)
        .map_err(|e| unauthorized(&e.to_string()))?;
    if identity.role != Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "admin role required",
        ));
    }
    Ok(Actor {
        user_id: identity.user_id,
        role: identity.role,
        connection: None,
    })
}

/// The path prefixes behind the gate.
const GATED: [&str; 2] = ["/api", "/admin"];

fn gated(path: &str) -> bool {
    GATED.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Middleware: under `/api` and `/admin`, refuses the request unless it carries
/// the service token or an admin JWT, and hands the caller to the handler.
pub(super) async fn require_service_caller(
    State(ctx): State<HttpContext>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !gated(request.uri().path()) {
        return Ok(next.run(request).await);
    }
    let (mut parts, body) = request.into_parts();
    let actor = caller(&parts, &ctx)?;
    parts.extensions.insert(ServiceCaller(actor));
    Ok(next.run(Request::from_parts(parts, body)).await)
}

impl<S: Send + Sync> FromRequestParts<S> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<ServiceCaller>()
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::Unauthorized,
                    TOKEN_REQUIRED,
                )
            })
    }
}
