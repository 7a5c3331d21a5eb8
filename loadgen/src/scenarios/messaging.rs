//! The messaging engine behind `pairs` and `room`: set up users and threads,
//! connect and join, send on an open-loop schedule, account for every
//! delivery, drain, report.
//!
//! Coordinated omission: each send has an intended time on a fixed schedule
//! (`start + offset + seq * interval`). Ack and delivery latencies are measured
//! from that intended time, so a stalled sender or server shows up as latency
//! instead of as fewer, well-behaved samples.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{Faults, Member, Options, ack_outcome, close_all, connect_all, latencies, server_rss};
use crate::api::{Api, Thread};
use crate::ledger::{Ledger, MsgKey, Receipt, SocketId};
use crate::sio::{EventHandler, Socket, wait_ack};
use crate::stats::{Injected, Messages, Report, RunStats, ServerMemory, spawn_progress};

/// One sending socket.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The sending socket (an index into [`Plan::members`]).
    pub socket: SocketId,
    /// The thread it sends to.
    pub thread: String,
    /// The sockets that must each receive every message it sends.
    pub recipients: Vec<SocketId>,
}

/// A messaging run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name for the report.
    pub scenario: &'static str,
    /// Scenario parameters for the report.
    pub params: Value,
    /// One socket per member.
    pub members: Vec<Member>,
    /// Threads to create.
    pub threads: Vec<Thread>,
    /// Who sends where.
    pub senders: Vec<Sender>,
    /// Messages per second, all senders together.
    pub rate: f64,
    /// Length of the send phase.
    pub duration: Duration,
    /// Message body length in characters.
    pub body_size: usize,
}

/// What every socket's reader and every sender share.
struct Shared {
    ledger: Mutex<Ledger>,
    stats: Arc<RunStats>,
    prefix: String,
    /// Reference point of `last_ack` and `last_receive`.
    epoch: Instant,
    /// Latest successful ack, microseconds after `epoch`.
    last_ack: AtomicU64,
    /// Latest first arrival, microseconds after `epoch`.
    last_receive: AtomicU64,
    faults: Faults,
    /// Arrivals hidden from the ledger by `faults.drop_every`.
    dropped: AtomicU64,
    /// Arrivals fed to the ledger twice by `faults.dup_every`.
    doubled: AtomicU64,
}

impl Shared {
    /// Moves `mark` forward to `at`.
    fn mark(&self, mark: &AtomicU64, at: Instant) {
        let micros = at.saturating_duration_since(self.epoch).as_micros();
        mark.fetch_max(micros as u64, Ordering::Relaxed);
    }

    /// The instant stored in `mark`.
    fn instant(&self, mark: &AtomicU64) -> Instant {
        self.epoch + Duration::from_micros(mark.load(Ordering::Relaxed))
    }

