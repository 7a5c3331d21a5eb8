//! `chat-load`: a load generator for chat-host. It speaks Socket.IO v4 over
//! WebSocket itself, creates its users and threads through the service API,
//! sends on an open-loop schedule, and counts every delivery.

mod api;
mod ledger;
mod scenarios;
mod sio;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use rand::Rng;

use scenarios::{Options, connect_storm, messaging, pairs, room};

/// Load generator for chat-host (Socket.IO v4 over WebSocket).
#[derive(Parser, Debug)]
#[command(name = "chat-load", version, about)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

/// Options of every scenario (accepted before or after the scenario name).
#[derive(Args, Debug)]
struct Common {
    /// Server address (plain http://; the socket is ws://<same>/socket.io/).
    #[arg(
        long,
        env = "CHAT_LOAD_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    url: String,
    /// Bearer token of the service API (the server's CHAT_SERVICE_TOKEN).
    #[arg(
        long,
        env = "CHAT_SERVICE_TOKEN",
        hide_env_values = true,
        global = true
    )]
    service_token: Option<String>,
    /// HS256 secret of client tokens (the server's CHAT_JWT_SECRET).
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true, global = true)]
    jwt_secret: Option<String>,
    /// Write the result as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Prefix of every user, thread and message id (default: random, so runs never collide).
    #[arg(long, global = true)]
    prefix: Option<String>,
    /// Sockets connected per second before a messaging run.
    #[arg(long, default_value_t = 500.0, global = true)]
    connect_rate: f64,
    /// Seconds to wait for an ack.
    #[arg(long, default_value_t = 10.0, global = true)]
    ack_timeout: f64,
    /// Seconds to wait for late deliveries once every ack is in; later ones count as lost.
    #[arg(long, default_value_t = 5.0, global = true)]
    grace: f64,
    /// The server's process id: report its RSS (from /proc/<pid>/status) before and after.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// No progress lines on stderr.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Exit with status 2 when a socket failed or a message was lost, duplicated or unexpected.
    #[arg(long, global = true)]
    strict: bool,
    /// Self-test: hide the arrivals of every n-th message of each sender (they must count as lost).
    #[arg(long, default_value_t = 0, global = true, hide = true)]
    fault_drop_every: u32,
    /// Self-test: count the arrivals of every n-th message of each sender twice (duplicated).
    #[arg(long, default_value_t = 0, global = true, hide = true)]
    fault_dup_every: u32,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// N sockets connecting at R/s: connect latency, failures, server RSS per socket.
    ConnectStorm {
        /// Sockets to open.
        #[arg(long, default_value_t = 1000)]
        sockets: usize,
        /// Connection attempts per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Seconds to keep every socket open before measuring RSS and hanging up.
        #[arg(long, default_value_t = 1.0)]
        hold: f64,
    },
    /// N one-to-one threads, both members sending; all pairs together at R msg/s.
    Pairs {
        /// Number of pairs (2 sockets each).
        #[arg(long, default_value_t = 100)]
        pairs: usize,
        /// Messages per second, all pairs together.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds of sending.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Body length in characters.
        #[arg(long, default_value_t = 64)]
        body_size: usize,
    },
    /// One thread with M members, S of them sending, together at R msg/s.
    Room {
        /// Members (one socket each).
        #[arg(long, default_value_t = 100)]
        members: usize,
        /// How many members send.
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Messages per second, all senders together.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Seconds of sending.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Body length in characters.
        #[arg(long, default_value_t = 64)]
        body_size: usize,
    },
}

/// A random id prefix: `lg` and 8 base-36 characters.
fn random_prefix() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let tail: String = (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("lg{tail}")
}

fn seconds(value: f64, flag: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("--{flag} must be >= 0"))
}

fn options(c: &Common) -> Result<Options> {
    let prefix = c.prefix.clone().unwrap_or_else(random_prefix);
    let valid = |ch: char| ch.is_ascii_alphanumeric() || "_.:-".contains(ch);
    if prefix.is_empty() || prefix.len() > 32 || !prefix.chars().all(valid) {
        bail!("--prefix must be 1-32 chars of [A-Za-z0-9_.:-]");
    }
    Ok(Options {
        url: c.url.trim_end_matches('/').to_owned(),
        service_token: c
            .service_token
            .clone()
            .context("--service-token (or CHAT_SERVICE_TOKEN) is required")?,
        jwt_secret: c
            .jwt_secret
            .clone()
            .context("--jwt-secret (or CHAT_JWT_SECRET) is required")?,
        prefix,
        connect_rate: c.connect_rate,
        ack_timeout: seconds(c.ack_timeout, "ack-timeout")?,
        grace: seconds(c.grace, "grace")?,
        server_pid: c.server_pid,
        quiet: c.quiet,
        faults: scenarios::Faults {
            drop_every: c.fault_drop_every,
            dup_every: c.fault_dup_every,
        },
    })
}

async fn run(cli: Cli) -> Result<bool> {
    let opts = options(&cli.common)?;
    let report = match cli.scenario {
        Scenario::ConnectStorm {
            sockets,
            rate,
            hold,
        } => connect_storm::run(&opts, sockets, rate, seconds(hold, "hold")?).await?,
        Scenario::Pairs {
            pairs: n,
            rate,
            duration,
            body_size,
        } => {
            let plan = pairs::plan(
                &opts.prefix,
                n,
                rate,
                seconds(duration, "duration")?,
                body_size,
            );
            messaging::run(&opts, plan).await?
        }
        Scenario::Room {
            members,
            senders,
            rate,
            duration,
            body_size,
        } => {
            let plan = room::plan(
                &opts.prefix,
                members,
                senders,
                rate,
                seconds(duration, "duration")?,
                body_size,
            );
            messaging::run(&opts, plan).await?
        }
    };
    report.print();
    if let Some(path) = &cli.common.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    let clean = report.connect_failed == 0
        && report.messages.as_ref().is_none_or(|m| {
            m.tally.lost == 0 && m.tally.duplicated == 0 && m.tally.unexpected == 0
        });
    Ok(clean)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let strict = cli.common.strict;
    match run(cli).await {
        Ok(clean) if clean || !strict => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("chat-load: lost, duplicated or unexpected deliveries, or failed sockets");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("chat-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn common_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "chat-load",
            "--url",
            "http://h:1",
            "pairs",
            "--pairs",
            "3",
            "--json",
            "out.json",
            "--prefix",
            "p1",
        ])
        .unwrap();
        assert_eq!(cli.common.url, "http://h:1");
        assert_eq!(cli.common.prefix.as_deref(), Some("p1"));
        assert!(matches!(cli.scenario, Scenario::Pairs { pairs: 3, .. }));
    }

    #[test]
    fn random_prefixes_are_valid_ids_and_differ() {
        let (a, b) = (random_prefix(), random_prefix());
        assert_eq!(a.len(), 10);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }
}
