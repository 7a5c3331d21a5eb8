//! The admin console's read API (`/admin/threads`, `/admin/users`): thread and
//! user search and details. Decodes, calls the use cases of
//! [`chat::admin`](crate::chat::admin), encodes.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Array, ArrayBuilder, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};

use super::api::AdminMessage;
use super::auth::ServiceCaller;
use super::error::{Body, ErrorBody, ErrorCode};
use super::plugins::AuditEntryView;
use super::{ApiError, HttpContext};
use crate::chat::admin::{
    Connections, PARTICIPANT_TERMS_MAX, ThreadDetail, ThreadListing, ThreadOverview, ThreadQuery,
    UserDetail, UserListing, UserOverview, UserQuery,
};
use crate::domain::{Role, rfc3339};
use crate::plugins::admin::Verification;
use crate::store::{DecisionRecord, ThreadAudit, ThreadRecord};

/// The filters of `GET /admin/threads`, decoded from the query string (where
/// `participant` may repeat). Every filter given must hold.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThreadSearchParams {
    /// The participant terms ([`PARTICIPANT_DESCRIPTION`]; the schema, with
    /// that description, is [`participant_terms`]).
    #[param(schema_with = participant_terms, required = false)]
    pub participant: Vec<String>,
    /// Words (letters, digits, `_`), each the start of a word of the title,
    /// ignoring case and accents; the title has all of them. Read by the
    /// full-text index: on MariaDB a title word shorter than 3 characters is not
    /// indexed, so `ux` finds `uxdesign` but not `UX` itself.
    #[param(min_length = 1, max_length = 500, pattern = "\\w")]
    pub title: Option<String>,
    /// Threads whose last activity (newest message, or creation) is at or after
    /// this time (RFC 3339).
    #[param(format = DateTime, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")]
    pub from: Option<String>,
    /// Threads whose last activity is before this time (RFC 3339).
    #[param(format = DateTime, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$")]
    pub to: Option<String>,
    /// The `nextCursor` of the previous page, unchanged.
    #[param(pattern = "^[0-9]{1,15}:[A-Za-z0-9_.:-]{1,64}$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// What `participant` means.
const PARTICIPANT_DESCRIPTION: &str = "Up to 5 terms, repeated (`?participant=a&participant=b`): \
    the threads that have all of them. A term is a user id (exact) or the start of a display name, \
    ignoring case; a prefix several users share means any of them.";

/// The schema of `participant`: up to 5 terms of 1-200 characters.
fn participant_terms() -> Array {
    ArrayBuilder::new()
        .description(Some(PARTICIPANT_DESCRIPTION))
        .max_items(Some(PARTICIPANT_TERMS_MAX))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(200))
                .pattern(Some("\\S")),
        )
        .build()
}

impl ThreadSearchParams {
    /// Decodes a query string; unknown parameters are ignored, a filter other
    /// than `participant` given twice is `invalid_payload`.
    fn decode(query: Option<&str>) -> Result<Self, ApiError> {
        let mut params = Self::default();
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let slot = match &*name {
                "participant" => {
                    params.participant.push(value.into_owned());
                    continue;
                }
                "title" => &mut params.title,
                "from" => &mut params.from,
                "to" => &mut params.to,
                "cursor" => &mut params.cursor,
                "limit" => &mut params.limit,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidPayload,
                    format!("{name} may be given once"),
                ));
            }
        }
        Ok(params)
    }
}

impl From<ThreadSearchParams> for ThreadQuery {
    fn from(p: ThreadSearchParams) -> Self {
        Self {
            participants: p.participant,
            title: p.title,
            from: p.from,
            to: p.to,
            cursor: p.cursor,
            limit: p.limit,
        }
    }
}

/// The filters of `GET /admin/users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearchParams {
    /// The start of the user id (exact case) or of the display name (ignoring
    /// case); absent or blank: every user.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// The `nextCursor` of the previous page, unchanged.
    #[param(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub cursor: Option<String>,
    /// Page size, 1 to 100 (default 25).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// A participant as a thread search shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantSummary {
    /// User id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Role of the stored profile.
    pub role: Role,
}

