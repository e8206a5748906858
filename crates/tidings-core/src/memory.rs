//! The in-memory broker: one process, history in RAM.
//!
//! Channels live in a sharded map of `Arc<Mutex<Log>>`. A publish takes its shard lock only to
//! find the log, then holds the log's own lock while it assigns the offset and appends to
//! history, and hands the message to the hub after releasing it, so history reads and
//! subscribers registering never wait behind a fan-out. Publishes that follow one another reach
//! the hub in offset order; two publishes racing on one channel may reach it in either order,
//! which subscriptions put right (see [`crate::broker::BrokerHandler::on_message`]). Mutexes
//! are `parking_lot` ones and are never held across an `.await`.
//!
//! History is bounded per channel by count, bytes and age, and globally by a byte budget: a
//! publish that takes the total over budget first gives up its own channel's oldest messages
//! (O(1), no second lock), and the sweeper evicts the globally oldest across channels. A log with no subscribers and no history is freed once it
//! has been idle for the namespace's history TTL, so an idle channel costs nothing; its next
//! use starts a new epoch, which a stale cursor sees as a reset.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::time::Instant;

use tidings_protocol::{ChannelName, Epoch, Message, Payload, Position, ResetReason};

use crate::broker::{Broker, BrokerError, BrokerHandler, ChannelStats, History, Range};
use crate::options::ChannelOptions;
use crate::published::{Published, Shared};

const SHARDS: usize = 64;

type Shard = Mutex<HashMap<ChannelName, Arc<Mutex<Log>>>>;

/// Milliseconds since the Unix epoch, for the `time` field of messages.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh random epoch.
pub fn new_epoch() -> Epoch {
    Epoch::from_random(rand::random::<u64>())
}

struct Log {
    epoch: Epoch,
    top: u64,
    items: VecDeque<(Instant, Shared)>,
    bytes: usize,
    subscribed: bool,
    ttl: Duration,
    touched: Instant,
}

impl Log {
    fn new(now: Instant) -> Self {
        Log {
            epoch: new_epoch(),
            top: 0,
            items: VecDeque::new(),
            bytes: 0,
            subscribed: false,
            ttl: ChannelOptions::default().history_ttl,
            touched: now,
        }
    }

