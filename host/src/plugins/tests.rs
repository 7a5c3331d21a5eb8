//! The runtime against the real example and adversarial plugins
//! (`scripts/build-plugins.sh` builds them; see [`crate::testing::plugin_dir`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::chain::PluginPolicy;
use super::error::{PluginError, Stage};
use super::loaded::{Hook, Hooks};
use super::manifest::{FailPolicy, Manifest};
use super::registry::{PluginRegistry, Services};
use crate::audit::AuditLog;
use crate::config::AuditKeys;
use crate::domain::model::{ParticipantProfile, ThreadMeta};
use crate::domain::policy::{Action, HookVerdict, Policy, Request, Verdict};
use crate::domain::{Actor, Role};
use crate::state::PluginKv;
use crate::state::memory::MemoryState;
use crate::store::sql::SqlStore;
use crate::testing::{plugin_dir, temp_dir};
use tempfile::TempDir;

/// A registry over a fresh SQLite file and memory state, with the directory
/// that holds them; `None` (printed) when the plugins are not built.
async fn registry() -> Option<(Arc<PluginRegistry>, TempDir)> {
    registry_on(Arc::new(MemoryState::new())).await
}

async fn registry_on(state: Arc<MemoryState>) -> Option<(Arc<PluginRegistry>, TempDir)> {
    plugin_dir()?;
    let dir = temp_dir();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Arc::new(SqlStore::connect(&url).await.unwrap());
    let services = Services {
        state,
        audit: Arc::new(AuditLog::new(store, AuditKeys::new("k", b"k").unwrap())),
        runtime: tokio::runtime::Handle::current(),
    };
    let registry = PluginRegistry::new(services, Some(dir.path().join("cache"))).unwrap();
    Some((Arc::new(registry), dir))
}

fn files(name: &str) -> (Vec<u8>, Manifest) {
    let dir = plugin_dir().expect("checked by registry()");
    let wasm = std::fs::read(dir.join(format!("{name}.wasm"))).unwrap();
    let manifest =
        Manifest::parse(&std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap())
            .unwrap();
    (wasm, manifest)
}

fn load(
    registry: &PluginRegistry,
    name: &str,
    edit: impl FnOnce(&mut Manifest),
) -> Result<(), PluginError> {
    let (wasm, mut manifest) = files(name);
    edit(&mut manifest);
    registry.load(&wasm, manifest).map(drop)
}

fn thread() -> ThreadMeta {
    let p = |id: &str| ParticipantProfile {
        user_id: id.into(),
        display_name: id.into(),
        avatar_url: None,
        role: Role::Client,
    };
    ThreadMeta {
        id: "t1".into(),
        title: "t".into(),
        created_at_ms: 0,
        participants: vec![p("alice"), p("bob")],
    }
}

fn request<'a>(action: Action, actor: &'a Actor, thread: &'a ThreadMeta) -> Request<'a> {
    Request {
        action,
        actor,
        thread,
    }
}

