//! A plugin's read cache in front of its key-value store, so a hot hook (a
//! blocklist lookup on every send) costs no backend round trip.
//!
//! Reads are kept for the manifest's `kv-cache-ms`; the plugin's own writes and
//! admin API writes on any instance (announced by [`super::sync`]) drop or update
//! the entry at once, and no entry outlives the key's own TTL. What the cache can
//! miss is a write by the plugin itself on another instance: such a read may be up
//! to `kv-cache-ms` stale. Counters (`incr`) always go to the backend.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept per plugin; when full, expired ones are dropped, then all.
const MAX_ENTRIES: usize = 16_384;

struct Cached {
    value: Option<String>,
    until: Instant,
}

/// Recently read or written values of one plugin's keys (`None`: the key is absent).
pub struct KvCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Cached>>,
}

impl KvCache {
    /// A cache keeping values for `ttl`; a zero `ttl` caches nothing.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached value of `key` (`Some(None)`: known absent), or `None` on a miss.
    pub fn get(&self, key: &str) -> Option<Option<String>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries();
        let cached = entries.get(key)?;
        (cached.until > Instant::now()).then(|| cached.value.clone())
    }

    /// Remembers `value` for `key`, no longer than the key's own `key_ttl`.
    pub fn put(&self, key: &str, value: Option<String>, key_ttl: Option<Duration>) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let until = now + key_ttl.map_or(self.ttl, |t| t.min(self.ttl));
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(key) {
            entries.retain(|_, c| c.until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key.to_owned(), Cached { value, until });
    }

    /// Forgets `key`: the next read goes to the backend.
    pub fn forget(&self, key: &str) {
        self.entries().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_until_forgotten_or_expired() {
        let cache = KvCache::new(Duration::from_secs(60));
        assert_eq!(cache.get("k"), None, "a miss before any read");
        cache.put("k", Some("v".into()), None);
        cache.put("absent", None, None);
        assert_eq!(cache.get("k"), Some(Some("v".into())));
        assert_eq!(cache.get("absent"), Some(None), "absence is cached too");
        cache.forget("k");
        assert_eq!(cache.get("k"), None);
        cache.put("short", Some("v".into()), Some(Duration::ZERO));
        assert_eq!(cache.get("short"), None, "never kept past the key's TTL");
    }

    #[test]
    fn zero_ttl_caches_nothing_and_size_is_bounded() {
        let off = KvCache::new(Duration::ZERO);
        off.put("k", Some("v".into()), None);
        assert_eq!(off.get("k"), None);

        let cache = KvCache::new(Duration::from_secs(60));
        for i in 0..=MAX_ENTRIES {
            cache.put(&i.to_string(), None, None);
        }
        assert!(cache.entries().len() <= MAX_ENTRIES);
        assert_eq!(cache.get(&MAX_ENTRIES.to_string()), Some(None));
    }
}
