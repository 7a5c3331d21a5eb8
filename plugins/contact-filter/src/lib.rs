//! `contact-filter`: masks e-mail addresses, phone numbers, off-platform
//! payment links, messenger links and crypto wallet addresses in messages,
//! so that deals stay on the platform. Untouched text passes unchanged
//! (`pass`, no copy). With `reject = "true"` a message containing any of
//! them is rejected instead of rewritten. Config keys: see
//! `contact-filter.toml`.

pub mod scan;

use chat_plugin_sdk::{HookVerdict, Plugin, Request, config, export_plugin};
use scan::{Kind, Options};

/// The plugin.
pub struct ContactFilter;

impl Plugin for ContactFilter {
    fn on_message(req: Request, body: String) -> HookVerdict {
        let opts = Options {
            emails: config::bool_or("mask-emails", true),
            phones: config::bool_or("mask-phones", true),
            links: config::bool_or("mask-links", true),
            min_phone_digits: config::u64_or("min-phone-digits", 7).clamp(1, 64) as usize,
        };
        let found = scan::scan(&body, &opts);
        if found.is_empty() {
            return HookVerdict::Pass;
        }
        let mut kinds: Vec<Kind> = found.iter().map(|f| f.kind).collect();
        kinds.sort();
        kinds.dedup();
        let labels: Vec<&str> = kinds.iter().map(|k| k.label()).collect();
        chat_plugin_sdk::debug!(
            "{} finding(s) ({}) in a message of {} in thread {}",
            found.len(),
            labels.join(", "),
            req.actor.user_id,
            req.thread.id
        );
        if config::bool_or("reject", false) {
            let reason = config::get("reject-reason").unwrap_or_else(|| {
                "contact details and off-platform payment links are not allowed".to_string()
            });
            HookVerdict::Reject(format!("{reason} ({})", labels.join(", ")))
        } else {
            HookVerdict::Rewrite(scan::mask(&body, &found))
        }
    }
}

export_plugin!(ContactFilter: message_hook);

#[cfg(test)]
mod tests {
    use super::*;
    use chat_plugin_sdk::{Action, Role, testing};

    fn on(body: &str) -> HookVerdict {
        ContactFilter::on_message(
            Request::new(Action::Send, "u1", Role::Client, "t1", &["u1", "u2"]),
            body.to_string(),
        )
    }

    #[test]
    fn passes_clean_text() {
        testing::reset();
        assert_eq!(on("Can we move the deadline to Monday?"), HookVerdict::Pass);
    }

    #[test]
    fn rewrites_by_default() {
        testing::reset();
        assert_eq!(
            on("mail jd@example.com or call 555-123-4567"),
            HookVerdict::rewrite("mail [email hidden] or call [phone hidden]")
        );
        // Logged without the message's content.
        let logs = testing::logs();
        assert_eq!(logs.len(), 1);
        assert!(!logs[0].1.contains("jd@"));
    }

    #[test]
    fn rejects_when_configured() {
        testing::reset();
        testing::set_config("reject", "true");
        assert_eq!(
            on("paypal.me/jd or jd@example.com"),
            HookVerdict::reject(
                "contact details and off-platform payment links are not allowed (e-mail address, payment link)"
            )
        );
        testing::set_config("reject-reason", "keep it on the platform");
        assert_eq!(
            on("+44 20 7946 0958"),
            HookVerdict::reject("keep it on the platform (phone number)")
        );
    }

    #[test]
    fn scanners_follow_config() {
        testing::reset();
        testing::set_config("mask-phones", "false");
        testing::set_config("mask-links", "no");
        assert_eq!(on("555-123-4567 paypal.me/jd"), HookVerdict::Pass);
        testing::set_config("mask-phones", "true");
        testing::set_config("min-phone-digits", "10");
        assert_eq!(on("555-1234"), HookVerdict::Pass);
        assert_eq!(on("555-123-4567"), HookVerdict::rewrite("[phone hidden]"));
    }
}
