//! Connect and disconnect: presence counting, online/offline announcements,
//! and delivery of the offline queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ChatService;
use super::fanout::thread_room;
use crate::domain::events::{ChatEvent, EventKind};
use crate::domain::model::MessageView;
use crate::domain::server_events::PresenceEvent;
use crate::domain::{Actor, now_ms, rfc3339};

/// Presence counters expire this long after the last refresh (a crashed instance's
/// users go offline by themselves).
pub const PRESENCE_TTL: Duration = Duration::from_secs(60);
/// How often an instance refreshes the presence of its connected users.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(20);

/// Connections per user on this instance, to refresh their presence TTL and to
/// know when shutdown has accounted for every socket.
pub struct LocalPresence {
    counts: Mutex<HashMap<String, i64>>,
    total: tokio::sync::watch::Sender<i64>,
}

impl Default for LocalPresence {
    fn default() -> Self {
        Self {
            counts: Mutex::default(),
            total: tokio::sync::watch::channel(0).0,
        }
    }
}

impl LocalPresence {
    /// Counts a user's connection (for refresh) and one connection to settle at shutdown.
    fn add(&self, user: &str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(user.to_owned())
            .or_default() += 1;
        self.total.send_modify(|t| *t += 1);
    }

    /// Stops refreshing one connection of the user (before its presence is decremented,
    /// so a refresh never re-creates a counter that just reached zero).
    fn release(&self, user: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(user) {
            *count -= 1;
            if *count <= 0 {
                counts.remove(user);
            }
        }
    }

    /// One connection's disconnect is fully handled (presence announced).
    fn settle(&self) {
        self.total.send_modify(|t| *t -= 1);
    }

    fn snapshot(&self) -> Vec<(String, i64)> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.iter().map(|(u, c)| (u.clone(), *c)).collect()
    }
}

/// What a new connection must receive before `chat:ready`.
#[derive(Debug, Default)]
pub struct Arrival {
    /// Queued messages, oldest first.
    pub queued: Vec<MessageView>,
    /// Threads whose queued messages overflowed (for `chat:resync`).
    pub resync_threads: Vec<String>,
}

impl ChatService {
    /// A socket of `actor` connected: count it, announce the user online if it is
    /// their first, and take their offline queue.
    pub async fn connect(&self, actor: &Actor) -> Arrival {
        self.presence.add(&actor.user_id);
        metrics::gauge!("chat_connections").increment(1.0);
        match self
            .state
            .presence_connect(&actor.user_id, PRESENCE_TTL)
            .await
        {
            Ok(1) => self.announce(&actor.user_id, true).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(user = %actor.user_id, error = %e, "presence not counted"),
        }
        let batch = match self.state.offline_drain(&actor.user_id).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(user = %actor.user_id, error = %e, "offline queue not delivered; history has it");
                return Arrival::default();
            }
        };
        let queued = batch
            .messages
            .iter()
            .filter_map(|raw| {
                serde_json::from_str(raw)
                    .inspect_err(|e| tracing::warn!(error = %e, "bad queued message"))
                    .ok()
            })
            .collect();
        Arrival {
            queued,
            resync_threads: batch.resync_threads,
        }
    }

    /// The queued messages of `arrival` reached the user's socket: set `deliveredAt`.
    pub async fn delivered(&self, actor: &Actor, arrival: &Arrival) {
        let ids: Vec<i64> = arrival
            .queued
            .iter()
            .filter_map(|m| m.id.parse().ok())
            .collect();
        if let Err(e) = self
            .store
            .mark_delivered(&actor.user_id, &ids, now_ms())
            .await
        {
            tracing::warn!(user = %actor.user_id, error = %e, "deliveredAt not recorded");
        }
    }

    /// A socket of `actor` went away: announce the user offline if it was their last.
    pub async fn disconnect(&self, actor: &Actor) {
        self.presence.release(&actor.user_id);
        match self.state.presence_disconnect(&actor.user_id).await {
            Ok(0) => self.announce(&actor.user_id, false).await,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(user = %actor.user_id, error = %e, "presence not decremented; it expires by TTL")
            }
        }
        // Last, so shutdown waits for the announcement too.
        self.presence.settle();
        metrics::gauge!("chat_connections").decrement(1.0);
    }

    async fn announce(&self, user: &str, online: bool) {
        self.events.publish(ChatEvent::new(
            if online {
                EventKind::UserOnline
            } else {
                EventKind::UserOffline
            },
            user,
        ));
        let threads = match self.store.threads_of_user(user).await {
            Ok(threads) if !threads.is_empty() => threads,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(user, error = %e, "presence not announced");
                return;
            }
        };
        let event = PresenceEvent {
            user_id: user.to_owned(),
            online,
            last_seen_at: (!online).then(|| rfc3339(now_ms())),
        };
        let rooms = threads.iter().map(|t| thread_room(t)).collect();
        self.fanout.emit(rooms, None, &event.into()).await;
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
            let users = self.presence.snapshot();
            if !users.is_empty()
                && let Err(e) = self.state.presence_refresh(&users, PRESENCE_TTL).await
            {
                tracing::warn!(error = %e, "presence refresh failed");
            }
        }
    }
}
