//! Fan-out: which channels this node listens to, and the one task that hands notices to the hub.
//!
//! **Listening.** The hub calls `subscribe` on a channel's 0→1 transition and `unsubscribe` on
//! 1→0, the latter from a spawned task, so the two may arrive out of order. A reference count
//! per channel absorbs that, and [`RedisBroker::sync`] compares what is wanted (count > 0) with
//! what Redis confirmed, under a per-shard async lock, before sending `(S)SUBSCRIBE` or
//! `(S)UNSUBSCRIBE`. A confirmation is remembered with the connection generation it happened
//! in; a disconnect bumps the generation, so the supervisor re-sends every subscription once
//! Redis answers again.
//!
//! **Delivering.** One task reads the push queue in arrival order, which per channel is offset
//! order (the Lua script publishes inside the same atomic step that assigns the offset). It
//! remembers the last position handed to the hub per channel and drops anything at or below
//! it, so the hub sees each message once even when recovery overlaps live delivery.
//!
//! **Recovering.** Pub/sub loses what is published while a connection is down. A disconnect
//! marks every channel stale; when Redis confirms a stale channel's subscription again, the
//! task reads history after the last delivered position (or after the position read at
//! subscribe time) and delivers what was missed before any later live message, so subscribers
//! recover even if nothing more is ever published. A changed epoch (the channel was deleted,
//! or Redis lost its data) becomes a reset notice. A push-queue overflow recovers every channel
//! the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::{PushInfo, PushKind, Value};
use tidings_core::broker::Range;
use tidings_core::{BrokerError, Published, Shared};
use tidings_protocol::{ChannelName, Message, Position, ResetReason};
use tokio::sync::{mpsc, watch};

use crate::broker::RedisBroker;
use crate::conn::Overflow;
use crate::notice::{self, Notice};
use crate::scripts::payload;

/// Shards of the subscription locks.
pub(crate) const SYNC_SHARDS: usize = 16;
/// The most messages one catch-up reads per channel; beyond that, the hub's gap filling and
/// resets take over.
const CATCH_UP_LIMIT: usize = 10_000;
/// Channels caught up concurrently.
const CATCH_UP_CONCURRENCY: usize = 16;
/// The kind of the synthetic push the supervisor uses to retry a failed catch-up.
pub(crate) const RETRY_KIND: &str = "tidings-catch-up";

/// One channel this node listens to.
pub(crate) struct ChanState {
    pub name: ChannelName,
    pub refs: usize,
    /// The last position handed to the handler.
    pub delivered: Option<Position>,
    /// The channel's position read right after subscribing.
    pub baseline: Option<Position>,
    /// Recover from history when Redis next confirms the subscription.
    pub stale: bool,
    /// Recovery failed; the supervisor asks again.
    pub retry: bool,
}

impl ChanState {
    pub fn new(name: ChannelName) -> Self {
        ChanState {
            name,
            refs: 0,
            delivered: None,
            baseline: None,
            stale: false,
            retry: false,
        }
    }

    fn since(&self) -> Option<Position> {
        self.delivered.or(self.baseline)
    }
}

/// The fan-out state of one node.
pub(crate) struct Fan {
    /// Channels with local subscribers, by name.
    pub chans: Mutex<HashMap<String, ChanState>>,
    /// What Redis confirmed, sharded by channel; each shard's lock serializes its commands.
    pub confirmed: Box<[tokio::sync::Mutex<Confirmed>]>,
    /// Bumped on every pub/sub disconnect.
    pub generation: AtomicU64,
    /// Raised by the push queue when it had to drop a push.
    pub overflow: Arc<Overflow>,
    /// Some subscription may not match what is wanted; the supervisor reconciles.
    pub dirty: AtomicBool,
    /// Some channel's recovery failed; the supervisor asks again.
    pub retry: AtomicBool,
}

impl Fan {
    pub fn new(overflow: Arc<Overflow>) -> Self {
        Fan {
            chans: Mutex::new(HashMap::new()),
            confirmed: (0..SYNC_SHARDS).map(|_| Default::default()).collect(),
            generation: AtomicU64::new(0),
            overflow,
            dirty: AtomicBool::new(false),
            retry: AtomicBool::new(false),
        }
    }
}

/// What Redis confirmed for a channel: `Some(generation)` when subscribed in that connection
/// generation, `None` when unknown (a command was sent but not confirmed).
pub(crate) type Confirmed = HashMap<String, Option<u64>>;

