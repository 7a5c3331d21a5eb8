//! `tiered-rate-limit`: a rate-limit policy per role, and a stricter one for
//! new accounts, all from the manifest's `[config]` (see
//! `tiered-rate-limit.toml` for the keys). The host enforces the policy with
//! its own counters; this plugin only chooses it.
//!
//! An account is "new" when
//! - an admin set the kv key `new:<userId>` (any value; give it a TTL to make
//!   it expire), or
//! - `new-account-age` is configured and the plugin first saw the user less
//!   than that long ago: on a user's first request it records
//!   `first-seen:<userId>` = now (ms) in its kv store;
//!
//! unless an admin set `trusted:<userId>`, which makes an account never new.

use chat_plugin_sdk::{Action, Plugin, RateLimit, Request, Role, config, export_plugin, host, kv};

/// The plugin.
pub struct TieredRateLimit;

impl Plugin for TieredRateLimit {
    fn policy(req: Request) -> Option<RateLimit> {
        if !applies_to(req.action, &config::get_or("actions", "send")) {
            return None;
        }
        let role_rate = config::rate(req.actor.role.as_str());
        if req.actor.role == Role::Admin {
            return role_rate;
        }
        let new_rate = config::rate("new-account");
        if new_rate.is_some() && is_new_account(&req.actor.user_id) {
            return stricter(role_rate, new_rate);
        }
        role_rate
    }
}

export_plugin!(TieredRateLimit: rate_limit);

/// Whether `action` is in the comma-separated list `actions` (`*` = all).
pub fn applies_to(action: Action, actions: &str) -> bool {
    config::parse_list(actions)
        .iter()
        .any(|a| a == "*" || Action::parse(a) == Some(action))
}

/// The stricter of two optional policies (the lower rate; `None` = no opinion).
pub fn stricter(a: Option<RateLimit>, b: Option<RateLimit>) -> Option<RateLimit> {
    match (a, b) {
        (Some(a), Some(b)) => {
            // a.limit / a.window < b.limit / b.window, without division.
            let lhs = a.limit as u128 * b.window_ms as u128;
            let rhs = b.limit as u128 * a.window_ms as u128;
            Some(if lhs <= rhs { a } else { b })
        }
        (a, None) => a,
        (None, b) => b,
    }
}

/// Decides whether `user` counts as a new account (see the crate docs);
/// records `first-seen:<user>` on the first sight when an age is configured.
fn is_new_account(user: &str) -> bool {
    if kv::exists(&kv::key(&["trusted", user])) {
        return false;
    }
    if kv::exists(&kv::key(&["new", user])) {
        return true;
    }
    let Some(age_ms) = config::duration_ms("new-account-age") else {
        return false;
    };
    let now = host::now_ms();
    let key = kv::key(&["first-seen", user]);
    match kv::get_i64(&key) {
        Some(first) => now.saturating_sub(first) < age_ms as i64,
        None => {
            // Kept a little beyond the age: once it expires the user is no
            // longer new anyway, and the store does not grow without bound.
            let ttl = age_ms.saturating_add(age_ms / 10).max(1);
            if let Err(e) = kv::set_with_ttl(&key, &now.to_string(), ttl) {
                host::warn(&format!("cannot record first sight of {user}: {e}"));
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_plugin_sdk::testing;

    fn req(role: Role, user: &str) -> Request {
        Request::new(Action::Send, user, role, "t1", &[user, "other"])
    }

    fn setup() {
        testing::reset();
        testing::set_config("client", "20/60s");
        testing::set_config("freelancer", "30/60s");
        testing::set_config("new-account", "5/60s");
    }

    #[test]
    fn per_role() {
        setup();
        assert_eq!(
            TieredRateLimit::policy(req(Role::Client, "c")),
            Some(RateLimit::new(20, 60_000))
        );
        assert_eq!(
            TieredRateLimit::policy(req(Role::Freelancer, "f")),
            Some(RateLimit::new(30, 60_000))
        );
        assert_eq!(
            TieredRateLimit::policy(req(Role::Admin, "a")),
            None,
            "no admin key: host default"
        );
        testing::set_config("admin", "1000/1m");
        assert_eq!(
            TieredRateLimit::policy(req(Role::Admin, "a")),
            Some(RateLimit::new(1000, 60_000))
        );
    }

    #[test]
    fn only_configured_actions() {
        setup();
        let mut r = req(Role::Client, "c");
        r.action = Action::Typing;
        assert_eq!(TieredRateLimit::policy(r.clone()), None);
        testing::set_config("actions", "send, typing");
        assert_eq!(
            TieredRateLimit::policy(r.clone()),
            Some(RateLimit::new(20, 60_000))
        );
        testing::set_config("actions", "*");
        r.action = Action::Read;
        assert!(TieredRateLimit::policy(r).is_some());
    }

    #[test]
    fn new_account_marked_by_admin() {
        setup();
        testing::kv_put("new:c", "1");
        assert_eq!(
            TieredRateLimit::policy(req(Role::Client, "c")),
            Some(RateLimit::new(5, 60_000))
        );
        testing::kv_put("trusted:c", "1");
        assert_eq!(
            TieredRateLimit::policy(req(Role::Client, "c")),
            Some(RateLimit::new(20, 60_000))
        );
        // Without age tracking nothing is written.
        assert_eq!(testing::kv_keys(), vec!["new:c", "trusted:c"]);
    }

    #[test]
    fn new_account_by_age() {
        setup();
        testing::set_config("new-account-age", "24h");
        assert_eq!(
            TieredRateLimit::policy(req(Role::Freelancer, "f")),
            Some(RateLimit::new(5, 60_000))
        );
        assert!(testing::kv_value("first-seen:f").is_some());
        testing::advance_ms(23 * 3_600_000);
        assert_eq!(
            TieredRateLimit::policy(req(Role::Freelancer, "f")),
            Some(RateLimit::new(5, 60_000))
        );
        testing::advance_ms(3_600_000);
        assert_eq!(
            TieredRateLimit::policy(req(Role::Freelancer, "f")),
            Some(RateLimit::new(30, 60_000))
        );
        // Admins are never "new".
        assert_eq!(TieredRateLimit::policy(req(Role::Admin, "a")), None);
        assert!(testing::kv_value("first-seen:a").is_none());
    }

    #[test]
    fn new_account_limit_never_loosens() {
        setup();
        testing::set_config("new-account", "100/60s");
        testing::kv_put("new:c", "1");
        assert_eq!(
            TieredRateLimit::policy(req(Role::Client, "c")),
            Some(RateLimit::new(20, 60_000))
        );
    }

    #[test]
    fn stricter_compares_rates() {
        let a = Some(RateLimit::new(5, 60_000));
        let b = Some(RateLimit::new(1, 1_000));
        assert_eq!(stricter(a, b), a);
        assert_eq!(stricter(b, a), a);
        assert_eq!(stricter(None, b), b);
        assert_eq!(stricter(a, None), a);
        assert_eq!(stricter(None, None), None);
    }

    #[test]
    fn invalid_config_is_logged_and_ignored() {
        setup();
        testing::set_config("client", "lots");
        assert_eq!(TieredRateLimit::policy(req(Role::Client, "c")), None);
        assert!(
            testing::logs()
                .iter()
                .any(|(_, m)| m.contains("invalid value"))
        );
    }
}
