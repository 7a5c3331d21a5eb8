//! One loaded plugin version: its compiled component, the hooks it exports,
//! warm instances reused across calls (a failed one is discarded), and the
//! limits armed before every call.
//!
//! Calls are async (`call_async` on a fiber): a hook runs on the async worker
//! that handles the event, with no hand-off to another thread, and a plugin
//! that runs long yields to the worker's other tasks at every epoch tick until
//! its time budget traps it.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;

use wasmtime::component::{Instance, InstancePre};
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::{access, events, message_hook, rate_limit};
use super::engine::EPOCH_TICK;
use super::manifest::Manifest;
use super::metrics::{Fault, PluginStats};
use super::store_data::{MemoryCap, Participants, PluginEnv, PluginState};

/// Warm instances kept per plugin (one per concurrently calling thread is enough).
const MAX_WARM: usize = 8;

/// One hook kind of the WIT package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `access`.
    Access,
    /// `rate-limit`.
    RateLimit,
    /// `message-hook`.
    MessageHook,
    /// `events`.
    Events,
}

impl Hook {
    /// Every hook kind, in the order of their discriminants.
    pub const ALL: [Hook; 4] = [
        Hook::Access,
        Hook::RateLimit,
        Hook::MessageHook,
        Hook::Events,
    ];

    /// The WIT name, also the metric label.
    pub fn label(self) -> &'static str {
        match self {
            Hook::Access => "access",
            Hook::RateLimit => "rate-limit",
            Hook::MessageHook => "message-hook",
            Hook::Events => "events",
        }
    }
}

/// Which hooks a component exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hooks {
    /// `access`.
    pub access: bool,
    /// `rate-limit`.
    pub rate_limit: bool,
    /// `message-hook`.
    pub message_hook: bool,
    /// `events`.
    pub events: bool,
}

impl Hooks {
    /// The WIT names of the exported hooks.
    pub fn names(&self) -> Vec<&'static str> {
        Hook::ALL
            .into_iter()
            .filter(|&hook| self.has(hook))
            .map(Hook::label)
            .collect()
    }

    /// Whether `hook` is exported.
    pub fn has(&self, hook: Hook) -> bool {
        match hook {
            Hook::Access => self.access,
            Hook::RateLimit => self.rate_limit,
            Hook::MessageHook => self.message_hook,
            Hook::Events => self.events,
        }
    }
}

/// Export lookups resolved once per component.
struct Indices {
    access: Option<access::GuestIndices>,
    rate_limit: Option<rate_limit::GuestIndices>,
    message_hook: Option<message_hook::GuestIndices>,
    events: Option<events::GuestIndices>,
}

/// An instance ready to be called, with its hook functions resolved.
pub struct Warm {
    store: Store<PluginState>,
    access: Option<access::Guest>,
    rate_limit: Option<rate_limit::Guest>,
    message_hook: Option<message_hook::Guest>,
    events: Option<events::Guest>,
}

/// A plugin version that can be called.
pub struct LoadedPlugin {
    /// Its manifest (enabled flag aside).
    pub manifest: Manifest,
    /// SHA-256 of the component bytes.
    pub sha256: String,
    /// The component bytes (stored when an admin changes the plugin).
    pub wasm: Arc<[u8]>,
    /// Hooks the component exports.
    pub hooks: Hooks,
    pre: InstancePre<PluginState>,
    indices: Indices,
    env: Arc<PluginEnv>,
    warm: Mutex<Vec<Warm>>,
    /// Counters for the admin API and `/metrics`.
    pub stats: PluginStats,
}

