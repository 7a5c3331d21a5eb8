//! Per-plugin counters: exported on `/metrics` and summarised by the admin API.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Histogram};
use serde::Serialize;

use super::loaded::Hook;

/// The verdicts each hook reports on `chat_plugin_verdicts_total`.
const VERDICTS: [(Hook, &str); 7] = [
    (Hook::Access, "allow"),
    (Hook::Access, "deny"),
    (Hook::RateLimit, "policy"),
    (Hook::RateLimit, "none"),
    (Hook::MessageHook, "pass"),
    (Hook::MessageHook, "rewrite"),
    (Hook::MessageHook, "reject"),
];

/// Why a plugin call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The call ran past its deadline (arrival + `time-ms`).
    Timeout,
    /// No slot of the plugin's `concurrent-calls` came free before the deadline:
    /// the call never ran.
    Overloaded,
    /// The call ran out of fuel.
    Fuel,
    /// The instance hit its memory cap.
    Memory,
    /// The guest trapped (panic, unreachable, bad memory access...).
    Trap(String),
    /// The result broke the contract (too large, malformed).
    BadResult(String),
    /// No instance could be created.
    Instantiate(String),
}

impl Fault {
    /// Metric label of the fault.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Overloaded => "overloaded",
            Self::Fuel => "fuel",
            Self::Memory => "memory",
            Self::Trap(_) => "trap",
            Self::BadResult(_) => "bad_result",
            Self::Instantiate(_) => "instantiate",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("time limit exceeded"),
            Self::Overloaded => f.write_str("no free call slot before the time limit"),
            Self::Fuel => f.write_str("fuel exhausted"),
            Self::Memory => f.write_str("memory limit exceeded"),
            Self::Trap(why) => write!(f, "trapped: {why}"),
            Self::BadResult(why) => write!(f, "bad result: {why}"),
            Self::Instantiate(why) => write!(f, "could not instantiate: {why}"),
        }
    }
}

/// Running totals of one plugin, as the admin API shows them.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Hook calls, those refused as overloaded included.
    pub calls: u64,
    /// Faults of any kind.
    pub faults: u64,
    /// Calls stopped by the time limit.
    pub timeouts: u64,
    /// Calls refused because every slot stayed busy until their deadline.
    pub overloaded: u64,
    /// Calls that trapped (incl. memory and fuel).
    pub traps: u64,
    /// Times the fail policy decided an event.
    pub fail_policy_applied: u64,
    /// Mean call time (arrival to answer) in microseconds.
    pub mean_call_us: f64,
    /// The last fault, if any.
    pub last_fault: Option<String>,
}

/// The metric handles of one hook of one plugin.
struct HookMetrics {
    calls: Counter,
    seconds: Histogram,
}

/// Counters of one plugin. The handles of the metrics recorded on every call
/// are registered once, when the plugin loads (the global recorder must be
/// installed by then), so a call costs a few atomic adds, not a registry lookup.
pub struct PluginStats {
    name: String,
    hooks: [HookMetrics; 4],
    verdicts: [Counter; VERDICTS.len()],
    calls: AtomicU64,
    call_nanos: AtomicU64,
    faults: AtomicU64,
    timeouts: AtomicU64,
    overloaded: AtomicU64,
    traps: AtomicU64,
    fail_policy: AtomicU64,
    last_fault: Mutex<Option<String>>,
}

impl PluginStats {
    /// Zeroed counters for `name`.
    pub fn new(name: &str) -> Self {
        let hooks = Hook::ALL.map(|hook| HookMetrics {
            calls: metrics::counter!("chat_plugin_calls_total", "plugin" => name.to_owned(), "hook" => hook.label()),
            seconds: metrics::histogram!("chat_plugin_call_seconds", "plugin" => name.to_owned(), "hook" => hook.label()),
        });
        let verdicts = VERDICTS.map(|(hook, verdict)| {
            metrics::counter!("chat_plugin_verdicts_total", "plugin" => name.to_owned(), "hook" => hook.label(), "verdict" => verdict)
        });
        Self {
            name: name.to_owned(),
            hooks,
            verdicts,
            calls: AtomicU64::new(0),
            call_nanos: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
            traps: AtomicU64::new(0),
            fail_policy: AtomicU64::new(0),
            last_fault: Mutex::new(None),
        }
    }

    /// Records one call and its duration, from its arrival at the plugin to its answer.
    pub fn call(&self, hook: Hook, took: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.call_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        let metrics = &self.hooks[hook as usize];
        metrics.calls.increment(1);
        metrics.seconds.record(took.as_secs_f64());
    }

    /// Records a verdict (one of `VERDICTS`).
    pub fn verdict(&self, hook: Hook, verdict: &'static str) {
        match VERDICTS.iter().position(|&v| v == (hook, verdict)) {
            Some(i) => self.verdicts[i].increment(1),
            None => debug_assert!(false, "unknown verdict {verdict} of {}", hook.label()),
        }
    }

    /// Records a fault, logs it and returns it.
    pub fn fault(&self, hook: Hook, fault: Fault) -> Fault {
        self.faults.fetch_add(1, Ordering::Relaxed);
        match fault {
            Fault::Timeout => self.timeouts.fetch_add(1, Ordering::Relaxed),
            Fault::Overloaded => self.overloaded.fetch_add(1, Ordering::Relaxed),
            Fault::Fuel | Fault::Memory | Fault::Trap(_) => {
                self.traps.fetch_add(1, Ordering::Relaxed)
            }
            Fault::BadResult(_) | Fault::Instantiate(_) => 0,
        };
        let hook = hook.label();
        tracing::warn!(plugin = %self.name, hook, fault = %fault, "plugin fault");
        metrics::counter!("chat_plugin_faults_total", "plugin" => self.name.clone(), "hook" => hook, "fault" => fault.label())
            .increment(1);
        *self.last_fault.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(format!("{hook}: {fault}"));
        fault
    }

    /// Records that the fail policy decided an event.
    pub fn fail_policy(&self, hook: Hook, policy: &'static str) {
        self.fail_policy.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("chat_plugin_fail_policy_total", "plugin" => self.name.clone(), "hook" => hook.label(), "policy" => policy)
            .increment(1);
    }

    /// The totals so far.
    pub fn snapshot(&self) -> StatsSnapshot {
        let calls = self.calls.load(Ordering::Relaxed);
        let nanos = self.call_nanos.load(Ordering::Relaxed);
        StatsSnapshot {
            calls,
            faults: self.faults.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            overloaded: self.overloaded.load(Ordering::Relaxed),
            traps: self.traps.load(Ordering::Relaxed),
            fail_policy_applied: self.fail_policy.load(Ordering::Relaxed),
            mean_call_us: if calls == 0 {
                0.0
            } else {
                nanos as f64 / calls as f64 / 1000.0
            },
            last_fault: self
                .last_fault
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}
