//! Redis state store: exactly the keys of the contract, atomic scripts where a
//! read-modify-write would race between instances.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, Script};

use super::{
    EVENT_STREAM_MAX, EventStream, INSTANCE_STALE, KvValue, OFFLINE_QUEUE_MAX, OFFLINE_QUEUE_TTL,
    OfflineBatch, OfflineQueues, PluginChanges, PluginKv, Presence, RateDecision, RateLimits,
    StateError, StateResult, StateStore, StreamEntry, ThreadCache, Typing,
};

/// Pub/sub channel of plugin changes.
pub const PLUGIN_CHANNEL: &str = "chat:plugins:changed";
/// The analytics stream key.
pub const EVENTS_KEY: &str = "chat:logs:events";
/// Longest wait for one Redis answer before the action fails as `unavailable`.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

fn presence_key(user: &str) -> String {
    format!("chat:presence:{user}")
}
/// The registry of instances (see [`PRESENCE_TOTAL`]); the scripts name it literally.
const INSTANCES_KEY: &str = "chat:presence-instances";
fn instance_users_key(instance: &str) -> String {
    format!("chat:presence-instance:{instance}")
}
fn typing_key(thread: &str, user: &str) -> String {
    format!("chat:typing:{thread}:{user}")
}
fn offline_key(user: &str) -> String {
    format!("chat:offline:{user}")
}
fn resync_key(user: &str) -> String {
    format!("chat:offline:{user}:resync")
}
fn ratelimit_key(user: &str) -> String {
    format!("chat:ratelimit:{user}")
}
fn thread_meta_key(thread: &str) -> String {
    format!("chat:thread-meta:{thread}")
}
fn plugin_kv_key(plugin: &str, key: &str) -> String {
    format!("chat:plugin-kv:{plugin}:{key}")
}

/// Presence is counted per instance: `chat:presence:<user>` is a hash of
/// instance id -> that instance's connections of the user; `chat:presence-instances`
/// scores each instance with the Redis time of its last refresh, and
/// `chat:presence-instance:<id>` lists its users (a `-`, never in a user id's
/// place, so no user's key can be one of these). A count only counts while its
/// instance is live (refreshed within the stale window). Shared Lua: the live
/// total of one user's hash. ARGV[1] = the stale window in ms.
const PRESENCE_TOTAL: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function live_total(hash, cutoff)
  local fields = redis.call('HGETALL', hash)
  local total = 0
  for i = 1, #fields, 2 do
    local seen = redis.call('ZSCORE', 'chat:presence-instances', fields[i])
    if seen and tonumber(seen) >= cutoff then total = total + tonumber(fields[i + 1]) end
  end
  return total
end
";

/// KEYS: user hash, instance user set. ARGV: stale ms, instance, user, ttl ms,
/// this instance's count of the user (0 removes it).
const PRESENCE_SET: &str = r"
local now = now_ms()
local n = tonumber(ARGV[5])
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('SREM', KEYS[2], ARGV[3])
else
  redis.call('HSET', KEYS[1], ARGV[2], n)
  redis.call('SADD', KEYS[2], ARGV[3])
end
redis.call('ZADD', 'chat:presence-instances', now, ARGV[2])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return live_total(KEYS[1], now - tonumber(ARGV[1]))";

