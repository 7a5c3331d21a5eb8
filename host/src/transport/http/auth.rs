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
use crate::domain::{Actor, Role};

/// A caller the gate let in, as the [`Actor`] of its actions.
#[derive(Clone)]
pub struct ServiceCaller(pub Actor);

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive, RFC 9110).
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn caller(parts: &Parts, ctx: &HttpContext) -> Result<Actor, ApiError> {
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message);
    let token = bearer(parts).ok_or_else(|| unauthorized("a bearer token is required"))?;
    if constant_time_eq(token.as_bytes(), ctx.service_token.as_bytes()) {
        return Ok(Actor {
            user_id: "service".into(),
            role: Role::Admin,
            connection: None,
        });
    }
    let identity = ctx
        .verifier
        .verify(token)
        .map_err(|_| unauthorized("the bearer token is not valid"))?;
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
                    "a bearer token is required",
                )
            })
    }
}
