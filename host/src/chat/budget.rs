//! Flood control for the events that are not sends: a [`RateBucket`] per user
//! and action on this instance, with the limit the policy chain sets
//! (`CHAT_*_PER_MINUTE` defaults, or a `rate-limit` plugin), and the typing
//! relay's coalescing. Sends keep their exact, cluster-wide sliding window in
//! the state store; these budgets are local, so a user with sockets on `n`
//! instances gets up to `n` times them (and at most `CHAT_MAX_SOCKETS_PER_USER`
//! sockets on each).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ChatService;
use super::error::ChatError;
use crate::domain::policy::{RateBucket, RateLimit, Request};

/// Full buckets are forgotten once this many keys are held.
const PRUNE_AT: usize = 4096;

/// One [`RateBucket`] per key; a full bucket is the same as none, so the map
/// only holds keys that spent something recently.
pub struct Budgets<K> {
    buckets: Mutex<HashMap<K, RateBucket>>,
}

impl<K> Default for Budgets<K> {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq> Budgets<K> {
    /// Spends one action of `key` under `limit`, or tells how long until one more.
    pub fn take(&self, key: K, limit: RateLimit) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, bucket| !bucket.is_full(now));
        }
        buckets
            .entry(key)
            .or_insert_with(|| RateBucket::new(now))
            .take(now, limit)
    }
}

impl<K: Hash + Eq> Budgets<K> {
    /// Refills `key`'s bucket.
    pub fn forget(&self, key: &K) {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Milliseconds to tell a client to wait, never 0.
pub fn retry_after_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl ChatService {
    /// Spends one of the actor's actions of this kind (not sends: see
    /// `send_message`), or answers `rate_limited` with `retryAfterMs`.
    pub(super) async fn spend_budget(&self, req: &Request<'_>) -> Result<(), ChatError> {
        let limit = self.policy.rate_limit(req).await;
        self.budgets
            .take((req.actor.user_id.clone(), req.action), limit)
            .map_err(|wait| {
                metrics::counter!("chat_events_throttled_total", "action" => req.action.label())
                    .increment(1);
                ChatError::RateLimited {
                    retry_after_ms: retry_after_ms(wait),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_their_own_buckets_and_full_ones_are_forgotten() {
        let budgets = Budgets::default();
        let limit = RateLimit {
            limit: 2,
            window: Duration::from_secs(60),
        };
        let a = || "a".to_owned();
        assert!(budgets.take(a(), limit).is_ok());
        assert!(budgets.take(a(), limit).is_ok());
        let wait = budgets.take(a(), limit).unwrap_err();
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
        assert!(
            budgets.take("b".into(), limit).is_ok(),
            "another key is not charged"
        );
        let quick = RateLimit {
            limit: 1,
            window: Duration::from_nanos(1),
        };
        for key in 0..PRUNE_AT + 10 {
            let _ = budgets.take(key.to_string(), quick);
        }
        assert!(budgets.buckets.lock().unwrap().len() < PRUNE_AT + 10);
        assert!(budgets.take(a(), limit).is_err(), "a spent bucket is kept");
        budgets.forget(&a());
        assert!(budgets.take(a(), limit).is_ok());
    }
}
