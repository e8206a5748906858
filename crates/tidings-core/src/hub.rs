//! The hub: this node's registry of local subscribers, fed by the broker.
//!
//! The registry is a sharded map from channel to its sinks (a sink is one connection's
//! [`Outbox`]); there is no global lock on the hot path. A publish goes to the broker, which
//! assigns the position and calls [`BrokerHandler::on_message`]; the hub then pushes the one shared
//! message into every local sink of the channel. Pushing never blocks: a full outbox applies its
//! slow-consumer policy, so a stalled reader never delays the publisher or anyone else.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tidings_protocol::{ChannelName, Payload, Position, Reset, ResetReason};

use crate::broker::{Broker, BrokerError, BrokerHandler, ChannelStats, History, Range};
use crate::options::{ChannelOptions, Namespaces, SlowConsumer};
use crate::outbox::{Item, Outbox};
use crate::published::Shared;

const SHARDS: usize = 64;

/// The transport a subscription arrived on, for per-transport counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Poll,
    LongPoll,
    Iframe,
    Stream,
    Sse,
    Ws,
    WsRaw,
}

impl Transport {
    /// Every transport, in the order of DESIGN §3.
    pub const ALL: [Transport; 7] = [
        Transport::Poll,
        Transport::LongPoll,
        Transport::Iframe,
        Transport::Stream,
        Transport::Sse,
        Transport::Ws,
        Transport::WsRaw,
    ];

    /// The name used in metrics and the channel API.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Poll => "poll",
            Transport::LongPoll => "longpoll",
            Transport::Iframe => "iframe",
            Transport::Stream => "stream",
            Transport::Sse => "sse",
            Transport::Ws => "ws",
            Transport::WsRaw => "ws_raw",
        }
    }
}

/// Why a hub call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

struct Sink {
    id: u64,
    outbox: Arc<Outbox>,
    transport: Transport,
}

struct Subscribers {
    sinks: Vec<Sink>,
    policy: SlowConsumer,
}

type Shard = Mutex<HashMap<ChannelName, Subscribers>>;

/// This node's hub.
pub struct Hub {
    broker: Arc<dyn Broker>,
    namespaces: Namespaces,
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
    next_id: AtomicU64,
}

impl Hub {
    /// A hub over `broker`, which it installs itself into as the handler.
    pub fn new(broker: Arc<dyn Broker>, namespaces: Namespaces) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            broker,
            namespaces,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            next_id: AtomicU64::new(1),
        });
        let weak: std::sync::Weak<dyn BrokerHandler> =
            Arc::downgrade(&(hub.clone() as Arc<dyn BrokerHandler>));
        hub.broker.set_handler(weak);
        hub
    }

    /// The broker.
    pub fn broker(&self) -> &Arc<dyn Broker> {
        &self.broker
    }

    /// The options that apply to `channel`.
    pub fn options(&self, channel: &str) -> &ChannelOptions {
        self.namespaces.for_channel(channel)
    }

    /// Publishes a message.
    pub async fn publish(
        &self,
        channel: &ChannelName,
        event: Option<Box<str>>,
        data: Payload,
    ) -> Result<Shared, HubError> {
        let opts = self.options(channel);
        let msg = self.broker.publish(channel, event, data, opts).await?;
        metrics::counter!("tidings_messages_published_total").increment(1);
        Ok(msg)
    }

    /// Reads history.
    pub async fn history(&self, channel: &ChannelName, range: Range) -> Result<History, HubError> {
        Ok(self
            .broker
            .history(channel, range, self.options(channel))
            .await?)
    }

    /// Deletes a channel's history and starts a new epoch; local streams get a `deleted` reset.
    pub async fn delete(&self, channel: &ChannelName) -> Result<Position, HubError> {
        Ok(self.broker.delete(channel).await?)
    }

    /// Channel statistics from the broker.
    pub async fn stats(&self, channel: &ChannelName) -> Result<Option<ChannelStats>, HubError> {
        Ok(self.broker.stats(channel).await?)
    }

    /// Channels with history, plus channels with local subscribers, sorted.
    pub async fn channels(&self) -> Result<Vec<ChannelName>, HubError> {
        let mut names = self.broker.channels().await?;
        for shard in self.shards.iter() {
            names.extend(shard.lock().keys().cloned());
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Local subscribers of `channel` by transport (transports with none are left out).
    pub fn local_subscribers(&self, channel: &ChannelName) -> Vec<(Transport, usize)> {
        let shard = self.shard(channel).lock();
        let Some(subs) = shard.get(channel) else {
            return Vec::new();
        };
        Transport::ALL
            .iter()
            .map(|t| (*t, subs.sinks.iter().filter(|s| s.transport == *t).count()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// True when this node has local subscribers on `channel`.
    pub fn has_local(&self, channel: &ChannelName) -> bool {
        self.shard(channel).lock().contains_key(channel)
    }

    fn shard(&self, channel: &ChannelName) -> &Shard {
        &self.shards[(self.hasher.hash_one(channel) as usize) % SHARDS]
    }

    /// Adds a sink for `channel`; returns its id. Tells the broker when it is the first.
    pub(crate) async fn register(
        &self,
        channel: &ChannelName,
        outbox: &Arc<Outbox>,
        transport: Transport,
    ) -> Result<u64, HubError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut shard = self.shard(channel).lock();
            let policy = self.options(channel).slow_consumer;
            let subs = shard.entry(channel.clone()).or_insert_with(|| Subscribers {
                sinks: Vec::new(),
                policy,
            });
            subs.sinks.push(Sink {
                id,
                outbox: outbox.clone(),
                transport,
            });
            subs.sinks.len() == 1
        };
        if first {
            if let Err(e) = self.broker.subscribe(channel).await {
                self.unregister(channel, id);
                return Err(e.into());
            }
        }
        Ok(id)
    }

    /// Removes a sink. Tells the broker, in the background, when it was the last.
    pub(crate) fn unregister(&self, channel: &ChannelName, id: u64) {
        let last = {
            let mut shard = self.shard(channel).lock();
            let Some(subs) = shard.get_mut(channel) else {
                return;
            };
            if let Some(i) = subs.sinks.iter().position(|s| s.id == id) {
                subs.sinks.swap_remove(i);
            }
            let empty = subs.sinks.is_empty();
            if empty {
                shard.remove(channel);
            }
            empty
        };
        if last {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let broker = self.broker.clone();
                let channel = channel.clone();
                rt.spawn(async move {
                    let _ = broker.unsubscribe(&channel).await;
                });
            }
        }
    }

    fn fan_out(&self, channel: &ChannelName, item: Item, policy: Option<SlowConsumer>) {
        let shard = self.shard(channel).lock();
        if let Some(subs) = shard.get(channel) {
            let policy = policy.unwrap_or(subs.policy);
            for sink in &subs.sinks {
                sink.outbox.push(item.clone(), policy);
            }
        }
    }
}

impl BrokerHandler for Hub {
    fn on_message(&self, msg: &Shared) {
        self.fan_out(&msg.msg.channel, Item::Message(msg.clone()), None);
    }

    fn on_reset(&self, channel: &ChannelName, top: Position, reason: ResetReason) {
        let reset = Reset {
            channel: channel.clone(),
            position: top,
            reason,
        };
        // A reset must never be dropped silently: if it does not fit, the connection closes and
        // the client's resume meets the new epoch instead.
        self.fan_out(channel, Item::Reset(reset), Some(SlowConsumer::Disconnect));
    }
}
