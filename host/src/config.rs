//! Configuration: environment variables of the contract, mirrored as CLI flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rand::distr::{Alphanumeric, SampleString};

/// Where the shared state lives: `REDIS_URL` or `REDIS_CLUSTER_URLS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis server (`redis://host:port`).
    Standalone(String),
    /// Seed nodes of a Redis Cluster; any one that answers gives the slot map.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The URL or URLs, for logs, with `redact` applied to each (passwords).
    pub fn describe(&self, redact: impl Fn(&str) -> String) -> String {
        match self {
            Self::Standalone(url) => format!("redis {}", redact(url)),
            Self::Cluster(urls) => {
                let urls: Vec<String> = urls.iter().map(|u| redact(u)).collect();
                format!("redis cluster {}", urls.join(","))
            }
        }
    }
}

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
    /// Seed nodes of a Redis Cluster (`redis://host:port,redis://host:port,...`)
    /// for the shared realtime state instead of one server; excludes `REDIS_URL`.
    #[arg(long, env = "REDIS_CLUSTER_URLS")]
    pub redis_cluster_urls: Option<String>,
    /// HS256 secret for client tokens.
    #[arg(long, env = "CHAT_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// When set, client and admin JWTs must carry this `iss` claim.
    #[arg(long, env = "CHAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// When set, client and admin JWTs must carry this `aud` claim.
    #[arg(long, env = "CHAT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
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
    /// `chat:join` and `chat:leave` per user per minute on one instance (at once, then refilling).
    #[arg(long, env = "CHAT_JOIN_PER_MINUTE", default_value_t = 120)]
    pub join_per_minute: u32,
    /// `chat:history` per user per minute on one instance.
    #[arg(long, env = "CHAT_HISTORY_PER_MINUTE", default_value_t = 120)]
    pub history_per_minute: u32,
    /// `chat:read` per user per minute on one instance.
    #[arg(long, env = "CHAT_READ_PER_MINUTE", default_value_t = 300)]
    pub read_per_minute: u32,
    /// `chat:typing` per user per minute on one instance (relays are coalesced besides).
    #[arg(long, env = "CHAT_TYPING_PER_MINUTE", default_value_t = 300)]
    pub typing_per_minute: u32,
    /// Events of one socket handled at once (16 times as many wait; more get
    /// `rate_limited`). Well under the database pool (16): one socket cannot
    /// hold every connection while other users wait.
    #[arg(long, env = "CHAT_MAX_IN_FLIGHT_PER_SOCKET", default_value_t = 4)]
    pub max_in_flight_per_socket: usize,
    /// Sockets one user may hold on one instance; the next handshake is refused.
    #[arg(long, env = "CHAT_MAX_SOCKETS_PER_USER", default_value_t = 32)]
    pub max_sockets_per_user: usize,
    /// A socket whose events were refused `rate_limited` this many times
    /// within 10 s is disconnected (reason `flooding`); 0 never disconnects.
    #[arg(long, env = "CHAT_FLOOD_DISCONNECT_AFTER", default_value_t = 100)]
    pub flood_disconnect_after: u32,
    /// Longest message body, in Unicode code points.
    #[arg(long, env = "CHAT_MAX_BODY_CHARS", default_value_t = 4000)]
    pub max_body_chars: usize,
    /// Directory of plugin components (`<name>.wasm` + `<name>.toml`), watched for changes;
    /// default `plugins-dist/` if it exists.
    #[arg(long, env = "CHAT_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Current key of the audit trail's HMAC chain: it seals every new entry.
    /// Required in production; in dev mode, unset means a random key kept in
    /// `<data dir>/audit.key`.
    #[arg(long, env = "CHAT_AUDIT_KEY", hide_env_values = true)]
    pub audit_key: Option<String>,
    /// Id of the current audit key, stored with every entry it seals (1-64 of
    /// `A-Z a-z 0-9 . _ -`); default `k` + 12 hex digits of a hash of the key.
    #[arg(long, env = "CHAT_AUDIT_KEY_ID")]
    pub audit_key_id: Option<String>,
    /// Earlier audit keys, kept to verify the entries they sealed:
    /// `id:key,id:key` (a key holds no comma). `legacy:<secret>` names the key
    /// of the entries written before entries named their key.
    #[arg(long, env = "CHAT_AUDIT_OLD_KEYS", hide_env_values = true)]
    pub audit_old_keys: Option<String>,
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
    /// Open TCP connections in all; more are closed at once (0: no cap).
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 50_000)]
    pub max_connections: usize,
    /// Open TCP connections of one source address; more are closed at once
    /// (0: no cap; set 0 behind a proxy, where every client has its address).
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 512)]
    pub max_connections_per_address: usize,
    /// Longest wait for an HTTP request's headers (the first, or the next one
    /// on a keep-alive connection) before the connection is closed, in milliseconds.
    #[arg(long, env = "CHAT_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// Engine.IO handshakes that have not authenticated yet (each for at most
    /// the handshake timeout); with that many pending, the next one is
    /// answered 503 (0: no cap).
    #[arg(long, env = "CHAT_MAX_PENDING_HANDSHAKES", default_value_t = 2048)]
    pub max_pending_handshakes: usize,
    /// Longest time from the Engine.IO handshake to an authenticated Socket.IO
    /// connect before the connection is closed, in milliseconds.
    #[arg(long, env = "CHAT_HANDSHAKE_TIMEOUT_MS", default_value_t = 10_000)]
    pub handshake_timeout_ms: u64,
    /// After SIGTERM, how long the instance keeps serving while `/readyz`
    /// answers 503 `draining`, so a load balancer's health check moves new
    /// connections away before the sockets are closed, in milliseconds (0: none).
    #[arg(long, env = "CHAT_DRAIN_DELAY_MS", default_value_t = 0)]
    pub drain_delay_ms: u64,
    /// Browser origins allowed to call the HTTP API and the Socket.IO
    /// long-polling transport from another origin (CORS, credentials
    /// included): a comma-separated list such as
    /// `https://app.example,https://admin.example:8443`; `*` for any origin
    /// (dev mode only); `none` for no cross-origin access. Unset: none in
    /// production; in dev mode `http(s)://localhost`, `127.0.0.1` and `[::1]`
    /// on any port.
    #[arg(long, env = "CHAT_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// The demo chat page at `/demo` (and the demo users it signs in): on in
    /// dev mode, off in production unless set to `1`/`true`.
    #[arg(long, env = "CHAT_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    pub demo: Option<bool>,
    /// Prefix of every Redis key and pub/sub channel of this deployment
    /// (`<prefix>:presence:<user>`, `<prefix>:logs:events`, the Socket.IO adapter's
    /// `<prefix>:socket.io-…` channels, ...): deployments sharing a Redis server
    /// need different prefixes. 1-64 of `A-Z a-z 0-9 _ - .`.
    #[arg(long, env = "CHAT_REDIS_PREFIX", default_value = "chat")]
    pub redis_prefix: String,
    /// How long one client event or `/api` request may wait on the backends
    /// (Redis, the database) before it answers `unavailable`, in milliseconds;
    /// also the bound of each single Redis round trip and database connection
    /// checkout. Keep it below the clients' ack timeouts.
    #[arg(long, env = "CHAT_BACKEND_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub backend_timeout_ms: u64,
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

