//! The evidence the host writes into the audit trail of a thread under audit:
//! the history as it stood when the audit started, then every message stored
//! and every receipt recorded, each in the same transaction as the row it
//! vouches for. The entries' details are JSON of the types below; the audit
//! log reads them back to check the stored history against its trail.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Millis;
use super::model::{Message, Receipt};

/// The `plugin` column of the entries the host itself writes.
pub const HOST: &str = "chat-host";

/// Messages listed by one [`HistorySealed`] entry.
pub const SEALED_PER_ENTRY: usize = 200;

/// The entry kinds of the host's evidence.
pub mod kind {
    /// [`super::AuditStarted`].
    pub const AUDIT_STARTED: &str = "audit_started";
    /// [`super::HistorySealed`].
    pub const HISTORY_SEALED: &str = "history_sealed";
    /// [`super::MessageStored`].
    pub const MESSAGE_STORED: &str = "message_stored";
    /// [`super::MessageRejected`].
    pub const MESSAGE_REJECTED: &str = "message_rejected";
    /// [`super::ReceiptsDelivered`].
    pub const RECEIPTS_DELIVERED: &str = "receipts_delivered";
    /// [`super::ReceiptsRead`].
    pub const RECEIPTS_READ: &str = "receipts_read";
    /// [`super::AuditEnded`].
    pub const AUDIT_ENDED: &str = "audit_ended";
}

/// An admin put the thread under audit; [`HistorySealed`] entries follow with
/// every message stored before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStarted {
    /// The admin (JWT subject or named operator).
    pub by: String,
    /// The case reference, if any.
    pub case: Option<String>,
    /// Messages in the thread at that moment.
    pub messages: usize,
}

/// Up to [`SEALED_PER_ENTRY`] messages of the history before the audit, each
/// as `[id, sealed_hash]` (message and receipts as they stood).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistorySealed {
    /// `[message id, sealed_hash]`, by id.
    pub messages: Vec<(String, String)>,
}

/// A message stored while the thread is under audit, with the receipts it was
/// stored with (`[user, deliveredAtMs, readAtMs]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageStored {
    /// Message id.
    pub message: String,
    /// [`content_hash`] of the message.
    pub sha256: String,
    /// The receipts as inserted.
    pub receipts: Vec<(String, Option<Millis>, Option<Millis>)>,
    /// The plugins whose message hooks rewrote the body, `[name, version]`.
    pub rewritten_by: Vec<(String, String)>,
}

/// A message hook refused a send (nothing was stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRejected {
    /// The plugin.
    pub plugin: String,
    /// Its version.
    pub version: String,
    /// The reason the sender was told.
    pub reason: String,
    /// SHA-256 of the request (thread and trimmed body as sent).
    pub request_sha256: String,
}

/// Receipts marked delivered at one time (`[message id, user]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptsDelivered {
    /// The `deliveredAt` written.
    pub at_ms: Millis,
    /// `[message id, user]`.
    pub receipts: Vec<(String, String)>,
}

/// A user's read mark passed these messages at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptsRead {
    /// The reader.
    pub user: String,
    /// The `readAt` written.
    pub at_ms: Millis,
    /// The messages whose `readAt` was set.
    pub messages: Vec<String>,
    /// Those of them whose `deliveredAt` was set by the same read.
    pub delivered: Vec<String>,
}

/// An admin ended the audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEnded {
    /// The admin.
    pub by: String,
}

fn hasher(m: &Message) -> Sha256 {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(&m.id.to_be_bytes());
    field(m.thread_id.as_bytes());
    field(m.sender_id.as_bytes());
    field(&m.created_at_ms.to_be_bytes());
    field(m.body.as_bytes());
    h
}

fn hex(h: Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of what a message says: id, thread, sender, time and body.
pub fn content_hash(m: &Message) -> String {
    hex(hasher(m))
}

/// SHA-256 of a message with its receipts (by user, as given), as the history
/// is sealed when an audit starts.
pub fn sealed_hash(m: &Message, receipts: &[Receipt]) -> String {
    let mut h = hasher(m);
    for r in receipts {
        h.update((r.user_id.len() as u64).to_be_bytes());
        h.update(r.user_id.as_bytes());
        for at in [r.delivered_at_ms, r.read_at_ms] {
            h.update(at.unwrap_or(-1).to_be_bytes());
        }
    }
    hex(h)
}
