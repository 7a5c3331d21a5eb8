//! Redis state store: the contract's keys under the deployment's prefix
//! ([`RedisKeys`]), atomic scripts where a read-modify-write would race between
//! instances, and every round trip bounded by the backend timeout.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, RedisResult, Script};

use crate::domain::Millis;

use super::{
    EVENT_STREAM_MAX, EventStream, INSTANCE_STALE, KvPage, KvValue, OFFLINE_QUEUE_MAX,
    OFFLINE_QUEUE_TTL, OfflineBatch, OfflineQueues, PluginChanges, PluginKv, Presence,
    RateDecision, RateLimits, StateError, StateResult, StateStore, StreamEntry, ThreadCache,
    Typing,
};

/// The prefix of every key and channel when `CHAT_REDIS_PREFIX` is not set: the
/// contract's names (`chat:presence:<user>`, `chat:logs:events`, ...).
pub const DEFAULT_PREFIX: &str = "chat";

/// A `CHAT_REDIS_PREFIX` that could overlap another deployment's key space.
#[derive(Debug, thiserror::Error)]
#[error(
    "CHAT_REDIS_PREFIX must be 1-64 ASCII letters, digits, '_', '-' or '.' (no ':'), not {0:?}"
)]
pub struct InvalidPrefix(String);

/// Every Redis key and pub/sub channel of one deployment, each `<prefix>:<name>`.
///
/// The prefix has no `:`, so the key spaces of two deployments with different
/// prefixes are disjoint (`a:...` never starts with `b:`): several deployments
/// share a Redis server, pub/sub included (which ignores the database number),
/// without seeing each other. Key shapes are defined here only; the Lua scripts
/// get them as `KEYS` or, for keys they build per user, as prefixes in `ARGV`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisKeys {
    /// `<prefix>:`.
    root: String,
}

impl Default for RedisKeys {
    fn default() -> Self {
        Self {
            root: format!("{DEFAULT_PREFIX}:"),
        }
    }
}

impl RedisKeys {
    /// The keys under `prefix`; refused unless it is 1-64 of `[A-Za-z0-9_.-]`.
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if prefix.is_empty() || prefix.len() > 64 || !prefix.chars().all(allowed) {
            return Err(InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self {
            root: format!("{prefix}:"),
        })
    }

    /// `<prefix>:presence:<user>`: hash instance id -> that instance's count.
    fn presence(&self, user: &str) -> String {
        format!("{}presence:{user}", self.root)
    }
    /// `<prefix>:presence-instances`: the registry of instances (see [`PRESENCE_TOTAL`]).
    fn instances(&self) -> String {
        format!("{}presence-instances", self.root)
    }
    /// `<prefix>:presence-instance:<instance>`: the users with sockets on it.
    fn instance_users(&self, instance: &str) -> String {
        format!("{}presence-instance:{instance}", self.root)
    }
    /// `<prefix>:last-seen`: hash user id -> when the user's last connection closed (ms).
    fn last_seen(&self) -> String {
        format!("{}last-seen", self.root)
    }
    fn typing(&self, thread: &str, user: &str) -> String {
        format!("{}typing:{thread}:{user}", self.root)
    }
    fn offline(&self, user: &str) -> String {
        format!("{}offline:{user}", self.root)
    }
    fn resync(&self, user: &str) -> String {
        format!("{}offline:{user}:resync", self.root)
    }
    fn ratelimit(&self, user: &str) -> String {
        format!("{}ratelimit:{user}", self.root)
    }
    fn thread_meta(&self, thread: &str) -> String {
        format!("{}thread-meta:{thread}", self.root)
    }
    fn plugin_kv(&self, plugin: &str, key: &str) -> String {
        format!("{}plugin-kv:{plugin}:{key}", self.root)
    }
    /// `<prefix>:plugins:changed`: the pub/sub channel of plugin changes.
    pub fn plugin_channel(&self) -> String {
        format!("{}plugins:changed", self.root)
    }
    /// `<prefix>:logs:events`: the event stream (`chat:logs:events` by default).
    pub fn events(&self) -> String {
        format!("{}logs:events", self.root)
    }
    /// `<prefix>:socket.io`: the prefix of the Socket.IO adapter's channels
    /// (`<prefix>:socket.io-request#/#`, ...), instead of the adapter's default
    /// `socket.io`, which every deployment on the server would share.
    pub fn adapter_prefix(&self) -> String {
        format!("{}socket.io", self.root)
    }
}

