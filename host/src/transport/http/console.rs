//! The browser surfaces the binary serves itself: the admin console at
//! `/console`, the demo chat at `/demo` (dev mode, or `CHAT_DEMO=1`) and the
//! stock `socket.io-client` they load from `/vendor`. The files are compiled
//! into the binary (`host/assets/`), so a fresh machine needs no Node.js.
//!
//! Every page is sent with a strict Content-Security-Policy (scripts and styles
//! only from this origin, no inline code, no framing), `nosniff` and no
//! referrer; assets carry an `ETag` (their SHA-256) and are revalidated.
//!
//! The console signs in with an admin JWT or the service token, which the page
//! keeps in memory only and sends as a bearer token to the `/admin` and `/api`
//! routes. Dev mode adds two shortcuts, both off in production: a one-click
//! console sign-in as `dev-admin`, and the demo's sign-in of `demo-*` users.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_embed::Embed;
use serde::{Deserialize, Serialize};
use tower_http::compression::CompressionLayer;

use super::error::{Body, ErrorCode};
use super::{ApiError, HttpContext};
use crate::chat::error::ChatError;
use crate::domain::model::UserProfile;
use crate::domain::{Actor, Role};

/// The files under `host/assets/`, in the binary.
#[derive(Embed)]
#[folder = "assets/"]
struct Assets;

/// What the pages may load: this origin only, no inline script or style, no
/// plugins, no framing, no `<base>`, forms only to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// How long a demo user's token lives.
const DEMO_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// How long the dev-mode console token lives.
const DEV_ADMIN_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The user the dev-mode console shortcut signs in as.
const DEV_ADMIN: &str = "dev-admin";
/// Demo user ids start with this, so a demo token never names a real user.
const DEMO_PREFIX: &str = "demo-";

/// Which surfaces this instance serves.
#[derive(Debug, Clone, Copy)]
pub struct Surfaces {
    /// `/demo` and its sign-in (`CHAT_DEMO`; on in dev mode).
    pub demo: bool,
    /// Dev mode: the console's one-click sign-in.
    pub dev: bool,
}

/// The routes of the pages and their shortcuts (outside the bearer gate).
pub(super) fn router(surfaces: Surfaces) -> Router<HttpContext> {
    let mut router = Router::new()
        .route("/", get(move || async move { home(surfaces) }))
        .route(
            "/console",
            get(|headers: HeaderMap| async move { conditional("console/index.html", &headers) }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::permanent("/console") }),
        )
        .route(
            "/console/surfaces.json",
            get(move || async move {
                Json(serde_json::json!({ "devSignIn": surfaces.dev, "demo": surfaces.demo }))
            }),
        )
        .route("/console/{*file}", get(console_file))
        .route("/vendor/{file}", get(vendor_file));
    // Off in production: 404, not the 405 the asset route would give a POST.
    router = if surfaces.dev {
        router.route("/console/dev-session", post(dev_session))
    } else {
        router.route(
            "/console/dev-session",
            post(|| async { StatusCode::NOT_FOUND }),
        )
    };
    if surfaces.demo {
        router = router
            .route(
                "/demo",
                get(|headers: HeaderMap| async move { conditional("demo/index.html", &headers) }),
            )
            .route("/demo/", get(|| async { Redirect::permanent("/demo") }))
            .route("/demo/session", post(demo_session))
            .route("/demo/threads", post(demo_thread))
            .route("/demo/{*file}", get(demo_file));
    }
    // Pages and scripts go gzipped to a browser that asks (a quarter of the bytes).
    router.layer(CompressionLayer::new())
}

/// `/`: the demo where it is on (a newcomer's first page), else the console.
fn home(surfaces: Surfaces) -> Redirect {
    Redirect::to(if surfaces.demo { "/demo" } else { "/console" })
}

async fn console_file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    conditional(&format!("console/{file}"), &headers)
}

async fn demo_file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    conditional(&format!("demo/{file}"), &headers)
}

async fn vendor_file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    conditional(&format!("vendor/{file}"), &headers)
}

/// The media type of an asset, by extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// An asset with its security and caching headers (404 if there is none),
/// or 304 when the browser's `If-None-Match` is current.
fn conditional(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let etag: String = file.metadata.sha256_hash()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let etag = format!("\"{etag}\"");
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, content_type(path))],
            file.data.into_owned(),
        )
            .into_response()
    };
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::CACHE_CONTROL, "no-cache");
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// A token and when it expires.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Session {
    token: String,
    user_id: String,
    display_name: String,
    role: Role,
    /// Seconds since the Unix epoch.
    expires_at: u64,
}

