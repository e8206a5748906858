//! The message and the reset notice, as every encoder sees them.

use bytes::Bytes;

use crate::channel::ChannelName;
use crate::cursor::Position;

/// A message's data: UTF-8 text or raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// UTF-8 text (the bytes are valid UTF-8).
    Text(Bytes),
    /// Raw bytes; text transports carry them as base64 and say so.
    Binary(Bytes),
}

impl Payload {
    /// Text payload from a string.
    pub fn text(s: impl Into<String>) -> Payload {
        Payload::Text(Bytes::from(s.into()))
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &Bytes {
        match self {
            Payload::Text(b) | Payload::Binary(b) => b,
        }
    }

    /// The text, when the payload is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            // Text payloads are built from `str` only, so this never fails in practice.
            Payload::Text(b) => std::str::from_utf8(b).ok(),
            Payload::Binary(_) => None,
        }
    }

    /// True for binary payloads.
    pub fn is_binary(&self) -> bool {
        matches!(self, Payload::Binary(_))
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// True when there is no data.
    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }
}

/// The default event name; encoders omit it.
pub const DEFAULT_EVENT: &str = "message";

/// One published message at its place in the channel's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: ChannelName,
    pub position: Position,
    /// `None` means the default event, `message`.
    pub event: Option<Box<str>>,
    pub data: Payload,
    /// Publish time, milliseconds since the Unix epoch.
    pub time_ms: u64,
}

impl Message {
    /// The event name, `message` when none was given.
    pub fn event_name(&self) -> &str {
        self.event.as_deref().unwrap_or(DEFAULT_EVENT)
    }

    /// The bytes this message holds in history and queues (data plus a fixed overhead).
    pub fn cost(&self) -> usize {
        self.data.len() + self.channel.len() + 96
    }
}

/// Why a resume was impossible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The cursor is older than the history still kept.
    Expired,
    /// The cursor is from another epoch: the log's past was lost.
    Epoch,
    /// The channel was deleted; a new epoch began.
    Deleted,
    /// The subscriber fell behind and messages were dropped by its slow-consumer policy.
    Dropped,
}

impl ResetReason {
    /// The reason as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::Expired => "expired",
            ResetReason::Epoch => "epoch",
            ResetReason::Deleted => "deleted",
            ResetReason::Dropped => "dropped",
        }
    }
}

/// An in-band notice that the subscription could not resume where it asked to: it now
/// continues from `position`, and whatever lay between is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    pub channel: ChannelName,
    pub position: Position,
    pub reason: ResetReason,
}
