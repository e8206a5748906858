//! A group of subscribers living in this process, and the figures it reports.
//!
//! The coordinator drives groups through [`crate::child::Handle`]: a local group directly, or
//! a child process that runs one and speaks JSON lines. Subscriber `g` (counted across all
//! groups) listens to channel `g % channels`, so channels fill evenly whatever the split.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::args::Args;
use crate::slot::{Latency, Slot};
use crate::subscriber::{self, Ctx};
use crate::target::Targets;

/// Live counters of a group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub ready: u64,
    pub delivered: u64,
    pub rx: u64,
    pub tx: u64,
    pub reconnects: u64,
    /// Per channel: the lowest `next` among this group's reading subscribers (u64::MAX if none).
    pub floor: Vec<u64>,
    pub error: Option<String>,
}

/// Final figures of a group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub subscribers: u64,
    pub ready: u64,
    pub slow: u64,
    pub delivered: u64,
    pub expected: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub subscribers_with_loss: u64,
    pub resets: u64,
    pub reconnects: u64,
    pub requests: u64,
    pub empty: u64,
    pub garbage: u64,
    pub rx: u64,
    pub tx: u64,
    pub last_delivery_ns: u64,
    /// Longest time from a storm to a subscriber's first fresh message (ns).
    pub recovery_ns: u64,
    pub not_recovered: u64,
    /// Generator CPU seconds of this process over the publishing window.
    pub cpu_secs: f64,
    /// Latency to arrival at the socket, as (µs, count) pairs.
    pub latency: Vec<(u64, u64)>,
    /// Latency to the generator's read, as (µs, count) pairs.
    pub read_latency: Vec<(u64, u64)>,
    pub errors: Vec<String>,
}

impl Outcome {
    /// Adds `o` to `self`.
    pub fn merge(&mut self, o: &Outcome) {
        self.subscribers += o.subscribers;
        self.ready += o.ready;
        self.slow += o.slow;
        self.delivered += o.delivered;
        self.expected += o.expected;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
        self.subscribers_with_loss += o.subscribers_with_loss;
        self.resets += o.resets;
        self.reconnects += o.reconnects;
        self.requests += o.requests;
        self.empty += o.empty;
        self.garbage += o.garbage;
        self.rx += o.rx;
        self.tx += o.tx;
        self.last_delivery_ns = self.last_delivery_ns.max(o.last_delivery_ns);
        self.recovery_ns = self.recovery_ns.max(o.recovery_ns);
        self.not_recovered += o.not_recovered;
        self.cpu_secs += o.cpu_secs;
        self.latency.extend_from_slice(&o.latency);
        self.read_latency.extend_from_slice(&o.read_latency);
        for e in &o.errors {
            if self.errors.len() < 5 && !self.errors.contains(e) {
                self.errors.push(e.clone());
            }
        }
    }
}

/// Subscribers of this process.
pub struct Group {
    slots: Vec<Arc<Slot>>,
    tasks: Vec<JoinHandle<()>>,
    ctx: Arc<Ctx>,
    storm: watch::Sender<u64>,
    channels: usize,
    /// Counters when publishing started (`rx`, `tx`, `requests`, `empty`): the report counts
    /// the window only, so connection setup and idle polls before it do not count.
    base: [u64; 4],
}

fn headers(a: &Args) -> anyhow::Result<Vec<(String, String)>> {
    a.headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--header {h:?} is not `Name: value`"))
        })
        .collect()
}

impl Group {
    /// Starts `count` subscribers numbered from `first`; they connect in the background, at
    /// most `--connect-concurrency` at a time.
    pub fn start(a: &Args, targets: Targets, first: usize, count: usize) -> anyhow::Result<Group> {
        let (storm, storm_rx) = watch::channel(0);
        let ctx = Arc::new(Ctx {
            server: a.server,
            transport: a.transport,
            targets,
            headers: headers(a)?,
            source: a.source_ip,
            poll_interval: a.poll_interval,
            latency: Latency::new(16),
            storm: storm_rx,
            gate: Arc::new(Semaphore::new(a.connect_concurrency.max(1))),
        });
        let slow_every = if a.slow > 0.0 {
            (100.0 / a.slow).round().max(1.0) as usize
        } else {
            0
        };
        let mut slots = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        for g in first..first + count {
            let slow = slow_every > 0 && g % slow_every == slow_every - 1;
            let slot = Arc::new(Slot::new((g % a.channels) as u32, slow, None));
            tasks.push(tokio::spawn(subscriber::run(ctx.clone(), slot.clone(), g)));
            slots.push(slot);
        }
        Ok(Group {
            slots,
            tasks,
            ctx,
            storm,
            channels: a.channels,
            base: [0; 4],
        })
    }

