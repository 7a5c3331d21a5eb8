//! The plugin administration service: upload, enable, disable, configure and
//! remove plugins, read and write their key-value entries, and read and verify
//! the dispute audit trail. Every change is stored and announced to every
//! instance ([`PluginSync`]) and published on the event stream; the HTTP layer
//! only decodes and encodes.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;

use super::error::PluginError;
use super::imports::{MAX_KEY, check_key, check_ttl, check_value};
use super::loaded::LoadedPlugin;
use super::manifest::{Manifest, is_valid_name};
use super::registry::PluginRegistry;
use super::sync::PluginSync;
use crate::audit::AuditLog;
pub use crate::audit::Verification;
use crate::domain::events::{ChatEvent, EventKind};
use crate::domain::{Actor, is_valid_id};
use crate::events::EventBus;
use crate::state::{KvPage, KvValue, PluginKv};
pub use crate::store::{AuditEntry, ThreadAudit};

/// The plugin whose key `audit:<threadId>` follows a thread's audit switch, so
/// its trail of the thread's events starts and stops with the host's evidence.
pub const AUDIT_PLUGIN: &str = "dispute-audit";
/// Longest case reference of an audit, in characters.
const MAX_CASE_CHARS: usize = 200;
/// Most entries of one [`PluginAdmin::kv_list`] page.
pub const MAX_KV_PAGE: usize = 500;
/// Entries of a [`PluginAdmin::kv_list`] page when the caller names no limit.
const DEFAULT_KV_PAGE: usize = 100;

/// Administers the plugins of this instance and, through [`PluginSync`], of the cluster.
pub struct PluginAdmin {
    registry: Arc<PluginRegistry>,
    sync: Arc<PluginSync>,
    state: Arc<dyn PluginKv>,
    audit: Arc<AuditLog>,
    events: EventBus,
}

impl PluginAdmin {
    /// The service over these parts.
    pub fn new(
        registry: Arc<PluginRegistry>,
        sync: Arc<PluginSync>,
        state: Arc<dyn PluginKv>,
        audit: Arc<AuditLog>,
        events: EventBus,
    ) -> Self {
        Self {
            registry,
            sync,
            state,
            audit,
            events,
        }
    }

    fn publish(&self, kind: EventKind, actor: &Actor, plugin: &str) {
        self.events
            .publish(ChatEvent::new(kind, &actor.user_id).subject(plugin));
    }

    /// The loaded plugins, in chain order.
    pub fn list(&self) -> Vec<Arc<LoadedPlugin>> {
        self.registry.snapshot().to_vec()
    }

    /// Loads a new version of `name` from its manifest (TOML) and component
    /// (base64); a version that does not compile, link or instantiate is refused
    /// and the old one keeps serving.
    pub async fn upload(
        &self,
        actor: &Actor,
        name: &str,
        manifest: &str,
        wasm_base64: &str,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let manifest = Manifest::parse(manifest)?;
        if manifest.name != name {
            return Err(PluginError::NameMismatch {
                expected: name.to_owned(),
                found: manifest.name,
            });
        }
        let wasm = base64::engine::general_purpose::STANDARD
            .decode(wasm_base64.trim())
            .map_err(|e| PluginError::InvalidComponent(format!("wasmBase64 is not base64: {e}")))?;
        let registry = self.registry.clone();
        let plugin = tokio::task::spawn_blocking(move || registry.load(&wasm, manifest)).await??;
        self.sync.saved(&plugin).await?;
        self.publish(EventKind::PluginUploaded, actor, name);
        Ok(plugin)
    }

    /// Switches a plugin on or off (it stays loaded).
    pub async fn set_enabled(
        &self,
        actor: &Actor,
        name: &str,
        enabled: bool,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let plugin = self.change(name, move |m| m.enabled = enabled).await?;
        let kind = if enabled {
            EventKind::PluginEnabled
        } else {
            EventKind::PluginDisabled
        };
        self.publish(kind, actor, name);
        Ok(plugin)
    }

