//! What one subscriber has seen, shared between its task and the code that reports on it.
//!
//! Each subscriber owns a [`Slot`]: counters its task bumps (no other task writes them, so the
//! atomics never contend) and a [`Tracker`] behind an uncontended mutex. The report reads the
//! slots after the tasks are aborted, so nothing a task learned is lost with it. Latencies go
//! to a few shared histograms ([`Latency`]), sharded by subscriber so worker threads rarely
//! meet on one lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use tokio::sync::OwnedSemaphorePermit;

use crate::net::Counters;
use crate::payload;
use crate::tracker::{Outcome, Tracker};

/// Wall-clock nanoseconds since the Unix epoch (the clock payload stamps use).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Latency histograms in microseconds, sharded: each shard holds two, one to when a message
/// reached the subscriber's socket (the kernel's arrival stamp, see `net`) and one to when the
/// generator read it. The first is the server's latency; the gap between them is the
/// generator's own delay in getting round to a socket among thousands.
pub struct Latency {
    shards: Vec<Mutex<[Histogram<u64>; 2]>>,
}

/// A histogram for latencies in µs from 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// When a message was seen (ns since the Unix epoch).
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// It reached the socket (the read time when the kernel gave no stamp).
    pub arrival: u64,
    /// The generator read it.
    pub read: u64,
}

impl Seen {
    /// Seen now, having arrived at `arrival` if the kernel said.
    pub fn now(arrival: Option<u64>) -> Seen {
        let read = now_ns();
        Seen {
            // A stamp is never later than the read; clamp in case the clock stepped.
            arrival: arrival.map_or(read, |a| a.min(read)),
            read,
        }
    }
}

impl Latency {
    /// `n` shards.
    pub fn new(n: usize) -> Self {
        Latency {
            shards: (0..n.max(1))
                .map(|_| Mutex::new([histogram(), histogram()]))
                .collect(),
        }
    }

    /// Records, for subscriber `idx`, a message sent at `sent_ns` and `seen`.
    pub fn record(&self, idx: usize, sent_ns: u64, seen: Seen) {
        let shard = &self.shards[idx % self.shards.len()];
        let us = |t: u64| (t.saturating_sub(sent_ns) / 1000).clamp(1, 600_000_000);
        if let Ok(mut h) = shard.lock() {
            h[0].saturating_record(us(seen.arrival));
            h[1].saturating_record(us(seen.read));
        }
    }

    /// All shards merged: (to arrival, to read).
    pub fn merged(&self) -> [Histogram<u64>; 2] {
        let mut all = [histogram(), histogram()];
        for s in &self.shards {
            if let Ok(h) = s.lock() {
                let _ = all[0].add(&h[0]);
                let _ = all[1].add(&h[1]);
            }
        }
        all
    }
}

/// One subscriber's state.
#[derive(Default)]
pub struct Slot {
    /// Channel index.
    pub channel: u32,
    /// Stops reading once connected.
    pub slow: bool,
    pub io: Arc<Counters>,
    /// Every sequence number below this one has arrived.
    pub next: AtomicU64,
    /// Distinct messages delivered.
    pub delivered: AtomicU64,
    /// HTTP requests (and WebSocket handshakes) sent.
    pub requests: AtomicU64,
    /// Poll answers that carried no message.
    pub empty: AtomicU64,
    pub reconnects: AtomicU64,
    /// In-band reset notices.
    pub resets: AtomicU64,
    /// Payloads that were not ours, or for another channel.
    pub garbage: AtomicU64,
    pub ready: AtomicBool,
    /// Set when a connection dropped by a storm is back up.
    pub reconnected_ns: AtomicU64,
    /// First delivery of a message sent after `reconnected_ns`.
    pub recovered_ns: AtomicU64,
    /// Time of the last new delivery.
    pub last_ns: AtomicU64,
    pub tracker: Mutex<Tracker>,
    pub last_error: Mutex<Option<String>>,
    /// Held while connecting, to bound connection attempts in flight.
    pub permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Slot {
    /// A slot for a subscriber of `channel`.
    pub fn new(channel: u32, slow: bool, permit: Option<OwnedSemaphorePermit>) -> Self {
        Slot {
            channel,
            slow,
            next: AtomicU64::new(1),
            permit: Mutex::new(permit),
            ..Slot::default()
        }
    }

    /// The first connection is up (or failed): let the next one start connecting.
    pub fn release(&self, ready: bool) {
        if ready {
            self.ready.store(true, Relaxed);
        }
        if let Ok(mut p) = self.permit.lock() {
            p.take();
        }
    }

    /// Notes an error for the report.
    pub fn error(&self, e: &anyhow::Error) {
        if let Ok(mut l) = self.last_error.lock() {
            *l = Some(format!("{e:#}"));
        }
    }

    /// Handles one received payload, `seen` then.
    pub fn deliver(&self, data: &[u8], seen: Seen, latency: &Latency, idx: usize) {
        let now = seen.read;
        let Some(st) = payload::decode(data) else {
            self.garbage.fetch_add(1, Relaxed);
            return;
        };
        if st.channel != self.channel {
            self.garbage.fetch_add(1, Relaxed);
            return;
        }
        let Ok(mut t) = self.tracker.lock() else {
            return;
        };
        if t.record(st.seq) == Outcome::Duplicate {
            return;
        }
        self.next.store(t.next(), Relaxed);
        drop(t);
        self.delivered.fetch_add(1, Relaxed);
        self.last_ns.store(now, Relaxed);
        latency.record(idx, st.sent_ns, seen);
        let back = self.reconnected_ns.load(Relaxed);
        if back > 0 && st.sent_ns >= back && self.recovered_ns.load(Relaxed) == 0 {
            self.recovered_ns.store(now, Relaxed);
        }
    }
}
