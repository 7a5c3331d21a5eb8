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
    format!("{prefix}_{}", Alphanumeric.sample_string(&mut rand::rng(), 10))
}
