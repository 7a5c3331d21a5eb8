//! Use cases of the service API (`/api`): profiles, threads, participants and
//! the full history with receipts for disputes. Each is an event on the stream.

use rand::distr::{Alphanumeric, SampleString};
use serde_json::Value;

use super::error::ChatError;
use super::{ChatService, validate};
use crate::domain::events::{ChatEvent, EventKind};
use crate::domain::model::{Page, UserProfile};
use crate::domain::policy::Action;
use crate::domain::{Actor, Millis, now_ms};
use crate::store::{AddParticipant, CreateThread, MessageWithReceipts, NewThread};

/// Messages read at once by an export.
const EXPORT_PAGE: u32 = 100;

/// A created thread, as the API returns it.
#[derive(Debug, Clone)]
pub struct CreatedThread {
    /// Thread id (generated when not given).
    pub id: String,
    /// Title.
    pub title: String,
    /// Participants.
    pub participant_ids: Vec<String>,
    /// Creation time.
    pub created_at_ms: Millis,
}

fn text(field: &str, value: &str, max: usize) -> Result<(), ChatError> {
    let n = value.trim().chars().count();
    if n == 0 || value.chars().count() > max {
        return Err(ChatError::invalid(format!(
            "{field} must be 1-{max} characters"
        )));
    }
    Ok(())
}

impl ChatService {
    /// Creates or updates a user profile.
    pub async fn upsert_user(&self, actor: &Actor, user: UserProfile) -> Result<(), ChatError> {
        validate::id("id", &user.id)?;
        text("displayName", &user.display_name, 200)?;
        if let Some(url) = &user.avatar_url {
            validate::avatar_url(url, self.limits.http_avatars)?;
        }
        self.store.upsert_user(&user, now_ms()).await?;
        // Stored: the cache is dropped even past the deadline.
        super::committed();
        // Cached thread metadata carries profiles: drop it for this user's threads.
        for thread in self.store.threads_of_user(&user.id).await? {
            self.threads.invalidate(&thread).await?;
        }
        self.events
            .publish(ChatEvent::new(EventKind::UserUpserted, &actor.user_id).subject(&user.id));
        Ok(())
    }

    /// Creates a thread; the id is generated when absent.
    pub async fn create_thread(
        &self,
        actor: &Actor,
        id: Option<String>,
        title: String,
        mut participant_ids: Vec<String>,
    ) -> Result<CreatedThread, ChatError> {
        let id =
            id.unwrap_or_else(|| format!("t_{}", Alphanumeric.sample_string(&mut rand::rng(), 16)));
        validate::id("id", &id)?;
        text("title", &title, 500)?;
        for user in &participant_ids {
            validate::id("participantIds[]", user)?;
        }
        let mut seen = std::collections::HashSet::new();
        participant_ids.retain(|u| seen.insert(u.clone()));
        let thread = NewThread {
            id,
            title,
            participant_ids,
            created_at_ms: now_ms(),
        };
        match self.store.create_thread(&thread).await? {
            CreateThread::Created => {}
            CreateThread::Conflict => {
                return Err(ChatError::Conflict(format!(
                    "thread {} already exists",
                    thread.id
                )));
            }
            CreateThread::UnknownUsers(users) => return Err(ChatError::UnknownUsers(users)),
        }
        self.events
            .publish(ChatEvent::new(EventKind::ThreadCreated, &actor.user_id).thread(&thread.id));
        Ok(CreatedThread {
            id: thread.id,
            title: thread.title,
            participant_ids: thread.participant_ids,
            created_at_ms: thread.created_at_ms,
        })
    }

    /// Adds a participant and drops the cached thread metadata.
    pub async fn add_participant(
        &self,
        actor: &Actor,
        thread: &str,
        user: &str,
    ) -> Result<(), ChatError> {
        validate::id("threadId", thread)?;
        validate::id("userId", user)?;
        match self.store.add_participant(thread, user, now_ms()).await? {
            // Stored: the cache is dropped even past the deadline.
            AddParticipant::Added => super::committed(),
            AddParticipant::ThreadNotFound => {
                return Err(ChatError::NotFound(format!(
                    "thread {thread} does not exist"
                )));
            }
            AddParticipant::UnknownUser => {
                return Err(ChatError::UnknownUsers(vec![user.to_owned()]));
            }
        }
        self.threads.invalidate(thread).await?;
        self.events.publish(
            ChatEvent::new(EventKind::ParticipantAdded, &actor.user_id)
                .thread(thread)
                .subject(user),
        );
        Ok(())
    }

    /// Every message of a thread with its receipts, oldest first, for an
    /// export (read a page at a time); the export is recorded (`thread_exported`).
    pub async fn export_history(
        &self,
        actor: &Actor,
        thread: &str,
    ) -> Result<Vec<MessageWithReceipts>, ChatError> {
        validate::id("threadId", thread)?;
        self.authorize(actor, Action::History, thread).await?;
        let mut messages = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .store
                .history_with_receipts(thread, before, EXPORT_PAGE)
                .await?;
            before = page.items.first().map(|m| m.message.id);
            messages.splice(0..0, page.items);
            if !page.has_more || before.is_none() {
                break;
            }
        }
        self.events
            .publish(ChatEvent::new(EventKind::ThreadExported, &actor.user_id).thread(thread));
        Ok(messages)
    }

    /// The full history with every receipt, for disputes.
    pub async fn admin_history(
        &self,
        actor: &Actor,
        thread: &str,
        before: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Page<MessageWithReceipts>, ChatError> {
        let before = before
            .map(|id| validate::message_id("beforeId", id))
            .transpose()?;
        let limit = limit
            .map(|l| {
                l.parse::<i64>()
                    .map(Value::from)
                    .map_err(|_| ChatError::invalid("limit must be an integer of at least 1"))
            })
            .transpose()?;
        let limit = validate::history_limit(limit.as_ref())?;
        self.authorize(actor, Action::History, thread).await?;
        let page = self
            .store
            .history_with_receipts(thread, before, limit)
            .await?;
        self.events
            .publish(ChatEvent::new(EventKind::AdminViewedThread, &actor.user_id).thread(thread));
        Ok(page)
    }
}
