//! Configuration: environment variables of the contract, mirrored as CLI flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rand::distr::{Alphanumeric, SampleString};

/// Every setting of the server. Each flag also reads the environment variable named in its help.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "chat-host",
    version,
    about = "Realtime chat server (Socket.IO v4) with WebAssembly policy plugins"
)]
pub struct Config {
    /// Address to serve HTTP and Socket.IO on (port 0 picks a free port).
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// `mysql://…` for MySQL/MariaDB or `sqlite://…`; unset means an embedded SQLite file in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// `redis://…` for the shared realtime state; unset means in-process state (one instance only).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// HS256 secret for client tokens.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Bearer token for the service/admin HTTP API.
    #[arg(long, env = "CHAT_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,
    /// `production` refuses to start without secrets; anything else is dev mode.
    #[arg(long = "env", env = "CHAT_ENV", default_value = "development")]
    pub environment: String,
    /// Same as `CHAT_ENV=production`.
    #[arg(long)]
    pub production: bool,
    /// Default send limit per user, in messages per minute.
    #[arg(long, env = "CHAT_RATE_LIMIT_PER_MINUTE", default_value_t = 25)]
    pub rate_limit_per_minute: u32,
    /// Longest message body, in Unicode code points.
    #[arg(long, env = "CHAT_MAX_BODY_CHARS", default_value_t = 4000)]
    pub max_body_chars: usize,
    /// Directory of plugin components (`<name>.wasm` + `<name>.toml`), watched for changes;
    /// default `plugins-dist/` if it exists.
    #[arg(long, env = "CHAT_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Key of the audit trail's HMAC chain; derived from the JWT secret when unset.
    #[arg(long, env = "CHAT_AUDIT_KEY", hide_env_values = true)]
    pub audit_key: Option<String>,
    /// Engine.IO heartbeat: how often the server pings each client, in milliseconds.
    #[arg(long, env = "CHAT_PING_INTERVAL_MS", default_value_t = 10_000)]
    pub ping_interval_ms: u64,
    /// Engine.IO heartbeat: how long a client has to answer a ping before its
    /// connection counts as dead and is closed, in milliseconds. A connection
    /// that went silently dead is found within interval + timeout.
    #[arg(long, env = "CHAT_PING_TIMEOUT_MS", default_value_t = 10_000)]
    pub ping_timeout_ms: u64,
    /// Largest WebSocket message and long-polling body a client may send, in
    /// bytes, enforced by the transport before anything is parsed (also before
    /// the handshake is authenticated). It must hold the largest legal event.
    #[arg(long, env = "CHAT_MAX_FRAME_BYTES", default_value_t = 64 << 10)]
    pub max_frame_bytes: usize,
    /// Where the embedded SQLite file lives.
    #[arg(long, env = "CHAT_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands of the binary.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

/// The secrets the server runs with, resolved from configuration or generated in dev mode.
#[derive(Clone)]
pub struct Secrets {
    /// HS256 secret for client JWTs.
    pub jwt_secret: String,
    /// Bearer token for `/api` and `/admin`.
    pub service_token: String,
    /// Key of the audit chain.
    pub audit_key: Vec<u8>,
}

impl Config {
    /// True in production mode, where missing secrets are fatal.
    pub fn is_production(&self) -> bool {
        self.production || self.environment.eq_ignore_ascii_case("production")
    }

    /// The database URL, defaulting to the embedded SQLite file.
    pub fn database_url(&self) -> anyhow::Result<String> {
        if let Some(url) = non_empty(&self.database_url) {
            return Ok(url.to_owned());
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
        Ok(format!(
            "sqlite://{}?mode=rwc",
            self.data_dir.join("chat-host.db").display()
        ))
    }

    /// [`Config::max_frame_bytes`], refused when a body of `max_body_chars`
    /// could not fit (6 bytes per character when JSON escapes it, and room for
    /// the rest of the event).
    pub fn frame_limit(&self) -> anyhow::Result<usize> {
        let needed = self.max_body_chars.saturating_mul(6).saturating_add(1024);
        if self.max_frame_bytes < needed {
            bail!(
                "CHAT_MAX_FRAME_BYTES={} cannot hold a message of CHAT_MAX_BODY_CHARS={} (needs at least {needed})",
                self.max_frame_bytes,
                self.max_body_chars
            );
        }
        Ok(self.max_frame_bytes)
    }

    /// The Redis URL, if the shared state store is configured.
    pub fn redis_url(&self) -> Option<&str> {
        non_empty(&self.redis_url)
    }

    /// The plugin directory: configured, or `plugins-dist/` when present.
    pub fn plugin_dir(&self) -> Option<PathBuf> {
        match &self.plugin_dir {
            Some(dir) if !dir.as_os_str().is_empty() => Some(dir.clone()),
            Some(_) => None,
            None => Some(PathBuf::from("plugins-dist")).filter(|d| d.is_dir()),
        }
    }

    /// Resolves the secrets: configured ones, or loud random ones in dev mode.
    pub fn secrets(&self) -> anyhow::Result<Secrets> {
        let jwt = non_empty(&self.jwt_secret).map(str::to_owned);
        let token = non_empty(&self.service_token).map(str::to_owned);
        if self.is_production() && (jwt.is_none() || token.is_none()) {
            bail!(
                "production mode needs CHAT_JWT_SECRET and CHAT_SERVICE_TOKEN; refusing to start"
            );
        }
        let generate = |name: &str| {
            let value = Alphanumeric.sample_string(&mut rand::rng(), 32);
            eprintln!(
                "!!! DEV MODE: no {name} configured; using a random one for this run: {value}"
            );
            value
        };
        let jwt_secret = jwt.unwrap_or_else(|| generate("CHAT_JWT_SECRET"));
        let audit_key = match non_empty(&self.audit_key) {
            Some(key) => key.as_bytes().to_vec(),
            None => {
                use hmac::Mac;
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(jwt_secret.as_bytes())
                    .expect("any key length");
                mac.update(b"chat-host audit key");
                mac.finalize().into_bytes().to_vec()
            }
        };
        Ok(Secrets {
            jwt_secret,
            service_token: token.unwrap_or_else(|| generate("CHAT_SERVICE_TOKEN")),
            audit_key,
        })
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_missing_secrets_and_dev_generates_them() {
        let prod = Config::parse_from(["chat-host", "--production"]);
        assert!(prod.secrets().is_err());
        let dev = Config::parse_from(["chat-host", "--env", "dev"]);
        let s = dev.secrets().unwrap();
        assert_eq!(s.jwt_secret.len(), 32);
        assert_ne!(s.jwt_secret, s.service_token);
        let configured = Config::parse_from([
            "chat-host",
            "--production",
            "--jwt-secret",
            "a",
            "--service-token",
            "b",
        ]);
        assert_eq!(configured.secrets().unwrap().service_token, "b");
    }
}
