//! Connect and disconnect: presence counting, online/offline announcements,
//! and what a connecting socket is owed (undelivered messages, the offline
//! queue, messages after a resume cursor).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ChatService;
use super::fanout::{thread_room, user_room};
use crate::domain::events::{ChatEvent, EventKind};
use crate::domain::ids::parse_message_id;
use crate::domain::model::MessageView;
use crate::domain::server_events::PresenceEvent;
use crate::domain::{Actor, MessageId, now_ms, rfc3339};
use crate::state::StateResult;

/// A user's presence record expires this long after the last refresh, when
/// no instance refreshes it any more.
pub const PRESENCE_TTL: Duration = Duration::from_secs(60);
/// How often an instance refreshes the presence of its connected users and
/// reaps the counts of crashed instances (well inside
/// [`INSTANCE_STALE`](crate::state::INSTANCE_STALE), so a live instance never
/// looks stale).
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(10);

/// One user's connections on this instance. Its lock orders the user's
/// presence writes, so the backend sees this instance's counts in order.
type Slot = Arc<tokio::sync::Mutex<i64>>;

/// Connections per user on this instance (the counts written to the presence
/// backend), and a total to know when shutdown has accounted for every socket.
pub struct LocalPresence {
    users: Mutex<HashMap<String, Slot>>,
    total: tokio::sync::watch::Sender<i64>,
}

impl Default for LocalPresence {
    fn default() -> Self {
        Self {
            users: Mutex::default(),
            total: tokio::sync::watch::channel(0).0,
        }
    }
}

impl LocalPresence {
    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes `user`'s count by `delta` and hands the new count to `write`,
    /// one change of a user at a time; a count that reaches 0 is forgotten.
    async fn change<T>(&self, user: &str, delta: i64, write: impl AsyncFnOnce(i64) -> T) -> T {
        loop {
            let slot = self.users().entry(user.to_owned()).or_default().clone();
            let mut count = slot.lock().await;
            // Forgotten (reached 0) while this change waited: start on a new slot.
            if !self
                .users()
                .get(user)
                .is_some_and(|s| Arc::ptr_eq(s, &slot))
            {
                continue;
            }
            *count = (*count + delta).max(0);
            let out = write(*count).await;
            if *count == 0 {
                self.users().remove(user);
            }
            return out;
        }
    }

    /// Every user with a connection here and the count, each locked until the
    /// guards are dropped (so a refresh never writes a count that changed).
    async fn lock_all(&self) -> Vec<(String, tokio::sync::OwnedMutexGuard<i64>)> {
        let slots: Vec<(String, Slot)> = self
            .users()
            .iter()
            .map(|(u, s)| (u.clone(), s.clone()))
            .collect();
        let mut locked = Vec::with_capacity(slots.len());
        for (user, slot) in slots {
            let count = slot.lock_owned().await;
            if *count > 0 {
                locked.push((user, count));
            }
        }
        locked
    }

    /// Sockets connected here, and the users they belong to.
    pub fn here(&self) -> (i64, usize) {
        (*self.total.borrow(), self.users().len())
    }

    /// One connection to settle at shutdown.
    fn open(&self) {
        self.total.send_modify(|t| *t += 1);
    }

    /// One connection's disconnect is fully handled (presence announced).
    fn settle(&self) {
        self.total.send_modify(|t| *t -= 1);
    }
}

/// The most messages a connecting socket is sent before `chat:ready`; the
/// threads of any others are named in `chat:resync`.
pub const REPLAY_MAX: usize = 200;

/// What a new connection must receive before `chat:ready`.
#[derive(Debug, Default)]
pub struct Arrival {
    /// Owed messages, oldest first, each once.
    pub queued: Vec<MessageView>,
    /// Threads with owed messages that did not fit (for `chat:resync`).
    pub resync_threads: Vec<String>,
}

impl ChatService {
    /// A socket of `actor` connected: count it, announce the user online if it is
    /// their first, and collect what it is owed: every message no device of the
    /// user acknowledged and, with a resume `cursor`, every message of the user's
    /// threads after it (merged with the offline queue, each once, oldest first,
    /// the newest [`REPLAY_MAX`]; the threads of older ones go to `chat:resync`,
    /// and the older ones stay owed).
    pub async fn connect(&self, actor: &Actor, cursor: Option<MessageId>) -> Arrival {
        self.presence.open();
        metrics::gauge!("chat_connections").increment(1.0);
        // Never closed, so the permit is always granted (possibly after a wait).
        let _turn = self.arrivals.acquire().await;
        let user = &actor.user_id;
        let counted = self.count_presence(user, 1).await;
        match counted {
            Ok(1) => self.announce(user, true).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(user, error = %e, "presence not counted"),
        }
        // The queue is drained every time, but only stands in for the database
        // (the source of truth: its receipts know what a device acknowledged)
        // when that is out of reach, so a message queued and then acknowledged
        // live is not sent twice.
        let queue = self.state.offline_drain(user).await;
        let mut owed: BTreeMap<MessageId, MessageView> = BTreeMap::new();
        let mut resync: BTreeSet<String> = BTreeSet::new();
        // Acknowledgements already received (a device that took its replay and
        // left at once) are written first, so they are not owed again.
        self.marks.flush().await;
        match self.store.pending(user, cursor, REPLAY_MAX as u32).await {
            Ok(pending) => {
                resync.extend(pending.overflow_threads);
                owed.extend(
                    pending
                        .messages
                        .iter()
                        .map(|m| (m.id, MessageView::from(m))),
                );
            }
            Err(e) => {
                tracing::warn!(user, error = %e, "undelivered messages not read; the offline queue stands in, the rest is sent on a later connect");
                match queue {
                    Ok(batch) => {
                        resync.extend(batch.resync_threads);
                        for raw in &batch.messages {
                            match serde_json::from_str::<MessageView>(raw) {
                                Ok(m) => {
                                    if let Some(id) = parse_message_id(&m.id) {
                                        owed.insert(id, m);
                                    }
                                }
                                Err(e) => tracing::warn!(error = %e, "bad queued message"),
                            }
                        }
                    }
                    Err(e) => tracing::warn!(user, error = %e, "offline queue not read either"),
                }
            }
        }
        // The newest are sent; the older ones' threads are to be re-read, and
        // the older ones stay owed to the next connection.
        while owed.len() > REPLAY_MAX {
            if let Some((_, m)) = owed.pop_first() {
                resync.insert(m.thread_id);
            }
        }
        Arrival {
            queued: owed.into_values().collect(),
            resync_threads: resync.into_iter().collect(),
        }
    }

