//! Use cases of the admin console's API (`/admin/threads`, `/admin/users`):
//! thread and user search and details, read-only, for admins and the service
//! token. The filters arrive as the caller wrote them and are checked here;
//! each bad one is `invalid_payload` naming its field. Every read of one
//! thread is an `admin_viewed_thread` on the event stream.

use std::collections::HashMap;

use super::error::ChatError;
use super::{ChatService, validate};
use crate::domain::events::{ChatEvent, EventKind};
use crate::domain::model::{Message, UserProfile};
use crate::domain::{Actor, MessageId, Millis, Role, is_valid_id, parse_rfc3339};
use crate::store::{
    ActivityCursor, DecisionRecord, ParticipantMatch, ParticipantRecord, ThreadRecord,
    ThreadSearch, UserSearch,
};

/// Most `participant` terms of one thread search.
pub const PARTICIPANT_TERMS_MAX: usize = 5;
/// Longest `participant` term and user `q`, in code points (a display name's limit).
pub const TERM_MAX_CHARS: usize = 200;
/// Longest `title` filter, in code points (a title's limit).
pub const TITLE_MAX_CHARS: usize = 500;
/// Page size when the caller gives no `limit`.
pub const PAGE_DEFAULT: u32 = 25;
/// Largest `limit`.
pub const PAGE_MAX: u32 = 100;
/// Most threads shown with one user (the newest activity first).
pub const USER_THREADS_MAX: u32 = 100;

/// The filters of a thread search, as the caller wrote them.
#[derive(Debug, Clone, Default)]
pub struct ThreadQuery {
    /// Up to [`PARTICIPANT_TERMS_MAX`] terms, each a user id or the start of a
    /// display name (ignoring case); the threads have all of them.
    pub participants: Vec<String>,
    /// Words, each the start of a word of the title (ignoring case).
    pub title: Option<String>,
    /// RFC 3339: last activity at or after this time.
    pub from: Option<String>,
    /// RFC 3339: last activity before this time.
    pub to: Option<String>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to [`PAGE_MAX`] ([`PAGE_DEFAULT`]).
    pub limit: Option<String>,
}

/// The filters of a user search, as the caller wrote them.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// The start of the user id (as is) or of the display name (ignoring
    /// case); every user when absent or blank.
    pub q: Option<String>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to [`PAGE_MAX`] ([`PAGE_DEFAULT`]).
    pub limit: Option<String>,
}

/// A thread in a search result.
#[derive(Debug, Clone)]
pub struct ThreadOverview {
    /// The thread with its activity.
    pub thread: ThreadRecord,
    /// Its participants, in the order they were added.
    pub participants: Vec<ParticipantRecord>,
    /// Its newest message.
    pub last_message: Option<Message>,
}

/// One page of a thread search.
#[derive(Debug, Clone)]
pub struct ThreadListing {
    /// Newest activity first, then by id, descending.
    pub threads: Vec<ThreadOverview>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// What the state store knows of a user's connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Connections {
    /// Open sockets: the cluster's with Redis, this instance's in memory.
    pub open: i64,
    /// When the user's last socket closed, if recorded.
    pub last_seen_at_ms: Option<Millis>,
}

impl Connections {
    /// At least one socket is open.
    pub fn online(&self) -> bool {
        self.open > 0
    }
}

/// A participant with presence.
#[derive(Debug, Clone)]
pub struct ParticipantDetail {
    /// Profile and read mark.
    pub participant: ParticipantRecord,
    /// Presence.
    pub connections: Connections,
}

/// One thread in full.
#[derive(Debug, Clone)]
pub struct ThreadDetail {
    /// The thread with its activity.
    pub thread: ThreadRecord,
    /// Its participants, in the order they were added, with presence.
    pub participants: Vec<ParticipantDetail>,
    /// The newest [`DECISIONS_SHOWN`] plugin decisions about its messages, newest first.
    pub decisions: Vec<DecisionRecord>,
}

/// Plugin decisions a thread's detail shows.
pub const DECISIONS_SHOWN: u32 = 500;

/// A user with presence.
#[derive(Debug, Clone)]
pub struct UserOverview {
    /// The stored profile.
    pub profile: UserProfile,
    /// Presence.
    pub connections: Connections,
}