/// Presence is counted per instance: `<prefix>:presence:<user>` is a hash of
/// instance id -> that instance's connections of the user; `<prefix>:presence-instances`
/// scores each instance with the Redis time of its last refresh, and
/// `<prefix>:presence-instance:<id>` lists its users (a `-`, never in a user id's
/// place, so no user's key can be one of these). A count only counts while its
/// instance is live (refreshed within the stale window). Shared Lua: the live
/// total of one user's hash. KEYS[1] of every presence script is the registry
/// of instances; ARGV[1] the stale window in ms.
const PRESENCE_TOTAL: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live_total(hash, cutoff)
  local fields = redis.call('HGETALL', hash)
  local total = 0
  for i = 1, #fields, 2 do
    local seen = redis.call('ZSCORE', KEYS[1], fields[i])
    if seen and tonumber(seen) >= cutoff then total = total + tonumber(fields[i + 1]) end
  end
  return total
end
";

/// KEYS: registry, user hash, instance user set. ARGV: stale ms, instance, user,
/// ttl ms, this instance's count of the user (0 removes it).
const PRESENCE_SET: &str = r"
local now = now_ms()
local n = tonumber(ARGV[5])
if n <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('SREM', KEYS[3], ARGV[3])
else
  redis.call('HSET', KEYS[2], ARGV[2], n)
  redis.call('SADD', KEYS[3], ARGV[3])
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
if redis.call('HLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[2]) else redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return live_total(KEYS[2], now - tonumber(ARGV[1]))";

/// Users refreshed by one script call (about 3,000 commands inside Redis).
const PRESENCE_REFRESH_CHUNK: usize = 1_000;

/// KEYS: registry, instance user set. ARGV: stale ms, instance, ttl ms, the
/// prefix of user hashes (`<prefix>:presence:`), then user, count pairs.
const PRESENCE_REFRESH: &str = r"
redis.call('ZADD', KEYS[1], now_ms(), ARGV[2])
for i = 5, #ARGV, 2 do
  local hash = ARGV[4] .. ARGV[i]
  redis.call('HSET', hash, ARGV[2], ARGV[i + 1])
  redis.call('PEXPIRE', hash, ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[i])
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1";

/// KEYS: registry, then user hashes. ARGV: stale ms. Returns each user's live total.
const PRESENCE_COUNTS: &str = r"
local cutoff = now_ms() - tonumber(ARGV[1])
local out = {}
for i = 2, #KEYS do out[i - 1] = live_total(KEYS[i], cutoff) end
return out";

/// KEYS: registry. ARGV: stale ms, this instance, the prefix of user hashes
/// (`<prefix>:presence:`), the prefix of instance user sets
/// (`<prefix>:presence-instance:`). Reaps every stale instance this call removes
/// from the registry (so each once), returns its users left with no connection.
const PRESENCE_REAP: &str = r"
local cutoff = now_ms() - tonumber(ARGV[1])
local offline = {}
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff)) do
  if dead ~= ARGV[2] and redis.call('ZREM', KEYS[1], dead) == 1 then
    local users_key = ARGV[4] .. dead
    for _, user in ipairs(redis.call('SMEMBERS', users_key)) do
      local hash = ARGV[3] .. user
      redis.call('HDEL', hash, dead)
      if live_total(hash, cutoff) <= 0 then table.insert(offline, user) end
    end
    redis.call('DEL', users_key)
  end