/// Secrets shorter than this are refused in production mode, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Key id of the audit entries written before entries named their key: the
/// default that migration 0006 gives the existing rows.
pub const LEGACY_AUDIT_KEY_ID: &str = "legacy";
/// File in the data directory holding the dev-mode audit key.
const DEV_AUDIT_KEY_FILE: &str = "audit.key";
/// What the audit key was derived from the JWT secret with before it was a
/// secret of its own (kept to verify the entries sealed that way).
const LEGACY_DERIVATION: &[u8] = b"chat-host audit key";

/// The secrets the server runs with, resolved from configuration or generated in dev mode.
#[derive(Clone)]
pub struct Secrets {
    /// HS256 secret for client JWTs.
    pub jwt_secret: String,
    /// Bearer token for `/api` and `/admin`.
    pub service_token: String,
    /// Keys of the audit chain.
    pub audit: AuditKeys,
}

/// The audit keys of a host, by id: the current one seals new entries, the
/// others only verify the entries they sealed before a rotation.
#[derive(Clone)]
pub struct AuditKeys {
    /// Id stored with every entry the current key seals.
    current_id: String,
    /// The current key.
    current: Arc<[u8]>,
    /// Every key this host verifies with, by id (the current one included).
    /// [`LEGACY_AUDIT_KEY_ID`] may map to more than one: the entries written
    /// before key ids do not say which of the old defaults sealed them.
    verifying: BTreeMap<String, Vec<Arc<[u8]>>>,
}

