//! `chat:plugin/kv`: the plugin's own key-value namespace in the state store, with
//! quotas; reads go through the plugin's [`KvCache`](crate::plugins::kv_cache::KvCache).

use std::time::Duration;

use crate::plugins::bindings::chat::plugin::kv;
use crate::plugins::store_data::PluginState;

/// Longest key, in bytes.
pub const MAX_KEY: usize = 256;
/// Longest value, in bytes.
pub const MAX_VALUE: usize = 64 << 10;
/// Longest time to live of a key: a year, in milliseconds.
pub const MAX_TTL_MS: u64 = 365 * 24 * 3600 * 1000;

/// The key rule of every plugin key-value store: 1-[`MAX_KEY`] bytes.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(format!("keys are 1-{MAX_KEY} bytes"));
    }
    Ok(())
}

/// The value rule: at most [`MAX_VALUE`] bytes.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE {
        return Err(format!("values are at most {MAX_VALUE} bytes"));
    }
    Ok(())
}

/// The TTL rule: none, or 1 ms to [`MAX_TTL_MS`] (0 is not "delete": deleting
/// is its own call).
pub fn check_ttl(ttl_ms: Option<u64>) -> Result<Option<Duration>, String> {
    match ttl_ms {
        Some(0) => Err("ttlMs must be at least 1 (delete the key to remove it)".into()),
        Some(ms) if ms > MAX_TTL_MS => Err(format!("ttlMs is at most {MAX_TTL_MS} (a year)")),
        other => Ok(other.map(Duration::from_millis)),
    }
}

impl kv::Host for PluginState {
    async fn get(&mut self, key: String) -> Option<String> {
        check_key(&key).ok()?;
        if let Some(cached) = self.env.kv_cache.get(&key) {
            return cached;
        }
        let env = self.env.clone();
        let entry = env
            .state
            .kv_get(&env.name, &key)
            .await
            .inspect_err(|e| tracing::warn!(plugin = %env.name, error = %e, "kv get failed"))
            .ok()?;
        let ttl = entry.as_ref().and_then(|e| e.ttl);
        let value = entry.map(|e| e.value);
        env.kv_cache.put(&key, value.clone(), ttl);
        value
    }

    async fn set(&mut self, key: String, value: String, ttl_ms: Option<u64>) -> Result<(), String> {
        check_key(&key)?;
        check_value(&value)?;
        let ttl = check_ttl(ttl_ms)?;
        let env = self.env.clone();
        let written = env.state.kv_set(&env.name, &key, &value, ttl).await;
        match written {
            Ok(()) => env.kv_cache.put(&key, Some(value), ttl),
            Err(_) => env.kv_cache.forget(&key),
        }
        written.map_err(|e| e.to_string())
    }

    async fn incr(&mut self, key: String, delta: i64, ttl_ms: Option<u64>) -> Result<i64, String> {
        check_key(&key)?;
        let ttl = check_ttl(ttl_ms)?;
        let env = self.env.clone();
        env.kv_cache.forget(&key);
        env.state
            .kv_incr(&env.name, &key, delta, ttl)
            .await
            .map_err(|e| e.to_string())
    }

    async fn delete(&mut self, key: String) -> Result<(), String> {
        check_key(&key)?;
        let env = self.env.clone();
        env.kv_cache.forget(&key);
        env.state
            .kv_delete(&env.name, &key)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
