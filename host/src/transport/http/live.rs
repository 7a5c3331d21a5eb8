//! The live dashboard's feed: `GET /admin/overview` (one look, JSON) and
//! `GET /admin/live` (the same every second, as server-sent events, until the
//! client goes). Rates and latencies cover the last [`WINDOW`] seconds of this
//! instance; health, the stream's length and the instances are the cluster's.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::Serialize;
use utoipa::ToSchema;

use super::HttpContext;
use super::error::ErrorBody;
use crate::domain::rfc3339;
use crate::telemetry::{PluginReadings, Readings, quantile, readings};

/// Seconds of history behind a rate or a latency.
const WINDOW: usize = 10;
/// How often `/admin/live` sends.
const EVERY: Duration = Duration::from_secs(1);

/// A live instance of the cluster.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// Its id in the presence registry (`local` on the embedded backend).
    pub id: String,
    /// Its last presence refresh (RFC 3339).
    pub seen_at: String,
}

/// One plugin's calls on this instance.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginLiveView {
    /// The plugin.
    pub name: String,
    /// Hook calls per second over the last 10 s.
    pub calls_per_second: f64,
    /// Median call time over the last 10 s (its bucket's upper bound, ms; null without calls).
    pub call_p50_ms: Option<f64>,
    /// The same, 99th percentile (null past the last bucket, 2.5 s, or without calls).
    pub call_p99_ms: Option<f64>,
    /// Verdicts since this instance started, by `<hook>:<verdict>` (`access:deny`, ...).
    #[schema(value_type = std::collections::BTreeMap<String, f64>)]
    pub verdicts: BTreeMap<String, f64>,
    /// Faults since this instance started.
    pub faults: f64,
    /// Events the fail policy decided since this instance started.
    pub fail_policy_applied: f64,
}

/// One look at the cluster from the instance that answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewView {
    /// When it was taken (RFC 3339).
    pub at: String,
    /// Sockets connected to this instance.
    pub sockets: i64,
    /// Users with a socket on this instance.
    pub users: usize,
    /// Messages stored through this instance per second, over the last 10 s.
    pub messages_per_second: f64,
    /// Send acknowledgement latency on this instance over the last 10 s, median
    /// (the upper bound of its bucket, ms; null without sends).
    pub send_ack_p50_ms: Option<f64>,
    /// The same, 99th percentile (null past the last bucket, 2.5 s, or without sends).
    pub send_ack_p99_ms: Option<f64>,
    /// Entries in the event stream (null when the state store does not answer).
    pub stream_length: Option<u64>,
    /// The database answered within 500 ms.
    pub database_up: bool,
    /// The state store (Redis, or memory) answered within 500 ms.
    pub state_up: bool,
    /// The live instances of the cluster.
    pub instances: Vec<InstanceView>,
    /// Each loaded plugin, by name.
    pub plugins: Vec<PluginLiveView>,
}

/// What the rates are computed from: readings of the last seconds.
struct Samples(VecDeque<(Instant, Readings)>);

impl Samples {
    fn new() -> Self {
        Self(VecDeque::with_capacity(WINDOW + 1))
    }

    /// Adds a reading; returns the oldest kept, the newest, and the seconds between.
    fn push(&mut self, now: Instant, r: Readings) -> (&Readings, &Readings, f64) {
        self.0.push_back((now, r));
        while self.0.len() > WINDOW + 1 {
            self.0.pop_front();
        }
        let (first_at, first) = self.0.front().expect("just pushed");
        let (last_at, last) = self.0.back().expect("just pushed");
        (first, last, last_at.duration_since(*first_at).as_secs_f64())
    }
}

/// A count's change per second (0 over no time).
fn per_second(newer: f64, older: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        ((newer - older) / secs * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// A quantile in ms, null when there were no observations or past the last bound.
fn ms(newer: &[(f64, f64)], older: &[(f64, f64)], q: f64) -> Option<f64> {
    quantile(newer, older, q)
        .filter(|s| s.is_finite())
        .map(|s| s * 1000.0)
}

async fn look(ctx: &HttpContext, samples: &mut Samples) -> OverviewView {
    let overview = ctx.chat.overview().await;
    let (first, last, secs) = samples.push(Instant::now(), readings(&ctx.metrics.render()));
    let none = PluginReadings::default();
    let loaded: Vec<String> = ctx
        .plugins
        .list()
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    let plugins = last
        .plugins
        .iter()
        .filter(|(name, _)| loaded.contains(name))
        .map(|(name, now)| {
            let then = first.plugins.get(name).unwrap_or(&none);
            PluginLiveView {
                name: name.clone(),
                calls_per_second: per_second(now.calls, then.calls, secs),
                call_p50_ms: ms(&now.call_buckets, &then.call_buckets, 0.5),
                call_p99_ms: ms(&now.call_buckets, &then.call_buckets, 0.99),
                verdicts: now.verdicts.clone(),
                faults: now.faults,
                fail_policy_applied: now.fail_policy_applied,
            }
        })
        .collect();
    OverviewView {
        at: rfc3339(crate::domain::now_ms()),
        sockets: overview.sockets,
        users: overview.users,
        messages_per_second: per_second(last.messages_sent, first.messages_sent, secs),
        send_ack_p50_ms: ms(&last.send_buckets, &first.send_buckets, 0.5),
        send_ack_p99_ms: ms(&last.send_buckets, &first.send_buckets, 0.99),
        stream_length: overview.stream_length,
        database_up: overview.database,
        state_up: overview.state,
        instances: overview
            .instances
            .into_iter()
            .map(|i| InstanceView {
                id: i.id,
                seen_at: rfc3339(i.seen_at_ms),
            })
            .collect(),
        plugins,
    }
}

/// The routes, relative to `/admin`.
pub(super) fn router() -> Router<HttpContext> {
    Router::new()
        .route("/overview", get(overview))
        .route("/live", get(live))
}

/// One look: this instance's sockets, users, message rate and send latency,
/// the backends' health, the event stream's length and the live instances.
/// (The rates need two readings: a single look reports no rate.)
#[utoipa::path(get, path = "/admin/overview",
    responses((status = 200, body = OverviewView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn overview(State(ctx): State<HttpContext>) -> Json<OverviewView> {
    Json(look(&ctx, &mut Samples::new()).await)
}

/// [`overview`] every second as server-sent events named `overview`, until
/// the client disconnects.
#[utoipa::path(get, path = "/admin/live",
    responses((status = 200, description = "`event: overview` with an OverviewView as `data`, every second", content_type = "text/event-stream", body = OverviewView),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn live(
    State(ctx): State<HttpContext>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = tokio::time::interval(EVERY);
    let stream = futures_util::stream::unfold(
        (ctx, Samples::new(), ticks),
        |(ctx, mut samples, mut ticks)| async move {
            ticks.tick().await;
            let view = look(&ctx, &mut samples).await;
            let event = Event::default()
                .event("overview")
                .json_data(&view)
                .unwrap_or_else(|_| Event::default().comment("unserializable"));
            Some((Ok(event), (ctx, samples, ticks)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
