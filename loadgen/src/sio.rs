//! A minimal Socket.IO v4 client (Engine.IO 4 over WebSocket only, default
//! namespace, JSON payloads, no binary attachments): the framing and the
//! socket that uses it.
//!
//! Framing, one Engine.IO packet per WebSocket text frame:
//! `0{...}` open, `1` close, `2` ping, `3` pong, `4<sio>` message, where the
//! Socket.IO packet `<sio>` is `0{auth}` connect, `1` disconnect,
//! `2<ackId?>["event",data]` event, `3<ackId>[data]` ack, `4{...}` connect error.
//! This client never answers server-side acks (chat-host asks for none).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// One decoded Engine.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `0{...}`: the handshake (`sid`, `pingInterval`, `pingTimeout`, ...).
    Open(Value),
    /// `1`: the server closes the transport.
    Close,
    /// `2`: heartbeat from the server; answer with [`PONG`].
    Ping,
    /// `3`: heartbeat answer.
    Pong,
    /// `4...`: a Socket.IO packet.
    Message(Packet),
    /// `5` or `6`: transport upgrade chatter, meaningless over a plain WebSocket.
    Noop,
}

/// One decoded Socket.IO packet of the default namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// `40{...}`: connected (the payload holds the socket `sid`).
    Connect(Value),
    /// `41`: the server disconnected the socket.
    Disconnect,
    /// `42<ack?>["name",data]`: an event; `ack` is set when the sender wants an answer.
    Event {
        /// Acknowledgement id requested by the sender, if any.
        ack: Option<u64>,
        /// Event name.
        name: String,
        /// First argument (`Null` when there is none).
        data: Value,
    },
    /// `43<id>[data]`: the answer to one of our events.
    Ack {
        /// The id we sent with the event.
        id: u64,
        /// First argument of the answer (`Null` when there is none).
        data: Value,
    },
    /// `44{...}`: the connection was refused (`message` says why).
    ConnectError(Value),
}

/// Engine.IO pong, the answer to every ping.
pub const PONG: &str = "3";

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError(pub String);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad frame: {}", self.0)
    }
}

impl std::error::Error for FrameError {}

fn bad(why: impl Into<String>) -> FrameError {
    FrameError(why.into())
}

/// Decodes one WebSocket text frame.
pub fn decode(text: &str) -> Result<Frame, FrameError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or_else(|| bad("empty frame"))?;
    let rest = chars.as_str();
    match kind {
        '0' => Ok(Frame::Open(json(rest)?)),
        '1' => Ok(Frame::Close),
        '2' => Ok(Frame::Ping),
        '3' => Ok(Frame::Pong),
        '4' => decode_packet(rest).map(Frame::Message),
        '5' | '6' => Ok(Frame::Noop),
        other => Err(bad(format!("unknown engine.io type {other:?}"))),
    }
}

fn decode_packet(text: &str) -> Result<Packet, FrameError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or_else(|| bad("empty socket.io packet"))?;
    let mut rest = chars.as_str();
    if rest.starts_with('/') {
        // `<type>/nsp,...`: only the default namespace is spoken here.
        let (nsp, after) = rest.split_once(',').unwrap_or((rest, ""));
        if nsp != "/" {
            return Err(bad(format!("namespace {nsp} is not supported")));
        }
        rest = after;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (id, body) = rest.split_at(digits);
    let id = if id.is_empty() {
        None
    } else {
        Some(id.parse::<u64>().map_err(|_| bad("ack id overflows"))?)
    };
    match kind {
        '0' => Ok(Packet::Connect(if body.is_empty() {
            Value::Null
        } else {
            json(body)?
        })),
        '1' => Ok(Packet::Disconnect),
        '2' => {
            let mut args = array(body)?.into_iter();
            let name = match args.next() {
                Some(Value::String(name)) => name,
                _ => return Err(bad("event without a name")),
            };
            let data = args.next().unwrap_or(Value::Null);
            Ok(Packet::Event {
                ack: id,
                name,
                data,
            })
        }
        '3' => {
            let id = id.ok_or_else(|| bad("ack without an id"))?;
            let data = array(body)?.into_iter().next().unwrap_or(Value::Null);
            Ok(Packet::Ack { id, data })
        }
        '4' => Ok(Packet::ConnectError(json(body)?)),
        '5' | '6' => Err(bad("binary packets are not supported")),
        other => Err(bad(format!("unknown socket.io type {other:?}"))),
    }
}

