//! Configuration: defaults, then a TOML file, then `TIDINGS_*` environment variables, then
//! flags, merged as TOML tables and checked by one [`Config::validate`] that names any bad key.
//!
//! Nested keys use `__` in the environment: `TIDINGS_REDIS__URL` sets `redis.url`,
//! `TIDINGS_NAMESPACES__CHAT__CLIENT_PUBLISH=true` sets `namespaces.chat.client_publish`.
//! Environment values are read as TOML values when they parse as such (`true`, `5`,
//! `["a","b"]`) and as strings otherwise.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use tidings_core::{ChannelOptions, Namespaces, SlowConsumer};

/// Which broker holds positions and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Memory,
    Redis,
}

/// Redis connection settings (used when `broker = "redis"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://host:port/db`. Defaults to `redis://127.0.0.1:6379`.
    pub url: String,
    /// Seed nodes of a Redis Cluster; when set, `url` is ignored. Defaults to none.
    pub cluster_nodes: Vec<String>,
    /// Prefix of every key and pub/sub channel. Defaults to `tidings`.
    pub prefix: String,
}

/// Which transports are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    pub poll: bool,
    pub longpoll: bool,
    pub iframe: bool,
    pub stream: bool,
    pub sse: bool,
    pub websocket: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Transports {
            poll: true,
            longpoll: true,
            iframe: true,
            stream: true,
            sse: true,
            websocket: true,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on. Defaults to `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Publishers send `Authorization: Bearer <api_key>`. Defaults to none: the channel API then
    /// answers loopback clients only.
    pub api_key: Option<String>,
    /// Origins allowed to open WebSockets besides the same origin and localhost; `*` allows all.
    /// Defaults to none.
    pub allowed_origins: Vec<String>,
    /// Defaults to `memory`.
    pub broker: BrokerKind,
    /// Defaults to [`RedisSettings::default`] with the URL and prefix above.
    pub redis: RedisSettings,
    /// Per-namespace channel options. Defaults to none (every channel uses `channel_defaults`).
    pub namespaces: Namespaces,
    /// Serve the demo pages and run the demo publisher. Defaults to true.
    pub demos: bool,
    /// Largest message accepted, in bytes. Defaults to 65536.
    pub max_message_bytes: usize,
    /// Bytes a connection may have queued before its slow-consumer policy applies. Defaults to 262144.
    pub queue_bytes: usize,
    /// Idle interval after which streams send a heartbeat. Defaults to 15 s.
    pub heartbeat: Duration,
    /// WebSocket ping interval. Defaults to 20 s.
    pub ws_ping_interval: Duration,
    /// A WebSocket peer silent for this long is closed. Defaults to 60 s.
    pub ws_ping_timeout: Duration,
    /// Default long-poll hold time. Defaults to 25 s.
    pub longpoll_timeout: Duration,
    /// Bytes after which an iframe or XHR stream response ends and the client reconnects.
    /// Defaults to 131072.
    pub stream_budget: usize,
    /// The SSE `retry:` sent on connect. Defaults to 2 s.
    pub sse_retry: Duration,
    /// How long shutdown waits for connections to drain. Defaults to 10 s.
    pub shutdown_grace: Duration,
    /// Bytes of history the memory broker may hold in all. Defaults to 268435456 (256 MiB).
    pub history_budget: usize,
    /// Channels one connection may subscribe to. Defaults to 64.
    pub max_channels_per_connection: usize,
    /// Defaults to every transport on.
    pub transports: Transports,
}

/// The keys a TOML file may hold; unknown keys are refused by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    api_key: Option<String>,
    allowed_origins: Option<Vec<String>>,
    broker: Option<String>,
    redis: Option<RawRedis>,
    channel_defaults: Option<RawNamespace>,
    namespaces: Option<BTreeMap<String, RawNamespace>>,
    demos: Option<bool>,
    max_message_bytes: Option<usize>,
    queue_bytes: Option<usize>,
    heartbeat: Option<String>,
    ws_ping_interval: Option<String>,
    ws_ping_timeout: Option<String>,
    longpoll_timeout: Option<String>,
    stream_budget: Option<usize>,
    sse_retry: Option<String>,
    shutdown_grace: Option<String>,
    history_budget: Option<usize>,
    max_channels_per_connection: Option<usize>,
    transports: Option<RawTransports>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    url: Option<String>,
    cluster_nodes: Option<Vec<String>>,
    prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamespace {
    history_size: Option<usize>,
    history_bytes: Option<usize>,
    history_ttl: Option<String>,
    client_publish: Option<bool>,
    slow_consumer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransports {
    poll: Option<bool>,
    longpoll: Option<bool>,
    iframe: Option<bool>,
    stream: Option<bool>,
    sse: Option<bool>,
    websocket: Option<bool>,
}

/// A configuration error naming the key and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config key `{key}`: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

fn bad(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The top-level config keys; other `TIDINGS_*` variables are ignored.
const TOP_KEYS: &[&str] = &[
    "listen",
    "api_key",
    "allowed_origins",
    "broker",
    "redis",
    "channel_defaults",
    "namespaces",
    "demos",
    "max_message_bytes",
    "queue_bytes",
    "heartbeat",
    "ws_ping_interval",
    "ws_ping_timeout",
    "longpoll_timeout",
    "stream_budget",
    "sse_retry",
    "shutdown_grace",
    "history_budget",
    "max_channels_per_connection",
    "transports",
];

/// Keys whose values are always strings, so `TIDINGS_API_KEY=1234…` stays text.
const STRING_KEYS: &[&str] = &[
    "listen",
    "api_key",
    "broker",
    "url",
    "prefix",
    "heartbeat",
    "ws_ping_interval",
    "ws_ping_timeout",
    "longpoll_timeout",
    "sse_retry",
    "shutdown_grace",
    "history_ttl",
    "slow_consumer",
];

/// Parses `500ms`, `15s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

fn duration(key: &str, v: Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(&s).ok_or_else(|| {
            bad(
                key,
                format!("{s:?} is not a duration; write e.g. \"500ms\", \"15s\", \"5m\""),
            )
        }),
    }
}