    /// A device of `actor` acknowledged these messages: their receipts are
    /// delivered (ids the user has no receipt of, or already delivered, change
    /// nothing).
    pub fn acknowledged(&self, actor: &Actor, messages: &[MessageId]) {
        self.marks.delivered(&actor.user_id, messages);
    }

    /// A socket of `actor` went away: announce the user offline if it was their last.
    pub async fn disconnect(&self, actor: &Actor) {
        let _turn = self.arrivals.acquire().await;
        let user = &actor.user_id;
        let counted = self.count_presence(user, -1).await;
        match counted {
            Ok(0) => self.announce(user, false).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(user, error = %e, "presence not decremented; it expires by TTL")
            }
        }
        // Last, so shutdown waits for the announcement too.
        self.presence.settle();
        metrics::gauge!("chat_connections").decrement(1.0);
    }

    /// Changes this instance's count of `user`'s sockets by `delta` and writes
    /// it; returns the cluster-wide count.
    async fn count_presence(&self, user: &str, delta: i64) -> StateResult<i64> {
        self.presence
            .change(user, delta, async |n| {
                self.state.presence_set(user, n, PRESENCE_TTL).await
            })
            .await
    }

    /// Announces `user` online or offline: the event stream and `chat:presence`
    /// to their threads and contacts. Offline, it also records when (the
    /// `lastSeenAt` of the event and of the admin API).
    async fn announce(&self, user: &str, online: bool) {
        let at = now_ms();
        if !online && let Err(e) = self.state.last_seen_set(user, at).await {
            tracing::warn!(user, error = %e, "last-seen time not recorded");
        }
        self.events.publish(ChatEvent::new(
            if online {
                EventKind::UserOnline
            } else {
                EventKind::UserOffline
            },
            user,
        ));
        // The thread rooms (admins watching) and every socket of everyone who
        // shares a thread with the user.
        let (threads, contacts) = match tokio::try_join!(
            self.store.threads_of_user(user),
            self.store.contacts_of_user(user)
        ) {
            Ok((threads, _)) if threads.is_empty() => return,
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(user, error = %e, "presence not announced");
                return;
            }
        };
        let event = PresenceEvent {
            user_id: user.to_owned(),
            online,
            last_seen_at: (!online).then(|| rfc3339(at)),
        };
        let rooms = threads
            .iter()
            .map(|t| thread_room(t))
            .chain(contacts.iter().map(|u| user_room(u)))
            .collect();
        self.fanout.emit(rooms, None, &event.into()).await;
    }

    /// Takes this instance out of the cluster's presence registry (at shutdown,
    /// after its sockets were disconnected).
    pub async fn retire_presence(&self) {
        if let Err(e) = self.state.presence_retire().await {
            tracing::warn!(error = %e, "presence registry entry not removed; other instances reap it");
        }
    }

    /// Waits until every counted connection of this instance was disconnected
    /// (their users' presence decremented and announced), or `limit` passes.
    pub async fn all_disconnected(&self, limit: Duration) -> bool {
        let mut total = self.presence.total.subscribe();
        tokio::time::timeout(limit, total.wait_for(|n| *n <= 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Keeps the presence of this instance's users alive until `stop`.
    pub async fn refresh_presence(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(PRESENCE_REFRESH);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let locked = self.presence.lock_all().await;
            let users: Vec<(String, i64)> = locked.iter().map(|(u, n)| (u.clone(), **n)).collect();
            // With no user too: the refresh marks this instance live.
            if let Err(e) = self.state.presence_refresh(&users, PRESENCE_TTL).await {
                tracing::warn!(error = %e, "presence refresh failed");
            }
            drop(locked);
            // The users of instances that stopped refreshing (crashed) go offline.
            match self.state.presence_reap().await {
                Ok(gone) => {
                    if !gone.is_empty() {
                        tracing::info!(
                            users = gone.len(),
                            "users of a crashed instance went offline"
                        );
                    }
                    for user in gone {
                        self.announce(&user, false).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "presence reap failed"),
            }
        }
    }
}
