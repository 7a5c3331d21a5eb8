//! The policy chain: access (all must allow), rate limit (strictest wins) and
//! message hooks (in order). The built-in rules of the contract are the first
//! links; plugins are appended after them.

use std::sync::Arc;

use async_trait::async_trait;

use super::Limits;
use super::error::ChatError;
use crate::domain::Role;
use crate::domain::policy::{Decider, HookVerdict, Policy, RateLimit, Request, Verdict};

/// What the message hooks made of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hooked {
    /// The body to store.
    pub body: String,
    /// The plugins that rewrote it, in chain order (empty: unchanged).
    pub rewritten_by: Vec<Decider>,
}

/// A body the message hooks refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason, for the sender's `rejected` ack.
    pub reason: String,
    /// The plugin that refused (none: a built-in rule).
    pub by: Option<Decider>,
}

/// The contract's access rule: participants do everything; an admin who is not a
/// participant may only join (read-only) and read history.
pub struct ParticipantAccess;

#[async_trait]
impl Policy for ParticipantAccess {
    fn name(&self) -> &str {
        "builtin:participant-access"
    }

    async fn access(&self, req: &Request<'_>) -> Verdict {
        let participant = req.thread.has_participant(&req.actor.user_id);
        if participant || (req.actor.role == Role::Admin && req.action.is_read_only()) {
            Verdict::Allow
        } else if req.actor.role == Role::Admin {
            Verdict::Deny(
                "admins read threads they are not part of; they cannot write to them".into(),
            )
        } else {
            Verdict::Deny("you are not a participant of this thread".into())
        }
    }
}

/// The default limits of every action (`CHAT_RATE_LIMIT_PER_MINUTE` for
/// sends, `CHAT_*_PER_MINUTE` for the others).
pub struct DefaultRateLimit(pub Limits);

#[async_trait]
impl Policy for DefaultRateLimit {
    fn name(&self) -> &str {
        "builtin:rate-limit"
    }

    async fn rate_limit(&self, req: &Request<'_>) -> Option<RateLimit> {
        Some(self.0.default_rate(req.action))
    }
}

/// The ordered policies every use case consults.
pub struct PolicyChain {
    policies: Vec<Arc<dyn Policy>>,
    limits: Limits,
}

impl PolicyChain {
    /// Appends a link (e.g. the plugins) after the existing ones.
    pub fn with(mut self, policy: Arc<dyn Policy>) -> Self {
        self.policies.push(policy);
        self
    }

    /// The chain of the contract's built-in rules.
    pub fn builtin(limits: Limits) -> Self {
        Self {
            policies: vec![
                Arc::new(ParticipantAccess),
                Arc::new(DefaultRateLimit(limits)),
            ],
            limits,
        }
    }

    /// Every policy must allow; the first denial is `forbidden`.
    pub async fn check_access(&self, req: &Request<'_>) -> Result<(), ChatError> {
        for policy in &self.policies {
            if let Verdict::Deny(reason) = policy.access(req).await {
                tracing::debug!(policy = policy.name(), %reason, "access denied");
                return Err(ChatError::Forbidden(reason));
            }
        }
        Ok(())
    }

    /// The strictest rate limit any policy asks for.
    pub async fn rate_limit(&self, req: &Request<'_>) -> RateLimit {
        let mut strictest: Option<RateLimit> = None;
        for policy in &self.policies {
            if let Some(limit) = policy.rate_limit(req).await
                && strictest.is_none_or(|s| limit.stricter_than(&s))
            {
                strictest = Some(limit);
            }
        }
        strictest.unwrap_or_else(|| self.limits.default_rate(req.action))
    }

    /// Runs the message hooks in order; each sees the previous rewrite; a reject stops.
    pub async fn run_hooks(&self, req: &Request<'_>, mut body: String) -> Result<Hooked, Refusal> {
        let mut rewritten_by = Vec::new();
        for policy in &self.policies {
            match policy.message_hook(req, &body).await {
                HookVerdict::Pass => {}
                HookVerdict::Rewrite(new_body, by) => {
                    body = new_body;
                    rewritten_by.extend(by);
                }
                HookVerdict::Reject(reason, by) => return Err(Refusal { reason, by }),
            }
        }
        Ok(Hooked { body, rewritten_by })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::model::{Actor, ParticipantProfile, ThreadMeta};
    use crate::domain::policy::Action;

    fn thread() -> ThreadMeta {
        let p = |id: &str| ParticipantProfile {
            user_id: id.into(),
            display_name: id.into(),
            avatar_url: None,
            role: Role::Client,
        };
        ThreadMeta {
            id: "t".into(),
            title: "t".into(),
            created_at_ms: 0,
            participants: vec![p("alice"), p("bob")],
        }
    }

    fn actor(id: &str, role: Role) -> Actor {
        Actor {
            user_id: id.into(),
            role,
            connection: None,
        }
    }

    #[tokio::test]
    async fn participants_act_admins_read_others_are_refused() {
        let chain = PolicyChain::builtin(Limits {
            max_body_chars: 10,
            ..Limits::defaults()
        });
        let t = thread();
        let check = |a: Actor, action| {
            let chain = &chain;
            let t = &t;
            async move {
                chain
                    .check_access(&Request {
                        action,
                        actor: &a,
                        thread: t,
                    })
                    .await
                    .is_ok()
            }
        };
        assert!(check(actor("alice", Role::Client), Action::Send).await);
        assert!(check(actor("root", Role::Admin), Action::Join).await);
        assert!(check(actor("root", Role::Admin), Action::History).await);
        assert!(!check(actor("root", Role::Admin), Action::Send).await);
        assert!(!check(actor("root", Role::Admin), Action::Read).await);
        assert!(!check(actor("root", Role::Admin), Action::Typing).await);
        assert!(!check(actor("mallory", Role::Freelancer), Action::Join).await);
    }

    struct Strict;
    #[async_trait]
    impl Policy for Strict {
        fn name(&self) -> &str {
            "strict"
        }
        async fn rate_limit(&self, _req: &Request<'_>) -> Option<RateLimit> {
            Some(RateLimit {
                limit: 5,
                window: Duration::from_secs(10),
            })
        }
        async fn message_hook(&self, _req: &Request<'_>, body: &str) -> HookVerdict {
            if body.contains("forbidden") {
                HookVerdict::Reject("no".into(), None)
            } else {
                HookVerdict::Rewrite(body.to_uppercase(), Vec::new())
            }
        }
    }

    #[tokio::test]
    async fn strictest_limit_wins_and_hooks_chain() {
        let mut chain = PolicyChain::builtin(Limits {
            max_body_chars: 10,
            ..Limits::defaults()
        });
        let (t, a) = (thread(), actor("alice", Role::Client));
        let req = Request {
            action: Action::Send,
            actor: &a,
            thread: &t,
        };
        assert_eq!(chain.rate_limit(&req).await.limit, 25);
        chain.policies.push(Arc::new(Strict)); // 30/min beats 25/min? no: 5 per 10 s is 30/min
        assert_eq!(chain.rate_limit(&req).await.limit, 25);
        chain.policies[1] = Arc::new(DefaultRateLimit(Limits {
            messages_per_minute: 40,
            ..Limits::defaults()
        }));
        assert_eq!(
            chain.rate_limit(&req).await,
            RateLimit {
                limit: 5,
                window: Duration::from_secs(10)
            }
        );
        assert_eq!(chain.run_hooks(&req, "hi".into()).await.unwrap().body, "HI");
        assert_eq!(
            chain.run_hooks(&req, "forbidden".into()).await,
            Err(Refusal {
                reason: "no".into(),
                by: None
            })
        );
    }
}
