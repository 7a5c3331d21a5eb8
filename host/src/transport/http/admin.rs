//! The admin API of plugins and of the dispute audit trail. Every action is an
//! event on the stream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::api::{Body, ErrorBody};
use super::auth::ServiceCaller;
use super::{ApiError, HttpContext};
use crate::chat::Actor;
use crate::chat::events::ChatEvent;
use crate::chat::model::rfc3339;
use crate::chat::validate::is_valid_id;
use crate::plugins::loaded::LoadedPlugin;
use crate::plugins::manifest::{FailPolicy, Limits, Manifest};
use crate::plugins::metrics::StatsSnapshot;

/// A plugin as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    /// Name.
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// Position in the chain (lower first).
    pub order: i32,
    /// `closed` or `open`.
    #[schema(value_type = String)]
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
    /// The manifest, as TOML text.
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
    /// Expiry in milliseconds, if any: the TTL to set on a write, the time left on a read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
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
}

pub(super) fn router() -> Router<HttpContext> {
    Router::new()
        .route("/admin/plugins", get(list_plugins))
        .route(
            "/admin/plugins/{name}",
            put(upload_plugin).delete(remove_plugin),
        )
        .route("/admin/plugins/{name}/enable", post(enable_plugin))
        .route("/admin/plugins/{name}/disable", post(disable_plugin))
        .route("/admin/plugins/{name}/config", put(configure_plugin))
        .route(
            "/admin/plugins/{name}/kv/{key}",
            get(kv_get).put(kv_put).delete(kv_delete),
        )
        .route("/admin/audit/{thread}", get(audit_trail))
        .route("/admin/audit/{thread}/verify", get(audit_verify))
}

fn publish(ctx: &HttpContext, kind: &'static str, actor: &Actor, plugin: &str) {
    ctx.chat
        .events()
        .publish(ChatEvent::new(kind, &actor.user_id).subject(plugin));
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no plugin named {name}"),
    )
}

fn refused(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_payload", message)
}

/// Runs blocking registry work (compiling, instantiating) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

/// Lists the loaded plugins with status and metrics.
#[utoipa::path(get, path = "/admin/plugins", responses((status = 200, body = [PluginView])), security(("bearer" = [])))]
pub(super) async fn list_plugins(
    State(ctx): State<HttpContext>,
    _caller: ServiceCaller,
) -> Json<Vec<PluginView>> {
    Json(
        ctx.plugins
            .snapshot()
            .iter()
            .map(|p| PluginView::from(&**p))
            .collect(),
    )
}

/// Uploads a new version; a version that does not compile, link or instantiate
/// is refused and the old one keeps serving.
#[utoipa::path(put, path = "/admin/plugins/{name}", request_body = PluginUpload,
    params(("name" = String, Path, description = "plugin name")),
    responses((status = 200, body = PluginView), (status = 422, description = "refused", body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn upload_plugin(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(name): Path<String>,
    Body(upload): Body<PluginUpload>,
) -> Result<Json<PluginView>, ApiError> {
    let manifest = Manifest::parse(&upload.manifest).map_err(refused)?;
    if manifest.name != name {
        return Err(refused(format!(
            "the manifest names {:?}, the path {name:?}",
            manifest.name
        )));
    }
    let wasm = base64::engine::general_purpose::STANDARD
        .decode(upload.wasm_base64.trim())
        .map_err(|e| refused(format!("wasmBase64 is not base64: {e}")))?;
    let registry = ctx.plugins.clone();
    let plugin = blocking(move || registry.load(&wasm, manifest))
        .await?
        .map_err(refused)?;
    ctx.plugin_sync.saved(&plugin).await?;
    publish(&ctx, "plugin_uploaded", &actor, &name);
    Ok(Json(PluginView::from(&*plugin)))
}

async fn change(
    ctx: &HttpContext,
    name: &str,
    edit: impl FnOnce(&mut Manifest) + Send + 'static,
) -> Result<Arc<LoadedPlugin>, ApiError> {
    let current = ctx.plugins.get(name).ok_or_else(|| not_found(name))?;
    let mut manifest = current.manifest.clone();
    edit(&mut manifest);
    let registry = ctx.plugins.clone();
    let plugin = blocking(move || registry.reconfigure(manifest))
        .await?
        .map_err(refused)?;
    ctx.plugin_sync.saved(&plugin).await?;
    Ok(plugin)
}

/// Switches a plugin on.
#[utoipa::path(post, path = "/admin/plugins/{name}/enable", params(("name" = String, Path)),
    responses((status = 200, body = PluginView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn enable_plugin(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    let plugin = change(&ctx, &name, |m| m.enabled = true).await?;
    publish(&ctx, "plugin_enabled", &actor, &name);
    Ok(Json(PluginView::from(&*plugin)))
}

/// Switches a plugin off (it stays loaded).
#[utoipa::path(post, path = "/admin/plugins/{name}/disable", params(("name" = String, Path)),
    responses((status = 200, body = PluginView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn disable_plugin(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    let plugin = change(&ctx, &name, |m| m.enabled = false).await?;
    publish(&ctx, "plugin_disabled", &actor, &name);
    Ok(Json(PluginView::from(&*plugin)))
}

/// Replaces a plugin's configuration table.
#[utoipa::path(put, path = "/admin/plugins/{name}/config", params(("name" = String, Path)),
    request_body = BTreeMap<String, String>,
    responses((status = 200, body = PluginView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn configure_plugin(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(name): Path<String>,
    Body(config): Body<BTreeMap<String, String>>,
) -> Result<Json<PluginView>, ApiError> {
    let plugin = change(&ctx, &name, |m| m.config = config).await?;
    publish(&ctx, "plugin_configured", &actor, &name);
    Ok(Json(PluginView::from(&*plugin)))
}

/// Unloads a plugin.
#[utoipa::path(delete, path = "/admin/plugins/{name}", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn remove_plugin(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !ctx.plugins.remove(&name) {
        return Err(not_found(&name));
    }
    ctx.plugin_sync.removed(&name).await?;
    publish(&ctx, "plugin_removed", &actor, &name);
    Ok(StatusCode::NO_CONTENT)
}

fn kv_path(name: &str, key: &str) -> Result<(), ApiError> {
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok || key.is_empty() || key.len() > crate::plugins::imports::MAX_KEY {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "bad plugin name or key",
        ));
    }
    Ok(())
}

/// Reads one key of a plugin's key-value store.
#[utoipa::path(get, path = "/admin/plugins/{name}/kv/{key}", params(("name" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = KvEntry), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn kv_get(
    State(ctx): State<HttpContext>,
    _caller: ServiceCaller,
    Path((name, key)): Path<(String, String)>,
) -> Result<Json<KvEntry>, ApiError> {
    kv_path(&name, &key)?;
    let value = ctx
        .chat
        .state()
        .kv_get(&name, &key)
        .await
        .map_err(crate::error::ChatError::from)?;
    value
        .map(|entry| {
            Json(KvEntry {
                value: entry.value,
                ttl_ms: entry.ttl.map(|t| t.as_millis() as u64),
            })
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{name} has no key {key}"),
            )
        })
}

/// Writes one key of a plugin's key-value store (how an admin blocks a user or
/// puts a thread under audit).
#[utoipa::path(put, path = "/admin/plugins/{name}/kv/{key}", params(("name" = String, Path), ("key" = String, Path)),
    request_body = KvEntry, responses((status = 204)), security(("bearer" = [])))]
