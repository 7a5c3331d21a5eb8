//! The one wasmtime engine: component model, pooling allocator, epoch ticker,
//! and a cache of precompiled artifacts keyed by the component's hash.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::manifest::MAX_MEMORY_MB;

/// One epoch tick; call deadlines are counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The compiling and executing engine shared by every plugin.
pub struct PluginEngine {
    engine: Engine,
    cache_dir: Option<PathBuf>,
    ticker_stop: Arc<AtomicBool>,
}

impl PluginEngine {
    /// An engine whose compiled artifacts are cached in `cache_dir` (if given).
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(512)
            .total_core_instances(2048)
            .total_memories(1024)
            .total_tables(1024)
            .max_memory_size((MAX_MEMORY_MB as usize) << 20);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(true)
            .max_wasm_stack(512 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (ticking, stop) = (engine.clone(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticking.increment_epoch();
                }
            })
            .context("starting the epoch ticker")?;
        Ok(Self {
            engine,
            cache_dir,
            ticker_stop,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component, or loads its precompiled artifact from the cache.
    pub fn compile(&self, wasm: &[u8]) -> anyhow::Result<Component> {
        let Some(dir) = &self.cache_dir else {
            return Ok(Component::new(&self.engine, wasm)?);
        };
        let mut hasher = Sha256::new();
        hasher.update(wasm);
        let mut engine_hash = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(
            &self.engine.precompile_compatibility_hash(),
            &mut engine_hash,
        );
        hasher.update(std::hash::Hasher::finish(&engine_hash).to_le_bytes());
        let key: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let path = dir.join(format!("{key}.cwasm"));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of an engine with the
            // same compatibility hash (it is part of the file name), in a directory only
            // this process family writes.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding a bad cached artifact")
                }
            }
        }
        let component = Component::new(&self.engine, wasm)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if let Err(e) = component
            .serialize()
            .map(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|r| Ok(r?))
        {
            tracing::warn!(error = %e, "could not cache a compiled plugin");
        } else if let Err(e) = std::fs::rename(&tmp, &path) {
            tracing::warn!(error = %e, "could not cache a compiled plugin");
        }
        Ok(component)
    }
}

impl Drop for PluginEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}
