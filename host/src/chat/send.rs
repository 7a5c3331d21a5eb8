//! `chat:send-message`: the full chain, from validation to the event stream.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::ChatError;
use super::fanout::{thread_room, user_room};
use super::{ChatService, validate};
use crate::domain::events::{ChatEvent, EventKind};
use crate::domain::model::{Message, MessageView};
use crate::domain::policy::{Action, Request};
use crate::domain::server_events::{MessageEvent, ServerEvent};
use crate::domain::{Actor, now_ms};
use crate::state::RateDecision;
use crate::store::{InsertMessage, NewMessage, NewReceipt, NewRefusal};

/// How long a recipient's devices have to acknowledge a live `chat:message`
/// before it counts as not delivered (and is sent again on their next connect).
pub const DELIVERY_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Payload of `chat:send-message`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendPayload {
    /// Thread id.
    pub thread_id: String,
    /// Body, trimmed before use.
    pub body: String,
    /// Idempotency key of the sender.
    pub client_message_id: String,
}

/// Ack of `chat:send-message`.
#[derive(Debug, Serialize)]
pub struct Sent {
    /// The stored message.
    pub message: MessageView,
}

fn ceil_millis(d: Duration) -> u64 {
    d.as_micros().div_ceil(1000).try_into().unwrap_or(u64::MAX)
}

/// SHA-256 of what the sender asked for: the thread and the trimmed body.
fn request_hash(thread: &str, body: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(thread.as_bytes());
    hasher.update([0]);
    hasher.update(body.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A repeated `clientMessageId` returns the stored message only for the same thread
/// and body as first asked (message hooks may have rewritten the stored body).
fn replay(existing: Message, hash: &str) -> Result<Sent, ChatError> {
    if existing.request_hash.as_deref() == Some(hash) {
        Ok(Sent {
            message: MessageView::from(&existing),
        })
    } else {
        Err(ChatError::invalid(
            "clientMessageId was already used for another message",
        ))
    }
}

impl ChatService {
    /// Stores a message and delivers it to every participant (queued for offline ones).
    pub async fn send_message(&self, actor: &Actor, payload: Value) -> Result<Sent, ChatError> {
        let p: SendPayload = validate::payload(payload)?;
        validate::id("threadId", &p.thread_id)?;
        validate::client_message_id(&p.client_message_id)?;
        let body = validate::body(&p.body, self.limits.max_body_chars)?;
        let hash = request_hash(&p.thread_id, &body);
        let thread = self.authorize(actor, Action::Send, &p.thread_id).await?;
        let req = Request {
            action: Action::Send,
            actor,
            thread: &thread,
        };

        if let Some(existing) = self
            .store
            .message_by_client_id(&actor.user_id, &p.client_message_id)
            .await?
        {
            return replay(existing, &hash);
        }
        let limit = self.policy.rate_limit(&req).await;
        if let RateDecision::Limited { retry_after } = self
            .state
            .rate_limit_hit(&actor.user_id, limit.limit, limit.window)
            .await?
        {
            self.events
                .publish(ChatEvent::new(EventKind::RateLimited, &actor.user_id).thread(&thread.id));
            return Err(ChatError::RateLimited {
                retry_after_ms: ceil_millis(retry_after),
            });
        }
        let hooked = match self.policy.run_hooks(&req, body).await {
            Ok(hooked) => hooked,
            Err(refusal) => {
                if let Some(by) = refusal.by {
                    let recorded = NewRefusal {
                        thread_id: thread.id.clone(),
                        user_id: actor.user_id.clone(),
                        by,
                        reason: refusal.reason.clone(),
                        request_hash: hash.clone(),
                        at_ms: now_ms(),
                    };
                    if let Err(e) = self.store.record_refusal(&recorded, &*self.seal).await {
                        tracing::warn!(thread = %thread.id, error = %e, "a plugin's refusal was not recorded");
                    }
                }
                self.events.publish(
                    ChatEvent::new(EventKind::PluginRejected, &actor.user_id).thread(&thread.id),
                );
                return Err(ChatError::Rejected(refusal.reason));
            }
        };

        let recipients: Vec<String> = thread
            .participant_ids()
            .filter(|u| *u != actor.user_id)
            .map(str::to_owned)
            .collect();
        let online = self.state.presence_online(&recipients).await?;
        // Delivered only once a device of the recipient acknowledges the message.
        let mut receipts: Vec<NewReceipt> = recipients
            .iter()
            .map(|user| NewReceipt {
                user_id: user.clone(),
                delivered: false,
                read: false,
            })
            .collect();
        if thread.has_participant(&actor.user_id) {
            receipts.push(NewReceipt {
                user_id: actor.user_id.clone(),
                delivered: true,
                read: true,
            });
        }
        let new = NewMessage {
            thread_id: thread.id.clone(),
            sender_id: actor.user_id.clone(),
            body: hooked.body,
            client_message_id: p.client_message_id,
            created_at_ms: now_ms(),
            request_hash: hash.clone(),
            rewritten_by: hooked.rewritten_by,
        };
        let message = match self
            .store
            .insert_message(&new, &receipts, &*self.seal)
            .await?
        {
            InsertMessage::Inserted(message) => message,
            // A concurrent send with the same key won the race.
            InsertMessage::Existing(existing) => return replay(existing, &hash),
        };
        // Stored: the fan-out below happens even past the deadline.
        super::committed();
        let view = MessageView::from(&message);

        let offline: Vec<String> = recipients
            .iter()
            .zip(online)
            .filter(|(_, on)| !on)
            .map(|(u, _)| u.clone())
            .collect();
        if !offline.is_empty() {
            let json = serde_json::to_string(&view).map_err(|e| ChatError::Internal(e.into()))?;
            match self.state.offline_push(&offline, &thread.id, &json).await {
                Ok(()) => {
                    metrics::counter!("chat_offline_queued_total").increment(offline.len() as u64)
                }
                Err(e) => {
                    tracing::warn!(error = %e, message = message.id, "offline queue not written; history has the message")
                }
            }
        }
        let event: ServerEvent = MessageEvent {
            message: view.clone(),
        }
        .into();
        // Each recipient's devices get it with an ack request; the sender's other
        // devices and the other sockets in the thread room (admins) get it plainly.
        let recipient_rooms: Vec<String> = recipients.iter().map(|u| user_room(u)).collect();
        self.fanout
            .emit_except(
                vec![user_room(&actor.user_id), thread_room(&thread.id)],
                recipient_rooms,
                actor.connection.as_ref(),
                &event,
            )
            .await;
        let id = message.id;
        for user in recipients {
            let (fanout, marks, event) = (self.fanout.clone(), self.marks.clone(), event.clone());
            self.deliveries.spawn(async move {
                if fanout.deliver(&user, &event, DELIVERY_ACK_TIMEOUT).await {
                    marks.delivered(&user, &[id]);
                }
            });
        }

        if matches!(
            self.state.typing_stop(&thread.id, &actor.user_id).await,
            Ok(true)
        ) {
            self.relay_typing(actor, &thread, false).await;
        }
        metrics::counter!("chat_messages_sent_total").increment(1);
        self.events.publish(
            ChatEvent::new(EventKind::MessageSent, &actor.user_id)
                .thread(&thread.id)
                .message(message.id),
        );
        Ok(Sent { message: view })
    }
}
