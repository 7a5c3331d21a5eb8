//! In-process state for a single instance (the embedded default).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::domain::Millis;

use super::{
    EVENT_STREAM_MAX, EventStream, KvPage, KvValue, OFFLINE_QUEUE_MAX, OFFLINE_QUEUE_TTL,
    OfflineBatch, OfflineQueues, PluginChanges, PluginKv, Presence, RateDecision, RateLimits,
    StateError, StateResult, StateStore, StreamEntry, ThreadCache, Typing,
};

/// A value that disappears at `expires`.
struct Expiring<T> {
    value: T,
    expires: Instant,
}

impl<T> Expiring<T> {
    fn new(value: T, ttl: Duration) -> Self {
        Self {
            value,
            expires: Instant::now() + ttl,
        }
    }
    fn live(&self) -> bool {
        self.expires > Instant::now()
    }
}

#[derive(Default)]
struct OfflineQueue {
    /// (thread id, message JSON), oldest first.
    items: VecDeque<(String, String)>,
    resync: BTreeSet<String>,
}

#[derive(Default)]
struct Inner {
    presence: HashMap<String, Expiring<i64>>,
    /// When each user's last connection closed.
    last_seen: HashMap<String, Millis>,
    typing: HashMap<(String, String), Expiring<()>>,
    offline: HashMap<String, Expiring<OfflineQueue>>,
    /// Per user, the instants of the actions in the current window, oldest first.
    rate: HashMap<String, VecDeque<Instant>>,
    thread_meta: HashMap<String, Expiring<String>>,
    /// Plugin key-value entries by (plugin, key); `None` expiry means forever.
    kv: BTreeMap<(String, String), (String, Option<Instant>)>,
    events: VecDeque<StreamEntry>,
}

/// [`StateStore`] held in this process's memory; presence and limits are per instance.
#[derive(Default)]
pub struct MemoryState {
    inner: Mutex<Inner>,
    /// Listeners of plugin changes (one process: only this instance's own).
    plugin_listeners: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<String>>>,
}

impl MemoryState {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The newest `n` entries of the event stream, oldest first.
    #[cfg(test)]
    pub fn recent_events(&self, n: usize) -> Vec<StreamEntry> {
        self.with(|s| s.events.iter().rev().take(n).rev().cloned().collect())
    }
}

#[async_trait]
impl Presence for MemoryState {
    async fn presence_set(&self, user: &str, count: i64, ttl: Duration) -> StateResult<i64> {
        Ok(self.with(|s| {
            if count > 0 {
                s.presence
                    .insert(user.to_owned(), Expiring::new(count, ttl));
                count
            } else {
                s.presence.remove(user);
                0
            }
        }))
    }

    async fn presence_refresh(&self, users: &[(String, i64)], ttl: Duration) -> StateResult<()> {
        self.with(|s| {
            for (user, count) in users {
                s.presence.insert(user.clone(), Expiring::new(*count, ttl));
            }
        });
        Ok(())
    }

    async fn presence_counts(&self, users: &[String]) -> StateResult<Vec<i64>> {
        Ok(self.with(|s| {
            users
                .iter()
                .map(|u| {
                    s.presence
                        .get(u)
                        .filter(|e| e.live())
                        .map_or(0, |e| e.value.max(0))
                })
                .collect()
        }))
    }

    async fn last_seen_set(&self, user: &str, at: Millis) -> StateResult<()> {
        self.with(|s| s.last_seen.insert(user.to_owned(), at));
        Ok(())
    }

    async fn last_seen(&self, users: &[String]) -> StateResult<Vec<Option<Millis>>> {
        Ok(self.with(|s| users.iter().map(|u| s.last_seen.get(u).copied()).collect()))
    }

    async fn presence_reap(&self) -> StateResult<Vec<String>> {
        Ok(Vec::new()) // one process: no other instance to outlive
    }

    async fn presence_instances(&self) -> StateResult<Vec<(String, i64)>> {
        Ok(vec![("local".to_owned(), crate::domain::now_ms())]) // one process, always live
    }

    async fn presence_retire(&self) -> StateResult<()> {
        Ok(())
    }
}