end
return offline";

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
    client: redis::Client,
    conn: ConnectionManager,
    /// This deployment's key space.
    keys: RedisKeys,
    /// Longest wait for one round trip, reconnects included.
    timeout: Duration,
    /// This instance's id in the presence counts.
    instance: String,
    /// [`INSTANCE_STALE`], shorter in tests.
    stale: Duration,
    presence_set: Script,
    presence_refresh: Script,
    presence_counts: Script,
    presence_reap: Script,
    offline_push: Script,
    rate_limit: Script,
    kv_incr: Script,
}

fn err(e: RedisError) -> StateError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        StateError::Unavailable(e.into())
    } else {
        StateError::Other(e.into())
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

impl RedisState {
    /// Connects (with reconnects) to `url`, with every key under `keys`; each
    /// round trip that takes longer than `timeout` fails as `unavailable`.
    pub async fn connect(url: &str, keys: RedisKeys, timeout: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            client,
            conn,
            keys,
            timeout,
            instance: Alphanumeric.sample_string(&mut rand::rng(), 12),
            stale: INSTANCE_STALE,
            presence_set: Script::new(&format!("{PRESENCE_TOTAL}{PRESENCE_SET}")),
            presence_refresh: Script::new(&format!("{PRESENCE_TOTAL}{PRESENCE_REFRESH}")),
            presence_counts: Script::new(&format!("{PRESENCE_TOTAL}{PRESENCE_COUNTS}")),
            presence_reap: Script::new(&format!("{PRESENCE_TOTAL}{PRESENCE_REAP}")),
            offline_push: Script::new(OFFLINE_PUSH),
            rate_limit: Script::new(RATE_LIMIT),
            kv_incr: Script::new(KV_INCR),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// One round trip, bounded by the timeout. The connection manager's own
    /// response timeout does not cover a command that waits for a reconnect
    /// (and its retries), so the bound is applied here, once for every call.
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
            ..self.clone()
        }
    }
}

#[async_trait]
impl Presence for RedisState {
    async fn presence_set(&self, user: &str, count: i64, ttl: Duration) -> StateResult<i64> {
        let mut script = self.presence_set.key(self.keys.instances());
        script
            .key(self.keys.presence(user))
            .key(self.keys.instance_users(&self.instance))
            .arg(millis(self.stale))
            .arg(&self.instance)
            .arg(user)
            .arg(millis(ttl))
            .arg(count);
        self.call(script.invoke_async(&mut self.conn())).await
    }

    async fn presence_refresh(&self, users: &[(String, i64)], ttl: Duration) -> StateResult<()> {
        // In chunks, so no one script call holds Redis for long (3 commands per
        // user); with no user at all, one call still marks the instance live.
        let none = users.is_empty().then_some(&users[..0]);
        for chunk in users.chunks(PRESENCE_REFRESH_CHUNK).chain(none) {
            let mut script = self.presence_refresh.key(self.keys.instances());
            script
                .key(self.keys.instance_users(&self.instance))
                .arg(millis(self.stale))
                .arg(&self.instance)
                .arg(millis(ttl))
                .arg(self.keys.presence(""));
            for (user, count) in chunk {
                script.arg(user).arg(count);
            }
            self.call(script.invoke_async::<i64>(&mut self.conn()))
                .await?;
        }
        Ok(())
    }

