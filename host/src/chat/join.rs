//! `chat:join` and `chat:leave`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ChatError;
use super::{ChatService, validate};
use crate::domain::Actor;
use crate::domain::Role;
use crate::domain::events::{ChatEvent, EventKind};
use crate::domain::model::{MessageView, ThreadMeta};
use crate::domain::policy::Action;

/// Payload naming a thread.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadRef {
    /// Thread id.
    pub thread_id: String,
}

/// A participant as `chat:join` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantView {
    /// User id.
    pub user_id: String,
    /// Display name.
    pub display_name: String,
    /// Picture URL.
    pub avatar_url: Option<String>,
    /// Marketplace role.
    pub role: Role,
    /// At least one socket connected.
    pub online: bool,
    /// The participant's last-read mark.
    pub last_read_message_id: Option<String>,
}

/// The `thread` of a `chat:join` ack.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadView {
    /// Thread id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Participants with presence and read marks.
    pub participants: Vec<ParticipantView>,
    /// Newest message.
    pub last_message: Option<MessageView>,
    /// Messages of others after the caller's mark.
    pub unread_count: i64,
    /// True for an admin watching a thread they are not part of.
    pub read_only: bool,
}

/// Ack of `chat:join`.
#[derive(Debug, Serialize)]
pub struct Joined {
    /// The thread.
    pub thread: ThreadView,
}

impl ChatService {
    /// Checks the caller may watch the thread and returns its view; the transport
    /// then puts the socket in the thread room.
    pub async fn join(&self, actor: &Actor, payload: Value) -> Result<Joined, ChatError> {
        let ThreadRef { thread_id } = validate::payload(payload)?;
        let thread = self.authorize(actor, Action::Join, &thread_id).await?;
        let read_only = !thread.has_participant(&actor.user_id);
        let view = self.thread_view(&thread, actor, read_only).await?;
        let kind = if read_only {
            EventKind::AdminViewedThread
        } else {
            EventKind::ThreadJoined
        };
        self.events
            .publish(ChatEvent::new(kind, &actor.user_id).thread(&thread.id));
        Ok(Joined { thread: view })
    }

    /// Checks a `chat:leave` names a thread the actor may know of (`not_found`
    /// otherwise, as for every thread request) and returns it; the transport then
    /// takes the socket out of the thread room (leaving a thread the socket never
    /// joined is fine).
    pub async fn leave(&self, actor: &Actor, payload: Value) -> Result<String, ChatError> {
        let ThreadRef { thread_id } = validate::payload(payload)?;
        Ok(self.visible_thread(actor, &thread_id).await?.id)
    }

    async fn thread_view(
        &self,
        thread: &ThreadMeta,
        actor: &Actor,
        read_only: bool,
    ) -> Result<ThreadView, ChatError> {
        let ids: Vec<String> = thread.participant_ids().map(str::to_owned).collect();
        let (activity, online) = tokio::join!(
            self.store.thread_activity(&thread.id, &actor.user_id),
            self.state.presence_online(&ids)
        );
        let activity = activity?;
        let online = online.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "presence unknown; showing participants offline");
            vec![false; ids.len()]
        });
        let participants = thread
            .participants
            .iter()
            .zip(online)
            .map(|(p, online)| ParticipantView {
                user_id: p.user_id.clone(),
                display_name: p.display_name.clone(),
                avatar_url: p.avatar_url.clone(),
                role: p.role,
                online,
                last_read_message_id: activity
                    .last_reads
                    .get(&p.user_id)
                    .copied()
                    .flatten()
                    .map(|id| id.to_string()),
            })
            .collect();
        Ok(ThreadView {
            id: thread.id.clone(),
            title: thread.title.clone(),
            participants,
            last_message: activity.last_message.as_ref().map(MessageView::from),
            unread_count: activity.unread_count,
            read_only,
        })
    }
}