impl AuditKeys {
    /// A key ring whose current key is `secret`, named `id`.
    pub fn new(id: &str, secret: &[u8]) -> anyhow::Result<Self> {
        check_key_id(id)?;
        if id == LEGACY_AUDIT_KEY_ID {
            bail!(
                "audit key id {LEGACY_AUDIT_KEY_ID:?} is reserved for the entries written before key ids"
            );
        }
        let current: Arc<[u8]> = secret.into();
        Ok(Self {
            current_id: id.to_owned(),
            verifying: BTreeMap::from([(id.to_owned(), vec![current.clone()])]),
            current,
        })
    }

    /// Keeps an earlier key `id` to verify what it sealed; refused when `id`
    /// already names another key.
    pub fn keep(mut self, id: &str, secret: &[u8]) -> anyhow::Result<Self> {
        check_key_id(id)?;
        match self.verifying.get(id) {
            Some(keys) if keys.iter().any(|k| **k == *secret) => {}
            Some(_) => bail!("audit key id {id:?} is given to two different keys"),
            None => {
                self.verifying.insert(id.to_owned(), vec![secret.into()]);
            }
        }
        Ok(self)
    }

    /// Verifies the entries written before key ids with every key held so far
    /// and each of `extra`.
    fn with_legacy(mut self, extra: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let mut keys: Vec<Arc<[u8]>> = self.verifying.values().flatten().cloned().collect();
        keys.extend(extra.into_iter().map(Into::into));
        self.verifying.insert(LEGACY_AUDIT_KEY_ID.to_owned(), keys);
        self
    }

    /// The id and the secret of the key that seals new entries.
    pub fn current(&self) -> (&str, &[u8]) {
        (&self.current_id, &self.current)
    }

    /// The keys an entry sealed with key `id` may verify under; empty when this
    /// host does not have that key.
    pub fn verifying(&self, id: &str) -> &[Arc<[u8]>] {
        self.verifying.get(id).map_or(&[], Vec::as_slice)
    }
}

/// Key ids are stored in a 64-character column and shown in verify reports.
fn check_key_id(id: &str) -> anyhow::Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > 64 || !id.chars().all(allowed) {
        bail!("audit key id {id:?} must be 1 to 64 of A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

/// The default id of an audit key: `k` and 12 hex digits of a hash of it, which
/// tells keys apart without revealing them.
fn default_key_id(secret: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"chat-host audit key id\0")
        .chain_update(secret)
        .finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("k{hex}")
}

/// The audit key that releases before key ids derived from the JWT secret when
/// `CHAT_AUDIT_KEY` was unset.
pub(crate) fn legacy_derived_key(jwt_secret: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(jwt_secret).expect("HMAC takes any key length");
    mac.update(LEGACY_DERIVATION);
    mac.finalize().into_bytes().to_vec()
}

/// `CHAT_AUDIT_OLD_KEYS`: `id:key` items separated by commas (blank items skipped).
/// Errors name the item's position, never its text, which holds a secret.
fn parse_old_keys(list: &str) -> anyhow::Result<Vec<(&str, &str)>> {
    let items: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .collect();
    items
        .iter()
        .enumerate()
        .map(|(n, item)| match item.split_once(':') {
            Some((id, key)) if !id.trim().is_empty() && !key.is_empty() => Ok((id.trim(), key)),
            _ => bail!(
                "CHAT_AUDIT_OLD_KEYS: item {} of {} is not of the form id:key",
                n + 1,
                items.len()
            ),
        })
        .collect()
}

/// The dev-mode audit key: the one in `<dir>/audit.key`, created (random, mode
/// 0600) when missing, so trails stay valid across restarts on the same data.
/// Returns the key and whether it was created now.
fn dev_audit_key(dir: &Path) -> anyhow::Result<(Vec<u8>, bool)> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let path = dir.join(DEV_AUDIT_KEY_FILE);
    let created = !path.exists() && create_key_file(&path)?;
    let key = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the audit key {}", path.display()))?;
    let key = key.trim();
    if key.len() < MIN_SECRET_BYTES {
        bail!(
            "{} holds no usable audit key (under {MIN_SECRET_BYTES} bytes); restore it, or delete it \
             to start a new one (trails sealed with the old one then fail verify)",
            path.display()
        );
    }
    Ok((key.as_bytes().to_vec(), created))
}

