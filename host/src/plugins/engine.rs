//! The wasmtime engines: component model, pooling allocator, epoch interruption
//! (driven by the [`EpochTicker`]), the linker of the host's imports, and a cache
//! of precompiled artifacts keyed by the component's hash.
//!
//! Every call is bounded by its wall-clock deadline, checked at epoch ticks
//! ([`super::deadline`]). Fuel is opt-in per plugin (`limits.fuel`):
//! it instruments the compiled code, a counter update in every block, so a
//! component is compiled with it only when its manifest asks for it, by a second
//! engine made on first use. A plugin without a fuel limit never pays for it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::deadline::EpochTicker;
use super::imports;
use super::manifest::MAX_MEMORY_MB;
use super::store_data::PluginState;

/// Whether a component's calls count fuel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metering {
    /// Epoch deadlines only.
    Epochs,
    /// Epoch deadlines and a fuel budget.
    EpochsAndFuel,
}

/// One engine configuration and the linker of the host's imports for it.
struct Flavor {
    engine: Engine,
    linker: Linker<PluginState>,
}

impl Flavor {
    fn new(metering: Metering) -> anyhow::Result<Self> {
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
            .consume_fuel(metering == Metering::EpochsAndFuel)
            .max_wasm_stack(512 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;
        let linker = imports::linker(&engine)?;
        Ok(Self { engine, linker })
    }
}

/// The engines shared by every plugin, and their epoch ticker.
pub struct PluginEngine {
    /// Indexed by `Metering as usize`; the fuel flavor is made on first use.
    flavors: Arc<[OnceLock<Flavor>; 2]>,
    cache_dir: Option<PathBuf>,
    /// Advances every flavor's epoch while a call is in flight.
    ticker: Arc<EpochTicker>,
}

impl PluginEngine {
    /// Engines whose compiled artifacts are cached in `cache_dir` (if given).
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let flavors: Arc<[OnceLock<Flavor>; 2]> = Arc::default();
        let _ = flavors[Metering::Epochs as usize].set(Flavor::new(Metering::Epochs)?);
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let ticking = flavors.clone();
        let ticker = EpochTicker::start(move || {
            for flavor in ticking.iter().filter_map(OnceLock::get) {
                flavor.engine.increment_epoch();
            }
        })?;
        Ok(Self {
            flavors,
            cache_dir,
            ticker,
        })
    }

    /// The epoch ticker, for the calls to keep running while they are in flight.
    pub fn ticker(&self) -> Arc<EpochTicker> {
        self.ticker.clone()
    }

    fn flavor(&self, metering: Metering) -> anyhow::Result<&Flavor> {
        let slot = &self.flavors[metering as usize];
        if let Some(flavor) = slot.get() {
            return Ok(flavor);
        }
        let made = Flavor::new(metering)?;
        Ok(slot.get_or_init(|| made))
    }

    /// Links a compiled component against the host's imports (WASI and `chat:plugin`).
    pub fn link(
        &self,
        component: &Component,
        metering: Metering,
    ) -> anyhow::Result<InstancePre<PluginState>> {
        Ok(self.flavor(metering)?.linker.instantiate_pre(component)?)
    }

    /// Compiles a component, or loads its precompiled artifact from the cache.
    pub fn compile(&self, wasm: &[u8], metering: Metering) -> anyhow::Result<Component> {
        let engine = &self.flavor(metering)?.engine;
        let Some(dir) = &self.cache_dir else {
            return Ok(Component::new(engine, wasm)?);
        };
        let mut hasher = Sha256::new();
        hasher.update(wasm);
        let mut engine_hash = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut engine_hash);
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
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding a bad cached artifact")
                }
            }
        }
        let component = Component::new(engine, wasm)?;
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
        self.ticker.stop();
    }
}
