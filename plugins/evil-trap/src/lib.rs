//! `evil-trap` (test plugin): its access hook panics (`mode = "panic"`, the
//! default: a message on stderr, then a trap) or executes `unreachable`
//! (`mode = "unreachable"`). The host must survive, log the fault and apply
//! the fail policy; the trapped instance cannot be entered again.

use chat_plugin_sdk::{Plugin, Request, Verdict, config, export_plugin};

/// The plugin.
pub struct EvilTrap;

impl Plugin for EvilTrap {
    fn check(req: Request) -> Verdict {
        if config::get_or("mode", "panic") == "unreachable" {
            #[cfg(target_arch = "wasm32")]
            core::arch::wasm32::unreachable();
        }
        panic!(
            "evil-trap: deliberate panic in check for {}",
            req.actor.user_id
        )
    }
}

export_plugin!(EvilTrap: access);
