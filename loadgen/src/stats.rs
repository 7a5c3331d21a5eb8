//! Latency histograms, live counters, the once-a-second progress line, and
//! the result written as JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use crate::ledger::Tally;

/// A latency histogram in microseconds (1 µs to 1 h, 3 significant digits), shareable.
pub struct Latency(Mutex<Histogram<u64>>);

impl Default for Latency {
    fn default() -> Self {
        Self(Mutex::new(
            Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"),
        ))
    }
}

impl Latency {
    /// Records one duration (clamped to the histogram's range).
    pub fn record(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.0.lock().expect("histogram").saturating_record(micros);
    }

    /// Count, mean and percentiles so far, in milliseconds.
    pub fn summary(&self) -> Summary {
        let h = self.0.lock().expect("histogram");
        let ms = |micros: u64| micros as f64 / 1000.0;
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} mean {:.2} p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2} max {:.2} ms",
            self.count, self.mean, self.p50, self.p90, self.p99, self.p999, self.max
        )
    }
}

/// Live counters of a run, shared by every task.
#[derive(Default)]
pub struct RunStats {
    /// Sockets connected (after `chat:ready`).
    pub connected: AtomicU64,
    /// Connection attempts that failed.
    pub connect_failed: AtomicU64,
    /// Messages handed to a socket.
    pub sent: AtomicU64,
    /// Sends answered `{ ok: true }`.
    pub acked: AtomicU64,
    /// First arrivals of expected messages.
    pub received: AtomicU64,
    /// Errors by code: connect failures (`connect:<kind>`), join and send acks.
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Connect latency: scheduled start to `chat:ready`.
    pub connect: Latency,
    /// Send latency: intended send time to the ack.
    pub ack: Latency,
    /// Delivery latency: intended send time to the arrival at a recipient.
    pub receive: Latency,
}

impl RunStats {
    /// Counts one error under `code`.
    pub fn error(&self, code: impl Into<String>) {
        self.error_n(code, 1);
    }

    /// Counts `n` errors under `code`.
    pub fn error_n(&self, code: impl Into<String>, n: u64) {
        *self
            .errors
            .lock()
            .expect("error counts")
            .entry(code.into())
            .or_default() += n;
    }

    /// A copy of the error counts.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().expect("error counts").clone()
    }

    /// One progress line: sockets, and message counts and latencies once sending started.
    pub fn progress_line(&self, elapsed: Duration) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let errors: u64 = self.errors().values().sum();
        let head = format!(
            "[{:6.1}s] conn {} (failed {}) errors {}",
            elapsed.as_secs_f64(),
            get(&self.connected),
            get(&self.connect_failed),
            errors,
        );
        if get(&self.sent) == 0 {
            let c = self.connect.summary();
            return format!("{head} | connect p50 {:.1} p99 {:.1} ms", c.p50, c.p99);
        }
        let (ack, recv) = (self.ack.summary(), self.receive.summary());
        format!(
            "{head} | sent {} acked {} recv {} | ack p50 {:.1} p99 {:.1} ms | recv p50 {:.1} p99 {:.1} ms",
            get(&self.sent),
            get(&self.acked),
            get(&self.received),
            ack.p50,
            ack.p99,
            recv.p50,
            recv.p99,
        )
    }
}

/// Prints [`RunStats::progress_line`] to stderr once a second until aborted.
pub fn spawn_progress(
    stats: std::sync::Arc<RunStats>,
    started: Instant,
    quiet: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if quiet {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            eprintln!("{}", stats.progress_line(started.elapsed()));
        }
    })
}

/// Resident set size of a process in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Server memory around a run, when `--server-pid` was given.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerMemory {
    /// RSS before any socket connected.
    pub rss_before_kib: u64,
    /// RSS with every socket connected (connect-storm) or at the end of the run.
    pub rss_after_kib: u64,
    /// (after - before) / connected sockets.
    pub rss_per_socket_kib: f64,
}