fn json(text: &str) -> Result<Value, FrameError> {
    serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))
}

fn array(text: &str) -> Result<Vec<Value>, FrameError> {
    match json(text)? {
        Value::Array(items) => Ok(items),
        _ => Err(bad("expected a JSON array")),
    }
}

/// `40{auth}`: connect to the default namespace with handshake auth.
pub fn encode_connect(auth: &Value) -> String {
    format!("40{auth}")
}

/// `43<id>[]`: the empty answer to the server's event `id`.
pub fn encode_ack(id: u64) -> String {
    format!("43{id}[]")
}

/// `42<ack?>["name",data]`: an event, asking for an answer when `ack` is set.
pub fn encode_event(name: &str, data: &Value, ack: Option<u64>) -> String {
    let args = Value::Array(vec![Value::String(name.to_owned()), data.clone()]);
    match ack {
        Some(id) => format!("42{id}{args}"),
        None => format!("42{args}"),
    }
}

/// The `ws://.../socket.io/?EIO=4&transport=websocket` address of a server
/// given as `http://host:port[/prefix]` (or `ws://`).
pub fn socket_url(base: &str) -> Result<String, FrameError> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("http://") {
        rest
    } else if let Some(rest) = base.strip_prefix("ws://") {
        rest
    } else {
        return Err(bad(format!(
            "{base}: only http:// and ws:// addresses are supported"
        )));
    };
    Ok(format!("ws://{rest}/socket.io/?EIO=4&transport=websocket"))
}

/// Called by the socket's reader for every server event, with the time its frame arrived.
pub type EventHandler = Box<dyn FnMut(&str, Value, Instant) + Send>;

/// Why a connection attempt failed; [`ConnectError::kind`] is a short label to count by.
#[derive(Debug)]
pub enum ConnectError {
    /// TCP or WebSocket upgrade failed.
    Transport(String),
    /// The server answered `44` (`connect_error`) with this message.
    Refused(String),
    /// The server closed before the handshake finished.
    Closed,
    /// The server spoke something else.
    Protocol(String),
}

