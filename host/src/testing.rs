//! Helpers shared by the unit and conformance tests: which real backends and
//! built plugins this run has, and fresh ids.
//!
//! SQLite, the memory state and the use cases always run. MariaDB runs when
//! `CHAT_TEST_DATABASE_URL` is set, Redis when `CHAT_TEST_REDIS_URL` is set, the
//! plugin tests when built components are found; each test that lacks one
//! prints why it skipped. With `CHAT_TEST_REQUIRE_SERVICES=1` (the test
//! command and CI set it) a missing one fails the test instead.

use std::path::PathBuf;

use rand::distr::{Alphanumeric, SampleString};

/// Whether a missing service or plugin build fails the run (CI) or skips (a laptop).
fn required() -> bool {
    std::env::var("CHAT_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// `None` (with the reason printed) when `what` is missing outside CI; a panic in CI.
fn missing<T>(what: &str, how: &str) -> Option<T> {
    assert!(
        !required(),
        "{what} is required (CHAT_TEST_REQUIRE_SERVICES=1): {how}"
    );
    eprintln!("skipped: {what} is not available; {how}");
    None
}

fn env_url(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => missing(what, &format!("set {var}")),
    }
}

/// Redis for tests: `CHAT_TEST_REDIS_URL`.
pub fn redis_url() -> Option<String> {
    env_url("CHAT_TEST_REDIS_URL", "Redis")
}

/// Seed nodes of a Redis Cluster for tests: `CHAT_TEST_REDIS_CLUSTER_URLS`
/// (comma-separated; `scripts/redis-cluster.sh start` prints them).
pub fn redis_cluster_urls() -> Option<Vec<String>> {
    env_url(
        "CHAT_TEST_REDIS_CLUSTER_URLS",
        "a Redis Cluster (scripts/redis-cluster.sh start DIR)",
    )
    .map(|urls| urls.split(',').map(str::to_owned).collect())
}

/// MariaDB/MySQL for tests: `CHAT_TEST_DATABASE_URL`.
pub fn mysql_url() -> Option<String> {
    env_url("CHAT_TEST_DATABASE_URL", "MariaDB")
}

/// `prefix` plus a random suffix, so tests never share ids on shared backends.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        Alphanumeric.sample_string(&mut rand::rng(), 10)
    )
}

/// A temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("chat-host-test")
        .tempdir()
        .expect("creating a temporary directory")
}

/// Built plugin components: `CHAT_TEST_PLUGINS`, default `$CARGO_TARGET_DIR/plugins`
/// (where `scripts/build-plugins.sh` puts them).
pub fn plugin_dir() -> Option<PathBuf> {
    let dir: PathBuf = match std::env::var("CHAT_TEST_PLUGINS") {
        Ok(dir) => dir.into(),
        Err(_) => {
            let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
                format!(
                    "{}/.cache/chat-host/target",
                    std::env::var("HOME").unwrap_or_default()
                )
            });
            PathBuf::from(target).join("plugins")
        }
    };
    if dir.join("noop.wasm").exists() {
        Some(dir)
    } else {
        missing(
            "built plugins",
            &format!(
                "none in {}: run scripts/build-plugins.sh or set CHAT_TEST_PLUGINS",
                dir.display()
            ),
        )
    }
}

/// Generates one `#[tokio::test]` per case and backend, in a module per
/// backend (`sqlite::history_pages_oldest_first`), so a failure names both.
/// Each backend is an `async fn() -> Option<Backend>` of the calling module
/// (`None`: skipped, with the reason printed); each case an
/// `async fn(Backend)`.
macro_rules! per_backend {
    (backends: [$($backend:ident),+ $(,)?], cases: $cases:tt $(,)?) => {
        $($crate::testing::per_backend!(@backend $backend $cases);)+
    };
    (@backend $backend:ident [$($case:ident),+ $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $case() {
                    if let Some(backend) = super::$backend().await {
                        super::$case(backend).await;
                    }
                }
            )+
        }
    };
}
pub(crate) use per_backend;