/// One page of a user search.
#[derive(Debug, Clone)]
pub struct UserListing {
    /// By id.
    pub users: Vec<UserOverview>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One user in full.
#[derive(Debug, Clone)]
pub struct UserDetail {
    /// Profile and presence.
    pub user: UserOverview,
    /// The newest [`USER_THREADS_MAX`] of the user's threads by activity.
    pub threads: Vec<ThreadRecord>,
}

/// Only admins (an admin JWT or the service token) use the console's API.
fn admin_only(actor: &Actor) -> Result<(), ChatError> {
    if actor.role == Role::Admin {
        Ok(())
    } else {
        Err(ChatError::Forbidden("admin role required".into()))
    }
}

/// A page size: digits only, 1 to [`PAGE_MAX`]; [`PAGE_DEFAULT`] when absent.
fn page_limit(limit: Option<&str>) -> Result<u32, ChatError> {
    let Some(raw) = limit else {
        return Ok(PAGE_DEFAULT);
    };
    let digits = !raw.is_empty() && raw.len() <= 3 && raw.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| raw.parse::<u32>().ok())
        .flatten()
        .filter(|n| (1..=PAGE_MAX).contains(n))
        .ok_or_else(|| ChatError::invalid(format!("limit must be an integer from 1 to {PAGE_MAX}")))
}

fn instant(field: &str, value: &str) -> Result<Millis, ChatError> {
    parse_rfc3339(value).ok_or_else(|| {
        ChatError::invalid(format!(
            "{field} must be an RFC 3339 date-time such as 2026-01-31T09:00:00Z"
        ))
    })
}

/// Text of at most `max` code points with something besides whitespace,
/// trimmed.
fn term<'a>(field: &str, value: &'a str, max: usize) -> Result<&'a str, ChatError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || value.chars().count() > max {
        return Err(ChatError::invalid(format!(
            "{field} must be 1-{max} characters, not only whitespace"
        )));
    }
    Ok(trimmed)
}

/// The words of a title filter: the runs of letters, digits and `_` (what the
/// full-text indexes call words).
fn title_words(title: &str) -> Result<Vec<String>, ChatError> {
    if title.chars().count() > TITLE_MAX_CHARS {
        return Err(ChatError::invalid(format!(
            "title must be at most {TITLE_MAX_CHARS} characters"
        )));
    }
    let words: Vec<String> = title
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    if words.is_empty() {
        return Err(ChatError::invalid("title must hold a letter or a digit"));
    }
    Ok(words)
}

/// A thread page's cursor: `<last activity ms>:<thread id>` of its last thread.
fn thread_cursor(thread: &ThreadRecord) -> String {
    format!("{}:{}", thread.last_activity_at_ms, thread.id)
}

fn parse_thread_cursor(value: &str) -> Result<ActivityCursor, ChatError> {
    value
        .split_once(':')
        .filter(|(ms, id)| {
            (1..=15).contains(&ms.len())
                && ms.bytes().all(|b| b.is_ascii_digit())
                && is_valid_id(id)
        })
        .and_then(|(ms, id)| {
            Some(ActivityCursor {
                last_activity_at_ms: ms.parse().ok()?,
                thread_id: id.to_owned(),
            })
        })
        .ok_or_else(|| ChatError::invalid("cursor must be the nextCursor of a previous page"))
}

/// The store's search for a caller's thread filters.
fn thread_search(query: &ThreadQuery) -> Result<ThreadSearch, ChatError> {
    if query.participants.len() > PARTICIPANT_TERMS_MAX {
        return Err(ChatError::invalid(format!(
            "participant may be given at most {PARTICIPANT_TERMS_MAX} times"
        )));
    }
    let participants = query
        .participants
        .iter()
        .map(|p| {
            term("participant", p, TERM_MAX_CHARS)
                .map(|t| ParticipantMatch::UserOrNamePrefix(t.to_owned()))
        })
        .collect::<Result<_, _>>()?;
    Ok(ThreadSearch {
        participants,
        title_words: query
            .title
            .as_deref()
            .map(title_words)
            .transpose()?
            .unwrap_or_default(),
        active_from: query
            .from
            .as_deref()
            .map(|v| instant("from", v))
            .transpose()?,
        active_before: query.to.as_deref().map(|v| instant("to", v)).transpose()?,
        after: query
            .cursor
            .as_deref()
            .map(parse_thread_cursor)
            .transpose()?,
        limit: page_limit(query.limit.as_deref())?,
    })
}

