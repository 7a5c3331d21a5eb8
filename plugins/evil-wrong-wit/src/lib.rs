//! `evil-wrong-wit` (test plugin): exports `chat:plugin/access@9.0.0`, built
//! against an incompatible major version of the WIT package. The host must
//! refuse it (no hook of `chat:plugin@0.1.x`), and keep the old version of a
//! plugin it was meant to replace.

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ world: "wrong-wit", path: "wit" });
}

use bindings::exports::chat::plugin::access::{Guest, Request, Verdict};

/// The plugin.
pub struct WrongWit;

impl Guest for WrongWit {
    fn check(_req: Request) -> Verdict {
        Verdict::Allow
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(WrongWit with_types_in bindings);