    /// The event handler of socket `me`: accounts every `chat:message`.
    fn handler(self: &Arc<Self>, me: SocketId) -> EventHandler {
        let shared = self.clone();
        Box::new(move |name, data, at| {
            if name != "chat:message" {
                return;
            }
            let key = data
                .pointer("/message/clientMessageId")
                .and_then(Value::as_str)
                .and_then(|id| MsgKey::parse(id, &shared.prefix));
            let mut ledger = shared.ledger.lock().expect("ledger");
            let Some(key) = key else {
                ledger.receive_unknown();
                return;
            };
            let every = |n: u32| n > 0 && (key.seq + 1).is_multiple_of(n);
            if every(shared.faults.drop_every) {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let receipt = ledger.receive(me, key);
            if every(shared.faults.dup_every) && ledger.receive(me, key) == Receipt::Duplicate {
                shared.doubled.fetch_add(1, Ordering::Relaxed);
            }
            if let Receipt::First(intended) = receipt {
                drop(ledger);
                shared.stats.received.fetch_add(1, Ordering::Relaxed);
                shared.mark(&shared.last_receive, at);
                shared
                    .stats
                    .receive
                    .record(at.saturating_duration_since(intended));
            }
        })
    }
}

/// Message body of `client_id`, padded with `x` to `size` characters.
fn body(client_id: &str, size: usize) -> String {
    let mut body = format!("m {client_id} ");
    let pad = size.saturating_sub(body.chars().count());
    body.extend(std::iter::repeat_n('x', pad));
    body
}

/// `n` events over `d`, per second (0 when nothing happened).
fn per_sec(n: u64, d: Duration) -> f64 {
    if n == 0 || d.is_zero() {
        0.0
    } else {
        n as f64 / d.as_secs_f64()
    }
}

/// Runs the plan and returns its report.
pub async fn run(opts: &Options, plan: Plan) -> Result<Report> {
    if plan.rate <= 0.0 || plan.senders.is_empty() {
        bail!("a messaging run needs a positive --rate and at least one sender");
    }
    let stats = Arc::new(RunStats::default());
    let shared = Arc::new(Shared {
        ledger: Mutex::new(Ledger::new()),
        stats: stats.clone(),
        prefix: opts.prefix.clone(),
        epoch: Instant::now(),
        last_ack: AtomicU64::new(0),
        last_receive: AtomicU64::new(0),
        faults: opts.faults,
        dropped: AtomicU64::new(0),
        doubled: AtomicU64::new(0),
    });

    let t = Instant::now();
    let users: Vec<_> = plan.members.iter().map(|m| m.user.clone()).collect();
    let api = Api::new(&opts.url, &opts.service_token)?;
    api.setup(&users, &plan.threads).await?;
    let setup = t.elapsed();
    eprintln!(
        "setup: {} users, {} threads in {:.2}s",
        users.len(),
        plan.threads.len(),
        setup.as_secs_f64()
    );

    let rss_before = server_rss(opts);
    let progress_start = Instant::now();
    let progress = spawn_progress(stats.clone(), progress_start, opts.quiet);
    let connected = connect_all(opts, &stats, &plan.members, opts.connect_rate, |i| {
        shared.handler(i)
    })
    .await?;
    let failed = stats.connect_failed.load(Ordering::Relaxed);
    if failed > 0 {
        progress.abort();
        close_all(connected.sockets).await;
        bail!(
            "{failed} of {} sockets failed to connect or join ({:?}); not sending",
            plan.members.len(),
            stats.errors()
        );
    }
    let sockets: Vec<Arc<Socket>> = connected
        .sockets
        .into_iter()
        .map(|s| Arc::new(s.expect("every socket connected")))
        .collect();

    // Send phase: sender j sends at start + j/rate + seq * (senders/rate).
    let interval = Duration::from_secs_f64(plan.senders.len() as f64 / plan.rate);
    let start = Instant::now() + Duration::from_millis(100);
    let end = start + plan.duration;
    let mut senders = JoinSet::new();
    for (j, sender) in plan.senders.iter().enumerate() {
        let offset = Duration::from_secs_f64(j as f64 / plan.rate);
        let socket = sockets[sender.socket as usize].clone();
        let (shared, sender) = (shared.clone(), sender.clone());
        let (body_size, ack_timeout, prefix) =
            (plan.body_size, opts.ack_timeout, opts.prefix.clone());
        senders.spawn(async move {
            let mut acks = JoinSet::new();
            let mut last = None;
            for seq in 0u32.. {
                let intended = start + offset + interval.mul_f64(f64::from(seq));
                if intended >= end {
                    break;
                }
                tokio::time::sleep_until(intended.into()).await;
                let key = MsgKey {
                    sender: sender.socket,
                    seq,
                };
                let client_id = key.client_id(&prefix);
                let payload = json!({
                    "threadId": sender.thread,
                    "body": body(&client_id, body_size),
                    "clientMessageId": client_id,
                });
                shared
                    .ledger
                    .lock()
                    .expect("ledger")
                    .expect(key, intended, &sender.recipients);
                let answer = socket.emit_with_ack("chat:send-message", &payload);
                shared.stats.sent.fetch_add(1, Ordering::Relaxed);
                last = Some(Instant::now());
                let shared = shared.clone();
                acks.spawn(async move {
                    let answer = wait_ack(answer, ack_timeout).await;
                    let at = answer.as_ref().map(|(_, at)| *at).ok();
                    match ack_outcome(answer.map(|(v, _)| v)) {
                        Ok(_) => {
                            shared.stats.acked.fetch_add(1, Ordering::Relaxed);
                            let at = at.unwrap_or_else(Instant::now);
                            shared.mark(&shared.last_ack, at);
                            shared
                                .stats
                                .ack
                                .record(at.saturating_duration_since(intended));
                        }
                        Err(code) => {
                            // A refused send is not delivered; a lost ack may still be.
                            if code != "timeout" && code != "disconnected" {
                                shared.ledger.lock().expect("ledger").cancel(key);
                            }
                            shared.stats.error(format!("send:{code}"));
                        }
                    }
                });
                while acks.try_join_next().is_some() {}
            }
            while acks.join_next().await.is_some() {}
            last
        });
    }
    let mut last_send = start;
    while let Some(done) = senders.join_next().await {
        if let Some(at) = done? {
            last_send = last_send.max(at);
        }
    }
    let send_phase = last_send.saturating_duration_since(start);

    // Drain: wait for late deliveries, up to the grace period.
    let drain_from = Instant::now();
    while shared.ledger.lock().expect("ledger").outstanding() > 0
        && drain_from.elapsed() < opts.grace
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let drain = drain_from.elapsed();
    let rss_after = server_rss(opts);
    progress.abort();
    if !opts.quiet {
        eprintln!("{}", stats.progress_line(progress_start.elapsed()));
    }
    let disconnected = sockets.iter().filter(|s| s.is_closed()).count();
    if disconnected > 0 {
        stats.error_n("socket:disconnected", disconnected as u64);
    }
    let sockets: Vec<Option<Socket>> = sockets.into_iter().map(Arc::into_inner).collect();
    close_all(sockets).await;

    let tally = shared.ledger.lock().expect("ledger").tally();
    let connected_n = stats.connected.load(Ordering::Relaxed);
    let sent = stats.sent.load(Ordering::Relaxed);
    let acked = stats.acked.load(Ordering::Relaxed);
    let server = match (rss_before, rss_after) {
        (Some(before), Some(after)) => Some(ServerMemory {
            rss_before_kib: before,
            rss_after_kib: after,
            rss_per_socket_kib: (after as f64 - before as f64) / connected_n.max(1) as f64,
        }),
        _ => None,
    };
    let secs = |d: Duration| d.as_secs_f64();
    Ok(Report {
        scenario: plan.scenario.to_owned(),
        url: opts.url.clone(),
        prefix: opts.prefix.clone(),
        params: plan.params,
        sockets: plan.members.len() as u64,
        connected: connected_n,
        connect_failed: 0,
        setup_retries: api.retries(),
        setup_sec: secs(setup),
        connect_phase_sec: secs(connected.elapsed),
        send_phase_sec: secs(send_phase),
        drain_sec: secs(drain),
        errors: stats.errors(),
        latency_ms: latencies(&stats),
        messages: Some(Messages {
            sent,
            acked,
            tally,
            sent_per_sec: per_sec(sent, send_phase),
            acked_per_sec: per_sec(acked, shared.instant(&shared.last_ack) - start),
            injected: (opts.faults != Faults::default()).then(|| Injected {
                dropped: shared.dropped.load(Ordering::Relaxed),
                duplicated: shared.doubled.load(Ordering::Relaxed),
            }),
            received_per_sec: per_sec(tally.received, shared.instant(&shared.last_receive) - start),
        }),
        server,
        loadgen_rss_kib: crate::stats::rss_kib(std::process::id()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_padded_to_size_and_never_empty() {
        assert_eq!(body("p-0-1", 20).chars().count(), 20);
        assert!(body("p-0-1", 20).starts_with("m p-0-1 x"));
        assert_eq!(body("p-0-1", 0), "m p-0-1 ");
        assert!(!body("p-0-1", 0).trim().is_empty());
    }
}
