//! The result of a run: one serializable [`Report`], its human table, and medians of runs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}

impl LatencyMs {
    /// `p50 … p99 … p99.9 … max …`, for the table.
    pub fn line(&self) -> String {
        format!(
            "p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            self.p50, self.p99, self.p999, self.max
        )
    }
}

/// A reconnect storm's outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Storm {
    /// Seconds after publishing started.
    pub at_s: f64,
    /// Time until every subscriber got a message published after it was back.
    pub recovery_ms: f64,
    pub not_recovered: u64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub label: String,
    pub server: String,
    pub transport: String,
    pub subscribers: u64,
    pub channels: u64,
    /// Messages per second per channel (0: as fast as delivery allows).
    pub rate: f64,
    pub size: u64,
    pub duration_s: f64,
    pub processes: u64,
    pub idle: bool,
    pub connected: u64,
    pub slow: u64,
    pub published: u64,
    /// Achieved publishes per second, all channels.
    pub publish_rate: f64,
    /// Deliveries expected by the reading subscribers.
    pub expected: u64,
    pub delivered: u64,
    /// From the first publish to the last delivery.
    pub window_s: f64,
    pub deliveries_per_s: f64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub subscribers_with_loss: u64,
    pub resets: u64,
    pub reconnects: u64,
    pub garbage: u64,
    /// From the send stamp in the payload to the message's arrival at the subscriber's socket
    /// (the kernel's receive stamp; the read time where there is none).
    pub latency_ms: LatencyMs,
    /// From the send stamp to the generator's read: adds the generator's own delay.
    #[serde(default)]
    pub read_latency_ms: LatencyMs,
    /// (percentile, ms) points of the latency distribution (to arrival).
    pub spectrum: Vec<(f64, f64)>,
    /// Subscriber bytes received and sent (TCP payload) from the first publish on.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub bytes_per_delivery: f64,
    /// HTTP requests (and WebSocket handshakes) from the first publish on.
    pub requests: u64,
    pub requests_per_delivery: f64,
    pub empty_responses: u64,
    /// Share of poll answers that carried nothing.
    pub empty_share: f64,
    pub server_cpu_s: Option<f64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    /// Server CPU seconds per second of the window (1.0 = one core busy).
    pub server_cpu_load: Option<f64>,
    pub deliveries_per_server_cpu_s: Option<f64>,
    pub rss_before_kib: Option<u64>,
    pub rss_connected_kib: Option<u64>,
    pub rss_max_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    /// (RSS with every subscriber connected - RSS before) / subscribers, in KiB.
    pub rss_per_conn_kib: Option<f64>,
    pub generator_cpu_s: f64,
    pub generator_cores: u64,
    /// Generator CPU seconds per second of the window, over its cores (1.0 = all busy).
    pub generator_load: f64,
    /// The generator, not the server, may have been the limit.
    pub generator_bound: bool,
    pub storm: Option<Storm>,
    pub errors: Vec<String>,
    pub command: String,
}

fn opt<T: std::fmt::Display>(v: &Option<T>, f: impl Fn(&T) -> String) -> String {
    v.as_ref().map_or_else(|| "-".to_owned(), f)
}

