//! The admin API of plugins and of the dispute audit trail (`/admin`): decodes,
//! calls [`PluginAdmin`](crate::plugins::admin::PluginAdmin), encodes.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::ServiceCaller;
use super::error::{Body, ErrorBody};
use super::{ApiError, HttpContext};
use crate::domain::rfc3339;
use crate::plugins::admin::{AuditEntry, Verification};
use crate::plugins::loaded::LoadedPlugin;
use crate::plugins::manifest::{FailPolicy, Limits};
use crate::plugins::metrics::StatsSnapshot;
use crate::state::KvPage;

/// A plugin as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    /// Name.
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// Position in the chain (lower first).
    pub order: i32,
    /// What a failing call means: `closed` (deny) or `open` (allow).
    #[schema(value_type = String, pattern = "^(closed|open)$")]
    pub fail: FailPolicy,
    /// Takes part in the chain.
    pub enabled: bool,
    /// Exported hooks.
    pub hooks: Vec<&'static str>,
    /// Per-call limits.
    #[schema(value_type = Object)]
    pub limits: Limits,
    /// Configuration.
    pub config: BTreeMap<String, String>,
    /// SHA-256 of the component.
    pub sha256: String,
    /// Counters since it was loaded.
    #[schema(value_type = Object)]
    pub stats: StatsSnapshot,
}

impl From<&LoadedPlugin> for PluginView {
    fn from(p: &LoadedPlugin) -> Self {
        let m = &p.manifest;
        Self {
            name: m.name.clone(),
            version: m.version.clone(),
            description: m.description.clone(),
            order: m.order,
            fail: m.fail,
            enabled: m.enabled,
            hooks: p.hooks.names(),
            limits: m.limits,
            config: m.config.clone(),
            sha256: p.sha256.clone(),
            stats: p.stats.snapshot(),
        }
    }
}

/// `PUT /admin/plugins/{name}` body: a new version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginUpload {
    /// The manifest, as TOML text; its `name` must be the path's.
    pub manifest: String,
    /// The component, base64.
    pub wasm_base64: String,
}

/// A key-value entry of a plugin.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KvEntry {
    /// The value.
    pub value: String,
    /// Expiry in milliseconds, if any: the TTL to set on a write (1 ms to a
    /// year; 0 is refused, deleting is its own call), the time left on a read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 31_536_000_000_u64)]
    pub ttl_ms: Option<u64>,
}

/// The filters of `GET /admin/plugins/{name}/kv`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KvListParams {
    /// The start of the keys to list (exact bytes; `*` and `?` are plain
    /// characters); absent: every key.
    #[param(max_length = 256)]
    pub prefix: Option<String>,
    /// The `nextCursor` of the previous page, unchanged.
    pub cursor: Option<String>,
    /// Page size, 1 to 500 (default 100); a Redis page may hold a few more
    /// or fewer.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<usize>,
}

/// One listed entry of a plugin's key-value store.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KvListed {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Time left in milliseconds, if the key expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

/// A page of a plugin's key-value entries, sorted by key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KvListing {
    /// The entries.
    pub entries: Vec<KvListed>,
    /// Pass as `cursor` for the next page; null after the last page.
    pub next_cursor: Option<String>,
}

impl From<KvPage> for KvListing {
    fn from(page: KvPage) -> Self {
        Self {
            entries: page
                .entries
                .into_iter()
                .map(|(key, entry)| KvListed {
                    key,
                    value: entry.value,
                    ttl_ms: ttl_ms(entry.ttl),
                })
                .collect(),
            next_cursor: page.next,
        }
    }
}

/// A key's time left, in whole milliseconds.
fn ttl_ms(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryView {
    /// Position in the thread's chain.
    pub seq: i64,
    /// Writing plugin.
    pub plugin: String,
    /// Event kind.
    pub kind: String,
    /// Who caused it.
    pub actor_id: String,
    /// Detail (JSON text by convention).
    pub detail: String,
    /// RFC 3339 time.
    pub created_at: String,
    /// Chain MAC.
    pub mac: String,
    /// Id of the audit key that sealed the entry (`legacy`: written before entries named their key).
    pub key_id: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            plugin: e.plugin,
            kind: e.kind,
            actor_id: e.actor_id,
            detail: e.detail,
            created_at: rfc3339(e.created_at_ms),
            mac: e.mac,
            key_id: e.key_id,
        }
    }
}

/// The routes, relative to `/admin`.
pub(super) fn router() -> Router<HttpContext> {
    Router::new()
        .route("/plugins", get(list_plugins))
        .route("/plugins/{name}", put(upload_plugin).delete(remove_plugin))
        .route("/plugins/{name}/enable", post(enable_plugin))
        .route("/plugins/{name}/disable", post(disable_plugin))
        .route("/plugins/{name}/config", put(configure_plugin))
        .route("/plugins/{name}/kv", get(kv_list))
        .route(
            "/plugins/{name}/kv/{key}",
            get(kv_get).put(kv_put).delete(kv_delete),
        )
        .route("/audit/{thread}", get(audit_trail))
        .route("/audit/{thread}/verify", get(audit_verify))
}

