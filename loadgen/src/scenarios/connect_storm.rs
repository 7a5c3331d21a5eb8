//! `connect-storm`: N sockets connecting at R per second; connect latency
//! (scheduled start to `chat:ready`), failures, and the server's RSS per socket.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::{Member, Options, close_all, connect_all, latencies, server_rss, user};
use crate::api::Api;
use crate::stats::{Report, RunStats, ServerMemory, spawn_progress};

/// Creates `sockets` users, connects them at `rate` per second, holds them
/// open for `hold`, measures, and hangs up.
pub async fn run(opts: &Options, sockets: usize, rate: f64, hold: Duration) -> Result<Report> {
    let members: Vec<Member> = (0..sockets)
        .map(|i| Member {
            user: user(&opts.prefix, i),
            joins: Vec::new(),
        })
        .collect();
    let t = Instant::now();
    let users: Vec<_> = members.iter().map(|m| m.user.clone()).collect();
    let api = Api::new(&opts.url, &opts.service_token)?;
    api.setup(&users, &[]).await?;
    let setup = t.elapsed();
    eprintln!("setup: {sockets} users in {:.2}s", setup.as_secs_f64());

    let stats = Arc::new(RunStats::default());
    let rss_before = server_rss(opts);
    let progress = spawn_progress(stats.clone(), Instant::now(), opts.quiet);
    let connected = connect_all(opts, &stats, &members, rate, |_| Box::new(|_, _, _| {})).await?;
    tokio::time::sleep(hold).await;
    let rss_after = server_rss(opts);
    progress.abort();
    let still_open = connected
        .sockets
        .iter()
        .flatten()
        .filter(|s| !s.is_closed())
        .count();
    let n = stats.connected.load(Ordering::Relaxed);
    if (still_open as u64) < n {
        stats.error_n("socket:disconnected", n - still_open as u64);
    }
    let connect_phase = connected.elapsed;
    close_all(connected.sockets).await;

    let server = match (rss_before, rss_after) {
        (Some(before), Some(after)) => Some(ServerMemory {
            rss_before_kib: before,
            rss_after_kib: after,
            rss_per_socket_kib: (after as f64 - before as f64) / n.max(1) as f64,
        }),
        _ => None,
    };
    Ok(Report {
        scenario: "connect-storm".into(),
        url: opts.url.clone(),
        prefix: opts.prefix.clone(),
        params: json!({ "sockets": sockets, "rate": rate, "holdSec": hold.as_secs_f64() }),
        sockets: sockets as u64,
        connected: n,
        connect_failed: stats.connect_failed.load(Ordering::Relaxed),
        setup_retries: api.retries(),
        setup_sec: setup.as_secs_f64(),
        connect_phase_sec: connect_phase.as_secs_f64(),
        send_phase_sec: 0.0,
        drain_sec: 0.0,
        errors: stats.errors(),
        latency_ms: latencies(&stats),
        messages: None,
        server,
        loadgen_rss_kib: crate::stats::rss_kib(std::process::id()),
    })
}
