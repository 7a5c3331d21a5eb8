//! The plugins' link of the policy chain: access (all must allow), rate limit
//! (strictest wins), message hooks (in order, rewrites passed on), each under
//! the plugin's fail policy; and the events observer, off the hot path.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;

use super::bindings::{self as wit, HookVerdict as WitHook, Verdict as WitVerdict};
use super::loaded::{Hook, LoadedPlugin};
use super::manifest::FailPolicy;
use super::metrics::Fault;
use super::registry::PluginRegistry;
use super::store_data::Participants;
use crate::domain::Role;
use crate::domain::events::{ChatEvent, EventObserver};
use crate::domain::policy::{Action, HookVerdict, Policy, RateLimit, Request, Verdict};

/// Longest deny or reject reason accepted from a plugin, in bytes.
pub const MAX_REASON: usize = 1024;
/// Longest window a plugin may set.
const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The policy of a failing rate-limit plugin whose fail policy is `closed`.
const CLOSED_RATE_LIMIT: RateLimit = RateLimit {
    limit: 1,
    window: Duration::from_secs(60),
};
/// Events waiting for the events plugins before new ones are dropped (and counted).
const EVENT_QUEUE: usize = 4096;

/// The plugins as one link of the policy chain. Hook calls are awaited on the
/// async worker handling the event, as Envoy runs its Wasm filters on the worker:
/// no hand-off to another thread and back. A plugin that runs long yields to
/// the worker's other tasks at every epoch tick until its wall-clock deadline
/// traps it, at most `concurrent-calls` of its calls run at once (the others
/// wait for a slot until their deadline), and the host calls that reach a
/// backend (kv, audit) are awaited like any other I/O.
pub struct PluginPolicy {
    registry: Arc<PluginRegistry>,
    max_body_chars: usize,
}

impl PluginPolicy {
    /// A link over the registry's current plugins; rewrites may not exceed `max_body_chars`.
    pub fn new(registry: Arc<PluginRegistry>, max_body_chars: usize) -> Self {
        Self {
            registry,
            max_body_chars,
        }
    }
}

/// A request as the plugins see it: the WIT record, and the thread's
/// participants, which the host hands out on demand (`host.participants`).
struct PluginRequest {
    wit: wit::Request,
    participants: Participants,
}

fn to_wit(req: &Request<'_>) -> PluginRequest {
    let participants: Participants = req.thread.participant_ids().map(str::to_owned).collect();
    let wit = wit::Request {
        action: match req.action {
            Action::Join => wit::Action::Join,
            Action::Send => wit::Action::Send,
            Action::Read => wit::Action::Read,
            Action::Typing => wit::Action::Typing,
            Action::History => wit::Action::History,
        },
        actor: wit::Actor {
            user_id: req.actor.user_id.clone(),
            role: match req.actor.role {
                Role::Client => wit::Role::Client,
                Role::Freelancer => wit::Role::Freelancer,
                Role::Admin => wit::Role::Admin,
            },
        },
        thread: wit::ThreadInfo {
            id: req.thread.id.clone(),
            participant_count: participants.len().try_into().unwrap_or(u32::MAX),
        },
    };
    PluginRequest { wit, participants }
}

/// The enabled plugins that export `hook`, in chain order.
fn calling(plugins: &[Arc<LoadedPlugin>], hook: Hook) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
    plugins
        .iter()
        .filter(move |p| p.enabled() && p.hooks.has(hook))
}

/// Whether any enabled plugin exports `hook`.
fn any_calling(plugins: &[Arc<LoadedPlugin>], hook: Hook) -> bool {
    calling(plugins, hook).next().is_some()
}

fn reason(plugin: &LoadedPlugin, hook: Hook, text: String) -> Result<String, Fault> {
    if text.len() > MAX_REASON {
        return Err(plugin.bad_result(
            hook,
            format!("a reason of {} bytes (limit {MAX_REASON})", text.len()),
        ));
    }
    Ok(text)
}

fn missing(hook: Hook) -> wasmtime::Error {
    wasmtime::format_err!("the instance lacks its {} export", hook.label())
}