/// Writes a random key to a private temporary file and links it in place, so a
/// concurrent start never reads half a key; false if another process won.
fn create_key_file(path: &Path) -> anyhow::Result<bool> {
    use std::io::Write;
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 8);
    let staged = path.with_extension(format!("new-{suffix}"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write = options.open(&staged).and_then(|mut file| {
        let key = Alphanumeric.sample_string(&mut rand::rng(), 48);
        file.write_all(format!("{key}\n").as_bytes())?;
        file.sync_all()
    });
    let linked = write.and_then(|()| std::fs::hard_link(&staged, path));
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating the audit key {}", path.display())),
    }
}

/// Production mode's rules for the secrets: each is set, at least
/// [`MIN_SECRET_BYTES`] long, and none is another's. Every problem is listed.
fn check_production(secrets: &[(&str, Option<&str>)]) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (i, (name, value)) in secrets.iter().enumerate() {
        match value {
            None => problems.push(format!("{name} is not set")),
            Some(v) if v.len() < MIN_SECRET_BYTES => problems.push(format!(
                "{name} is {} bytes, under the {MIN_SECRET_BYTES} required",
                v.len()
            )),
            Some(v) => {
                for (other, _) in secrets[..i].iter().filter(|(_, o)| *o == Some(*v)) {
                    problems.push(format!("{name} is the same secret as {other}"));
                }
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "production mode refuses to start: {} (generate secrets with e.g. `openssl rand -hex 32`)",
            problems.join("; ")
        );
    }
    Ok(())
}

impl Config {
    /// True in production mode, where missing secrets are fatal.
    pub fn is_production(&self) -> bool {
        self.production || self.environment.eq_ignore_ascii_case("production")
    }

