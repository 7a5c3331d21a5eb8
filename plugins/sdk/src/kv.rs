//! The plugin's key-value store. The host namespaces it per plugin (one
//! plugin never sees another's keys), enforces quotas, and shares it between
//! host instances. Admins read and write the same keys through the host's
//! admin API (that is how `blocklist` learns who is blocked).
//!
//! Keys are free-form strings; by convention the parts are joined with `:`,
//! e.g. `blocked:<userId>` ([`key`] builds them).

/// The value of `key`, if present and not expired.
pub fn get(key: &str) -> Option<String> {
    crate::sys::kv_get(key)
}

/// Whether `key` is present (and not expired).
pub fn exists(key: &str) -> bool {
    get(key).is_some()
}

/// The value of `key` parsed as an integer; `None` when absent or not a number.
pub fn get_i64(key: &str) -> Option<i64> {
    get(key)?.trim().parse().ok()
}

/// Sets `key` to `value` without expiry.
pub fn set(key: &str, value: &str) -> Result<(), String> {
    crate::sys::kv_set(key, value, None)
}

/// Sets `key` to `value`, expiring after `ttl_ms` milliseconds.
pub fn set_with_ttl(key: &str, value: &str, ttl_ms: u64) -> Result<(), String> {
    crate::sys::kv_set(key, value, Some(ttl_ms))
}

/// Adds `delta` to the integer at `key` (a missing key counts as 0) and
/// returns the new value; `ttl_ms`, when given, applies when the key is
/// created.
pub fn incr(key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, String> {
    crate::sys::kv_incr(key, delta, ttl_ms)
}

/// Removes `key` (no error when absent).
pub fn delete(key: &str) -> Result<(), String> {
    crate::sys::kv_delete(key)
}

/// Joins key parts with `:`: `key(&["blocked", "t1", "u2"])` is `"blocked:t1:u2"`.
pub fn key(parts: &[&str]) -> String {
    parts.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_store() {
        crate::testing::reset();
        assert_eq!(get("a"), None);
        set("a", "1").unwrap();
        assert!(exists("a"));
        assert_eq!(incr("a", 2, None), Ok(3));
        assert_eq!(get_i64("a"), Some(3));
        set_with_ttl("t", "x", 100).unwrap();
        crate::testing::advance_ms(99);
        assert!(exists("t"));
        crate::testing::advance_ms(1);
        assert!(!exists("t"));
        delete("a").unwrap();
        assert_eq!(get("a"), None);
        assert_eq!(key(&["blocked", "t1", "u2"]), "blocked:t1:u2");
    }
}