    async fn presence_counts(&self, users: &[String]) -> StateResult<Vec<i64>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut script = self.presence_counts.key(self.keys.instances());
        for user in users {
            script.key(self.keys.presence(user));
        }
        script.arg(millis(self.stale));
        let totals: Vec<i64> = self.call(script.invoke_async(&mut self.conn())).await?;
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
        let mut script = self.presence_reap.key(self.keys.instances());
        script
            .arg(millis(self.stale))
            .arg(&self.instance)
            .arg(self.keys.presence(""))
            .arg(self.keys.instance_users(""));
        self.call(script.invoke_async(&mut self.conn())).await
    }

    async fn presence_instances(&self) -> StateResult<Vec<(String, i64)>> {
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
            redis::pipe()
                .atomic()
                .zrem(self.keys.instances(), &self.instance)
                .del(self.keys.instance_users(&self.instance))
                .query_async::<()>(&mut self.conn()),
        )
        .await
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
            self.offline_push
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
        let mut script = self.rate_limit.key(self.keys.ratelimit(user));
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
    async fn append_events(&self, entries: &[StreamEntry]) -> StateResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let stream = self.keys.events();
        let mut pipe = redis::pipe();
        for entry in entries {
            let cmd = pipe
                .cmd("XADD")
                .arg(&stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(EVENT_STREAM_MAX)
                .arg("*")
                .arg("type")
                .arg(&entry.kind);
            for (name, value) in &entry.fields {
                cmd.arg(name).arg(value);
            }
            cmd.ignore();
        }
        self.call(pipe.query_async::<()>(&mut self.conn())).await
    }

    async fn events_len(&self) -> StateResult<u64> {
        self.call(
            redis::cmd("XLEN")
                .arg(self.keys.events())
                .query_async(&mut self.conn()),
        )
        .await
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
        let mut script = self.kv_incr.key(self.keys.plugin_kv(plugin, key));
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
            let (next, batch): (u64, Vec<String>) = self
                .call(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(limit.max(KV_SCAN_COUNT))
                        .query_async(&mut self.conn()),
                )
                .await?;
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
        self.call(
            self.conn()
                .publish::<_, _, i64>(self.keys.plugin_channel(), message),
        )
        .await
        .map(drop)
    }

    fn plugin_changes(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = self.client.clone();
        let channel = self.keys.plugin_channel();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            // Re-subscribes after a lost connection until nobody listens any more.
            while !tx.is_closed() {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                        Ok(()) => {
                            let mut messages = pubsub.on_message();
                            while let Some(msg) = messages.next().await {
                                if let Ok(text) = msg.get_payload::<String>()
                                    && tx.send(text).is_err()
                                {
                                    return;
                                }
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "plugin channel subscription failed"),
                    },
                    Err(e) => tracing::warn!(error = %e, "plugin channel unavailable"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        rx
    }
}

#[async_trait]
impl StateStore for RedisState {
    async fn ping(&self) -> StateResult<()> {
        self.call(redis::cmd("PING").query_async::<String>(&mut self.conn()))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_prefix_keeps_the_contract_names_and_a_prefix_moves_them_all() {
        let default = RedisKeys::default();
        assert_eq!(default, RedisKeys::new(DEFAULT_PREFIX).unwrap());
        assert_eq!(default.presence("u1"), "chat:presence:u1");
        assert_eq!(default.instances(), "chat:presence-instances");
        assert_eq!(default.events(), "chat:logs:events");
        assert_eq!(default.plugin_channel(), "chat:plugins:changed");
        assert_eq!(default.plugin_kv("p", "k"), "chat:plugin-kv:p:k");
        let x = RedisKeys::new("tenant-x").unwrap();
        for key in [
            x.presence("u1"),
            x.instances(),
            x.instance_users("i"),
            x.last_seen(),
            x.typing("t", "u"),
            x.offline("u"),
            x.resync("u"),
            x.ratelimit("u"),
            x.thread_meta("t"),
            x.plugin_kv("p", "k"),
            x.plugin_channel(),
            x.events(),
            x.adapter_prefix(),
        ] {
            assert!(key.starts_with("tenant-x:"), "{key}");
        }
        assert_eq!(x.adapter_prefix(), "tenant-x:socket.io");
    }

    #[test]
    fn a_prefix_that_could_overlap_another_is_refused() {
        for bad in ["", "a:b", "with space", "ünï", &"x".repeat(65), "*"] {
            assert!(RedisKeys::new(bad).is_err(), "{bad:?}");
        }
        assert!(RedisKeys::new("prod_eu-1.chat").is_ok());
    }
}