/// `POST /console/dev-session` (dev mode only): an admin token for `dev-admin`.
async fn dev_session(State(ctx): State<HttpContext>) -> Json<Session> {
    let (token, expires_at) = ctx.issuer.issue(DEV_ADMIN, Role::Admin, DEV_ADMIN_LIFETIME);
    Json(Session {
        token,
        user_id: DEV_ADMIN.into(),
        display_name: "Dev admin".into(),
        role: Role::Admin,
        expires_at,
    })
}

/// `POST /demo/session` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DemoSignIn {
    /// Shown to the other side; the user id is derived from it.
    display_name: String,
    /// `client` or `freelancer`.
    role: Role,
}

/// The demo user id of a display name: `demo-` and its letters and digits.
fn demo_user_id(name: &str) -> Option<String> {
    let slug: String = name
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let slug = slug.trim_matches('-');
    (!slug.is_empty() && slug.len() <= 28).then(|| format!("{DEMO_PREFIX}{slug}"))
}

/// The actor of what the demo does on its users' behalf.
fn demo_actor() -> Actor {
    Actor {
        user_id: "demo".into(),
        role: Role::Admin,
        connection: None,
    }
}

/// `POST /demo/session`: creates (or updates) the demo user of that name and
/// signs it in: a client or freelancer token for a `demo-*` id.
async fn demo_session(
    State(ctx): State<HttpContext>,
    Body(sign_in): Body<DemoSignIn>,
) -> Result<Json<Session>, ApiError> {
    if sign_in.role == Role::Admin {
        return Err(ChatError::invalid("role must be client or freelancer").into());
    }
    let user_id = demo_user_id(&sign_in.display_name)
        .ok_or_else(|| ChatError::invalid("displayName must hold 1-28 letters or digits"))?;
    let profile = UserProfile {
        id: user_id.clone(),
        display_name: sign_in.display_name.trim().to_owned(),
        avatar_url: None,
        role: sign_in.role,
    };
    ctx.chat.upsert_user(&demo_actor(), profile).await?;
    let (token, expires_at) = ctx
        .issuer
        .issue(&user_id, sign_in.role, DEMO_TOKEN_LIFETIME);
    Ok(Json(Session {
        token,
        user_id,
        display_name: sign_in.display_name.trim().to_owned(),
        role: sign_in.role,
        expires_at,
    }))
}

/// `POST /demo/threads` body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DemoThread {
    /// The demo token of the user asking.
    token: String,
    /// The display name of the other demo user.
    with: String,
}

/// The thread of a demo pair.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DemoThreadView {
    thread_id: String,
}

/// `POST /demo/threads`: the thread between the signed-in demo user and
/// another one (created on first use; both sides get the same id).
async fn demo_thread(
    State(ctx): State<HttpContext>,
    Body(ask): Body<DemoThread>,
) -> Result<Json<DemoThreadView>, ApiError> {
    let me = ctx
        .verifier
        .verify(&ask.token)
        .ok()
        .filter(|id| id.user_id.starts_with(DEMO_PREFIX))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "sign in to the demo first",
            )
        })?;
    let other =
        demo_user_id(&ask.with).ok_or_else(|| ChatError::invalid("with must name a demo user"))?;
    if other == me.user_id {
        return Err(ChatError::invalid("pick someone else to chat with").into());
    }
    let mut pair = [me.user_id.clone(), other.clone()];
    pair.sort();
    let thread_id = format!(
        "demo:{}:{}",
        &pair[0][DEMO_PREFIX.len()..],
        &pair[1][DEMO_PREFIX.len()..]
    );
    let title = format!(
        "Demo: {} and {}",
        &pair[0][DEMO_PREFIX.len()..],
        &pair[1][DEMO_PREFIX.len()..]
    );
    match ctx
        .chat
        .create_thread(&demo_actor(), Some(thread_id.clone()), title, pair.to_vec())
        .await
    {
        Ok(_) | Err(ChatError::Conflict(_)) => Ok(Json(DemoThreadView { thread_id })),
        Err(ChatError::UnknownUsers(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("{} has not signed in to the demo yet", ask.with.trim()),
        )),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_ids_are_prefixed_slugs_of_the_name() {
        assert_eq!(
            demo_user_id(" Alice Smith ").as_deref(),
            Some("demo-alice-smith")
        );
        assert_eq!(demo_user_id("Bob").as_deref(), Some("demo-bob"));
        assert_eq!(demo_user_id("  !! "), None);
        assert_eq!(demo_user_id(&"x".repeat(29)), None);
    }

    #[test]
    fn every_page_and_script_is_compiled_in() {
        for path in [
            "console/index.html",
            "demo/index.html",
            "vendor/socket.io.esm.min.js",
        ] {
            assert!(Assets::get(path).is_some(), "{path} is not embedded");
        }
    }
}
