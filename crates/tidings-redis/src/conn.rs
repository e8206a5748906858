//! One Redis connection, to a single server or to a cluster, behind one type.
//!
//! A node opens two: one for commands (scripts, `SCAN`, `PING`) and one for pub/sub, so a
//! large publish never delays the notices other nodes wait for. Both speak RESP3, which lets
//! a multiplexed connection carry push messages. Both reconnect by themselves: the single
//! server through redis-rs' `ConnectionManager` (with automatic resubscription), the cluster
//! through `ClusterConnection` (which resubscribes a node's shard channels when it
//! reconnects). Every call is also bounded by the broker's own timeout, so a caller never
//! waits on a reconnect.
//!
//! Pushes go into a bounded queue. When it is full, the push is dropped and an overflow flag
//! is raised; the fan-out task then recovers every channel from history (see
//! [`crate::fanout`]), so an overflow costs latency, never messages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{AsyncPushSender, ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture,
    RedisResult, Value,
};
use tokio::sync::{mpsc, Notify};

use crate::config::{ConnectError, RedisConfig};

/// A connection to a single server or to a cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The named overflow of the push queue: raised when a push had to be dropped.
#[derive(Default)]
pub(crate) struct Overflow {
    pub raised: AtomicBool,
    pub notify: Notify,
}

/// The bounded queue redis-rs hands pushes to; it must never block.
pub(crate) struct PushQueue {
    pub tx: mpsc::Sender<PushInfo>,
    pub overflow: Arc<Overflow>,
}

impl AsyncPushSender for PushQueue {
    fn send(&self, info: PushInfo) -> Result<(), redis::aio::SendError> {
        match self.tx.try_send(info) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.raised.store(true, Ordering::Release);
                self.overflow.notify.notify_one();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(redis::aio::SendError),
        }
    }
}

fn resp3(key: &'static str, url: &str) -> Result<ConnectionInfo, ConnectError> {
    let info = url
        .into_connection_info()
        .map_err(|e| ConnectError::Config {
            key,
            reason: format!("{url:?} is not a Redis URL ({e}); use redis://host:port"),
        })?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(settings))
}

impl Conn {
    /// Connects as `config` says; with `push`, this is a pub/sub connection.
    pub async fn open(config: &RedisConfig, push: Option<PushQueue>) -> Result<Conn, ConnectError> {
        let t = config.timeout;
        let unreachable = |reason: String| ConnectError::Unreachable {
            target: config.target(),
            reason,
        };
        let connecting = async {
            if config.cluster_nodes.is_empty() {
                let client = redis::Client::open(resp3("url", config.url())?)
                    .map_err(|e| unreachable(e.to_string()))?;
                let mut cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(t))
                    .set_response_timeout(Some(t))
                    .set_number_of_retries(3)
                    .set_min_delay(Duration::from_millis(100))
                    .set_max_delay(Duration::from_secs(1));
                if let Some(push) = push {
                    cfg = cfg.set_push_sender(push).set_automatic_resubscription();
                }
                let m = ConnectionManager::new_with_config(client, cfg)
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                Ok(Conn::Single(m))
            } else {
                let nodes = config
                    .cluster_nodes
                    .iter()
                    .map(|n| resp3("cluster_nodes", n))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut b = ClusterClientBuilder::new(nodes)
                    .use_protocol(ProtocolVersion::RESP3)
                    .connection_timeout(t)
                    .response_timeout(t)
                    .retries(3)
                    .min_retry_wait(50)
                    .max_retry_wait(500);
                if let Some(push) = push {
                    b = b.push_sender(push);
                }
                let client = b.build().map_err(|e| unreachable(e.to_string()))?;
                let c = client
                    .get_async_connection()
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
                Ok(Conn::Cluster(c))
            }
        };
        tokio::time::timeout(t * 3, connecting)
            .await
            .map_err(|_| unreachable(format!("no answer within {:?}", t * 3)))?
    }

    /// True for a cluster connection, which uses sharded pub/sub.
    pub fn sharded(&self) -> bool {
        matches!(self, Conn::Cluster(_))
    }

    /// Subscribes to pub/sub channels (sharded ones on a cluster).
    pub async fn subscribe(&mut self, names: &[String]) -> RedisResult<()> {
        match self {
            Conn::Single(c) => c.subscribe(names).await,
            Conn::Cluster(c) => c.ssubscribe(names).await,
        }
    }

    /// Unsubscribes from pub/sub channels.
    pub async fn unsubscribe(&mut self, names: &[String]) -> RedisResult<()> {
        match self {
            Conn::Single(c) => c.unsubscribe(names).await,
            Conn::Cluster(c) => c.sunsubscribe(names).await,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
