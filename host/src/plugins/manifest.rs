//! The plugin manifest (`<name>.toml` beside `<name>.wasm`): identity, order,
//! fail policy, limits and configuration.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::engine::Metering;
use super::error::PluginError;
use crate::domain::evidence;

/// What happens to an event when the plugin fails (trap, timeout, memory cap, bad result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailPolicy {
    /// A failing plugin denies (access), rejects (message hook) or applies its strictest
    /// known limit (rate limit: the host default).
    Closed,
    /// A failing plugin is skipped.
    Open,
}

/// Per-call and per-instance limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Wall-clock budget of one hook call, in milliseconds: from its arrival at the
    /// plugin (waiting for a free slot included) to its answer, whatever else runs.
    #[serde(default = "Limits::default_time_ms")]
    pub time_ms: u64,
    /// Calls of this plugin running at once; a call beyond waits for a free slot
    /// until its deadline, then is an `overloaded` fault. 0 (the default): half the
    /// host's async worker threads (its CPU cores), rounded up.
    #[serde(default)]
    pub concurrent_calls: u32,
    /// Cap of the plugin's linear memory, in MiB.
    #[serde(default = "Limits::default_memory_mb")]
    pub memory_mb: u64,
    /// Fuel (roughly, wasm instructions) per call; 0 means no fuel limit.
    #[serde(default)]
    pub fuel: u64,
}

impl Limits {
    fn default_time_ms() -> u64 {
        20
    }
    fn default_memory_mb() -> u64 {
        16
    }

    /// The time budget of one call.
    pub fn time(&self) -> Duration {
        Duration::from_millis(self.time_ms)
    }

    /// How the plugin's calls are metered: fuel only when a fuel limit is set.
    pub fn metering(&self) -> Metering {
        match self.fuel {
            0 => Metering::Epochs,
            _ => Metering::EpochsAndFuel,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            time_ms: Self::default_time_ms(),
            concurrent_calls: 0,
            memory_mb: Self::default_memory_mb(),
            fuel: 0,
        }
    }
}

/// A plugin manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// Unique name: 1-64 chars of `[a-z0-9-]`.
    pub name: String,
    /// The plugin's own version (shown by the admin API).
    pub version: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Position in the chain: lower runs first.
    #[serde(default = "Manifest::default_order")]
    pub order: i32,
    /// `closed` (deny on failure) or `open` (skip on failure).
    pub fail: FailPolicy,
    /// Whether the plugin takes part in the chain.
    #[serde(default = "Manifest::default_enabled")]
    pub enabled: bool,
    /// Per-call limits.
    #[serde(default)]
    pub limits: Limits,
    /// How long a key-value read is cached in the instance, in milliseconds; 0: never.
    #[serde(default = "Manifest::default_kv_cache_ms")]
    pub kv_cache_ms: u64,
    /// String values the plugin reads with `host.config(key)`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// Longest version, in characters (it is stored with each decision).
pub const MAX_VERSION_CHARS: usize = 64;
/// Largest time budget a manifest may ask for, in milliseconds.
pub const MAX_TIME_MS: u64 = 1_000;
/// Most calls at once a manifest may ask for.
pub const MAX_CONCURRENT_CALLS: u32 = 64;
/// Largest memory cap a manifest may ask for, in MiB.
pub const MAX_MEMORY_MB: u64 = 256;
/// Longest key-value read cache a manifest may ask for, in milliseconds.
pub const MAX_KV_CACHE_MS: u64 = 60_000;

impl Manifest {
    fn default_order() -> i32 {
        100
    }
    fn default_enabled() -> bool {
        true
    }
    fn default_kv_cache_ms() -> u64 {
        10_000
    }

    /// How long a key-value read is cached.
    pub fn kv_cache(&self) -> Duration {
        Duration::from_millis(self.kv_cache_ms)
    }

    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| PluginError::InvalidManifest(e.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// Checks the name and limits.
    pub fn check(&self) -> Result<(), PluginError> {
        let invalid = |rule: String| Err(PluginError::InvalidManifest(rule));
        if !is_valid_name(&self.name) {
            return invalid(format!(
                "invalid plugin name {:?}: use 1-64 chars of a-z 0-9 -",
                self.name
            ));
        }
        if self.name == evidence::HOST {
            return invalid(format!(
                "the plugin name {:?} is reserved: the host's own audit entries bear it",
                self.name
            ));
        }
        if !(1..=MAX_VERSION_CHARS).contains(&self.version.chars().count()) {
            return invalid(format!("version must be 1-{MAX_VERSION_CHARS} characters"));
        }
        if !(1..=MAX_TIME_MS).contains(&self.limits.time_ms) {
            return invalid(format!("limits.time-ms must be 1-{MAX_TIME_MS}"));
        }
        if self.limits.concurrent_calls > MAX_CONCURRENT_CALLS {
            return invalid(format!(
                "limits.concurrent-calls must be 0-{MAX_CONCURRENT_CALLS}"
            ));
        }
        if !(1..=MAX_MEMORY_MB).contains(&self.limits.memory_mb) {
            return invalid(format!("limits.memory-mb must be 1-{MAX_MEMORY_MB}"));
        }
        if self.kv_cache_ms > MAX_KV_CACHE_MS {
            return invalid(format!("kv-cache-ms must be 0-{MAX_KV_CACHE_MS}"));
        }
        Ok(())
    }
}

/// True for a plugin name: 1-64 chars of `[a-z0-9-]`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_manifest_with_defaults() {
        let m = Manifest::parse(
            r#"
            name = "contact-filter"
            version = "0.1.0"
            fail = "open"
            [limits]
            time-ms = 5
            [config]
            reject = "false"
            "#,
        )
        .unwrap();
        assert_eq!(m.order, 100);
        assert!(m.enabled);
        assert_eq!(m.kv_cache(), Duration::from_secs(10));
        assert_eq!(
            m.limits,
            Limits {
                time_ms: 5,
                concurrent_calls: 0,
                memory_mb: 16,
                fuel: 0
            }
        );
        assert_eq!(m.config["reject"], "false");
    }

    #[test]
    fn refuses_unknown_fields_bad_names_and_limits() {
        for bad in [
            "name = \"x\"\nversion = \"1\"\nfail = \"open\"\nsurprise = 1",
            "name = \"Bad Name\"\nversion = \"1\"\nfail = \"open\"",
            "name = \"chat-host\"\nversion = \"1\"\nfail = \"open\"",
            "name = \"x\"\nversion = \"\"\nfail = \"open\"",
            "name = \"x\"\nversion = \"1\"\nfail = \"maybe\"",
            "name = \"x\"\nversion = \"1\"\nfail = \"open\"\n[limits]\ntime-ms = 0",
            "name = \"x\"\nversion = \"1\"\nfail = \"open\"\n[limits]\nmemory-mb = 100000",
            "name = \"x\"\nversion = \"1\"\nfail = \"open\"\n[limits]\nconcurrent-calls = 65",
            "name = \"x\"\nversion = \"1\"\nfail = \"open\"\nkv-cache-ms = 3600000",
        ] {
            assert!(
                matches!(Manifest::parse(bad), Err(PluginError::InvalidManifest(_))),
                "{bad}"
            );
        }
    }
}
