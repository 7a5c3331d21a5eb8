//! `chat:read`: last-read marks (never backwards) and read receipts.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ChatError;
use super::fanout::thread_audience;
use super::{ChatService, validate};
use crate::domain::events::{ChatEvent, EventKind};
use crate::domain::policy::Action;
use crate::domain::server_events::ReadEvent;
use crate::domain::{Actor, now_ms, rfc3339};
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
    /// Moves the caller's last-read mark and tells the thread's audience if it moved.
    pub async fn read(&self, actor: &Actor, payload: Value) -> Result<ReadMark, ChatError> {
        let p: ReadPayload = validate::payload(payload)?;
        let message_id = validate::message_id("messageId", &p.message_id)?;
        let thread = self.authorize(actor, Action::Read, &p.thread_id).await?;
        let now = now_ms();
        let (mark, moved) = match self
            .store
            .mark_read(&thread.id, &actor.user_id, message_id, now, &*self.seal)
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
        // Stored: the relay below happens even past the deadline.
        super::committed();
        if moved {
            let event = ReadEvent {
                thread_id: thread.id.clone(),
                user_id: actor.user_id.clone(),
                message_id: mark.to_string(),
                read_at: rfc3339(now),
            };
            self.fanout
                .emit(
                    thread_audience(&thread),
                    actor.connection.as_ref(),
                    &event.into(),
                )
                .await;
            self.events.publish(
                ChatEvent::new(EventKind::MessageRead, &actor.user_id)
                    .thread(&thread.id)
                    .message(mark),
            );
        }
        Ok(ReadMark {
            last_read_message_id: mark.to_string(),
        })
    }
}