/// The newest message of a thread.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastMessage {
    /// Message id (a decimal string).
    pub id: String,
    /// Author.
    pub sender_id: String,
    /// Body.
    pub body: String,
    /// RFC 3339 time it was stored.
    pub created_at: String,
}

/// A thread found by a search.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadSummary {
    /// Thread id.
    pub id: String,
    /// Title.
    pub title: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the newest message, or the creation time when none.
    pub last_activity_at: String,
    /// Messages in the thread.
    pub message_count: i64,
    /// Participants, in the order they were added.
    pub participants: Vec<ParticipantSummary>,
    /// The newest message, if any.
    #[schema(required = true)]
    pub last_message: Option<LastMessage>,
}

/// A page of threads.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadPage {
    /// Newest activity first, then by id, descending.
    pub threads: Vec<ThreadSummary>,
    /// The `cursor` of the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A participant with read mark and presence.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantView {
    /// User id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Role of the stored profile.
    pub role: Role,
    /// Picture URL.
    #[schema(required = true)]
    pub avatar_url: Option<String>,
    /// The participant's last-read message id.
    #[schema(required = true)]
    pub last_read_message_id: Option<String>,
    /// At least one socket of the user is open (in the cluster, with Redis).
    pub online: bool,
    /// RFC 3339 time the user's last socket closed, if recorded (kept while
    /// online: the previous time).
    #[schema(required = true)]
    pub last_seen_at: Option<String>,
}

/// One thread in full.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadDetailView {
    /// Thread id.
    pub id: String,
    /// Title.
    pub title: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the newest message, or the creation time when none.
    pub last_activity_at: String,
    /// Messages in the thread.
    pub message_count: i64,
    /// Participants, in the order they were added.
    pub participants: Vec<ParticipantView>,
    /// The audit the thread is under; null when none.
    #[schema(required = true)]
    pub audit: Option<AuditView>,
    /// The newest 500 plugin decisions about its messages, newest first: a
    /// message hook's rewrite of a stored message, or its refusal of a send.
    pub decisions: Vec<DecisionView>,
}

/// A plugin's decision about a message of the thread.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionView {
    /// RFC 3339 time.
    pub at: String,
    /// The sender.
    pub user_id: String,
    /// The plugin.
    pub plugin: String,
    /// Its version then.
    pub version: String,
    /// The hook (`message-hook`).
    pub hook: String,
    /// `rewrite` (the message was stored as rewritten) or `reject` (nothing was stored).
    pub verdict: String,
    /// The reason given (the sender's `rejected` ack); null for a rewrite.
    #[schema(required = true)]
    pub reason: Option<String>,
    /// The message the rewrite produced; null for a refusal.
    #[schema(required = true)]
    pub message_id: Option<String>,
    /// SHA-256 of the request: the thread id, a zero byte and the body as sent (trimmed).
    pub input_sha256: String,
}

impl From<DecisionRecord> for DecisionView {
    fn from(d: DecisionRecord) -> Self {
        Self {
            at: rfc3339(d.at_ms),
            user_id: d.user_id,
            plugin: d.by.plugin,
            version: d.by.version,
            hook: d.hook,
            verdict: d.verdict,
            reason: d.reason,
            message_id: d.message_id.map(|id| id.to_string()),
            input_sha256: d.input_sha256,
        }
    }
}

/// A thread's audit: since when, by whom, for which case.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    /// RFC 3339 time the audit started (its history was sealed then).
    pub since: String,
    /// Who started it.
    pub by: String,
    /// The case reference, if any.
    #[schema(required = true)]
    pub case: Option<String>,
}

impl From<ThreadAudit> for AuditView {
    fn from(a: ThreadAudit) -> Self {
        Self {
            since: rfc3339(a.since_ms),
            by: a.by,
            case: a.case,
        }
    }
}

/// Body of `PUT /admin/threads/{id}/audit`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditRequest {
    /// A case reference (at most 200 characters), e.g. the dispute's id.
    #[schema(max_length = 200)]
    pub case: Option<String>,
}

