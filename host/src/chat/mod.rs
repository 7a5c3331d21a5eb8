//! The use cases, one module per client event. Every event runs the same chain:
//! validate -> access policy -> rate-limit policy -> message hooks -> persist ->
//! fan-out -> event stream. Transport code only decodes, calls and acks.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::domain::events::{ChatEvent, EventKind};
use crate::domain::model::ThreadMeta;
use crate::domain::policy::{Action, RateLimit, Request};
use crate::domain::{Actor, Role};
use crate::events::EventBus;
use crate::state::StateStore;
use crate::store::{AuditSeal, ChatStore};

pub mod admin;
pub mod budget;
pub mod delivery;
pub mod error;
pub mod fanout;
pub mod history;
pub mod join;
pub mod overview;
pub mod policy;
pub mod presence;
pub mod read;
pub mod send;
pub mod service;
pub mod threads;
pub mod typing;
pub mod validate;

#[cfg(test)]
mod tests;

use budget::Budgets;
use delivery::DeliveryMarks;
use error::ChatError;
use fanout::Fanout;
use policy::PolicyChain;
use presence::LocalPresence;
use threads::ThreadDirectory;

/// Limits the built-in rules enforce.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest body in code points.
    pub max_body_chars: usize,
    /// Default sends per user per minute.
    pub messages_per_minute: u32,
    /// Whether avatar URLs may be `http:` as well as `https:` (dev mode).
    pub http_avatars: bool,
    /// Default budgets of the other socket events.
    pub events_per_minute: EventBudgets,
}

/// Default budgets of the socket events other than sends, per user per minute
/// on one instance ([`budget`]); each allows that many at once, then refills
/// evenly over the minute.
#[derive(Debug, Clone, Copy)]
pub struct EventBudgets {
    /// `chat:join` and `chat:leave`.
    pub join: u32,
    /// `chat:history`.
    pub history: u32,
    /// `chat:read`.
    pub read: u32,
    /// `chat:typing`.
    pub typing: u32,
}

#[cfg(test)]
impl Limits {
    /// The defaults of [`Config`].
    pub(crate) fn defaults() -> Self {
        Self::from_config(&<Config as clap::Parser>::parse_from(["chat-host"]))
    }
}

impl Limits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_body_chars: config.max_body_chars,
            messages_per_minute: config.rate_limit_per_minute,
            http_avatars: !config.is_production(),
            events_per_minute: EventBudgets {
                join: config.join_per_minute,
                history: config.history_per_minute,
                read: config.read_per_minute,
                typing: config.typing_per_minute,
            },
        }
    }

    /// The built-in limit of `action`, per user per minute.
    pub fn default_rate(&self, action: Action) -> RateLimit {
        let budgets = &self.events_per_minute;
        let limit = match action {
            Action::Send => self.messages_per_minute,
            Action::Join => budgets.join,
            Action::History => budgets.history,
            Action::Read => budgets.read,
            Action::Typing => budgets.typing,
        };
        RateLimit {
            limit,
            window: Duration::from_secs(60),
        }
    }
}

tokio::task_local! {
    /// Set by [`committed`] in a use case run by [`ChatService::bounded`].
    static COMMITTED: Arc<AtomicBool>;
}

/// Marks the running use case as past its point of no return: its effect is
/// stored, so [`ChatService::bounded`]'s deadline no longer stops what follows
/// (fan-out, cache invalidation). Outside `bounded` (tests) it does nothing.
pub(crate) fn committed() {
    let _ = COMMITTED.try_with(|stored| stored.store(true, Ordering::Release));
}

/// How long one use case may wait on the backends when no deadline is set
/// ([`ChatService::with_deadline`]).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);

/// The backends the use cases run on.
pub struct Backends {
    /// Durable data.
    pub store: Arc<dyn ChatStore>,
    /// Seals the evidence the store writes into audited threads' trails.
    pub seal: Arc<dyn AuditSeal>,
    /// Realtime state.
    pub state: Arc<dyn StateStore>,
    /// Emits to sockets and rooms.
    pub fanout: Arc<dyn Fanout>,
}

/// The backends and policies every use case runs on.
pub struct ChatService {
    store: Arc<dyn ChatStore>,
    seal: Arc<dyn AuditSeal>,
    state: Arc<dyn StateStore>,
    fanout: Arc<dyn Fanout>,
    policy: PolicyChain,
    events: EventBus,
    threads: ThreadDirectory,
    presence: LocalPresence,
    limits: Limits,
    /// Live deliveries waiting for a recipient's acknowledgement.
    deliveries: TaskTracker,
    /// Acknowledged receipts on their way to the store.
    marks: DeliveryMarks,
    /// Connects and disconnects whose database work (announcement, replay)
    /// runs at once: half the store's parallelism, so a reconnect storm queues
    /// its own arrivals and leaves the rest to sends and reads.
    arrivals: tokio::sync::Semaphore,
    /// Socket events other than sends, per user and action ([`budget`]).
    budgets: Budgets<(String, Action)>,
    /// Typing relays, at most one per user, thread and state per interval.
    typing_relays: Budgets<(String, String, bool)>,
    /// The bound of [`ChatService::bounded`]: below the clients' ack timeouts, so
    /// a stalled backend is answered `unavailable` instead of a client timeout.
    deadline: Duration,
}

/// Whether each backend answered a readiness probe, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The durable store answered, or the reason it did not.
    pub database: Result<(), String>,
    /// The realtime state store answered, or the reason it did not (e.g. a
    /// Redis Cluster with slots no master serves).
    pub state: Result<(), String>,
}