/// Applies the plugin's fail policy: `Some(closed answer)` or `None` to skip it.
fn on_fault<T>(plugin: &LoadedPlugin, hook: Hook, closed: impl FnOnce() -> T) -> Option<T> {
    match plugin.manifest.fail {
        FailPolicy::Closed => {
            plugin.stats.fail_policy(hook, "closed");
            Some(closed())
        }
        FailPolicy::Open => {
            plugin.stats.fail_policy(hook, "open");
            None
        }
    }
}

#[async_trait]
impl Policy for PluginPolicy {
    fn name(&self) -> &str {
        "plugins"
    }

    async fn access(&self, req: &Request<'_>) -> Verdict {
        let plugins = self.registry.snapshot();
        if !any_calling(&plugins, Hook::Access) {
            return Verdict::Allow;
        }
        access_chain(&plugins, &to_wit(req)).await
    }

    async fn rate_limit(&self, req: &Request<'_>) -> Option<RateLimit> {
        let plugins = self.registry.snapshot();
        if !any_calling(&plugins, Hook::RateLimit) {
            return None;
        }
        rate_limit_chain(&plugins, &to_wit(req)).await
    }

    async fn message_hook(&self, req: &Request<'_>, body: &str) -> HookVerdict {
        let plugins = self.registry.snapshot();
        if !any_calling(&plugins, Hook::MessageHook) {
            return HookVerdict::Pass;
        }
        message_hook_chain(&plugins, &to_wit(req), body, self.max_body_chars).await
    }
}

/// One hook call on a warm instance of `$plugin` about a thread with
/// `$participants` (an `Option`): `$export` names the export,
/// `$call` uses the bound guest and store. Evaluates to `Result<_, Fault>`.
macro_rules! hook_call {
    ($plugin:expr, $hook:expr, $participants:expr, $export:ident, |$guest:ident, $store:ident| $call:expr) => {
        async {
            let mut call = $plugin.begin($hook, $participants).await?;
            let result = match call.warm.$export() {
                Some(($guest, $store)) => $call.await,
                None => Err(missing($hook)),
            };
            call.finish(result)
        }
        .await
    };
}

async fn access_chain(plugins: &[Arc<LoadedPlugin>], request: &PluginRequest) -> Verdict {
    let participants = Some(&request.participants);
    for plugin in calling(plugins, Hook::Access) {
        let outcome = hook_call!(
            plugin,
            Hook::Access,
            participants,
            access,
            |guest, store| { guest.call_check(store, &request.wit) }
        )
        .and_then(|v| match v {
            WitVerdict::Allow => Ok(None),
            WitVerdict::Deny(text) => reason(plugin, Hook::Access, text).map(Some),
        });
        match outcome {
            Ok(None) => plugin.stats.verdict(Hook::Access, "allow"),
            Ok(Some(why)) => {
                plugin.stats.verdict(Hook::Access, "deny");
                return Verdict::Deny(why);
            }
            Err(_) => {
                if let Some(deny) = on_fault(plugin, Hook::Access, || {
                    Verdict::Deny(format!(
                        "the policy plugin {} failed; access is refused",
                        plugin.name()
                    ))
                }) {
                    return deny;
                }
            }
        }
    }
    Verdict::Allow
}

async fn rate_limit_chain(
    plugins: &[Arc<LoadedPlugin>],
    request: &PluginRequest,
) -> Option<RateLimit> {
    let mut strictest: Option<RateLimit> = None;
    let participants = Some(&request.participants);
    for plugin in calling(plugins, Hook::RateLimit) {
        let outcome = hook_call!(
            plugin,
            Hook::RateLimit,
            participants,
            rate_limit,
            |guest, store| { guest.call_policy(store, &request.wit) }
        )
        .and_then(|policy| match policy {
            None => Ok(None),
            Some(p)
                if p.limit >= 1 && (1..=MAX_WINDOW.as_millis() as u64).contains(&p.window_ms) =>
            {
                Ok(Some(RateLimit {
                    limit: p.limit,
                    window: Duration::from_millis(p.window_ms),
                }))
            }
            Some(p) => Err(plugin.bad_result(
                Hook::RateLimit,
                format!("limit {} per {} ms", p.limit, p.window_ms),
            )),
        });
        let limit = match outcome {
            Ok(limit) => {
                plugin.stats.verdict(
                    Hook::RateLimit,
                    if limit.is_some() { "policy" } else { "none" },
                );
                limit
            }
            Err(_) => on_fault(plugin, Hook::RateLimit, || CLOSED_RATE_LIMIT),
        };
        if let Some(limit) = limit
            && strictest.is_none_or(|s| limit.stricter_than(&s))
        {
            strictest = Some(limit);
        }
    }
    strictest
}

