//! Durable chat data: users, threads, participants, messages, receipts.
//!
//! One trait, [`ChatStore`], with one SQL implementation ([`sql::SqlStore`])
//! over MySQL/MariaDB or the embedded SQLite file; the few statements the two
//! dialects spell differently live in [`dialect`]. [`conformance`] runs the same
//! suite against both databases.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::domain::model::{Message, Page, Receipt, ThreadMeta, UserProfile};
use crate::domain::{MessageId, Millis};

pub mod dialect;
pub mod sql;

#[cfg(test)]
pub(crate) mod conformance;

/// A durable-store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, timed out or asked to retry; nothing was written.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
    /// Any other failure.
    #[error(transparent)]
    Other(anyhow::Error),
}

/// Result of the durable store.
pub type StoreResult<T> = Result<T, StoreError>;

/// A thread to create.
#[derive(Debug, Clone)]
pub struct NewThread {
    /// Thread id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Participants (must exist as users).
    pub participant_ids: Vec<String>,
    /// Creation time.
    pub created_at_ms: Millis,
}

/// Outcome of [`ChatStore::create_thread`].
#[derive(Debug, PartialEq, Eq)]
pub enum CreateThread {
    /// The thread and its participants were stored.
    Created,
    /// A thread with that id exists.
    Conflict,
    /// These participant ids are not users.
    UnknownUsers(Vec<String>),
}

/// Outcome of [`ChatStore::add_participant`].
#[derive(Debug, PartialEq, Eq)]
pub enum AddParticipant {
    /// The user takes part now (or already did).
    Added,
    /// No such thread.
    ThreadNotFound,
    /// No such user.
    UnknownUser,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Thread.
    pub thread_id: String,
    /// Author.
    pub sender_id: String,
    /// Final body.
    pub body: String,
    /// The sender's idempotency key.
    pub client_message_id: String,
    /// Time of storing.
    pub created_at_ms: Millis,
    /// SHA-256 of the request (thread and trimmed body before hooks).
    pub request_hash: String,
}

/// The receipt row to write for one participant with a new message.
#[derive(Debug, Clone)]
pub struct NewReceipt {
    /// Participant.
    pub user_id: String,
    /// Set `delivered_at` now (the participant is online, or is the sender).
    pub delivered: bool,
    /// Set `read_at` now (the sender).
    pub read: bool,
}

/// Outcome of [`ChatStore::insert_message`].
#[derive(Debug, PartialEq, Eq)]
pub enum InsertMessage {
    /// Stored now.
    Inserted(Message),
    /// The sender already stored a message with this `clientMessageId`.
    Existing(Message),
}

/// Outcome of [`ChatStore::mark_read`].
#[derive(Debug, PartialEq, Eq)]
pub enum MarkRead {
    /// The message is not in the thread.
    NotInThread,
    /// The stored mark (never lower than before) and whether it moved.
    Marked {
        /// The participant's last-read message id now.
        mark: MessageId,
        /// True if this call moved it.
        moved: bool,
    },
}

/// What changes with every message: shown in `chat:join`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadActivity {
    /// Newest message.
    pub last_message: Option<Message>,
    /// Messages of others after the user's last-read mark.
    pub unread_count: i64,
    /// Each participant's last-read mark.
    pub last_reads: HashMap<String, Option<MessageId>>,
}

/// A message with every participant's receipt (admin history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageWithReceipts {
    /// The message.
    pub message: Message,
    /// One per participant at send time.
    pub receipts: Vec<Receipt>,
}

/// The messages a connecting device is owed ([`Messages::pending`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pending {
    /// Oldest first.
    pub messages: Vec<Message>,
    /// When more were pending than fit: every thread with pending messages, to
    /// re-read with `chat:history`.
    pub overflow_threads: Vec<String>,
}

/// One entry of a thread's audit trail, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the thread's chain, from 1.
    pub seq: i64,
    /// Thread.
    pub thread_id: String,
    /// The plugin that wrote it.
    pub plugin: String,
    /// Event kind.
    pub kind: String,
    /// Who caused it.
    pub actor_id: String,
    /// Free text (JSON by convention).
    pub detail: String,
    /// When it was written.
    pub created_at_ms: Millis,
    /// `mac` of the previous entry (64 zeros for the first).
    pub prev_mac: String,
    /// HMAC of this entry chained to the previous one.
    pub mac: String,
}

/// The newest position of a thread's audit chain, sealed with the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    /// Seq of the newest entry.
    pub seq: i64,
    /// HMAC over the newest entry's seq and mac.
    pub head_mac: String,
}

/// A plugin stored by the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlugin {
    /// Plugin name.
    pub name: String,
    /// Manifest TOML.
    pub manifest: String,
    /// Component bytes.
    pub wasm: Vec<u8>,
}

