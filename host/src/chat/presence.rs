//! Connect and disconnect: presence counting, online/offline announcements,
//! and delivery of the offline queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::events::ChatEvent;
use super::fanout::thread_room;
use super::model::{MessageView, now_ms, rfc3339};
use super::{Actor, ChatService};

/// Presence counters expire this long after the last refresh (a crashed instance's
/// users go offline by themselves).
pub const PRESENCE_TTL: Duration = Duration::from_secs(60);
/// How often an instance refreshes the presence of its connected users.
pub const PRESENCE_REFRESH: Duration = Duration::from_secs(20);

/// Connections per user on this instance, to refresh their presence TTL.
#[derive(Default)]
pub struct LocalPresence {
    counts: Mutex<HashMap<String, i64>>,
}

impl LocalPresence {
    fn add(&self, user: &str, delta: i64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(user.to_owned()).or_default();
        *count += delta;
        if *count <= 0 {
            counts.remove(user);
        }
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
        self.presence.add(&actor.user_id, 1);
        metrics::gauge!("chat_connections").increment(1.0);
        match self.state.presence_connect(&actor.user_id, PRESENCE_TTL).await {
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
            .filter_map(|raw| serde_json::from_str(raw).inspect_err(|e| tracing::warn!(error = %e, "bad queued message")).ok())
            .collect();
        Arrival { queued, resync_threads: batch.resync_threads }
    }

    /// The queued messages of `arrival` reached the user's socket: set `deliveredAt`.
    pub async fn delivered(&self, actor: &Actor, arrival: &Arrival) {
        let ids: Vec<i64> = arrival.queued.iter().filter_map(|m| m.id.parse().ok()).collect();
        if let Err(e) = self.store.mark_delivered(&actor.user_id, &ids, now_ms()).await {
            tracing::warn!(user = %actor.user_id, error = %e, "deliveredAt not recorded");
        }
    }

    /// A socket of `actor` went away: announce the user offline if it was their last.
    pub async fn disconnect(&self, actor: &Actor) {
        self.presence.add(&actor.user_id, -1);
        metrics::gauge!("chat_connections").decrement(1.0);
        match self.state.presence_disconnect(&actor.user_id).await {
            Ok(0) => self.announce(&actor.user_id, false).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(user = %actor.user_id, error = %e, "presence not decremented; it expires by TTL"),
        }
    }

    async fn announce(&self, user: &str, online: bool) {
        self.events.publish(ChatEvent::new(if online { "user_online" } else { "user_offline" }, user));
        let threads = match self.store.threads_of_user(user).await {
            Ok(threads) if !threads.is_empty() => threads,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(user, error = %e, "presence not announced");
                return;
            }
        };
        let mut payload = json!({ "userId": user, "online": online });
        if !online {
            payload["lastSeenAt"] = json!(rfc3339(now_ms()));
        }
        let rooms = threads.iter().map(|t| thread_room(t)).collect();
        self.fanout.emit(rooms, None, "chat:presence", &payload).await;
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
