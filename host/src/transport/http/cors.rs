//! CORS around everything served over HTTP: the service and admin APIs and the
//! Socket.IO long-polling transport (engine.io's GET and POST requests, sent
//! with credentials when the client sets `withCredentials`). WebSocket
//! upgrades are not subject to CORS; sockets authenticate with their token.
//!
//! An allowed origin gets `Access-Control-Allow-Origin` (its own value, never
//! `*`) and `Access-Control-Allow-Credentials: true`; any other origin gets
//! neither, so the browser keeps the response from the page.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method};
use tower_http::cors::{AllowCredentials, AllowHeaders, AllowOrigin, CorsLayer};
use url::{Host, Url};

use crate::config::CorsOrigins;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// `router` answering cross-origin requests from `origins`; unchanged for
/// [`CorsOrigins::None`] (no CORS headers, preflights are not answered).
pub fn with_cors(router: Router, origins: &CorsOrigins) -> Router {
    let allowed: Arc<dyn Fn(&HeaderValue) -> bool + Send + Sync> = match origins {
        CorsOrigins::None => return router,
        CorsOrigins::Any => Arc::new(|_| true),
        CorsOrigins::Loopback => Arc::new(is_loopback),
        CorsOrigins::List(list) => {
            let list: HashSet<Vec<u8>> = list.iter().map(|o| o.as_bytes().to_vec()).collect();
            Arc::new(move |origin| list.contains(origin.as_bytes()))
        }
    };
    let credentials = allowed.clone();
    router.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| allowed(origin)))
            .allow_credentials(AllowCredentials::predicate(move |origin, _| {
                credentials(origin)
            }))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            // Whatever the preflight asks for (`Authorization`, `Content-Type`,
            // a socket.io-client's `extraHeaders`); only an allowed origin can
            // use the answer.
            .allow_headers(AllowHeaders::mirror_request())
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

/// An `http`/`https` origin on `localhost`, `127.0.0.1` or `[::1]`, any port.
fn is_loopback(origin: &HeaderValue) -> bool {
    let Some(url) = origin.to_str().ok().and_then(|o| Url::parse(o).ok()) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && match url.host() {
            Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_are_local_web_origins_only() {
        for ok in [
            "http://localhost:5173",
            "https://localhost",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
        ] {
            assert!(is_loopback(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in [
            "null",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "https://app.example",
            "file://localhost",
            "chrome-extension://abc",
        ] {
            assert!(!is_loopback(&HeaderValue::from_static(bad)), "{bad}");
        }
    }
}
