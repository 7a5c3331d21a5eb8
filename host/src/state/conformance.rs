//! One suite for every [`StateStore`] backend, generated per backend: each case
//! is a test in `memory` and one in `redis` (the Redis of `CHAT_TEST_REDIS_URL`),
//! so a failure names the case and the backend.

use std::sync::Arc;
use std::time::Duration;

use super::memory::MemoryState;
use super::redis::{RedisKeys, RedisState, RedisTarget};
use super::{
    KvPage, KvValue, OFFLINE_QUEUE_MAX, OfflineQueues, PluginChanges, PluginKv, Presence,
    RateDecision, RateLimits, StateStore, ThreadCache, Typing,
};
use crate::state::EventStream;
use crate::testing::{redis_cluster_urls, redis_url, unique};

/// A backend under test.
struct Backend {
    name: &'static str,
    state: Arc<dyn StateStore>,
}

async fn memory() -> Option<Backend> {
    Some(Backend {
        name: "memory",
        state: Arc::new(MemoryState::new()),
    })
}

/// The Redis server of the tests (`CHAT_TEST_REDIS_URL`).
fn server() -> Option<RedisTarget> {
    redis_url().map(RedisTarget::Standalone)
}

/// The Redis Cluster of the tests (`CHAT_TEST_REDIS_CLUSTER_URLS`).
fn cluster() -> Option<RedisTarget> {
    redis_cluster_urls().map(RedisTarget::Cluster)
}

/// The server, then the cluster: the targets of the Redis-only cases.
fn targets() -> Vec<RedisTarget> {
    server().into_iter().chain(cluster()).collect()
}

