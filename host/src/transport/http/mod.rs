//! HTTP: the service/admin API (`/api`), operations endpoints (`/healthz`,
//! `/readyz`, `/metrics`) and the OpenAPI document (`/openapi.json`).

use std::sync::Arc;

use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::audit::AuditLog;
use crate::auth::TokenVerifier;
use crate::chat::ChatService;
use crate::plugins::registry::PluginRegistry;
use crate::plugins::sync::PluginSync;

mod admin;
mod api;
mod auth;
mod error;
mod ops;

pub use error::ApiError;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct HttpContext {
    /// The use cases.
    pub chat: Arc<ChatService>,
    /// The loaded plugins.
    pub plugins: Arc<PluginRegistry>,
    /// Stores admin changes of plugins and announces them to every instance.
    pub plugin_sync: Arc<PluginSync>,
    /// The dispute audit trail.
    pub audit: Arc<AuditLog>,
    /// Verifies admin JWTs used as bearer tokens.
    pub verifier: Arc<TokenVerifier>,
    /// The service bearer token.
    pub service_token: Arc<str>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

/// Every HTTP route of the server.
pub fn router(ctx: HttpContext) -> Router {
    Router::new()
        .merge(api::router())
        .merge(admin::router())
        .merge(ops::router())
        .with_state(ctx)
}
