//! The WebAssembly plugin runtime.
//!
//! - [`bindings`]: all generated code of the `chat:plugin@0.1.0` WIT package.
//! - [`engine`]: the wasmtime engines, precompiled-artifact cache.
//! - [`deadline`]: a call's wall-clock deadline and the epoch ticker.
//! - [`imports`]: host implementations of `host`, `kv`, `audit` (one file each).
//! - [`kv_cache`]: each plugin's read cache in front of its key-value store.
//! - [`store_data`]: per-instance store data (WASI without files/network/env).
//! - [`manifest`]: `<name>.toml`: order, fail policy, limits, config.
//! - [`loaded`]: one plugin version with warm instances, call slots and per-call limits.
//! - [`registry`]: the current chain, swapped atomically on reload.
//! - [`chain`]: the plugins' link of the policy chain and the events observer.
//! - [`directory`]: loading and watching `CHAT_PLUGIN_DIR`.
//! - [`metrics`]: per-plugin counters.
//! - [`sync`]: admin changes stored in the database and announced to every instance.
//! - [`admin`]: the administration service (upload, enable, configure, kv, audit views).
//! - [`error`]: the runtime's one error type.
//!
//! The runtime implements the policy port of [`crate::domain::policy`]; it never
//! imports the use cases.

pub mod admin;
pub mod bindings;
pub mod chain;
pub mod deadline;
pub mod directory;
pub mod engine;
pub mod error;
pub mod imports;
pub mod kv_cache;
pub mod loaded;
pub mod manifest;
pub mod metrics;
pub mod registry;
pub mod store_data;
pub mod sync;

#[cfg(test)]
mod tests;
