//! Plugins changed through the admin API are stored in the database and announced
//! on the state store's pub/sub, so every instance (and the next start) runs the
//! same versions. Admin writes of a plugin's key-value entries are announced the
//! same way, so no instance keeps serving a cached read of the old value.
//!
//! Announcements are `<instance> <plugin>` (the plugin changed) or
//! `<instance> <plugin> <key>` (one of its keys changed); names have no spaces.

use std::sync::Arc;

use rand::distr::{Alphanumeric, SampleString};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::PluginError;
use super::loaded::LoadedPlugin;
use super::manifest::Manifest;
use super::registry::PluginRegistry;
use crate::domain::now_ms;
use crate::state::PluginChanges;
use crate::store::{PluginArchive, StoredPlugin};

/// Keeps the registries of all instances in step.
pub struct PluginSync {
    registry: Arc<PluginRegistry>,
    store: Arc<dyn PluginArchive>,
    state: Arc<dyn PluginChanges>,
    /// Tags this instance's announcements, so it skips its own.
    instance: String,
}

impl PluginSync {
    /// Sync for `registry` over these backends.
    pub fn new(
        registry: Arc<PluginRegistry>,
        store: Arc<dyn PluginArchive>,
        state: Arc<dyn PluginChanges>,
    ) -> Self {
        let instance = Alphanumeric.sample_string(&mut rand::rng(), 12);
        Self {
            registry,
            store,
            state,
            instance,
        }
    }

    /// Loads every stored plugin (after the directory's, so admin changes win).
    pub async fn load_stored(&self) -> Vec<String> {
        let stored = match self.store.plugin_list().await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, "stored plugins not loaded");
                return Vec::new();
            }
        };
        let mut loaded = Vec::new();
        for plugin in stored {
            let name = plugin.name.clone();
            match self.install(plugin).await {
                Ok(()) => loaded.push(name),
                Err(e) => tracing::error!(plugin = %name, error = %e, "stored plugin refused"),
            }
        }
        loaded
    }

    async fn install(&self, plugin: StoredPlugin) -> Result<(), PluginError> {
        let manifest = Manifest::parse(&plugin.manifest)?;
        let registry = self.registry.clone();
        tokio::task::spawn_blocking(move || registry.load(&plugin.wasm, manifest).map(drop)).await?
    }

    /// Stores the plugin as loaded now and tells the other instances.
    pub async fn saved(&self, plugin: &LoadedPlugin) -> Result<(), PluginError> {
        let manifest = toml::to_string(&plugin.manifest)
            .map_err(|e| PluginError::InvalidManifest(e.to_string()))?;
        let stored = StoredPlugin {
            name: plugin.manifest.name.clone(),
            manifest,
            wasm: plugin.wasm.to_vec(),
        };
        self.store.plugin_save(&stored, now_ms()).await?;
        self.announce(&stored.name).await
    }

    /// Forgets a stored plugin and tells the other instances.
    pub async fn removed(&self, name: &str) -> Result<(), PluginError> {
        self.store.plugin_delete(name).await?;
        self.announce(name).await
    }

    /// Forgets this instance's cached read of a key an admin changed, and tells the
    /// other instances to forget theirs.
    pub async fn kv_changed(&self, name: &str, key: &str) -> Result<(), PluginError> {
        self.forget_cached(name, key);
        self.announce(&format!("{name} {key}")).await
    }

    fn forget_cached(&self, name: &str, key: &str) {
        if let Some(plugin) = self.registry.get(name) {
            plugin.kv_changed(key);
        }
    }

    async fn announce(&self, subject: &str) -> Result<(), PluginError> {
        Ok(self
            .state
            .publish_plugin_change(&format!("{} {subject}", self.instance))
            .await?)
    }

    /// Applies the other instances' announcements until `stop`; returns the
    /// listening task.
    pub fn listen(self: Arc<Self>, stop: CancellationToken) -> JoinHandle<()> {
        let mut changes = self.state.plugin_changes();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    m = changes.recv() => match m { Some(m) => m, None => return },
                    () = stop.cancelled() => return,
                };
                let Some((from, subject)) = message.split_once(' ') else {
                    continue;
                };
                if from == self.instance {
                    continue;
                }
                if let Some((name, key)) = subject.split_once(' ') {
                    self.forget_cached(name, key);
                    continue;
                }
                let name = subject;
                let outcome = match self.store.plugin_get(name).await {
                    Ok(Some(plugin)) => self.install(plugin).await,
                    Ok(None) => {
                        self.registry.remove(name);
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                };
                match outcome {
                    Ok(()) => {
                        tracing::info!(plugin = name, "plugin change applied from another instance")
                    }
                    Err(e) => {
                        tracing::error!(plugin = name, error = %e, "plugin change from another instance refused")
                    }
                }
            }
        })
    }
}
