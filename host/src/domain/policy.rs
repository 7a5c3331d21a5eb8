//! The policy port: what a policy is asked (a [`Request`]) and what it may
//! answer. The use cases run a chain of [`Policy`] links; the built-in rules and
//! the plugin runtime implement it, so neither depends on the other.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::model::{Actor, ThreadMeta};

/// The action being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `chat:join`.
    Join,
    /// `chat:send-message`.
    Send,
    /// `chat:read`.
    Read,
    /// `chat:typing`.
    Typing,
    /// `chat:history` and the admin history API.
    History,
}

impl Action {
    /// Lower-case name, as in the WIT `action` enum and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Send => "send",
            Self::Read => "read",
            Self::Typing => "typing",
            Self::History => "history",
        }
    }

    /// True for actions that only read the thread.
    pub fn is_read_only(self) -> bool {
        matches!(self, Self::Join | Self::History)
    }
}

/// Everything a policy may look at to decide.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// What is being done.
    pub action: Action,
    /// Who does it.
    pub actor: &'a Actor,
    /// The thread it is done to.
    pub thread: &'a ThreadMeta,
}

/// An access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Allow,
    /// Stop with `forbidden` and this reason.
    Deny(String),
}

/// At most `limit` actions per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Actions allowed per window.
    pub limit: u32,
    /// Window length.
    pub window: Duration,
}

impl RateLimit {
    /// True if `self` allows fewer actions per unit of time than `other`.
    pub fn stricter_than(&self, other: &RateLimit) -> bool {
        u128::from(self.limit) * other.window.as_millis()
            < u128::from(other.limit) * self.window.as_millis()
    }
}

/// A [`RateLimit`] kept by the generic cell rate algorithm: up to `limit`
/// actions at once, then one more every `window / limit`. Its whole state is
/// the time the next action is due (the theoretical arrival time).
#[derive(Debug, Clone, Copy)]
pub struct RateBucket {
    due: Instant,
}

impl RateBucket {
    /// A full bucket.
    pub fn new(now: Instant) -> Self {
        Self { due: now }
    }

    /// Spends one action at `now` under `limit`, or tells how long until one
    /// more is allowed. A limit of 0 allows nothing.
    pub fn take(&mut self, now: Instant, limit: RateLimit) -> Result<(), Duration> {
        if limit.limit == 0 {
            return Err(limit.window);
        }
        let interval = limit.window / limit.limit;
        let due = self.due.max(now) + interval;
        let ahead = due - now;
        if ahead > limit.window {
            return Err(ahead - limit.window);
        }
        self.due = due;
        Ok(())
    }

    /// True when the bucket is full again, so forgetting it changes nothing.
    pub fn is_full(&self, now: Instant) -> bool {
        self.due <= now
    }
}

/// The plugin behind a verdict that changed a message: recorded with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decider {
    /// The plugin's name.
    pub plugin: String,
    /// Its manifest's version.
    pub version: String,
}

/// A message hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    /// Keep the body.
    Pass,
    /// Replace the body; the plugins that rewrote it, in chain order.
    Rewrite(String, Vec<Decider>),
    /// Refuse the message with `rejected` and this reason; the plugin that
    /// refused (none: a built-in rule).
    Reject(String, Option<Decider>),
}

/// One link of the chain. Every method has a neutral default, so a policy
/// implements only what it decides.
#[async_trait]
pub trait Policy: Send + Sync {
    /// Name used in logs and metrics.
    fn name(&self) -> &str;
    /// Access decision.
    async fn access(&self, _req: &Request<'_>) -> Verdict {
        Verdict::Allow
    }
    /// Rate-limit policy for the action, or `None` for no opinion.
    async fn rate_limit(&self, _req: &Request<'_>) -> Option<RateLimit> {
        None
    }
    /// Inspects or rewrites a body before it is stored.
    async fn message_hook(&self, _req: &Request<'_>, _body: &str) -> HookVerdict {
        HookVerdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_burst_then_one_per_interval() {
        let limit = RateLimit {
            limit: 3,
            window: Duration::from_secs(3),
        };
        let start = Instant::now();
        let mut bucket = RateBucket::new(start);
        for _ in 0..3 {
            assert_eq!(bucket.take(start, limit), Ok(()));
        }
        assert_eq!(bucket.take(start, limit), Err(Duration::from_secs(1)));
        let later = start + Duration::from_millis(1500);
        assert_eq!(bucket.take(later, limit), Ok(()));
        assert_eq!(
            bucket.take(later, limit),
            Err(Duration::from_millis(500)),
            "the refused take spent nothing"
        );
        assert!(!bucket.is_full(later));
        assert!(bucket.is_full(start + Duration::from_secs(4)));
        let none = RateLimit { limit: 0, ..limit };
        assert_eq!(RateBucket::new(start).take(start, none), Err(limit.window));
    }
}
