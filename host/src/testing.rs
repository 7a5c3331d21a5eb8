//! Helpers shared by the unit and conformance tests: real backends, fresh ids.

use rand::distr::{Alphanumeric, SampleString};

/// Redis for tests: `CHAT_TEST_REDIS_URL`, default the local server.
pub fn redis_url() -> String {
    std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// MariaDB/MySQL for tests: `CHAT_TEST_DATABASE_URL`, default the local `chat_host_test`.
pub fn mysql_url() -> String {
    std::env::var("CHAT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/chat_host_test".into())
}

/// `prefix` plus a random suffix, so tests never share ids on shared backends.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 10)
    )
}

/// Built plugin components: `CHAT_TEST_PLUGINS`, default `$CARGO_TARGET_DIR/plugins`.
pub fn plugin_dir() -> std::path::PathBuf {
    let dir = std::env::var("CHAT_TEST_PLUGINS")
        .map(Into::into)
        .unwrap_or_else(|_| {
            let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
                format!(
                    "{}/.cache/chat-host/target",
                    std::env::var("HOME").unwrap_or_default()
                )
            });
            std::path::Path::new(&target).join("plugins")
        });
    assert!(
        dir.join("noop.wasm").exists(),
        "no built plugins in {}: run scripts/build-plugins.sh (or set CHAT_TEST_PLUGINS)",
        dir.display()
    );
    dir
}
