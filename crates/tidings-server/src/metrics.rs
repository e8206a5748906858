//! Prometheus metrics: the recorder, cached handles for the hot path, and connection guards.
//!
//! Metric names:
//! - `tidings_connections{transport}` (gauge): open connections and held requests;
//! - `tidings_messages_published_total`, `tidings_messages_delivered_total{transport}`;
//! - `tidings_messages_written_through_total{transport}`: the deliveries among those that the
//!   publisher wrote straight to the socket (`tidings_core::direct`);
//! - `tidings_slow_consumer_disconnects_total`, `tidings_slow_consumer_drops_total`;
//! - `tidings_history_bytes` (gauge, set on scrape).
//!
//! The recorder is process-global (one per process, shared by every server a test starts).
//! Labelled handles are looked up once and cached. Deliveries, counted per message on the
//! fan-out's hot path, go to plain atomics instead (one relaxed add, where a recorder handle is
//! a call through a trait object that also bumps a generation counter), and [`render`] copies
//! them into their counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tidings_core::Transport;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static HANDLES: OnceLock<Vec<Handles>> = OnceLock::new();

/// Deliveries per transport (indexed by `Transport as usize`), and those written through.
static DELIVERED: [AtomicU64; Transport::ALL.len()] =
    [const { AtomicU64::new(0) }; Transport::ALL.len()];
static THROUGH: [AtomicU64; Transport::ALL.len()] =
    [const { AtomicU64::new(0) }; Transport::ALL.len()];

/// One transport's cached handles.
struct Handles {
    connections: Gauge,
    delivered: Counter,
    through: Counter,
}

/// Installs the recorder (once per process) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

fn handles(t: Transport) -> &'static Handles {
    let all = HANDLES.get_or_init(|| {
        install();
        Transport::ALL
            .iter()
            .map(|t| Handles {
                connections: metrics::gauge!("tidings_connections", "transport" => t.as_str()),
                delivered: metrics::counter!("tidings_messages_delivered_total", "transport" => t.as_str()),
                through: metrics::counter!("tidings_messages_written_through_total", "transport" => t.as_str()),
            })
            .collect()
    });
    let i = Transport::ALL.iter().position(|x| *x == t).unwrap_or(0);
    &all[i]
}

/// Counts `n` deliveries on transport `t`.
pub fn delivered(t: Transport, n: usize) {
    if n > 0 {
        DELIVERED[t as usize].fetch_add(n as u64, Relaxed);
    }
}

/// Counts one delivery on transport `t` that the publisher wrote through.
pub fn delivered_through(t: Transport) {
    DELIVERED[t as usize].fetch_add(1, Relaxed);
    THROUGH[t as usize].fetch_add(1, Relaxed);
}

/// Counts a connection while it lives.
pub struct ConnGuard(Transport);

impl ConnGuard {
    /// Increments the gauge of `t`.
    pub fn new(t: Transport) -> Self {
        handles(t).connections.increment(1.0);
        ConnGuard(t)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        handles(self.0).connections.decrement(1.0);
    }
}

/// Renders the Prometheus text, refreshing gauges read on scrape.
pub fn render(history_bytes: usize) -> String {
    metrics::gauge!("tidings_history_bytes").set(history_bytes as f64);
    for t in Transport::ALL {
        let h = handles(t);
        h.delivered.absolute(DELIVERED[t as usize].load(Relaxed));
        h.through.absolute(THROUGH[t as usize].load(Relaxed));
    }
    install().render()
}
