//! One loaded plugin version: its compiled component, the hooks it exports,
//! warm instances reused across calls (a failed one is discarded), its call
//! slots, and the limits armed before every call.
//!
//! Calls are async (`call_async` on a fiber): a hook runs on the async worker
//! that handles the event, with no hand-off to another thread. At most
//! `concurrent-calls` calls of a plugin run at once; the others wait for a slot
//! (a tokio semaphore, first come first served) until their deadline, then fail
//! as `overloaded` without running. A running call yields to the worker at every
//! epoch tick and traps once its deadline passes ([`super::deadline`]). So a
//! looping plugin holds at most its slots' worth of workers, a tick at a time,
//! and no call of it lasts much beyond its `time-ms`.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};
use wasmtime::component::{Instance, InstancePre};
use wasmtime::{Store, Trap};

use super::bindings::{access, events, message_hook, rate_limit};
use super::deadline::{self, EpochTicker, Ticking};
use super::manifest::Manifest;
use super::metrics::{Fault, PluginStats};
use super::store_data::{MemoryCap, Participants, PluginEnv, PluginState};
use crate::domain::policy::Decider;

/// The least time a component's start-up code gets when a version is loaded.
/// A load is nobody's call: on a busy machine (or in a debug build) instantiating
/// can outlast a tight call limit (`time-ms = 20`), and refusing a good version
/// there would keep the old one serving. Start-up code that loops is still refused.
const LOAD_STARTUP_TIME: Duration = Duration::from_secs(1);

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
    /// One permit per call that may run at once (`limits.concurrent-calls`).
    slots: Semaphore,
    /// Kept running while a call of this plugin runs wasm.
    ticker: Arc<EpochTicker>,
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
        ticker: Arc<EpochTicker>,
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
        // Half the workers by default: a plugin whose calls all run to their deadline
        // keeps the other half (at least) serving everything else at full speed.
        let slots = match manifest.limits.concurrent_calls {
            0 => env.runtime.metrics().num_workers().div_ceil(2),
            n => n as usize,
        };
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
            slots: Semaphore::new(slots),
            ticker,
        };
        let ticking = plugin.ticker.ticking();
        let deadline = Instant::now() + plugin.manifest.limits.time().max(LOAD_STARTUP_TIME);
        let first = plugin.env.clone().block_on(plugin.instantiate(deadline))?;
        drop(ticking);
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

    /// This plugin as the decider of a verdict.
    pub fn decider(&self) -> Decider {
        Decider {
            plugin: self.manifest.name.clone(),
            version: self.manifest.version.clone(),
        }
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
            self.ticker.clone(),
        )
    }

    /// A new instance; its start-up code runs under `deadline`.
    async fn instantiate(&self, deadline: Instant) -> anyhow::Result<Warm> {
        let memory = MemoryCap::new((self.manifest.limits.memory_mb as usize) << 20);
        let mut store = Store::new(
            self.pre.engine(),
            PluginState::new(self.env.clone(), memory),
        );
        store.limiter(|state| &mut state.memory);
        // At every tick: trap past the call's deadline, else yield to the worker.
        store.epoch_deadline_callback(|ctx| Ok(deadline::on_tick(ctx.data().deadline)));
        self.arm(&mut store, deadline);
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

    /// Arms the per-call limits: the wall-clock `deadline` (checked from the next
    /// epoch tick on) and fuel, if the plugin has a limit.
    fn arm(&self, store: &mut Store<PluginState>, deadline: Instant) {
        store.data_mut().deadline = deadline;
        store.data_mut().memory.hit = false;
        store.set_epoch_deadline(1);
        if let fuel @ 1.. = self.manifest.limits.fuel {
            store
                .set_fuel(fuel)
                .expect("a plugin with a fuel limit is compiled with fuel metering");
        }
    }

    /// Waits for a call slot (at most until the call's deadline: now + `time-ms`),
    /// takes a warm instance (or makes one) for one hook call about a thread with
    /// `participants` (none for `events`) and arms the plugin's limits; make the
    /// call on [`Call::warm`], then [`Call::finish`].
    pub async fn begin(
        &self,
        hook: Hook,
        participants: Option<&Participants>,
    ) -> Result<Call<'_>, Fault> {
        let started = Instant::now();
        let deadline = started + self.manifest.limits.time();
        let slot = match tokio::time::timeout_at(deadline.into(), self.slots.acquire()).await {
            Ok(Ok(slot)) if Instant::now() < deadline => slot,
            // Timed out, or a slot came free with no time left (the semaphore is
            // never closed).
            _ => {
                self.stats.call(hook, started.elapsed());
                return Err(self.stats.fault(hook, Fault::Overloaded));
            }
        };
        let ticking = self.ticker.ticking();
        let taken = self.warm.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut warm = match taken {
            Some(warm) => warm,
            None => self
                .instantiate(deadline)
                .await
                .map_err(|e| self.stats.fault(hook, Fault::Instantiate(e.to_string())))?,
        };
        self.arm(&mut warm.store, deadline);
        warm.store.data_mut().participants = participants.cloned();
        Ok(Call {
            plugin: self,
            hook,
            started,
            warm,
            _slot: slot,
            _ticking: ticking,
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
    /// The call's slot, free again when the call ends.
    _slot: SemaphorePermit<'p>,
    /// Keeps the epoch ticker running while the call runs.
    _ticking: Ticking,
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
