//! The service/admin API: profiles, threads, participants, dispute history.

use axum::extract::{FromRequest, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use super::auth::ServiceCaller;
use super::{ApiError, HttpContext};
use crate::chat::model::{MessageView, UserProfile, rfc3339};

/// JSON body extractor whose rejection is our `invalid_payload` error.
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub(super) struct Body<T>(pub T);

/// `PUT /api/users/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserUpsert {
    /// Name shown to others (1-200 chars).
    pub display_name: String,
    /// Optional picture URL.
    pub avatar_url: Option<String>,
    /// `client`, `freelancer` or `admin`.
    pub role: String,
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
    pub role: String,
}

/// `POST /api/threads` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadCreate {
    /// Thread id (user-id format); generated when absent.
    pub id: Option<String>,
    /// Title (1-500 chars).
    pub title: String,
    /// Participants; each must be a known user.
    pub participant_ids: Vec<String>,
}

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
    pub user_id: String,
}

/// History paging.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    /// Only messages older than this id.
    pub before_id: Option<String>,
    /// Page size: default 50, capped to 100.
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
    /// Decimal message id.
    pub id: String,
    /// Thread.
    pub thread_id: String,
    /// Author.
    pub sender_id: String,
    /// Body.
    pub body: String,
    /// Sender's idempotency key.
    pub client_message_id: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// One per participant at send time.
    pub receipts: Vec<ReceiptView>,
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

/// The error body of every failed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `{ code, message }`.
    pub error: ErrorDetail,
}

/// Error code and text.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `unauthorized`, `forbidden`, `not_found`, `invalid_payload`, `conflict`, `unavailable`, `internal`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

pub(super) fn router() -> Router<HttpContext> {
    Router::new()
        .route("/api/users/{id}", put(upsert_user))
        .route("/api/threads", post(create_thread))
        .route("/api/threads/{id}/participants", post(add_participant))
        .route("/api/threads/{id}/messages", get(thread_messages))
        .route("/openapi.json", get(openapi))
}

/// Creates or updates a user profile.
#[utoipa::path(put, path = "/api/users/{id}", request_body = UserUpsert,
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
async fn upsert_user(
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
    responses((status = 201, body = ThreadCreated), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, description = "unknown participant ids", body = ErrorBody)),
    security(("bearer" = [])))]
async fn create_thread(
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
    params(("id" = String, Path, description = "thread id")),
    responses((status = 200, body = ParticipantAdd), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
async fn add_participant(
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
    params(("id" = String, Path, description = "thread id"), HistoryQuery),
    responses((status = 200, body = AdminHistory), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
async fn thread_messages(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AdminHistory>, ApiError> {
    let Query(q) = query?;
    let page = ctx
        .chat
        .admin_history(&actor, &id, q.before_id.as_deref(), q.limit.as_deref())
        .await?;
    let messages = page
        .items
        .into_iter()
        .map(|m| {
            let view = MessageView::from(&m.message);
            AdminMessage {
                id: view.id,
                thread_id: view.thread_id,
                sender_id: view.sender_id,
                body: view.body,
                client_message_id: view.client_message_id,
                created_at: view.created_at,
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
        })
        .collect();
    Ok(Json(AdminHistory {
        messages,
        has_more: page.has_more,
    }))
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document of the service/admin API.
#[derive(OpenApi)]
#[openapi(
    info(title = "chat-host service API", description = "Users, threads and dispute history of chat-host."),
    paths(upsert_user, create_thread, add_participant, thread_messages,
        super::admin::list_plugins, super::admin::upload_plugin, super::admin::enable_plugin,
        super::admin::disable_plugin, super::admin::configure_plugin, super::admin::remove_plugin,
        super::admin::kv_get, super::admin::kv_put, super::admin::kv_delete,
        super::admin::audit_trail, super::admin::audit_verify),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