    /// Live counters.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot {
            floor: vec![u64::MAX; self.channels],
            ..Snapshot::default()
        };
        for slot in &self.slots {
            s.ready += u64::from(slot.ready.load(Relaxed));
            s.delivered += slot.delivered.load(Relaxed);
            s.rx += slot.io.rx.load(Relaxed);
            s.tx += slot.io.tx.load(Relaxed);
            s.reconnects += slot.reconnects.load(Relaxed);
            if !slot.slow {
                let f = &mut s.floor[slot.channel as usize];
                *f = (*f).min(slot.next.load(Relaxed));
            }
            if s.error.is_none() && !slot.ready.load(Relaxed) {
                s.error = slot.last_error.lock().ok().and_then(|e| e.clone());
            }
        }
        s
    }

    fn io_sums(&self) -> [u64; 4] {
        let mut b = [0; 4];
        for s in &self.slots {
            b[0] += s.io.rx.load(Relaxed);
            b[1] += s.io.tx.load(Relaxed);
            b[2] += s.requests.load(Relaxed);
            b[3] += s.empty.load(Relaxed);
        }
        b
    }

    /// Publishing starts: later counts of bytes, requests and empty answers are the window's.
    pub fn go(&mut self) {
        self.base = self.io_sums();
    }

    /// Drops every connection at once; subscribers resume with their cursors.
    pub fn storm(&self) {
        self.storm.send_modify(|n| *n += 1);
    }

    /// Waits (up to `drain`) until every reading subscriber has seq `last[channel]`, stops
    /// them all, and returns the figures. `storm_ns` is when a storm was started, if any.
    pub async fn finish(self, last: &[u64], drain: Duration, storm_ns: u64) -> Outcome {
        let deadline = Instant::now() + drain;
        loop {
            let behind = self
                .slots
                .iter()
                .any(|s| !s.slow && s.next.load(Relaxed) <= last[s.channel as usize]);
            if !behind || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for t in &self.tasks {
            t.abort();
        }
        let mut o = Outcome {
            subscribers: self.slots.len() as u64,
            ..Outcome::default()
        };
        let now = self.io_sums();
        (o.rx, o.tx, o.requests, o.empty) = (
            now[0] - self.base[0],
            now[1] - self.base[1],
            now[2] - self.base[2],
            now[3] - self.base[3],
        );
        for s in &self.slots {
            o.ready += u64::from(s.ready.load(Relaxed));
            o.reconnects += s.reconnects.load(Relaxed);
            if s.slow {
                o.slow += 1;
                continue;
            }
            let last = last[s.channel as usize];
            let t = s.tracker.lock().map(|t| t.clone()).unwrap_or_default();
            let lost = t.lost(last);
            o.delivered += s.delivered.load(Relaxed);
            o.expected += last;
            o.lost += lost;
            o.subscribers_with_loss += u64::from(lost > 0);
            o.duplicates += t.duplicates;
            o.reordered += t.reordered;
            o.resets += s.resets.load(Relaxed);
            o.garbage += s.garbage.load(Relaxed);
            o.last_delivery_ns = o.last_delivery_ns.max(s.last_ns.load(Relaxed));
            if storm_ns > 0 {
                match s.recovered_ns.load(Relaxed) {
                    0 => o.not_recovered += 1,
                    r => o.recovery_ns = o.recovery_ns.max(r.saturating_sub(storm_ns)),
                }
            }
            if let Some(e) = s.last_error.lock().ok().and_then(|e| e.clone()) {
                if o.errors.len() < 5 && !o.errors.contains(&e) {
                    o.errors.push(e);
                }
            }
        }
        let [arrival, read] = self.ctx.latency.merged();
        let pairs = |h: &hdrhistogram::Histogram<u64>| {
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect()
        };
        o.latency = pairs(&arrival);
        o.read_latency = pairs(&read);
        o
    }
}