fn namespace(
    key: &str,
    raw: RawNamespace,
    base: &ChannelOptions,
) -> Result<ChannelOptions, ConfigError> {
    let mut o = base.clone();
    if let Some(n) = raw.history_size {
        if n > 100_000 {
            return Err(bad(
                format!("{key}.history_size"),
                "at most 100000 messages per channel",
            ));
        }
        o.history_size = n;
    }
    if let Some(n) = raw.history_bytes {
        o.history_bytes = n;
    }
    o.history_ttl = duration(
        &format!("{key}.history_ttl"),
        raw.history_ttl,
        o.history_ttl,
    )?;
    if let Some(b) = raw.client_publish {
        o.client_publish = b;
    }
    if let Some(p) = raw.slow_consumer {
        o.slow_consumer = SlowConsumer::parse(&p).ok_or_else(|| {
            bad(
                format!("{key}.slow_consumer"),
                format!("{p:?} is not a policy; use disconnect, drop_oldest or latest_only"),
            )
        })?;
    }
    Ok(o)
}

impl Config {
    /// The defaults, as `tidings serve` with no config uses them.
    pub fn defaults() -> Config {
        Config::validate(toml::Table::new())
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }

    /// Loads defaults, then `file` (TOML text), then `env` (`TIDINGS_*` pairs), then `overrides`
    /// (dotted key, TOML value), and validates the result.
    pub fn load(
        file: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: impl IntoIterator<Item = (String, toml::Value)>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = match file {
            Some(text) => text
                .parse()
                .map_err(|e: toml::de::Error| bad("(file)", e.to_string()))?,
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("TIDINGS_") else {
                continue;
            };
            // TIDINGS_URL belongs to the CLI clients (`publish`, `subscribe`), not to the server.
            if rest.is_empty() || rest == "LOG" || rest == "URL" {
                continue;
            }
            // Environment names are upper case by convention, so every segment is lower-cased,
            // namespace names included; configure mixed-case namespaces in the TOML file.
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            // The environment is shared with other tools (TIDINGS_BIN in scripts, say): a name
            // that is no config key is skipped with a warning rather than stopping the server.
            if !TOP_KEYS.contains(&path[0].as_str()) {
                tracing::warn!("ignoring {name}: `{}` is not a config key", path[0]);
                continue;
            }
            let last = path.last().map(String::as_str).unwrap_or("");
            let parsed = if STRING_KEYS.contains(&last) {
                toml::Value::String(value)
            } else {
                format!("v = {value}")
                    .parse::<toml::Table>()
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or(toml::Value::String(value))
            };
            set_path(&mut table, &path, parsed)
                .map_err(|r| bad(format!("{} (from {name})", path.join(".")), r))?;
        }
        for (key, value) in overrides {
            let path: Vec<String> = key.split('.').map(str::to_owned).collect();
            set_path(&mut table, &path, value).map_err(|r| bad(&key, r))?;
        }
        Config::validate(table)
    }