fn alice() -> Actor {
    Actor {
        user_id: "alice".into(),
        role: Role::Client,
        connection: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn components_export_only_their_hooks_and_bad_ones_are_refused() {
    let Some((r, _dir)) = registry().await else {
        return;
    };
    load(&r, "noop", |_| {}).unwrap();
    load(&r, "blocklist", |_| {}).unwrap();
    let hooks = |n: &str| r.get(n).unwrap().hooks;
    assert_eq!(
        hooks("noop"),
        Hooks {
            access: true,
            rate_limit: true,
            message_hook: true,
            events: true
        }
    );
    assert_eq!(
        hooks("blocklist"),
        Hooks {
            access: true,
            ..Hooks::default()
        }
    );
    let refused_at = |result: Result<(), PluginError>| match result {
        Err(PluginError::Refused { stage, .. }) => stage,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refused_at(load(&r, "evil-wrong-wit", |_| {})),
        Stage::Instantiate,
        "a component exporting no hook of chat:plugin@0.1.0"
    );
    assert_eq!(
        refused_at(load(&r, "evil-wrong-sig", |_| {})),
        Stage::Instantiate,
        "a hook with the wrong signature"
    );
    assert_eq!(
        refused_at(r.load(b"\0asm garbage", files("noop").1).map(drop)),
        Stage::Compile
    );
    assert_eq!(r.snapshot().len(), 2, "refused plugins are not installed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runaway_plugin_is_stopped_within_its_time_limit_and_its_fail_policy_applies() {
    let Some((r, _dir)) = registry().await else {
        return;
    };
    load(&r, "evil-loop", |m| m.limits.time_ms = 20).unwrap();
    let policy = PluginPolicy::new(r.clone(), 4000);
    let (t, a) = (thread(), alice());
    let req = request(Action::Send, &a, &t);
    for _ in 0..3 {
        let started = Instant::now();
        let verdict = policy.access(&req).await;
        let took = started.elapsed();
        assert!(
            matches!(verdict, Verdict::Deny(_)),
            "closed: a failing plugin denies"
        );
        assert!(took < Duration::from_millis(100), "stopped after {took:?}");
    }
    let stats = r.get("evil-loop").unwrap().stats.snapshot();
    assert_eq!((stats.timeouts, stats.fail_policy_applied), (3, 3));

    load(&r, "evil-loop", |m| {
        m.limits.time_ms = 20;
        m.fail = FailPolicy::Open;
    })
    .unwrap();
    assert_eq!(
        policy.access(&req).await,
        Verdict::Allow,
        "open: a failing plugin is skipped"
    );
}

/// `n` access calls of `alice` at once, each on a task of its own; their verdicts
/// and how long each took.
async fn concurrent_access(policy: &Arc<PluginPolicy>, n: usize) -> Vec<(Verdict, Duration)> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let policy = policy.clone();
            tokio::spawn(async move {
                let (t, a) = (thread(), alice());
                let started = Instant::now();
                let verdict = policy.access(&request(Action::Send, &a, &t)).await;
                (verdict, started.elapsed())
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_runaway_calls_end_at_their_wall_clock_deadline_and_excess_ones_never_run() {
    let Some((r, _dir)) = registry().await else {
        return;
    };
    // concurrent-calls 0: half the 4 workers, 2 slots.
    load(&r, "evil-loop", |m| m.limits.time_ms = 20).unwrap();
    let policy = Arc::new(PluginPolicy::new(r.clone(), 4000));
    // 20 looping calls on 4 workers: counting the ticks a call got to run, each
    // lasted about 5 x 20 ms.
    let results = concurrent_access(&policy, 20).await;
    let slowest = results.iter().map(|(_, took)| *took).max().unwrap();
    assert!(
        results.iter().all(|(v, _)| matches!(v, Verdict::Deny(_))),
        "closed: every failing call denies"
    );
    assert!(
        slowest < Duration::from_millis(80),
        "the slowest of 20 concurrent calls took {slowest:?}; the deadline is 20 ms after arrival"
    );
    let stats = r.get("evil-loop").unwrap().stats.snapshot();
    assert_eq!(stats.calls, 20, "{stats:?}");
    assert_eq!(stats.timeouts + stats.overloaded, 20, "{stats:?}");
    assert!(
        stats.timeouts >= 2 && stats.overloaded >= 10,
        "two slots: the first two run to their deadline, most of the others never get a slot: {stats:?}"
    );
    assert_eq!(stats.fail_policy_applied, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_calls_share_the_slots_without_a_fault() {
    let Some((r, _dir)) = registry().await else {
        return;
    };
    load(&r, "noop", |m| m.limits.concurrent_calls = 1).unwrap();
    let policy = Arc::new(PluginPolicy::new(r.clone(), 4000));
    let results = concurrent_access(&policy, 50).await;
    assert!(results.iter().all(|(v, _)| *v == Verdict::Allow));
    let stats = r.get("noop").unwrap().stats.snapshot();
    assert_eq!((stats.calls, stats.faults), (50, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fuel_limit_stops_a_runaway_plugin_and_switching_it_recompiles() {
    let Some((r, _dir)) = registry().await else {
        return;
    };
    let policy = PluginPolicy::new(r.clone(), 4000);
    let (t, a) = (thread(), alice());
    let req = request(Action::Send, &a, &t);
    // A generous time limit, so only the fuel can stop the loop this early.
    load(&r, "evil-loop", |m| {
        m.limits.time_ms = 1000;
        m.limits.fuel = 1_000_000;
    })
    .unwrap();
    let started = Instant::now();
    assert!(matches!(policy.access(&req).await, Verdict::Deny(_)));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let stats = r.get("evil-loop").unwrap().stats.snapshot();
    assert_eq!((stats.traps, stats.timeouts), (1, 0), "{stats:?}");
    assert!(stats.last_fault.unwrap().contains("fuel"));

    // Without fuel (reconfigured: recompiled without metering) the time limit stops it.
    let mut manifest = r.get("evil-loop").unwrap().manifest.clone();
    manifest.limits.fuel = 0;
    manifest.limits.time_ms = 20;
    r.reconfigure(manifest).unwrap();
    assert!(matches!(policy.access(&req).await, Verdict::Deny(_)));
    let stats = r.get("evil-loop").unwrap().stats.snapshot();
    assert_eq!((stats.traps, stats.timeouts), (0, 1), "{stats:?}");

    // And a fuel limit large enough for a real plugin leaves its answers unchanged.
    load(&r, "contact-filter", |m| m.limits.fuel = 10_000_000).unwrap();
    r.remove("evil-loop");
    match policy.message_hook(&req, "write to bob@example.com").await {
        HookVerdict::Rewrite(body, _) => assert!(!body.contains("bob@example.com"), "{body}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn traps_memory_bombs_and_oversized_results_are_faults_and_instances_are_replaced() {
    let Some((r, _dir)) = registry().await else {
        return;
    };
    for name in ["evil-trap", "evil-memory", "evil-oversized"] {
        load(&r, name, |m| m.fail = FailPolicy::Closed).unwrap();
    }
    let (t, a) = (thread(), alice());
    let req = request(Action::Send, &a, &t);
    let policy = PluginPolicy::new(r.clone(), 4000);
    assert!(
        matches!(policy.access(&req).await, Verdict::Deny(_)),
        "evil-trap denies closed"
    );
    assert!(matches!(
        policy.message_hook(&req, "hello").await,
        HookVerdict::Reject(..)
    ));
    let fault = |name: &str| r.get(name).unwrap().stats.snapshot();
    assert_eq!(fault("evil-trap").traps, 1);
    let memory = fault("evil-memory");
    let oversized = fault("evil-oversized");
    assert!(
        memory.faults + oversized.faults >= 1,
        "the first failing hook stops the chain"
    );

    // Each plugin alone, to see each fault kind.
    for (name, expect) in [("evil-memory", "memory"), ("evil-oversized", "bad result")] {
        let Some((r, _dir)) = registry().await else {
            return;
        };
        load(&r, name, |m| m.fail = FailPolicy::Closed).unwrap();
        let policy = PluginPolicy::new(r.clone(), 4000);
        assert!(
            matches!(
                policy.message_hook(&req, "hello").await,
                HookVerdict::Reject(..)
            ),
            "{name}"
        );
        let stats = r.get(name).unwrap().stats.snapshot();
        assert!(
            stats
                .last_fault
                .as_deref()
                .unwrap_or_default()
                .contains(expect),
            "{name}: {stats:?}"
        );
        // A failed instance is never reused: the next call gets a fresh one and fails the same way.
        assert!(
            matches!(
                policy.message_hook(&req, "again").await,
                HookVerdict::Reject(..)
            ),
            "{name}"
        );
        assert_eq!(r.get(name).unwrap().stats.snapshot().faults, 2, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn example_plugins_decide() {
    let Some((r, _dir)) = registry().await else {
        return;
    };
    load(&r, "contact-filter", |_| {}).unwrap();
    load(&r, "tiered-rate-limit", |m| {
        m.config.insert("client".into(), "3/60s".into());
    })
    .unwrap();
    load(&r, "blocklist", |_| {}).unwrap();
    let policy = PluginPolicy::new(r.clone(), 4000);
    let (t, a) = (thread(), alice());
    let req = request(Action::Send, &a, &t);
    match policy.message_hook(&req, "write to bob@example.com").await {
        HookVerdict::Rewrite(body, _) => assert!(!body.contains("bob@example.com"), "{body}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        policy.message_hook(&req, "hello there").await,
        HookVerdict::Pass
    );
    let limit = policy.rate_limit(&req).await.unwrap();
    assert_eq!((limit.limit, limit.window), (3, Duration::from_secs(60)));
    assert_eq!(policy.access(&req).await, Verdict::Allow);
    r.get("blocklist").unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_asks_the_host_for_the_participants_of_the_calls_thread() {
    let state = Arc::new(MemoryState::new());
    let Some((r, _dir)) = registry_on(state.clone()).await else {
        return;
    };
    load(&r, "blocklist", |m| {
        m.config
            .insert("deny-sends-to-blocked".into(), "true".into());
    })
    .unwrap();
    state
        .kv_set("blocklist", "blocked:bob", "1", None)
        .await
        .unwrap();
    let policy = PluginPolicy::new(r.clone(), 4000);
    let a = alice();
    let with_bob = thread();
    let mut without_bob = thread();
    without_bob.id = "t2".into();
    without_bob.participants.retain(|p| p.user_id != "bob");
    assert_eq!(
        policy.access(&request(Action::Send, &a, &with_bob)).await,
        Verdict::Deny("this conversation is on hold: a participant is blocked".into())
    );
    assert_eq!(
        policy
            .access(&request(Action::Send, &a, &without_bob))
            .await,
        Verdict::Allow,
        "the same warm instance sees the next call's participants"
    );
    assert_eq!(
        policy.access(&request(Action::Read, &a, &with_bob)).await,
        Verdict::Allow
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_in_flight_keeps_its_version_while_a_reload_swaps_the_next_one_in() {
    let Some((r, _dir)) = registry().await else {
        return;
    };
    load(&r, "noop", |m| m.version = "1".into()).unwrap();
    let before = r.snapshot();
    load(&r, "noop", |m| m.version = "2".into()).unwrap();
    assert_eq!(
        before[0].manifest.version, "1",
        "the old snapshot still runs version 1"
    );
    assert_eq!(r.get("noop").unwrap().manifest.version, "2");
    let request = crate::plugins::bindings::Request {
        action: crate::plugins::bindings::Action::Join,
        actor: crate::plugins::bindings::Actor {
            user_id: "alice".into(),
            role: crate::plugins::bindings::Role::Client,
        },
        thread: crate::plugins::bindings::ThreadInfo {
            id: "t1".into(),
            participant_count: 0,
        },
    };
    let mut call = before[0].begin(Hook::Access, None).await.unwrap();
    let (guest, store) = call.warm.access().unwrap();
    let result = guest.call_check(store, &request).await;
    let old = call.finish(result);
    assert!(old.is_ok(), "the old version still answers");
}
