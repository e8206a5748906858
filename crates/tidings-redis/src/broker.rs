//! [`RedisBroker`]: the [`Broker`] whose positions and history live in Redis.
//!
//! Every node of a deployment connects to the same Redis (or Redis Cluster). A publish on any
//! node runs one Lua script that assigns the channel's next offset, appends to its stream and
//! publishes a notice, atomically; the nodes that have local subscribers on the channel
//! receive the notice over pub/sub (see [`crate::fanout`]). So positions are global per
//! channel and a cursor from one node resumes on any other.
//!
//! Failure is loud and bounded: every Redis call has a deadline (`RedisConfig::timeout`) and
//! fails with [`BrokerError::Unavailable`], which the server maps to 503. A supervisor task
//! pings both connections every `ping_interval`, which keeps [`Broker::healthy`] current and
//! re-sends subscriptions after a reconnect; recovery needs no operator.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use redis::{PushInfo, RedisError, RedisResult, Value};
use tidings_core::broker::{ChannelStats, Range};
use tidings_core::memory::new_epoch;
use tidings_core::{
    Broker, BrokerError, BrokerHandler, ChannelOptions, History, Published, Shared,
};
use tidings_protocol::{ChannelName, Message, Payload, Position};
use tokio::sync::{mpsc, watch, Notify};

use crate::config::{ConnectError, RedisConfig};
use crate::conn::{Conn, Overflow, PushQueue};
use crate::fanout::{self, ChanState, Fan};
use crate::keys::Keys;
use crate::scripts::{
    parse_delete, parse_publish, parse_read, shape, Read, DELETE_SCRIPT, PUBLISH_SCRIPT,
    READ_SCRIPT,
};

/// The Redis broker. Build it with [`RedisBroker::connect`].
pub struct RedisBroker {
    pub(crate) config: RedisConfig,
    pub(crate) keys: Keys,
    pub(crate) cmd: Conn,
    pub(crate) pubsub: Conn,
    handler: OnceLock<Weak<dyn BrokerHandler>>,
    pub(crate) fan: Fan,
    pub(crate) cmd_ok: AtomicBool,
    pub(crate) pubsub_ok: AtomicBool,
    pub(crate) recovered: AtomicU64,
    pub(crate) wake: Arc<Notify>,
    pub(crate) retry_tx: mpsc::Sender<PushInfo>,
    _stop: watch::Sender<()>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

impl RedisBroker {
    /// Validates `config`, connects (one command and one pub/sub connection), and starts the
    /// fan-out and supervisor tasks. Fails when Redis does not answer within a few timeouts.
    /// Must be called inside a Tokio runtime.
    pub async fn connect(config: RedisConfig) -> Result<Arc<RedisBroker>, ConnectError> {
        config.validate()?;
        let (tx, rx) = mpsc::channel(config.push_queue);
        let overflow = Arc::new(Overflow::default());
        let cmd = Conn::open(&config, None).await?;
        let queue = PushQueue {
            tx: tx.clone(),
            overflow: overflow.clone(),
        };
        let pubsub = Conn::open(&config, Some(queue)).await?;
        let (stop, stopped) = watch::channel(());
        let broker = Arc::new(RedisBroker {
            keys: Keys::new(&config.prefix),
            config,
            cmd,
            pubsub,
            handler: OnceLock::new(),
            fan: Fan::new(overflow),
            cmd_ok: AtomicBool::new(true),
            pubsub_ok: AtomicBool::new(true),
            recovered: AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
            retry_tx: tx,
            _stop: stop,
        });
        tokio::spawn(fanout::dispatch(
            Arc::downgrade(&broker),
            rx,
            stopped.clone(),
        ));
        tokio::spawn(crate::supervisor::supervise(
            Arc::downgrade(&broker),
            stopped,
        ));
        Ok(broker)
    }

    /// Messages this node recovered from history after pub/sub lost them (a reconnect or a
    /// push-queue overflow). For metrics and tests.
    pub fn recovered_messages(&self) -> u64 {
        self.recovered.load(Ordering::Relaxed)
    }

    /// The configuration in use.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    pub(crate) fn handler(&self) -> Option<Arc<dyn BrokerHandler>> {
        self.handler.get().and_then(Weak::upgrade)
    }

    /// Records a failed call in `flag` and turns it into `Unavailable`.
    pub(crate) fn failed(&self, flag: &AtomicBool, what: &str, e: &RedisError) -> BrokerError {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            flag.store(false, Ordering::Release);
        }
        BrokerError::Unavailable(format!("{what}: {e}"))
    }

    /// Runs one Redis call under the deadline, recording the outcome in `flag`.
    pub(crate) async fn timed<T>(
        &self,
        flag: &AtomicBool,
        what: &str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, BrokerError> {
        match tokio::time::timeout(self.config.timeout, call).await {
            Ok(Ok(v)) => {
                flag.store(true, Ordering::Release);
                Ok(v)
            }
            Ok(Err(e)) => Err(self.failed(flag, what, &e)),
            Err(_) => {
                flag.store(false, Ordering::Release);
                Err(BrokerError::Unavailable(format!(
                    "{what}: no answer from Redis within {:?}",
                    self.config.timeout
                )))
            }
        }
    }

    async fn invoke(
        &self,
        what: &str,
        inv: redis::ScriptInvocation<'static>,
    ) -> Result<Value, BrokerError> {
        let mut conn = self.cmd.clone();
        self.timed(&self.cmd_ok, what, async move {
            inv.invoke_async(&mut conn).await
        })
        .await
    }

    async fn read_inner(
        &self,
        channel: &ChannelName,
        range: Range,
        ttl: Option<Duration>,
        create: bool,
    ) -> Result<Option<Read>, BrokerError> {
        let (mode, after, limit) = match range {
            Range::After { after, limit } => ("after", after, limit),
            Range::Latest { limit } => ("latest", 0, limit),
        };
        let mut inv = READ_SCRIPT.prepare_invoke();
        inv.key(self.keys.meta(channel))
            .key(self.keys.stream(channel))
            .arg(if create {
                new_epoch().to_string()
            } else {
                String::new()
            })
            .arg(mode)
            .arg(after)
            .arg(limit.min(i64::MAX as usize) as u64)
            .arg(ttl.map(|t| ms(t).to_string()).unwrap_or_default())
            .arg(ms(self.config.position_ttl));
        let v = self.invoke("history", inv).await?;
        parse_read(channel, &v).map_err(BrokerError::Unavailable)
    }

    /// Reads the channel's log, creating its epoch when it has none. `ttl: None` uses the
    /// history TTL stored by the last publish.
    pub(crate) async fn read(
        &self,
        channel: &ChannelName,
        range: Range,
        ttl: Option<Duration>,
    ) -> Result<Read, BrokerError> {
        self.read_inner(channel, range, ttl, true)
            .await?
            .ok_or_else(|| BrokerError::Unavailable(shape("read of a created channel")))
    }
}

