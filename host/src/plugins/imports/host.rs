//! `chat:plugin/host`: log, clock, configuration, the participants of the call's thread.

use crate::domain::now_ms;
use crate::plugins::bindings::LogLevel;
use crate::plugins::bindings::chat::plugin::{host, types};
use crate::plugins::store_data::PluginState;

/// Longest log line accepted from a plugin.
const MAX_LOG: usize = 4096;

impl types::Host for PluginState {}

impl host::Host for PluginState {
    fn log(&mut self, level: LogLevel, message: String) {
        let plugin = &*self.env.name;
        let message = match message.char_indices().nth(MAX_LOG) {
            Some((cut, _)) => &message[..cut],
            None => &message,
        };
        match level {
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }

    fn now_ms(&mut self) -> i64 {
        now_ms()
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.env.config.get(&key).cloned()
    }

    fn is_participant(&mut self, user_id: String) -> bool {
        self.participants
            .as_deref()
            .is_some_and(|ids| ids.contains(&user_id))
    }

    fn participants(&mut self) -> Vec<String> {
        self.participants
            .as_deref()
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    }
}
