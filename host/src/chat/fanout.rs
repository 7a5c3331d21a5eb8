//! Fan-out: how use cases reach sockets, without knowing the transport.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::ConnectionId;
use crate::domain::model::ThreadMeta;
use crate::domain::server_events::ServerEvent;

/// Room of every socket of a user.
pub fn user_room(user: &str) -> String {
    format!("chat:user:{user}")
}

/// Room of the sockets that joined a thread.
pub fn thread_room(thread: &str) -> String {
    format!("chat:thread:{thread}")
}

/// Everyone a thread's events (typing, read marks) are for: every socket of
/// every participant, joined or not (so a reconnected socket needs no
/// re-join), and the sockets that joined the thread (an admin watching).
pub fn thread_audience(thread: &ThreadMeta) -> Vec<String> {
    std::iter::once(thread_room(&thread.id))
        .chain(thread.participant_ids().map(user_room))
        .collect()
}

/// Emits an event to rooms across the cluster, once per socket.
#[async_trait]
pub trait Fanout: Send + Sync + 'static {
    /// Sends `event` to every socket in any of `rooms` but not in any of
    /// `except_rooms`, except the socket `except`. Failures are logged; such
    /// events are best effort (history keeps everything).
    async fn emit_except(
        &self,
        rooms: Vec<String>,
        except_rooms: Vec<String>,
        except: Option<&ConnectionId>,
        event: &ServerEvent,
    );

    /// [`Fanout::emit_except`] without excluded rooms.
    async fn emit(&self, rooms: Vec<String>, except: Option<&ConnectionId>, event: &ServerEvent) {
        self.emit_except(rooms, Vec::new(), except, event).await;
    }

    /// Sends `event` to every socket of `user` in the cluster, asking each for
    /// an acknowledgement; true as soon as one acknowledged it within
    /// `timeout` (a device of the user has it), false if none did.
    async fn deliver(&self, user: &str, event: &ServerEvent, timeout: Duration) -> bool;
}