/// Message counts and rates of a messaging run.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Messages {
    /// Messages handed to sockets.
    pub sent: u64,
    /// Sends answered `{ ok: true }`.
    pub acked: u64,
    /// Delivery accounting.
    #[serde(flatten)]
    pub tally: Tally,
    /// Sends per second, from the first intended send to the last actual one.
    pub sent_per_sec: f64,
    /// Successful acks per second, from the first intended send to the last ack.
    pub acked_per_sec: f64,
    /// First arrivals per second, from the first intended send to the last arrival.
    pub received_per_sec: f64,
    /// Faults injected on purpose (`--fault-drop-every`, `--fault-dup-every`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injected: Option<Injected>,
}

/// Arrivals tampered with on purpose, to check the accounting.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Injected {
    /// Arrivals hidden from the ledger: each must show up as lost.
    pub dropped: u64,
    /// Arrivals counted twice: each must show up as duplicated.
    pub duplicated: u64,
}

/// The result of a run, as written by `--json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `connect-storm`, `pairs` or `room`.
    pub scenario: String,
    /// Server address.
    pub url: String,
    /// Id prefix of every user, thread and message of the run.
    pub prefix: String,
    /// The scenario's parameters.
    pub params: Value,
    /// Sockets the run wanted.
    pub sockets: u64,
    /// Sockets that reached `chat:ready`.
    pub connected: u64,
    /// Connection attempts that failed.
    pub connect_failed: u64,
    /// API calls retried during setup (answered 500/503, e.g. a busy database).
    pub setup_retries: u64,
    /// Seconds spent creating users and threads through the API.
    pub setup_sec: f64,
    /// Seconds from the first connect to the last `chat:ready`.
    pub connect_phase_sec: f64,
    /// Seconds of the send phase (0 for connect-storm).
    pub send_phase_sec: f64,
    /// Seconds spent waiting for late deliveries once every ack was in.
    pub drain_sec: f64,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
    /// Latencies in milliseconds: `connect`, and for messaging runs `ack` and `receive`.
    pub latency_ms: BTreeMap<String, Summary>,
    /// Message accounting (messaging runs).
    pub messages: Option<Messages>,
    /// Server memory (with `--server-pid`).
    pub server: Option<ServerMemory>,
    /// The load generator's own RSS at the end, KiB.
    pub loadgen_rss_kib: Option<u64>,
}

impl Report {
    /// Prints the human summary to stdout.
    pub fn print(&self) {
        println!(
            "== {} against {} (prefix {}) ==",
            self.scenario, self.url, self.prefix
        );
        println!("params: {}", self.params);
        println!(
            "sockets: {} wanted, {} connected, {} failed; setup {:.2}s ({} calls retried), connect phase {:.2}s",
            self.sockets,
            self.connected,
            self.connect_failed,
            self.setup_sec,
            self.setup_retries,
            self.connect_phase_sec
        );
        for (name, s) in &self.latency_ms {
            println!("{name:>8} latency: {s}");
        }
        if let Some(m) = &self.messages {
            let t = &m.tally;
            println!(
                "messages: sent {} ({:.1}/s over {:.2}s), acked {} ({:.1}/s), drain {:.2}s",
                m.sent,
                m.sent_per_sec,
                self.send_phase_sec,
                m.acked,
                m.acked_per_sec,
                self.drain_sec
            );
            println!(
                "delivery: expected {} received {} lost {} duplicated {} unexpected {} withdrawn {} ({:.1} deliveries/s)",
                t.expected,
                t.received,
                t.lost,
                t.duplicated,
                t.unexpected,
                t.withdrawn,
                m.received_per_sec
            );
        }
        if !self.errors.is_empty() {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!("errors: {}", list.join(" "));
        }
        if let Some(s) = &self.server {
            println!(
                "server RSS: {} KiB before, {} KiB after, {:.1} KiB per socket",
                s.rss_before_kib, s.rss_after_kib, s.rss_per_socket_kib
            );
        }
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_are_in_milliseconds() {
        let l = Latency::default();
        assert_eq!(l.summary().count, 0);
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert!((s.p50 - 50.0).abs() < 0.1, "{s}");
        assert!((s.p99 - 99.0).abs() < 0.1, "{s}");
        assert!((s.max - 100.0).abs() < 0.1, "{s}");
        assert!((s.mean - 50.5).abs() < 0.1, "{s}");
    }

    #[test]
    fn reads_our_own_rss() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert_eq!(rss_kib(u32::MAX), None);
    }
}
