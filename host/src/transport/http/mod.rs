//! HTTP: the service API (`/api`), the administration API of plugins, audit
//! trails, thread and user search and the live overview (`/admin`), operations
//! endpoints (`/healthz`, `/readyz`, `/metrics`), the OpenAPI document
//! (`/openapi.json`) and the browser pages (`/console`, `/demo`, [`console`]).
//! Every path under `/api` and `/admin`,
//! routed or not (with or without a trailing slash), passes the bearer gate
//! first; an unknown path then answers 404. [`with_cors`] wraps the whole
//! listener (these routes and the Socket.IO layer) in the configured CORS
//! policy.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::{TokenIssuer, TokenVerifier};
use crate::chat::ChatService;
use crate::plugins::admin::PluginAdmin;

mod admin;
mod api;
mod auth;
mod console;
mod cors;
mod error;
mod live;
mod openapi;
mod ops;
mod plugins;

pub use console::Surfaces;
pub use cors::with_cors;
pub use error::ApiError;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpContext {
    /// The use cases.
    pub chat: Arc<ChatService>,
    /// The plugin and audit administration service.
    pub plugins: Arc<PluginAdmin>,
    /// Verifies admin JWTs used as bearer tokens.
    pub verifier: Arc<TokenVerifier>,
    /// Signs the demo's and the dev console's tokens.
    pub issuer: Arc<TokenIssuer>,
    /// Which browser pages are served.
    pub surfaces: Surfaces,
    /// The service bearer token.
    pub service_token: Arc<str>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// When this instance started (the uptime metric).
    pub started: Instant,
    /// Cancelled when shutdown begins: `/readyz` answers 503 `draining` from then on.
    pub draining: CancellationToken,
}

/// Answers a service-API request within the use-case deadline
/// ([`ChatService::bounded`]): 503 `unavailable` when a backend stalls.
async fn bounded(State(ctx): State<HttpContext>, request: Request, next: Next) -> Response {
    ctx.chat
        .bounded(async move { Ok(next.run(request).await) })
        .await
        .unwrap_or_else(|e| ApiError::from(e).into_response())
}

/// Every HTTP route of the server.
pub fn router(ctx: HttpContext) -> Router {
    let gate = middleware::from_fn_with_state(ctx.clone(), auth::require_service_caller);
    let deadline = middleware::from_fn_with_state(ctx.clone(), bounded);
    Router::new()
        .nest("/api", api::router().layer(deadline.clone()))
        .nest(
            "/admin",
            plugins::router()
                .merge(live::router())
                .merge(admin::router().layer(deadline)),
        )
        .fallback(error::no_route)
        .layer(gate)
        .merge(ops::router())
        .merge(openapi::router())
        .merge(console::router(ctx.surfaces))
        .with_state(ctx)
}