    fn pop_front(&mut self, global: &AtomicUsize) -> bool {
        match self.items.pop_front() {
            Some((_, m)) => {
                self.bytes -= m.cost();
                global.fetch_sub(m.cost(), Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn trim_expired(&mut self, now: Instant, global: &AtomicUsize) {
        while let Some((at, _)) = self.items.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            self.pop_front(global);
        }
    }

    fn first(&self) -> u64 {
        self.items
            .front()
            .map(|(_, m)| m.msg.position.offset)
            .unwrap_or(self.top + 1)
    }

    fn top(&self) -> Position {
        Position {
            epoch: self.epoch,
            offset: self.top,
        }
    }
}

/// The in-memory broker.
pub struct MemoryBroker {
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
    handler: OnceLock<Weak<dyn BrokerHandler>>,
    bytes: AtomicUsize,
    budget: usize,
}

impl MemoryBroker {
    /// A broker whose history may hold at most `budget` bytes in all.
    pub fn new(budget: usize) -> Arc<Self> {
        Arc::new(MemoryBroker {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            handler: OnceLock::new(),
            bytes: AtomicUsize::new(0),
            budget,
        })
    }

    /// Runs [`MemoryBroker::sweep`] every `every` until the broker is dropped.
    pub fn start_sweeper(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(b) => b.sweep(Instant::now()),
                    None => return,
                }
            }
        });
    }

    /// Expires old history, frees idle empty channels, and enforces the global byte budget.
    pub fn sweep(&self, now: Instant) {
        let mut with_items = Vec::new();
        for shard in self.shards.iter() {
            let mut map = shard.lock();
            map.retain(|_, log| {
                let mut l = log.lock();
                l.trim_expired(now, &self.bytes);
                let idle = now.saturating_duration_since(l.touched) >= l.ttl;
                if l.items.is_empty() && !l.subscribed && idle {
                    return false;
                }
                if let Some((at, _)) = l.items.front() {
                    with_items.push((*at, log.clone()));
                }
                true
            });
        }
        if self.bytes.load(Ordering::Relaxed) <= self.budget {
            return;
        }
        with_items.sort_by_key(|(at, _)| *at);
        for (_, log) in with_items {
            let mut l = log.lock();
            while self.bytes.load(Ordering::Relaxed) > self.budget && l.pop_front(&self.bytes) {}
            if self.bytes.load(Ordering::Relaxed) <= self.budget {
                return;
            }
        }
    }

    fn shard(&self, channel: &ChannelName) -> &Shard {
        &self.shards[(self.hasher.hash_one(channel) as usize) % SHARDS]
    }

    fn log(&self, channel: &ChannelName) -> Arc<Mutex<Log>> {
        let mut map = self.shard(channel).lock();
        map.entry(channel.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Log::new(Instant::now()))))
            .clone()
    }

    fn existing(&self, channel: &ChannelName) -> Option<Arc<Mutex<Log>>> {
        self.shard(channel).lock().get(channel).cloned()
    }

    fn handler(&self) -> Option<Arc<dyn BrokerHandler>> {
        self.handler.get().and_then(Weak::upgrade)
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn set_handler(&self, handler: Weak<dyn BrokerHandler>) {
        let _ = self.handler.set(handler);
    }

    async fn publish(
        &self,
        channel: &ChannelName,
        event: Option<Box<str>>,
        data: Payload,
        opts: &ChannelOptions,
    ) -> Result<Shared, BrokerError> {
        let size = data.len();
        if size + 96 > self.budget {
            return Err(BrokerError::TooLarge(size));
        }
        let log = self.log(channel);
        let handler = self.handler();
        let now = Instant::now();
        let mut l = log.lock();
        l.ttl = opts.history_ttl;
        l.touched = now;
        l.trim_expired(now, &self.bytes);
        l.top += 1;
        let msg = Published::new(Message {
            channel: channel.clone(),
            position: Position {
                epoch: l.epoch,
                offset: l.top,
            },
            event,
            data,
            time_ms: now_ms(),
        });
        if opts.history_size > 0 && msg.cost() <= opts.history_bytes {
            l.bytes += msg.cost();
            self.bytes.fetch_add(msg.cost(), Ordering::Relaxed);
            l.items.push_back((now, msg.clone()));
            while l.items.len() > opts.history_size || l.bytes > opts.history_bytes {
                l.pop_front(&self.bytes);
            }
            // The global budget: this channel gives up its oldest first; the sweeper evicts
            // across channels when that is not enough.
            while self.bytes.load(Ordering::Relaxed) > self.budget && l.items.len() > 1 {
                l.pop_front(&self.bytes);
            }
        }
        // Fan out after the channel's lock is released: a fan-out that writes through to many
        // sockets takes a while, and history reads of the channel must not wait for it. The
        // message is in history already, so a subscriber registering meanwhile still gets it;
        // concurrent publishes may reach a connection out of order, which its subscription
        // sorts out (gaps filled from history, duplicates dropped), as with a Redis broker.
        drop(l);
        if let Some(h) = handler {
            h.on_message(&msg);
        }
        Ok(msg)
    }

    async fn history(
        &self,
        channel: &ChannelName,
        range: Range,
        opts: &ChannelOptions,
    ) -> Result<History, BrokerError> {
        let log = self.log(channel);
        let now = Instant::now();
        let mut l = log.lock();
        l.ttl = opts.history_ttl;
        l.touched = now;
        l.trim_expired(now, &self.bytes);
        let messages: Vec<Shared> = match range {
            Range::After { after, limit } => {
                let first = l.first();
                let skip = after.saturating_add(1).saturating_sub(first) as usize;
                l.items
                    .iter()
                    .skip(skip)
                    .take(limit)
                    .map(|(_, m)| m.clone())
                    .collect()
            }
            Range::Latest { limit } => {
                let skip = l.items.len().saturating_sub(limit);
                l.items.iter().skip(skip).map(|(_, m)| m.clone()).collect()
            }
        };
        Ok(History {
            top: l.top(),
            first: l.first(),
            messages,
        })
    }

    async fn subscribe(&self, channel: &ChannelName) -> Result<(), BrokerError> {
        let log = self.log(channel);
        log.lock().subscribed = true;
        Ok(())
    }

    async fn unsubscribe(&self, channel: &ChannelName) -> Result<(), BrokerError> {
        if let Some(log) = self.existing(channel) {
            let mut l = log.lock();
            l.subscribed = false;
            l.touched = Instant::now();
        }
        Ok(())
    }

    async fn delete(&self, channel: &ChannelName) -> Result<Position, BrokerError> {
        let log = self.log(channel);
        let handler = self.handler();
        let mut l = log.lock();
        while l.pop_front(&self.bytes) {}
        let mut epoch = new_epoch();
        while epoch == l.epoch {
            epoch = new_epoch();
        }
        l.epoch = epoch;
        l.top = 0;
        let top = l.top();
        if let Some(h) = handler {
            h.on_reset(channel, top, ResetReason::Deleted);
        }
        Ok(top)
    }

    async fn channels(&self) -> Result<Vec<ChannelName>, BrokerError> {
        let mut names = Vec::new();
        for shard in self.shards.iter() {
            for (name, log) in shard.lock().iter() {
                let l = log.lock();
                if !l.items.is_empty() || l.top > 0 {
                    names.push(name.clone());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    async fn stats(&self, channel: &ChannelName) -> Result<Option<ChannelStats>, BrokerError> {
        Ok(self.existing(channel).map(|log| {
            let l = log.lock();
            ChannelStats {
                top: l.top(),
                history_len: l.items.len(),
                history_bytes: l.bytes,
            }
        }))
    }

    fn history_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn healthy(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod conformance {
    crate::broker_conformance!(async { super::MemoryBroker::new(64 << 20) });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn global_budget_keeps_the_total_bounded_and_evicts_oldest_first() {
        let b = MemoryBroker::new(4 * 1200);
        let o = ChannelOptions::default();
        // One channel over budget gives up its own oldest messages at publish time.
        let a = ChannelName::new("a").unwrap();
        for _ in 0..6 {
            b.publish(&a, None, Payload::text("x".repeat(1000)), &o)
                .await
                .unwrap();
        }
        assert!(b.history_bytes() <= 4 * 1200);
        let ha = b
            .history(
                &a,
                Range::After {
                    after: 0,
                    limit: 10,
                },
                &o,
            )
            .await
            .unwrap();
        assert_eq!(ha.messages.last().unwrap().msg.position.offset, 6);
        b.delete(&a).await.unwrap();
        // Many channels with one message each: the sweeper evicts the globally oldest.
        let names: Vec<ChannelName> = (0..6)
            .map(|i| ChannelName::new(&format!("c{i}")).unwrap())
            .collect();
        for n in &names {
            b.publish(n, None, Payload::text("x".repeat(1000)), &o)
                .await
                .unwrap();
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert!(b.history_bytes() > 4 * 1200);
        b.sweep(Instant::now());
        assert!(b.history_bytes() <= 4 * 1200);
        let mut kept = Vec::new();
        for n in &names {
            kept.push(
                b.history(
                    n,
                    Range::After {
                        after: 0,
                        limit: 10,
                    },
                    &o,
                )
                .await
                .unwrap()
                .messages
                .len(),
            );
        }
        assert_eq!(kept, vec![0, 0, 1, 1, 1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_empty_channels_are_freed() {
        let b = MemoryBroker::new(1 << 20);
        let o = ChannelOptions {
            history_ttl: Duration::from_secs(5),
            ..Default::default()
        };
        let a = ChannelName::new("a").unwrap();
        let m = b.publish(&a, None, Payload::text("x"), &o).await.unwrap();
        b.subscribe(&a).await.unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        b.sweep(Instant::now());
        assert!(
            b.stats(&a).await.unwrap().is_some(),
            "a subscribed channel is kept"
        );
        b.unsubscribe(&a).await.unwrap();
        b.sweep(Instant::now());
        assert!(
            b.stats(&a).await.unwrap().is_some(),
            "just unsubscribed: not idle yet"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        b.sweep(Instant::now());
        assert!(
            b.stats(&a).await.unwrap().is_none(),
            "idle empty channel freed"
        );
        let h = b.history(&a, Range::Latest { limit: 1 }, &o).await.unwrap();
        assert_ne!(
            h.top.epoch, m.msg.position.epoch,
            "a freed channel comes back in a new epoch"
        );
    }
}
