//! Logs (tracing, to stderr) and metrics (Prometheus recorder).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Structured logs to stderr, filtered by `RUST_LOG` (default `info`); stdout is
/// kept for the one-line startup summary scripts read.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,socketioxide=warn,engineioxide=warn"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(UnknownAcks.with_filter(filter_fn(UnknownAcks::is_callsite)))
        .init();
}

/// Counts acks of ids the server is not waiting for (never sent, answered
/// twice, or after the ack timeout) as `chat_unknown_acks_total`. socketioxide
/// drops them with one debug event and offers no other hook; that event is the
/// only one of `socketioxide::socket` with a `sid` field (an e2e test checks
/// the counter, so an upgrade that changes it fails the suite).
struct UnknownAcks;

impl UnknownAcks {
    fn is_callsite(meta: &tracing::Metadata<'_>) -> bool {
        meta.target() == "socketioxide::socket"
            && *meta.level() == tracing::Level::DEBUG
            && meta.fields().field("sid").is_some()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for UnknownAcks {
    fn on_event(
        &self,
        _event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        metrics::counter!("chat_unknown_acks_total").increment(1);
    }
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
