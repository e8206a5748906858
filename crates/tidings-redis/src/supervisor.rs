//! The supervisor: one task per node that keeps `healthy()` true to life and heals subscriptions.
//!
//! Every `ping_interval`, and at once after a pub/sub disconnect, it pings both connections
//! (which also drives redis-rs' reconnection), re-sends every subscription Redis may have lost
//! (after a disconnect, or a failed `(S)SUBSCRIBE`/`(S)UNSUBSCRIBE`), and asks the fan-out task
//! to retry recoveries that failed. `healthy()` is false while either connection fails its
//! ping or a subscription cannot be restored: a node that cannot listen cannot deliver.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Weak;

use redis::{PushInfo, PushKind, Value};
use tidings_core::BrokerError;
use tokio::sync::watch;

use crate::broker::RedisBroker;
use crate::conn::Conn;
use crate::fanout::RETRY_KIND;

impl RedisBroker {
    /// Channels whose Redis subscription may not match what is wanted.
    pub(crate) async fn unsynced(&self) -> Vec<String> {
        let generation = self.fan.generation.load(Ordering::Acquire);
        let mut out: Vec<String> = {
            let chans = self.fan.chans.lock();
            chans.keys().cloned().collect()
        };
        let mut extra = Vec::new();
        for shard in self.fan.confirmed.iter() {
            let confirmed = shard.lock().await;
            out.retain(|c| confirmed.get(c) != Some(&Some(generation)));
            extra.extend(confirmed.keys().cloned());
        }
        let chans = self.fan.chans.lock();
        out.extend(extra.into_iter().filter(|c| !chans.contains_key(c)));
        out
    }

    /// Pings one connection, recording the outcome in `ok`.
    async fn ping(&self, conn: &Conn, ok: &AtomicBool) -> Result<(), BrokerError> {
        let mut r = Ok(());
        // A reconnect that already gave up fails the first ping at once and starts a fresh
        // reconnect, which the second ping waits for.
        for _ in 0..2 {
            let mut c = conn.clone();
            let cmd = redis::cmd("PING");
            r = self
                .timed(
                    ok,
                    "ping",
                    async move { cmd.query_async::<()>(&mut c).await },
                )
                .await;
            if r.is_ok() {
                break;
            }
        }
        r
    }

    /// Pings both connections, re-sends subscriptions Redis may have lost, and retries failed
    /// recoveries.
    async fn check(&self) {
        let (_, p) = tokio::join!(
            self.ping(&self.cmd, &self.cmd_ok),
            self.ping(&self.pubsub, &self.pubsub_ok)
        );
        if p.is_err() {
            return;
        }
        if self.fan.dirty.swap(false, Ordering::AcqRel) {
            for channel in self.unsynced().await {
                if let Err(e) = self.sync(&channel).await {
                    // A node that cannot listen cannot deliver: report it until this works.
                    self.pubsub_ok.store(false, Ordering::Release);
                    tracing::warn!(channel, error = %e, "re-subscribing failed; will retry");
                    return;
                }
            }
        }
        if self.fan.retry.swap(false, Ordering::AcqRel) {
            let names: Vec<String> = {
                let mut chans = self.fan.chans.lock();
                chans
                    .iter_mut()
                    .filter_map(|(c, s)| std::mem::take(&mut s.retry).then(|| c.clone()))
                    .collect()
            };
            let push = PushInfo {
                kind: PushKind::Other(RETRY_KIND.into()),
                data: names
                    .iter()
                    .map(|c| Value::BulkString(c.clone().into_bytes()))
                    .collect(),
            };
            if self.retry_tx.try_send(push).is_err() {
                let mut chans = self.fan.chans.lock();
                for c in &names {
                    if let Some(s) = chans.get_mut(c) {
                        s.retry = true;
                    }
                }
                self.fan.retry.store(true, Ordering::Release);
            }
        }
    }
}

/// The supervisor task: runs until the broker is dropped.
pub(crate) async fn supervise(weak: Weak<RedisBroker>, mut stop: watch::Receiver<()>) {
    let Some((every, wake)) = weak
        .upgrade()
        .map(|b| (b.config.ping_interval, b.wake.clone()))
    else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = wake.notified() => {}
            _ = stop.changed() => return,
        }
        let Some(b) = weak.upgrade() else { return };
        b.check().await;
    }
}