/// The Redis of the tests, under `keys`.
async fn redis_state(target: &RedisTarget, keys: RedisKeys) -> RedisState {
    let state = RedisState::connect(target, keys, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{target:?} does not answer: {e:#}"));
    state
        .ping()
        .await
        .unwrap_or_else(|e| panic!("{target:?} does not answer: {e:#}"));
    state
}

async fn redis() -> Option<Backend> {
    redis_on(server()?, RedisKeys::default()).await
}

/// Redis under a prefix of the test's own, so nothing depends on the default one.
async fn redis_prefixed() -> Option<Backend> {
    redis_on(server()?, RedisKeys::new(&unique("prefixed")).unwrap()).await
}

/// A Redis Cluster: every multi-key script and transaction on one slot.
async fn redis_cluster() -> Option<Backend> {
    redis_on(cluster()?, RedisKeys::new(&unique("cluster")).unwrap()).await
}

async fn redis_on(target: RedisTarget, keys: RedisKeys) -> Option<Backend> {
    Some(Backend {
        name: if target.is_cluster() {
            "redis cluster"
        } else {
            "redis"
        },
        state: Arc::new(redis_state(&target, keys).await),
    })
}

const TTL: Duration = Duration::from_secs(60);
/// The backend timeout of the tests' Redis.
const TIMEOUT: Duration = Duration::from_secs(2);

async fn presence_counts_connections_across_devices(backend: Backend) {
    let Backend { name, state: s, .. } = backend;
    let (a, b) = (unique("alice"), unique("bob"));
    assert_eq!(s.presence_set(&a, 1, TTL).await.unwrap(), 1, "{name}");
    assert_eq!(s.presence_set(&a, 2, TTL).await.unwrap(), 2, "{name}");
    assert_eq!(
        s.presence_online(&[a.clone(), b.clone()]).await.unwrap(),
        [true, false],
        "{name}"
    );
    assert_eq!(s.presence_set(&a, 1, TTL).await.unwrap(), 1, "{name}");
    assert_eq!(s.presence_set(&a, 0, TTL).await.unwrap(), 0, "{name}");
    assert_eq!(
        s.presence_set(&a, 0, TTL).await.unwrap(),
        0,
        "{name}: never negative"
    );
    assert_eq!(
        s.presence_online(std::slice::from_ref(&a)).await.unwrap(),
        [false],
        "{name}"
    );
}

async fn presence_expires_without_refresh_and_refresh_restores_it(backend: Backend) {
    let Backend { name, state: s, .. } = backend;
    let a = unique("alice");
    s.presence_set(&a, 1, Duration::from_millis(50))
        .await
        .unwrap();
    s.presence_refresh(&[(a.clone(), 1)], TTL).await.unwrap();
    assert_eq!(
        s.presence_online(std::slice::from_ref(&a)).await.unwrap(),
        [true],
        "{name}"
    );
    let b = unique("bob");
    s.presence_set(&b, 1, Duration::from_millis(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await; // let the TTL lapse
    assert_eq!(
        s.presence_online(std::slice::from_ref(&b)).await.unwrap(),
        [false],
        "{name}: TTL"
    );
    s.presence_refresh(&[(b.clone(), 2)], TTL).await.unwrap();
    assert_eq!(
        s.presence_online(std::slice::from_ref(&b)).await.unwrap(),
        [true],
        "{name}: re-created from the local count"
    );
}

/// A refresh of more users than one script call takes (Redis refreshes in chunks).
async fn a_refresh_of_thousands_of_users_counts_every_one(backend: Backend) {
    let Backend { name, state: s, .. } = backend;
    let users: Vec<(String, i64)> = (0..2_500)
        .map(|i| (unique(&format!("many{i}")), i % 3 + 1))
        .collect();
    s.presence_refresh(&users, TTL).await.unwrap();
    let ids: Vec<String> = users.iter().map(|(u, _)| u.clone()).collect();
    let counts: Vec<i64> = users.iter().map(|(_, n)| *n).collect();
    assert_eq!(s.presence_counts(&ids).await.unwrap(), counts, "{name}");
    // The shared Redis is left as it was found.
    for user in &ids {
        s.presence_set(user, 0, TTL).await.unwrap();
    }
    assert_eq!(
        s.presence_counts(&ids).await.unwrap(),
        vec![0; ids.len()],
        "{name}"
    );
}

async fn last_seen_is_kept_per_user_and_counts_are_per_user(backend: Backend) {
    let Backend { name, state: s, .. } = backend;
    let (a, b) = (unique("a"), unique("b"));
    let both = [a.clone(), b.clone()];
    assert_eq!(
        s.last_seen(&both).await.unwrap(),
        vec![None, None],
        "{name}"
    );
    s.last_seen_set(&a, 1_000).await.unwrap();
    s.last_seen_set(&a, 2_000).await.unwrap();
    assert_eq!(
        s.last_seen(&both).await.unwrap(),
        vec![Some(2_000), None],
        "{name}: the newest record, and none for another user"
    );
    assert!(s.last_seen(&[]).await.unwrap().is_empty(), "{name}");

    s.presence_set(&a, 3, TTL).await.unwrap();
    assert_eq!(
        s.presence_counts(&both).await.unwrap(),
        vec![3, 0],
        "{name}"
    );
    s.presence_set(&a, 0, TTL).await.unwrap();
    assert_eq!(
        s.presence_counts(&both).await.unwrap(),
        vec![0, 0],
        "{name}"
    );
    assert!(s.presence_counts(&[]).await.unwrap().is_empty(), "{name}");
}

async fn typing_is_set_and_cleared(backend: Backend) {
    let Backend { name, state: s, .. } = backend;
    let (t, u) = (unique("t"), unique("u"));
    assert!(!s.typing_stop(&t, &u).await.unwrap(), "{name}");
    s.typing_start(&t, &u, TTL).await.unwrap();
    assert!(s.typing_stop(&t, &u).await.unwrap(), "{name}");
    assert!(!s.typing_stop(&t, &u).await.unwrap(), "{name}");
}

async fn offline_queue_keeps_order_trims_and_reports_overflow(backend: Backend) {
    let Backend { name, state: s, .. } = backend;
    let (u, v) = (unique("u"), unique("v"));
    let (t1, t2) = (unique("t1"), unique("t2"));
    let msg = |thread: &str, i: usize| format!(r#"{{"threadId":"{thread}","id":"{i}"}}"#);
    s.offline_push(&[u.clone(), v.clone()], &t1, &msg(&t1, 0))
        .await
        .unwrap();
    for i in 1..=OFFLINE_QUEUE_MAX {
        s.offline_push(std::slice::from_ref(&u), &t2, &msg(&t2, i))
            .await
            .unwrap();
    }
    let batch = s.offline_drain(&u).await.unwrap();
    assert_eq!(batch.messages.len(), OFFLINE_QUEUE_MAX, "{name}");
    assert_eq!(batch.messages[0], msg(&t2, 1), "{name}: oldest dropped");
    assert_eq!(
        batch.messages.last().unwrap(),
        &msg(&t2, OFFLINE_QUEUE_MAX),
        "{name}"
    );
    assert_eq!(batch.resync_threads, vec![t1.clone()], "{name}");
    let again = s.offline_drain(&u).await.unwrap();
    assert!(
        again.messages.is_empty() && again.resync_threads.is_empty(),
        "{name}: drained once"
    );
    let v_batch = s.offline_drain(&v).await.unwrap();
    assert_eq!(v_batch.messages, vec![msg(&t1, 0)], "{name}");
    assert!(v_batch.resync_threads.is_empty(), "{name}");
}

async fn rate_limit_is_an_exact_window(backend: Backend) {
    let Backend { name, state: s, .. } = backend;
    let u = unique("u");
    let window = Duration::from_secs(60);
    for _ in 0..3 {
        assert_eq!(
            s.rate_limit_hit(&u, 3, window).await.unwrap(),
            RateDecision::Allowed,
            "{name}"
        );
    }
    match s.rate_limit_hit(&u, 3, window).await.unwrap() {
        RateDecision::Limited { retry_after } => {
            assert!(
                retry_after > Duration::from_secs(55) && retry_after <= window,
                "{name}: {retry_after:?}"
            )
        }
        other => panic!("{name}: {other:?}"),
    }
    // A short window frees its slot exactly when the answer says so.
    let w = unique("w");
    let short = Duration::from_millis(150);
    assert_eq!(
        s.rate_limit_hit(&w, 1, short).await.unwrap(),
        RateDecision::Allowed,
        "{name}"
    );
    let RateDecision::Limited { retry_after } = s.rate_limit_hit(&w, 1, short).await.unwrap()
    else {
        panic!("{name}: second hit allowed");
    };
    tokio::time::sleep(retry_after + Duration::from_millis(5)).await;
    assert_eq!(
        s.rate_limit_hit(&w, 1, short).await.unwrap(),
        RateDecision::Allowed,
        "{name}"
    );
}

async fn thread_meta_cache_roundtrip_and_invalidate(backend: Backend) {
    let Backend { name, state: s, .. } = backend;
    let t = unique("t");
    assert_eq!(s.thread_meta_get(&t).await.unwrap(), None, "{name}");
    s.thread_meta_put(&t, "{\"a\":1}", TTL).await.unwrap();
    assert_eq!(
        s.thread_meta_get(&t).await.unwrap().as_deref(),
        Some("{\"a\":1}"),
        "{name}"
    );
    s.thread_meta_invalidate(&t).await.unwrap();
    assert_eq!(s.thread_meta_get(&t).await.unwrap(), None, "{name}");
}

#[tokio::test]
async fn events_reach_the_stream() {
    use super::StreamEntry;
    let marker = unique("evt");
    let entry = StreamEntry {
        kind: "message_sent".into(),
        fields: vec![("userId".into(), marker.clone())],
    };

    let memory = MemoryState::new();
    memory
        .append_events(std::slice::from_ref(&entry))
        .await
        .unwrap();
    assert_eq!(memory.recent_events(1), vec![entry.clone()]);
    assert_eq!(memory.events_len().await.unwrap(), 1);

    for target in targets() {
        events_reach_the_stream_on(&target, &entry, &marker).await;
    }
}

/// XREVRANGE of every stream key under `keys`, as text.
async fn stream_text(state: &RedisState) -> String {
    let (mut conn, keys) = state.raw();
    let mut text = String::new();
    for stream in keys.event_streams() {
        let entries: ::redis::Value = ::redis::cmd("XREVRANGE")
            .arg(&stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(50)
            .query_async(&mut conn)
            .await
            .unwrap();
        text.push_str(&format!("{stream}: {entries:?}\n"));
    }
    text
}

/// Deletes every stream key under `state`'s prefix.
async fn drop_streams(state: &RedisState) {
    let (mut conn, keys) = state.raw();
    for stream in keys.event_streams() {
        ::redis::cmd("DEL")
            .arg(stream)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
}

async fn events_reach_the_stream_on(
    target: &RedisTarget,
    entry: &super::StreamEntry,
    marker: &str,
) {
    let redis = redis_state(target, RedisKeys::default()).await;
    redis
        .append_events(std::slice::from_ref(entry))
        .await
        .unwrap();
    let text = stream_text(&redis).await;
    let landed: Vec<&str> = text.lines().filter(|l| l.contains(marker)).collect();
    assert_eq!(
        landed.len(),
        1,
        "{target:?}: one stream holds the entry: {text}"
    );
    if !target.is_cluster() {
        // The contract's name, under the default prefix.
        assert!(landed[0].starts_with("chat:logs:events: "), "{text}");
    }
    let prefix = unique("evlen");
    let own = redis_state(target, RedisKeys::new(&prefix).unwrap()).await;
    // Entries about many threads: on a cluster, spread over the shards.
    let entries: Vec<super::StreamEntry> = (0..40)
        .map(|i| super::StreamEntry {
            kind: "message_sent".into(),
            fields: vec![("threadId".into(), format!("t{i}"))],
        })
        .collect();
    own.append_events(&entries).await.unwrap();
    assert_eq!(
        own.events_len().await.unwrap(),
        40,
        "{target:?}: the streams' length"
    );
    if target.is_cluster() {
        let text = stream_text(&own).await;
        let shards = text.lines().filter(|l| l.contains("t1")).count();
        assert!(
            shards > 1,
            "entries of 40 threads in more than one shard: {text}"
        );
    }
    drop_streams(&own).await;
}

async fn plugin_kv_is_namespaced_and_counts_with_ttl(backend: Backend) {
    let Backend { name, state: s, .. } = backend;
    let (p1, p2) = (unique("p1"), unique("p2"));
    assert_eq!(s.kv_get(&p1, "k").await.unwrap(), None, "{name}");
    s.kv_set(&p1, "k", "v", None).await.unwrap();
    assert_eq!(
        s.kv_get(&p1, "k").await.unwrap(),
        Some(KvValue {
            value: "v".into(),
            ttl: None
        }),
        "{name}"
    );
    assert_eq!(
        s.kv_get(&p2, "k").await.unwrap(),
        None,
        "{name}: another plugin's namespace"
    );
    assert_eq!(
        s.kv_incr(&p1, "n", 2, Some(TTL)).await.unwrap(),
        2,
        "{name}"
    );
    assert_eq!(
        s.kv_incr(&p1, "n", 3, Some(TTL)).await.unwrap(),
        5,
        "{name}"
    );
    assert!(
        s.kv_incr(&p1, "k", 1, None).await.is_err(),
        "{name}: not an integer"
    );
    assert!(s.kv_delete(&p1, "k").await.unwrap(), "{name}");
    assert!(!s.kv_delete(&p1, "k").await.unwrap(), "{name}");
    s.kv_set(&p1, "timed", "x", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let left = s.kv_get(&p1, "timed").await.unwrap().and_then(|e| e.ttl);
    assert!(
        left.is_some_and(|t| t > Duration::from_secs(50) && t <= Duration::from_secs(60)),
        "{name}: the time left, got {left:?}"
    );
    s.kv_set(&p1, "short", "x", Some(Duration::from_millis(30)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await; // let the TTL lapse
    assert_eq!(s.kv_get(&p1, "short").await.unwrap(), None, "{name}: TTL");
}

/// Lists a plugin's entries by prefix, page by page, each page sorted.
async fn plugin_kv_lists_by_prefix_in_pages(backend: Backend) {
    let Backend { name, state: s, .. } = backend;
    let (p, other) = (unique("list"), unique("list-other"));
    // Keys with glob characters: a prefix matches only itself.
    let blocked: Vec<String> = (0..25).map(|i| format!("blocked:u{i:02}")).collect();
    for key in &blocked {
        s.kv_set(&p, key, "spam", None).await.unwrap();
    }
    for key in ["note:blocked:u01", "blocked*", "blocked[x]"] {
        s.kv_set(&p, key, "x", None).await.unwrap();
    }
    s.kv_set(&p, "blocked:timed", "t", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    s.kv_set(&other, "blocked:u00", "not mine", None)
        .await
        .unwrap();

    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = s
            .kv_list(&p, "blocked:", cursor.as_deref(), 10)
            .await
            .unwrap();
        let keys: Vec<&String> = page.entries.iter().map(|(k, _)| k).collect();
        assert!(keys.is_sorted(), "{name}: a page is sorted: {keys:?}");
        listed.extend(page.entries);
        pages += 1;
        assert!(pages <= 30, "{name}: the listing ends");
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    listed.dedup_by(|a, b| a.0 == b.0);
    let mut expected = blocked.clone();
    expected.push("blocked:timed".into());
    expected.sort();
    let keys: Vec<String> = listed.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys, expected,
        "{name}: every key with the prefix, no other"
    );
    let timed = &listed.iter().find(|(k, _)| k == "blocked:timed").unwrap().1;
    assert_eq!(timed.value, "t", "{name}");
    assert!(
        timed.ttl.is_some_and(|t| t > Duration::from_secs(50)),
        "{name}: the time left"
    );
    assert!(
        listed
            .iter()
            .filter(|(k, _)| k != "blocked:timed")
            .all(|(_, v)| v.value == "spam" && v.ttl.is_none())
    );

    let star = s.kv_list(&p, "blocked*", None, 100).await.unwrap();
    assert_eq!(
        star.entries
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["blocked*"],
        "{name}: '*' in a prefix is a character"
    );
    let all = s.kv_list(&p, "", None, 100).await.unwrap();
    assert_eq!(
        all.entries.len(),
        29,
        "{name}: an empty prefix lists everything"
    );
    let none = s.kv_list(&unique("empty"), "", None, 10).await.unwrap();
    assert_eq!(none, KvPage::default(), "{name}: a plugin with no entries");
    // The shared Redis is left as it was found.
    for (key, _) in all.entries {
        s.kv_delete(&p, &key).await.unwrap();
    }
    s.kv_delete(&other, "blocked:u00").await.unwrap();
}

crate::testing::per_backend! {
    backends: [memory, redis, redis_prefixed, redis_cluster],
    cases: [
        presence_counts_connections_across_devices,
        presence_expires_without_refresh_and_refresh_restores_it,
        a_refresh_of_thousands_of_users_counts_every_one,
        last_seen_is_kept_per_user_and_counts_are_per_user,
        typing_is_set_and_cleared,
        offline_queue_keeps_order_trims_and_reports_overflow,
        rate_limit_is_an_exact_window,
        thread_meta_cache_roundtrip_and_invalidate,
        plugin_kv_is_namespaced_and_counts_with_ttl,
        plugin_kv_lists_by_prefix_in_pages,
    ],
}

/// Two instances on one Redis: an instance that stops refreshing (crashed)
/// stops counting, its users with no other connection are reaped once, and a
/// lost presence record comes back with every instance's own count.
#[tokio::test]
async fn redis_presence_outlives_a_crashed_instance_and_a_lost_record() {
    for target in targets() {
        for prefix in ["chat".to_owned(), unique("prefixed")] {
            presence_outlives_a_crashed_instance_and_a_lost_record(&target, &prefix).await;
        }
    }
}

async fn presence_outlives_a_crashed_instance_and_a_lost_record(
    target: &RedisTarget,
    prefix: &str,
) {
    let stale = Duration::from_millis(300);
    let base = redis_state(target, RedisKeys::new(prefix).unwrap()).await;
    let (a, b) = (base.other_instance(stale), base.other_instance(stale));
    let (u, v, w) = (unique("u"), unique("v"), unique("w"));
    assert_eq!(a.presence_set(&u, 1, TTL).await.unwrap(), 1);
    assert_eq!(
        b.presence_set(&u, 1, TTL).await.unwrap(),
        2,
        "one socket on each"
    );
    b.presence_set(&v, 1, TTL).await.unwrap();
    // Under the default prefix other live instances (a running server) may be listed too.
    let isolated = prefix != "chat";
    if isolated {
        assert_eq!(
            a.presence_instances().await.unwrap().len(),
            2,
            "a and b are live"
        );
    }

    // b crashes: it stops refreshing; a keeps refreshing its own user. The
    // passing time is the scenario (the stale window), not a synchronisation.
    for _ in 0..5 {
        a.presence_refresh(&[(u.clone(), 1)], TTL).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        a.presence_online(&[u.clone(), v.clone()]).await.unwrap(),
        [true, false],
        "only live instances count"
    );
    if isolated {
        assert_eq!(
            a.presence_instances().await.unwrap().len(),
            1,
            "the crashed instance is no longer listed"
        );
    }
    let reaped = a.presence_reap().await.unwrap();
    assert!(reaped.contains(&v) && !reaped.contains(&u), "{reaped:?}");
    assert!(
        !a.presence_reap().await.unwrap().contains(&v),
        "reaped once"
    );
    assert_eq!(
        a.presence_set(&u, 0, TTL).await.unwrap(),
        0,
        "b's count is gone"
    );

    // A lost record (Redis restarted empty): each instance's next change or
    // refresh puts its own count back.
    let c = base.other_instance(Duration::from_secs(30));
    let d = base.other_instance(Duration::from_secs(30));
    c.presence_set(&w, 2, TTL).await.unwrap();
    d.presence_set(&w, 1, TTL).await.unwrap();
    let (mut conn, keys) = base.raw();
    ::redis::cmd("DEL")
        .arg(keys.presence(&w))
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        c.presence_online(std::slice::from_ref(&w)).await.unwrap(),
        [false]
    );
    c.presence_refresh(&[(w.clone(), 2)], TTL).await.unwrap();
    assert_eq!(
        d.presence_set(&w, 2, TTL).await.unwrap(),
        4,
        "d's next change restores its count beside c's refreshed one"
    );
    assert_eq!(
        d.presence_set(&w, 0, TTL).await.unwrap(),
        2,
        "both of c's sockets still count"
    );
    assert_eq!(c.presence_set(&w, 1, TTL).await.unwrap(), 1);
    c.presence_retire().await.unwrap();
    assert_eq!(
        d.presence_online(std::slice::from_ref(&w)).await.unwrap(),
        [false],
        "a retired instance no longer counts"
    );
}

/// Two deployments on one Redis server and database, with different prefixes:
/// neither sees the other's presence, typing, rate limits, cache, queues, plugin
/// keys, plugin announcements or events, and a third with the first's prefix
/// sees all of the first's.
#[tokio::test]
async fn redis_prefixes_isolate_deployments() {
    for target in targets() {
        prefixes_isolate_deployments(&target).await;
    }
}

async fn prefixes_isolate_deployments(target: &RedisTarget) {
    use tokio::sync::mpsc::UnboundedReceiver;
    use tokio::time::timeout;
    let (px, py) = (unique("x"), unique("y"));
    let x = redis_state(target, RedisKeys::new(&px).unwrap()).await;
    let y = redis_state(target, RedisKeys::new(&py).unwrap()).await;
    let x_too = redis_state(target, RedisKeys::new(&px).unwrap()).await;
    let (u, t, p) = (unique("u"), unique("t"), unique("p"));

    let mut x_changes = x_too.plugin_changes();
    let mut y_changes = y.plugin_changes();
    x.presence_set(&u, 1, TTL).await.unwrap();
    x.typing_start(&t, &u, TTL).await.unwrap();
    x.thread_meta_put(&t, "{}", TTL).await.unwrap();
    x.offline_push(std::slice::from_ref(&u), &t, "m")
        .await
        .unwrap();
    x.kv_set(&p, "k", "v", None).await.unwrap();
    assert_eq!(
        x.rate_limit_hit(&u, 1, TTL).await.unwrap(),
        RateDecision::Allowed
    );

    assert_eq!(
        y.presence_online(std::slice::from_ref(&u)).await.unwrap(),
        [false]
    );
    assert!(!y.typing_stop(&t, &u).await.unwrap(), "typing");
    assert_eq!(y.thread_meta_get(&t).await.unwrap(), None, "cache");
    assert!(
        y.offline_drain(&u).await.unwrap().messages.is_empty(),
        "queue"
    );
    assert_eq!(y.kv_get(&p, "k").await.unwrap(), None, "plugin kv");
    assert_eq!(
        y.rate_limit_hit(&u, 1, TTL).await.unwrap(),
        RateDecision::Allowed,
        "rate limit"
    );

    // The positive control: the same prefix is the same deployment.
    assert_eq!(
        x_too
            .presence_online(std::slice::from_ref(&u))
            .await
            .unwrap(),
        [true]
    );
    assert!(x_too.typing_stop(&t, &u).await.unwrap());
    assert_eq!(
        x_too.thread_meta_get(&t).await.unwrap().as_deref(),
        Some("{}")
    );
    assert_eq!(x_too.offline_drain(&u).await.unwrap().messages, ["m"]);
    assert!(x_too.kv_get(&p, "k").await.unwrap().is_some());
    assert!(matches!(
        x_too.rate_limit_hit(&u, 1, TTL).await.unwrap(),
        RateDecision::Limited { .. }
    ));

    // Announcements. Subscribing is asynchronous: each side publishes until it
    // hears itself. Then x announces, y announces after it, and y's next
    // announcement is its own: had y heard x's channel, x's would come first.
    async fn subscribed(state: &RedisState, rx: &mut UnboundedReceiver<String>) {
        timeout(Duration::from_secs(10), async {
            loop {
                state.publish_plugin_change("ready").await.unwrap();
                if let Ok(Some(_)) = timeout(Duration::from_millis(100), rx.recv()).await {
                    return;
                }
            }
        })
        .await
        .expect("a deployment hears its own announcements");
    }
    async fn next_change(rx: &mut UnboundedReceiver<String>) -> String {
        timeout(Duration::from_secs(5), async {
            loop {
                match rx.recv().await.unwrap() {
                    ready if ready == "ready" => continue,
                    change => return change,
                }
            }
        })
        .await
        .expect("an announcement")
    }
    subscribed(&x, &mut x_changes).await;
    subscribed(&y, &mut y_changes).await;
    x.publish_plugin_change("x-change").await.unwrap();
    y.publish_plugin_change("y-change").await.unwrap();
    assert_eq!(next_change(&mut x_changes).await, "x-change");
    assert_eq!(
        next_change(&mut y_changes).await,
        "y-change",
        "y never hears x's announcements"
    );

    // Events go to `<prefix>:logs:events`.
    let marker = unique("evt");
    x.append_events(&[super::StreamEntry {
        kind: "message_sent".into(),
        fields: vec![("userId".into(), marker.clone())],
    }])
    .await
    .unwrap();
    let (x_text, y_text) = (stream_text(&x).await, stream_text(&y).await);
    assert!(x_text.contains(&marker), "{x_text}");
    assert!(
        x_text
            .lines()
            .all(|l| l.starts_with(&format!("{px}:logs:events"))),
        "{x_text}"
    );
    assert!(!y_text.contains(&marker), "{y_text}");
    drop_streams(&x).await;
}