/// KEYS: instance user set. ARGV: stale ms, instance, ttl ms, then user, count pairs.
const PRESENCE_REFRESH: &str = r"
redis.call('ZADD', 'chat:presence-instances', now_ms(), ARGV[2])
for i = 4, #ARGV, 2 do
  local hash = 'chat:presence:' .. ARGV[i]
  redis.call('HSET', hash, ARGV[2], ARGV[i + 1])
  redis.call('PEXPIRE', hash, ARGV[3])
  redis.call('SADD', KEYS[1], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";

/// KEYS: user hashes. ARGV: stale ms. Returns each user's live total.
const PRESENCE_ONLINE: &str = r"
local cutoff = now_ms() - tonumber(ARGV[1])
local out = {}
for i, hash in ipairs(KEYS) do out[i] = live_total(hash, cutoff) end
return out";

/// ARGV: stale ms, this instance. Reaps every stale instance this call removes
/// from the registry (so each once), returns its users left with no connection.
const PRESENCE_REAP: &str = r"
local cutoff = now_ms() - tonumber(ARGV[1])
local offline = {}
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', 'chat:presence-instances', '-inf', '(' .. cutoff)) do
  if dead ~= ARGV[2] and redis.call('ZREM', 'chat:presence-instances', dead) == 1 then
    local users_key = 'chat:presence-instance:' .. dead
    for _, user in ipairs(redis.call('SMEMBERS', users_key)) do
      local hash = 'chat:presence:' .. user
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
    /// This instance's id in the presence counts.
    instance: String,
    /// [`INSTANCE_STALE`], shorter in tests.
    stale: Duration,
    presence_set: Script,
    presence_refresh: Script,
    presence_online: Script,
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
    /// Connects (with reconnects and bounded response times) to `url`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            client,
            conn,
            instance: Alphanumeric.sample_string(&mut rand::rng(), 12),
            stale: INSTANCE_STALE,
            presence_set: Script::new(&format!("{PRESENCE_TOTAL}{PRESENCE_SET}")),
            presence_refresh: Script::new(&format!("{PRESENCE_TOTAL}{PRESENCE_REFRESH}")),
            presence_online: Script::new(&format!("{PRESENCE_TOTAL}{PRESENCE_ONLINE}")),
            presence_reap: Script::new(&format!("{PRESENCE_TOTAL}{PRESENCE_REAP}")),
            offline_push: Script::new(OFFLINE_PUSH),
            rate_limit: Script::new(RATE_LIMIT),
            kv_incr: Script::new(KV_INCR),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
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
        self.presence_set
            .key(presence_key(user))
            .key(instance_users_key(&self.instance))
            .arg(millis(self.stale))
            .arg(&self.instance)
            .arg(user)
            .arg(millis(ttl))
            .arg(count)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err)
    }

    async fn presence_refresh(&self, users: &[(String, i64)], ttl: Duration) -> StateResult<()> {
        let mut script = self
            .presence_refresh
            .key(instance_users_key(&self.instance));
        script
            .arg(millis(self.stale))
            .arg(&self.instance)
            .arg(millis(ttl));
        for (user, count) in users {
            script.arg(user).arg(count);
        }
        script
            .invoke_async::<i64>(&mut self.conn())
            .await
            .map(drop)
            .map_err(err)
    }

    async fn presence_online(&self, users: &[String]) -> StateResult<Vec<bool>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut script = self.presence_online.prepare_invoke();
        for user in users {
            script.key(presence_key(user));
        }
        let totals: Vec<i64> = script
            .arg(millis(self.stale))
            .invoke_async(&mut self.conn())
            .await
            .map_err(err)?;
        Ok(totals.into_iter().map(|n| n > 0).collect())
    }

    async fn presence_reap(&self) -> StateResult<Vec<String>> {
        self.presence_reap
            .arg(millis(self.stale))
            .arg(&self.instance)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err)
    }

    async fn presence_retire(&self) -> StateResult<()> {
        redis::pipe()
            .atomic()
            .zrem(INSTANCES_KEY, &self.instance)
            .del(instance_users_key(&self.instance))
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(err)
    }
}

#[async_trait]
impl Typing for RedisState {
    async fn typing_start(&self, thread: &str, user: &str, ttl: Duration) -> StateResult<()> {
        self.conn()
            .pset_ex::<_, _, ()>(typing_key(thread, user), 1, millis(ttl))
            .await
            .map_err(err)
    }

