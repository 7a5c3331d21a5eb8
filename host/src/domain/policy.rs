//! The policy port: what a policy is asked (a [`Request`]) and what it may
//! answer. The use cases run a chain of [`Policy`] links; the built-in rules and
//! the plugin runtime implement it, so neither depends on the other.

use std::time::Duration;

use async_trait::async_trait;

use super::model::{Actor, ThreadMeta};

/// The action being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// A message hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookVerdict {
    /// Keep the body.
    Pass,
    /// Replace the body.
    Rewrite(String),
    /// Refuse the message with `rejected` and this reason.
    Reject(String),
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
