//! What the transport keeps per socket to protect everyone else from it: the
//! token's expiry (refreshed by `chat:refresh-token`), the events it has in
//! flight, and how often it was refused as `rate_limited`. A socket past its
//! token's lifetime, or one that keeps flooding, gets `chat:closing` and is
//! disconnected.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use crate::auth::{Identity, TokenVerifier, time_left};
use crate::chat::error::ChatError;
use crate::config::Config;
use crate::domain::policy::{RateBucket, RateLimit};
use crate::domain::server_events::{CloseReason, ClosingEvent};
use crate::domain::{Millis, rfc3339};

/// What a socket with its queue full is told to wait.
const IN_FLIGHT_RETRY_MS: u64 = 100;
/// Events of a socket that may wait for a slot, per slot: a client flushing
/// its offline buffer waits its turn, a flood is refused.
const QUEUED_PER_SLOT: usize = 16;
/// The window of [`SocketLimits::flood_disconnect_after`].
const FLOOD_WINDOW: Duration = Duration::from_secs(10);

/// The transport's per-socket limits (`CHAT_MAX_IN_FLIGHT_PER_SOCKET`,
/// `CHAT_MAX_SOCKETS_PER_USER`, `CHAT_FLOOD_DISCONNECT_AFTER`).
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    /// Events of one socket handled at once; 8 times as many more wait their
    /// turn, and the rest are refused `rate_limited`.
    pub max_in_flight: usize,
    /// Sockets of one user on this instance.
    pub max_sockets_per_user: usize,
    /// `rate_limited` answers within 10 s after which the socket is closed; 0: never.
    pub flood_disconnect_after: u32,
}

impl SocketLimits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_in_flight: config.max_in_flight_per_socket,
            max_sockets_per_user: config.max_sockets_per_user,
            flood_disconnect_after: config.flood_disconnect_after,
        }
    }
}

/// Payload of `chat:refresh-token`.
#[derive(Debug, Deserialize)]
struct RefreshPayload {
    token: String,
}

/// Ack of `chat:refresh-token`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Refreshed {
    /// RFC 3339 time the new token expires.
    expires_at: String,
}

/// What to do with a `rate_limited` answer ([`Guard::refused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Send it.
    Answer,
    /// Send it, then close the socket as a flooder (once).
    Close,
    /// The socket is being closed: send nothing more, so the refusals of a
    /// flood cannot fill its buffer ahead of `chat:closing`.
    Drop,
}

/// One socket's guard.
pub(super) struct Guard {
    limits: SocketLimits,
    /// `exp` of the current token, in seconds.
    expires_at: AtomicU64,
    refreshed: Notify,
    in_flight: Semaphore,
    /// Events waiting for an `in_flight` permit.
    queued: AtomicUsize,
    refusals: Mutex<RateBucket>,
    /// Set once the socket is closed for flooding.
    flooding: AtomicBool,
    /// Cancelled when the socket is gone.
    gone: CancellationToken,
}

/// RFC 3339 form of a token's `exp`.
pub(super) fn expiry_time(expires_at: u64) -> String {
    rfc3339(Millis::try_from(expires_at.saturating_mul(1000)).unwrap_or(Millis::MAX))
}

impl Guard {
    /// The guard of a socket authenticated as `identity`.
    pub(super) fn new(identity: &Identity, limits: SocketLimits) -> Self {
        Self {
            limits,
            expires_at: AtomicU64::new(identity.expires_at),
            refreshed: Notify::new(),
            in_flight: Semaphore::new(limits.max_in_flight.max(1)),
            queued: AtomicUsize::new(0),
            refusals: Mutex::new(RateBucket::new(Instant::now())),
            flooding: AtomicBool::new(false),
            gone: CancellationToken::new(),
        }
    }