    /// Replaces a plugin's configuration table.
    pub async fn configure(
        &self,
        actor: &Actor,
        name: &str,
        config: BTreeMap<String, String>,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let plugin = self.change(name, move |m| m.config = config).await?;
        self.publish(EventKind::PluginConfigured, actor, name);
        Ok(plugin)
    }

    /// Unloads a plugin on every instance.
    pub async fn remove(&self, actor: &Actor, name: &str) -> Result<(), PluginError> {
        if !self.registry.remove(name) {
            return Err(PluginError::NotFound(name.to_owned()));
        }
        self.sync.removed(name).await?;
        self.publish(EventKind::PluginRemoved, actor, name);
        Ok(())
    }

    async fn change(
        &self,
        name: &str,
        edit: impl FnOnce(&mut Manifest) + Send + 'static,
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let current = self
            .registry
            .get(name)
            .ok_or_else(|| PluginError::NotFound(name.to_owned()))?;
        let mut manifest = current.manifest.clone();
        edit(&mut manifest);
        let registry = self.registry.clone();
        let plugin = tokio::task::spawn_blocking(move || registry.reconfigure(manifest)).await??;
        self.sync.saved(&plugin).await?;
        Ok(plugin)
    }

    /// A well-formed key of a plugin this host knows (`not_found` otherwise, so
    /// a misspelled name is not a silent write into nowhere).
    fn kv_address(&self, name: &str, key: &str) -> Result<(), PluginError> {
        check_key(key).map_err(PluginError::InvalidRequest)?;
        self.kv_plugin(name)
    }

    /// A loaded plugin's name, or why the request cannot address its store.
    fn kv_plugin(&self, name: &str) -> Result<(), PluginError> {
        if !is_valid_name(name) {
            return Err(PluginError::invalid(format!(
                "invalid plugin name {name:?}: use 1-64 chars of a-z 0-9 -"
            )));
        }
        if self.registry.get(name).is_none() {
            return Err(PluginError::NotFound(name.to_owned()));
        }
        Ok(())
    }

