//! Durable chat data: users, threads, participants, messages, receipts.
//!
//! One trait, [`ChatStore`], with one SQL implementation ([`sql::SqlStore`])
//! over MySQL/MariaDB or the embedded SQLite file; the few statements the two
//! dialects spell differently live in [`dialect`]. [`conformance`] runs the same
//! suite against both databases.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::domain::model::{Message, Page, ParticipantProfile, Receipt, ThreadMeta, UserProfile};
use crate::domain::policy::Decider;
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
    /// The plugins whose message hooks rewrote the body, in chain order:
    /// recorded as decisions with the message.
    pub rewritten_by: Vec<Decider>,
}

/// A message hook's refusal of a send, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefusal {
    /// Thread.
    pub thread_id: String,
    /// The sender.
    pub user_id: String,
    /// The plugin that refused.
    pub by: Decider,
    /// Its reason (what the sender was told).
    pub reason: String,
    /// SHA-256 of the request (thread and trimmed body).
    pub request_hash: String,
    /// When.
    pub at_ms: Millis,
}

/// A recorded decision of a plugin about a message of a thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    /// The message it rewrote; none for a refusal (nothing was stored).
    pub message_id: Option<MessageId>,
    /// The sender.
    pub user_id: String,
    /// The plugin and its version.
    pub by: Decider,
    /// The hook (`message-hook`).
    pub hook: String,
    /// `rewrite` or `reject`.
    pub verdict: String,
    /// The reason given (refusals).
    pub reason: Option<String>,
    /// SHA-256 of the request (thread and trimmed body as sent).
    pub input_sha256: String,
    /// When.
    pub at_ms: Millis,
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

/// `prev_mac` of a thread's first audit entry.
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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
    /// Id of the audit key that sealed it (`legacy` for the entries written
    /// before entries named their key).
    pub key_id: String,
}

/// The newest position of a thread's audit chain, sealed with the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    /// Seq of the newest entry.
    pub seq: i64,
    /// HMAC over the newest entry's seq and mac.
    pub head_mac: String,
    /// Id of the audit key that sealed it: the newest entry's.
    pub key_id: String,
}

/// What an audit entry records, before the chain places and seals it.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// Thread.
    pub thread_id: String,
    /// Writing plugin ([`crate::domain::evidence::HOST`] for the host's own).
    pub plugin: String,
    /// Event kind.
    pub kind: String,
    /// Who caused it.
    pub actor_id: String,
    /// Free text (JSON by convention).
    pub detail: String,
}

/// Seals audit entries with the audit key. The store calls it for the entries
/// it writes inside its own transactions: a thread's evidence is committed
/// with the rows it vouches for, or not at all.
pub trait AuditSeal: Send + Sync {
    /// Sets `entry.key_id` and `entry.mac` (over its fields and `prev_mac`);
    /// returns the MAC of the head that points at it.
    fn seal(&self, entry: &mut AuditEntry) -> String;
}

/// A thread under audit: since when, by whom, for which case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadAudit {
    /// When the audit started.
    pub since_ms: Millis,
    /// The admin who started it.
    pub by: String,
    /// The case reference, if any.
    pub case: Option<String>,
}

/// A thread's audit chain with the history it vouches for, read in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSnapshot {
    /// The sealed head of the chain.
    pub head: Option<AuditHead>,
    /// Every entry, by seq.
    pub entries: Vec<AuditEntry>,
    /// The thread's audit, when it is under one.
    pub audit: Option<ThreadAudit>,
    /// While under audit: every message of the thread with its receipts (by
    /// user), by id; empty otherwise.
    pub history: Vec<MessageWithReceipts>,
}

/// A thread with its activity, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRecord {
    /// Thread id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Creation time.
    pub created_at_ms: Millis,
    /// The newest message's time, or the creation time when it has none.
    pub last_activity_at_ms: Millis,
    /// Messages stored in the thread.
    pub message_count: i64,
    /// The newest message, if any.
    pub last_message_id: Option<MessageId>,
    /// The audit it is under, if any.
    pub audit: Option<ThreadAudit>,
}

/// A participant of a thread: the profile and the last-read mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRecord {
    /// The stored profile.
    pub profile: ParticipantProfile,
    /// The participant's last-read mark.
    pub last_read_message_id: Option<MessageId>,
}

/// Who a thread search requires among the participants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipantMatch {
    /// The user with this id.
    User(String),
    /// The user with this id, or any user whose display name starts with it,
    /// ignoring case ([`sql::name_key`]).
    UserOrNamePrefix(String),
}

/// Where a page of threads ends: the last thread's activity and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityCursor {
    /// [`ThreadRecord::last_activity_at_ms`] of the last thread of the page.
    pub last_activity_at_ms: Millis,
    /// Its id.
    pub thread_id: String,
}

