//! chat-host: a realtime chat server (Socket.IO v4) whose policy runs in plugins.
//!
//! Layout:
//! - [`config`]: environment variables and flags; [`telemetry`]: logs and metrics.
//! - [`app`]: wires backends, transports and shutdown.
//! - [`transport`]: Socket.IO handlers and HTTP routers; decode, call, answer.
//! - [`chat`]: the use cases, one module per event, and the policy chain.
//! - [`state`]: realtime state behind [`state::StateStore`] (Redis | memory).
//! - [`store`]: durable data behind [`store::ChatStore`] (MySQL | SQLite).
//! - [`auth`]: JWT identities; [`error`]: the ack error codes.

pub mod app;
pub mod audit;
pub mod auth;
pub mod chat;
pub mod config;
pub mod error;
pub mod plugins;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod transport;

#[cfg(test)]
mod testing;
