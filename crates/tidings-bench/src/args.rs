//! The flags of `tidings bench`.
//!
//! Rates are per channel: `--rate R` publishes R messages per second on each of `--channels`
//! channels, so a run delivers about `R × subscribers` messages per second in all (every
//! subscriber listens to one channel). `--rate 0` publishes as fast as delivery allows, never
//! more than `--max-ahead` messages past the slowest subscriber of a channel.

use std::path::PathBuf;
use std::time::Duration;

/// Which server's wire formats and default paths to use.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Server {
    Tidings,
    Nchan,
}

/// The subscriber transport.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// WebSocket, raw frames (`/ws/{ch}`; Nchan `nchan_subscriber websocket`).
    Ws,
    /// Server-Sent Events.
    Sse,
    /// Tidings XHR streaming (ndjson); with `--server nchan`, Nchan's chunked transport.
    Stream,
    /// Tidings forever iframe (Nchan has none).
    Iframe,
    /// Long polling (Nchan: `If-Modified-Since`/`If-None-Match`).
    Longpoll,
    /// Short polling every `--poll-interval` (Nchan: `intervalpoll`).
    Poll,
}

impl Transport {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
            Transport::Stream => "stream",
            Transport::Iframe => "iframe",
            Transport::Longpoll => "longpoll",
            Transport::Poll => "poll",
        }
    }
}

/// Parses `500ms`, `5s`, `2m` or a bare number of seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; write 500ms, 5s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in {s:?}; use ms, s or m")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Flags of `tidings bench`.
#[derive(clap::Args, Clone, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// Dialect of the target: wire formats and default URL templates.
    #[arg(long, value_enum, default_value = "tidings")]
    pub server: Server,
    /// Base URL for the default templates.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TIDINGS_URL")]
    pub url: String,
    /// Publish URL template; `{ch}` is the channel. Defaults to `{url}/api/channels/{ch}/messages`
    /// (Nchan: `{url}/pub/{ch}`).
    #[arg(long)]
    pub publish_url: Option<String>,
    /// Subscribe URL template; `{ch}` is the channel. Defaults to the transport's path on
    /// `--url` (`ws://…/ws/{ch}`, `/sse/{ch}`, …; Nchan: `/sub/ws/{ch}`, `/sub/sse/{ch}`,
    /// `/sub/chunked/{ch}`, `/sub/lp/{ch}`, `/sub/poll/{ch}`).
    #[arg(long)]
    pub subscribe_url: Option<String>,
    /// `Authorization: Bearer KEY` on publishes (Tidings' `api_key`).
    #[arg(long, env = "TIDINGS_API_KEY")]
    pub api_key: Option<String>,
    /// Extra request header for subscribers, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Subscriber transport.
    #[arg(long, short, value_enum, default_value = "ws")]
    pub transport: Transport,
    /// Subscribers in all (spread over the channels round-robin).
    #[arg(long, short = 'n', default_value_t = 100)]
    pub subscribers: usize,
    /// Channels.
    #[arg(long, short, default_value_t = 1)]
    pub channels: usize,
    /// Messages per second per channel; 0 publishes as fast as delivery allows.
    #[arg(long, short, default_value_t = 10.0)]
    pub rate: f64,
    /// With `--rate 0`: how many messages the publisher may run ahead of a channel's slowest
    /// subscriber.
    #[arg(long, default_value_t = 20)]
    pub max_ahead: u64,
    /// Message size in bytes (at least the ~30-byte stamp).
    #[arg(long, short, default_value_t = 64)]
    pub size: usize,
    /// How long to publish.
    #[arg(long, short, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Pause between the last subscriber connecting and the first publish.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub warmup: Duration,
    /// How long to wait after the last publish for deliveries to finish.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub drain: Duration,
    /// Connect only; publish nothing. Reports the server's memory per connection.
    #[arg(long)]
    pub idle: bool,
    /// Short-poll interval.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub poll_interval: Duration,
    /// Percent of subscribers that stop reading once connected (slow consumers).
    #[arg(long, default_value_t = 0.0)]
    pub slow: f64,
    /// Drop every connection this long after publishing starts and resume with cursors.
    #[arg(long, value_parser = duration)]
    pub storm_at: Option<Duration>,
    /// Concurrent publish connections.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Connection attempts in flight at once while connecting.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Server process ids (comma-separated; summed), for CPU time and RSS from /proc.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Child generator processes, each with its share of subscribers and its own source
    /// address (127.0.0.2, 127.0.0.3, …). 1 runs everything in this process.
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Source address of subscriber connections (default: the kernel's choice).
    #[arg(long)]
    pub source_ip: Option<std::net::IpAddr>,
    /// Channel name prefix (a random one by default, so runs never see each other's history).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Label of this run in tables and plots.
    #[arg(long)]
    pub label: Option<String>,
    /// Write the result as JSON to FILE.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG plot of the result to FILE.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Allow targets outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    pub allow_remote: bool,
    /// Internal: run as child generator number N (spawned by --processes).
    #[arg(long, hide = true)]
    pub child: Option<usize>,
    /// Internal: the global number of a child's first subscriber.
    #[arg(long, hide = true, default_value_t = 0)]
    pub child_first: usize,
}

/// Subcommands of `tidings bench`.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum Sub {
    /// Plot latency distributions and cost per run from JSON results, as SVG.
    Plot {
        /// Output SVG file.
        #[arg(long, short)]
        out: PathBuf,
        /// Title of the figure.
        #[arg(long, default_value = "tidings bench")]
        title: String,
        /// JSON result files (from --json).
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
    /// Merge several JSON results of one scenario into one with the median of each figure.
    Median {
        /// Output JSON file.
        #[arg(long, short)]
        out: PathBuf,
        /// JSON result files (from --json).
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("3"), Ok(Duration::from_secs(3)));
        assert!(duration("5h").is_err());
        assert!(duration("x").is_err());
    }
}
