//! `noop`: exports every hook and answers allow / no policy / pass / nothing.
//! Measures the host's cost of a bare hook call.

use chat_plugin_sdk::{Plugin, export_plugin};

/// The plugin: every hook keeps the SDK's default.
pub struct Noop;

impl Plugin for Noop {}

export_plugin!(Noop: access, rate_limit, message_hook, events);
