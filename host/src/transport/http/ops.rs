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
    let (db_ok, state_ok) = (ready.database, ready.state);
    let draining = ctx.draining.is_cancelled();
    let status = if db_ok && state_ok && !draining {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    (
        status,
        Json(json!({ "database": word(db_ok), "state": word(state_ok), "draining": draining })),
    )
}

async fn metrics(State(ctx): State<HttpContext>) -> impl IntoResponse {
    metrics::gauge!("chat_uptime_seconds").set(ctx.started.elapsed().as_secs_f64());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ctx.metrics.render(),
    )
}
