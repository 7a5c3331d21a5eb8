//! The use cases, one module per client event. Every event runs the same chain:
//! validate -> access policy -> rate-limit policy -> message hooks -> persist ->
//! fan-out -> event stream. Transport code only decodes, calls and acks.

use std::sync::Arc;

use crate::auth::Role;
use crate::state::StateStore;
use crate::store::ChatStore;

pub mod admin;
pub mod events;
pub mod fanout;
pub mod history;
pub mod join;
pub mod model;
pub mod policy;
pub mod presence;
pub mod read;
pub mod send;
pub mod threads;
pub mod typing;
pub mod validate;

use events::EventBus;
use fanout::Fanout;
use policy::PolicyChain;
use presence::LocalPresence;
use threads::ThreadDirectory;

/// Identifies one socket of a user (the Socket.IO session id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub String);

/// Who is acting: a user on one of their sockets, or the service API.
#[derive(Debug, Clone)]
pub struct Actor {
    /// User id (JWT `sub`), or `service` for the service token.
    pub user_id: String,
    /// Role from the token.
    pub role: Role,
    /// The socket the action came from; it is left out of the action's broadcasts.
    pub connection: Option<ConnectionId>,
}

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
}

impl ChatService {
    /// Wires the use cases to their backends.
    pub fn new(
        store: Arc<dyn ChatStore>,
        state: Arc<dyn StateStore>,
        fanout: Arc<dyn Fanout>,
        events: EventBus,
        policy: PolicyChain,
        limits: Limits,
    ) -> Self {
        Self {
            threads: ThreadDirectory::new(store.clone(), state.clone()),
            policy,
            presence: LocalPresence::default(),
            store,
            state,
            fanout,
            events,
            limits,
        }
    }

    /// The durable store (for readiness checks).
    pub fn store(&self) -> &Arc<dyn ChatStore> {
        &self.store
    }

    /// The realtime state store (for readiness checks and presence refresh).
    pub fn state(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    /// The event bus (flushed at shutdown).
    pub fn events(&self) -> &EventBus {
        &self.events
    }
}
