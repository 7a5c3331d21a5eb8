//! chat-host: a realtime chat server (Socket.IO v4) whose policy runs in plugins.
//!
//! Layout, by layer. A module uses only modules of lower layers (and its own
//! children); `host/tests/layering.rs` checks every `use crate::…` against this
//! table.
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | [`domain`], [`config`], `testing` | vocabulary: ids, roles, the clock, messages and threads, event kinds, server events, the policy port; configuration; test helpers |
//! | 1 | [`auth`], [`state`], [`store`], [`telemetry`] | JWT identities; realtime state (Redis \| memory); durable data (MySQL \| SQLite); logs and metrics |
//! | 2 | [`audit`], [`events`] | the tamper-evident audit chain; the event stream writer |
//! | 3 | [`chat`], [`plugins`] | the use cases with their policy chain; the WebAssembly plugin runtime and its admin service |
//! | 4 | [`transport`] | Socket.IO handlers and HTTP routers: decode, call, encode |
//! | 5 | [`app`] | wiring, startup and shutdown |
//!
//! `chat` and `plugins` share a layer and never import each other: the plugin
//! runtime implements the domain's [`domain::policy::Policy`] port, and `app`
//! plugs it into the chat's policy chain.

pub mod app;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod config;
pub mod domain;
pub mod events;
pub mod plugins;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod transport;

#[cfg(test)]
mod testing;
