//! What happened, for analytics, audit and the events plugins: every kind of
//! the event stream (`chat:logs:events`), listed once.

use super::clock::{Millis, now_ms};
use super::ids::MessageId;

/// Declares [`EventKind`] with its wire names, listed once.
macro_rules! event_kinds {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// The kind of an event-stream entry (its `type` field).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($(#[doc = $doc])* $variant,)*
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &[EventKind] = &[$(EventKind::$variant,)*];

            /// The wire name, e.g. `message_sent`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)*
                }
            }
        }
    };
}

event_kinds! {
    /// A participant's message was stored (`threadId`, `messageId`).
    MessageSent = "message_sent",
    /// A participant's last-read mark moved (`threadId`, `messageId` of the mark).
    MessageRead = "message_read",
    /// A participant joined a thread's room (`threadId`).
    ThreadJoined = "thread_joined",
    /// An admin who is not a participant opened a thread or its history, or the
    /// admin API read one (`GET /api/threads/{id}/messages`, `GET /admin/threads/{id}`)
    /// (`threadId`).
    AdminViewedThread = "admin_viewed_thread",
    /// A user's first socket in the cluster connected.
    UserOnline = "user_online",
    /// A user's last socket in the cluster disconnected.
    UserOffline = "user_offline",
    /// The access policy refused an event: a plugin's deny (a blocked user), or
    /// an admin writing to a thread they are not in (`threadId`).
    AccessDenied = "access_denied",
    /// A send was refused by the rate limit (`threadId`).
    RateLimited = "rate_limited",
    /// A message hook rejected a send (`threadId`).
    PluginRejected = "plugin_rejected",
    /// The service API created a thread (`threadId`).
    ThreadCreated = "thread_created",
    /// The service API added a participant (`threadId`, `subjectId`).
    ParticipantAdded = "participant_added",
    /// The service API created or updated a profile (`subjectId`).
    UserUpserted = "user_upserted",
    /// An admin read a thread's audit trail (`threadId`).
    AuditViewed = "audit_viewed",
    /// An admin put a thread under audit (`threadId`).
    AuditStarted = "audit_started",
    /// An admin ended a thread's audit (`threadId`).
    AuditEnded = "audit_ended",
    /// An admin verified a thread's audit trail (`threadId`).
    AuditVerified = "audit_verified",
    /// An admin exported a thread: history, receipts and audit trail (`threadId`).
    ThreadExported = "thread_exported",
    /// An admin uploaded a plugin version (`subjectId` = plugin).
    PluginUploaded = "plugin_uploaded",
    /// An admin enabled a plugin (`subjectId` = plugin).
    PluginEnabled = "plugin_enabled",
    /// An admin disabled a plugin (`subjectId` = plugin).
    PluginDisabled = "plugin_disabled",
    /// An admin replaced a plugin's configuration (`subjectId` = plugin).
    PluginConfigured = "plugin_configured",
    /// An admin unloaded a plugin (`subjectId` = plugin).
    PluginRemoved = "plugin_removed",
    /// An admin wrote a plugin's key-value entry (`subjectId` = plugin).
    PluginKvSet = "plugin_kv_set",
    /// An admin deleted a plugin's key-value entry (`subjectId` = plugin).
    PluginKvDeleted = "plugin_kv_deleted",
}

/// Something that happened, for analytics and audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEvent {
    /// What happened.
    pub kind: EventKind,
    /// Who caused it.
    pub user_id: String,
    /// The thread, if any.
    pub thread_id: Option<String>,
    /// The message, if any.
    pub message_id: Option<MessageId>,
    /// The user (or plugin) an admin action was about, if any.
    pub subject_id: Option<String>,
    /// When.
    pub at_ms: Millis,
}

impl ChatEvent {
    /// An event of `kind` caused by `user` now.
    pub fn new(kind: EventKind, user: &str) -> Self {
        Self {
            kind,
            user_id: user.to_owned(),
            thread_id: None,
            message_id: None,
            subject_id: None,
            at_ms: now_ms(),
        }
    }

    /// Sets the thread.
    pub fn thread(mut self, thread: &str) -> Self {
        self.thread_id = Some(thread.to_owned());
        self
    }

    /// Sets the message.
    pub fn message(mut self, id: MessageId) -> Self {
        self.message_id = Some(id);
        self
    }

    /// Sets the user (or plugin) an admin action was about.
    pub fn subject(mut self, subject: &str) -> Self {
        self.subject_id = Some(subject.to_owned());
        self
    }
}

/// Sees every event after it happened (e.g. the events plugins). Must not block.
pub trait EventObserver: Send + Sync {
    /// Called once per event by the event writer.
    fn observe(&self, event: &ChatEvent);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_snake_case_names() {
        let names: std::collections::BTreeSet<_> =
            EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
        assert!(
            names
                .iter()
                .all(|n| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }
}
