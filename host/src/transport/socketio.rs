//! Socket.IO: handshake authentication, the client events' dispatch, acks,
//! and the [`Fanout`] implementation over socketioxide (local or Redis adapter).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::future::join_all;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::Sid;
use socketioxide::{AckError, SocketError};
use socketioxide_core::adapter::DefinedAdapter;
use tokio::sync::Mutex;
use tokio_util::task::TaskTracker;

use crate::auth::{Identity, TokenVerifier};
use crate::chat::ChatService;
use crate::chat::error::ChatError;
use crate::chat::fanout::{Fanout, thread_room, user_room};
use crate::domain::ids::parse_message_id;
use crate::domain::server_events::{
    CloseReason, MessageEvent, ReadyEvent, ResyncEvent, ServerEvent,
};
use crate::domain::{Actor, ConnectionId, MessageId, now_ms, rfc3339};
use crate::transport::pending::PendingHandshakes;
use crate::transport::session::{Guard, Refusal, SocketLimits, closing, expiry_time};

/// Longest wait for one broadcast to be handed to the adapter.
const EMIT_TIMEOUT: Duration = Duration::from_secs(3);

/// [`Fanout`] over a socketioxide handle; with the Redis adapter it reaches every instance.
pub struct SocketFanout<A: Adapter> {
    io: SocketIo<A>,
}

impl<A: Adapter> SocketFanout<A> {
    /// Fan-out through `io`.
    pub fn new(io: SocketIo<A>) -> Self {
        Self { io }
    }
}

/// Whether an ack answer shows the client has the event: any answer does, even
/// one whose arguments do not parse; a timeout or a closed socket does not.
fn answered<T>(result: &Result<T, AckError>) -> bool {
    matches!(result, Ok(_) | Err(AckError::Decode(_)))
}

#[async_trait]
impl<A: Adapter> Fanout for SocketFanout<A> {
    async fn emit_except(
        &self,
        rooms: Vec<String>,
        except_rooms: Vec<String>,
        except: Option<&ConnectionId>,
        event: &ServerEvent,
    ) {
        let name = event.name();
        // `of` instead of `to`: during shutdown the namespace may already be gone.
        let Some(namespace) = self.io.of("/") else {
            tracing::debug!(event = name, "namespace closed; broadcast dropped");
            return;
        };
        let sender = except
            .and_then(|c| c.0.parse::<Sid>().ok())
            .and_then(|sid| namespace.get_socket(sid));
        let operators = match sender {
            Some(socket) => socket.to(rooms),
            None => namespace.to(rooms),
        }
        .except(except_rooms);
        match tokio::time::timeout(EMIT_TIMEOUT, operators.emit(name, event)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(event = name, error = %e, "broadcast failed"),
            Err(_) => tracing::warn!(event = name, "broadcast timed out"),
        }
    }

    async fn deliver(&self, user: &str, event: &ServerEvent, timeout: Duration) -> bool {
        let name = event.name();
        let Some(namespace) = self.io.of("/") else {
            return false;
        };
        let emitted = namespace
            .to(user_room(user))
            .timeout(timeout)
            .emit_with_ack::<_, IgnoredAny>(name, event);
        let acks = match tokio::time::timeout(EMIT_TIMEOUT, emitted).await {
            Ok(Ok(acks)) => acks,
            Ok(Err(e)) => {
                tracing::warn!(event = name, error = %e, "delivery failed");
                return false;
            }
            Err(_) => {
                tracing::warn!(event = name, "delivery timed out");
                return false;
            }
        };
        let mut acks = Box::pin(acks);
        while let Some((_, result)) = acks.next().await {
            if answered(&result) {
                // The other devices' answers are still read (until they all
                // answered or timed out), so the Redis adapter does not get
                // answers for a request it forgot.
                tokio::spawn(async move { while acks.next().await.is_some() {} });
                return true;
            }
            if matches!(
                result,
                Err(AckError::Socket(SocketError::InternalChannelFull))
            ) {
                // A client that stopped reading: its buffer is full, the message
                // stays owed, and the heartbeat closes the connection.
                metrics::counter!("chat_send_buffer_full_total").increment(1);
            }
        }
        false
    }
}

