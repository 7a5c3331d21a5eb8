//! The plugins currently loaded, in chain order. Readers take a snapshot (an
//! `Arc`), so a call in flight finishes on the version it started with while a
//! reload swaps in the next one.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

use super::engine::PluginEngine;
use super::error::{PluginError, Stage};
use super::kv_cache::KvCache;
use super::loaded::LoadedPlugin;
use super::manifest::Manifest;
use super::store_data::PluginEnv;
use crate::audit::AuditLog;
use crate::state::PluginKv;

/// The chain as of one moment.
pub type Snapshot = Arc<Vec<Arc<LoadedPlugin>>>;

/// Host services handed to every plugin.
#[derive(Clone)]
pub struct Services {
    /// Backs the plugins' key-value stores.
    pub state: Arc<dyn PluginKv>,
    /// Backs `audit.append`.
    pub audit: Arc<AuditLog>,
    /// Drives the first instantiation of a plugin from synchronous loading code.
    pub runtime: tokio::runtime::Handle,
}

/// Loads, replaces and lists plugins.
pub struct PluginRegistry {
    engine: PluginEngine,
    services: Services,
    current: RwLock<Snapshot>,
}

impl PluginRegistry {
    /// An empty registry; compiled artifacts are cached in `cache_dir`.
    pub fn new(services: Services, cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        Ok(Self {
            engine: PluginEngine::new(cache_dir)?,
            services,
            current: RwLock::new(Arc::default()),
        })
    }

    /// The loaded plugins, lowest `order` first.
    pub fn snapshot(&self) -> Snapshot {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One plugin by name.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.snapshot().iter().find(|p| p.name() == name).cloned()
    }

    fn env(&self, manifest: &Manifest) -> Arc<PluginEnv> {
        Arc::new(PluginEnv {
            name: manifest.name.as_str().into(),
            config: manifest.config.clone(),
            state: self.services.state.clone(),
            kv_cache: KvCache::new(manifest.kv_cache()),
            audit: self.services.audit.clone(),
            runtime: self.services.runtime.clone(),
        })
    }

    /// Compiles, links and instantiates a component without installing it.
    /// Blocking (compiling takes milliseconds): call from a blocking context.
    pub fn prepare(&self, wasm: &[u8], manifest: Manifest) -> Result<LoadedPlugin, PluginError> {
        manifest.check()?;
        let sha256: String = Sha256::digest(wasm)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let metering = manifest.limits.metering();
        let refused = |stage| {
            let plugin = manifest.name.clone();
            move |cause| PluginError::Refused {
                plugin,
                stage,
                cause,
            }
        };
        let component = self
            .engine
            .compile(wasm, metering)
            .map_err(refused(Stage::Compile))?;
        let pre = self
            .engine
            .link(&component, metering)
            .map_err(refused(Stage::Link))?;
        let instantiate = refused(Stage::Instantiate);
        let env = self.env(&manifest);
        LoadedPlugin::new(
            manifest,
            wasm.into(),
            sha256,
            pre,
            env,
            self.engine.ticker(),
        )
        .map_err(instantiate)
    }

    /// Installs a plugin, replacing the one of the same name.
    pub fn install(&self, plugin: LoadedPlugin) -> Arc<LoadedPlugin> {
        let plugin = Arc::new(plugin);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<Arc<LoadedPlugin>> = current
            .iter()
            .filter(|p| p.name() != plugin.name())
            .cloned()
            .collect();
        next.push(plugin.clone());
        next.sort_by(|a, b| (a.manifest.order, a.name()).cmp(&(b.manifest.order, b.name())));
        *current = Arc::new(next);
        tracing::info!(plugin = plugin.name(), version = %plugin.manifest.version, hooks = ?plugin.hooks.names(), "plugin loaded");
        plugin
    }

    /// Prepares and installs; the old version keeps serving if this fails.
    pub fn load(&self, wasm: &[u8], manifest: Manifest) -> Result<Arc<LoadedPlugin>, PluginError> {
        Ok(self.install(self.prepare(wasm, manifest)?))
    }

    /// Re-installs a loaded plugin's component under a changed manifest
    /// (recompiled when fuel metering is switched on or off).
    pub fn reconfigure(&self, manifest: Manifest) -> Result<Arc<LoadedPlugin>, PluginError> {
        manifest.check()?;
        let current = self
            .get(&manifest.name)
            .ok_or_else(|| PluginError::NotFound(manifest.name.clone()))?;
        if manifest.limits.metering() != current.manifest.limits.metering() {
            return self.load(&current.wasm, manifest);
        }
        let env = self.env(&manifest);
        let plugin = manifest.name.clone();
        let next = current
            .with_manifest(manifest, env)
            .map_err(|cause| PluginError::Refused {
                plugin,
                stage: Stage::Instantiate,
                cause,
            })?;
        Ok(self.install(next))
    }

    /// Unloads a plugin; true if it was loaded.
    pub fn remove(&self, name: &str) -> bool {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let next: Vec<Arc<LoadedPlugin>> = current
            .iter()
            .filter(|p| p.name() != name)
            .cloned()
            .collect();
        let removed = next.len() != current.len();
        *current = Arc::new(next);
        if removed {
            tracing::info!(plugin = name, "plugin removed");
        }
        removed
    }
}
