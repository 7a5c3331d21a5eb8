//! `chat:history`: pages of messages, oldest first.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ChatError;
use super::{ChatService, validate};
use crate::domain::Actor;
use crate::domain::events::{ChatEvent, EventKind};
use crate::domain::model::MessageView;
use crate::domain::policy::Action;

/// Payload of `chat:history`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPayload {
    /// Thread id.
    pub thread_id: String,
    /// Only messages older than this id (decimal string): the page just before it.
    pub before_id: Option<String>,
    /// Only messages newer than this id (decimal string): the page just after it,
    /// for a client catching up by itself. Not with `beforeId`.
    pub after_id: Option<String>,
    /// Page size: default 50, capped to 100.
    pub limit: Option<Value>,
}

/// Ack of `chat:history`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// Oldest first.
    pub messages: Vec<MessageView>,
    /// More messages exist beyond this page: older ones (newer ones with `afterId`).
    pub has_more: bool,
}

impl ChatService {
    /// A page of the thread's history for a participant or an admin.
    pub async fn history(&self, actor: &Actor, payload: Value) -> Result<HistoryPage, ChatError> {
        let p: HistoryPayload = validate::payload(payload)?;
        let before = p
            .before_id
            .as_deref()
            .map(|id| validate::message_id("beforeId", id))
            .transpose()?;
        let after = p
            .after_id
            .as_deref()
            .map(|id| validate::message_id("afterId", id))
            .transpose()?;
        if before.is_some() && after.is_some() {
            return Err(ChatError::invalid(
                "beforeId and afterId exclude each other",
            ));
        }
        let limit = validate::history_limit(p.limit.as_ref())?;
        let thread = self.authorize(actor, Action::History, &p.thread_id).await?;
        let page = match after {
            Some(after) => self.store.history_after(&thread.id, after, limit).await?,
            None => self.store.history(&thread.id, before, limit).await?,
        };
        if !thread.has_participant(&actor.user_id) {
            self.events.publish(
                ChatEvent::new(EventKind::AdminViewedThread, &actor.user_id).thread(&thread.id),
            );
        }
        Ok(HistoryPage {
            messages: page.items.iter().map(MessageView::from).collect(),
            has_more: page.has_more,
        })
    }
}
