//! Realtime state shared by every instance: presence, typing, offline queues,
//! rate-limit counters, the thread-metadata cache and the event stream.
//!
//! One trait, two backends: [`redis::RedisState`] (the contract's keys) and
//! [`memory::MemoryState`] (one process). [`conformance`] runs the same suite on both.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Millis;

pub mod memory;
pub mod redis;

#[cfg(test)]
mod conformance;

/// Most messages kept in one user's offline queue.
pub const OFFLINE_QUEUE_MAX: usize = 200;
/// An offline queue expires this long after its last push.
pub const OFFLINE_QUEUE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Entries kept (approximately) in the event stream.
pub const EVENT_STREAM_MAX: usize = 100_000;

/// A state-store failure.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The backend cannot be reached or timed out; retrying later may work.
    #[error("state store unavailable: {0}")]
    Unavailable(#[source] anyhow::Error),
    /// A listing cursor this backend did not hand out.
    #[error("invalid cursor: pass the `next` of a previous page, or none")]
    BadCursor,
    /// Any other failure.
    #[error(transparent)]
    Other(anyhow::Error),
}

/// Result of the state store.
pub type StateResult<T> = Result<T, StateError>;

/// What a user's offline queue held when it was drained.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OfflineBatch {
    /// Queued messages (JSON of the wire message), oldest first.
    pub messages: Vec<String>,
    /// Threads whose queued messages overflowed the queue and must be re-read.
    pub resync_threads: Vec<String>,
}

/// Verdict of a rate-limit counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// The action is counted and may proceed.
    Allowed,
    /// The window is full; the next slot frees in `retry_after`.
    Limited {
        /// Time until the oldest counted action leaves the window.
        retry_after: Duration,
    },
}

/// One entry of the analytics event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// Event type, e.g. `message_sent`.
    pub kind: String,
    /// Field/value pairs (camelCase names).
    pub fields: Vec<(String, String)>,
}

/// A plugin's key-value entry as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvValue {
    /// The value.
    pub value: String,
    /// Time left before the key expires, if it has a TTL.
    pub ttl: Option<Duration>,
}

/// One page of a plugin's key-value entries ([`PluginKv::kv_list`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvPage {
    /// The page's entries, by key.
    pub entries: Vec<(String, KvValue)>,
    /// Where the next page starts (an opaque cursor); `None` after the last page.
    pub next: Option<String>,
}

/// An instance that has not refreshed its presence for this long counts as
/// gone: its connections stop counting, and another instance reaps them.
pub const INSTANCE_STALE: Duration = Duration::from_secs(30);

/// Who is online: connections counted per user and per instance, so the
/// count of an instance that stopped refreshing (it crashed) stops counting,
/// and a backend that lost its data gets every instance's own count back.
#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Sets this instance's count of `user`'s connections (0 removes it) and
    /// returns the cluster-wide count (0 = offline). The count is absolute, so
    /// a backend that lost its data gets it back with the next change; the
    /// caller writes one user's changes in order.
    async fn presence_set(&self, user: &str, count: i64, ttl: Duration) -> StateResult<i64>;
    /// Marks this instance alive and sets its count of each of its users (the
    /// local connection counts, which re-create what the backend lost).
    async fn presence_refresh(&self, users: &[(String, i64)], ttl: Duration) -> StateResult<()>;
    /// Each user's connections on live instances: the whole cluster's on a
    /// shared backend, this instance's in memory.
    async fn presence_counts(&self, users: &[String]) -> StateResult<Vec<i64>>;
    /// Whether each user has at least one connection on a live instance.
    async fn presence_online(&self, users: &[String]) -> StateResult<Vec<bool>> {
        let counts = self.presence_counts(users).await?;
        Ok(counts.into_iter().map(|n| n > 0).collect())
    }
    /// Records that `user`'s last connection in the cluster closed at `at`
    /// (kept until the next time, with no expiry).
    async fn last_seen_set(&self, user: &str, at: Millis) -> StateResult<()>;
    /// When each user's last connection closed, as recorded ([`Presence::last_seen_set`]).
    async fn last_seen(&self, users: &[String]) -> StateResult<Vec<Option<Millis>>>;
    /// Removes the counts of instances that stopped refreshing for longer than
    /// [`INSTANCE_STALE`] (each such instance is reaped by one instance only);
    /// returns the users that have no connection left, to be announced offline.
    async fn presence_reap(&self) -> StateResult<Vec<String>>;
    /// The instances counted live (refreshed within [`INSTANCE_STALE`]), this
    /// one included, each with the time of its last refresh (ms since the epoch).
    async fn presence_instances(&self) -> StateResult<Vec<(String, i64)>>;
    /// Removes this instance from the registry at shutdown (after its sockets
    /// were disconnected), so nothing of it is left to reap.
    async fn presence_retire(&self) -> StateResult<()>;
}

