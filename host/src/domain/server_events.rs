//! Every server -> client Socket.IO event with its payload, listed once.

use serde::Serialize;

use super::model::MessageView;
use super::role::Role;

/// `chat:message`: a new message of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageEvent {
    /// The stored message.
    pub message: MessageView,
}

/// `chat:typing`: a participant started or stopped typing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingEvent {
    /// Thread.
    pub thread_id: String,
    /// Who types.
    pub user_id: String,
    /// Started (true) or stopped (false).
    pub is_typing: bool,
}

/// `chat:read`: a participant's last-read mark moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadEvent {
    /// Thread.
    pub thread_id: String,
    /// Whose mark.
    pub user_id: String,
    /// The mark (decimal string).
    pub message_id: String,
    /// RFC 3339 time of the move.
    pub read_at: String,
}

/// `chat:presence`: a user's first socket connected or last one disconnected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEvent {
    /// The user.
    pub user_id: String,
    /// Online now.
    pub online: bool,
    /// RFC 3339 time the user went offline (only when `online` is false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<String>,
}

/// `chat:resync`: the offline queue overflowed; re-read these threads' history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResyncEvent {
    /// Threads with messages that were dropped from the queue.
    pub thread_ids: Vec<String>,
}

/// `chat:ready`: the connection is set up; the offline queue was delivered before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyEvent {
    /// The authenticated user.
    pub user_id: String,
    /// Their role (from the token).
    pub role: Role,
    /// RFC 3339 server time.
    pub server_time: String,
    /// RFC 3339 time the socket's token expires; refresh it before with
    /// `chat:refresh-token`, or the server closes the socket then.
    pub token_expires_at: String,
}

/// Why the server is about to close a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// The token expired and was not refreshed: reconnect with a new one.
    TokenExpired,
    /// The socket kept sending past its budgets: back off, then reconnect.
    Flooding,
}

/// `chat:closing`: the server disconnects this socket right after this event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosingEvent {
    /// What the client should do about it.
    pub reason: CloseReason,
    /// Human text.
    pub message: String,
}

/// Declares [`ServerEvent`] with its wire names, listed once.
macro_rules! server_events {
    ($($(#[doc = $doc:literal])* $variant:ident($payload:ty) = $name:literal,)*) => {
        /// A server -> client event; serializes as its payload.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(untagged)]
        pub enum ServerEvent {
            $($(#[doc = $doc])* $variant($payload),)*
        }

        impl ServerEvent {
            /// Every event name, in declaration order.
            pub const NAMES: &[&str] = &[$($name,)*];

            /// The Socket.IO event name, e.g. `chat:message`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(ServerEvent::$variant(_) => $name,)*
                }
            }
        }

        $(impl From<$payload> for ServerEvent {
            fn from(payload: $payload) -> Self {
                ServerEvent::$variant(payload)
            }
        })*
    };
}

server_events! {
    /// A new message.
    Message(MessageEvent) = "chat:message",
    /// Typing started or stopped.
    Typing(TypingEvent) = "chat:typing",
    /// A read mark moved.
    Read(ReadEvent) = "chat:read",
    /// A user came online or went offline.
    Presence(PresenceEvent) = "chat:presence",
    /// Threads to re-read after an offline-queue overflow.
    Resync(ResyncEvent) = "chat:resync",
    /// Set up; sent last on connect.
    Ready(ReadyEvent) = "chat:ready",
    /// The server closes the socket now, and why.
    Closing(ClosingEvent) = "chat:closing",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_serializes_as_its_payload() {
        let event = ServerEvent::from(TypingEvent {
            thread_id: "t".into(),
            user_id: "u".into(),
            is_typing: true,
        });
        assert_eq!(event.name(), "chat:typing");
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            serde_json::json!({ "threadId": "t", "userId": "u", "isTyping": true })
        );
        let presence = ServerEvent::from(PresenceEvent {
            user_id: "u".into(),
            online: true,
            last_seen_at: None,
        });
        assert_eq!(
            serde_json::to_value(&presence).unwrap(),
            serde_json::json!({ "userId": "u", "online": true })
        );
    }
}