    /// Lets one event in: `unauthorized` once the token expired; otherwise a
    /// slot of the socket's events in flight, after waiting in its queue, or
    /// `rate_limited` when the queue is full too. Hold the permit until the
    /// event is answered.
    pub(super) async fn admit(&self) -> Result<SemaphorePermit<'_>, ChatError> {
        if time_left(self.expires_at.load(Ordering::Relaxed)).is_zero() {
            return Err(ChatError::Unauthorized(
                "token expired: send chat:refresh-token before it expires, or reconnect with a new one"
                    .into(),
            ));
        }
        if let Ok(permit) = self.in_flight.try_acquire() {
            return Ok(permit);
        }
        let queue = self.limits.max_in_flight.max(1) * QUEUED_PER_SLOT;
        if self.queued.fetch_add(1, Ordering::Relaxed) >= queue {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(ChatError::RateLimited {
                retry_after_ms: IN_FLIGHT_RETRY_MS,
            });
        }
        let permit = self.in_flight.acquire().await;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        permit.map_err(|_| ChatError::Unavailable("the connection is closing".into()))
    }

    /// Counts one `rate_limited` answer and tells what to do with it.
    pub(super) fn refused(&self) -> Refusal {
        if self.flooding.load(Ordering::Relaxed) {
            return Refusal::Drop;
        }
        let allowed = self.limits.flood_disconnect_after;
        if allowed == 0 {
            return Refusal::Answer;
        }
        let limit = RateLimit {
            limit: allowed,
            window: FLOOD_WINDOW,
        };
        let mut bucket = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        if bucket.take(Instant::now(), limit).is_ok() {
            Refusal::Answer
        } else if self.flooding.swap(true, Ordering::Relaxed) {
            Refusal::Drop
        } else {
            Refusal::Close
        }
    }

    /// `chat:refresh-token`: a valid token of the same user and role moves the
    /// socket's expiry.
    pub(super) fn refresh(
        &self,
        verifier: &TokenVerifier,
        current: &Identity,
        payload: serde_json::Value,
    ) -> Result<Refreshed, ChatError> {
        let p: RefreshPayload = crate::chat::validate::payload(payload)?;
        let fresh = verifier
            .verify(&p.token)
            .map_err(|e| ChatError::Unauthorized(e.to_string()))?;
        if fresh.user_id != current.user_id || fresh.role != current.role {
            return Err(ChatError::Unauthorized(
                "the token is for another user or role".into(),
            ));
        }
        self.expires_at.store(fresh.expires_at, Ordering::Relaxed);
        self.refreshed.notify_one();
        Ok(Refreshed {
            expires_at: expiry_time(fresh.expires_at),
        })
    }

    /// Ends [`Guard::expired`] and any other wait on this socket.
    pub(super) fn close(&self) {
        self.gone.cancel();
    }

    /// Resolves when the token expired without a refresh (true), or when the
    /// socket is gone (false).
    pub(super) async fn expired(&self) -> bool {
        loop {
            let left = time_left(self.expires_at.load(Ordering::Relaxed));
            if left.is_zero() {
                return true;
            }
            tokio::select! {
                () = tokio::time::sleep(left) => {}
                () = self.refreshed.notified() => {}
                () = self.gone.cancelled() => return false,
            }
        }
    }
}

/// The `chat:closing` event for `reason`.
pub(super) fn closing(reason: CloseReason) -> ClosingEvent {
    let message = match reason {
        CloseReason::TokenExpired => "your token expired; reconnect with a new one",
        CloseReason::Flooding => "too many refused events; wait, then reconnect",
    };
    ClosingEvent {
        reason,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn identity(expires_at: u64) -> Identity {
        Identity {
            user_id: "u1".into(),
            role: Role::Client,
            expires_at,
        }
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    const LIMITS: SocketLimits = SocketLimits {
        max_in_flight: 2,
        max_sockets_per_user: 4,
        flood_disconnect_after: 3,
    };

    #[tokio::test]
    async fn events_beyond_the_slots_wait_in_a_bounded_queue() {
        let guard = std::sync::Arc::new(Guard::new(&identity(now() + 60), LIMITS));
        let first = guard.admit().await.unwrap();
        let _second = guard.admit().await.unwrap();
        let queue = LIMITS.max_in_flight * QUEUED_PER_SLOT;
        let waiting: Vec<_> = (0..queue)
            .map(|_| {
                let guard = guard.clone();
                tokio::spawn(async move { guard.admit().await.map(drop).is_ok() })
            })
            .collect();
        while guard.queued.load(Ordering::Relaxed) < queue {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            guard.admit().await,
            Err(ChatError::RateLimited { .. })
        ));
        drop(first);
        for waiter in waiting {
            assert!(waiter.await.unwrap(), "every queued event got its turn");
        }
    }

    #[test]
    fn refusals_past_the_allowance_are_a_flood() {
        let guard = Guard::new(&identity(now() + 60), LIMITS);
        for _ in 0..3 {
            assert_eq!(guard.refused(), Refusal::Answer);
        }
        assert_eq!(
            guard.refused(),
            Refusal::Close,
            "the fourth refusal within 10 s is a flood"
        );
        assert_eq!(guard.refused(), Refusal::Drop, "closed once, then silent");
    }

    #[tokio::test]
    async fn an_expired_token_lets_nothing_in() {
        let guard = Guard::new(&identity(now() - 5), LIMITS);
        assert!(matches!(
            guard.admit().await,
            Err(ChatError::Unauthorized(_))
        ));
    }
}
