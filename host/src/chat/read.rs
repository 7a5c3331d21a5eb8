//! `chat:read`: last-read marks (never backwards) and read receipts.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::events::ChatEvent;
use super::fanout::thread_room;
use super::model::{now_ms, rfc3339};
use super::policy::{Action, Request};
use super::{Actor, ChatService, validate};
use crate::error::ChatError;
use crate::store::MarkRead;

/// Payload of `chat:read`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadPayload {
    /// Thread id.
    pub thread_id: String,
    /// Decimal string of the newest message read.
    pub message_id: String,
}

/// Ack of `chat:read`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadMark {
    /// The stored mark, which may be later than the one asked for.
    pub last_read_message_id: String,
}

impl ChatService {
    /// Moves the caller's last-read mark and tells the thread room if it moved.
    pub async fn read(&self, actor: &Actor, payload: Value) -> Result<ReadMark, ChatError> {
        let p: ReadPayload = validate::payload(payload)?;
        validate::id("threadId", &p.thread_id)?;
        let message_id = validate::message_id("messageId", &p.message_id)?;
        let thread = self.threads.require(&p.thread_id).await?;
        self.policy
            .check_access(&Request {
                action: Action::Read,
                actor,
                thread: &thread,
            })
            .await?;
        let now = now_ms();
        let (mark, moved) = match self
            .store
            .mark_read(&thread.id, &actor.user_id, message_id, now)
            .await?
        {
            MarkRead::NotInThread => {
                return Err(ChatError::NotFound(format!(
                    "message {message_id} is not in thread {}",
                    thread.id
                )));
            }
            MarkRead::Marked { mark, moved } => (mark, moved),
        };
        if moved {
            let payload = json!({
                "threadId": thread.id,
                "userId": actor.user_id,
                "messageId": mark.to_string(),
                "readAt": rfc3339(now),
            });
            self.fanout
                .emit(
                    vec![thread_room(&thread.id)],
                    actor.connection.as_ref(),
                    "chat:read",
                    &payload,
                )
                .await;
            self.events.publish(
                ChatEvent::new("message_read", &actor.user_id)
                    .thread(&thread.id)
                    .message(mark),
            );
        }
        Ok(ReadMark {
            last_read_message_id: mark.to_string(),
        })
    }
}
