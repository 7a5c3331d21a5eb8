//! The names of every Redis key and channel of one deployment.

/// The prefix of every key and channel when `CHAT_REDIS_PREFIX` is not set: the
/// contract's names (`chat:presence:<user>`, `chat:logs:events`, ...).
pub const DEFAULT_PREFIX: &str = "chat";

/// Shards of the event stream on a Redis Cluster (one stream key each, spread
/// over the masters by their hash tags); a server keeps one stream.
pub const EVENT_STREAM_SHARDS: usize = 16;

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
/// without seeing each other. Key shapes are defined here only.
///
/// On a Redis Cluster ([`RedisKeys::with_hash_tags`]) the part that decides
/// the slot is a hash tag: `<prefix>:presence:{<user>}`, `<prefix>:offline:{<user>}`
/// and `<prefix>:ratelimit:{<user>}` share the user's slot, and
/// `<prefix>:typing:{<thread>}:<user>` and `<prefix>:thread-meta:{<thread>}` the
/// thread's, so a script or transaction over one user's or one thread's keys
/// runs on one shard, and users and threads spread over all shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisKeys {
    /// `<prefix>:`.
    root: String,
    /// Names carry hash tags (Redis Cluster).
    tagged: bool,
}

impl Default for RedisKeys {
    fn default() -> Self {
        Self {
            root: format!("{DEFAULT_PREFIX}:"),
            tagged: false,
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
            tagged: false,
        })
    }

    /// The same keys with hash tags, for a Redis Cluster.
    pub fn with_hash_tags(self) -> Self {
        Self {
            tagged: true,
            ..self
        }
    }

    /// `part` as the slot-deciding part of a name: `{part}` on a cluster.
    fn slot(&self, part: &str) -> String {
        if self.tagged {
            format!("{{{part}}}")
        } else {
            part.to_owned()
        }
    }

    /// `<prefix>:presence:<user>`: hash instance id -> `<count>@<ms>`, that
    /// instance's count of the user's connections and when it last wrote it.
    pub(crate) fn presence(&self, user: &str) -> String {
        format!("{}presence:{}", self.root, self.slot(user))
    }
    /// `<prefix>:presence-instances`: sorted set instance id -> its last refresh (ms).
    pub(crate) fn instances(&self) -> String {
        format!("{}presence-instances", self.root)
    }
    /// `<prefix>:presence-instance:<instance>`: the users with sockets on it.
    pub(crate) fn instance_users(&self, instance: &str) -> String {
        format!("{}presence-instance:{}", self.root, self.slot(instance))
    }
    /// `<prefix>:last-seen`: hash user id -> when the user's last connection closed (ms).
    pub(crate) fn last_seen(&self) -> String {
        format!("{}last-seen", self.root)
    }
    pub(crate) fn typing(&self, thread: &str, user: &str) -> String {
        format!("{}typing:{}:{user}", self.root, self.slot(thread))
    }
    pub(crate) fn offline(&self, user: &str) -> String {
        format!("{}offline:{}", self.root, self.slot(user))
    }
    pub(crate) fn resync(&self, user: &str) -> String {
        format!("{}offline:{}:resync", self.root, self.slot(user))
    }
    pub(crate) fn ratelimit(&self, user: &str) -> String {
        format!("{}ratelimit:{}", self.root, self.slot(user))
    }
    pub(crate) fn thread_meta(&self, thread: &str) -> String {
        format!("{}thread-meta:{}", self.root, self.slot(thread))
    }
    /// `<prefix>:plugin-kv:<plugin>:<key>`; on a cluster a plugin's keys share
    /// one slot, so one node's `SCAN` lists them.
    pub(crate) fn plugin_kv(&self, plugin: &str, key: &str) -> String {
        format!("{}plugin-kv:{}:{key}", self.root, self.slot(plugin))
    }
    /// `<prefix>:plugins:changed`: the pub/sub channel of plugin changes.
    pub fn plugin_channel(&self) -> String {
        format!("{}plugins:changed", self.root)
    }
    /// The event stream's keys: `<prefix>:logs:events` (`chat:logs:events` by
    /// default) on a server; on a cluster [`EVENT_STREAM_SHARDS`] keys
    /// `<prefix>:logs:events:{<n>}`, which a reader reads one by one.
    pub fn event_streams(&self) -> Vec<String> {
        (0..self.event_shards())
            .map(|n| self.event_shard(n))
            .collect()
    }
    /// Streams of the event log: one on a server, [`EVENT_STREAM_SHARDS`] on a cluster.
    pub(crate) fn event_shards(&self) -> usize {
        if self.tagged { EVENT_STREAM_SHARDS } else { 1 }
    }
    fn event_shard(&self, n: usize) -> String {
        if self.tagged {
            format!("{}logs:events:{{{n}}}", self.root)
        } else {
            format!("{}logs:events", self.root)
        }
    }
    /// The stream key of an entry about `subject` (a thread, else a user): one
    /// subject's entries stay in one stream, in order.
    pub(crate) fn event_stream(&self, subject: &str) -> String {
        // FNV-1a: the same shard on every instance and every build.
        let hash = subject.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        self.event_shard((hash % self.event_shards() as u64) as usize)
    }
    /// `<prefix>:socket.io`: the prefix of the Socket.IO adapter's channels
    /// (`<prefix>:socket.io-request#/#`, ...), instead of the adapter's default
    /// `socket.io`, which every deployment on the server would share.
    pub fn adapter_prefix(&self) -> String {
        format!("{}socket.io", self.root)
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
        assert_eq!(default.event_streams(), ["chat:logs:events"]);
        assert_eq!(default.event_stream("t1"), "chat:logs:events");
        assert_eq!(default.plugin_channel(), "chat:plugins:changed");
        assert_eq!(default.plugin_kv("p", "k"), "chat:plugin-kv:p:k");
        let x = RedisKeys::new("tenant-x").unwrap();
        for tagged in [false, true] {
            let x = if tagged {
                x.clone().with_hash_tags()
            } else {
                x.clone()
            };
            let mut keys = vec![
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
                x.adapter_prefix(),
            ];
            keys.extend(x.event_streams());
            for key in keys {
                assert!(key.starts_with("tenant-x:"), "{key}");
            }
        }
        assert_eq!(x.adapter_prefix(), "tenant-x:socket.io");
    }

    /// The hash tag of a key as Redis Cluster reads it: the text between the
    /// first `{` and the next `}`, when not empty; else the whole key.
    fn hash_tag(key: &str) -> &str {
        key.find('{')
            .and_then(|open| {
                let rest = &key[open + 1..];
                rest.find('}')
                    .filter(|&close| close > 0)
                    .map(|close| &rest[..close])
            })
            .unwrap_or(key)
    }

    #[test]
    fn on_a_cluster_a_users_keys_share_a_slot_and_so_do_a_threads() {
        let keys = RedisKeys::default().with_hash_tags();
        assert_eq!(keys.presence("u1"), "chat:presence:{u1}");
        for user in ["u1", "a}b", "a{b", "{x}"] {
            let tags: Vec<String> = [
                keys.presence(user),
                keys.offline(user),
                keys.resync(user),
                keys.ratelimit(user),
            ]
            .iter()
            .map(|k| hash_tag(k).to_owned())
            .collect();
            assert!(tags.iter().all(|t| *t == tags[0]), "{user}: {tags:?}");
        }
        assert_eq!(
            hash_tag(&keys.typing("t1", "u1")),
            hash_tag(&keys.thread_meta("t1"))
        );
        let streams = keys.event_streams();
        assert_eq!(streams.len(), EVENT_STREAM_SHARDS);
        let tags: std::collections::HashSet<&str> = streams.iter().map(|k| hash_tag(k)).collect();
        assert_eq!(tags.len(), EVENT_STREAM_SHARDS, "one slot each");
        assert_eq!(keys.event_stream("t1"), keys.event_stream("t1"));
        let used: std::collections::HashSet<String> = (0..200)
            .map(|i| keys.event_stream(&format!("thread-{i}")))
            .collect();
        assert_eq!(
            used.len(),
            EVENT_STREAM_SHARDS,
            "subjects spread over every shard"
        );
    }

    #[test]
    fn a_prefix_that_could_overlap_another_is_refused() {
        for bad in ["", "a:b", "with space", "ünï", &"x".repeat(65), "*"] {
            assert!(RedisKeys::new(bad).is_err(), "{bad:?}");
        }
        assert!(RedisKeys::new("prod_eu-1.chat").is_ok());
    }
}
