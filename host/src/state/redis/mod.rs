//! Redis state store, on one server or a Redis Cluster: the contract's keys
//! under the deployment's prefix ([`RedisKeys`], with hash tags on a cluster),
//! atomic scripts where a read-modify-write would race between instances, each
//! on the keys of one slot, and every round trip bounded by the backend timeout.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::{try_join, try_join_all};
use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use redis::{AsyncCommands, RedisError, RedisResult, Script, ScriptInvocation};

use crate::domain::Millis;

use super::{
    EVENT_STREAM_MAX, EventStream, INSTANCE_STALE, KvPage, KvValue, OFFLINE_QUEUE_MAX,
    OFFLINE_QUEUE_TTL, OfflineBatch, OfflineQueues, PluginChanges, PluginKv, Presence,
    RateDecision, RateLimits, StateError, StateResult, StateStore, StreamEntry, ThreadCache,
    Typing,
};

mod conn;
mod keys;

pub use crate::config::RedisTarget;
pub use conn::{PubSub, PubSubError, RedisConn};
pub use keys::{DEFAULT_PREFIX, EVENT_STREAM_SHARDS, InvalidPrefix, RedisKeys};

/// Presence is counted per instance: `<prefix>:presence:<user>` is a hash of
/// instance id -> `<count>@<ms>`, that instance's connections of the user and
/// the Redis time it wrote them. A count only counts while it is fresh (written
/// within the stale window: every instance rewrites its users' counts on each
/// refresh), so the counts of an instance that crashed stop counting by
/// themselves, with nothing to read outside the user's key: on a cluster every
/// presence script runs on the one shard of the user's slot.
/// `<prefix>:presence-instances` scores each instance with the time of its last
/// refresh and `<prefix>:presence-instance:<id>` lists its users, for the
/// reaper that announces a crashed instance's users offline.
///
/// Shared Lua: the live total of the user's hash `KEYS[1]`, removing the
/// fields that went stale.
const PRESENCE_TOTAL: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live_total(now, stale)
  local fields = redis.call('HGETALL', KEYS[1])
  local total = 0
  for i = 1, #fields, 2 do
    local n, at = string.match(fields[i + 1], '^(%-?%d+)@(%d+)$')
    if n and tonumber(at) >= now - stale then
      total = total + tonumber(n)
    else
      redis.call('HDEL', KEYS[1], fields[i])
    end
  end
  return total
end
";

/// KEYS: user hash. ARGV: instance, its count of the user (0 removes it), ttl
/// ms, stale ms. Returns the user's live total.
const PRESENCE_SET: &str = r"
local now = now_ms()
if tonumber(ARGV[2]) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '@' .. now)
end
local total = live_total(now, tonumber(ARGV[4]))
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return total";

/// KEYS: user hash. ARGV: instance, its count of the user, ttl ms.
const PRESENCE_MARK: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '@' .. now_ms())
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";

/// KEYS: user hash. ARGV: stale ms. Returns the user's live total.
const PRESENCE_COUNT: &str = r"
return live_total(now_ms(), tonumber(ARGV[1]))";

/// KEYS: user hash. ARGV: a gone instance, stale ms. Removes its count and
/// returns the user's live total.
const PRESENCE_UNSET: &str = r"
redis.call('HDEL', KEYS[1], ARGV[1])
return live_total(now_ms(), tonumber(ARGV[2]))";

/// KEYS: registry. ARGV: instance. Marks it live now.
const REGISTRY_MARK: &str = r"
redis.call('ZADD', KEYS[1], now_ms(), ARGV[1])
return 1";

/// KEYS: registry. ARGV: stale ms, this instance. Removes the instances that
/// went stale and returns them: each is claimed by one caller only.
const REGISTRY_CLAIM: &str = r"
local gone = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now_ms() - tonumber(ARGV[1])))) do
  if id ~= ARGV[2] and redis.call('ZREM', KEYS[1], id) == 1 then table.insert(gone, id) end
end
return gone";

/// Users refreshed together: one batch of concurrent script calls.
const PRESENCE_REFRESH_CHUNK: usize = 1_000;