    /// One page of a plugin's key-value entries whose keys start with `prefix`
    /// (how an admin browses the blocklist): `limit` 1-500 (default 100),
    /// `cursor` the `next` of the previous page.
    pub async fn kv_list(
        &self,
        name: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<KvPage, PluginError> {
        let limit = limit.unwrap_or(DEFAULT_KV_PAGE);
        if prefix.len() > MAX_KEY {
            return Err(PluginError::invalid(format!(
                "prefix is {} bytes; at most {MAX_KEY}",
                prefix.len()
            )));
        }
        if !(1..=MAX_KV_PAGE).contains(&limit) {
            return Err(PluginError::invalid(format!(
                "limit must be 1-{MAX_KV_PAGE}, not {limit}"
            )));
        }
        self.kv_plugin(name)?;
        Ok(self.state.kv_list(name, prefix, cursor, limit).await?)
    }

    /// Reads one key of a plugin's key-value store.
    pub async fn kv_get(&self, name: &str, key: &str) -> Result<KvValue, PluginError> {
        self.kv_address(name, key)?;
        self.state
            .kv_get(name, key)
            .await?
            .ok_or_else(|| PluginError::NoKey {
                plugin: name.to_owned(),
                key: key.to_owned(),
            })
    }

    /// Writes one key of a plugin's key-value store (how an admin blocks a user or
    /// puts a thread under audit); every instance forgets its cached read.
    pub async fn kv_set(
        &self,
        actor: &Actor,
        name: &str,
        key: &str,
        value: &str,
        ttl_ms: Option<u64>,
    ) -> Result<(), PluginError> {
        self.kv_address(name, key)?;
        check_value(value).map_err(PluginError::InvalidRequest)?;
        let ttl = check_ttl(ttl_ms).map_err(PluginError::InvalidRequest)?;
        self.state.kv_set(name, key, value, ttl).await?;
        self.sync.kv_changed(name, key).await?;
        self.publish(EventKind::PluginKvSet, actor, name);
        Ok(())
    }

    /// Deletes one key of a plugin's key-value store.
    pub async fn kv_delete(&self, actor: &Actor, name: &str, key: &str) -> Result<(), PluginError> {
        self.kv_address(name, key)?;
        self.state.kv_delete(name, key).await?;
        self.sync.kv_changed(name, key).await?;
        self.publish(EventKind::PluginKvDeleted, actor, name);
        Ok(())
    }

    /// Puts a thread under audit for `case`: its history is sealed into its
    /// trail, and from then on every message and receipt; [`AUDIT_PLUGIN`]'s
    /// key follows. An audit already running is kept (and returned).
    pub async fn audit_start(
        &self,
        actor: &Actor,
        thread: &str,
        case: Option<&str>,
    ) -> Result<ThreadAudit, PluginError> {
        thread_address(thread)?;
        let case = case.map(str::trim).filter(|c| !c.is_empty());
        if let Some(c) = case
            && (c.chars().count() > MAX_CASE_CHARS || c.chars().any(char::is_control))
        {
            return Err(PluginError::invalid(format!(
                "case must be at most {MAX_CASE_CHARS} characters, without control characters"
            )));
        }
        let audit = self
            .audit
            .start(thread, &actor.user_id, case)
            .await?
            .ok_or_else(|| PluginError::NoThread(thread.to_owned()))?;
        let key = format!("audit:{thread}");
        let value = audit.case.as_deref().unwrap_or("1");
        self.state.kv_set(AUDIT_PLUGIN, &key, value, None).await?;
        self.sync.kv_changed(AUDIT_PLUGIN, &key).await?;
        self.events
            .publish(ChatEvent::new(EventKind::AuditStarted, &actor.user_id).thread(thread));
        Ok(audit)
    }

    /// Ends a thread's audit (and [`AUDIT_PLUGIN`]'s key); false if it was not
    /// under audit.
    pub async fn audit_end(&self, actor: &Actor, thread: &str) -> Result<bool, PluginError> {
        thread_address(thread)?;
        let ended = self
            .audit
            .end(thread, &actor.user_id)
            .await?
            .ok_or_else(|| PluginError::NoThread(thread.to_owned()))?;
        let key = format!("audit:{thread}");
        self.state.kv_delete(AUDIT_PLUGIN, &key).await?;
        self.sync.kv_changed(AUDIT_PLUGIN, &key).await?;
        if ended {
            self.events
                .publish(ChatEvent::new(EventKind::AuditEnded, &actor.user_id).thread(thread));
        }
        Ok(ended)
    }

    /// A thread's audit trail, oldest first.
    pub async fn audit_trail(
        &self,
        actor: &Actor,
        thread: &str,
    ) -> Result<Vec<AuditEntry>, PluginError> {
        thread_address(thread)?;
        let entries = self.audit.entries(thread).await?;
        self.events
            .publish(ChatEvent::new(EventKind::AuditViewed, &actor.user_id).thread(thread));
        Ok(entries)
    }

    /// Recomputes a thread's audit chain. The check is recorded (an audited
    /// thread's trail gets it as its next entry, after the ones checked).
    pub async fn audit_verify(
        &self,
        actor: &Actor,
        thread: &str,
    ) -> Result<Verification, PluginError> {
        thread_address(thread)?;
        let verification = self.audit.verify(thread).await?;
        self.events
            .publish(ChatEvent::new(EventKind::AuditVerified, &actor.user_id).thread(thread));
        Ok(verification)
    }
}

fn thread_address(thread: &str) -> Result<(), PluginError> {
    if is_valid_id(thread) {
        Ok(())
    } else {
        Err(PluginError::invalid(
            "threadId must be 1-64 characters of A-Z a-z 0-9 _ . : -",
        ))
    }
}
