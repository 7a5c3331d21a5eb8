//! The pub/sub driver of socketioxide's Redis adapter, on the state store's
//! reconnecting [`PubSub`]: classic channels on a Redis server, sharded ones on
//! a Redis Cluster. The stock driver holds one multiplexed connection that
//! never reconnects, so after a Redis outage every broadcast failed until
//! restart; this one reconnects and subscribes again by itself.

use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};

use crate::state::redis::{PubSub, PubSubError};

/// A [`Driver`] that survives Redis restarts, network cuts and cluster failovers.
#[derive(Clone)]
pub struct ReconnectingDriver(pub PubSub);

impl Driver for ReconnectingDriver {
    type Error = PubSubError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        self.0.publish(&chan, &val).await
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        Ok(MessageStream::new(self.0.subscribe(&chan, size).await?))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.0.unsubscribe(&chan).await
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        self.0.subscribers(chan).await
    }
}