/// The store's search for a caller's user filters.
fn user_search(query: &UserQuery) -> Result<UserSearch, ChatError> {
    let prefix = match query.q.as_deref() {
        Some(q) if q.chars().count() > TERM_MAX_CHARS => {
            return Err(ChatError::invalid(format!(
                "q must be at most {TERM_MAX_CHARS} characters"
            )));
        }
        Some(q) => Some(q.trim()).filter(|q| !q.is_empty()).map(str::to_owned),
        None => None,
    };
    let after = query
        .cursor
        .as_deref()
        .map(|c| {
            validate::id("cursor", c)
                .map_err(|_| ChatError::invalid("cursor must be the nextCursor of a previous page"))
                .map(|()| c.to_owned())
        })
        .transpose()?;
    Ok(UserSearch {
        prefix,
        after,
        limit: page_limit(query.limit.as_deref())?,
    })
}

impl ChatService {
    /// Threads by participants, title words and last activity, newest activity
    /// first, a page at a time.
    pub async fn admin_threads(
        &self,
        actor: &Actor,
        query: &ThreadQuery,
    ) -> Result<ThreadListing, ChatError> {
        admin_only(actor)?;
        let search = thread_search(query)?;
        let page = self.store.search_threads(&search).await?;
        let ids: Vec<String> = page.items.iter().map(|t| t.id.clone()).collect();
        let newest: Vec<MessageId> = page
            .items
            .iter()
            .filter_map(|t| t.last_message_id)
            .collect();
        let (mut participants, messages) = tokio::try_join!(
            self.store.participants_of(&ids),
            self.store.messages_by_id(&newest)
        )?;
        let mut messages: HashMap<MessageId, Message> =
            messages.into_iter().map(|m| (m.id, m)).collect();
        let next_cursor = page
            .has_more
            .then(|| page.items.last().map(thread_cursor))
            .flatten();
        let threads = page
            .items
            .into_iter()
            .map(|thread| ThreadOverview {
                participants: participants.remove(&thread.id).unwrap_or_default(),
                last_message: thread.last_message_id.and_then(|id| messages.remove(&id)),
                thread,
            })
            .collect();
        Ok(ThreadListing {
            threads,
            next_cursor,
        })
    }

    /// One thread with its participants' read marks and presence; recorded as
    /// `admin_viewed_thread` by the caller.
    pub async fn admin_thread(&self, actor: &Actor, id: &str) -> Result<ThreadDetail, ChatError> {
        admin_only(actor)?;
        validate::id("id", id)?;
        let thread = self
            .store
            .thread_record(id)
            .await?
            .ok_or_else(|| ChatError::NotFound(format!("thread {id} does not exist")))?;
        let (mut participants, decisions) = tokio::try_join!(
            self.store.participants_of(std::slice::from_ref(&thread.id)),
            self.store.decisions_of_thread(&thread.id, DECISIONS_SHOWN)
        )?;
        let participants = participants.remove(&thread.id).unwrap_or_default();
        let users: Vec<String> = participants
            .iter()
            .map(|p| p.profile.user_id.clone())
            .collect();
        let connections = self.connections(&users).await;
        self.events
            .publish(ChatEvent::new(EventKind::AdminViewedThread, &actor.user_id).thread(id));
        Ok(ThreadDetail {
            thread,
            participants: participants
                .into_iter()
                .zip(connections)
                .map(|(participant, connections)| ParticipantDetail {
                    participant,
                    connections,
                })
                .collect(),
            decisions,
        })
    }

    /// Users by id or display-name prefix, by id, a page at a time.
    pub async fn admin_users(
        &self,
        actor: &Actor,
        query: &UserQuery,
    ) -> Result<UserListing, ChatError> {
        admin_only(actor)?;
        let search = user_search(query)?;
        let page = self.store.search_users(&search).await?;
        let ids: Vec<String> = page.items.iter().map(|u| u.id.clone()).collect();
        let connections = self.connections(&ids).await;
        let next_cursor = page
            .has_more
            .then(|| page.items.last().map(|u| u.id.clone()))
            .flatten();
        Ok(UserListing {
            users: page
                .items
                .into_iter()
                .zip(connections)
                .map(|(profile, connections)| UserOverview {
                    profile,
                    connections,
                })
                .collect(),
            next_cursor,
        })
    }

