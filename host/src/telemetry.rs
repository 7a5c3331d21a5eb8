//! Logs (tracing, to stderr) and metrics (Prometheus recorder).

use std::collections::BTreeMap;

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

/// Cumulative histogram buckets: (upper bound in seconds, count), by bound,
/// `+Inf` last.
pub type Buckets = Vec<(f64, f64)>;

/// One plugin's series, summed over its hooks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginReadings {
    /// `chat_plugin_calls_total`.
    pub calls: f64,
    /// `chat_plugin_call_seconds`.
    pub call_buckets: Buckets,
    /// `chat_plugin_verdicts_total`, by `<hook>:<verdict>`.
    pub verdicts: BTreeMap<String, f64>,
    /// `chat_plugin_faults_total`.
    pub faults: f64,
    /// `chat_plugin_fail_policy_total`.
    pub fail_policy_applied: f64,
}

/// What the live dashboard reads back from this instance's own metrics (the
/// `metrics` facade has no read side; the exporter's text is the one record).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    /// `chat_messages_sent_total`.
    pub messages_sent: f64,
    /// `chat_socket_event_seconds` of `chat:send-message`.
    pub send_buckets: Buckets,
    /// Each loaded plugin's series, by name.
    pub plugins: BTreeMap<String, PluginReadings>,
}

/// One sample of an exposition: name, labels, value.
type Sample<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// One sample line of an exposition.
fn sample(line: &str) -> Option<Sample<'_>> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse::<f64>().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    // Label values here are plugin names, hooks, verdicts and event names:
    // none holds a comma or an escaped quote.
    let labels = labels
        .split(',')
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k, v.strip_prefix('"')?.strip_suffix('"')?))
        })
        .collect();
    Some((name, labels, value))
}

fn label<'a>(labels: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Adds `count` to the bucket of bound `le` (summing series of several hooks).
fn add_bucket(buckets: &mut Buckets, le: &str, count: f64) {
    let bound = le.parse().unwrap_or(f64::INFINITY);
    match buckets.iter_mut().find(|(b, _)| *b == bound) {
        Some((_, n)) => *n += count,
        None => buckets.push((bound, count)),
    }
}

/// The [`Readings`] of a rendered Prometheus exposition.
pub fn readings(exposition: &str) -> Readings {
    let mut out = Readings::default();
    for (name, labels, value) in exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(sample)
    {
        let plugin = label(&labels, "plugin");
        match (name, plugin) {
            ("chat_messages_sent_total", _) => out.messages_sent = value,
            ("chat_socket_event_seconds_bucket", _)
                if label(&labels, "event") == Some("chat:send-message") =>
            {
                add_bucket(
                    &mut out.send_buckets,
                    label(&labels, "le").unwrap_or("+Inf"),
                    value,
                );
            }
            ("chat_plugin_calls_total", Some(p)) => {
                out.plugins.entry(p.to_owned()).or_default().calls += value;
            }
            ("chat_plugin_call_seconds_bucket", Some(p)) => add_bucket(
                &mut out.plugins.entry(p.to_owned()).or_default().call_buckets,
                label(&labels, "le").unwrap_or("+Inf"),
                value,
            ),
            ("chat_plugin_verdicts_total", Some(p)) => {
                let key = format!(
                    "{}:{}",
                    label(&labels, "hook").unwrap_or("?"),
                    label(&labels, "verdict").unwrap_or("?")
                );
                *out.plugins
                    .entry(p.to_owned())
                    .or_default()
                    .verdicts
                    .entry(key)
                    .or_default() += value;
            }
            ("chat_plugin_faults_total", Some(p)) => {
                out.plugins.entry(p.to_owned()).or_default().faults += value;
            }
            ("chat_plugin_fail_policy_total", Some(p)) => {
                out.plugins
                    .entry(p.to_owned())
                    .or_default()
                    .fail_policy_applied += value;
            }
            _ => {}
        }
    }
    let by_bound = |b: &mut Buckets| b.sort_by(|x, y| x.0.total_cmp(&y.0));
    by_bound(&mut out.send_buckets);
    for p in out.plugins.values_mut() {
        by_bound(&mut p.call_buckets);
    }
    out
}