/// Why a handshake was refused: the `connect_error` message.
#[derive(Debug)]
enum Refused {
    /// No valid token (the contract's one message for it).
    Unauthorized,
    /// The user already holds [`SocketLimits::max_sockets_per_user`] sockets here.
    TooManySockets,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Unauthorized => "unauthorized",
            Refused::TooManySockets => "too many connections for this user",
        })
    }
}

/// Per-socket lifecycle, so connect and disconnect bookkeeping never cross.
#[derive(Default)]
struct Session {
    /// The handshake's resume cursor (`auth.lastMessageId`), when well-formed.
    cursor: Option<MessageId>,
    counted: bool,
    gone: bool,
}

/// What a socket holds from its handshake on, as its one extension (an
/// `Arc`, so the per-socket cost is one allocation, not one per handler).
struct Conn {
    /// The handshake's identity (a refreshed token must name the same user and role).
    identity: Identity,
    actor: Actor,
    guard: Guard,
    session: Mutex<Session>,
}

/// The client event answered without a use case or the event budget.
const REFRESH_TOKEN: &str = "chat:refresh-token";

/// The client events that run a use case, through [`Handlers::event`]; a
/// name that is neither one of them nor [`REFRESH_TOKEN`] gets `invalid_payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UseCase {
    Join,
    Leave,
    Typing,
    SendMessage,
    Read,
    History,
}

impl UseCase {
    const ALL: [UseCase; 6] = [
        Self::Join,
        Self::Leave,
        Self::Typing,
        Self::SendMessage,
        Self::Read,
        Self::History,
    ];

