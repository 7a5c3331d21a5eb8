//! Cost of one plugin hook call on a warm instance, with its limits armed
//! (epoch deadline and fuel re-armed before every call) and its metrics recorded
//! into the host's Prometheus recorder, for the no-op plugin and each example
//! plugin. Needs the built components (`scripts/build-plugins.sh`).
//!
//! `cargo bench -p chat-host --bench hooks` prints criterion's estimates and,
//! after them, p50/p99 of single calls measured one by one. `HOOKS_ONLY=noop/access`
//! limits those single calls to one case and `HOOKS_CALLS=n` sets their number
//! (20 000), e.g. to count instructions per call under callgrind.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_host::audit::AuditLog;
use chat_host::config::AuditKeys;
use chat_host::plugins::bindings::{Action, Actor, Event, Request, Role, ThreadInfo};
use chat_host::plugins::loaded::{Hook, LoadedPlugin};
use chat_host::plugins::manifest::Manifest;
use chat_host::plugins::registry::{PluginRegistry, Services};
use chat_host::plugins::store_data::Participants;
use chat_host::state::memory::MemoryState;
use chat_host::store::sql::SqlStore;
use criterion::{Criterion, criterion_group, criterion_main};

fn plugin_dir() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/chat-host/target",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let dir = std::env::var("CHAT_TEST_PLUGINS")
        .map(Into::into)
        .unwrap_or_else(|_| std::path::Path::new(&target).join("plugins"));
    assert!(
        dir.join("noop.wasm").exists(),
        "no plugins in {}: run scripts/build-plugins.sh",
        dir.display()
    );
    dir
}

struct Bench {
    runtime: tokio::runtime::Runtime,
    registry: Arc<PluginRegistry>,
}

fn setup() -> Bench {
    // The host's metrics recorder, so each call records its metrics as in production.
    let _metrics = chat_host::telemetry::install_metrics().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("chat-host-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let registry = runtime.block_on(async {
        let store = Arc::new(
            SqlStore::connect(&format!("sqlite://{}?mode=rwc", dir.join("b.db").display()))
                .await
                .unwrap(),
        );
        let services = Services {
            state: Arc::new(MemoryState::new()),
            audit: Arc::new(AuditLog::new(
                store,
                AuditKeys::new("bench", b"bench").unwrap(),
            )),
            runtime: tokio::runtime::Handle::current(),
        };
        Arc::new(PluginRegistry::new(services, Some(dir.join("cache"))).unwrap())
    });
    let plugins = plugin_dir();
    for name in [
        "noop",
        "blocklist",
        "contact-filter",
        "tiered-rate-limit",
        "dispute-audit",
    ] {
        let wasm = std::fs::read(plugins.join(format!("{name}.wasm"))).unwrap();
        let manifest = Manifest::parse(
            &std::fs::read_to_string(plugins.join(format!("{name}.toml"))).unwrap(),
        )
        .unwrap();
        registry.load(&wasm, manifest).unwrap();
    }
    Bench { runtime, registry }
}

/// The thread's participants, built once per event by the chain.
static PARTICIPANTS: std::sync::LazyLock<Participants> =
    std::sync::LazyLock::new(|| ["alice".to_owned(), "bob".to_owned()].into());

fn request() -> Request {
    Request {
        action: Action::Send,
        actor: Actor {
            user_id: "alice".into(),
            role: Role::Client,
        },
        thread: ThreadInfo {
            id: "t1".into(),
            participant_count: 2,
        },
    }
}

/// What one benchmarked call does.
#[derive(Clone, Copy)]
enum Case {
    Access,
    Message(&'static str),
    RateLimit,
    Events,
}

impl Case {
    fn hook(self) -> Hook {
        match self {
            Case::Access => Hook::Access,
            Case::Message(_) => Hook::MessageHook,
            Case::RateLimit => Hook::RateLimit,
            Case::Events => Hook::Events,
        }
    }
}

/// One hook call on a warm instance, exactly as the policy chain makes it.
async fn call(p: &LoadedPlugin, case: Case, req: &Request, event: &Event) {
    let participants = (!matches!(case, Case::Events)).then_some(&*PARTICIPANTS);
    let mut c = p.begin(case.hook(), participants).await.unwrap();
    let w = &mut c.warm;
    let result = match case {
        Case::Access => {
            let (g, s) = w.access().unwrap();
            g.call_check(s, req).await.map(drop)
        }
        Case::Message(body) => {
            let (g, s) = w.message_hook().unwrap();
            g.call_on_message(s, req, body).await.map(drop)
        }
        Case::RateLimit => {
            let (g, s) = w.rate_limit().unwrap();
            g.call_policy(s, req).await.map(drop)
        }
        Case::Events => {
            let (g, s) = w.events().unwrap();
            g.call_on_event(s, event).await
        }
    };
    c.finish(result).unwrap();
}

fn event() -> Event {
    Event {
        kind: "message_sent".into(),
        user_id: "alice".into(),
        thread_id: Some("t1".into()),
        message_id: Some("42".into()),
        subject_id: None,
        at_ms: 0,
    }
}

fn calls() -> Vec<(&'static str, &'static str, Case)> {
    vec![
        ("noop", "access", Case::Access),
        ("noop", "message-hook", Case::Message("hello")),
        ("blocklist", "access", Case::Access),
        (
            "contact-filter",
            "message-hook (clean text)",
            Case::Message("Can you send the logo drafts by Friday? Thanks!"),
        ),
        (
            "contact-filter",
            "message-hook (masks)",
            Case::Message("mail john@example.com or call +44 20 7946 0958"),
        ),
        ("tiered-rate-limit", "rate-limit", Case::RateLimit),
        ("dispute-audit", "events", Case::Events),
    ]
}

fn percentiles(bench: &Bench) {
    let only = std::env::var("HOOKS_ONLY").ok();
    let n: usize = std::env::var("HOOKS_CALLS").map_or(20_000, |n| n.parse().expect("HOOKS_CALLS"));
    println!("\nsingle calls, {n} each, limits armed (p50 / p99 / max):");
    let (req, event) = (request(), event());
    for (plugin, label, case) in calls() {
        if only
            .as_ref()
            .is_some_and(|o| *o != format!("{plugin}/{label}"))
        {
            continue;
        }
        let p = bench.registry.get(plugin).unwrap();
        let mut samples: Vec<Duration> = bench.runtime.block_on(async {
            for _ in 0..2_000 {
                call(&p, case, &req, &event).await;
            }
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                call(&p, case, &req, &event).await;
                samples.push(t.elapsed());
            }
            samples
        });
        samples.sort();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        println!(
            "  {plugin:>18} {label:<28} p50 {:>7.2} us   p99 {:>7.2} us   max {:>8.1} us",
            at(0.50).as_secs_f64() * 1e6,
            at(0.99).as_secs_f64() * 1e6,
            samples.last().unwrap().as_secs_f64() * 1e6
        );
    }
}

fn hooks(c: &mut Criterion) {
    let bench = setup();
    let (req, event) = (request(), event());
    let mut group = c.benchmark_group("hook call");
    for (plugin, label, case) in calls() {
        let p = bench.registry.get(plugin).unwrap();
        group.bench_function(format!("{plugin}/{label}"), |b| {
            b.iter_custom(|iters| {
                bench.runtime.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        call(&p, case, &req, &event).await;
                    }
                    t.elapsed()
                })
            })
        });
    }
    group.finish();
    percentiles(&bench);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = hooks
}
criterion_main!(benches);