impl Report {
    /// The human table.
    pub fn table(&self) -> String {
        let l = &self.latency_ms;
        let mut rows: Vec<(&str, String)> = vec![
            ("run", self.label.clone()),
            (
                "load",
                format!(
                    "{} {}: {} subscribers on {} channel(s), {} B messages, {}",
                    self.server,
                    self.transport,
                    self.subscribers,
                    self.channels,
                    self.size,
                    if self.idle {
                        "idle".to_owned()
                    } else if self.rate > 0.0 {
                        format!("{} msg/s per channel", self.rate)
                    } else {
                        "as fast as delivery allows".to_owned()
                    }
                ),
            ),
            (
                "connected",
                format!("{} ({} slow)", self.connected, self.slow),
            ),
        ];
        if !self.idle {
            rows.extend([
                (
                    "published",
                    format!("{} ({:.1}/s)", self.published, self.publish_rate),
                ),
                (
                    "delivered",
                    format!(
                        "{} of {} in {:.2} s",
                        self.delivered, self.expected, self.window_s
                    ),
                ),
                ("deliveries/s", format!("{:.0}", self.deliveries_per_s)),
                (
                    "loss / dup / reorder",
                    format!(
                        "{} / {} / {} ({} subscribers with loss)",
                        self.lost, self.duplicates, self.reordered, self.subscribers_with_loss
                    ),
                ),
                (
                    "resets / reconnects",
                    format!("{} / {}", self.resets, self.reconnects),
                ),
                ("latency ms", l.line()),
                ("  at the read", self.read_latency_ms.line()),
                (
                    "bytes/delivery",
                    format!(
                        "{:.1} (rx {} B, tx {} B)",
                        self.bytes_per_delivery, self.rx_bytes, self.tx_bytes
                    ),
                ),
                (
                    "requests/delivery",
                    format!(
                        "{:.3} ({} requests, {:.0}% empty)",
                        self.requests_per_delivery,
                        self.requests,
                        self.empty_share * 100.0
                    ),
                ),
                (
                    "server CPU µs/delivery",
                    opt(&self.server_cpu_us_per_delivery, |v| format!("{v:.2}")),
                ),
                (
                    "server CPU load",
                    opt(&self.server_cpu_load, |v| {
                        format!("{:.0}% of a core", v * 100.0)
                    }),
                ),
            ]);
        }
        rows.extend([
            (
                "server RSS per conn",
                opt(&self.rss_per_conn_kib, |v| format!("{v:.2} KiB")),
            ),
            (
                "server RSS KiB",
                format!(
                    "before {}  connected {}  max {}",
                    opt(&self.rss_before_kib, u64::to_string),
                    opt(&self.rss_connected_kib, u64::to_string),
                    opt(&self.rss_max_kib, u64::to_string)
                ),
            ),
            (
                "generator CPU",
                format!(
                    "{:.2} s, {:.0}% of {} core(s)",
                    self.generator_cpu_s,
                    self.generator_load * 100.0,
                    self.generator_cores
                ),
            ),
        ]);
        if let Some(s) = &self.storm {
            rows.push((
                "reconnect storm",
                format!(
                    "at {:.1} s: recovered in {:.0} ms, {} not recovered",
                    s.at_s, s.recovery_ms, s.not_recovered
                ),
            ));
        }
        let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("{k:<w$}  {v}\n"));
        }
        out
    }
}

/// Combines runs of one scenario: every number is the median of the runs' numbers; lists
/// (the latency spectrum) and text come from the run with the median p99 latency.
pub fn median(runs: &[Value]) -> Value {
    if runs.is_empty() {
        return Value::Null;
    }
    let mut order: Vec<usize> = (0..runs.len()).collect();
    let p99 = |v: &Value| v["latency_ms"]["p99"].as_f64().unwrap_or(0.0);
    order.sort_by(|&a, &b| p99(&runs[a]).total_cmp(&p99(&runs[b])));
    let mid = &runs[order[order.len() / 2]];
    merge(mid, runs)
}

fn merge(mid: &Value, all: &[Value]) -> Value {
    match mid {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let same: Vec<Value> = all
                    .iter()
                    .map(|r| r.get(k).cloned().unwrap_or(Value::Null))
                    .collect();
                out.insert(k.clone(), merge(v, &same));
            }
            Value::Object(out)
        }
        Value::Number(_) => {
            let mut xs: Vec<f64> = all.iter().filter_map(Value::as_f64).collect();
            if xs.is_empty() {
                return mid.clone();
            }
            xs.sort_by(f64::total_cmp);
            let m = if xs.len() % 2 == 1 {
                xs[xs.len() / 2]
            } else {
                (xs[xs.len() / 2 - 1] + xs[xs.len() / 2]) / 2.0
            };
            if mid.is_u64() && m.fract() == 0.0 {
                Value::from(m as u64)
            } else {
                Value::from(m)
            }
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn medians_of_numbers_and_lists_of_the_median_run() {
        let runs = vec![
            json!({"a": 1, "latency_ms": {"p99": 5.0}, "spectrum": [[50.0, 1.0]], "label": "x"}),
            json!({"a": 3, "latency_ms": {"p99": 9.0}, "spectrum": [[50.0, 3.0]], "label": "x"}),
            json!({"a": 2, "latency_ms": {"p99": 7.0}, "spectrum": [[50.0, 2.0]], "label": "x"}),
        ];
        let m = median(&runs);
        assert_eq!(m["a"], json!(2));
        assert_eq!(m["latency_ms"]["p99"], json!(7.0));
        assert_eq!(m["spectrum"], json!([[50.0, 2.0]]));
        assert_eq!(m["label"], json!("x"));
    }

    #[test]
    fn a_default_report_round_trips_and_prints() {
        let r = Report::default();
        let back: Report = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(r, back);
        assert!(r.table().contains("generator CPU"));
    }
}
