//! `evil-loop` (test plugin): its access hook never returns. The host must
//! stop it at its time limit and apply its fail policy.

use chat_plugin_sdk::{Plugin, Request, Verdict, export_plugin};

/// The plugin.
pub struct EvilLoop;

impl Plugin for EvilLoop {
    fn check(req: Request) -> Verdict {
        let mut n: u64 = req.actor.user_id.len() as u64;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export_plugin!(EvilLoop: access);