/// Users, threads and their participants.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Creates or updates a user profile.
    async fn upsert_user(&self, user: &UserProfile, now: Millis) -> StoreResult<()>;
    /// Creates a thread with its participants, atomically.
    async fn create_thread(&self, thread: &NewThread) -> StoreResult<CreateThread>;
    /// Adds a participant (idempotent).
    async fn add_participant(
        &self,
        thread: &str,
        user: &str,
        now: Millis,
    ) -> StoreResult<AddParticipant>;
    /// Title and participant profiles, or `None` if the thread does not exist.
    async fn thread_meta(&self, thread: &str) -> StoreResult<Option<ThreadMeta>>;
    /// Ids of the threads `user` takes part in.
    async fn threads_of_user(&self, user: &str) -> StoreResult<Vec<String>>;
    /// The users who share a thread with `user` (each once, not `user`).
    async fn contacts_of_user(&self, user: &str) -> StoreResult<Vec<String>>;
}

/// Messages, their receipts and the participants' read marks.
#[async_trait]
pub trait Messages: Send + Sync + 'static {
    /// Last message, unread count of `user` and every participant's last-read mark.
    async fn thread_activity(&self, thread: &str, user: &str) -> StoreResult<ThreadActivity>;
    /// The message `sender` stored under `client_message_id`, if any.
    async fn message_by_client_id(
        &self,
        sender: &str,
        client_message_id: &str,
    ) -> StoreResult<Option<Message>>;
    /// Stores a message, a receipt per participant and the sender's last-read mark in one
    /// transaction; a repeated `clientMessageId` returns the stored message instead.
    async fn insert_message(
        &self,
        message: &NewMessage,
        receipts: &[NewReceipt],
    ) -> StoreResult<InsertMessage>;
    /// Moves `user`'s last-read mark up to `message` (never backwards) and sets `read_at`
    /// on the user's receipts of the thread up to the mark.
    async fn mark_read(
        &self,
        thread: &str,
        user: &str,
        message: MessageId,
        now: Millis,
    ) -> StoreResult<MarkRead>;
    /// Sets `delivered_at` on these `(user, message)` receipts where unset
    /// (pairs without a receipt change nothing).
    async fn mark_delivered(
        &self,
        receipts: &[(String, MessageId)],
        now: Millis,
    ) -> StoreResult<()>;
    /// What a connecting device of `user` must be sent, oldest first: every
    /// message no device of the user acknowledged, and (with a resume cursor)
    /// every message of the user's threads after `after`; the newest `limit` of
    /// them, and when more are pending, the threads of all of them.
    async fn pending(
        &self,
        user: &str,
        after: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Pending>;
    /// Up to `limit` messages after `after`, oldest first (`has_more`: newer ones exist).
    async fn history_after(
        &self,
        thread: &str,
        after: MessageId,
        limit: u32,
    ) -> StoreResult<Page<Message>>;
    /// Up to `limit` messages before `before` (or the newest), oldest first.
    async fn history(
        &self,
        thread: &str,
        before: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Page<Message>>;
    /// [`ChatStore::history`] with every receipt.
    async fn history_with_receipts(
        &self,
        thread: &str,
        before: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Page<MessageWithReceipts>>;
}

/// The tamper-evident audit entries of threads under audit, with their sealed heads.
#[async_trait]
pub trait AuditChain: Send + Sync + 'static {
    /// The newest audit entry of a thread.
    async fn audit_tail(&self, thread: &str) -> StoreResult<Option<AuditEntry>>;
    /// Appends an entry and moves the head, atomically; false if `entry.seq` is taken.
    async fn audit_insert(&self, entry: &AuditEntry, head_mac: &str) -> StoreResult<bool>;
    /// Every audit entry of a thread, by seq.
    async fn audit_entries(&self, thread: &str) -> StoreResult<Vec<AuditEntry>>;
    /// The sealed head of a thread's chain.
    async fn audit_head(&self, thread: &str) -> StoreResult<Option<AuditHead>>;
}

/// Plugins uploaded through the admin API, which every instance loads.
#[async_trait]
pub trait PluginArchive: Send + Sync + 'static {
    /// Stores (or replaces) a plugin.
    async fn plugin_save(&self, plugin: &StoredPlugin, now: Millis) -> StoreResult<()>;
    /// Deletes a stored plugin; true if it existed.
    async fn plugin_delete(&self, name: &str) -> StoreResult<bool>;
    /// One stored plugin.
    async fn plugin_get(&self, name: &str) -> StoreResult<Option<StoredPlugin>>;
    /// Every stored plugin.
    async fn plugin_list(&self) -> StoreResult<Vec<StoredPlugin>>;
}

/// The durable chat store: every role, implemented by each backend (MySQL
/// and SQLite, one SQL implementation). Use cases that need several roles
/// take this; the others take the one role they use.
#[async_trait]
pub trait ChatStore: Directory + Messages + AuditChain + PluginArchive + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// How many statements the store runs at once (its connection pool).
    fn parallelism(&self) -> usize;
}