    async fn typing_stop(&self, thread: &str, user: &str) -> StateResult<bool> {
        let removed: i64 = self
            .conn()
            .del(typing_key(thread, user))
            .await
            .map_err(err)?;
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
        try_join_all(users.iter().map(|user| async move {
            self.offline_push
                .key(offline_key(user))
                .key(resync_key(user))
                .arg(message)
                .arg(OFFLINE_QUEUE_MAX)
                .arg(millis(OFFLINE_QUEUE_TTL))
                .invoke_async::<i64>(&mut self.conn())
                .await
        }))
        .await
        .map(drop)
        .map_err(err)
    }

    async fn offline_drain(&self, user: &str) -> StateResult<OfflineBatch> {
        let (queue, resync) = (offline_key(user), resync_key(user));
        let (messages, _, resync_threads, _): (Vec<String>, i64, Vec<String>, i64) = redis::pipe()
            .atomic()
            .lrange(&queue, 0, -1)
            .del(&queue)
            .smembers(&resync)
            .del(&resync)
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
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
        let wait_ms: u64 = self
            .rate_limit
            .key(ratelimit_key(user))
            .arg(millis(window))
            .arg(limit)
            .arg(member)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err)?;
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
        self.conn().get(thread_meta_key(thread)).await.map_err(err)
    }

    async fn thread_meta_put(&self, thread: &str, json: &str, ttl: Duration) -> StateResult<()> {
        self.conn()
            .pset_ex::<_, _, ()>(thread_meta_key(thread), json, millis(ttl))
            .await
            .map_err(err)
    }

    async fn thread_meta_invalidate(&self, thread: &str) -> StateResult<()> {
        self.conn()
            .del::<_, ()>(thread_meta_key(thread))
            .await
            .map_err(err)
    }
}

#[async_trait]
impl EventStream for RedisState {
    async fn append_events(&self, entries: &[StreamEntry]) -> StateResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for entry in entries {
            let cmd = pipe
                .cmd("XADD")
                .arg(EVENTS_KEY)
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
        pipe.query_async::<()>(&mut self.conn()).await.map_err(err)
    }
}

#[async_trait]
impl PluginKv for RedisState {
    async fn kv_get(&self, plugin: &str, key: &str) -> StateResult<Option<KvValue>> {
        let key = plugin_kv_key(plugin, key);
        // PTTL: milliseconds left, -1 without a TTL, -2 for a missing key.
        let (value, pttl): (Option<String>, i64) = redis::pipe()
            .get(&key)
            .pttl(&key)
            .query_async(&mut self.conn())
            .await
            .map_err(err)?;
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
        let key = plugin_kv_key(plugin, key);
        match ttl {
            Some(ttl) => {
                self.conn()
                    .pset_ex::<_, _, ()>(key, value, millis(ttl).max(1))
                    .await
            }
            None => self.conn().set::<_, _, ()>(key, value).await,
        }
        .map_err(err)
    }

    async fn kv_incr(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> StateResult<i64> {
        self.kv_incr
            .key(plugin_kv_key(plugin, key))
            .arg(delta)
            .arg(
                ttl.map(|t| millis(t).max(1).to_string())
                    .unwrap_or_default(),
            )
            .invoke_async(&mut self.conn())
            .await
            .map_err(err)
    }

    async fn kv_delete(&self, plugin: &str, key: &str) -> StateResult<bool> {
        let removed: i64 = self
            .conn()
            .del(plugin_kv_key(plugin, key))
            .await
            .map_err(err)?;
        Ok(removed > 0)
    }
}

#[async_trait]
impl PluginChanges for RedisState {
    async fn publish_plugin_change(&self, message: &str) -> StateResult<()> {
        self.conn()
            .publish::<_, _, i64>(PLUGIN_CHANNEL, message)
            .await
            .map(drop)
            .map_err(err)
    }

    fn plugin_changes(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = self.client.clone();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            // Re-subscribes after a lost connection until nobody listens any more.
            while !tx.is_closed() {
                match client.get_async_pubsub().await {
                    Ok(mut pubsub) => match pubsub.subscribe(PLUGIN_CHANNEL).await {
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
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn())
            .await
            .map(drop)
            .map_err(err)
    }
}