/// RPUSH, trim to the newest ARGV[2], remember the threads of dropped messages, TTL both.
const OFFLINE_PUSH: &str = r"
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
local max = tonumber(ARGV[2])
if n > max then
  for _, item in ipairs(redis.call('LRANGE', KEYS[1], 0, n - max - 1)) do
    local ok, decoded = pcall(cjson.decode, item)
    if ok and type(decoded) == 'table' and decoded.threadId then
      redis.call('SADD', KEYS[2], decoded.threadId)
    end
  end
  redis.call('LTRIM', KEYS[1], n - max, -1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return n";

/// Exact sliding window (a log of timestamps in a sorted set) on the Redis clock,
/// so instances with skewed clocks agree. Returns 0 when allowed, else the wait in ms.
const RATE_LIMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)";

/// INCRBY that sets the TTL only on a key without one (a counter's window starts once).
const KV_INCR: &str = r"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n";

/// [`StateStore`] on Redis, shared by every instance of the cluster.
#[derive(Clone)]
pub struct RedisState {
    conn: RedisConn,
    /// Plugin change announcements (and, through [`RedisState::pubsub`], the
    /// Socket.IO adapter's channels).
    pubsub: PubSub,
    /// This deployment's key space.
    keys: RedisKeys,
    /// Longest wait for one round trip, reconnects included.
    timeout: Duration,
    /// This instance's id in the presence counts.
    instance: String,
    /// [`INSTANCE_STALE`], shorter in tests.
    stale: Duration,
    /// Whether this instance is in the registry yet (its first connection
    /// registers it; after that, every refresh).
    registered: Arc<AtomicBool>,
    scripts: Scripts,
}

/// The Lua scripts, each sent once per server (then called by its hash).
#[derive(Clone)]
struct Scripts {
    presence_set: Script,
    presence_mark: Script,
    presence_count: Script,
    presence_unset: Script,
    registry_mark: Script,
    registry_claim: Script,
    offline_push: Script,
    rate_limit: Script,
    kv_incr: Script,
}

impl Scripts {
    fn new() -> Self {
        let presence = |body: &str| Script::new(&format!("{PRESENCE_TOTAL}{body}"));
        Self {
            presence_set: presence(PRESENCE_SET),
            presence_mark: presence(PRESENCE_MARK),
            presence_count: presence(PRESENCE_COUNT),
            presence_unset: presence(PRESENCE_UNSET),
            registry_mark: presence(REGISTRY_MARK),
            registry_claim: presence(REGISTRY_CLAIM),
            offline_push: Script::new(OFFLINE_PUSH),
            rate_limit: Script::new(RATE_LIMIT),
            kv_incr: Script::new(KV_INCR),
        }
    }
}

