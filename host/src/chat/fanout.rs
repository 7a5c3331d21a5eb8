//! Fan-out: how use cases reach sockets, without knowing the transport.

use async_trait::async_trait;

use crate::domain::ConnectionId;
use crate::domain::server_events::ServerEvent;

/// Room of every socket of a user.
pub fn user_room(user: &str) -> String {
    format!("chat:user:{user}")
}

/// Room of the sockets that joined a thread.
pub fn thread_room(thread: &str) -> String {
    format!("chat:thread:{thread}")
}

/// Emits an event to rooms across the cluster, once per socket.
#[async_trait]
pub trait Fanout: Send + Sync + 'static {
    /// Sends `event` to every socket in any of `rooms`, except `except`.
    /// Failures are logged; delivery is best effort (history keeps everything).
    async fn emit(&self, rooms: Vec<String>, except: Option<&ConnectionId>, event: &ServerEvent);
}
