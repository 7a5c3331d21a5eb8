//! One Redis connection for either topology: a standalone server (redis'
//! `ConnectionManager`, which reconnects) or a Redis Cluster (redis' cluster
//! client, which follows MOVED and ASK, refreshes its slot map after a
//! failover and reconnects). Commands, pipelines and scripts run on both
//! unchanged ([`ConnectionLike`]); on a cluster each pipeline or script must
//! keep to one hash slot, which [`super::RedisKeys`] arranges with hash tags.
//! [`PubSub`] is the same for channels: classic pub/sub on a server, sharded
//! pub/sub (`SPUBLISH`/`SSUBSCRIBE`) on a cluster.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, ProtocolVersion, PushInfo, PushKind, RedisFuture, RedisResult, Value};
use tokio::sync::mpsc;

use crate::config::RedisTarget;

/// A reconnecting connection to a server or a cluster.
#[derive(Clone)]
pub enum RedisConn {
    /// A standalone server.
    Standalone(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

/// `url` with RESP3, which pushed (pub/sub) messages need.
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

impl RedisConn {
    /// Connects to `target`; a connection attempt or an answer that takes longer
    /// than `timeout` fails. With `push`, the connection speaks RESP3, hands
    /// every pushed message to it and subscribes again after a reconnect.
    pub async fn connect(
        target: &RedisTarget,
        timeout: Duration,
        push: Option<Arc<dyn Fn(PushInfo) + Send + Sync>>,
    ) -> RedisResult<Self> {
        let sender = push.map(|push| {
            move |msg: PushInfo| {
                push(msg);
                Ok::<(), std::convert::Infallible>(())
            }
        });
        match target {
            RedisTarget::Standalone(url) => {
                let mut config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(timeout))
                    .set_connection_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                let client = match sender {
                    Some(sender) => {
                        config = config
                            .set_push_sender(sender)
                            .set_automatic_resubscription();
                        redis::Client::open(with_resp3(url))?
                    }
                    None => redis::Client::open(url.as_str())?,
                };
                Ok(Self::Standalone(
                    client.get_connection_manager_with_config(config).await?,
                ))
            }
            RedisTarget::Cluster(urls) => {
                let mut builder = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .max_retry_wait(1_000);
                if sender.is_some() {
                    builder = builder.use_protocol(ProtocolVersion::RESP3);
                }
                let client = builder.build()?;
                let mut config = ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                if let Some(sender) = sender {
                    config = config.set_push_sender(sender);
                }
                Ok(Self::Cluster(
                    client.get_async_connection_with_config(config).await?,
                ))
            }
        }
    }

    /// True on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Runs `cmd` on the master that serves `key`'s slot (on a server: runs it).
    /// For commands without a key that act on one node's data, such as `SCAN`.
    pub async fn on_node_of(&mut self, key: &str, cmd: Cmd) -> RedisResult<Value> {
        match self {
            Self::Standalone(conn) => cmd.query_async(conn).await,
            Self::Cluster(conn) => {
                let route = Route::with_key(key.as_bytes(), SlotAddr::Master);
                conn.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
            }
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Standalone(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Standalone(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Standalone(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A message on a channel: the channel's name and the payload.
pub type ChannelItem = (String, Vec<u8>);

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChannelItem>>>>;

/// Pub/sub on one push connection: classic channels on a server, sharded
/// channels on a cluster (each served by the shard that owns its slot). Every
/// subscription comes back by itself after a reconnect or a failover.
#[derive(Clone)]
pub struct PubSub {
    conn: RedisConn,
    handlers: Handlers,
    /// Longest wait for one command, a reconnect included.
    timeout: Duration,
}

/// A pub/sub command that failed.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// Redis refused the command or the connection failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No answer within the timeout (a stalled Redis, or a reconnect still retrying).
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

fn route(push: PushInfo, handlers: &Handlers) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) || push.data.len() < 2 {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(chan), Some(payload)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(chan), Ok(payload)) = (
        redis::from_redis_value::<String>(chan),
        redis::from_redis_value::<Vec<u8>>(payload),
    ) else {
        return;
    };
    if let Some(tx) = handlers
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&chan)
        && tx.try_send((chan, payload)).is_err()
    {
        tracing::warn!("pub/sub channel full; a message from another instance was dropped");
    }
}

impl PubSub {
    /// Connects to `target`; a command that gets no answer within `timeout` fails.
    pub async fn connect(target: &RedisTarget, timeout: Duration) -> RedisResult<Self> {
        let handlers: Handlers = Arc::default();
        let routed = handlers.clone();
        let push: Arc<dyn Fn(PushInfo) + Send + Sync> = Arc::new(move |msg| route(msg, &routed));
        let conn = RedisConn::connect(target, timeout, Some(push)).await?;
        Ok(Self {
            conn,
            handlers,
            timeout,
        })
    }

    async fn bounded<T>(
        &self,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, PubSubError> {
        // The connection's own response timeout does not cover a reconnect.
        tokio::time::timeout(self.timeout, request)
            .await
            .map_err(|_| PubSubError::Timeout(self.timeout))?
            .map_err(PubSubError::from)
    }

    /// Publishes `payload` on `chan` (`PUBLISH`, or `SPUBLISH` on a cluster).
    pub async fn publish(&self, chan: &str, payload: &[u8]) -> Result<(), PubSubError> {
        let name = if self.conn.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let mut cmd = redis::cmd(name);
        cmd.arg(chan).arg(payload);
        let mut conn = self.conn.clone();
        self.bounded(cmd.query_async::<Value>(&mut conn))
            .await
            .map(drop)
    }

    /// Subscribes to `chan`; its messages arrive on the receiver, which holds up
    /// to `size` of them (more are dropped with a warning).
    pub async fn subscribe(
        &self,
        chan: &str,
        size: usize,
    ) -> Result<mpsc::Receiver<ChannelItem>, PubSubError> {
        let (tx, rx) = mpsc::channel(size);
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(chan.to_owned(), tx);
        let mut conn = self.conn.clone();
        match &mut conn {
            RedisConn::Standalone(c) => self.bounded(c.subscribe(chan)).await?,
            RedisConn::Cluster(c) => self.bounded(c.ssubscribe(chan)).await?,
        }
        Ok(rx)
    }

    /// Ends the subscription to `chan`.
    pub async fn unsubscribe(&self, chan: &str) -> Result<(), PubSubError> {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(chan);
        let mut conn = self.conn.clone();
        match &mut conn {
            RedisConn::Standalone(c) => self.bounded(c.unsubscribe(chan)).await,
            RedisConn::Cluster(c) => self.bounded(c.sunsubscribe(chan)).await,
        }
    }

    /// How many connections, of every instance, are subscribed to `chan`.
    pub async fn subscribers(&self, chan: &str) -> Result<u16, PubSubError> {
        let sub = if self.conn.is_cluster() {
            "SHARDNUMSUB"
        } else {
            "NUMSUB"
        };
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg(sub).arg(chan);
        let mut conn = self.conn.clone();
        // A channel, count list; on a cluster the counts of every node, summed.
        let counts: HashMap<String, u16> = self.bounded(cmd.query_async(&mut conn)).await?;
        Ok(counts.get(chan).copied().unwrap_or(0))
    }
}