impl ConnectError {
    /// Short label: `transport`, `refused:<message>`, `closed`, `protocol`.
    pub fn kind(&self) -> String {
        match self {
            Self::Transport(_) => "transport".into(),
            Self::Refused(m) => format!("refused:{m}"),
            Self::Closed => "closed".into(),
            Self::Protocol(_) => "protocol".into(),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "transport: {e}"),
            Self::Refused(m) => write!(f, "refused: {m}"),
            Self::Closed => f.write_str("closed during the handshake"),
            Self::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Why an acknowledged emit got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// No answer within the timeout.
    Timeout,
    /// The socket closed first.
    Disconnected,
}

impl AckError {
    /// Short label, `timeout` or `disconnected`, used like a server error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Disconnected => "disconnected",
        }
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<(Value, Instant)>>>>;

/// A connected Socket.IO socket; dropped or [`Socket::close`]d, it hangs up.
pub struct Socket {
    tx: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_ack: AtomicU64,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Socket {
    /// Connects to `ws_url` (see [`socket_url`]) with handshake `auth`, then reads
    /// until the server emits `wait_for` (when given) and returns its payload.
    /// Every event, including those before `wait_for`, goes to `handler`.
    pub async fn connect(
        ws_url: &str,
        auth: &Value,
        wait_for: Option<&str>,
        mut handler: EventHandler,
    ) -> Result<(Socket, Value), ConnectError> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(ws_url, None, true)
            .await
            .map_err(|e| ConnectError::Transport(e.to_string()))?;
        let (mut sink, mut stream) = ws.split();
        let mut connected = false;
        let mut ready = Value::Null;
        loop {
            let text = match stream.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | None => return Err(ConnectError::Closed),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ConnectError::Transport(e.to_string())),
            };
            let frame = decode(&text).map_err(|e| ConnectError::Protocol(e.to_string()))?;
            let reply = match frame {
                Frame::Open(_) => Some(encode_connect(auth)),
                Frame::Ping => Some(PONG.to_owned()),
                Frame::Close | Frame::Message(Packet::Disconnect) => {
                    return Err(ConnectError::Closed);
                }
                Frame::Message(Packet::ConnectError(e)) => {
                    let message = e.get("message").and_then(Value::as_str).unwrap_or("");
                    return Err(ConnectError::Refused(message.to_owned()));
                }
                Frame::Message(Packet::Connect(_)) => {
                    connected = true;
                    None
                }
                Frame::Message(Packet::Event { name, data, ack }) => {
                    if wait_for == Some(name.as_str()) {
                        ready = data;
                        break;
                    }
                    handler(&name, data, Instant::now());
                    ack.map(encode_ack)
                }
                Frame::Pong | Frame::Noop | Frame::Message(Packet::Ack { .. }) => None,
            };
            if let Some(reply) = reply {
                sink.send(Message::text(reply))
                    .await
                    .map_err(|e| ConnectError::Transport(e.to_string()))?;
            }
            if connected && wait_for.is_none() {
                break;
            }
        }

        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                for message in batch {
                    let closing = matches!(message, Message::Close(_));
                    if sink.feed(message).await.is_err() {
                        return;
                    }
                    if closing {
                        let _ = sink.flush().await;
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        });
        let pending = Pending::default();
        let reader = {
            let (tx, pending) = (tx.clone(), pending.clone());
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let at = Instant::now();
                    let text = match message {
                        Message::Text(text) => text,
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    match decode(&text) {
                        Ok(Frame::Ping) => {
                            let _ = tx.send(Message::text(PONG));
                        }
                        Ok(Frame::Message(Packet::Event { name, data, ack })) => {
                            handler(&name, data, at);
                            // The server asks for one on `chat:message`: it marks the delivery.
                            if let Some(id) = ack {
                                let _ = tx.send(Message::text(encode_ack(id)));
                            }
                        }
                        Ok(Frame::Message(Packet::Ack { id, data })) => {
                            let waiter = pending.lock().expect("pending acks").remove(&id);
                            if let Some(waiter) = waiter {
                                let _ = waiter.send((data, at));
                            }
                        }
                        Ok(Frame::Close | Frame::Message(Packet::Disconnect)) => break,
                        Ok(_) => {}
                        Err(e) => eprintln!("chat-load: ignoring {e}"),
                    }
                }
                // Dropping the waiters wakes every caller with `Disconnected`.
                pending.lock().expect("pending acks").clear();
            })
        };
        Ok((
            Socket {
                tx,
                pending,
                next_ack: AtomicU64::new(0),
                reader,
                writer,
            },
            ready,
        ))
    }

    /// Emits `name` with an ack id; the receiver yields the answer and the
    /// instant its frame arrived, or an error when the socket closes first.
    pub fn emit_with_ack(&self, name: &str, data: &Value) -> oneshot::Receiver<(Value, Instant)> {
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (done, answer) = oneshot::channel();
        self.pending.lock().expect("pending acks").insert(id, done);
        if self
            .tx
            .send(Message::text(encode_event(name, data, Some(id))))
            .is_err()
        {
            self.pending.lock().expect("pending acks").remove(&id);
        }
        answer
    }

    /// Emits `name` and waits up to `timeout` for the answer.
    pub async fn request(
        &self,
        name: &str,
        data: &Value,
        timeout: Duration,
    ) -> Result<Value, AckError> {
        wait_ack(self.emit_with_ack(name, data), timeout)
            .await
            .map(|(value, _)| value)
    }

    /// Whether the connection is gone (the server hung up or the socket closed).
    pub fn is_closed(&self) -> bool {
        self.reader.is_finished()
    }

    /// Sends a Socket.IO disconnect and a WebSocket close, then stops.
    pub async fn close(self) {
        let _ = self.tx.send(Message::text("41"));
        let _ = self.tx.send(Message::Close(None));
        let _ = tokio::time::timeout(Duration::from_secs(2), self.writer).await;
        self.reader.abort();
    }
}

