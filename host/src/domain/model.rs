//! Domain records and their wire (camelCase JSON) forms, and who acts.

use serde::{Deserialize, Serialize};

use super::clock::{Millis, rfc3339};
use super::ids::MessageId;
use super::role::Role;

/// Identifies one socket of a user (the Socket.IO session id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub String);

/// Who is acting: a user on one of their sockets, or the service API.
#[derive(Debug, Clone)]
pub struct Actor {
    /// User id (JWT `sub`), or `service` for the service token.
    pub user_id: String,
    /// Role from the token (it wins over the role of the stored profile).
    pub role: Role,
    /// The socket the action came from; it is left out of the action's broadcasts.
    pub connection: Option<ConnectionId>,
}

/// A user's profile as the marketplace registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProfile {
    /// User id (same format as JWT `sub`).
    pub id: String,
    /// Name shown to others.
    pub display_name: String,
    /// Optional picture URL.
    pub avatar_url: Option<String>,
    /// Marketplace role.
    pub role: Role,
}

/// A participant of a thread with the profile fields shown in `chat:join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantProfile {
    /// User id.
    pub user_id: String,
    /// Name shown to others.
    pub display_name: String,
    /// Optional picture URL.
    pub avatar_url: Option<String>,
    /// Marketplace role.
    pub role: Role,
}

/// The slowly changing part of a thread: cached in the state store for 5 minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadMeta {
    /// Thread id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Creation time.
    pub created_at_ms: Millis,
    /// Participants in the order they were added.
    pub participants: Vec<ParticipantProfile>,
}

impl ThreadMeta {
    /// True if `user_id` takes part in the thread.
    pub fn has_participant(&self, user_id: &str) -> bool {
        self.participants.iter().any(|p| p.user_id == user_id)
    }

    /// The participants' user ids.
    pub fn participant_ids(&self) -> impl Iterator<Item = &str> {
        self.participants.iter().map(|p| p.user_id.as_str())
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Cluster-wide increasing id.
    pub id: MessageId,
    /// Thread it belongs to.
    pub thread_id: String,
    /// Author.
    pub sender_id: String,
    /// Body after trimming and message hooks.
    pub body: String,
    /// The sender's idempotency key.
    pub client_message_id: String,
    /// When it was stored.
    pub created_at_ms: Millis,
    /// SHA-256 of the thread and trimmed body the sender asked for (idempotent retries).
    pub request_hash: Option<String>,
}

/// The wire form of a [`Message`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// Decimal string of the id.
    pub id: String,
    /// Thread id.
    pub thread_id: String,
    /// Author.
    pub sender_id: String,
    /// Body.
    pub body: String,
    /// The sender's idempotency key.
    pub client_message_id: String,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.to_string(),
            thread_id: m.thread_id.clone(),
            sender_id: m.sender_id.clone(),
            body: m.body.clone(),
            client_message_id: m.client_message_id.clone(),
            created_at: rfc3339(m.created_at_ms),
        }
    }
}

/// One participant's delivery and read state of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The message.
    pub message_id: MessageId,
    /// The participant.
    pub user_id: String,
    /// When it reached one of the participant's sockets.
    pub delivered_at_ms: Option<Millis>,
    /// When the participant's last-read mark passed it.
    pub read_at_ms: Option<Millis>,
}

/// A page of items: of history (oldest first), or of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items: history oldest first, a search in its own order.
    pub items: Vec<T>,
    /// True if more items exist beyond the page (history: older ones before
    /// the first; a search: after the last).
    pub has_more: bool,
}
