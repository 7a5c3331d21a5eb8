//! The service API (`/api`): profiles, threads, participants, dispute history.
//! Decodes, calls [`ChatService`](crate::chat::ChatService), encodes.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{Array, ArrayBuilder, ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};

use super::auth::ServiceCaller;
use super::error::{Body, ErrorBody};
use super::{ApiError, HttpContext};
use crate::domain::Role;
use crate::domain::model::{MessageView, UserProfile};
use crate::domain::rfc3339;
use crate::store::MessageWithReceipts;

/// `PUT /api/users/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserUpsert {
    /// Name shown to others (1-200 chars, not only whitespace).
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub display_name: String,
    /// Optional picture URL: an absolute `https:` URL with a host (`http:`
    /// also in dev mode), at most 2048 characters, no whitespace and no
    /// credentials. `javascript:`, `data:` and relative URLs are 400.
    #[schema(
        format = "uri",
        max_length = 2048,
        pattern = "^https?://[^\\s/?#@]+([/?#]\\S*)?$"
    )]
    pub avatar_url: Option<String>,
    /// What the user is on the marketplace.
    pub role: Role,
}

/// A stored user profile.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// User id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Picture URL.
    pub avatar_url: Option<String>,
    /// Role.
    pub role: Role,
}

/// `POST /api/threads` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadCreate {
    /// Thread id (user-id format); generated when absent.
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub id: Option<String>,
    /// Title (1-500 chars, not only whitespace).
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub title: String,
    /// Participants (user ids); each must be a known user (422 otherwise).
    #[schema(schema_with = user_ids)]
    pub participant_ids: Vec<String>,
}

/// The schema of `participantIds`: user ids, each of the id format.
fn user_ids() -> Array {
    ArrayBuilder::new()
        .description(Some(
            "Participants (user ids); each must be a known user (422 otherwise).",
        ))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(ID_PATTERN)),
        )
        .build()
}

/// The format of user and thread ids, as a JSON Schema pattern.
const ID_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,64}$";

/// A created thread.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadCreated {
    /// Thread id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Participants.
    pub participant_ids: Vec<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// `POST /api/threads/{id}/participants` body.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantAdd {
    /// The user to add.
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub user_id: String,
}

/// History paging.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only messages older than this id (a decimal string).
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub before_id: Option<String>,
    /// Page size, an integer of at least 1: default 50, larger values are capped to 100.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    pub limit: Option<String>,
}

/// One participant's receipt of a message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiptView {
    /// Participant.
    pub user_id: String,
    /// When it reached one of their sockets.
    pub delivered_at: Option<String>,
    /// When their read mark passed it.
    pub read_at: Option<String>,
}

/// A message with its receipts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminMessage {
    /// The message as clients see it.
    #[serde(flatten)]
    pub message: MessageView,
    /// One per participant at send time.
    pub receipts: Vec<ReceiptView>,
}

impl From<MessageWithReceipts> for AdminMessage {
    fn from(m: MessageWithReceipts) -> Self {
        Self {
            message: MessageView::from(&m.message),
            receipts: m
                .receipts
                .into_iter()
                .map(|r| ReceiptView {
                    user_id: r.user_id,
                    delivered_at: r.delivered_at_ms.map(rfc3339),
                    read_at: r.read_at_ms.map(rfc3339),
                })
                .collect(),
        }
    }
}

/// A page of full history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminHistory {
    /// Messages with receipts.
    pub messages: Vec<AdminMessage>,
    /// Older messages exist.
    pub has_more: bool,
}

/// The routes, relative to `/api`.
pub(super) fn router() -> Router<HttpContext> {
    Router::new()
        .route("/users/{id}", put(upsert_user))
        .route("/threads", post(create_thread))
        .route("/threads/{id}/participants", post(add_participant))
        .route("/threads/{id}/messages", get(thread_messages))
}

/// Creates or updates a user profile.
#[utoipa::path(put, path = "/api/users/{id}", request_body = UserUpsert,
    params(("id" = String, Path, description = "user id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn upsert_user(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(id): Path<String>,
    Body(body): Body<UserUpsert>,
) -> Result<Json<UserView>, ApiError> {
    let profile = UserProfile {
        id,
        display_name: body.display_name,
        avatar_url: body.avatar_url,
        role: body.role,
    };
    ctx.chat.upsert_user(&actor, profile.clone()).await?;
    Ok(Json(UserView {
        id: profile.id,
        display_name: profile.display_name,
        avatar_url: profile.avatar_url,
        role: profile.role,
    }))
}

/// Creates a thread with its participants.
#[utoipa::path(post, path = "/api/threads", request_body = ThreadCreate,
    responses((status = 201, body = ThreadCreated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "unknown participant ids", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn create_thread(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Body(body): Body<ThreadCreate>,
) -> Result<(StatusCode, Json<ThreadCreated>), ApiError> {
    let created = ctx
        .chat
        .create_thread(&actor, body.id, body.title, body.participant_ids)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ThreadCreated {
            id: created.id,
            title: created.title,
            participant_ids: created.participant_ids,
            created_at: rfc3339(created.created_at_ms),
        }),
    ))
}

/// Adds a participant to a thread (idempotent).
#[utoipa::path(post, path = "/api/threads/{id}/participants", request_body = ParticipantAdd,
    params(("id" = String, Path, description = "thread id", pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    responses((status = 200, body = ParticipantAdd), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn add_participant(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(id): Path<String>,
    Body(body): Body<ParticipantAdd>,
) -> Result<Json<ParticipantAdd>, ApiError> {
    ctx.chat.add_participant(&actor, &id, &body.user_id).await?;
    Ok(Json(body))
}

/// Full history with every receipt, for disputes.
#[utoipa::path(get, path = "/api/threads/{id}/messages",
    params(("id" = String, Path, description = "thread id", pattern = "^[A-Za-z0-9_.:-]{1,64}$"), HistoryQuery),
    responses((status = 200, body = AdminHistory), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn thread_messages(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<AdminHistory>, ApiError> {
    let Query(q) = query?;
    let page = ctx
        .chat
        .admin_history(&actor, &id, q.before_id.as_deref(), q.limit.as_deref())
        .await?;
    let messages = page.items.into_iter().map(AdminMessage::from).collect();
    Ok(Json(AdminHistory {
        messages,
        has_more: page.has_more,
    }))
}