    /// Checks every key and value; the error names the first bad key and how to fix it.
    pub fn validate(table: toml::Table) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let msg = e.to_string();
                    let key = msg
                        .split('`')
                        .nth(1)
                        .map(str::to_owned)
                        .unwrap_or_else(|| "(file)".to_owned());
                    bad(key, msg.trim().replace('\n', " "))
                })?;
        let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_text.parse().map_err(|_| {
            bad(
                "listen",
                format!("{listen_text:?} is not an address; write e.g. \"127.0.0.1:8080\""),
            )
        })?;
        let broker = match raw.broker.as_deref().unwrap_or("memory") {
            "memory" => BrokerKind::Memory,
            "redis" => BrokerKind::Redis,
            other => {
                return Err(bad(
                    "broker",
                    format!("{other:?} is not a broker; use \"memory\" or \"redis\""),
                ))
            }
        };
        let redis = match raw.redis {
            None => RedisSettings {
                url: "redis://127.0.0.1:6379".into(),
                cluster_nodes: vec![],
                prefix: "tidings".into(),
            },
            Some(r) => RedisSettings {
                url: r.url.unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
                cluster_nodes: r.cluster_nodes.unwrap_or_default(),
                prefix: r.prefix.unwrap_or_else(|| "tidings".into()),
            },
        };
        if !redis.url.starts_with("redis://")
            && !redis.url.starts_with("rediss://")
            && !redis.url.starts_with("unix://")
        {
            return Err(bad(
                "redis.url",
                "must start with redis://, rediss:// or unix://",
            ));
        }
        let demos = raw.demos.unwrap_or(true);
        let default = match raw.channel_defaults {
            Some(d) => namespace("channel_defaults", d, &ChannelOptions::default())?,
            None => ChannelOptions::default(),
        };
        let mut by_name = HashMap::new();
        for (name, ns) in raw.namespaces.unwrap_or_default() {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| tidings_protocol::channel::is_channel_byte(b) && b != b':')
            {
                return Err(bad(
                    format!("namespaces.{name}"),
                    "a namespace is the part of a channel name before `:`",
                ));
            }
            let o = namespace(&format!("namespaces.{name}"), ns, &default)?;
            by_name.insert(name, o);
        }
        if demos {
            // The demos need chat to accept client publishes and the clock to coalesce.
            by_name
                .entry("chat".into())
                .or_insert_with(|| ChannelOptions {
                    client_publish: true,
                    ..default.clone()
                });
            by_name
                .entry("demo".into())
                .or_insert_with(|| ChannelOptions {
                    slow_consumer: SlowConsumer::LatestOnly,
                    history_size: 20,
                    ..default.clone()
                });
        }
        let t = raw.transports.unwrap_or(RawTransports {
            poll: None,
            longpoll: None,
            iframe: None,
            stream: None,
            sse: None,
            websocket: None,
        });
        let transports = Transports {
            poll: t.poll.unwrap_or(true),
            longpoll: t.longpoll.unwrap_or(true),
            iframe: t.iframe.unwrap_or(true),
            stream: t.stream.unwrap_or(true),
            sse: t.sse.unwrap_or(true),
            websocket: t.websocket.unwrap_or(true),
        };
        let api_key = raw.api_key.filter(|k| !k.is_empty());
        if let Some(k) = &api_key {
            if k.len() < 16 {
                return Err(bad(
                    "api_key",
                    "use at least 16 characters, e.g. `openssl rand -hex 24`",
                ));
            }
        }
        let positive = |key: &str, v: Option<usize>, d: usize| -> Result<usize, ConfigError> {
            match v {
                Some(0) => Err(bad(key, "must be greater than 0")),
                Some(n) => Ok(n),
                None => Ok(d),
            }
        };
        let cfg = Config {
            listen,
            api_key,
            allowed_origins: raw.allowed_origins.unwrap_or_default(),
            broker,
            redis,
            namespaces: Namespaces { default, by_name },
            demos,
            max_message_bytes: positive("max_message_bytes", raw.max_message_bytes, 64 << 10)?,
            queue_bytes: positive("queue_bytes", raw.queue_bytes, 256 << 10)?,
            heartbeat: duration("heartbeat", raw.heartbeat, Duration::from_secs(15))?,
            ws_ping_interval: duration(
                "ws_ping_interval",
                raw.ws_ping_interval,
                Duration::from_secs(20),
            )?,
            ws_ping_timeout: duration(
                "ws_ping_timeout",
                raw.ws_ping_timeout,
                Duration::from_secs(60),
            )?,
            longpoll_timeout: duration(
                "longpoll_timeout",
                raw.longpoll_timeout,
                Duration::from_secs(25),
            )?,
            stream_budget: positive("stream_budget", raw.stream_budget, 128 << 10)?,
            sse_retry: duration("sse_retry", raw.sse_retry, Duration::from_secs(2))?,
            shutdown_grace: duration(
                "shutdown_grace",
                raw.shutdown_grace,
                Duration::from_secs(10),
            )?,
            history_budget: positive("history_budget", raw.history_budget, 256 << 20)?,
            max_channels_per_connection: positive(
                "max_channels_per_connection",
                raw.max_channels_per_connection,
                64,
            )?,
            transports,
        };
        if cfg.heartbeat.is_zero() {
            return Err(bad("heartbeat", "must be greater than 0"));
        }
        if cfg.ws_ping_interval.is_zero() || cfg.ws_ping_timeout <= cfg.ws_ping_interval {
            return Err(bad(
                "ws_ping_timeout",
                "must be longer than ws_ping_interval, which must be > 0",
            ));
        }
        if cfg.longpoll_timeout > Duration::from_secs(120) {
            return Err(bad(
                "longpoll_timeout",
                "at most 120s; proxies close idle requests long before that",
            ));
        }
        if cfg.max_message_bytes > cfg.queue_bytes {
            return Err(bad(
                "max_message_bytes",
                "must not exceed queue_bytes, or one message could never be queued",
            ));
        }
        Ok(cfg)
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut t = table;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is not a table"))?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_sane() {
        let c = Config::defaults();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.broker, BrokerKind::Memory);
        assert!(c.demos && c.api_key.is_none());
        assert!(c.namespaces.for_channel("chat:lobby").client_publish);
        assert!(!c.namespaces.for_channel("other").client_publish);
    }

    #[test]
    fn layers_apply_in_order() {
        let file = "listen = \"127.0.0.1:9000\"\n[namespaces.news]\nhistory_size = 5\nhistory_ttl = \"1m\"\n";
        let c = Config::load(
            Some(file),
            env(&[
                ("TIDINGS_LISTEN", "127.0.0.1:9001"),
                ("TIDINGS_NAMESPACES__NEWS__CLIENT_PUBLISH", "true"),
                ("OTHER", "x"),
            ]),
            [(
                "listen".to_string(),
                toml::Value::String("127.0.0.1:9002".into()),
            )],
        )
        .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9002");
        let news = c.namespaces.for_channel("news:x");
        assert_eq!(
            (news.history_size, news.history_ttl, news.client_publish),
            (5, Duration::from_secs(60), true)
        );
        let c = Config::load(
            None,
            env(&[("TIDINGS_REDIS__URL", "redis://10.0.0.1:7000")]),
            [],
        )
        .unwrap();
        assert_eq!(c.redis.url, "redis://10.0.0.1:7000");
    }

    #[test]
    fn validate_names_the_bad_key() {
        let e = Config::load(Some("lisen = \"x\""), [], []).unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
        let e = Config::load(
            Some("[namespaces.chat]\nslow_consumer = \"sometimes\""),
            [],
            [],
        )
        .unwrap_err();
        assert_eq!(e.key, "namespaces.chat.slow_consumer");
        let e = Config::load(None, env(&[("TIDINGS_HEARTBEAT", "soon")]), []).unwrap_err();
        assert_eq!(e.key, "heartbeat");
        assert!(
            Config::load(None, env(&[("TIDINGS_BIN", "/x")]), []).is_ok(),
            "foreign TIDINGS_* names are skipped"
        );
        let e = Config::load(None, env(&[("TIDINGS_REDIS__URLL", "redis://x")]), []).unwrap_err();
        assert!(e.to_string().contains("urll"), "{e}");
        let e = Config::load(Some("api_key = \"short\""), [], []).unwrap_err();
        assert_eq!(e.key, "api_key");
        let c = Config::load(
            None,
            env(&[
                ("TIDINGS_API_KEY", "12345678901234567890"),
                ("TIDINGS_URL", "http://x"),
                ("TIDINGS_NAMESPACES__MYNS__CLIENT_PUBLISH", "true"),
            ]),
            [],
        )
        .unwrap();
        assert_eq!(
            c.api_key.as_deref(),
            Some("12345678901234567890"),
            "digits stay a string"
        );
        assert!(c.namespaces.for_channel("myns:x").client_publish);
        let e = Config::load(Some("[transports]\nwebsocket = \"no\""), [], []).unwrap_err();
        assert!(
            e.to_string().contains("websocket") || e.to_string().contains("bool"),
            "{e}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
    }
}