/// A user with presence.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSummary {
    /// User id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Role of the stored profile.
    pub role: Role,
    /// Picture URL.
    #[schema(required = true)]
    pub avatar_url: Option<String>,
    /// At least one socket of the user is open (in the cluster, with Redis).
    pub online: bool,
    /// RFC 3339 time the user's last socket closed, if recorded.
    #[schema(required = true)]
    pub last_seen_at: Option<String>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    /// By id.
    pub users: Vec<UserSummary>,
    /// The `cursor` of the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A thread of a user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserThread {
    /// Thread id.
    pub id: String,
    /// Title.
    pub title: String,
    /// RFC 3339 time of the newest message, or the creation time when none.
    pub last_activity_at: String,
    /// Messages in the thread.
    pub message_count: i64,
}

/// One user in full.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDetailView {
    /// User id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Role of the stored profile.
    pub role: Role,
    /// Picture URL.
    #[schema(required = true)]
    pub avatar_url: Option<String>,
    /// At least one socket of the user is open (in the cluster, with Redis).
    pub online: bool,
    /// RFC 3339 time the user's last socket closed, if recorded.
    #[schema(required = true)]
    pub last_seen_at: Option<String>,
    /// Open sockets of the user: the cluster's with Redis, this instance's
    /// with the embedded backend.
    pub connections: i64,
    /// The user's threads, newest activity first, at most 100.
    pub threads: Vec<UserThread>,
}

fn seen(connections: &Connections) -> Option<String> {
    connections.last_seen_at_ms.map(rfc3339)
}

impl From<ThreadOverview> for ThreadSummary {
    fn from(o: ThreadOverview) -> Self {
        Self {
            id: o.thread.id,
            title: o.thread.title,
            created_at: rfc3339(o.thread.created_at_ms),
            last_activity_at: rfc3339(o.thread.last_activity_at_ms),
            message_count: o.thread.message_count,
            participants: o
                .participants
                .into_iter()
                .map(|p| ParticipantSummary {
                    id: p.profile.user_id,
                    display_name: p.profile.display_name,
                    role: p.profile.role,
                })
                .collect(),
            last_message: o.last_message.map(|m| LastMessage {
                id: m.id.to_string(),
                sender_id: m.sender_id,
                body: m.body,
                created_at: rfc3339(m.created_at_ms),
            }),
        }
    }
}

impl From<ThreadListing> for ThreadPage {
    fn from(l: ThreadListing) -> Self {
        Self {
            threads: l.threads.into_iter().map(ThreadSummary::from).collect(),
            next_cursor: l.next_cursor,
        }
    }
}

impl From<ThreadDetail> for ThreadDetailView {
    fn from(d: ThreadDetail) -> Self {
        Self {
            id: d.thread.id,
            title: d.thread.title,
            created_at: rfc3339(d.thread.created_at_ms),
            last_activity_at: rfc3339(d.thread.last_activity_at_ms),
            message_count: d.thread.message_count,
            participants: d
                .participants
                .into_iter()
                .map(|p| ParticipantView {
                    online: p.connections.online(),
                    last_seen_at: seen(&p.connections),
                    id: p.participant.profile.user_id,
                    display_name: p.participant.profile.display_name,
                    role: p.participant.profile.role,
                    avatar_url: p.participant.profile.avatar_url,
                    last_read_message_id: p
                        .participant
                        .last_read_message_id
                        .map(|id| id.to_string()),
                })
                .collect(),
            audit: d.thread.audit.map(AuditView::from),
            decisions: d.decisions.into_iter().map(DecisionView::from).collect(),
        }
    }
}

impl From<UserOverview> for UserSummary {
    fn from(u: UserOverview) -> Self {
        Self {
            online: u.connections.online(),
            last_seen_at: seen(&u.connections),
            id: u.profile.id,
            display_name: u.profile.display_name,
            role: u.profile.role,
            avatar_url: u.profile.avatar_url,
        }
    }
}

impl From<UserListing> for UserPage {
    fn from(l: UserListing) -> Self {
        Self {
            users: l.users.into_iter().map(UserSummary::from).collect(),
            next_cursor: l.next_cursor,
        }
    }
}