    /// Whether `/demo` is served: [`Config::demo`], by default only in dev mode.
    pub fn demo_enabled(&self) -> bool {
        self.demo.unwrap_or(!self.is_production())
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

    /// [`Config::cors_origins`], parsed; `*` is refused in production, and so
    /// is anything that is not an `http`/`https` origin (a path, a query, a
    /// typo).
    pub fn cors(&self) -> anyhow::Result<CorsOrigins> {
        let Some(raw) = non_empty(&self.cors_origins).map(str::trim) else {
            return Ok(if self.is_production() {
                CorsOrigins::None
            } else {
                CorsOrigins::Loopback
            });
        };
        if raw.eq_ignore_ascii_case("none") {
            return Ok(CorsOrigins::None);
        }
        if raw == "*" {
            if self.is_production() {
                bail!(
                    "CHAT_CORS_ORIGINS=* (any origin) is for dev mode; list the origins in production"
                );
            }
            return Ok(CorsOrigins::Any);
        }
        let origins = raw
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(canonical_origin)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(CorsOrigins::List(origins))
    }

    /// [`Config::backend_timeout_ms`] as a duration.
    pub fn backend_timeout(&self) -> Duration {
        Duration::from_millis(self.backend_timeout_ms)
    }

    /// The Redis server or cluster of the shared state store, if one is
    /// configured; refused when both `REDIS_URL` and `REDIS_CLUSTER_URLS` are set.
    pub fn redis_target(&self) -> anyhow::Result<Option<RedisTarget>> {
        match (
            non_empty(&self.redis_url),
            non_empty(&self.redis_cluster_urls),
        ) {
            (Some(_), Some(_)) => bail!(
                "REDIS_URL and REDIS_CLUSTER_URLS are both set: set REDIS_URL for one \
                 Redis server or REDIS_CLUSTER_URLS for a Redis Cluster, not both"
            ),
            (Some(url), None) => Ok(Some(RedisTarget::Standalone(url.to_owned()))),
            (None, Some(urls)) => {
                let urls: Vec<String> = urls
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect();
                if let Some(bad) = urls.iter().find(|u| !u.starts_with("redis://")) {
                    bail!(
                        "REDIS_CLUSTER_URLS must list redis://host:port seed nodes, \
                         separated by commas; {bad:?} is not one"
                    );
                }
                if urls.is_empty() {
                    bail!("REDIS_CLUSTER_URLS lists no node: give redis://host:port seed nodes");
                }
                Ok(Some(RedisTarget::Cluster(urls)))
            }
            (None, None) => Ok(None),
        }
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
    /// Production mode refuses missing, short or shared secrets.
    pub fn secrets(&self) -> anyhow::Result<Secrets> {
        let jwt = non_empty(&self.jwt_secret);
        let token = non_empty(&self.service_token);
        let audit = non_empty(&self.audit_key);
        if self.is_production() {
            check_production(&[
                ("CHAT_JWT_SECRET", jwt),
                ("CHAT_SERVICE_TOKEN", token),
                ("CHAT_AUDIT_KEY", audit),
            ])?;
        }
        let generate = |name: &str| {
            let value = Alphanumeric.sample_string(&mut rand::rng(), 32);
            eprintln!(
                "!!! DEV MODE: no {name} configured; using a random one for this run: {value}"
            );
            value
        };
        let audit_key = match audit {
            Some(key) => key.as_bytes().to_vec(),
            None => {
                let (key, created) = dev_audit_key(&self.data_dir)?;
                eprintln!(
                    "!!! DEV MODE: no CHAT_AUDIT_KEY configured; sealing audit entries with the key in {} ({})",
                    self.data_dir.join(DEV_AUDIT_KEY_FILE).display(),
                    if created {
                        "created now"
                    } else {
                        "kept from an earlier run"
                    }
                );
                key
            }
        };
        let id =
            non_empty(&self.audit_key_id).map_or_else(|| default_key_id(&audit_key), str::to_owned);
        let mut keys = AuditKeys::new(&id, &audit_key).context("CHAT_AUDIT_KEY_ID")?;
        let mut pinned_legacy = Vec::new();
        for (id, key) in parse_old_keys(non_empty(&self.audit_old_keys).unwrap_or(""))? {
            if id == LEGACY_AUDIT_KEY_ID {
                pinned_legacy.push(key.as_bytes());
            } else {
                keys = keys
                    .keep(id, key.as_bytes())
                    .context("CHAT_AUDIT_OLD_KEYS")?;
            }
        }
        // The entries written before key ids were sealed with CHAT_AUDIT_KEY or, when
        // it was unset, with a key derived from CHAT_JWT_SECRET. They verify with every
        // audit key held, and with each pinned `legacy:<secret>` (an old audit key, or
        // an old JWT secret to derive it from; unpinned, the current JWT secret): an
        // upgrade that changes neither secret keeps every trail valid.
        let legacy: Vec<Vec<u8>> = if pinned_legacy.is_empty() {
            jwt.map(|j| legacy_derived_key(j.as_bytes()))
                .into_iter()
                .collect()
        } else {
            pinned_legacy
                .iter()
                .flat_map(|secret| [secret.to_vec(), legacy_derived_key(secret)])
                .collect()
        };
        Ok(Secrets {
            jwt_secret: jwt.map_or_else(|| generate("CHAT_JWT_SECRET"), str::to_owned),
            service_token: token.map_or_else(|| generate("CHAT_SERVICE_TOKEN"), str::to_owned),
            audit: keys.with_legacy(legacy),
        })
    }
}

/// Which browser origins may call the server from another origin (CORS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No cross-origin access: no CORS headers at all (the production default).
    None,
    /// `http`/`https` on `localhost`, `127.0.0.1` or `[::1]`, any port (the
    /// dev-mode default: a front-end dev server on another port works).
    Loopback,
    /// Any origin (`*`; dev mode only).
    Any,
    /// Exactly these origins, as browsers send them in `Origin`
    /// (`https://app.example`, `http://host:8080`).
    List(Vec<String>),
}

/// `scheme://host[:port]` as a browser sends it in `Origin` (lower-case, no
/// default port), or an error naming the entry.
fn canonical_origin(entry: &str) -> anyhow::Result<String> {
    let refuse = || {
        anyhow::anyhow!(
            "CHAT_CORS_ORIGINS: `{entry}` is not an origin (`https://host` or `http://host:port`, no path)"
        )
    };
    let url = url::Url::parse(entry).map_err(|_| refuse())?;
    let bare = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && !entry.ends_with('/')
        && url.query().is_none()
        && url.fragment().is_none();
    if !bare {
        return Err(refuse());
    }
    Ok(url.origin().ascii_serialization())
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    //! The secrets' rules: what production mode refuses (and says why), what dev
    //! mode makes up, and how the audit key ring is read.

    use super::*;

    const JWT: &str = "jwt-secret-jwt-secret-jwt-secret-0001";
    const TOKEN: &str = "service-token-service-token-00000001";
    const AUDIT: &str = "audit-key-audit-key-audit-key-00001";

    fn config(args: &[&str]) -> Config {
        Config::parse_from(["chat-host"].iter().chain(args))
    }

    fn refusal(args: &[&str]) -> String {
        match config(args).secrets() {
            Ok(_) => panic!("{args:?} was accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn one_redis_server_or_one_cluster_of_seed_nodes() {
        let target = |args: &[&str]| config(args).redis_target();
        assert_eq!(target(&[]).unwrap(), None);
        assert_eq!(
            target(&["--redis-url", "redis://r:6379"]).unwrap(),
            Some(RedisTarget::Standalone("redis://r:6379".into()))
        );
        assert_eq!(
            target(&["--redis-cluster-urls", "redis://a:7000, redis://b:7001,"]).unwrap(),
            Some(RedisTarget::Cluster(vec![
                "redis://a:7000".into(),
                "redis://b:7001".into()
            ]))
        );
        let both = target(&[
            "--redis-url",
            "redis://r:6379",
            "--redis-cluster-urls",
            "redis://a:7000",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            both.contains("REDIS_URL and REDIS_CLUSTER_URLS are both set"),
            "{both}"
        );
        let bad = target(&["--redis-cluster-urls", "a:7000"])
            .unwrap_err()
            .to_string();
        assert!(bad.contains("\"a:7000\" is not one"), "{bad}");
        let none = target(&["--redis-cluster-urls", " , "])
            .unwrap_err()
            .to_string();
        assert!(none.contains("lists no node"), "{none}");
    }

    #[test]
    fn cors_origins_default_to_none_in_production_and_loopback_in_dev() {
        let cors = |args: &[&str]| {
            Config::parse_from(std::iter::once("chat-host").chain(args.iter().copied())).cors()
        };
        assert_eq!(cors(&["--production"]).unwrap(), CorsOrigins::None);
        assert_eq!(cors(&[]).unwrap(), CorsOrigins::Loopback);
        assert_eq!(
            cors(&["--cors-origins", "none"]).unwrap(),
            CorsOrigins::None
        );
        assert_eq!(cors(&["--cors-origins", "*"]).unwrap(), CorsOrigins::Any);
        assert!(cors(&["--production", "--cors-origins", "*"]).is_err());
        assert_eq!(
            cors(&[
                "--production",
                "--cors-origins",
                "https://App.example, http://b.example:8080,https://c.example:443"
            ])
            .unwrap(),
            CorsOrigins::List(vec![
                "https://app.example".into(),
                "http://b.example:8080".into(),
                "https://c.example".into()
            ])
        );
        for bad in [
            "app.example",
            "https://app.example/",
            "https://app.example/path",
            "https://app.example?x=1",
            "ftp://app.example",
            "https://u@app.example",
            "null",
        ] {
            let err = cors(&["--cors-origins", bad]).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn production_names_every_missing_short_or_shared_secret() {
        let all = [
            "--production",
            "--jwt-secret",
            JWT,
            "--service-token",
            TOKEN,
        ];
        let missing = refusal(&["--production"]);
        for name in ["CHAT_JWT_SECRET", "CHAT_SERVICE_TOKEN", "CHAT_AUDIT_KEY"] {
            assert!(missing.contains(&format!("{name} is not set")), "{missing}");
        }
        let no_audit = refusal(&all);
        assert!(
            no_audit.contains("CHAT_AUDIT_KEY is not set") && !no_audit.contains("CHAT_JWT"),
            "{no_audit}"
        );
        let short = refusal(&[
            "--env",
            "Production",
            "--jwt-secret",
            "12345",
            "--service-token",
            "x",
            "--audit-key",
            &AUDIT[..31],
        ]);
        for name in [
            "CHAT_JWT_SECRET is 5 bytes",
            "CHAT_SERVICE_TOKEN is 1 bytes",
            "CHAT_AUDIT_KEY is 31 bytes",
        ] {
            assert!(short.contains(name), "{short}");
        }
        let shared = refusal(&[&all[..], &["--audit-key", JWT]].concat());
        assert!(
            shared.contains("CHAT_AUDIT_KEY is the same secret as CHAT_JWT_SECRET"),
            "{shared}"
        );
        let ok = config(&[&all[..], &["--audit-key", &AUDIT[..32]]].concat());
        let secrets = ok.secrets().unwrap();
        assert_eq!(secrets.service_token, TOKEN);
        assert_eq!(secrets.audit.current().1, &AUDIT.as_bytes()[..32]);
    }

    #[test]
    fn dev_mode_runs_with_nothing_configured_and_keeps_its_audit_key() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("nested");
        let dev = config(&["--env", "dev", "--data-dir", dir.to_str().unwrap()]);
        let s = dev.secrets().unwrap();
        assert_eq!(s.jwt_secret.len(), 32);
        assert_ne!(s.jwt_secret, s.service_token);
        let (id, key) = s.audit.current();
        assert!(key.len() >= MIN_SECRET_BYTES);
        assert_ne!(
            key,
            legacy_derived_key(s.jwt_secret.as_bytes()),
            "not derived from the JWT secret"
        );
        let file = dir.join(DEV_AUDIT_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the key file is private");
        }
        let again = dev.secrets().unwrap();
        assert_eq!(
            again.audit.current(),
            (id, key),
            "the same key after a restart"
        );
        assert_ne!(again.jwt_secret, s.jwt_secret);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no staging file left"
        );

        std::fs::write(&file, "short\n").unwrap();
        let damaged = format!("{:#}", dev.secrets().err().unwrap());
        assert!(damaged.contains("no usable audit key"), "{damaged}");
    }

    #[test]
    fn audit_keys_have_ids_and_old_keys_verify() {
        let ids = |args: &[&str]| {
            let s = config(&[&["--audit-key", AUDIT], args].concat())
                .secrets()
                .unwrap();
            s.audit
        };
        let keys = ids(&[]);
        let (id, _) = keys.current();
        assert!(id.starts_with('k') && id.len() == 13, "{id}");
        assert!(!id.contains(&AUDIT[..4]), "the id does not show the key");
        assert_eq!(ids(&[]).current().0, id, "the default id is stable");

        let ring = ids(&[
            "--audit-key-id",
            "k2",
            "--audit-old-keys",
            " k1:first-old-key , k0:with:colons,",
        ]);
        assert_eq!(ring.current().0, "k2");
        assert_eq!(&*ring.verifying("k1")[0], b"first-old-key");
        assert_eq!(&*ring.verifying("k0")[0], b"with:colons");
        assert!(ring.verifying("k9").is_empty());

        for (args, why) in [
            (
                &["--audit-old-keys", "k1:a,oops"][..],
                "item 2 of 2 is not of the form id:key",
            ),
            (
                &["--audit-old-keys", "k1:a,k1:b"],
                "\"k1\" is given to two different keys",
            ),
            (&["--audit-key-id", "legacy"], "reserved"),
            (&["--audit-key-id", "a b"], "must be 1 to 64"),
        ] {
            let e = refusal(&[&["--audit-key", AUDIT], args].concat());
            assert!(e.contains(why), "{args:?}: {e}");
            assert!(!e.contains("oops"), "an error never shows a key: {e}");
        }
    }

    #[test]
    fn entries_from_before_key_ids_verify_with_the_old_defaults() {
        let legacy = |args: &[&str]| {
            let keys = config(args).secrets().unwrap().audit;
            keys.verifying(LEGACY_AUDIT_KEY_ID)
                .iter()
                .map(|k| k.to_vec())
                .collect::<Vec<_>>()
        };
        // Every key held, and the one derived from the JWT secret.
        assert_eq!(
            legacy(&[
                "--jwt-secret",
                JWT,
                "--audit-key",
                AUDIT,
                "--audit-old-keys",
                "k0:old"
            ]),
            [
                b"old".to_vec(),
                AUDIT.as_bytes().to_vec(),
                legacy_derived_key(JWT.as_bytes())
            ]
        );
        // Pinned: the old JWT secret, instead of the current one.
        assert_eq!(
            legacy(&[
                "--jwt-secret",
                JWT,
                "--audit-key",
                AUDIT,
                "--audit-old-keys",
                "legacy:old-jwt"
            ]),
            [
                AUDIT.as_bytes().to_vec(),
                b"old-jwt".to_vec(),
                legacy_derived_key(b"old-jwt")
            ]
        );
    }
}
