//! `evil-memory` (test plugin): its message hook allocates (and touches)
//! memory without bound. The host's memory cap must stop it (the allocation
//! fails and the guest traps).

use chat_plugin_sdk::{HookVerdict, Plugin, Request, export_plugin};

/// The plugin.
pub struct EvilMemory;

impl Plugin for EvilMemory {
    fn on_message(_req: Request, body: String) -> HookVerdict {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xA5; 1 << 20]);
            std::hint::black_box(&hoard);
            if hoard.len() == usize::MAX {
                return HookVerdict::Rewrite(body);
            }
        }
    }
}

export_plugin!(EvilMemory: message_hook);