impl From<ThreadRecord> for UserThread {
    fn from(t: ThreadRecord) -> Self {
        Self {
            id: t.id,
            title: t.title,
            last_activity_at: rfc3339(t.last_activity_at_ms),
            message_count: t.message_count,
        }
    }
}

impl From<UserDetail> for UserDetailView {
    fn from(d: UserDetail) -> Self {
        let connections = d.user.connections;
        let user = UserSummary::from(d.user);
        Self {
            id: user.id,
            display_name: user.display_name,
            role: user.role,
            avatar_url: user.avatar_url,
            online: user.online,
            last_seen_at: user.last_seen_at,
            connections: connections.open,
            threads: d.threads.into_iter().map(UserThread::from).collect(),
        }
    }
}

/// The routes, relative to `/admin`.
pub(super) fn router() -> Router<HttpContext> {
    Router::new()
        .route("/threads", get(search_threads))
        .route("/threads/{id}", get(thread))
        .route("/threads/{id}/audit", put(start_audit).delete(end_audit))
        .route("/threads/{id}/export", get(export_thread))
        .route("/users", get(search_users))
        .route("/users/{id}", get(user))
}

/// Threads by participants, title and last activity, newest activity first,
/// a page at a time (no event is recorded; open one thread for that).
#[utoipa::path(get, path = "/admin/threads",
    params(ThreadSearchParams,
        ("X-Chat-Operator" = Option<String>, Header, nullable = false, description = "with the service token: who is acting (a user id), for the event stream; 400 when it is not an id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    responses((status = 200, body = ThreadPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn search_threads(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    RawQuery(query): RawQuery,
) -> Result<Json<ThreadPage>, ApiError> {
    let filters = ThreadQuery::from(ThreadSearchParams::decode(query.as_deref())?);
    let listing = ctx.chat.admin_threads(&actor, &filters).await?;
    Ok(Json(listing.into()))
}

/// One thread with its participants' read marks and presence. Recorded on
/// the event stream as `admin_viewed_thread` by the caller.
#[utoipa::path(get, path = "/admin/threads/{id}",
    params(("id" = String, Path, description = "thread id", pattern = "^[A-Za-z0-9_.:-]{1,64}$"),
        ("X-Chat-Operator" = Option<String>, Header, nullable = false, description = "with the service token: who is acting (a user id), for the event stream; 400 when it is not an id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    responses((status = 200, body = ThreadDetailView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn thread(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(id): Path<String>,
) -> Result<Json<ThreadDetailView>, ApiError> {
    Ok(Json(ctx.chat.admin_thread(&actor, &id).await?.into()))
}

/// Puts a thread under audit: its history (messages with their receipts) is
/// sealed into its audit trail at once, and from then on every message stored
/// and every receipt written, each in the same transaction as the row, so
/// verify catches an edited, deleted or inserted message or an altered
/// receipt. `dispute-audit`'s key `audit:<id>` follows (value: the case, or
/// `1`). An audit already running is kept and returned. Recorded as
/// `audit_started`.
#[utoipa::path(put, path = "/admin/threads/{id}/audit",
    params(("id" = String, Path, description = "thread id", pattern = "^[A-Za-z0-9_.:-]{1,64}$"),
        ("X-Chat-Operator" = Option<String>, Header, nullable = false, description = "with the service token: who is acting (a user id); the audit and its trail name them; 400 when it is not an id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    request_body = AuditRequest,
    responses((status = 200, body = AuditView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn start_audit(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(id): Path<String>,
    Body(request): Body<AuditRequest>,
) -> Result<Json<AuditView>, ApiError> {
    let audit = ctx
        .plugins
        .audit_start(&actor, &id, request.case.as_deref())
        .await?;
    Ok(Json(audit.into()))
}

/// Ends a thread's audit (and `dispute-audit`'s key). The trail keeps
/// everything written so far; verify then checks the chain only. Recorded as
/// `audit_ended` when an audit was running.
#[utoipa::path(delete, path = "/admin/threads/{id}/audit",
    params(("id" = String, Path, description = "thread id", pattern = "^[A-Za-z0-9_.:-]{1,64}$"),
        ("X-Chat-Operator" = Option<String>, Header, nullable = false, description = "with the service token: who is acting (a user id); 400 when it is not an id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn end_audit(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.plugins.audit_end(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Users by id or display-name prefix, by id, a page at a time.
#[utoipa::path(get, path = "/admin/users",
    params(UserSearchParams,
        ("X-Chat-Operator" = Option<String>, Header, nullable = false, description = "with the service token: who is acting (a user id), for the event stream; 400 when it is not an id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    responses((status = 200, body = UserPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn search_users(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    query: Result<Query<UserSearchParams>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    let Query(p) = query?;
    let filters = UserQuery {
        q: p.q,
        cursor: p.cursor,
        limit: p.limit,
    };
    Ok(Json(ctx.chat.admin_users(&actor, &filters).await?.into()))
}

/// One user with presence, open connections and their newest threads.
#[utoipa::path(get, path = "/admin/users/{id}",
    params(("id" = String, Path, description = "user id", pattern = "^[A-Za-z0-9_.:-]{1,64}$"),
        ("X-Chat-Operator" = Option<String>, Header, nullable = false, description = "with the service token: who is acting (a user id), for the event stream; 400 when it is not an id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    responses((status = 200, body = UserDetailView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn user(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(id): Path<String>,
) -> Result<Json<UserDetailView>, ApiError> {
    Ok(Json(ctx.chat.admin_user(&actor, &id).await?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_filters_decode_with_repeated_participants() {
        let p = ThreadSearchParams::decode(Some(
            "participant=Jane%20D&participant=u_1&title=logo+design&limit=5&other=x",
        ))
        .unwrap();
        assert_eq!(p.participant, ["Jane D", "u_1"]);
        assert_eq!(p.title.as_deref(), Some("logo design"));
        assert_eq!(p.limit.as_deref(), Some("5"));
        assert!(
            ThreadSearchParams::decode(None)
                .unwrap()
                .participant
                .is_empty()
        );
        assert!(ThreadSearchParams::decode(Some("limit=1&limit=2")).is_err());
    }
}

/// A thread's audit trail and its verification, in an export.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedAudit {
    /// The entries, oldest first.
    pub entries: Vec<AuditEntryView>,
    /// The chain checked when the export was made.
    pub verification: Verification,
}

/// The evidence of one thread, as handed on in a dispute.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadExport {
    /// The thread, its participants and their read marks.
    pub thread: ThreadDetailView,
    /// Every message, oldest first, each with every participant's receipt.
    pub messages: Vec<AdminMessage>,
    /// The audit trail and its verification.
    pub audit: ExportedAudit,
    /// Who exported it (the admin JWT's subject, the operator, or `service`).
    pub exported_by: String,
    /// When (RFC 3339).
    pub exported_at: String,
}

/// The whole evidence of a thread: participants and read marks, every message
/// with its receipts, the audit trail and its verification, who exported it and
/// when. Recorded on the event stream (`admin_viewed_thread`, `thread_exported`,
/// `audit_viewed`, `audit_verified`), and so in an audited thread's own trail.
#[utoipa::path(get, path = "/admin/threads/{id}/export",
    params(("id" = String, Path, description = "thread id", pattern = "^[A-Za-z0-9_.:-]{1,64}$"),
        ("X-Chat-Operator" = Option<String>, Header, nullable = false, description = "with the service token: who is acting (a user id), for the event stream; 400 when it is not an id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    responses((status = 200, body = ThreadExport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn export_thread(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(id): Path<String>,
) -> Result<Json<ThreadExport>, ApiError> {
    let thread = ctx.chat.admin_thread(&actor, &id).await?;
    let messages = ctx.chat.export_history(&actor, &id).await?;
    let entries = ctx.plugins.audit_trail(&actor, &id).await?;
    let verification = ctx.plugins.audit_verify(&actor, &id).await?;
    Ok(Json(ThreadExport {
        thread: thread.into(),
        messages: messages.into_iter().map(AdminMessage::from).collect(),
        audit: ExportedAudit {
            entries: entries.into_iter().map(AuditEntryView::from).collect(),
            verification,
        },
        exported_by: actor.user_id,
        exported_at: rfc3339(crate::domain::now_ms()),
    }))
}