pub(super) async fn kv_put(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path((name, key)): Path<(String, String)>,
    Body(entry): Body<KvEntry>,
) -> Result<StatusCode, ApiError> {
    kv_path(&name, &key)?;
    if entry.value.len() > crate::plugins::imports::MAX_VALUE {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "value too large",
        ));
    }
    let ttl = entry.ttl_ms.map(Duration::from_millis);
    ctx.chat
        .state()
        .kv_set(&name, &key, &entry.value, ttl)
        .await
        .map_err(crate::error::ChatError::from)?;
    ctx.plugin_sync.kv_changed(&name, &key).await?;
    publish(&ctx, "plugin_kv_set", &actor, &name);
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes one key of a plugin's key-value store.
#[utoipa::path(delete, path = "/admin/plugins/{name}/kv/{key}", params(("name" = String, Path), ("key" = String, Path)),
    responses((status = 204)), security(("bearer" = [])))]
pub(super) async fn kv_delete(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path((name, key)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    kv_path(&name, &key)?;
    ctx.chat
        .state()
        .kv_delete(&name, &key)
        .await
        .map_err(crate::error::ChatError::from)?;
    ctx.plugin_sync.kv_changed(&name, &key).await?;
    publish(&ctx, "plugin_kv_deleted", &actor, &name);
    Ok(StatusCode::NO_CONTENT)
}

fn thread_path(thread: &str) -> Result<(), ApiError> {
    if is_valid_id(thread) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_payload",
            "bad thread id",
        ))
    }
}

/// A thread's audit trail, oldest first.
#[utoipa::path(get, path = "/admin/audit/{thread}", params(("thread" = String, Path)),
    responses((status = 200, body = [AuditEntryView])), security(("bearer" = [])))]
pub(super) async fn audit_trail(
    State(ctx): State<HttpContext>,
    ServiceCaller(actor): ServiceCaller,
    Path(thread): Path<String>,
) -> Result<Json<Vec<AuditEntryView>>, ApiError> {
    thread_path(&thread)?;
    let entries = ctx
        .audit
        .entries(&thread)
        .await
        .map_err(crate::error::ChatError::from)?;
    ctx.chat
        .events()
        .publish(ChatEvent::new("audit_viewed", &actor.user_id).thread(&thread));
    Ok(Json(
        entries
            .into_iter()
            .map(|e| AuditEntryView {
                seq: e.seq,
                plugin: e.plugin,
                kind: e.kind,
                actor_id: e.actor_id,
                detail: e.detail,
                created_at: rfc3339(e.created_at_ms),
                mac: e.mac,
            })
            .collect(),
    ))
}

/// Recomputes a thread's audit chain: edited, deleted, reordered or truncated
/// entries make it invalid.
#[utoipa::path(get, path = "/admin/audit/{thread}/verify", params(("thread" = String, Path)),
    responses((status = 200, description = "{ entries, valid, problem }")), security(("bearer" = [])))]
pub(super) async fn audit_verify(
    State(ctx): State<HttpContext>,
    _caller: ServiceCaller,
    Path(thread): Path<String>,
) -> Result<Json<crate::audit::Verification>, ApiError> {
    thread_path(&thread)?;
    Ok(Json(
        ctx.audit
            .verify(&thread)
            .await
            .map_err(crate::error::ChatError::from)?,
    ))
}
