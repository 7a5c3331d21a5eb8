//! Bearer authentication of `/api`: the service token or an admin JWT.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::{ApiError, HttpContext};
use crate::auth::Role;
use crate::chat::Actor;

/// A caller allowed on the service/admin API, as the [`Actor`] of its actions.
pub struct ServiceCaller(pub Actor);

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<HttpContext> for ServiceCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &HttpContext) -> Result<Self, ApiError> {
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required",
            )
        };
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(unauthorized)?;
        if constant_time_eq(token.as_bytes(), ctx.service_token.as_bytes()) {
            return Ok(Self(Actor {
                user_id: "service".into(),
                role: Role::Admin,
                connection: None,
            }));
        }
        let identity = ctx.verifier.verify(token).map_err(|_| unauthorized())?;
        if identity.role != Role::Admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "admin role required",
            ));
        }
        Ok(Self(Actor {
            user_id: identity.user_id,
            role: identity.role,
            connection: None,
        }))
    }
}
