//! An in-memory stand-in for the host, used off wasm (a plugin's native
//! `cargo test`): config values, the thread's participants, a key-value store
//! with TTLs on a mock clock,
//! captured log lines and audit entries. State is per thread (each test runs
//! on its own thread); call [`reset`] at the start of a test.

use crate::{AuditRecord, LogLevel};
use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Default)]
struct State {
    now_ms: i64,
    config: BTreeMap<String, String>,
    participants: Vec<String>,
    kv: BTreeMap<String, (String, Option<i64>)>,
    logs: Vec<(LogLevel, String)>,
    audit: Vec<AuditRecord>,
}

const START_MS: i64 = 1_700_000_000_000;

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State { now_ms: START_MS, ..State::default() });
}

fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// Clears config, store, logs and audit entries; the clock goes back to its
/// start (1 700 000 000 000 ms).
pub fn reset() {
    with(|s| {
        *s = State {
            now_ms: START_MS,
            ..State::default()
        }
    });
}

/// Sets a config value (as the manifest's `[config]` table would).
pub fn set_config(key: &str, value: &str) {
    with(|s| s.config.insert(key.to_string(), value.to_string()));
}

/// Sets the participants of the thread of the call in progress, as
/// [`crate::Request::new`] does.
pub fn set_participants(user_ids: &[&str]) {
    with(|s| s.participants = user_ids.iter().map(|u| u.to_string()).collect());
}

/// Sets the mock clock.
pub fn set_now_ms(now: i64) {
    with(|s| s.now_ms = now);
}

/// Moves the mock clock forward.
pub fn advance_ms(ms: i64) {
    with(|s| s.now_ms += ms);
}

/// The current value of a key (as an admin reading the store would see it).
pub fn kv_value(key: &str) -> Option<String> {
    mock::kv_get(key)
}

/// Sets a key (as an admin would through the host's admin API).
pub fn kv_put(key: &str, value: &str) {
    mock::kv_set(key, value, None).unwrap()
}

/// The live keys of the store, sorted.
pub fn kv_keys() -> Vec<String> {
    let now = mock::now_ms();
    with(|s| {
        s.kv.iter()
            .filter(|(_, (_, exp))| exp.is_none_or(|e| e > now))
            .map(|(k, _)| k.clone())
            .collect()
    })
}

/// The log lines written so far.
pub fn logs() -> Vec<(LogLevel, String)> {
    with(|s| s.logs.clone())
}

/// The audit entries appended so far.
pub fn audit_records() -> Vec<AuditRecord> {
    with(|s| s.audit.clone())
}

#[doc(hidden)]
pub mod mock {
    use super::with;
    use crate::{AuditRecord, LogLevel};

    pub fn log(level: LogLevel, message: &str) {
        with(|s| s.logs.push((level, message.to_string())));
    }
    pub fn now_ms() -> i64 {
        with(|s| s.now_ms)
    }
    pub fn config(key: &str) -> Option<String> {
        with(|s| s.config.get(key).cloned())
    }
    pub fn is_participant(user_id: &str) -> bool {
        with(|s| s.participants.iter().any(|p| p == user_id))
    }
    pub fn participants() -> Vec<String> {
        with(|s| s.participants.clone())
    }
    pub fn kv_get(key: &str) -> Option<String> {
        with(|s| match s.kv.get(key) {
            Some((v, exp)) if exp.is_none_or(|e| e > s.now_ms) => Some(v.clone()),
            _ => None,
        })
    }
    pub fn kv_set(key: &str, value: &str, ttl_ms: Option<u64>) -> Result<(), String> {
        with(|s| {
            let exp = ttl_ms.map(|t| s.now_ms.saturating_add(t as i64));
            s.kv.insert(key.to_string(), (value.to_string(), exp));
        });
        Ok(())
    }
    pub fn kv_incr(key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, String> {
        match kv_get(key) {
            None => {
                kv_set(key, &delta.to_string(), ttl_ms)?;
                Ok(delta)
            }
            Some(v) => {
                let n: i64 = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("value of {key:?} is not an integer"))?;
                let n = n.checked_add(delta).ok_or("integer overflow")?;
                with(|s| s.kv.get_mut(key).unwrap().0 = n.to_string());
                Ok(n)
            }
        }
    }
    pub fn kv_delete(key: &str) -> Result<(), String> {
        with(|s| s.kv.remove(key));
        Ok(())
    }
    pub fn audit_append(entry: &AuditRecord) -> Result<u64, String> {
        with(|s| {
            s.audit.push(entry.clone());
            Ok(s.audit.len() as u64)
        })
    }
}
