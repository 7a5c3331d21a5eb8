//! The use cases, one module per client event. Every event runs the same chain:
//! validate -> access policy -> rate-limit policy -> message hooks -> persist ->
//! fan-out -> event stream. Transport code only decodes, calls and acks.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::domain::model::ThreadMeta;
use crate::domain::policy::{Action, Request};
use crate::domain::{Actor, Role};
use crate::events::EventBus;
use crate::state::StateStore;
use crate::store::ChatStore;

pub mod delivery;
pub mod error;
pub mod fanout;
pub mod history;
pub mod join;
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
}

/// The backends and policies every use case runs on.
pub struct ChatService {
    store: Arc<dyn ChatStore>,
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
}

/// Whether each backend answered a readiness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The durable store answered.
    pub database: bool,
    /// The realtime state store answered.
    pub state: bool,
}

impl ChatService {
    /// Wires the use cases to their backends.
    pub fn new(
        store: Arc<dyn ChatStore>,
        state: Arc<dyn StateStore>,
        fanout: Arc<dyn Fanout>,
        events: EventBus,
        marks: DeliveryMarks,
        policy: PolicyChain,
        limits: Limits,
    ) -> Self {
        Self {
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
        Readiness {
            database: matches!(db, Ok(Ok(()))),
            state: matches!(state, Ok(Ok(()))),
        }
    }

    /// The preamble of every thread request: a thread the actor may know of
    /// ([`ChatService::visible_thread`]) and the access chain's consent
    /// (`forbidden`).
    async fn authorize(
        &self,
        actor: &Actor,
        action: Action,
        thread_id: &str,
    ) -> Result<ThreadMeta, ChatError> {
        let thread = self.visible_thread(actor, thread_id).await?;
        self.policy
            .check_access(&Request {
                action,
                actor,
                thread: &thread,
            })
            .await?;
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