/// Waits up to `timeout` for an answer from [`Socket::emit_with_ack`].
pub async fn wait_ack(
    answer: oneshot::Receiver<(Value, Instant)>,
    timeout: Duration,
) -> Result<(Value, Instant), AckError> {
    match tokio::time::timeout(timeout, answer).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(AckError::Disconnected),
        Err(_) => Err(AckError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_engine_io_packets() {
        assert_eq!(
            decode(r#"0{"sid":"abc","pingInterval":25000}"#).unwrap(),
            Frame::Open(json!({"sid": "abc", "pingInterval": 25000}))
        );
        assert_eq!(decode("1").unwrap(), Frame::Close);
        assert_eq!(decode("2").unwrap(), Frame::Ping);
        assert_eq!(decode("2probe").unwrap(), Frame::Ping);
        assert_eq!(decode("3").unwrap(), Frame::Pong);
        assert_eq!(decode("6").unwrap(), Frame::Noop);
        assert!(decode("").is_err());
        assert!(decode("9").is_err());
        assert!(decode("0{not json").is_err());
    }

    #[test]
    fn decodes_connect_and_connect_error() {
        assert_eq!(
            decode(r#"40{"sid":"s1"}"#).unwrap(),
            Frame::Message(Packet::Connect(json!({"sid": "s1"})))
        );
        assert_eq!(
            decode("40").unwrap(),
            Frame::Message(Packet::Connect(Value::Null))
        );
        assert_eq!(
            decode(r#"44{"message":"unauthorized"}"#).unwrap(),
            Frame::Message(Packet::ConnectError(json!({"message": "unauthorized"})))
        );
        assert_eq!(decode("41").unwrap(), Frame::Message(Packet::Disconnect));
    }

    #[test]
    fn decodes_events_with_and_without_ack_ids() {
        assert_eq!(
            decode(r#"42["chat:ready",{"userId":"u1"}]"#).unwrap(),
            Frame::Message(Packet::Event {
                ack: None,
                name: "chat:ready".into(),
                data: json!({"userId": "u1"}),
            })
        );
        assert_eq!(
            decode(r#"4217["ping"]"#).unwrap(),
            Frame::Message(Packet::Event {
                ack: Some(17),
                name: "ping".into(),
                data: Value::Null,
            })
        );
        // The default namespace may be spelled out.
        assert_eq!(
            decode(r#"42/,3["x",1]"#).unwrap(),
            Frame::Message(Packet::Event {
                ack: Some(3),
                name: "x".into(),
                data: json!(1),
            })
        );
        assert!(decode(r#"42/admin,["x"]"#).is_err());
        assert!(decode(r#"42[1,2]"#).is_err());
        assert!(decode(r#"42{"a":1}"#).is_err());
        assert!(decode(r#"451-["x",{"_placeholder":true,"num":0}]"#).is_err());
    }

    #[test]
    fn decodes_acks() {
        assert_eq!(
            decode(r#"43123[{"ok":true,"message":{"id":"9"}}]"#).unwrap(),
            Frame::Message(Packet::Ack {
                id: 123,
                data: json!({"ok": true, "message": {"id": "9"}}),
            })
        );
        assert_eq!(
            decode("430[]").unwrap(),
            Frame::Message(Packet::Ack {
                id: 0,
                data: Value::Null
            })
        );
        assert!(decode(r#"43[{"ok":true}]"#).is_err());
        assert!(decode(r#"4399999999999999999999[1]"#).is_err());
    }

    #[test]
    fn encodes_what_it_decodes() {
        let auth = json!({"token": "t.k.n"});
        assert_eq!(encode_connect(&auth), r#"40{"token":"t.k.n"}"#);
        let data = json!({"threadId": "t1", "body": "hi \"there\""});
        let with_ack = encode_event("chat:send-message", &data, Some(5));
        assert!(with_ack.starts_with(r#"425["chat:send-message","#));
        assert_eq!(
            decode(&with_ack).unwrap(),
            Frame::Message(Packet::Event {
                ack: Some(5),
                name: "chat:send-message".into(),
                data: data.clone(),
            })
        );
        assert_eq!(
            decode(&encode_event("chat:typing", &data, None)).unwrap(),
            Frame::Message(Packet::Event {
                ack: None,
                name: "chat:typing".into(),
                data: data.clone(),
            })
        );
    }

    #[test]
    fn builds_socket_urls() {
        assert_eq!(
            socket_url("http://127.0.0.1:3000/").unwrap(),
            "ws://127.0.0.1:3000/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            socket_url("ws://h:1").unwrap(),
            "ws://h:1/socket.io/?EIO=4&transport=websocket"
        );
        assert!(socket_url("https://h").is_err());
    }
}
