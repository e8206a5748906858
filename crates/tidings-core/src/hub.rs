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
use std::time::Instant;

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
    pace: Pace,
}

/// Whether a channel's fan-out writes through to idle sockets or queues for the connections'
/// tasks ([`crate::direct`]).
///
/// Write-through is the cheapest path for one message: one `send()` per subscriber from the
/// publisher's call. But it sends every message on its own, and the publish waits for all of
/// them. When the next publish is already waiting as a fan-out ends, queueing is better: the
/// pushes are cheap, and each connection's task then writes everything queued for it in one
/// `send()`. So each channel keeps an average of what a write-through costs per subscriber, and
/// when a publish arrives less than [`BUSY`] × that cost after the previous fan-out ended, twice
/// in a row, the channel queues for at least [`HOLD`] (publishers that run ahead of delivery come in bursts,
/// and the pause after a burst, while connections catch up, says nothing about the load).
/// Fixed-rate channels, where no batching is possible, keep writing through.
#[derive(Default)]
struct Pace {
    /// When the previous fan-out ended.
    last_end: Option<Instant>,
    /// Average nanoseconds a write-through costs per subscriber (0 before the first).
    per_sink: f64,
    /// Queue, do not write through, until then.
    queue_until: Option<Instant>,
    /// Fan-outs in a row that found the next publish already waiting.
    strikes: u8,
}

/// A publish arriving within this share of a write-through fan-out's cost after the previous
/// fan-out ended means publishes are backing up.
const BUSY: f64 = 0.1;
/// How long a busy channel queues before it may write through again.
const HOLD: std::time::Duration = std::time::Duration::from_secs(1);

impl Pace {
    fn through(&mut self, now: Instant, sinks: usize) -> bool {
        if let Some(end) = self.last_end {
            let idle = now.saturating_duration_since(end).as_nanos() as f64;
            if idle < BUSY * self.per_sink * sinks as f64 {
                // Twice in a row: one late fan-out (the machine was busy elsewhere) at a fixed
                // rate is not a backlog, while a publisher running ahead keeps it up.
                self.strikes = self.strikes.saturating_add(1);
                if self.strikes >= 2 {
                    self.queue_until = Some(now + HOLD);
                    // An estimate made on a loaded machine must not keep the channel queueing
                    // forever.
                    self.per_sink *= 0.999;
                    return false;
                }
            } else {
                self.strikes = 0;
            }
        }
        self.queue_until.is_none_or(|t| now >= t)
    }

    fn ended(&mut self, start: Instant, end: Instant, through: bool, sinks: usize) {
        self.last_end = Some(end);
        if !through || sinks == 0 {
            return;
        }
        let each = end.saturating_duration_since(start).as_nanos() as f64 / sinks as f64;
        self.per_sink = if self.per_sink == 0.0 {
            each
        } else {
            0.75 * self.per_sink + 0.25 * each
        };
    }
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
                pace: Pace::default(),
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
        let mut shard = self.shard(channel).lock();
        let Some(subs) = shard.get_mut(channel) else {
            return;
        };
        let policy = policy.unwrap_or(subs.policy);
        let start = Instant::now();
        let n = subs.sinks.len();
        if !subs.pace.through(start, n) {
            // Queueing is a few instructions per sink: done under the lock.
            for sink in &subs.sinks {
                sink.outbox.push_as(item.clone(), policy, false);
            }
            subs.pace.ended(start, Instant::now(), false, n);
            return;
        }
        // Writing through costs a system call per sink, so it runs outside the shard's lock,
        // which registering and unregistering on this shard need. A sink registered meanwhile
        // finds the message in history; one unregistered meanwhile gets a push nobody reads.
        let outboxes: Vec<Arc<Outbox>> = subs.sinks.iter().map(|s| s.outbox.clone()).collect();
        drop(shard);
        for outbox in &outboxes {
            outbox.push_as(item.clone(), policy, true);
        }
        let end = Instant::now();
        if let Some(subs) = self.shard(channel).lock().get_mut(channel) {
            subs.pace.ended(start, end, true, n);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_fixed_rate_channel_keeps_writing_through() {
        // 10 messages a second to 10,000 subscribers, a write-through fan-out taking 65 ms.
        let (mut p, t0) = (Pace::default(), Instant::now());
        for i in 0..50u32 {
            let start = t0 + 100 * MS * i;
            assert!(p.through(start, 10_000), "fan-out {i}");
            p.ended(start, start + 65 * MS, true, 10_000);
        }
    }

    #[test]
    fn publishes_that_back_up_switch_to_queueing_for_a_while() {
        let (mut p, t0) = (Pace::default(), Instant::now());
        assert!(p.through(t0, 10_000));
        p.ended(t0, t0 + 60 * MS, true, 10_000);
        // The next publish was waiting while the fan-out ran: once may be noise...
        let mut t = t0 + 60 * MS + Duration::from_micros(50);
        assert!(p.through(t, 10_000));
        p.ended(t, t + 60 * MS, true, 10_000);
        // ...twice in a row is a backlog: queue from now on.
        t += 60 * MS + Duration::from_micros(50);
        assert!(!p.through(t, 10_000));
        p.ended(t, t + MS, false, 10_000);
        // A pause after the burst does not end it before HOLD.
        t += 300 * MS;
        assert!(!p.through(t, 10_000));
        p.ended(t, t + MS, false, 10_000);
        // Later, at a calm rate, write-through comes back.
        t += HOLD;
        assert!(p.through(t, 10_000));
    }
}