fn err(e: RedisError) -> StateError {
    if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
    {
        StateError::Unavailable(e.into())
    } else {
        StateError::Other(e.into())
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

impl RedisState {
    /// Connects (with reconnects) to `target`, with every key under `keys`
    /// (hash-tagged on a cluster); each round trip that takes longer than
    /// `timeout` fails as `unavailable`.
    pub async fn connect(
        target: &RedisTarget,
        keys: RedisKeys,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let conn = RedisConn::connect(target, timeout, None).await?;
        let pubsub = PubSub::connect(target, timeout).await?;
        let keys = if target.is_cluster() {
            keys.with_hash_tags()
        } else {
            keys
        };
        Ok(Self {
            conn,
            pubsub,
            keys,
            timeout,
            instance: Alphanumeric.sample_string(&mut rand::rng(), 12),
            stale: INSTANCE_STALE,
            registered: Arc::default(),
            scripts: Scripts::new(),
        })
    }

    /// The pub/sub connection, for the Socket.IO adapter.
    pub fn pubsub(&self) -> PubSub {
        self.pubsub.clone()
    }

    fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// One round trip, bounded by the timeout. The connection's own response
    /// timeout does not cover a command that waits for a reconnect (and its
    /// retries), so the bound is applied here, once for every call.
    async fn call<T>(&self, request: impl Future<Output = RedisResult<T>>) -> StateResult<T> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(result) => result.map_err(err),
            Err(_) => Err(StateError::Unavailable(anyhow::anyhow!(
                "Redis did not answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// The same Redis as another instance would see it (its own presence counts).
    #[cfg(test)]
    pub fn other_instance(&self, stale: Duration) -> Self {
        Self {
            instance: Alphanumeric.sample_string(&mut rand::rng(), 12),
            stale,
            registered: Arc::default(),
            ..self.clone()
        }
    }

    /// The connection and key names, for tests that read Redis as it is.
    #[cfg(test)]
    pub fn raw(&self) -> (RedisConn, &RedisKeys) {
        (self.conn(), &self.keys)
    }

    /// This instance's count of `user` written, and the user's live total.
    async fn presence_write(&self, user: &str, count: i64, ttl: Duration) -> RedisResult<i64> {
        let mut script = self.scripts.presence_set.key(self.keys.presence(user));
        script
            .arg(&self.instance)
            .arg(count)
            .arg(millis(ttl))
            .arg(millis(self.stale));
        script.invoke_async(&mut self.conn()).await
    }

    /// Runs `script` on the presence key of each `(user, value)`, with the
    /// arguments `args` adds for the value: on a server in one pipeline, the
    /// script loaded first; on a cluster as concurrent calls, each sent to the
    /// shard of its key.
    async fn per_user<'u, V>(
        &self,
        script: &Script,
        users: impl ExactSizeIterator<Item = (&'u str, V)>,
        args: impl Fn(&mut ScriptInvocation<'_>, V),
    ) -> RedisResult<Vec<i64>> {
        if users.len() == 0 {
            return Ok(Vec::new());
        }
        let calls = users.map(|(user, value)| {
            let mut call = script.key(self.keys.presence(user));
            args(&mut call, value);
            call
        });
        if self.conn.is_cluster() {
            return try_join_all(calls.map(|call| {
                let mut conn = self.conn();
                async move { call.invoke_async::<i64>(&mut conn).await }
            }))
            .await;
        }
        let mut pipe = redis::pipe();
        pipe.load_script(script).ignore();
        for call in calls {
            pipe.invoke_script(&call);
        }
        pipe.query_async(&mut self.conn()).await
    }

    /// Marks this instance live in the registry.
    async fn register(&self) -> StateResult<()> {
        let mut mark = self.scripts.registry_mark.key(self.keys.instances());
        mark.arg(&self.instance);
        self.call(mark.invoke_async::<i64>(&mut self.conn()))
            .await?;
        self.registered.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Removes instance `id`'s count from each of its users and its user set;
    /// returns the users left with no connection.
    async fn remove_instance_counts(&self, id: &str) -> StateResult<Vec<String>> {
        let users_key = self.keys.instance_users(id);
        let users: Vec<String> = self.call(self.conn().smembers(&users_key)).await?;
        let mut offline = Vec::new();
        for chunk in users.chunks(PRESENCE_REFRESH_CHUNK) {
            let totals = self
                .call(self.per_user(
                    &self.scripts.presence_unset,
                    chunk.iter().map(|user| (user.as_str(), ())),
                    |call, ()| {
                        call.arg(id).arg(millis(self.stale));
                    },
                ))
                .await?;
            offline.extend(
                chunk
                    .iter()
                    .zip(totals)
                    .filter(|(_, total)| *total <= 0)
                    .map(|(user, _)| user.clone()),
            );
        }
        self.call(self.conn().del::<_, ()>(&users_key)).await?;
        Ok(offline)
    }

    /// Adds `users` to this instance's user set (for the reaper), or removes them.
    async fn instance_users_update(
        &self,
        users: &[&str],
        add: bool,
        ttl: Duration,
    ) -> RedisResult<()> {
        let key = self.keys.instance_users(&self.instance);
        let mut pipe = redis::pipe();
        if add {
            pipe.sadd(&key, users)
                .ignore()
                .pexpire(&key, millis(ttl) as i64)
                .ignore();
        } else {
            pipe.srem(&key, users).ignore();
        }
        pipe.query_async(&mut self.conn()).await
    }
}

#[async_trait]
impl Presence for RedisState {
    async fn presence_set(&self, user: &str, count: i64, ttl: Duration) -> StateResult<i64> {
        // Registered before its first user, so a crash right after is reaped.
        if count > 0 && !self.registered.load(Ordering::Relaxed) {
            self.register().await?;
        }
        let users = [user];
        let members = self.instance_users_update(&users, count > 0, ttl);
        let (_, total) = self
            .call(try_join(members, self.presence_write(user, count, ttl)))
            .await?;
        Ok(total)
    }

    async fn presence_refresh(&self, users: &[(String, i64)], ttl: Duration) -> StateResult<()> {
        self.register().await?;
        // In chunks, so no one batch holds Redis for long.
        for chunk in users.chunks(PRESENCE_REFRESH_CHUNK) {
            let names: Vec<&str> = chunk.iter().map(|(user, _)| user.as_str()).collect();
            let marks = self.per_user(
                &self.scripts.presence_mark,
                chunk.iter().map(|(user, count)| (user.as_str(), *count)),
                |call, count| {
                    call.arg(&self.instance).arg(count).arg(millis(ttl));
                },
            );
            self.call(try_join(
                self.instance_users_update(&names, true, ttl),
                marks,
            ))
            .await?;
        }
        Ok(())
    }

    async fn presence_counts(&self, users: &[String]) -> StateResult<Vec<i64>> {
        let totals = self
            .call(self.per_user(
                &self.scripts.presence_count,
                users.iter().map(|user| (user.as_str(), ())),
                |call, ()| {
                    call.arg(millis(self.stale));
                },
            ))
            .await?;
        Ok(totals.into_iter().map(|n| n.max(0)).collect())
    }

    async fn last_seen_set(&self, user: &str, at: Millis) -> StateResult<()> {
        self.call(
            self.conn()
                .hset::<_, _, _, ()>(self.keys.last_seen(), user, at),
        )
        .await
    }

    async fn last_seen(&self, users: &[String]) -> StateResult<Vec<Option<Millis>>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // HMGET: one answer per field, in order, nil for a user never recorded.
        self.call(
            redis::cmd("HMGET")
                .arg(self.keys.last_seen())
                .arg(users)
                .query_async(&mut self.conn()),
        )
        .await
    }

    async fn presence_reap(&self) -> StateResult<Vec<String>> {
        let mut claim = self.scripts.registry_claim.key(self.keys.instances());
        claim.arg(millis(self.stale)).arg(&self.instance);
        let gone: Vec<String> = self.call(claim.invoke_async(&mut self.conn())).await?;
        let mut offline = Vec::new();
        for dead in gone {
            // Had this stopped half-way, the rest of the dead instance's counts
            // would still stop counting: they go stale.
            offline.extend(self.remove_instance_counts(&dead).await?);
        }
        Ok(offline)
    }

    async fn presence_instances(&self) -> StateResult<Vec<(String, i64)>> {
        // TIME runs on the registry's node: the clock its scores were taken on.
        let ((secs, micros), beats): ((i64, i64), Vec<(String, f64)>) = self
            .call(
                redis::pipe()
                    .cmd("TIME")
                    .zrange_withscores(self.keys.instances(), 0, -1)
                    .query_async(&mut self.conn()),
            )
            .await?;
        let cutoff = secs * 1000 + micros / 1000 - millis(self.stale) as i64;
        Ok(beats
            .into_iter()
            .map(|(id, seen)| (id, seen as i64))
            .filter(|(_, seen)| *seen >= cutoff)
            .collect())
    }

    async fn presence_retire(&self) -> StateResult<()> {
        self.call(
            self.conn()
                .zrem::<_, _, ()>(self.keys.instances(), &self.instance),
        )
        .await?;
        self.remove_instance_counts(&self.instance).await.map(drop)
    }
}

#[async_trait]
impl Typing for RedisState {
    async fn typing_start(&self, thread: &str, user: &str, ttl: Duration) -> StateResult<()> {
        self.call(
            self.conn()
                .pset_ex::<_, _, ()>(self.keys.typing(thread, user), 1, millis(ttl)),
        )
        .await
    }

    async fn typing_stop(&self, thread: &str, user: &str) -> StateResult<bool> {
        let removed: i64 = self
            .call(self.conn().del(self.keys.typing(thread, user)))
            .await?;
        Ok(removed > 0)
    }
}

#[async_trait]
impl OfflineQueues for RedisState {
    async fn offline_push(
        &self,
        users: &[String],
        _thread: &str,
        message: &str,
    ) -> StateResult<()> {
        self.call(try_join_all(users.iter().map(|user| async move {
            self.scripts
                .offline_push
                .key(self.keys.offline(user))
                .key(self.keys.resync(user))
                .arg(message)
                .arg(OFFLINE_QUEUE_MAX)
                .arg(millis(OFFLINE_QUEUE_TTL))
                .invoke_async::<i64>(&mut self.conn())
                .await
        })))
        .await
        .map(drop)
    }

    async fn offline_drain(&self, user: &str) -> StateResult<OfflineBatch> {
        let (queue, resync) = (self.keys.offline(user), self.keys.resync(user));
        let (messages, _, resync_threads, _): (Vec<String>, i64, Vec<String>, i64) = self
            .call(
                redis::pipe()
                    .atomic()
                    .lrange(&queue, 0, -1)
                    .del(&queue)
                    .smembers(&resync)
                    .del(&resync)
                    .query_async(&mut self.conn()),
            )
            .await?;
        Ok(OfflineBatch {
            messages,
            resync_threads,
        })
    }
}

#[async_trait]
impl RateLimits for RedisState {
    async fn rate_limit_hit(
        &self,
        user: &str,
        limit: u32,
        window: Duration,
    ) -> StateResult<RateDecision> {
        let member: u64 = rand::rng().random();
        let mut script = self.scripts.rate_limit.key(self.keys.ratelimit(user));
        script.arg(millis(window)).arg(limit).arg(member);
        let wait_ms: u64 = self.call(script.invoke_async(&mut self.conn())).await?;
        Ok(match wait_ms {
            0 => RateDecision::Allowed,
            ms => RateDecision::Limited {
                retry_after: Duration::from_millis(ms),
            },
        })
    }
}

#[async_trait]
impl ThreadCache for RedisState {
    async fn thread_meta_get(&self, thread: &str) -> StateResult<Option<String>> {
        self.call(self.conn().get(self.keys.thread_meta(thread)))
            .await
    }

    async fn thread_meta_put(&self, thread: &str, json: &str, ttl: Duration) -> StateResult<()> {
        self.call(
            self.conn()
                .pset_ex::<_, _, ()>(self.keys.thread_meta(thread), json, millis(ttl)),
        )
        .await
    }

    async fn thread_meta_invalidate(&self, thread: &str) -> StateResult<()> {
        self.call(self.conn().del::<_, ()>(self.keys.thread_meta(thread)))
            .await
    }
}

#[async_trait]
impl EventStream for RedisState {
    /// On a cluster each entry goes to the shard of its thread (else its user),
    /// so one thread's entries stay in order in one stream; one pipeline per shard.
    async fn append_events(&self, entries: &[StreamEntry]) -> StateResult<()> {
        let shards = self.keys.event_shards();
        let mut pipes: std::collections::BTreeMap<String, redis::Pipeline> = Default::default();
        for entry in entries {
            let field = |name: &str| entry.fields.iter().find(|(n, _)| n == name);
            let subject = field("threadId")
                .or_else(|| field("userId"))
                .map_or(entry.kind.as_str(), |(_, value)| value.as_str());
            let stream = self.keys.event_stream(subject);
            let cmd = pipes
                .entry(stream.clone())
                .or_insert_with(redis::pipe)
                .cmd("XADD")
                .arg(&stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(EVENT_STREAM_MAX / shards)
                .arg("*")
                .arg("type")
                .arg(&entry.kind);
            for (name, value) in &entry.fields {
                cmd.arg(name).arg(value);
            }
            cmd.ignore();
        }
        self.call(try_join_all(pipes.into_values().map(|pipe| {
            let mut conn = self.conn();
            async move { pipe.query_async::<()>(&mut conn).await }
        })))
        .await
        .map(drop)
    }

    async fn events_len(&self) -> StateResult<u64> {
        let lens: Vec<u64> = self
            .call(try_join_all(self.keys.event_streams().into_iter().map(
                |stream| {
                    let mut conn = self.conn();
                    async move { conn.xlen::<_, u64>(stream).await }
                },
            )))
            .await?;
        Ok(lens.into_iter().sum())
    }
}

#[async_trait]
impl PluginKv for RedisState {
    async fn kv_get(&self, plugin: &str, key: &str) -> StateResult<Option<KvValue>> {
        let key = self.keys.plugin_kv(plugin, key);
        // PTTL: milliseconds left, -1 without a TTL, -2 for a missing key.
        let (value, pttl): (Option<String>, i64) = self
            .call(
                redis::pipe()
                    .get(&key)
                    .pttl(&key)
                    .query_async(&mut self.conn()),
            )
            .await?;
        Ok(value.map(|value| KvValue {
            value,
            ttl: u64::try_from(pttl).ok().map(Duration::from_millis),
        }))
    }

    async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> StateResult<()> {
        let key = self.keys.plugin_kv(plugin, key);
        let mut conn = self.conn();
        match ttl {
            Some(ttl) => {
                self.call(conn.pset_ex::<_, _, ()>(key, value, millis(ttl).max(1)))
                    .await
            }
            None => self.call(conn.set::<_, _, ()>(key, value)).await,
        }
    }

    async fn kv_incr(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> StateResult<i64> {
        let mut script = self.scripts.kv_incr.key(self.keys.plugin_kv(plugin, key));
        script.arg(delta).arg(
            ttl.map(|t| millis(t).max(1).to_string())
                .unwrap_or_default(),
        );
        self.call(script.invoke_async(&mut self.conn())).await
    }

    async fn kv_delete(&self, plugin: &str, key: &str) -> StateResult<bool> {
        let removed: i64 = self
            .call(self.conn().del(self.keys.plugin_kv(plugin, key)))
            .await?;
        Ok(removed > 0)
    }

    /// SCAN with a MATCH pattern; the cursor is SCAN's. A page ends when it
    /// holds `limit` keys or after [`KV_SCAN_ROUNDS`] rounds (a sparse match in
    /// a large key space returns short pages, never a long wait).
    async fn kv_list(
        &self,
        plugin: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> StateResult<KvPage> {
        let root = self.keys.plugin_kv(plugin, "");
        let pattern = format!("{}*", glob_escape(&format!("{root}{prefix}")));
        let mut cursor: u64 = match cursor {
            Some(c) => c.parse().map_err(|_| StateError::BadCursor)?,
            None => 0,
        };
        let mut keys: Vec<String> = Vec::new();
        for _ in 0..KV_SCAN_ROUNDS {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(limit.max(KV_SCAN_COUNT));
            // On a cluster, on the node of the plugin's slot, which holds its keys.
            let mut conn = self.conn();
            let reply = self.call(conn.on_node_of(&root, scan)).await?;
            let (next, batch): (u64, Vec<String>) =
                redis::from_redis_value(reply).map_err(|e| StateError::Other(e.into()))?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= limit {
                break;
            }
        }
        keys.sort();
        keys.dedup();
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.get(key).pttl(key);
        }
        let read: Vec<(Option<String>, i64)> = if keys.is_empty() {
            Vec::new()
        } else {
            self.call(pipe.query_async(&mut self.conn())).await?
        };
        let entries = keys
            .iter()
            .zip(read)
            // A key that expired between SCAN and GET is not listed.
            .filter_map(|(key, (value, pttl))| {
                let value = value?;
                let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
                Some((key[root.len()..].to_owned(), KvValue { value, ttl }))
            })
            .collect();
        Ok(KvPage {
            entries,
            next: (cursor != 0).then(|| cursor.to_string()),
        })
    }
}

/// SCAN rounds of one [`PluginKv::kv_list`] page at most.
const KV_SCAN_ROUNDS: usize = 16;
/// Keys SCAN examines per round, at least.
const KV_SCAN_COUNT: usize = 500;

/// `text` as a Redis glob pattern that matches only itself.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[async_trait]
impl PluginChanges for RedisState {
    async fn publish_plugin_change(&self, message: &str) -> StateResult<()> {
        self.pubsub
            .publish(&self.keys.plugin_channel(), message.as_bytes())
            .await
            .map_err(|e| StateError::Unavailable(e.into()))
    }

    fn plugin_changes(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let pubsub = self.pubsub.clone();
        let channel = self.keys.plugin_channel();
        tokio::spawn(async move {
            // Until it succeeds; after that the connection subscribes again by
            // itself after every reconnect.
            let mut messages = loop {
                match pubsub.subscribe(&channel, 256).await {
                    Ok(messages) => break messages,
                    Err(e) => tracing::warn!(error = %e, "plugin channel subscription failed"),
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = tx.closed() => return,
                }
            };
            loop {
                tokio::select! {
                    message = messages.recv() => match message {
                        Some((_, payload)) => {
                            if let Ok(text) = String::from_utf8(payload)
                                && tx.send(text).is_err()
                            {
                                break;
                            }
                        }
                        None => break,
                    },
                    () = tx.closed() => break,
                }
            }
            if let Err(e) = pubsub.unsubscribe(&channel).await {
                tracing::debug!(error = %e, "plugin channel unsubscribe failed");
            }
        });
        rx
    }
}

#[async_trait]
impl StateStore for RedisState {
    /// `PING` on a server; on a cluster, `CLUSTER INFO`, which fails unless
    /// every slot is served (`cluster_state:ok`).
    async fn ping(&self) -> StateResult<()> {
        if !self.conn.is_cluster() {
            return self
                .call(redis::cmd("PING").query_async::<String>(&mut self.conn()))
                .await
                .map(drop);
        }
        let info: String = self
            .call(
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut self.conn()),
            )
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
                .unwrap_or("?")
        };
        match field("cluster_state") {
            "ok" => Ok(()),
            state => Err(StateError::Unavailable(anyhow::anyhow!(
                "Redis Cluster state is {state}: {} of 16384 slots served",
                field("cluster_slots_ok")
            ))),
        }
    }
}