/// Lists the loaded plugins with status and metrics, in chain order.
#[utoipa::path(get, path = "/admin/plugins",
    responses((status = 200, body = [PluginView]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list_plugins(State(ctx): State<HttpContext>) -> Json<Vec<PluginView>> {
    Json(
        ctx.plugins
            .list()
            .iter()
            .map(|p| PluginView::from(&**p))
            .collect(),
    )
}

/// Uploads a new version; a version that does not compile, link or instantiate
/// is refused (422) and the old one keeps serving.
#[utoipa::path(put, path = "/admin/plugins/{name}", request_body = PluginUpload,
    params(("name" = String, Path, description = "plugin name", pattern = "^[a-z0-9-]{1,64}$")),
    responses((status = 200, body = PluginView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 422, description = "manifest or component refused", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn upload_plugin(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(name): Path<String>,
    Body(upload): Body<PluginUpload>,
) -> Result<Json<PluginView>, ApiError> {
    let plugin = ctx
        .plugins
        .upload(&actor, &name, &upload.manifest, &upload.wasm_base64)
        .await?;
    Ok(Json(PluginView::from(&*plugin)))
}

/// Switches a plugin on.
#[utoipa::path(post, path = "/admin/plugins/{name}/enable", params(("name" = String, Path, pattern = "^[a-z0-9-]{1,64}$")),
    responses((status = 200, body = PluginView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn enable_plugin(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    let plugin = ctx.plugins.set_enabled(&actor, &name, true).await?;
    Ok(Json(PluginView::from(&*plugin)))
}

/// Switches a plugin off (it stays loaded).
#[utoipa::path(post, path = "/admin/plugins/{name}/disable", params(("name" = String, Path, pattern = "^[a-z0-9-]{1,64}$")),
    responses((status = 200, body = PluginView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn disable_plugin(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    let plugin = ctx.plugins.set_enabled(&actor, &name, false).await?;
    Ok(Json(PluginView::from(&*plugin)))
}

/// Replaces a plugin's configuration table.
#[utoipa::path(put, path = "/admin/plugins/{name}/config", params(("name" = String, Path, pattern = "^[a-z0-9-]{1,64}$")),
    request_body = BTreeMap<String, String>,
    responses((status = 200, body = PluginView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn configure_plugin(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(name): Path<String>,
    Body(config): Body<BTreeMap<String, String>>,
) -> Result<Json<PluginView>, ApiError> {
    let plugin = ctx.plugins.configure(&actor, &name, config).await?;
    Ok(Json(PluginView::from(&*plugin)))
}

/// Unloads a plugin on every instance.
#[utoipa::path(delete, path = "/admin/plugins/{name}", params(("name" = String, Path, pattern = "^[a-z0-9-]{1,64}$")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn remove_plugin(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.plugins.remove(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists a plugin's key-value entries by key prefix, a page at a time (how
/// an admin browses the blocklist).
#[utoipa::path(get, path = "/admin/plugins/{name}/kv",
    params(("name" = String, Path, pattern = "^[a-z0-9-]{1,64}$"), KvListParams),
    responses((status = 200, body = KvListing), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn kv_list(
    State(ctx): State<HttpContext>,
    Path(name): Path<String>,
    query: Result<Query<KvListParams>, QueryRejection>,
) -> Result<Json<KvListing>, ApiError> {
    let Query(p) = query?;
    let page = ctx
        .plugins
        .kv_list(
            &name,
            p.prefix.as_deref().unwrap_or(""),
            p.cursor.as_deref(),
            p.limit,
        )
        .await?;
    Ok(Json(page.into()))
}

/// Reads one key of a plugin's key-value store.
#[utoipa::path(get, path = "/admin/plugins/{name}/kv/{key}", params(("name" = String, Path, pattern = "^[a-z0-9-]{1,64}$"),
        ("key" = String, Path, description = "1-256 bytes", min_length = 1, max_length = 256)),
    responses((status = 200, body = KvEntry), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn kv_get(
    State(ctx): State<HttpContext>,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<KvEntry>, ApiError> {
    let entry = ctx.plugins.kv_get(&name, &key).await?;
    Ok(Json(KvEntry {
        value: entry.value,
        ttl_ms: ttl_ms(entry.ttl),
    }))
}

/// Writes one key of a plugin's key-value store (how an admin blocks a user or
/// puts a thread under audit).
#[utoipa::path(put, path = "/admin/plugins/{name}/kv/{key}", params(("name" = String, Path, pattern = "^[a-z0-9-]{1,64}$"),
        ("key" = String, Path, description = "1-256 bytes", min_length = 1, max_length = 256)),
    request_body = KvEntry,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn kv_put(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path((name, key)): Path<(String, String)>,
    Body(entry): Body<KvEntry>,
) -> Result<StatusCode, ApiError> {
    ctx.plugins
        .kv_set(&actor, &name, &key, &entry.value, entry.ttl_ms)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes one key of a plugin's key-value store.
#[utoipa::path(delete, path = "/admin/plugins/{name}/kv/{key}", params(("name" = String, Path, pattern = "^[a-z0-9-]{1,64}$"),
        ("key" = String, Path, description = "1-256 bytes", min_length = 1, max_length = 256)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn kv_delete(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path((name, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.plugins.kv_delete(&actor, &name, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A thread's audit trail, oldest first.
#[utoipa::path(get, path = "/admin/audit/{thread}",
    params(("thread" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    responses((status = 200, body = [AuditEntryView]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn audit_trail(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(thread): Path<String>,
) -> Result<Json<Vec<AuditEntryView>>, ApiError> {
    let entries = ctx.plugins.audit_trail(&actor, &thread).await?;
    Ok(Json(
        entries.into_iter().map(AuditEntryView::from).collect(),
    ))
}

/// Recomputes a thread's audit chain: edited, deleted, reordered or truncated
/// entries make it invalid. The check is recorded (`audit_verified`).
#[utoipa::path(get, path = "/admin/audit/{thread}/verify",
    params(("thread" = String, Path, pattern = "^[A-Za-z0-9_.:-]{1,64}$")),
    responses((status = 200, body = Verification), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn audit_verify(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(thread): Path<String>,
) -> Result<Json<Verification>, ApiError> {
    Ok(Json(ctx.plugins.audit_verify(&actor, &thread).await?))
}
