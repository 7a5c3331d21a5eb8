//! Logging and the host's clock.
//!
//! Log lines go into the host's structured log, tagged with the plugin's name.
//! The macros [`trace!`](crate::trace), [`debug!`](crate::debug),
//! [`info!`](crate::info), [`warn!`](crate::warn) and [`error!`](crate::error)
//! take `format!` arguments.

use crate::LogLevel;

/// Writes `message` at `level` into the host's log.
pub fn log(level: LogLevel, message: &str) {
    crate::sys::log(level, message)
}

/// Logs at `trace` level.
pub fn trace(message: &str) {
    log(LogLevel::Trace, message)
}

/// Logs at `debug` level.
pub fn debug(message: &str) {
    log(LogLevel::Debug, message)
}

/// Logs at `info` level.
pub fn info(message: &str) {
    log(LogLevel::Info, message)
}

/// Logs at `warn` level.
pub fn warn(message: &str) {
    log(LogLevel::Warn, message)
}

/// Logs at `error` level.
pub fn error(message: &str) {
    log(LogLevel::Error, message)
}

/// Milliseconds since the Unix epoch, from the host's clock.
pub fn now_ms() -> i64 {
    crate::sys::now_ms()
}