impl ChatService {
    /// Wires the use cases to their backends.
    pub fn new(
        backends: Backends,
        events: EventBus,
        marks: DeliveryMarks,
        policy: PolicyChain,
        limits: Limits,
    ) -> Self {
        let Backends {
            store,
            seal,
            state,
            fanout,
        } = backends;
        Self {
            seal,
            threads: ThreadDirectory::new(store.clone(), state.clone()),
            arrivals: tokio::sync::Semaphore::new((store.parallelism() / 2).max(1)),
            policy,
            presence: LocalPresence::default(),
            store,
            state,
            fanout,
            events,
            limits,
            deliveries: TaskTracker::new(),
            marks,
            budgets: Budgets::default(),
            typing_relays: Budgets::default(),
            deadline: DEFAULT_DEADLINE,
        }
    }

    /// Bounds each use case run through [`ChatService::bounded`] by `deadline`
    /// (`CHAT_BACKEND_TIMEOUT_MS`).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Runs one use case (a client event, an `/api` request) within the
    /// deadline: however many backend round trips it makes, a stalled backend
    /// (Redis frozen, a database that stopped answering) makes it answer
    /// `unavailable` once the deadline passes, below the clients' ack timeouts.
    /// Until the use case has stored its effect ([`committed`]) it stops at the
    /// await it was on, as if that call had failed (a transaction in flight is
    /// rolled back): `unavailable` then means it had no effect. Once stored, the
    /// rest (fan-out, cache invalidation) still runs to its end, on its own and
    /// tracked with the live deliveries: a send answered `unavailable` then is
    /// delivered all the same, and the client's retry with the same
    /// `clientMessageId` gets it back. Each backend call has the same bound of
    /// its own, for work outside a use case.
    pub async fn bounded<T: Send + 'static>(
        &self,
        use_case: impl Future<Output = Result<T, ChatError>> + Send + 'static,
    ) -> Result<T, ChatError> {
        let stored = Arc::new(AtomicBool::new(false));
        let mut use_case = Box::pin(COMMITTED.scope(stored.clone(), use_case));
        match tokio::time::timeout(self.deadline, &mut use_case).await {
            Ok(result) => result,
            Err(_) => {
                let finishing = stored.load(Ordering::Acquire);
                if finishing {
                    self.deliveries.spawn(async move {
                        if let Err(e) = use_case.await {
                            tracing::debug!(error = %e, "a stored action finished after its deadline with an error");
                        }
                    });
                }
                tracing::warn!(
                    deadline_ms = self.deadline.as_millis(),
                    finishing,
                    "a backend did not answer within the deadline"
                );
                Err(ChatError::Unavailable(format!(
                    "the backends did not answer within {} ms; retry later",
                    self.deadline.as_millis()
                )))
            }
        }
    }

    /// Waits until every live delivery started so far has been acknowledged or
    /// has timed out, and every acknowledged receipt is written; shutdown and
    /// tests use it.
    pub async fn deliveries_settled(&self) {
        self.deliveries.close();
        self.deliveries.wait().await;
        self.deliveries.reopen();
        self.marks.flush().await;
    }

    /// Probes both backends, each for at most `timeout`.
    pub async fn readiness(&self, timeout: std::time::Duration) -> Readiness {
        let (db, state) = tokio::join!(
            tokio::time::timeout(timeout, self.store.ping()),
            tokio::time::timeout(timeout, self.state.ping())
        );
        let reason = |probe: Result<Result<(), String>, _>| match probe {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        Readiness {
            database: reason(db.map(|r| r.map_err(|e| e.to_string()))),
            state: reason(state.map(|r| r.map_err(|e| e.to_string()))),
        }
    }

    /// The preamble of every thread request: a thread the actor may know of
    /// ([`ChatService::visible_thread`]), the access chain's consent
    /// (`forbidden`) and, for a socket's events other than sends, its budget
    /// (`rate_limited`; sends are limited after their idempotency check).
    async fn authorize(
        &self,
        actor: &Actor,
        action: Action,
        thread_id: &str,
    ) -> Result<ThreadMeta, ChatError> {
        let thread = self.visible_thread(actor, thread_id).await?;
        let req = Request {
            action,
            actor,
            thread: &thread,
        };
        if let Err(denied) = self.policy.check_access(&req).await {
            self.events
                .publish(ChatEvent::new(EventKind::AccessDenied, &actor.user_id).thread(thread_id));
            return Err(denied);
        }
        if action != Action::Send && actor.connection.is_some() {
            self.spend_budget(&req).await?;
        }
        Ok(thread)
    }

    /// A well-formed thread id of a thread the actor may know of. One that does
    /// not exist and, to anyone but an admin, one they are not in get the same
    /// `not_found`, so thread ids cannot be probed.
    async fn visible_thread(
        &self,
        actor: &Actor,
        thread_id: &str,
    ) -> Result<ThreadMeta, ChatError> {
        validate::id("threadId", thread_id)?;
        let unknown = || {
            ChatError::NotFound(if actor.role == Role::Admin {
                format!("thread {thread_id} does not exist")
            } else {
                format!("thread {thread_id} does not exist or you are not a participant")
            })
        };
        let thread = match self.threads.require(thread_id).await {
            Err(ChatError::NotFound(_)) => return Err(unknown()),
            other => other?,
        };
        if actor.role != Role::Admin && !thread.has_participant(&actor.user_id) {
            return Err(unknown());
        }
        Ok(thread)
    }
}
