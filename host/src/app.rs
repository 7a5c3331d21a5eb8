//! Wiring: backends from configuration, Socket.IO and HTTP on one listener,
//! and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::middleware::from_fn_with_state;
use metrics_exporter_prometheus::PrometheusHandle;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, SocketIoBuilder};
use socketioxide_core::adapter::DefinedAdapter;
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::audit::AuditLog;
use crate::auth::{TokenIssuer, TokenRules, TokenVerifier};
use crate::chat::delivery::DeliveryMarks;
use crate::chat::policy::PolicyChain;
use crate::chat::send::DELIVERY_ACK_TIMEOUT;
use crate::chat::{Backends, ChatService, Limits};
use crate::config::{Config, Secrets};
use crate::events::EventBus;
use crate::plugins::admin::PluginAdmin;
use crate::plugins::chain::{PluginEvents, PluginPolicy};
use crate::plugins::directory;
use crate::plugins::registry::{PluginRegistry, Services};
use crate::plugins::sync::PluginSync;
use crate::state::StateStore;
use crate::state::memory::MemoryState;
use crate::state::redis::{RedisKeys, RedisState};
use crate::store::sql::{SqlStore, redact};
use crate::transport::http::{self, HttpContext};
use crate::transport::listener::{self, ConnectionLimits};
use crate::transport::pending::{self, PendingHandshakes};
use crate::transport::redis_driver::ReconnectingDriver;
use crate::transport::session::SocketLimits;
use crate::transport::socketio::{self, SocketFanout};

/// How long shutdown waits for in-flight events, and then for disconnect handlers.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies the migrations of the configured database and returns.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let url = config.database_url()?;
    SqlStore::connect_with_timeout(&url, config.backend_timeout()).await?;
    println!("migrations applied to {}", redact(&url));
    Ok(())
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(config: Config, metrics: PrometheusHandle) -> anyhow::Result<()> {
    let secrets = config.secrets()?;
    let db_url = config.database_url()?;
    let store = Arc::new(SqlStore::connect_with_timeout(&db_url, config.backend_timeout()).await?);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let server = Server {
        config: &config,
        secrets,
        metrics,
        listener,
        addr,
        started: Instant::now(),
    };

    match config.redis_target()? {
        Some(target) => {
            let keys = RedisKeys::new(&config.redis_prefix)?;
            let adapter_config = RedisAdapterConfig::default().with_prefix(keys.adapter_prefix());
            let state = Arc::new(
                RedisState::connect(&target, keys, config.backend_timeout())
                    .await
                    .with_context(|| format!("connecting to {}", target.describe(redact)))?,
            );
            let driver = ReconnectingDriver(state.pubsub());
            let adapter = RedisAdapterCtr::new_with_driver(driver, adapter_config);
            let builder = SocketIo::builder()
                .with_adapter::<CustomRedisAdapter<_, ReconnectingDriver>>(adapter);
            let describe = format!(
                "database {}, state {}",
                redact(&db_url),
                target.describe(redact)
            );
            let (io, layer, wired) = server.wire(builder, store, state)?;
            wired
                .register(&io)
                .await
                .context("registering the Socket.IO namespace")?;
            server.serve(io, layer, wired, &describe).await
        }
        None => {
            let state = Arc::new(MemoryState::new());
            let describe = format!(
                "database {}, state in-process (single instance)",
                redact(&db_url)
            );
            let (io, layer, wired) = server.wire(SocketIo::builder(), store, state)?;
            // The local adapter has nothing to initialise (its init result is `()`).
            wired.register::<LocalAdapter>(&io);
            server.serve(io, layer, wired, &describe).await
        }
    }
}

struct Server<'a> {
    config: &'a Config,
    secrets: Secrets,
    metrics: PrometheusHandle,
    listener: TcpListener,
    addr: SocketAddr,
    started: Instant,
}

/// The services and the background tasks they own.
struct Wired {
    chat: Arc<ChatService>,
    plugins: Arc<PluginRegistry>,
    plugin_sync: Arc<PluginSync>,
    plugin_admin: Arc<PluginAdmin>,
    events: EventBus,
    verifier: Arc<TokenVerifier>,
    /// The transport's per-socket limits.
    socket_limits: SocketLimits,
    /// Handshakes that have not authenticated yet.
    pending: Arc<PendingHandshakes>,
    /// In-flight event handlers and connect/disconnect bookkeeping.
    tasks: TaskTracker,
    /// Writes the event stream; ends once `events` is closed and drained.
    event_writer: JoinHandle<()>,
    /// Feeds the events plugins; ends once the event writer (which holds its
    /// observer) has ended and its queue is drained.
    plugin_events: JoinHandle<()>,
    /// Acknowledged receipts on their way to the database.
    marks: DeliveryMarks,
    /// Writes them; ends after `marks.close()` once the queue is written.
    marks_writer: JoinHandle<()>,
}

