//! Operations endpoints: liveness, readiness, Prometheus metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::HttpContext;

/// Longest a readiness probe waits for each backend.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn router() -> Router<HttpContext> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(ctx): State<HttpContext>) -> impl IntoResponse {
    let ready = ctx.chat.readiness(PROBE_TIMEOUT).await;
    let draining = ctx.draining.is_cancelled();
    let status = if ready.database.is_ok() && ready.state.is_ok() && !draining {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |probe: &Result<(), String>| if probe.is_ok() { "ok" } else { "unavailable" };
    let mut body = json!({
        "database": word(&ready.database),
        "state": word(&ready.state),
        "draining": draining,
    });
    // Why a backend is unavailable, for whoever reads the probe.
    let errors: serde_json::Map<String, serde_json::Value> =
        [("database", &ready.database), ("state", &ready.state)]
            .into_iter()
            .filter_map(|(name, probe)| Some((name.to_owned(), probe.clone().err()?.into())))
            .collect();
    if !errors.is_empty() {
        body["errors"] = errors.into();
    }
    (status, Json(body))
}

async fn metrics(State(ctx): State<HttpContext>) -> impl IntoResponse {
    metrics::gauge!("chat_uptime_seconds").set(ctx.started.elapsed().as_secs_f64());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ctx.metrics.render(),
    )
}
