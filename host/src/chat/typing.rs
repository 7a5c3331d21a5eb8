//! `chat:typing`: short-lived typing marks relayed to the thread's audience.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ChatError;
use super::fanout::thread_audience;
use super::{ChatService, validate};
use crate::domain::Actor;
use crate::domain::model::ThreadMeta;
use crate::domain::policy::{Action, RateLimit};
use crate::domain::server_events::TypingEvent;

/// A typing mark lasts this long unless refreshed.
pub const TYPING_TTL: Duration = Duration::from_secs(5);

/// At most one relay (and state write) per user, thread and state in this
/// interval; a repeat within it is acknowledged and dropped. A stop refills
/// the start, so typing again right after a stop is relayed.
const TYPING_RELAY: RateLimit = RateLimit {
    limit: 1,
    window: Duration::from_secs(1),
};

/// Payload of `chat:typing`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingPayload {
    /// Thread id.
    pub thread_id: String,
    /// Started (true) or stopped (false) typing.
    pub is_typing: bool,
}

/// Empty ack (`{ ok: true }`).
#[derive(Debug, Serialize)]
pub struct Done {}

impl ChatService {
    /// Records and relays a typing state (coalesced: see [`TYPING_RELAY`]).
    pub async fn typing(&self, actor: &Actor, payload: Value) -> Result<Done, ChatError> {
        let p: TypingPayload = validate::payload(payload)?;
        let thread = self.authorize(actor, Action::Typing, &p.thread_id).await?;
        let relay = (actor.user_id.clone(), thread.id.clone(), p.is_typing);
        if self.typing_relays.take(relay, TYPING_RELAY).is_err() {
            metrics::counter!("chat_typing_coalesced_total").increment(1);
            return Ok(Done {});
        }
        if p.is_typing {
            self.state
                .typing_start(&thread.id, &actor.user_id, TYPING_TTL)
                .await?;
        } else {
            self.state.typing_stop(&thread.id, &actor.user_id).await?;
        }
        self.relay_typing(actor, &thread, p.is_typing).await;
        Ok(Done {})
    }

    /// Tells the thread's other sockets that `actor` started or stopped typing.
    pub(super) async fn relay_typing(&self, actor: &Actor, thread: &ThreadMeta, is_typing: bool) {
        if !is_typing {
            self.typing_relays
                .forget(&(actor.user_id.clone(), thread.id.clone(), true));
        }
        let event = TypingEvent {
            thread_id: thread.id.clone(),
            user_id: actor.user_id.clone(),
            is_typing,
        };
        self.fanout
            .emit(
                thread_audience(thread),
                actor.connection.as_ref(),
                &event.into(),
            )
            .await;
    }
}
