//! Logs (tracing, to stderr) and metrics (Prometheus recorder).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Structured logs to stderr, filtered by `RUST_LOG` (default `info`); stdout is
/// kept for the one-line startup summary scripts read.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,socketioxide=warn,engineioxide=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Installs the global metrics recorder and returns the handle `/metrics` renders.
/// The build, the uptime and the connected sockets have samples from the start,
/// so a fresh instance's `/metrics` is not empty.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    const LATENCY_BUCKETS: &[f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .install_recorder()?;
    metrics::describe_gauge!(
        "chat_build_info",
        "Always 1; the version label is the build's."
    );
    metrics::gauge!("chat_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics::describe_gauge!(
        "chat_uptime_seconds",
        "Seconds since this instance started."
    );
    metrics::gauge!("chat_uptime_seconds").set(0.0);
    metrics::describe_gauge!("chat_connections", "Sockets connected to this instance.");
    metrics::gauge!("chat_connections").set(0.0);
    Ok(handle)
}