/// The `q` quantile (0-1) of the observations between two readings of
/// cumulative buckets, as the upper bound of the bucket it falls in (seconds);
/// `None` without observations, infinite past the last finite bound.
pub fn quantile(newer: &[(f64, f64)], older: &[(f64, f64)], q: f64) -> Option<f64> {
    let count = |buckets: &[(f64, f64)], bound: f64| {
        buckets
            .iter()
            .find(|(b, _)| *b == bound)
            .map_or(0.0, |(_, n)| *n)
    };
    let deltas: Vec<(f64, f64)> = newer
        .iter()
        .map(|&(bound, n)| (bound, n - count(older, bound)))
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    deltas
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map(|(bound, _)| *bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = "\
# TYPE chat_messages_sent_total counter
chat_messages_sent_total 42
chat_socket_event_seconds_bucket{event=\"chat:join\",le=\"0.001\"} 9
chat_socket_event_seconds_bucket{event=\"chat:send-message\",le=\"0.005\"} 30
chat_socket_event_seconds_bucket{event=\"chat:send-message\",le=\"0.001\"} 10
chat_socket_event_seconds_bucket{event=\"chat:send-message\",le=\"+Inf\"} 40
chat_plugin_calls_total{plugin=\"blocklist\",hook=\"access\"} 7
chat_plugin_calls_total{plugin=\"blocklist\",hook=\"events\"} 3
chat_plugin_call_seconds_bucket{plugin=\"blocklist\",hook=\"access\",le=\"0.001\"} 6
chat_plugin_call_seconds_bucket{plugin=\"blocklist\",hook=\"access\",le=\"+Inf\"} 7
chat_plugin_call_seconds_bucket{plugin=\"blocklist\",hook=\"events\",le=\"0.001\"} 3
chat_plugin_call_seconds_bucket{plugin=\"blocklist\",hook=\"events\",le=\"+Inf\"} 3
chat_plugin_verdicts_total{plugin=\"blocklist\",hook=\"access\",verdict=\"deny\"} 2
chat_plugin_faults_total{plugin=\"blocklist\",hook=\"access\",fault=\"timeout\"} 1
chat_plugin_fail_policy_total{plugin=\"blocklist\",hook=\"access\",policy=\"open\"} 1
";

    #[test]
    fn reads_the_sent_counter_the_send_buckets_and_each_plugin_summed_over_hooks() {
        let r = readings(EXPOSITION);
        assert_eq!(r.messages_sent, 42.0);
        assert_eq!(
            r.send_buckets,
            vec![(0.001, 10.0), (0.005, 30.0), (f64::INFINITY, 40.0)]
        );
        let blocklist = &r.plugins["blocklist"];
        assert_eq!(blocklist.calls, 10.0);
        assert_eq!(
            blocklist.call_buckets,
            vec![(0.001, 9.0), (f64::INFINITY, 10.0)]
        );
        assert_eq!(blocklist.verdicts["access:deny"], 2.0);
        assert_eq!(
            (blocklist.faults, blocklist.fail_policy_applied),
            (1.0, 1.0)
        );
    }

    #[test]
    fn quantiles_come_from_the_observations_between_two_readings() {
        let older = vec![(0.001, 10.0), (0.005, 10.0), (f64::INFINITY, 10.0)];
        let newer = readings(EXPOSITION).send_buckets;
        // Between them: 20 observations in (1, 5] ms and 10 above 5 ms.
        assert_eq!(quantile(&newer, &older, 0.5), Some(0.005));
        assert_eq!(quantile(&newer, &older, 0.99), Some(f64::INFINITY));
        assert_eq!(quantile(&newer, &newer, 0.5), None, "nothing happened");
    }
}
