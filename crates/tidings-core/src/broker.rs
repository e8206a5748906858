//! The broker seam: where positions are assigned and history is kept.
//!
//! A broker is one narrow trait. The hub calls it to publish, read history, and tell it which
//! channels have local subscribers; the broker calls the hub back through [`BrokerHandler`] for
//! every message that must reach local subscribers, once each and in position order per channel
//! except between racing publishes. The memory broker and the Redis broker implement it, and
//! both pass [`crate::conformance`].

use std::sync::Weak;

use async_trait::async_trait;
use tidings_protocol::{ChannelName, Payload, Position, ResetReason};

use crate::options::ChannelOptions;
use crate::published::Shared;

/// Why a broker call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The backing store is unreachable; the call had no effect and may be retried.
    #[error("broker unavailable: {0}; check that Redis is reachable, then retry")]
    Unavailable(String),
    /// The global history budget cannot hold even this message.
    #[error("message of {0} bytes does not fit the history budget")]
    TooLarge(usize),
}

/// A slice of a channel's log.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The channel's current epoch and last assigned offset (0 when none yet).
    pub top: Position,
    /// The oldest offset still retained; `top.offset + 1` when history is empty.
    pub first: u64,
    /// Messages in ascending offset order.
    pub messages: Vec<Shared>,
}

/// Which part of the log a history call returns.
#[derive(Debug, Clone, Copy)]
pub enum Range {
    /// The oldest `limit` retained messages with an offset above `after`.
    After { after: u64, limit: usize },
    /// The newest `limit` retained messages.
    Latest { limit: usize },
}

/// Per-channel statistics for the channel API.
#[derive(Debug, Clone, Default)]
pub struct ChannelStats {
    pub top: Position,
    pub history_len: usize,
    pub history_bytes: usize,
}

/// Receives what the broker fans out to this node.
pub trait BrokerHandler: Send + Sync {
    /// A message for local subscribers, once per message. Publishes that complete one after
    /// another arrive in position order per channel; two publishes racing on one channel may
    /// arrive in either order. Subscriptions deliver in order regardless: a message after a
    /// gap waits while the gap is read from history, and the late one is then a duplicate.
    fn on_message(&self, msg: &Shared);
    /// The channel's log was lost or restarted; local subscribers must reset to `top`.
    fn on_reset(&self, channel: &ChannelName, top: Position, reason: ResetReason);
}

/// Where positions are assigned and history is kept.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Installs the handler that receives fan-out. Called once, before any other call.
    fn set_handler(&self, handler: Weak<dyn BrokerHandler>);

    /// Appends a message, assigning the channel's next offset, and fans it out.
    async fn publish(
        &self,
        channel: &ChannelName,
        event: Option<Box<str>>,
        data: Payload,
        opts: &ChannelOptions,
    ) -> Result<Shared, BrokerError>;

    /// Reads retained history and the channel's current position, atomically.
    async fn history(
        &self,
        channel: &ChannelName,
        range: Range,
        opts: &ChannelOptions,
    ) -> Result<History, BrokerError>;

    /// This node now has local subscribers on `channel`.
    async fn subscribe(&self, channel: &ChannelName) -> Result<(), BrokerError>;

    /// This node has no more local subscribers on `channel`.
    async fn unsubscribe(&self, channel: &ChannelName) -> Result<(), BrokerError>;

    /// Drops the channel's history and starts a new epoch; returns the new position.
    async fn delete(&self, channel: &ChannelName) -> Result<Position, BrokerError>;

    /// Names of channels with retained history.
    async fn channels(&self) -> Result<Vec<ChannelName>, BrokerError>;

    /// Statistics of one channel, `None` when it holds nothing.
    async fn stats(&self, channel: &ChannelName) -> Result<Option<ChannelStats>, BrokerError>;

    /// Bytes of history held by this process (for `/metrics`).
    fn history_bytes(&self) -> usize;

    /// False while the backing store is unreachable.
    fn healthy(&self) -> bool;
}