#[async_trait]
impl Broker for RedisBroker {
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
        // The same cost as `Message::cost`, which the memory broker charges.
        let cost = data.len() + channel.len() + 96;
        let mut inv = PUBLISH_SCRIPT.prepare_invoke();
        inv.key(self.keys.meta(channel))
            .key(self.keys.stream(channel))
            .arg(new_epoch().to_string())
            .arg(data.bytes().as_ref())
            .arg(flag(event.is_some()))
            .arg(event.as_deref().unwrap_or(""))
            .arg(flag(data.is_binary()))
            .arg(opts.history_size as u64)
            .arg(opts.history_bytes as u64)
            .arg(ms(opts.history_ttl))
            .arg(ms(self.config.position_ttl))
            .arg(cost as u64)
            .arg(self.keys.pubsub(channel))
            .arg(flag(self.pubsub.sharded()));
        let v = self.invoke("publish", inv).await?;
        let (position, time_ms) = parse_publish(&v).map_err(BrokerError::Unavailable)?;
        Ok(Published::new(Message {
            channel: channel.clone(),
            position,
            event,
            data,
            time_ms,
        }))
    }

    async fn history(
        &self,
        channel: &ChannelName,
        range: Range,
        opts: &ChannelOptions,
    ) -> Result<History, BrokerError> {
        let r = self.read(channel, range, Some(opts.history_ttl)).await?;
        let mut messages = r.messages;
        if let Range::Latest { .. } = range {
            messages.reverse();
        }
        Ok(History {
            top: r.top,
            first: r.first,
            messages,
        })
    }

    async fn subscribe(&self, channel: &ChannelName) -> Result<(), BrokerError> {
        let first = {
            let mut chans = self.fan.chans.lock();
            let s = chans
                .entry(channel.to_string())
                .or_insert_with(|| ChanState::new(channel.clone()));
            s.refs += 1;
            s.refs == 1
        };
        self.sync(channel).await?;
        if first {
            // The position to recover from if pub/sub drops before the first message.
            let top = self
                .read(channel, Range::Latest { limit: 0 }, None)
                .await?
                .top;
            if let Some(s) = self.fan.chans.lock().get_mut(channel.as_str()) {
                s.baseline.get_or_insert(top);
            }
        }
        Ok(())
    }

    async fn unsubscribe(&self, channel: &ChannelName) -> Result<(), BrokerError> {
        {
            let mut chans = self.fan.chans.lock();
            if let Some(s) = chans.get_mut(channel.as_str()) {
                s.refs = s.refs.saturating_sub(1);
                if s.refs == 0 {
                    chans.remove(channel.as_str());
                }
            }
        }
        self.sync(channel).await
    }

    async fn delete(&self, channel: &ChannelName) -> Result<Position, BrokerError> {
        for _ in 0..4 {
            let epoch = new_epoch();
            let mut inv = DELETE_SCRIPT.prepare_invoke();
            inv.key(self.keys.meta(channel))
                .key(self.keys.stream(channel))
                .arg(epoch.to_string())
                .arg(ms(self.config.position_ttl))
                .arg(self.keys.pubsub(channel))
                .arg(flag(self.pubsub.sharded()));
            let v = self.invoke("delete", inv).await?;
            if let Some(epoch) = parse_delete(&v).map_err(BrokerError::Unavailable)? {
                return Ok(Position { epoch, offset: 0 });
            }
        }
        Err(BrokerError::Unavailable(shape("delete kept colliding")))
    }

    async fn channels(&self) -> Result<Vec<ChannelName>, BrokerError> {
        crate::scan::channels(self).await
    }

    async fn stats(&self, channel: &ChannelName) -> Result<Option<ChannelStats>, BrokerError> {
        let r = self
            .read_inner(channel, Range::Latest { limit: 0 }, None, false)
            .await?;
        Ok(r.map(|r| ChannelStats {
            top: r.top,
            history_len: r.len,
            history_bytes: r.bytes,
        }))
    }

    /// Always 0: history lives in Redis, not in this process. Watch Redis' own memory metrics
    /// (`INFO memory`) instead.
    fn history_bytes(&self) -> usize {
        0
    }

    fn healthy(&self) -> bool {
        self.cmd_ok.load(Ordering::Acquire) && self.pubsub_ok.load(Ordering::Acquire)
    }
}