impl LoadedPlugin {
    /// Resolves the hooks of a prepared component and proves it instantiates.
    pub fn new(
        manifest: Manifest,
        wasm: Arc<[u8]>,
        sha256: String,
        pre: InstancePre<PluginState>,
        env: Arc<PluginEnv>,
    ) -> anyhow::Result<Self> {
        let indices = Indices {
            access: access::GuestIndices::new(&pre).ok(),
            rate_limit: rate_limit::GuestIndices::new(&pre).ok(),
            message_hook: message_hook::GuestIndices::new(&pre).ok(),
            events: events::GuestIndices::new(&pre).ok(),
        };
        let hooks = Hooks {
            access: indices.access.is_some(),
            rate_limit: indices.rate_limit.is_some(),
            message_hook: indices.message_hook.is_some(),
            events: indices.events.is_some(),
        };
        if hooks == Hooks::default() {
            anyhow::bail!(
                "the component exports no hook of chat:plugin@0.1.0 (access, rate-limit, message-hook, events)"
            );
        }
        let plugin = Self {
            stats: PluginStats::new(&manifest.name),
            manifest,
            wasm,
            sha256,
            hooks,
            pre,
            indices,
            env,
            warm: Mutex::new(Vec::new()),
        };
        let first = plugin.env.clone().block_on(plugin.instantiate())?;
        plugin
            .warm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(first);
        Ok(plugin)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Whether the plugin takes part in the chain.
    pub fn enabled(&self) -> bool {
        self.manifest.enabled
    }

    /// The same component with another manifest of the same metering (config,
    /// limits, order...).
    pub fn with_manifest(&self, manifest: Manifest, env: Arc<PluginEnv>) -> anyhow::Result<Self> {
        Self::new(
            manifest,
            self.wasm.clone(),
            self.sha256.clone(),
            self.pre.clone(),
            env,
        )
    }

    async fn instantiate(&self) -> anyhow::Result<Warm> {
        let memory = MemoryCap::new((self.manifest.limits.memory_mb as usize) << 20);
        let mut store = Store::new(
            self.pre.engine(),
            PluginState::new(self.env.clone(), memory),
        );
        store.limiter(|state| &mut state.memory);
        // One tick at a time: yield to the executor after each, trap when the budget is spent.
        store.epoch_deadline_callback(|mut ctx| {
            let left = &mut ctx.data_mut().ticks_left;
            Ok(match left.checked_sub(1) {
                Some(rest) => {
                    *left = rest;
                    UpdateDeadline::Yield(1)
                }
                None => UpdateDeadline::Interrupt,
            })
        });
        self.arm(&mut store);
        let instance: Instance = self.pre.instantiate_async(&mut store).await?;
        let i = &self.indices;
        let access = i
            .access
            .as_ref()
            .map(|i| i.load(&mut store, &instance))
            .transpose()?;
        let rate_limit = i
            .rate_limit
            .as_ref()
            .map(|i| i.load(&mut store, &instance))
            .transpose()?;
        let message_hook = i
            .message_hook
            .as_ref()
            .map(|i| i.load(&mut store, &instance))
            .transpose()?;
        let events = i
            .events
            .as_ref()
            .map(|i| i.load(&mut store, &instance))
            .transpose()?;
        Ok(Warm {
            store,
            access,
            rate_limit,
            message_hook,
            events,
        })
    }

    /// Arms the per-call limits: epoch deadline (the first tick, then the rest of
    /// the budget through the epoch callback) and fuel, if the plugin has a limit.
    fn arm(&self, store: &mut Store<PluginState>) {
        let ticks = self
            .manifest
            .limits
            .time_ms
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            .max(1);
        store.data_mut().ticks_left = ticks - 1;
        store.data_mut().memory.hit = false;
        store.set_epoch_deadline(1);
        if let fuel @ 1.. = self.manifest.limits.fuel {
            store
                .set_fuel(fuel)
                .expect("a plugin with a fuel limit is compiled with fuel metering");
        }
    }

    /// Takes a warm instance (or makes one) for one hook call about a thread with
    /// `participants` (none for `events`) and arms the plugin's limits; make the
    /// call on [`Call::warm`], then [`Call::finish`].
    pub async fn begin(
        &self,
        hook: Hook,
        participants: Option<&Participants>,
    ) -> Result<Call<'_>, Fault> {
        let started = Instant::now();
        let taken = self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut warm = match taken {
            Some(warm) => warm,
            None => self
                .instantiate()
                .await
                .map_err(|e| self.stats.fault(hook, Fault::Instantiate(e.to_string())))?,
        };
        self.arm(&mut warm.store);
        warm.store.data_mut().participants = participants.cloned();
        Ok(Call {
            plugin: self,
            hook,
            started,
            warm,
        })
    }

    /// Drops the cached read of `key`: its value changed outside this plugin.
    pub fn kv_changed(&self, key: &str) {
        self.env.kv_cache.forget(key);
    }

    /// Reports a hook result that broke the contract (too large, malformed).
    pub fn bad_result(&self, hook: Hook, why: String) -> Fault {
        self.stats.fault(hook, Fault::BadResult(why))
    }
}

/// One hook call in progress. Dropped without [`Call::finish`] (the event's task
/// was cancelled mid-call), its instance is discarded, never reused.
pub struct Call<'p> {
    plugin: &'p LoadedPlugin,
    hook: Hook,
    started: Instant,
    /// The instance to call.
    pub warm: Warm,
}

impl Call<'_> {
    /// Records the call; a successful instance goes back to the pool, a failed one
    /// is dropped and its fault counted.
    pub fn finish<R>(self, result: wasmtime::Result<R>) -> Result<R, Fault> {
        let plugin = self.plugin;
        plugin.stats.call(self.hook, self.started.elapsed());
        match result {
            Ok(value) => {
                let mut pool = plugin.warm.lock().unwrap_or_else(|e| e.into_inner());
                if pool.len() < MAX_WARM {
                    pool.push(self.warm);
                }
                Ok(value)
            }
            Err(e) => {
                let memory_hit = self.warm.store.data().memory.hit;
                Err(plugin.stats.fault(self.hook, classify(&e, memory_hit)))
            }
        }
    }
}

impl Warm {
    /// The `access` export, if present.
    pub fn access(&mut self) -> Option<(&access::Guest, &mut Store<PluginState>)> {
        self.access.as_ref().map(|g| (g, &mut self.store))
    }
    /// The `rate-limit` export, if present.
    pub fn rate_limit(&mut self) -> Option<(&rate_limit::Guest, &mut Store<PluginState>)> {
        self.rate_limit.as_ref().map(|g| (g, &mut self.store))
    }
    /// The `message-hook` export, if present.
    pub fn message_hook(&mut self) -> Option<(&message_hook::Guest, &mut Store<PluginState>)> {
        self.message_hook.as_ref().map(|g| (g, &mut self.store))
    }
    /// The `events` export, if present.
    pub fn events(&mut self) -> Option<(&events::Guest, &mut Store<PluginState>)> {
        self.events.as_ref().map(|g| (g, &mut self.store))
    }
}

/// What a failed call was: the memory cap's flag first, then wasmtime's trap code.
fn classify(e: &wasmtime::Error, memory_hit: bool) -> Fault {
    if memory_hit {
        return Fault::Memory;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Fault::Timeout,
        Some(Trap::OutOfFuel) => Fault::Fuel,
        Some(trap) => Fault::Trap(trap.to_string()),
        None => Fault::Trap(format!("{e:#}")),
    }
}
