//! The Redis broker's configuration and its one `validate()`.
//!
//! A plain struct with a `Default`, so the server can fill it from TOML, environment and flags
//! and call [`RedisConfig::validate`] once; every error names the bad key and how to fix it.

use std::time::Duration;

/// How to reach Redis and how to lay out keys there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// The URL of a single Redis server, such as `redis://127.0.0.1:6379` or
    /// `redis://:password@host:6379/2`. Ignored when `cluster_nodes` is not empty. The broker
    /// always speaks RESP3 (needed for pub/sub push messages), whatever the URL says.
    /// Defaults to `None`, which means `redis://127.0.0.1:6379`.
    pub url: Option<String>,
    /// Seed nodes of a Redis Cluster (`redis://host:port` each). When not empty, the broker
    /// uses cluster mode: every channel's keys share one slot through a hash tag, and fan-out
    /// uses sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7 or later).
    /// Defaults to empty (single-server mode).
    pub cluster_nodes: Vec<String>,
    /// The first part of every key and pub/sub channel name, so several deployments can share
    /// one Redis. It must not contain `{`, `}` or whitespace. Defaults to `tidings`.
    pub prefix: String,
    /// How long one Redis call may take before it fails with `Unavailable`. Keep it short: a
    /// publish during an outage must fail quickly, never hang. Defaults to 1.5 s.
    pub timeout: Duration,
    /// How often the broker pings Redis to update `healthy()` and to drive reconnection.
    /// Defaults to 500 ms.
    pub ping_interval: Duration,
    /// How long a channel's position (epoch and last offset) is kept after its last publish,
    /// so that offsets keep counting while history is empty. It is never shorter than the
    /// channel's history TTL. After it lapses, the channel's next use starts a new epoch, which
    /// a stale cursor sees as a reset. Defaults to 24 hours.
    pub position_ttl: Duration,
    /// How many pub/sub pushes may wait for this node's fan-out task. When the queue is full,
    /// pushes are dropped (the named overflow) and the node recovers every subscribed channel
    /// from history, so an overflow costs latency, never messages. Defaults to 65 536.
    pub push_queue: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            cluster_nodes: Vec::new(),
            prefix: "tidings".into(),
            timeout: Duration::from_millis(1500),
            ping_interval: Duration::from_millis(500),
            position_ttl: Duration::from_secs(24 * 3600),
            push_queue: 65_536,
        }
    }
}

/// The URL used when `url` is not set.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// Why the broker could not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// A configuration key holds a value that cannot work.
    #[error("redis.{key}: {reason}")]
    Config { key: &'static str, reason: String },
    /// Redis did not answer at startup.
    #[error("cannot reach Redis at {target}: {reason}; start Redis or fix redis.url / redis.cluster_nodes")]
    Unreachable { target: String, reason: String },
}

impl From<ConnectError> for tidings_core::BrokerError {
    fn from(e: ConnectError) -> Self {
        tidings_core::BrokerError::Unavailable(e.to_string())
    }
}

impl RedisConfig {
    /// Checks every field; the error names the bad key and the reason.
    pub fn validate(&self) -> Result<(), ConnectError> {
        let bad = |key, reason: &str| {
            Err(ConnectError::Config {
                key,
                reason: reason.into(),
            })
        };
        if self
            .prefix
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace())
        {
            return bad(
                "prefix",
                "must not contain `{`, `}` or whitespace (braces would break the per-channel hash tag)",
            );
        }
        if self.cluster_nodes.is_empty() {
            if let Some(url) = &self.url {
                check_url("url", url)?;
            }
        }
        for node in &self.cluster_nodes {
            check_url("cluster_nodes", node)?;
        }
        if self.timeout < Duration::from_millis(10) {
            return bad("timeout", "must be at least 10 ms, for example \"1500ms\"");
        }
        if self.ping_interval < Duration::from_millis(10) {
            return bad(
                "ping_interval",
                "must be at least 10 ms, for example \"500ms\"",
            );
        }
        if self.push_queue == 0 {
            return bad("push_queue", "must be at least 1, for example 65536");
        }
        if self.position_ttl < Duration::from_secs(1) {
            return bad("position_ttl", "must be at least 1 s, for example \"24h\"");
        }
        Ok(())
    }

    /// The URL of the single server.
    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_URL)
    }

    /// Where the broker connects, for error messages.
    pub fn target(&self) -> String {
        if self.cluster_nodes.is_empty() {
            self.url().to_string()
        } else {
            self.cluster_nodes.join(",")
        }
    }
}

fn check_url(key: &'static str, url: &str) -> Result<(), ConnectError> {
    use redis::IntoConnectionInfo;
    url.into_connection_info()
        .map(|_| ())
        .map_err(|e| ConnectError::Config {
            key,
            reason: format!("{url:?} is not a Redis URL ({e}); use redis://host:port"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        RedisConfig::default().validate().unwrap();
        assert_eq!(RedisConfig::default().url(), DEFAULT_URL);
    }

    #[test]
    fn names_the_bad_key() {
        let c = RedisConfig {
            prefix: "a{b".into(),
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("redis.prefix:"));
        let c = RedisConfig {
            url: Some("http://x".into()),
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("redis.url:"));
        let c = RedisConfig {
            cluster_nodes: vec!["redis://a:1".into(), "nope nope".into()],
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("redis.cluster_nodes:"));
        let c = RedisConfig {
            timeout: Duration::ZERO,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("redis.timeout:"));
    }
}