/// What [`AdminQueries::search_threads`] looks for; every filter given must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ThreadSearch {
    /// Each of these takes part in the thread.
    pub participants: Vec<ParticipantMatch>,
    /// Each of these is the start of a word of the title, ignoring case (a
    /// full-text index: FULLTEXT on MySQL, FTS5 on SQLite).
    pub title_words: Vec<String>,
    /// Last activity at or after this time.
    pub active_from: Option<Millis>,
    /// Last activity before this time.
    pub active_before: Option<Millis>,
    /// Only the threads after this one in the order of the search.
    pub after: Option<ActivityCursor>,
    /// Most threads returned.
    pub limit: u32,
}

/// What [`AdminQueries::search_users`] looks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserSearch {
    /// The start of the user's id (as is) or of the display name (ignoring
    /// case); every user when `None`.
    pub prefix: Option<String>,
    /// Only the users with a greater id.
    pub after: Option<String>,
    /// Most users returned.
    pub limit: u32,
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
    /// Under audit, the same transaction seals the message into the thread's trail.
    async fn insert_message(
        &self,
        message: &NewMessage,
        receipts: &[NewReceipt],
        seal: &dyn AuditSeal,
    ) -> StoreResult<InsertMessage>;
    /// Moves `user`'s last-read mark up to `message` (never backwards) and sets `read_at`
    /// on the user's receipts of the thread up to the mark (sealed under audit).
    async fn mark_read(
        &self,
        thread: &str,
        user: &str,
        message: MessageId,
        now: Millis,
        seal: &dyn AuditSeal,
    ) -> StoreResult<MarkRead>;
    /// Records a message hook's refusal of a send (chained into the thread's
    /// trail under audit).
    async fn record_refusal(&self, refusal: &NewRefusal, seal: &dyn AuditSeal) -> StoreResult<()>;
    /// Sets `delivered_at` on these `(user, message)` receipts where unset
    /// (pairs without a receipt change nothing; sealed under audit).
    async fn mark_delivered(
        &self,
        receipts: &[(String, MessageId)],
        now: Millis,
        seal: &dyn AuditSeal,
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

/// The tamper-evident audit trails of threads, with their sealed heads, and
/// whether a thread is under audit. While it is, the store seals evidence of
/// every message and receipt into its trail in the same transaction
/// ([`crate::domain::evidence`]).
#[async_trait]
pub trait AuditChain: Send + Sync + 'static {
    /// Appends an entry at the end of its thread's chain, sealed by `seal`, and
    /// moves the head, atomically; returns its seq.
    async fn audit_append(&self, record: &AuditRecord, seal: &dyn AuditSeal) -> StoreResult<i64>;
    /// Puts a thread under audit at `at`, sealing its history into the trail;
    /// an audit already running is kept. `None` if the thread does not exist.
    async fn audit_start(
        &self,
        thread: &str,
        by: &str,
        case: Option<&str>,
        at: Millis,
        seal: &dyn AuditSeal,
    ) -> StoreResult<Option<ThreadAudit>>;
    /// Ends a thread's audit (an entry says who ended it); false if it was
    /// not under audit. `None` if the thread does not exist.
    async fn audit_end(
        &self,
        thread: &str,
        by: &str,
        seal: &dyn AuditSeal,
    ) -> StoreResult<Option<bool>>;
    /// The chain, its head and, under audit, the history, in one snapshot: a
    /// consistent view however fast entries are appended.
    async fn audit_snapshot(&self, thread: &str) -> StoreResult<AuditSnapshot>;
}

/// The admin console's read-only queries: thread and user search and details,
/// each by index (see `migrations/*/0007_admin_search.sql`).
#[async_trait]
pub trait AdminQueries: Send + Sync + 'static {
    /// The threads `search` matches, by last activity, newest first, then by
    /// id, descending; `has_more` when more follow.
    async fn search_threads(&self, search: &ThreadSearch) -> StoreResult<Page<ThreadRecord>>;
    /// One thread's record, or `None` if it does not exist.
    async fn thread_record(&self, thread: &str) -> StoreResult<Option<ThreadRecord>>;
    /// The participants of each of these threads, in the order they were added
    /// (threads without any are left out).
    async fn participants_of(
        &self,
        threads: &[String],
    ) -> StoreResult<HashMap<String, Vec<ParticipantRecord>>>;
    /// These messages, by id (ids that name none are left out).
    async fn messages_by_id(&self, ids: &[MessageId]) -> StoreResult<Vec<Message>>;
    /// The newest `limit` decisions about a thread's messages, newest first.
    async fn decisions_of_thread(
        &self,
        thread: &str,
        limit: u32,
    ) -> StoreResult<Vec<DecisionRecord>>;
    /// The users `search` matches, by id; `has_more` when more follow.
    async fn search_users(&self, search: &UserSearch) -> StoreResult<Page<UserProfile>>;
    /// One user's profile, or `None` if there is none.
    async fn user(&self, id: &str) -> StoreResult<Option<UserProfile>>;
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
pub trait ChatStore:
    Directory + Messages + AdminQueries + AuditChain + PluginArchive + 'static
{
    /// Checks the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// How many statements the store runs at once (its connection pool).
    fn parallelism(&self) -> usize;
}
