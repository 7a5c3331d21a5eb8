//! `chat:typing`: short-lived typing marks relayed to the thread room.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::fanout::thread_room;
use super::policy::{Action, Request};
use super::{Actor, ChatService, validate};
use crate::error::ChatError;

/// A typing mark lasts this long unless refreshed.
pub const TYPING_TTL: Duration = Duration::from_secs(5);

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
    /// Records and relays a typing state.
    pub async fn typing(&self, actor: &Actor, payload: Value) -> Result<Done, ChatError> {
        let p: TypingPayload = validate::payload(payload)?;
        validate::id("threadId", &p.thread_id)?;
        let thread = self.threads.require(&p.thread_id).await?;
        self.policy
            .check_access(&Request {
                action: Action::Typing,
                actor,
                thread: &thread,
            })
            .await?;
        if p.is_typing {
            self.state
                .typing_start(&thread.id, &actor.user_id, TYPING_TTL)
                .await?;
        } else {
            self.state.typing_stop(&thread.id, &actor.user_id).await?;
        }
        let payload =
            json!({ "threadId": thread.id, "userId": actor.user_id, "isTyping": p.is_typing });
        self.fanout
            .emit(
                vec![thread_room(&thread.id)],
                actor.connection.as_ref(),
                "chat:typing",
                &payload,
            )
            .await;
        Ok(Done {})
    }
}
