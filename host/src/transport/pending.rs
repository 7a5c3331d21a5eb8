//! A cap on connections that have not authenticated: Engine.IO handshakes (a
//! `/socket.io/` request without a `sid`) are counted from the moment they
//! arrive until their Socket.IO connect authenticates, or until the handshake
//! timeout closes their session. With `CHAT_MAX_PENDING_HANDSHAKES` of them
//! pending, a new handshake is answered 503 with `Retry-After`, before any
//! session is made.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
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

/// Middleware: refuses a handshake while the cap of pending ones is reached.
pub async fn limit(
    State(pending): State<Arc<PendingHandshakes>>,
    request: Request,
    next: Next,
) -> Response {
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
}
