//! Per-namespace channel options, resolved from a channel name.

use std::collections::HashMap;
use std::time::Duration;

use tidings_protocol::channel::namespace_of;

/// What happens when a connection's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumer {
    /// Close the connection; the client reconnects and resumes from history. Loses nothing.
    #[default]
    Disconnect,
    /// Drop the oldest queued messages of the channel to make room.
    DropOldest,
    /// Keep only the newest message of the channel (coalesce state such as a clock).
    LatestOnly,
}

impl SlowConsumer {
    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "disconnect" => Some(Self::Disconnect),
            "drop_oldest" => Some(Self::DropOldest),
            "latest_only" => Some(Self::LatestOnly),
            _ => None,
        }
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnect => "disconnect",
            Self::DropOldest => "drop_oldest",
            Self::LatestOnly => "latest_only",
        }
    }
}

/// Options of the channels of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelOptions {
    /// Messages kept per channel. Defaults to 100.
    pub history_size: usize,
    /// Bytes kept per channel. Defaults to 1 MiB.
    pub history_bytes: usize,
    /// Age after which a message leaves history. Defaults to 5 minutes.
    pub history_ttl: Duration,
    /// Whether WebSocket clients may publish. Defaults to false.
    pub client_publish: bool,
    /// Slow-consumer policy. Defaults to `disconnect`.
    pub slow_consumer: SlowConsumer,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            history_size: 100,
            history_bytes: 1 << 20,
            history_ttl: Duration::from_secs(300),
            client_publish: false,
            slow_consumer: SlowConsumer::Disconnect,
        }
    }
}

/// Options by namespace, with a default for namespaces not named.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    pub default: ChannelOptions,
    pub by_name: HashMap<String, ChannelOptions>,
}

impl Namespaces {
    /// The options that apply to `channel`.
    pub fn for_channel(&self, channel: &str) -> &ChannelOptions {
        self.by_name
            .get(namespace_of(channel))
            .unwrap_or(&self.default)
    }
}