    /// The event's name on the wire (and in metrics).
    fn name(self) -> &'static str {
        match self {
            Self::Join => "chat:join",
            Self::Leave => "chat:leave",
            Self::Typing => "chat:typing",
            Self::SendMessage => "chat:send-message",
            Self::Read => "chat:read",
            Self::History => "chat:history",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// Everything the handlers share.
#[derive(Clone)]
struct Handlers {
    chat: Arc<ChatService>,
    verifier: Arc<TokenVerifier>,
    limits: SocketLimits,
    pending: Arc<PendingHandshakes>,
    tasks: TaskTracker,
}

/// Registers the default namespace; the result must be spawned (local adapter)
/// or awaited (Redis adapter) by the caller.
pub fn register<A: Adapter + DefinedAdapter>(
    io: &SocketIo<A>,
    chat: Arc<ChatService>,
    verifier: Arc<TokenVerifier>,
    limits: SocketLimits,
    pending: Arc<PendingHandshakes>,
    tasks: TaskTracker,
) -> A::InitRes {
    let h = Handlers {
        chat,
        verifier,
        limits,
        pending,
        tasks,
    };
    let auth = {
        let h = h.clone();
        move |socket: SocketRef<A>, TryData(auth): TryData<Value>| {
            let h = h.clone();
            async move { h.authenticate(socket, auth.ok()) }
        }
    };
    let connected = move |socket: SocketRef<A>| {
        let h = h.clone();
        let tasks = h.tasks.clone();
        async move { tasks.track_future(h.connected(socket)).await }
    };
    io.ns("/", connected.with(auth))
}

impl Handlers {
    /// Handshake middleware: verifies the token, then prepares the socket before the
    /// client can send anything (handlers registered, user room joined).
    fn authenticate<A: Adapter>(
        &self,
        socket: SocketRef<A>,
        auth: Option<Value>,
    ) -> Result<(), Refused> {
        // The client only learns `unauthorized` (the contract); the reason is
        // logged and counted for the operator.
        let refused = |reason: &'static str, detail: &dyn std::fmt::Display| {
            tracing::debug!(reason, %detail, "handshake refused");
            metrics::counter!("chat_handshakes_refused_total", "reason" => reason).increment(1);
            Refused::Unauthorized
        };
        let token = auth
            .as_ref()
            .and_then(|a| a.get("token"))
            .and_then(Value::as_str)
            .ok_or_else(|| refused("missing", &"no auth.token string"))?;
        let identity = self
            .verifier
            .verify(token)
            .map_err(|e| refused(e.reason(), &e))?;
        if socket.within(user_room(&identity.user_id)).sockets().len()
            >= self.limits.max_sockets_per_user
        {
            metrics::counter!("chat_handshakes_refused_total", "reason" => "too_many_sockets")
                .increment(1);
            return Err(Refused::TooManySockets);
        }
        self.pending.authenticated();
        let actor = Actor {
            user_id: identity.user_id.clone(),
            role: identity.role,
            connection: Some(ConnectionId(socket.id.to_string())),
        };
        let cursor = auth
            .as_ref()
            .and_then(|a| a.get("lastMessageId"))
            .and_then(|c| {
                let parsed = c.as_str().and_then(parse_message_id);
                if parsed.is_none() {
                    // Ignored, never an error that locks a client out.
                    metrics::counter!("chat_bad_cursors_total").increment(1);
                }
                parsed
            });
        socket.join(user_room(&identity.user_id));
        let conn = Arc::new(Conn {
            guard: Guard::new(&identity, self.limits),
            identity,
            actor,
            session: Mutex::new(Session {
                cursor,
                ..Session::default()
            }),
        });
        socket.extensions.insert::<Arc<Conn>>(conn.clone());
        {
            let (socket, conn) = (socket.clone(), conn.clone());
            tokio::spawn(async move {
                if conn.guard.expired().await {
                    close(&socket, CloseReason::TokenExpired);
                }
            });
        }
        // One handler for every event (one allocation per socket, not one per event).
        let h = self.clone();
        socket.on_fallback(
            move |socket: SocketRef<A>,
                  Event(event): Event,
                  TryData(data): TryData<Value>,
                  ack: AckSender<A>| {
                let h = h.clone();
                let tasks = h.tasks.clone();
                tasks.track_future(h.event(socket, event, data.ok(), ack))
            },
        );
        let h = self.clone();
        socket.on_disconnect(move |socket: SocketRef<A>| {
            let h = h.clone();
            let tasks = h.tasks.clone();
            async move { tasks.track_future(h.disconnected(socket)).await }
        });
        Ok(())
    }

    /// After the handshake: presence, offline queue, then `chat:ready`.
    async fn connected<A: Adapter>(self, socket: SocketRef<A>) {
        let Some(conn) = socket.extensions.get::<Arc<Conn>>() else {
            return;
        };
        let (identity, actor) = (&conn.identity, &conn.actor);
        let arrival = {
            let mut session = conn.session.lock().await;
            if session.gone {
                return;
            }
            session.counted = true;
            self.chat.connect(actor, session.cursor).await
        };
        // Every owed message asks for an ack; an acknowledged one is delivered.
        let mut acks = Vec::with_capacity(arrival.queued.len());
        for message in arrival.queued {
            let Some(id) = parse_message_id(&message.id) else {
                continue;
            };
            let event = ServerEvent::from(MessageEvent { message });
            match socket.emit_with_ack::<_, IgnoredAny>(event.name(), &event) {
                Ok(ack) => acks.push(async move { answered(&ack.await).then_some(id) }),
                Err(e) => {
                    tracing::warn!(error = %e, "owed message not emitted; it is sent again on the next connect");
                    break;
                }
            }
        }
        if !acks.is_empty() {
            let (chat, actor) = (self.chat.clone(), actor.clone());
            self.tasks.spawn(async move {
                let acked: Vec<MessageId> = join_all(acks).await.into_iter().flatten().collect();
                chat.acknowledged(&actor, &acked);
            });
        }
        if !arrival.resync_threads.is_empty() {
            let resync = ServerEvent::from(ResyncEvent {
                thread_ids: arrival.resync_threads,
            });
            let _ = socket.emit(resync.name(), &resync);
        }
        let ready = ServerEvent::from(ReadyEvent {
            user_id: identity.user_id.clone(),
            role: identity.role,
            server_time: rfc3339(now_ms()),
            token_expires_at: expiry_time(identity.expires_at),
        });
        let _ = socket.emit(ready.name(), &ready);
    }

    async fn disconnected<A: Adapter>(self, socket: SocketRef<A>) {
        let Some(conn) = socket.extensions.get::<Arc<Conn>>() else {
            return;
        };
        conn.guard.close();
        let mut session = conn.session.lock().await;
        session.gone = true;
        if session.counted {
            self.chat.disconnect(&conn.actor).await;
        }
    }

    /// Answers one client event: admit it ([`Guard::admit`]), decode, run the
    /// use case, ack `{ ok, ... }`; close a socket that keeps flooding.
    async fn event<A: Adapter>(
        self,
        socket: SocketRef<A>,
        event: String,
        data: Option<Value>,
        ack: AckSender<A>,
    ) {
        let started = Instant::now();
        let Some(conn) = socket.extensions.get::<Arc<Conn>>() else {
            return;
        };
        let no_payload = || ChatError::invalid("a payload object is required");
        if event == REFRESH_TOKEN {
            let result = data.ok_or_else(no_payload).and_then(|data| {
                json_answer(conn.guard.refresh(&self.verifier, &conn.identity, data)?)
            });
            return answer(REFRESH_TOKEN, ack, result, started);
        }
        let Some(event) = UseCase::parse(&event) else {
            // Every event takes an ack: one the server does not know gets `invalid_payload`.
            let error = ChatError::invalid("unknown event");
            if let Err(e) = ack.send(&json!({ "ok": false, "error": error.to_wire() })) {
                tracing::debug!(error = %e, "ack not sent");
            }
            return;
        };
        let result = match (conn.guard.admit().await, data) {
            (Err(refused), _) => Err(refused),
            (Ok(_permit), Some(data)) => {
                let use_case = run(self.chat.clone(), socket.clone(), conn.clone(), event, data);
                self.chat.bounded(use_case).await
            }
            (Ok(_), None) => Err(no_payload()),
        };
        let refusal = match result {
            Err(ChatError::RateLimited { .. }) => conn.guard.refused(),
            _ => Refusal::Answer,
        };
        if refusal == Refusal::Drop {
            return;
        }
        answer(event.name(), ack, result, started);
        if refusal == Refusal::Close {
            metrics::counter!("chat_flooders_disconnected_total").increment(1);
            close(&socket, CloseReason::Flooding);
        }
    }
}

/// Runs the use case of one admitted client event; its answer as JSON.
async fn run<A: Adapter>(
    chat: Arc<ChatService>,
    socket: SocketRef<A>,
    conn: Arc<Conn>,
    event: UseCase,
    data: Value,
) -> Result<Value, ChatError> {
    let actor = &conn.actor;
    match event {
        UseCase::Join => {
            let joined = chat.join(actor, data).await?;
            socket.join(thread_room(&joined.thread.id));
            json_answer(joined)
        }
        UseCase::Leave => {
            socket.leave(thread_room(&chat.leave(actor, data).await?));
            Ok(json!({}))
        }
        UseCase::Typing => json_answer(chat.typing(actor, data).await?),
        UseCase::SendMessage => json_answer(chat.send_message(actor, data).await?),
        UseCase::Read => json_answer(chat.read(actor, data).await?),
        UseCase::History => json_answer(chat.history(actor, data).await?),
    }
}

/// A use case's answer as the JSON of its ack.
fn json_answer(answer: impl serde::Serialize) -> Result<Value, ChatError> {
    serde_json::to_value(answer).map_err(|e| ChatError::Internal(e.into()))
}

/// Tells the socket why with `chat:closing`, then disconnects it.
fn close<A: Adapter>(socket: &SocketRef<A>, reason: CloseReason) {
    let event = ServerEvent::from(closing(reason));
    if let Err(e) = socket.emit(event.name(), &event) {
        tracing::debug!(error = %e, "chat:closing not sent");
    }
    if let Err(e) = socket.clone().disconnect() {
        // A full buffer: the heartbeat closes the connection instead.
        tracing::debug!(error = %e, ?reason, "socket not disconnected");
    }
}

/// Sends the ack (if the client asked for one) and records the outcome.
fn answer<A: Adapter>(
    event: &'static str,
    ack: AckSender<A>,
    result: Result<Value, ChatError>,
    started: Instant,
) {
    let (outcome, payload) = match result {
        Ok(mut value) => {
            if let Some(map) = value.as_object_mut() {
                map.insert("ok".into(), Value::Bool(true));
            }
            ("ok", value)
        }
        Err(e) => {
            match &e {
                ChatError::Internal(cause) => {
                    tracing::error!(event, error = ?cause, "internal error")
                }
                other => {
                    tracing::debug!(event, code = other.code(), error = %other, "event refused")
                }
            }
            (e.code(), json!({ "ok": false, "error": e.to_wire() }))
        }
    };
    metrics::counter!("chat_socket_events_total", "event" => event, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("chat_socket_event_seconds", "event" => event)
        .record(started.elapsed().as_secs_f64());
    if let Err(e) = ack.send(&payload) {
        tracing::debug!(event, error = %e, "ack not sent");
    }
}