async fn message_hook_chain(
    plugins: &[Arc<LoadedPlugin>],
    request: &PluginRequest,
    body: &str,
    max_chars: usize,
) -> HookVerdict {
    let mut current: Option<String> = None;
    let mut rewriters = Vec::new();
    let participants = Some(&request.participants);
    for plugin in calling(plugins, Hook::MessageHook) {
        let text = current.as_deref().unwrap_or(body);
        let outcome = hook_call!(
            plugin,
            Hook::MessageHook,
            participants,
            message_hook,
            |guest, store| { guest.call_on_message(store, &request.wit, text) }
        )
        .and_then(|v| match v {
            WitHook::Pass => Ok(HookVerdict::Pass),
            WitHook::Reject(why) => reason(plugin, Hook::MessageHook, why)
                .map(|why| HookVerdict::Reject(why, Some(plugin.decider()))),
            WitHook::Rewrite(new) => {
                let chars = new.trim().chars().count();
                if chars == 0 || chars > max_chars {
                    Err(plugin.bad_result(
                        Hook::MessageHook,
                        format!("a rewrite of {chars} characters"),
                    ))
                } else {
                    Ok(HookVerdict::Rewrite(new.trim().to_owned(), Vec::new()))
                }
            }
        });
        match outcome {
            Ok(HookVerdict::Pass) => plugin.stats.verdict(Hook::MessageHook, "pass"),
            Ok(HookVerdict::Rewrite(new, _)) => {
                plugin.stats.verdict(Hook::MessageHook, "rewrite");
                current = Some(new);
                rewriters.push(plugin.decider());
            }
            Ok(reject @ HookVerdict::Reject(..)) => {
                plugin.stats.verdict(Hook::MessageHook, "reject");
                return reject;
            }
            Err(_) => {
                if let Some(reject) = on_fault(plugin, Hook::MessageHook, || {
                    HookVerdict::Reject(
                        format!(
                            "the message could not be checked by {}; it was not sent",
                            plugin.name()
                        ),
                        Some(plugin.decider()),
                    )
                }) {
                    return reject;
                }
            }
        }
    }
    current.map_or(HookVerdict::Pass, |body| {
        HookVerdict::Rewrite(body, rewriters)
    })
}

/// Feeds events to the events plugins from a task of its own; a full queue
/// drops (and counts) instead of blocking. Without an enabled events plugin,
/// events are not queued at all. The task ends once this observer is dropped
/// and the queue is drained, so awaiting its handle at shutdown lets the last
/// events (e.g. `dispute-audit`'s audit rows) be written.
pub struct PluginEvents {
    tx: mpsc::Sender<ChatEvent>,
    registry: Arc<PluginRegistry>,
}

impl PluginEvents {
    /// Starts the task over the registry's current plugins (call within the
    /// runtime); returns the observer and the task's handle.
    pub fn start(registry: Arc<PluginRegistry>) -> (Self, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<ChatEvent>(EVENT_QUEUE);
        let observed = registry.clone();
        let task = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let wit_event = wit::Event {
                    kind: event.kind.as_str().to_owned(),
                    user_id: event.user_id.clone(),
                    thread_id: event.thread_id.clone(),
                    message_id: event.message_id.map(|id| id.to_string()),
                    subject_id: event.subject_id.clone(),
                    at_ms: event.at_ms,
                };
                for plugin in calling(&observed.snapshot(), Hook::Events) {
                    let _ = hook_call!(plugin, Hook::Events, None, events, |guest, store| guest
                        .call_on_event(store, &wit_event));
                }
            }
        });
        (Self { tx, registry }, task)
    }
}

impl EventObserver for PluginEvents {
    fn observe(&self, event: &ChatEvent) {
        let wanted = any_calling(&self.registry.snapshot(), Hook::Events);
        if !wanted {
            return;
        }
        if let Err(TrySendError::Full(_)) = self.tx.try_send(event.clone()) {
            metrics::counter!("chat_plugin_events_dropped_total").increment(1);
        }
    }
}
