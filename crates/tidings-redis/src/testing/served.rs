//! A broker bound to the private Redis it talks to, for suites that only see `Arc<dyn Broker>`.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use tidings_core::broker::{ChannelStats, Range};
use tidings_core::{Broker, BrokerError, BrokerHandler, ChannelOptions, History, Shared};
use tidings_protocol::{ChannelName, Payload, Position};

use super::{RedisCluster, RedisServer};
use crate::{RedisBroker, RedisConfig};

/// A broker that keeps the server it talks to alive; it delegates every call.
pub struct ServedBroker<S: Send + Sync + 'static> {
    pub broker: Arc<RedisBroker>,
    pub server: S,
}

/// A fresh private server and a broker on it.
pub async fn private_broker() -> Arc<dyn Broker> {
    let server = RedisServer::start().expect("start redis-server");
    let config = RedisConfig {
        url: Some(server.url()),
        ..Default::default()
    };
    let broker = RedisBroker::connect(config).await.expect("connect");
    Arc::new(ServedBroker { broker, server })
}

/// A broker on the shared 3-master cluster.
pub async fn cluster_broker() -> Arc<dyn Broker> {
    let server = tokio::task::spawn_blocking(RedisCluster::shared)
        .await
        .expect("cluster task")
        .expect("start redis cluster");
    let config = RedisConfig {
        cluster_nodes: server.urls(),
        ..Default::default()
    };
    let broker = RedisBroker::connect(config).await.expect("connect");
    Arc::new(ServedBroker { broker, server })
}

#[async_trait]
impl<S: Send + Sync + 'static> Broker for ServedBroker<S> {
    fn set_handler(&self, handler: Weak<dyn BrokerHandler>) {
        self.broker.set_handler(handler)
    }
    async fn publish(
        &self,
        channel: &ChannelName,
        event: Option<Box<str>>,
        data: Payload,
        opts: &ChannelOptions,
    ) -> Result<Shared, BrokerError> {
        self.broker.publish(channel, event, data, opts).await
    }
    async fn history(
        &self,
        channel: &ChannelName,
        range: Range,
        opts: &ChannelOptions,
    ) -> Result<History, BrokerError> {
        self.broker.history(channel, range, opts).await
    }
    async fn subscribe(&self, channel: &ChannelName) -> Result<(), BrokerError> {
        self.broker.subscribe(channel).await
    }
    async fn unsubscribe(&self, channel: &ChannelName) -> Result<(), BrokerError> {
        self.broker.unsubscribe(channel).await
    }
    async fn delete(&self, channel: &ChannelName) -> Result<Position, BrokerError> {
        self.broker.delete(channel).await
    }
    async fn channels(&self) -> Result<Vec<ChannelName>, BrokerError> {
        self.broker.channels().await
    }
    async fn stats(&self, channel: &ChannelName) -> Result<Option<ChannelStats>, BrokerError> {
        self.broker.stats(channel).await
    }
    fn history_bytes(&self) -> usize {
        self.broker.history_bytes()
    }
    fn healthy(&self) -> bool {
        self.broker.healthy()
    }
}
