//! The host's imports: the real ones on wasm, the mock of [`crate::testing`] elsewhere.

#[cfg(target_arch = "wasm32")]
mod imp {
    use crate::bindings::chat::plugin::{audit, host, kv};
    use crate::{AuditRecord, LogLevel};

    pub fn log(level: LogLevel, message: &str) {
        host::log(level, message)
    }
    pub fn now_ms() -> i64 {
        host::now_ms()
    }
    pub fn config(key: &str) -> Option<String> {
        host::config(key)
    }
    pub fn is_participant(user_id: &str) -> bool {
        host::is_participant(user_id)
    }
    pub fn participants() -> Vec<String> {
        host::participants()
    }
    pub fn kv_get(key: &str) -> Option<String> {
        kv::get(key)
    }
    pub fn kv_set(key: &str, value: &str, ttl_ms: Option<u64>) -> Result<(), String> {
        kv::set(key, value, ttl_ms)
    }
    pub fn kv_incr(key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, String> {
        kv::incr(key, delta, ttl_ms)
    }
    pub fn kv_delete(key: &str) -> Result<(), String> {
        kv::delete(key)
    }
    pub fn audit_append(entry: &AuditRecord) -> Result<u64, String> {
        audit::append(entry)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    pub use crate::testing::mock::*;
}

pub(crate) use imp::*;