    /// One user with presence, connections and their newest threads.
    pub async fn admin_user(&self, actor: &Actor, id: &str) -> Result<UserDetail, ChatError> {
        admin_only(actor)?;
        validate::id("id", id)?;
        let profile = self
            .store
            .user(id)
            .await?
            .ok_or_else(|| ChatError::NotFound(format!("user {id} does not exist")))?;
        let search = ThreadSearch {
            participants: vec![ParticipantMatch::User(profile.id.clone())],
            limit: USER_THREADS_MAX,
            ..ThreadSearch::default()
        };
        let (threads, connections) = tokio::join!(
            self.store.search_threads(&search),
            self.connections(std::slice::from_ref(&profile.id))
        );
        Ok(UserDetail {
            user: UserOverview {
                profile,
                connections: connections.into_iter().next().unwrap_or_default(),
            },
            threads: threads?.items,
        })
    }

    /// What the state store knows of each user's connections. A state store
    /// that does not answer shows them offline and never seen (logged), as
    /// `chat:join` does, rather than failing the read.
    async fn connections(&self, users: &[String]) -> Vec<Connections> {
        let (open, seen) = tokio::join!(
            self.state.presence_counts(users),
            self.state.last_seen(users)
        );
        let open = open.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "presence unknown; showing users offline");
            vec![0; users.len()]
        });
        let seen = seen.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "last-seen times unknown");
            vec![None; users.len()]
        });
        open.into_iter()
            .zip(seen)
            .map(|(open, last_seen_at_ms)| Connections {
                open,
                last_seen_at_ms,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(f: impl FnOnce(&mut ThreadQuery)) -> ThreadQuery {
        let mut q = ThreadQuery::default();
        f(&mut q);
        q
    }

    fn refused(q: &ThreadQuery) -> String {
        let e = thread_search(q).expect_err("refused");
        assert_eq!(e.code(), "invalid_payload");
        e.to_string()
    }

    #[test]
    fn thread_filters_are_checked_and_name_their_field() {
        let ok = thread_search(&query(|q| {
            q.participants = vec![" Jane ".into(), "u_1".into()];
            q.title = Some("Logo, re-design!".into());
            q.from = Some("2026-01-01T00:00:00Z".into());
            q.cursor = Some("1767225600000:t_1:x".into());
        }))
        .unwrap();
        assert_eq!(
            ok.participants,
            vec![
                ParticipantMatch::UserOrNamePrefix("Jane".into()),
                ParticipantMatch::UserOrNamePrefix("u_1".into())
            ]
        );
        assert_eq!(ok.title_words, ["Logo", "re", "design"]);
        assert_eq!(ok.active_from, Some(1_767_225_600_000));
        assert_eq!(
            ok.after,
            Some(ActivityCursor {
                last_activity_at_ms: 1_767_225_600_000,
                thread_id: "t_1:x".into()
            })
        );
        assert_eq!(ok.limit, PAGE_DEFAULT);

        for (bad, field) in [
            (
                query(|q| q.participants = vec!["a".into(); 6]),
                "participant",
            ),
            (query(|q| q.participants = vec!["  ".into()]), "participant"),
            (
                query(|q| q.participants = vec!["x".repeat(201)]),
                "participant",
            ),
            (query(|q| q.title = Some("-- !".into())), "title"),
            (query(|q| q.title = Some("w".repeat(501))), "title"),
            (query(|q| q.from = Some("2026-01-01".into())), "from"),
            (query(|q| q.to = Some("tomorrow".into())), "to"),
            (query(|q| q.cursor = Some("x:t".into())), "cursor"),
            (query(|q| q.cursor = Some("12:bad id".into())), "cursor"),
            (query(|q| q.limit = Some("0".into())), "limit"),
            (query(|q| q.limit = Some("101".into())), "limit"),
            (query(|q| q.limit = Some("+5".into())), "limit"),
        ] {
            let message = refused(&bad);
            assert!(message.starts_with(field), "{bad:?}: {message}");
        }
        assert_eq!(
            thread_search(&query(|q| q.limit = Some("100".into())))
                .unwrap()
                .limit,
            100
        );
    }

    #[test]
    fn user_filters_are_checked() {
        let blank = user_search(&UserQuery {
            q: Some("  ".into()),
            ..UserQuery::default()
        })
        .unwrap();
        assert_eq!(blank.prefix, None, "a blank q lists everyone");
        for bad in [
            UserQuery {
                cursor: Some("bad id".into()),
                ..UserQuery::default()
            },
            UserQuery {
                q: Some("q".repeat(201)),
                ..UserQuery::default()
            },
            UserQuery {
                limit: Some("x".into()),
                ..UserQuery::default()
            },
        ] {
            assert_eq!(
                user_search(&bad).unwrap_err().code(),
                "invalid_payload",
                "{bad:?}"
            );
        }
    }
}
