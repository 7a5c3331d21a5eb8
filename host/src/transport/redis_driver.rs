//! The pub/sub driver of socketioxide's Redis adapter, on a reconnecting
//! connection. The stock driver holds one multiplexed connection that never
//! reconnects, so after a Redis outage every broadcast failed until restart;
//! this one reconnects and re-subscribes by itself (redis' `ConnectionManager`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, PushInfo, PushKind};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// A [`Driver`] that survives Redis restarts and network cuts.
#[derive(Clone)]
pub struct ReconnectingDriver {
    conn: ConnectionManager,
    handlers: Handlers,
    /// Longest wait for one publish, a reconnect included.
    timeout: Duration,
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
        tracing::warn!(
            "cluster broadcast channel full; a message from another instance was dropped"
        );
    }
}

impl ReconnectingDriver {
    /// Connects to the Redis of `client` (RESP3 is required for pushed messages);
    /// a publish or subscription that gets no answer within `timeout` fails.
    pub async fn new(client: &redis::Client, timeout: Duration) -> redis::RedisResult<Self> {
        let handlers: Handlers = Arc::default();
        let routed = handlers.clone();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |push: PushInfo| {
                route(push, &routed);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_max_delay(Duration::from_secs(1));
        let conn = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            conn,
            handlers,
            timeout,
        })
    }
}

/// A driver failure.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Redis refused the command or the connection failed.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No answer within the timeout (a stalled Redis, or a reconnect still retrying).
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

impl Driver for ReconnectingDriver {
    type Error = DriverError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        // The manager's response timeout does not cover waiting for a reconnect.
        let mut conn = self.conn.clone();
        tokio::time::timeout(self.timeout, conn.publish::<_, _, redis::Value>(chan, val))
            .await
            .map_err(|_| DriverError::Timeout(self.timeout))??;
        Ok(())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        let (tx, rx) = mpsc::channel(size);
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(chan.clone(), tx);
        self.conn.clone().subscribe(chan).await?;
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&chan);
        self.conn.clone().unsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
}
