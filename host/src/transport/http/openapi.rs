//! The OpenAPI document of the service and admin APIs (`GET /openapi.json`).

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{HttpContext, admin, api, live, plugins};

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

/// The document: every route under `/api` and `/admin`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "chat-host service API",
        description = "Users, threads and dispute history (`/api`); plugins, audit trails and the \
            console's thread and user search (`/admin`). \
            Every path under both prefixes needs `Authorization: Bearer <service token | admin JWT>`: \
            401 without a valid one, 403 for a JWT whose role is not admin. With the service token, \
            `X-Chat-Operator: <user id>` names who is acting on the event stream (400 when it is not \
            an id; default `service`). \
            Errors are `{ \"error\": { \"code\", \"message\" } }`."
    ),
    paths(
        api::upsert_user, api::create_thread, api::add_participant, api::thread_messages,
        plugins::list_plugins, plugins::upload_plugin, plugins::enable_plugin,
        plugins::disable_plugin, plugins::configure_plugin, plugins::remove_plugin,
        plugins::kv_list, plugins::kv_get, plugins::kv_put, plugins::kv_delete,
        plugins::audit_trail, plugins::audit_verify,
        admin::search_threads, admin::thread, admin::start_audit, admin::end_audit, admin::export_thread, admin::search_users, admin::user,
        live::overview, live::live
    ),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET /openapi.json`.
pub(super) fn router() -> Router<HttpContext> {
    Router::new().route("/openapi.json", get(openapi))
}
