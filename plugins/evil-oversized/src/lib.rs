//! `evil-oversized` (test plugin): its message hook returns a huge answer,
//! which the host must cap: a rewrite (`kind = "rewrite"`, the default) or a
//! reject reason (`kind = "reject"`) of `size-mb` MiB (default 64).

use chat_plugin_sdk::{HookVerdict, Plugin, Request, config, export_plugin};

/// The plugin.
pub struct EvilOversized;

impl Plugin for EvilOversized {
    fn on_message(_req: Request, _body: String) -> HookVerdict {
        let size = config::u64_or("size-mb", 64) as usize * 1024 * 1024;
        let huge = "x".repeat(size);
        match config::get_or("kind", "rewrite").as_str() {
            "reject" => HookVerdict::Reject(huge),
            _ => HookVerdict::Rewrite(huge),
        }
    }
}

export_plugin!(EvilOversized: message_hook);
