//! The leaf of the crate: the chat's vocabulary, which every other module uses
//! and which uses nothing of the crate.
//!
//! - [`ids`]: user, thread and message ids and their rules.
//! - [`clock`]: milliseconds since the epoch and their RFC 3339 form.
//! - [`role`]: what a user is on the marketplace.
//! - [`model`]: users, threads, messages, receipts and their wire forms; who acts.
//! - [`events`]: the event-stream kinds and the events use cases publish.
//! - [`evidence`]: what the host seals into the audit trail of a thread under
//!   audit, and the hashes that tie it to the stored history.
//! - [`server_events`]: every server -> client Socket.IO event with its payload.
//! - [`policy`]: the policy port: requests, verdicts and the [`policy::Policy`]
//!   trait the built-in rules and the plugin runtime implement.

pub mod clock;
pub mod events;
pub mod evidence;
pub mod ids;
pub mod model;
pub mod policy;
pub mod role;
pub mod server_events;

pub use clock::{Millis, now_ms, parse_rfc3339, rfc3339};
pub use ids::{MessageId, is_valid_id};
pub use model::{Actor, ConnectionId};
pub use role::Role;