#[async_trait]
impl Typing for MemoryState {
    async fn typing_start(&self, thread: &str, user: &str, ttl: Duration) -> StateResult<()> {
        self.with(|s| {
            s.typing.retain(|_, e| e.live());
            s.typing
                .insert((thread.to_owned(), user.to_owned()), Expiring::new((), ttl));
        });
        Ok(())
    }

    async fn typing_stop(&self, thread: &str, user: &str) -> StateResult<bool> {
        Ok(self.with(|s| {
            s.typing
                .remove(&(thread.to_owned(), user.to_owned()))
                .is_some_and(|e| e.live())
        }))
    }
}

#[async_trait]
impl OfflineQueues for MemoryState {
    async fn offline_push(&self, users: &[String], thread: &str, message: &str) -> StateResult<()> {
        self.with(|s| {
            for user in users {
                let entry = s
                    .offline
                    .entry(user.clone())
                    .or_insert_with(|| Expiring::new(OfflineQueue::default(), OFFLINE_QUEUE_TTL));
                if !entry.live() {
                    *entry = Expiring::new(OfflineQueue::default(), OFFLINE_QUEUE_TTL);
                }
                entry.expires = Instant::now() + OFFLINE_QUEUE_TTL;
                let queue = &mut entry.value;
                queue
                    .items
                    .push_back((thread.to_owned(), message.to_owned()));
                while queue.items.len() > OFFLINE_QUEUE_MAX {
                    if let Some((dropped_thread, _)) = queue.items.pop_front() {
                        queue.resync.insert(dropped_thread);
                    }
                }
            }
        });
        Ok(())
    }

    async fn offline_drain(&self, user: &str) -> StateResult<OfflineBatch> {
        Ok(
            self.with(|s| match s.offline.remove(user).filter(|e| e.live()) {
                Some(entry) => OfflineBatch {
                    messages: entry.value.items.into_iter().map(|(_, m)| m).collect(),
                    resync_threads: entry.value.resync.into_iter().collect(),
                },
                None => OfflineBatch::default(),
            }),
        )
    }
}

#[async_trait]
impl RateLimits for MemoryState {
    async fn rate_limit_hit(
        &self,
        user: &str,
        limit: u32,
        window: Duration,
    ) -> StateResult<RateDecision> {
        Ok(self.with(|s| {
            let now = Instant::now();
            let hits = s.rate.entry(user.to_owned()).or_default();
            while hits
                .front()
                .is_some_and(|t| now.duration_since(*t) >= window)
            {
                hits.pop_front();
            }
            if hits.len() < limit as usize {
                hits.push_back(now);
                return RateDecision::Allowed;
            }
            let oldest = hits.front().copied().unwrap_or(now);
            RateDecision::Limited {
                retry_after: (oldest + window)
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
            }
        }))
    }
}

#[async_trait]
impl ThreadCache for MemoryState {
    async fn thread_meta_get(&self, thread: &str) -> StateResult<Option<String>> {
        Ok(self.with(|s| {
            s.thread_meta
                .get(thread)
                .filter(|e| e.live())
                .map(|e| e.value.clone())
        }))
    }

    async fn thread_meta_put(&self, thread: &str, json: &str, ttl: Duration) -> StateResult<()> {
        self.with(|s| {
            s.thread_meta.retain(|_, e| e.live());
            s.thread_meta
                .insert(thread.to_owned(), Expiring::new(json.to_owned(), ttl));
        });
        Ok(())
    }

    async fn thread_meta_invalidate(&self, thread: &str) -> StateResult<()> {
        self.with(|s| s.thread_meta.remove(thread));
        Ok(())
    }
}

#[async_trait]
impl EventStream for MemoryState {
    async fn append_events(&self, entries: &[StreamEntry]) -> StateResult<()> {
        self.with(|s| {
            s.events.extend(entries.iter().cloned());
            let excess = s.events.len().saturating_sub(EVENT_STREAM_MAX);
            s.events.drain(..excess);
        });
        Ok(())
    }

    async fn events_len(&self) -> StateResult<u64> {
        Ok(self.with(|s| s.events.len() as u64))
    }
}

