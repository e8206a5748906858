//! The publisher: POSTs stamped payloads over a few keep-alive connections.
//!
//! Channels are dealt round-robin to `--publishers` workers. At a fixed rate, round `k` of a
//! worker is due at `start + (k-1)/rate` and publishes seq `k` on each of its channels; a
//! worker that falls behind publishes late rounds back to back (the report shows the achieved
//! rate). With `--rate 0`, a channel's next seq goes out only while it is at most `max_ahead`
//! past the channel's slowest subscriber (`floor`, kept fresh by the coordinator).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::BytesMut;
use tokio::time::Instant;

use crate::args::Server;
use crate::http1::{self, Conn};
use crate::net::{self, Counters};
use crate::payload::{self, Stamp};
use crate::slot::now_ns;
use crate::target::Url;

/// Settings of a publisher.
pub struct Plan {
    pub server: Server,
    pub urls: Vec<Url>,
    pub size: usize,
    /// Messages per second per channel; 0 means as fast as delivery allows.
    pub rate: f64,
    pub max_ahead: u64,
    pub workers: usize,
    pub api_key: Option<String>,
}

/// What the publisher has done, readable while it runs.
pub struct Progress {
    /// Last seq published, per channel.
    pub last: Vec<AtomicU64>,
    pub published: AtomicU64,
    pub io: Arc<Counters>,
    /// Per channel: every subscriber has received all seqs below this (maintained by the
    /// coordinator; u64::MAX when the channel has no subscriber to wait for).
    pub floor: Vec<AtomicU64>,
}

impl Progress {
    /// State for `channels` channels.
    pub fn new(channels: usize) -> Self {
        Progress {
            last: (0..channels).map(|_| AtomicU64::new(0)).collect(),
            published: AtomicU64::new(0),
            io: Arc::default(),
            floor: (0..channels).map(|_| AtomicU64::new(1)).collect(),
        }
    }
}

struct Publisher {
    conn: Option<Conn>,
    buf: Vec<u8>,
    body: BytesMut,
}

impl Publisher {
    async fn publish(
        &mut self,
        plan: &Plan,
        p: &Progress,
        ch: usize,
        seq: u64,
    ) -> anyhow::Result<()> {
        let url = &plan.urls[ch];
        if self.conn.is_none() {
            self.conn = Some(Conn::new(net::connect(url.addr, None, p.io.clone()).await?));
        }
        let stamp = Stamp {
            channel: ch as u32,
            seq,
            sent_ns: now_ns(),
        };
        payload::encode(stamp, plan.size, &mut self.buf);
        let auth = plan.api_key.as_ref().map(|k| format!("Bearer {k}"));
        let mut headers = vec![("Content-Type", "text/plain")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        let req = http1::request("POST", &url.target, &url.authority, &headers, &self.buf);
        let conn = self.conn.as_mut().context("no connection")?;
        let sent = async {
            conn.send(&req).await?;
            let head = conn.head().await?;
            self.body.clear();
            conn.body(&head, &mut self.body).await?;
            Ok::<_, anyhow::Error>(head)
        }
        .await;
        let head = match sent {
            Ok(h) => h,
            Err(e) => {
                self.conn = None;
                return Err(e.context(format!("publishing to {}", url.to_text())));
            }
        };
        if !(200..300).contains(&head.status) {
            let text = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned();
            let hint = match (head.status, plan.server) {
                (401 | 403, Server::Tidings) => {
                    "; pass --api-key (or TIDINGS_API_KEY) with the server's api_key"
                }
                (404, _) => "; check --publish-url (or --server)",
                _ => "",
            };
            bail!(
                "publish to {} answered {}: {}{hint}",
                url.to_text(),
                head.status,
                text.trim()
            );
        }
        if head
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            self.conn = None;
        }
        p.last[ch].store(seq, Relaxed);
        p.published.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Publishes, retrying once on a fresh connection (keep-alive connections may be closed
    /// by the server between requests).
    async fn publish_retry(
        &mut self,
        plan: &Plan,
        p: &Progress,
        ch: usize,
        seq: u64,
    ) -> anyhow::Result<()> {
        match self.publish(plan, p, ch, seq).await {
            Err(e) if self.conn.is_none() && format!("{e:#}").contains("closed the connection") => {
                self.publish(plan, p, ch, seq).await
            }
            r => r,
        }
    }
}

/// Publishes until `until`; returns when every worker has stopped.
pub async fn run(
    plan: Arc<Plan>,
    p: Arc<Progress>,
    start: Instant,
    until: Instant,
) -> anyhow::Result<()> {
    let workers = plan.workers.clamp(1, plan.urls.len().max(1));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let channels: Vec<usize> = (w..plan.urls.len()).step_by(workers).collect();
        let (plan, p) = (plan.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            worker(&plan, &p, &channels, start, until).await
        }));
    }
    for t in tasks {
        t.await.context("a publisher task panicked")??;
    }
    Ok(())
}

async fn worker(
    plan: &Plan,
    p: &Progress,
    channels: &[usize],
    start: Instant,
    until: Instant,
) -> anyhow::Result<()> {
    let mut publisher = Publisher {
        conn: None,
        buf: Vec::new(),
        body: BytesMut::new(),
    };
    if plan.rate > 0.0 {
        let period = Duration::from_secs_f64(1.0 / plan.rate);
        for k in 1u64.. {
            let due = start + period.mul_f64((k - 1) as f64);
            if due >= until {
                break;
            }
            tokio::time::sleep_until(due).await;
            for &ch in channels {
                publisher.publish_retry(plan, p, ch, k).await?;
            }
        }
        return Ok(());
    }
    let mut next: Vec<u64> = vec![1; channels.len()];
    while Instant::now() < until {
        let mut progressed = false;
        for (i, &ch) in channels.iter().enumerate() {
            let floor = p.floor[ch].load(Relaxed);
            if next[i] < floor.saturating_add(plan.max_ahead) {
                publisher.publish_retry(plan, p, ch, next[i]).await?;
                next[i] += 1;
                progressed = true;
            }
        }
        if !progressed {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }
    Ok(())
}
