//! A cap on connections that have not authenticated: Engine.IO handshakes (a
//! `/socket.io/` request without a `sid`) are counted from the moment they
//! arrive until their Socket.IO connect authenticates, or until the handshake
//! timeout closes their session. With `CHAT_MAX_PENDING_HANDSHAKES` of them
//! pending, a new handshake is answered 503 with `Retry-After`, before any
//! session is made.
//!
//! The same middleware copies each Engine.IO request's head out of hyper's read
//! buffer ([`own_head`]): a WebSocket session keeps that head for its whole
//! life, and hyper's parsed URI and header values are slices of its 8 KiB buffer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::Config;

/// The handshakes that have not authenticated yet, oldest first.
pub struct PendingHandshakes {
    cap: usize,
    /// How long an unauthenticated session lives (`CHAT_HANDSHAKE_TIMEOUT_MS`).
    lifetime: Duration,
    started: Mutex<VecDeque<Instant>>,
}

impl PendingHandshakes {
    /// At most `cap` pending (0: no cap), each for at most `lifetime`.
    pub fn new(cap: usize, lifetime: Duration) -> Self {
        Self {
            cap,
            lifetime,
            started: Mutex::new(VecDeque::new()),
        }
    }

    /// The cap and lifetime `config` sets.
    pub fn from_config(config: &Config) -> Self {
        Self::new(
            config.max_pending_handshakes,
            Duration::from_millis(config.handshake_timeout_ms),
        )
    }

    /// Counts one more handshake, unless the cap is reached.
    fn admit(&self) -> bool {
        if self.cap == 0 {
            return true;
        }
        let now = Instant::now();
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        while started
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.lifetime)
        {
            started.pop_front();
        }
        if started.len() >= self.cap {
            return false;
        }
        started.push_back(now);
        true
    }

    /// One pending handshake authenticated (which one does not matter: only
    /// the count does).
    pub fn authenticated(&self) {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
    }
}

/// Whether `uri` opens an Engine.IO session (no `sid` yet).
fn is_handshake(uri: &Uri) -> bool {
    uri.path().starts_with("/socket.io")
        && !uri
            .query()
            .unwrap_or("")
            .split('&')
            .any(|pair| pair.starts_with("sid="))
}

/// Gives a request its own copy of its URI and headers, and drops axum's
/// `OriginalUri` (another slice of the same buffer), so nothing the request
/// keeps points into hyper's connection read buffer (8 KiB, which an upgraded
/// connection would otherwise hold for as long as its socket lives).
fn own_head(request: &mut Request) {
    if let Ok(uri) = Uri::try_from(request.uri().to_string()) {
        *request.uri_mut() = uri;
    }
    let headers = request.headers();
    let mut owned = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            owned.append(name, value);
        }
    }
    *request.headers_mut() = owned;
    request.extensions_mut().remove::<OriginalUri>();
}

/// Middleware of Engine.IO requests: refuses a handshake while the cap of
/// pending ones is reached, and detaches every other one from hyper's read
/// buffer ([`own_head`]; an upgraded WebSocket keeps its request's head, a
/// new session's or an upgrade's, for as long as it lives).
pub async fn limit(
    State(pending): State<Arc<PendingHandshakes>>,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/socket.io") {
        return next.run(request).await;
    }
    if is_handshake(request.uri()) && !pending.admit() {
        metrics::counter!("chat_handshakes_refused_total", "reason" => "too_many_pending")
            .increment(1);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "too many connections are authenticating; retry",
        )
            .into_response();
    }
    own_head(&mut request);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_handshakes_are_capped_until_they_authenticate_or_expire() {
        let pending = PendingHandshakes::new(2, Duration::from_millis(50));
        assert!(pending.admit() && pending.admit());
        assert!(!pending.admit(), "the cap");
        pending.authenticated();
        assert!(pending.admit(), "an authenticated one frees its place");
        assert!(!pending.admit());
        std::thread::sleep(Duration::from_millis(60));
        assert!(pending.admit(), "expired sessions free theirs");
        assert!(
            PendingHandshakes::new(0, Duration::ZERO).admit(),
            "0: no cap"
        );
    }

    #[test]
    fn only_requests_without_a_sid_are_handshakes() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(is_handshake(&uri("/socket.io/?EIO=4&transport=polling")));
        assert!(is_handshake(&uri("/socket.io/?EIO=4&transport=websocket")));
        assert!(!is_handshake(&uri(
            "/socket.io/?EIO=4&transport=websocket&sid=abc"
        )));
        assert!(!is_handshake(&uri("/api/threads")));
    }

    #[test]
    fn a_handshake_keeps_nothing_of_the_read_buffer() {
        // What hyper does: the URI and header values are slices of its read buffer.
        let buffer = bytes::Bytes::from_static(
            b"/socket.io/?EIO=4&transport=websocket x-forwarded-for: 10.0.0.1 padding",
        );
        let inside = |p: *const u8| buffer.as_ptr_range().contains(&p);
        let mut request = Request::new(axum::body::Body::empty());
        *request.uri_mut() = Uri::from_maybe_shared(buffer.slice(0..37)).unwrap();
        request.headers_mut().insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_maybe_shared(buffer.slice(55..63)).unwrap(),
        );
        let original = OriginalUri(request.uri().clone());
        request.extensions_mut().insert(original);
        assert!(inside(request.uri().path().as_ptr()), "the test's premise");

        own_head(&mut request);
        assert_eq!(request.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert!(!inside(request.uri().path().as_ptr()));
        assert!(!inside(request.uri().query().unwrap().as_ptr()));
        let value = &request.headers()["x-forwarded-for"];
        assert_eq!(value, "10.0.0.1");
        assert!(!inside(value.as_bytes().as_ptr()));
        assert!(request.extensions().get::<OriginalUri>().is_none());
    }
}
