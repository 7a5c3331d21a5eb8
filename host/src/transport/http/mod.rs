//! HTTP: the service API (`/api`), the plugin and audit administration API
//! (`/admin`), operations endpoints (`/healthz`, `/readyz`, `/metrics`) and the
//! OpenAPI document (`/openapi.json`). Every path under `/api` and `/admin`,
//! routed or not (with or without a trailing slash), passes the bearer gate
//! first; an unknown path then answers 404.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::middleware;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::TokenVerifier;
use crate::chat::ChatService;
use crate::plugins::admin::PluginAdmin;

mod api;
mod auth;
mod error;
mod openapi;
mod ops;
mod plugins;

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
    /// The service bearer token.
    pub service_token: Arc<str>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// When this instance started (the uptime metric).
    pub started: Instant,
}

/// Every HTTP route of the server.
pub fn router(ctx: HttpContext) -> Router {
    let gate = middleware::from_fn_with_state(ctx.clone(), auth::require_service_caller);
    Router::new()
        .nest("/api", api::router())
        .nest("/admin", plugins::router())
        .fallback(error::no_route)
        .layer(gate)
        .merge(ops::router())
        .merge(openapi::router())
        .with_state(ctx)
}
