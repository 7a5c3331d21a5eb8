//! The workloads: `connect-storm`, `pairs` and `room`, and what they share
//! (run options, connecting sockets at a fixed rate).

pub mod connect_storm;
pub mod messaging;
pub mod pairs;
pub mod room;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::api::{User, mint_token};
use crate::ledger::SocketId;
use crate::sio::{EventHandler, Socket};
use crate::stats::RunStats;

/// Longest wait for one socket to reach `chat:ready`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Options every scenario shares.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server base address, `http://host:port`.
    pub url: String,
    /// Bearer token of the service API.
    pub service_token: String,
    /// HS256 secret of client tokens.
    pub jwt_secret: String,
    /// Prefix of every id the run creates.
    pub prefix: String,
    /// Sockets connected per second before a messaging run.
    pub connect_rate: f64,
    /// Longest wait for an ack.
    pub ack_timeout: Duration,
    /// Longest wait for late deliveries after the last send.
    pub grace: Duration,
    /// The server's process id, to report its RSS.
    pub server_pid: Option<u32>,
    /// No progress lines.
    pub quiet: bool,
    /// Faults to inject on the receiving side (self-test of the accounting).
    pub faults: Faults,
}

/// Receiving-side fault injection: proves against real traffic that hidden
/// arrivals count as lost and doubled ones as duplicated. 0 turns a fault off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Hide every arrival of each sender's every n-th message (`(seq + 1) % n == 0`).
    pub drop_every: u32,
    /// Feed every arrival of each sender's every n-th message to the ledger twice.
    pub dup_every: u32,
}

/// One socket of a run: who it connects as and which threads it joins.
#[derive(Debug, Clone)]
pub struct Member {
    /// The user it authenticates as.
    pub user: User,
    /// Threads it joins (`chat:join`) after `chat:ready`.
    pub joins: Vec<String>,
}

/// The `i`th user of a run: `<prefix>-u<i>`, clients and freelancers alternating.
pub fn user(prefix: &str, i: usize) -> User {
    User {
        id: format!("{prefix}-u{i}"),
        role: if i.is_multiple_of(2) {
            "client"
        } else {
            "freelancer"
        },
    }
}

/// Connected sockets (by index; `None` where connecting or joining failed)
/// and the wall time of the connect phase.
pub struct Connected {
    /// One slot per member.
    pub sockets: Vec<Option<Socket>>,
    /// First scheduled connect to the last finished one.
    pub elapsed: Duration,
}

/// Connects every member at `rate` sockets per second (open loop: each
/// attempt starts at its scheduled time whatever the others do), waits for
/// `chat:ready`, joins the member's threads. Connect latency (scheduled start
/// to `chat:ready`) goes to `stats.connect`; failures are counted as
/// `connect:<kind>` and `join:<code>` errors.
pub async fn connect_all(
    opts: &Options,
    stats: &Arc<RunStats>,
    members: &[Member],
    rate: f64,
    mut handler_for: impl FnMut(SocketId) -> EventHandler,
) -> anyhow::Result<Connected> {
    let ws_url = crate::sio::socket_url(&opts.url)?;
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, member) in members.iter().enumerate() {
        let scheduled = started + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let token = mint_token(&opts.jwt_secret, &member.user)?;
        let (ws_url, stats, joins) = (ws_url.clone(), stats.clone(), member.joins.clone());
        let handler = handler_for(i as SocketId);
        let ack_timeout = opts.ack_timeout;
        tasks.spawn(async move {
            let auth = json!({ "token": token });
            let attempt = Socket::connect(&ws_url, &auth, Some("chat:ready"), handler);
            let socket = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
                Ok(Ok((socket, _ready))) => socket,
                Ok(Err(e)) => {
                    stats.error(format!("connect:{}", e.kind()));
                    stats
                        .connect_failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return (i, None);
                }
                Err(_) => {
                    stats.error("connect:timeout");
                    stats
                        .connect_failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return (i, None);
                }
            };
            stats.connect.record(scheduled.elapsed());
            for thread in &joins {
                let answer = socket
                    .request("chat:join", &json!({ "threadId": thread }), ack_timeout)
                    .await;
                if let Err(code) = ack_outcome(answer) {
                    stats.error(format!("join:{code}"));
                    stats
                        .connect_failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    socket.close().await;
                    return (i, None);
                }
            }
            stats
                .connected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (i, Some(socket))
        });
    }
    let mut sockets: Vec<Option<Socket>> = members.iter().map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, socket) = done?;
        sockets[i] = socket;
    }
    Ok(Connected {
        sockets,
        elapsed: started.elapsed(),
    })
}

/// The error code of an ack: `Ok` for `{ ok: true }`, else the server's
/// `error.code` (or `timeout` / `disconnected` / `malformed`).
pub fn ack_outcome(answer: Result<Value, crate::sio::AckError>) -> Result<Value, String> {
    match answer {
        Ok(v) if v.get("ok") == Some(&Value::Bool(true)) => Ok(v),
        Ok(v) => Err(v
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("malformed")
            .to_owned()),
        Err(e) => Err(e.code().to_owned()),
    }
}

/// Closes every socket, all at once.
pub async fn close_all(sockets: Vec<Option<Socket>>) {
    let mut tasks = JoinSet::new();
    for socket in sockets.into_iter().flatten() {
        tasks.spawn(socket.close());
    }
    while tasks.join_next().await.is_some() {}
}

/// Server RSS in KiB, if a pid was given and readable.
pub fn server_rss(opts: &Options) -> Option<u64> {
    opts.server_pid.and_then(crate::stats::rss_kib)
}

/// Summaries of the non-empty latency histograms, by name.
pub fn latencies(stats: &RunStats) -> BTreeMap<String, crate::stats::Summary> {
    [
        ("connect", &stats.connect),
        ("ack", &stats.ack),
        ("receive", &stats.receive),
    ]
    .into_iter()
    .map(|(name, l)| (name.to_owned(), l.summary()))
    .filter(|(_, s)| s.count > 0)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sio::AckError;

    #[test]
    fn ack_outcomes_name_the_error_code() {
        assert!(ack_outcome(Ok(json!({"ok": true, "message": {}}))).is_ok());
        assert_eq!(
            ack_outcome(Ok(json!({"ok": false, "error": {"code": "rate_limited"}}))),
            Err("rate_limited".into())
        );
        assert_eq!(ack_outcome(Ok(json!("?"))), Err("malformed".into()));
        assert_eq!(ack_outcome(Err(AckError::Timeout)), Err("timeout".into()));
    }
}
