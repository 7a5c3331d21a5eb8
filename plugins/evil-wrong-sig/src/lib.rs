//! `evil-wrong-sig` (test plugin): exports `chat:plugin/access@0.1.0` with a
//! wrong signature (`check: func(user-id: string) -> bool`). The host must
//! refuse it with a clear error.

#[allow(missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ world: "wrong-sig", path: "wit" });
}

use bindings::exports::chat::plugin::access::Guest;

/// The plugin.
pub struct WrongSig;

impl Guest for WrongSig {
    fn check(_user_id: String) -> bool {
        true
    }
}

#[cfg(target_arch = "wasm32")]
bindings::export!(WrongSig with_types_in bindings);