impl RedisBroker {
    /// Makes Redis' subscription to `channel` match the reference count.
    pub(crate) async fn sync(&self, channel: &str) -> Result<(), BrokerError> {
        let shard = &self.fan.confirmed[shard_of(channel)];
        let deadline = self.config.timeout;
        let work = async {
            let mut confirmed = shard.lock().await;
            let want = self
                .fan
                .chans
                .lock()
                .get(channel)
                .is_some_and(|s| s.refs > 0);
            let generation = self.fan.generation.load(Ordering::Acquire);
            let have = confirmed.get(channel).copied();
            let names = [self.keys.pubsub(channel)];
            let mut conn = self.pubsub.clone();
            if want && have != Some(Some(generation)) {
                confirmed.insert(channel.to_string(), None);
                conn.subscribe(&names).await?;
                confirmed.insert(channel.to_string(), Some(generation));
            } else if !want && have.is_some() {
                confirmed.insert(channel.to_string(), None);
                conn.unsubscribe(&names).await?;
                confirmed.remove(channel);
            }
            Ok::<_, redis::RedisError>(())
        };
        let result = tokio::time::timeout(deadline, work).await;
        if !matches!(result, Ok(Ok(()))) {
            self.fan.dirty.store(true, Ordering::Release);
        }
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failed(&self.pubsub_ok, "subscribe", &e)),
            Err(_) => {
                self.pubsub_ok.store(false, Ordering::Release);
                Err(BrokerError::Unavailable(format!(
                    "subscribe: no answer from Redis within {deadline:?}"
                )))
            }
        }
    }

    pub(crate) fn mark_all_stale(&self) {
        for s in self.fan.chans.lock().values_mut() {
            s.stale = true;
        }
    }

    /// The channel of a subscription confirmation, when it needs recovery.
    fn stale_channel(&self, data: &[Value]) -> Option<String> {
        let Some(Value::BulkString(name)) = data.first() else {
            return None;
        };
        let channel = self.keys.channel_of_pubsub(name)?;
        let mut chans = self.fan.chans.lock();
        let s = chans.get_mut(channel)?;
        if !std::mem::take(&mut s.stale) {
            return None;
        }
        s.since().map(|_| channel.to_string())
    }

    /// Hands one message to the handler unless it was delivered already; counts it as
    /// recovered (before the handler sees it) when it came from a recovery read.
    fn deliver(&self, channel: &str, msg: Shared, recovered: bool) {
        {
            let mut chans = self.fan.chans.lock();
            let Some(s) = chans.get_mut(channel) else {
                return;
            };
            let pos = msg.msg.position;
            if let Some(d) = s.delivered {
                if d.epoch == pos.epoch && pos.offset <= d.offset {
                    return;
                }
            }
            s.delivered = Some(pos);
        }
        if recovered {
            self.recovered.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(h) = self.handler() {
            h.on_message(&msg);
        }
    }

    fn reset(&self, channel: &str, top: Position, reason: ResetReason) {
        let name = {
            let mut chans = self.fan.chans.lock();
            let Some(s) = chans.get_mut(channel) else {
                return;
            };
            s.delivered = Some(top);
            s.name.clone()
        };
        if let Some(h) = self.handler() {
            h.on_reset(&name, top, reason);
        }
    }

    /// Decodes a pub/sub message and delivers it.
    fn on_push_message(&self, mut data: Vec<Value>) {
        if data.len() < 2 {
            return;
        }
        let (Value::BulkString(name), Value::BulkString(body)) = (
            std::mem::replace(&mut data[0], Value::Nil),
            data.swap_remove(1),
        ) else {
            return;
        };
        let Some(channel) = self.keys.channel_of_pubsub(&name) else {
            return;
        };
        let Some(chan) = self.fan.chans.lock().get(channel).map(|s| s.name.clone()) else {
            return;
        };
        match notice::decode(&Bytes::from(body)) {
            Ok(Notice::Message {
                position,
                time_ms,
                binary,
                event,
                data,
            }) => {
                let msg = Published::new(Message {
                    channel: chan,
                    position,
                    event,
                    data: payload(binary, data),
                    time_ms,
                });
                self.deliver(channel, msg, false);
            }
            Ok(Notice::Reset(top)) => self.reset(channel, top, ResetReason::Deleted),
            Err(e) => tracing::warn!(channel, error = %e, "skipping a pub/sub notice"),
        }
    }

    /// Reads what `channels` missed and delivers it, before any later push.
    async fn catch_up(&self, channels: Vec<String>) {
        let reads: Vec<_> = futures_util::stream::iter(channels)
            .map(|c| async move {
                let r = self.read_missed(&c).await;
                (c, r)
            })
            .buffered(CATCH_UP_CONCURRENCY)
            .collect()
            .await;
        for (channel, read) in reads {
            match read {
                Ok(Some((since, top, first, messages))) => {
                    if top.epoch != since.epoch {
                        let start = Position {
                            epoch: top.epoch,
                            offset: first.saturating_sub(1),
                        };
                        self.reset(&channel, start, ResetReason::Epoch);
                    }
                    for m in messages {
                        self.deliver(&channel, m, true);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(channel, error = %e, "catch-up failed; retrying");
                    if let Some(s) = self.fan.chans.lock().get_mut(&channel) {
                        s.retry = true;
                    }
                    self.fan.retry.store(true, Ordering::Release);
                }
            }
        }
    }

    /// History after the channel's last known position: `(since, top, first, messages)`.
    #[allow(clippy::type_complexity)]
    async fn read_missed(
        &self,
        channel: &str,
    ) -> Result<Option<(Position, Position, u64, Vec<Shared>)>, BrokerError> {
        let Some((name, since)) = self
            .fan
            .chans
            .lock()
            .get(channel)
            .and_then(|s| Some((s.name.clone(), s.since()?)))
        else {
            return Ok(None);
        };
        let range = |after| Range::After {
            after,
            limit: CATCH_UP_LIMIT,
        };
        let mut r = self.read(&name, range(since.offset), None).await?;
        if r.top.epoch != since.epoch {
            r = self.read(&name, range(0), None).await?;
        }
        Ok(Some((since, r.top, r.first, r.messages)))
    }
}

/// The shard of the subscription locks that `channel` uses.
pub(crate) fn shard_of(channel: &str) -> usize {
    channel
        .bytes()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
        % SYNC_SHARDS
}

/// The fan-out task: runs until the broker is dropped.
pub(crate) async fn dispatch(
    weak: Weak<RedisBroker>,
    mut rx: mpsc::Receiver<PushInfo>,
    mut stop: watch::Receiver<()>,
) {
    let mut carry: Option<PushInfo> = None;
    let Some(overflow) = weak.upgrade().map(|b| b.fan.overflow.clone()) else {
        return;
    };
    loop {
        let push = match carry.take() {
            Some(p) => Some(p),
            None => tokio::select! {
                p = rx.recv() => match p { Some(p) => Some(p), None => return },
                _ = overflow.notify.notified() => None,
                _ = stop.changed() => return,
            },
        };
        let Some(b) = weak.upgrade() else { return };
        if overflow.raised.swap(false, Ordering::AcqRel) {
            // History holds what the queue dropped; the queued rest is then deduplicated.
            tracing::warn!("pub/sub push queue overflowed; recovering every channel from history");
            let all: Vec<String> = b.fan.chans.lock().keys().cloned().collect();
            b.catch_up(all).await;
        }
        let Some(push) = push else { continue };
        match push.kind {
            PushKind::Message | PushKind::SMessage => b.on_push_message(push.data),
            PushKind::Subscribe | PushKind::SSubscribe => {
                let mut batch: Vec<String> = b.stale_channel(&push.data).into_iter().collect();
                // Confirmations come in runs after a reconnect; recover them together.
                while let Ok(next) = rx.try_recv() {
                    if matches!(next.kind, PushKind::Subscribe | PushKind::SSubscribe) {
                        batch.extend(b.stale_channel(&next.data));
                    } else {
                        carry = Some(next);
                        break;
                    }
                }
                if !batch.is_empty() {
                    b.catch_up(batch).await;
                }
            }
            PushKind::Disconnection => {
                b.pubsub_ok.store(false, Ordering::Release);
                b.fan.generation.fetch_add(1, Ordering::AcqRel);
                b.fan.dirty.store(true, Ordering::Release);
                b.mark_all_stale();
                b.wake.notify_one();
            }
            PushKind::Other(kind) if kind == RETRY_KIND => {
                let mut batch = Vec::new();
                for v in &push.data {
                    if let Value::BulkString(c) = v {
                        batch.extend(std::str::from_utf8(c).ok().map(str::to_string));
                    }
                }
                b.catch_up(batch).await;
            }
            _ => {}
        }
    }
}
