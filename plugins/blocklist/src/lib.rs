//! `blocklist`: denies users an admin has blocked.
//!
//! An admin blocks a user by setting, in this plugin's kv store (host admin
//! API), the key
//! - `blocked:<userId>`: everywhere, or
//! - `blocked:<threadId>:<userId>`: in one thread.
//!
//! The value is an optional reason shown to the user (`"1"`, `"true"` or an
//! empty value mean none); a TTL on the key makes the block temporary.
//! Admins are exempt unless `exempt-admins = "false"`.
//!
//! With `deny-sends-to-blocked = "true"`, nobody can send into a thread one of
//! whose participants is blocked everywhere either: a client stops writing to a
//! freelancer under investigation (and their payment details stay unsent).

use chat_plugin_sdk::{Action, Plugin, Request, Role, Verdict, config, export_plugin, kv};

/// The plugin.
pub struct Blocklist;

impl Plugin for Blocklist {
    fn check(req: Request) -> Verdict {
        if req.actor.role == Role::Admin && config::bool_or("exempt-admins", true) {
            return Verdict::Allow;
        }
        let user = &req.actor.user_id;
        if let Some(value) = kv::get(&kv::key(&["blocked", user])) {
            return Verdict::Deny(reason("you are blocked", &value));
        }
        if let Some(value) = kv::get(&kv::key(&["blocked", &req.thread.id, user])) {
            return Verdict::Deny(reason("you are blocked in this thread", &value));
        }
        if req.action == Action::Send && config::bool_or("deny-sends-to-blocked", false) {
            let blocked =
                req.thread.participants().into_iter().any(|other| {
                    other != *user && kv::get(&kv::key(&["blocked", &other])).is_some()
                });
            if blocked {
                return Verdict::deny("this conversation is on hold: a participant is blocked");
            }
        }
        Verdict::Allow
    }
}

export_plugin!(Blocklist: access);

/// The deny reason: `base`, plus the admin's reason stored as the key's value.
pub fn reason(base: &str, value: &str) -> String {
    let v = value.trim();
    if v.is_empty() || v == "1" || v.eq_ignore_ascii_case("true") {
        base.to_string()
    } else {
        // Keep the reason short whatever an admin stored.
        let v: String = v.chars().take(200).collect();
        format!("{base}: {v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_plugin_sdk::testing;

    fn req(role: Role, user: &str, thread: &str) -> Request {
        Request::new(Action::Send, user, role, thread, &[user])
    }

    #[test]
    fn allows_by_default() {
        testing::reset();
        assert_eq!(
            Blocklist::check(req(Role::Client, "u1", "t1")),
            Verdict::Allow
        );
    }

    #[test]
    fn global_block() {
        testing::reset();
        testing::kv_put("blocked:u1", "1");
        assert_eq!(
            Blocklist::check(req(Role::Client, "u1", "t1")),
            Verdict::deny("you are blocked")
        );
        assert_eq!(
            Blocklist::check(req(Role::Client, "u2", "t1")),
            Verdict::Allow
        );
        testing::kv_put("blocked:u1", "spam, see ticket 42");
        assert_eq!(
            Blocklist::check(req(Role::Freelancer, "u1", "t9")),
            Verdict::deny("you are blocked: spam, see ticket 42")
        );
    }

    #[test]
    fn thread_block() {
        testing::reset();
        testing::kv_put("blocked:t1:u1", "");
        assert_eq!(
            Blocklist::check(req(Role::Client, "u1", "t1")),
            Verdict::deny("you are blocked in this thread")
        );
        assert_eq!(
            Blocklist::check(req(Role::Client, "u1", "t2")),
            Verdict::Allow
        );
    }

    #[test]
    fn sends_to_a_blocked_participant_are_denied_when_configured() {
        testing::reset();
        testing::kv_put("blocked:bob", "1");
        let to_bob = |action| Request::new(action, "alice", Role::Client, "t1", &["alice", "bob"]);
        assert_eq!(Blocklist::check(to_bob(Action::Send)), Verdict::Allow);
        testing::set_config("deny-sends-to-blocked", "true");
        assert_eq!(
            Blocklist::check(to_bob(Action::Send)),
            Verdict::deny("this conversation is on hold: a participant is blocked")
        );
        assert_eq!(Blocklist::check(to_bob(Action::Read)), Verdict::Allow);
        let others = Request::new(
            Action::Send,
            "alice",
            Role::Client,
            "t2",
            &["alice", "carol"],
        );
        assert_eq!(Blocklist::check(others), Verdict::Allow);
    }

    #[test]
    fn admins_exempt_unless_configured() {
        testing::reset();
        testing::kv_put("blocked:a", "1");
        assert_eq!(
            Blocklist::check(req(Role::Admin, "a", "t1")),
            Verdict::Allow
        );
        testing::set_config("exempt-admins", "false");
        assert_eq!(
            Blocklist::check(req(Role::Admin, "a", "t1")),
            Verdict::deny("you are blocked")
        );
    }

    #[test]
    fn long_reasons_are_cut() {
        assert_eq!(reason("x", &"é".repeat(500)).chars().count(), 3 + 200);
    }
}