#[async_trait]
impl PluginKv for MemoryState {
    async fn kv_get(&self, plugin: &str, key: &str) -> StateResult<Option<KvValue>> {
        Ok(self.with(|s| {
            live_kv(s, plugin, key).map(|(value, expires)| KvValue {
                value: value.clone(),
                ttl: expires.map(|e| e.saturating_duration_since(Instant::now())),
            })
        }))
    }

    async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> StateResult<()> {
        self.with(|s| {
            let expires = ttl.map(|t| Instant::now() + t);
            sweep_kv(s);
            s.kv.insert(
                (plugin.to_owned(), key.to_owned()),
                (value.to_owned(), expires),
            );
        });
        Ok(())
    }

    async fn kv_incr(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> StateResult<i64> {
        self.with(|s| {
            let (current, expires) = match live_kv(s, plugin, key) {
                Some((v, e)) => (
                    v.parse::<i64>().map_err(|_| {
                        StateError::Other(anyhow::anyhow!("value is not an integer"))
                    })?,
                    *e,
                ),
                None => (0, None),
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| StateError::Other(anyhow::anyhow!("overflow")))?;
            let expires = expires.or_else(|| ttl.map(|t| Instant::now() + t));
            sweep_kv(s);
            s.kv.insert(
                (plugin.to_owned(), key.to_owned()),
                (next.to_string(), expires),
            );
            Ok(next)
        })
    }

    async fn kv_delete(&self, plugin: &str, key: &str) -> StateResult<bool> {
        Ok(self.with(|s| {
            let live = live_kv(s, plugin, key).is_some();
            s.kv.remove(&(plugin.to_owned(), key.to_owned()));
            live
        }))
    }

    /// By key; the cursor is the last key of the previous page.
    async fn kv_list(
        &self,
        plugin: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> StateResult<KvPage> {
        let start = (plugin.to_owned(), prefix.to_owned());
        let after = cursor.map(|c| (plugin.to_owned(), c.to_owned()));
        Ok(self.with(|s| {
            let now = Instant::now();
            let from = match &after {
                Some(after) if *after >= start => Bound::Excluded(after),
                _ => Bound::Included(&start),
            };
            let mut live =
                s.kv.range::<(String, String), _>((from, Bound::Unbounded))
                    .take_while(|((p, k), _)| p == plugin && k.starts_with(prefix))
                    .filter(|(_, (_, expires))| expires.is_none_or(|e| e > now));
            let entries: Vec<(String, KvValue)> = live
                .by_ref()
                .take(limit.max(1))
                .map(|((_, key), (value, expires))| {
                    let ttl = expires.map(|e| e.saturating_duration_since(now));
                    (
                        key.clone(),
                        KvValue {
                            value: value.clone(),
                            ttl,
                        },
                    )
                })
                .collect();
            let next = match live.next() {
                Some(_) => entries.last().map(|(key, _)| key.clone()),
                None => None,
            };
            KvPage { entries, next }
        }))
    }
}

#[async_trait]
impl PluginChanges for MemoryState {
    async fn publish_plugin_change(&self, message: &str) -> StateResult<()> {
        let mut listeners = self
            .plugin_listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        listeners.retain(|l| l.send(message.to_owned()).is_ok());
        Ok(())
    }

    fn plugin_changes(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.plugin_listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }
}

#[async_trait]
impl StateStore for MemoryState {
    async fn ping(&self) -> StateResult<()> {
        Ok(())
    }
}

fn live_kv<'a>(s: &'a Inner, plugin: &str, key: &str) -> Option<&'a (String, Option<Instant>)> {
    s.kv.get(&(plugin.to_owned(), key.to_owned()))
        .filter(|(_, expires)| expires.is_none_or(|e| e > Instant::now()))
}

/// Drops expired plugin entries now and then, so TTL'd keys never read again do not pile up.
fn sweep_kv(s: &mut Inner) {
    if s.kv.len() % 1024 == 1023 {
        let now = Instant::now();
        s.kv.retain(|_, (_, expires)| expires.is_none_or(|e| e > now));
    }
}