impl Wired {
    fn register<A: Adapter + DefinedAdapter>(&self, io: &SocketIo<A>) -> A::InitRes {
        socketio::register(
            io,
            self.chat.clone(),
            self.verifier.clone(),
            self.socket_limits,
            self.pending.clone(),
            self.tasks.clone(),
        )
    }
}

impl Server<'_> {
    fn wire<A: Adapter>(
        &self,
        builder: SocketIoBuilder<A>,
        store: Arc<SqlStore>,
        state: Arc<dyn StateStore>,
    ) -> anyhow::Result<(SocketIo<A>, SocketIoLayer<A>, Wired)> {
        // A reconnecting user gets up to 200 queued messages at once: the per-socket
        // buffer must hold them (socketioxide's default is 128 packets). Client frames
        // are small events, so a 1 KiB WebSocket read buffer (default 4 KiB) saves
        // ~3 KiB per idle socket; a larger frame is read in several chunks.
        // Oversized client frames are refused by the transport before they are
        // read into memory, authenticated or not.
        let frame = self.config.frame_limit()?;
        let (layer, io) = builder
            .max_buffer_size(1024)
            .ws_read_buffer_size(1024)
            .ws_max_message_size(frame)
            .ws_max_frame_size(frame)
            .max_payload(frame as u64)
            .ping_interval(Duration::from_millis(self.config.ping_interval_ms))
            .ping_timeout(Duration::from_millis(self.config.ping_timeout_ms))
            .ack_timeout(DELIVERY_ACK_TIMEOUT)
            .connect_timeout(Duration::from_millis(self.config.handshake_timeout_ms))
            .build_layer();
        let audit = Arc::new(AuditLog::new(store.clone(), self.secrets.audit.clone()));
        let services = Services {
            state: state.clone(),
            audit: audit.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let plugins = Arc::new(PluginRegistry::new(
            services,
            Some(self.config.data_dir.join("plugin-cache")),
        )?);
        let (plugin_observer, plugin_events) = PluginEvents::start(plugins.clone());
        let (events, event_writer) =
            EventBus::start(state.clone(), vec![Arc::new(plugin_observer)]);
        let limits = Limits::from_config(self.config);
        let policy = PolicyChain::builtin(limits).with(Arc::new(PluginPolicy::new(
            plugins.clone(),
            limits.max_body_chars,
        )));
        let fanout = Arc::new(SocketFanout::new(io.clone()));
        let plugin_sync = Arc::new(PluginSync::new(
            plugins.clone(),
            store.clone(),
            state.clone(),
        ));
        let plugin_admin = Arc::new(PluginAdmin::new(
            plugins.clone(),
            plugin_sync.clone(),
            state.clone(),
            audit.clone(),
            events.clone(),
        ));
        let (marks, marks_writer) = DeliveryMarks::start(store.clone(), audit.clone());
        let chat = Arc::new(
            ChatService::new(
                Backends {
                    store,
                    seal: audit,
                    state,
                    fanout,
                },
                events.clone(),
                marks.clone(),
                policy,
                limits,
            )
            .with_deadline(self.config.backend_timeout()),
        );
        let verifier = Arc::new(TokenVerifier::new(
            &self.secrets.jwt_secret,
            &TokenRules::from_config(self.config),
        ));
        Ok((
            io,
            layer,
            Wired {
                chat,
                plugins,
                plugin_sync,
                plugin_admin,
                events,
                verifier,
                socket_limits: SocketLimits::from_config(self.config),
                pending: Arc::new(PendingHandshakes::from_config(self.config)),
                tasks: TaskTracker::new(),
                event_writer,
                plugin_events,
                marks,
                marks_writer,
            },
        ))
    }

    async fn serve<A: Adapter>(
        self,
        io: SocketIo<A>,
        layer: SocketIoLayer<A>,
        wired: Wired,
        describe: &str,
    ) -> anyhow::Result<()> {
        let surfaces = http::Surfaces {
            demo: self.config.demo_enabled(),
            dev: !self.config.is_production(),
        };
        let draining = CancellationToken::new();
        let ctx = HttpContext {
            chat: wired.chat.clone(),
            plugins: wired.plugin_admin.clone(),
            verifier: wired.verifier.clone(),
            issuer: Arc::new(TokenIssuer::new(
                &self.secrets.jwt_secret,
                &TokenRules::from_config(self.config),
            )),
            surfaces,
            service_token: self.secrets.service_token.as_str().into(),
            metrics: self.metrics,
            started: self.started,
            draining: draining.clone(),
        };
        // CORS outermost: it answers preflights before the bearer gate and covers
        // the Socket.IO long-polling requests too.
        let router = http::router(ctx)
            .layer(layer)
            .layer(from_fn_with_state(wired.pending.clone(), pending::limit));
        let router = http::with_cors(router, &self.config.cors()?);
        let stop = CancellationToken::new();
        let plugin_dir = self.config.plugin_dir();
        let mut watcher = None;
        let mut plugins = match &plugin_dir {
            Some(dir) => {
                let loaded = directory::load_all(&wired.plugins, dir);
                watcher = Some(directory::watch(
                    wired.plugins.clone(),
                    dir.clone(),
                    stop.clone(),
                )?);
                format!(
                    "{} from {} [{}]",
                    loaded.len(),
                    dir.display(),
                    loaded.join(", ")
                )
            }
            None => "none from a directory (no CHAT_PLUGIN_DIR)".to_owned(),
        };
        let stored = wired.plugin_sync.load_stored().await;
        plugins.push_str(&format!(
            ", {} stored [{}]",
            stored.len(),
            stored.join(", ")
        ));
        let sync_listener = wired.plugin_sync.clone().listen(stop.clone());
        let refresher = tokio::spawn(wired.chat.clone().refresh_presence(stop.clone()));
        let server = tokio::spawn({
            let stop = stop.clone();
            // No Nagle delay: small Socket.IO frames (acks, events) leave at once.
            // A peer that stops reading (its receive window stays shut) is dropped by
            // the kernel once written data waits longer than the heartbeat would;
            // otherwise a write to it blocks its connection, heartbeat included.
            let stalled =
                Duration::from_millis(self.config.ping_interval_ms + self.config.ping_timeout_ms);
            let tune = move |tcp: &tokio::net::TcpStream| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
                #[cfg(target_os = "linux")]
                if let Err(e) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(stalled)) {
                    tracing::debug!(error = %e, "TCP_USER_TIMEOUT not set");
                }
            };
            listener::serve(
                self.listener,
                router,
                ConnectionLimits::from_config(self.config),
                tune,
                stop,
            )
        });
        tracing::info!(%describe, "chat-host started");
        println!("chat-host listening on http://{}", self.addr);
        println!("chat-host console: http://{}/console", self.addr);
        if surfaces.demo {
            println!("chat-host demo chat: http://{}/demo", self.addr);
        }
        println!("chat-host stores: {describe}; plugins: {plugins}");

        shutdown_signal().await;
        draining.cancel();
        if self.config.drain_delay_ms > 0 {
            tracing::info!(
                delay_ms = self.config.drain_delay_ms,
                "shutting down: draining (/readyz answers 503) before closing"
            );
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(self.config.drain_delay_ms)) => {}
                () = shutdown_signal() => tracing::info!("second signal: closing now"),
            }
        }
        tracing::info!("shutting down: finishing in-flight events");
        stop.cancel();
        wired.tasks.close();
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, wired.tasks.wait()).await;
        // Disconnect this instance's sockets one by one, so their disconnect handlers
        // run (socketioxide's `close` drops the namespaces first and skips them).
        if let Err(e) = io.local().disconnect().await {
            tracing::warn!(error = %e, "disconnecting sockets at shutdown");
        }
        if !wired.chat.all_disconnected(DRAIN_TIMEOUT).await {
            tracing::warn!("some disconnects were not accounted before the drain timeout");
        }
        wired.chat.retire_presence().await;
        io.close().await;
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, wired.tasks.wait()).await;
        // Live deliveries end (acknowledged or timed out), their receipts are written.
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, wired.chat.deliveries_settled()).await;
        wired.marks.close();
        await_task("delivery receipts writer", wired.marks_writer).await;
        // Nothing publishes any more: the event stream, then the events plugins
        // (their audit rows), drain and end.
        wired.events.close();
        await_task("event stream writer", wired.event_writer).await;
        await_task("plugin events", wired.plugin_events).await;
        await_task("presence refresher", refresher).await;
        await_task("plugin change listener", sync_listener).await;
        if let Some(watcher) = watcher {
            await_task("plugin directory watcher", watcher).await;
        }
        match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
            Ok(result) => result?,
            Err(_) => tracing::warn!("connections still open after the drain timeout"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Waits up to [`DRAIN_TIMEOUT`] for a background task to end (logs a panic or a timeout).
async fn await_task(name: &str, task: JoinHandle<()>) {
    match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
        Ok(Ok(())) => tracing::debug!(task = name, "stopped"),
        Ok(Err(e)) => tracing::error!(task = name, error = %e, "background task failed"),
        Err(_) => tracing::warn!(task = name, "still running after the drain timeout"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
