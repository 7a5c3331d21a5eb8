//! All generated code: host bindings of the `chat:plugin@0.1.0` WIT package (`wit/`).
//! The `plugin` world has every import and every hook export; a component
//! exports any subset, found at load time through each hook's `GuestIndices`.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "chat:plugin/plugin",
});

pub use chat::plugin::types::{
    Action, Actor, Event, HookVerdict, LogLevel, RateLimit, Request, Role, ThreadInfo, Verdict,
};
pub use exports::chat::plugin::{access, events, message_hook, rate_limit};
