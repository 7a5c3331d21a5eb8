//! All generated code: host bindings of the `chat:plugin@0.1.0` WIT package (`wit/`).
//! The `plugin` world has every import and every hook export; a component
//! exports any subset, found at load time through each hook's `GuestIndices`.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "chat:plugin/plugin",
    // Hooks are awaited on the async worker; the imports that reach a backend
    // await it there too (the others are plain calls).
    imports: {
        "chat:plugin/kv": async,
        "chat:plugin/audit": async,
    },
    exports: { default: async },
});

pub use chat::plugin::types::{
    Action, Actor, Event, HookVerdict, LogLevel, RateLimit, Request, Role, ThreadInfo, Verdict,
};
pub use exports::chat::plugin::{access, events, message_hook, rate_limit};