/// Who is typing in a thread, for a short TTL.
#[async_trait]
pub trait Typing: Send + Sync + 'static {
    /// Marks `user` typing in `thread` for `ttl`.
    async fn typing_start(&self, thread: &str, user: &str, ttl: Duration) -> StateResult<()>;
    /// Clears the typing mark; true if one was set.
    async fn typing_stop(&self, thread: &str, user: &str) -> StateResult<bool>;
}

/// Per-user queues of the messages sent while the user had no socket.
#[async_trait]
pub trait OfflineQueues: Send + Sync + 'static {
    /// Appends a message of `thread` to each user's offline queue (trimmed to the newest
    /// [`OFFLINE_QUEUE_MAX`]; overflowing threads are remembered for `chat:resync`).
    async fn offline_push(&self, users: &[String], thread: &str, message: &str) -> StateResult<()>;
    /// Takes and removes a user's whole offline queue.
    async fn offline_drain(&self, user: &str) -> StateResult<OfflineBatch>;
}

/// Sliding-window action counters.
#[async_trait]
pub trait RateLimits: Send + Sync + 'static {
    /// Counts one action of `user` in an exact sliding window of `window`,
    /// allowing at most `limit` actions per window.
    async fn rate_limit_hit(
        &self,
        user: &str,
        limit: u32,
        window: Duration,
    ) -> StateResult<RateDecision>;
}

/// Cached thread metadata (JSON), so a send does not read the database.
#[async_trait]
pub trait ThreadCache: Send + Sync + 'static {
    /// Reads cached thread metadata (JSON).
    async fn thread_meta_get(&self, thread: &str) -> StateResult<Option<String>>;
    /// Caches thread metadata (JSON) for `ttl`.
    async fn thread_meta_put(&self, thread: &str, json: &str, ttl: Duration) -> StateResult<()>;
    /// Drops cached thread metadata.
    async fn thread_meta_invalidate(&self, thread: &str) -> StateResult<()>;
}

/// The capped analytics and audit event stream.
#[async_trait]
pub trait EventStream: Send + Sync + 'static {
    /// Appends entries to the capped event stream.
    async fn append_events(&self, entries: &[StreamEntry]) -> StateResult<()>;
    /// How many entries the stream holds.
    async fn events_len(&self) -> StateResult<u64>;
}

/// The plugins' key-value store, namespaced per plugin.
#[async_trait]
pub trait PluginKv: Send + Sync + 'static {
    /// Reads a plugin's key and the time it has left.
    async fn kv_get(&self, plugin: &str, key: &str) -> StateResult<Option<KvValue>>;
    /// Writes a plugin's key, with an optional TTL.
    async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> StateResult<()>;
    /// Adds `delta` to a plugin's integer key (created at 0); `ttl` is set when the key
    /// has none. Returns the new value.
    async fn kv_incr(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> StateResult<i64>;
    /// Deletes a plugin's key; true if it existed.
    async fn kv_delete(&self, plugin: &str, key: &str) -> StateResult<bool>;
    /// About `limit` of a plugin's entries whose keys start with `prefix`,
    /// from `cursor` (a previous page's `next`; `None`: the first page). Each
    /// page is sorted by key; every entry that lives through the whole listing
    /// is on a page. Pages follow the backend's order: by key in memory,
    /// SCAN's on Redis (which may list a key on two pages).
    async fn kv_list(
        &self,
        plugin: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> StateResult<KvPage>;
}

/// Plugin change announcements between the instances of a cluster.
#[async_trait]
pub trait PluginChanges: Send + Sync + 'static {
    /// Announces a plugin change to every instance of the cluster.
    async fn publish_plugin_change(&self, message: &str) -> StateResult<()>;
    /// Announcements of every instance (this one included), from now on.
    fn plugin_changes(&self) -> tokio::sync::mpsc::UnboundedReceiver<String>;
}

/// The realtime state store: every role, implemented by each backend
/// (Redis and memory). Use cases that need several roles take this; the
/// others take the one role they use.
#[async_trait]
pub trait StateStore:
    Presence
    + Typing
    + OfflineQueues
    + RateLimits
    + ThreadCache
    + EventStream
    + PluginKv
    + PluginChanges
    + 'static
{
    /// Checks the backend answers.
    async fn ping(&self) -> StateResult<()>;
}
