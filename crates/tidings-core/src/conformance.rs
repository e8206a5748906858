//! The broker conformance suite, written once and run against every broker.
//!
//! Each function takes a fresh broker and panics on a contract violation. A broker crate runs
//! them all with [`broker_conformance!`](crate::broker_conformance):
//! ```ignore
//! tidings_core::broker_conformance!(async { my_broker().await });
//! ```
//! The suite covers positions (gapless offsets from 1, stable epochs, a new epoch on delete),
//! history (ranges, bounds by count, bytes and age), fan-out order under concurrent publishers,
//! and, through a real [`Hub`] and [`Subscription`], the resume seam between history and live.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tidings_protocol::{ChannelName, Payload, Position, ResetReason};

use crate::broker::{Broker, BrokerHandler, Range};
use crate::hub::{Hub, Transport};
use crate::options::{ChannelOptions, Namespaces};
use crate::outbox::Item;
use crate::published::Shared;
use crate::subscription::Subscription;

/// Generates one `#[tokio::test]` per conformance check, each with a broker from `$make`.
#[macro_export]
macro_rules! broker_conformance {
    ($make:expr) => {
        $crate::broker_conformance!(@tests $make;
            offsets_are_gapless_from_one, delete_starts_a_new_epoch, history_ranges,
            history_is_bounded_by_count_and_bytes, history_expires_by_age,
            fan_out_is_ordered_under_concurrent_publishers, channels_and_stats,
            resume_has_no_gap_and_no_duplicate_at_the_seam, stale_cursors_get_a_reset,
            subscriptions_restore_order_under_racing_publishers);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let broker: ::std::sync::Arc<dyn $crate::Broker> = $make.await;
                $crate::conformance::$name(broker).await;
            }
        )*
    };
}

fn ch(name: &str) -> ChannelName {
    ChannelName::new(&format!("{name}-{:x}", rand::random::<u32>())).expect("valid test channel")
}

fn text(s: impl Into<String>) -> Payload {
    Payload::text(s)
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<HashMap<String, Vec<u64>>>,
}

impl BrokerHandler for Recorder {
    fn on_message(&self, msg: &Shared) {
        self.seen
            .lock()
            .entry(msg.msg.channel.to_string())
            .or_default()
            .push(msg.msg.position.offset);
    }
    fn on_reset(&self, _: &ChannelName, _: Position, _: ResetReason) {}
}

/// Offsets start at 1 and have no gaps; the epoch is stable between publishes.
pub async fn offsets_are_gapless_from_one(b: Arc<dyn Broker>) {
    let c = ch("gapless");
    let o = ChannelOptions::default();
    let mut epoch = None;
    for i in 1..=20u64 {
        let m = b
            .publish(&c, None, text(format!("m{i}")), &o)
            .await
            .expect("publish");
        assert_eq!(m.msg.position.offset, i);
        assert_eq!(
            *epoch.get_or_insert(m.msg.position.epoch),
            m.msg.position.epoch
        );
    }
}

/// Delete drops history and starts a new epoch at offset 0.
pub async fn delete_starts_a_new_epoch(b: Arc<dyn Broker>) {
    let c = ch("delete");
    let o = ChannelOptions::default();
    let m = b.publish(&c, None, text("a"), &o).await.expect("publish");
    let top = b.delete(&c).await.expect("delete");
    assert_ne!(top.epoch, m.msg.position.epoch);
    assert_eq!(top.offset, 0);
    let h = b
        .history(
            &c,
            Range::After {
                after: 0,
                limit: 10,
            },
            &o,
        )
        .await
        .expect("history");
    assert!(h.messages.is_empty());
    let m2 = b.publish(&c, None, text("b"), &o).await.expect("publish");
    assert_eq!(
        m2.msg.position,
        Position {
            epoch: top.epoch,
            offset: 1
        }
    );
}

/// `After` returns the oldest messages past an offset; `Latest` the newest.
pub async fn history_ranges(b: Arc<dyn Broker>) {
    let c = ch("ranges");
    let o = ChannelOptions::default();
    for i in 1..=10 {
        b.publish(&c, Some("ev".into()), text(format!("m{i}")), &o)
            .await
            .expect("publish");
    }
    let h = b
        .history(&c, Range::After { after: 3, limit: 4 }, &o)
        .await
        .expect("history");
    let offs: Vec<u64> = h.messages.iter().map(|m| m.msg.position.offset).collect();
    assert_eq!(offs, vec![4, 5, 6, 7]);
    assert_eq!(h.top.offset, 10);
    assert_eq!(h.first, 1);
    assert_eq!(h.messages[0].msg.data.as_text(), Some("m4"));
    assert_eq!(h.messages[0].msg.event.as_deref(), Some("ev"));
    let h = b
        .history(&c, Range::Latest { limit: 2 }, &o)
        .await
        .expect("history");
    let offs: Vec<u64> = h.messages.iter().map(|m| m.msg.position.offset).collect();
    assert_eq!(offs, vec![9, 10]);
    let h = b
        .history(&c, Range::Latest { limit: 0 }, &o)
        .await
        .expect("history");
    assert!(h.messages.is_empty());
    assert_eq!(h.top.offset, 10);
    let fresh = ch("fresh");
    let h = b
        .history(&fresh, Range::Latest { limit: 1 }, &o)
        .await
        .expect("history");
    assert_eq!((h.top.offset, h.first, h.messages.len()), (0, 1, 0));
}

/// History keeps at most `history_size` messages and `history_bytes` bytes.
pub async fn history_is_bounded_by_count_and_bytes(b: Arc<dyn Broker>) {
    let c = ch("bounded");
    let o = ChannelOptions {
        history_size: 5,
        ..Default::default()
    };
    for i in 1..=12 {
        b.publish(&c, None, text(format!("m{i}")), &o)
            .await
            .expect("publish");
    }
    let h = b
        .history(
            &c,
            Range::After {
                after: 0,
                limit: 100,
            },
            &o,
        )
        .await
        .expect("history");
    let offs: Vec<u64> = h.messages.iter().map(|m| m.msg.position.offset).collect();
    assert_eq!(offs, vec![8, 9, 10, 11, 12]);
    assert_eq!(h.first, 8);
    let c = ch("bytes");
    let o = ChannelOptions {
        history_bytes: 3 * 1200,
        ..Default::default()
    };
    for _ in 0..10 {
        b.publish(&c, None, text("x".repeat(1000)), &o)
            .await
            .expect("publish");
    }
    let h = b
        .history(
            &c,
            Range::After {
                after: 0,
                limit: 100,
            },
            &o,
        )
        .await
        .expect("history");
    assert!(
        h.messages.len() <= 3 && !h.messages.is_empty(),
        "kept {}",
        h.messages.len()
    );
    assert_eq!(h.messages.last().map(|m| m.msg.position.offset), Some(10));
}

/// Messages older than `history_ttl` leave history; positions keep counting.
pub async fn history_expires_by_age(b: Arc<dyn Broker>) {
    let c = ch("ttl");
    let o = ChannelOptions {
        history_ttl: Duration::from_secs(1),
        ..Default::default()
    };
    b.publish(&c, None, text("old"), &o).await.expect("publish");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let m = b.publish(&c, None, text("new"), &o).await.expect("publish");
    assert_eq!(m.msg.position.offset, 2);
    let h = b
        .history(
            &c,
            Range::After {
                after: 0,
                limit: 100,
            },
            &o,
        )
        .await
        .expect("history");
    let offs: Vec<u64> = h.messages.iter().map(|m| m.msg.position.offset).collect();
    assert_eq!(offs, vec![2]);
    assert_eq!(h.first, 2);
}

/// Concurrent publishers get distinct offsets; the handler sees each message once, and each
/// publisher's own messages (which complete one after another) in offset order. Racing
/// publishes may reach the handler in either order ([`BrokerHandler::on_message`]).
pub async fn fan_out_is_ordered_under_concurrent_publishers(b: Arc<dyn Broker>) {
    let rec = Arc::new(Recorder::default());
    let weak: std::sync::Weak<dyn BrokerHandler> =
        Arc::downgrade(&(rec.clone() as Arc<dyn BrokerHandler>));
    b.set_handler(weak);
    let c = ch("order");
    b.subscribe(&c).await.expect("subscribe");
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (b, c) = (b.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let o = ChannelOptions::default();
            let mut offs = Vec::new();
            for i in 0..50 {
                offs.push(
                    b.publish(&c, None, text(format!("{t}-{i}")), &o)
                        .await
                        .expect("publish")
                        .msg
                        .position
                        .offset,
                );
            }
            offs
        }));
    }
    let mut per_task = Vec::new();
    for t in tasks {
        per_task.push(t.await.expect("task"));
    }
    let mut all: Vec<u64> = per_task.iter().flatten().copied().collect();
    all.sort();
    assert_eq!(all, (1..=200).collect::<Vec<_>>());
    for _ in 0..100 {
        if rec.seen.lock().get(c.as_str()).map(Vec::len) == Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = rec.seen.lock().get(c.as_str()).cloned().unwrap_or_default();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        (1..=200).collect::<Vec<_>>(),
        "fan-out incomplete or duplicated"
    );
    for offs in &per_task {
        let order: Vec<u64> = seen.iter().copied().filter(|o| offs.contains(o)).collect();
        assert_eq!(&order, offs, "one publisher's messages out of order");
    }
    b.unsubscribe(&c).await.expect("unsubscribe");
}

/// Channels with history are listed, and stats report position and size.
pub async fn channels_and_stats(b: Arc<dyn Broker>) {
    let c = ch("stats");
    let o = ChannelOptions::default();
    b.publish(&c, None, text("abc"), &o).await.expect("publish");
    b.publish(&c, None, text("def"), &o).await.expect("publish");
    assert!(b.channels().await.expect("channels").contains(&c));
    let s = b.stats(&c).await.expect("stats").expect("channel exists");
    assert_eq!((s.top.offset, s.history_len), (2, 2));
    assert!(s.history_bytes >= 6);
}

async fn collect(sub: &mut Subscription, want: usize) -> Vec<Item> {
    let mut out = Vec::new();
    while out.len() < want {
        tokio::time::timeout(Duration::from_secs(10), sub.next_batch(&mut out))
            .await
            .expect("delivery within 10 s")
            .expect("subscription alive");
    }
    out
}

fn offsets(items: &[Item]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Message(m) => Some(m.msg.position.offset),
            Item::Reset(_) => None,
        })
        .collect()
}

/// Through a real hub: a subscriber resuming from a cursor while another task publishes gets
/// every message exactly once, in order.
pub async fn resume_has_no_gap_and_no_duplicate_at_the_seam(b: Arc<dyn Broker>) {
    let hub = Hub::new(b, Namespaces::default());
    let c = ch("seam");
    let first = hub.publish(&c, None, text("m1")).await.expect("publish");
    let since = first.msg.position;
    let publisher = {
        let (hub, c) = (hub.clone(), c.clone());
        tokio::spawn(async move {
            for i in 2..=60 {
                hub.publish(&c, None, text(format!("m{i}")))
                    .await
                    .expect("publish");
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut sub = Subscription::new(hub.clone(), Transport::Sse, 1 << 20);
    sub.add(&c, Some(since)).await.expect("subscribe");
    let items = collect(&mut sub, 59).await;
    publisher.await.expect("publisher");
    assert_eq!(offsets(&items), (2..=60).collect::<Vec<_>>());
    assert_eq!(sub.position(&c).map(|p| p.offset), Some(60));
}

/// Through a real hub: while four tasks publish to one channel at once (on a multi-threaded
/// runtime, so their hand-offs to the hub race), a subscriber gets every message exactly once
/// and in offset order, and the first of them without waiting for the rest.
pub async fn subscriptions_restore_order_under_racing_publishers(b: Arc<dyn Broker>) {
    let hub = Hub::new(b, Namespaces::default());
    let c = ch("race");
    let mut sub = Subscription::new(hub.clone(), Transport::Ws, 1 << 22);
    sub.add(&c, None).await.expect("subscribe");
    let publishers: Vec<_> = (0..4)
        .map(|t| {
            let (hub, c) = (hub.clone(), c.clone());
            tokio::spawn(async move {
                for i in 0..250 {
                    hub.publish(&c, None, text(format!("{t}-{i}")))
                        .await
                        .expect("publish");
                }
            })
        })
        .collect();
    let items = collect(&mut sub, 1000).await;
    for p in publishers {
        p.await.expect("publisher");
    }
    assert_eq!(offsets(&items), (1..=1000).collect::<Vec<_>>());
    assert!(
        items.iter().all(|i| matches!(i, Item::Message(_))),
        "no reset"
    );
}

/// A cursor from another epoch, or older than history, gets a reset before what remains.
pub async fn stale_cursors_get_a_reset(b: Arc<dyn Broker>) {
    let hub = Hub::new(b, Namespaces::default());
    let c = ch("stale");
    let m1 = hub.publish(&c, None, text("m1")).await.expect("publish");
    hub.publish(&c, None, text("m2")).await.expect("publish");
    let foreign = Position {
        epoch: tidings_protocol::Epoch(m1.msg.position.epoch.0 ^ 1),
        offset: 1,
    };
    let mut sub = Subscription::new(hub.clone(), Transport::Ws, 1 << 20);
    sub.add(&c, Some(foreign)).await.expect("subscribe");
    let items = collect(&mut sub, 3).await;
    match &items[0] {
        Item::Reset(r) => {
            assert_eq!(r.reason, ResetReason::Epoch);
            assert_eq!(
                r.position,
                Position {
                    epoch: m1.msg.position.epoch,
                    offset: 0
                }
            );
        }
        other => panic!("expected a reset first, got {other:?}"),
    }
    assert_eq!(offsets(&items), vec![1, 2]);

    let c = ch("expired");
    let o = ChannelOptions {
        history_size: 2,
        ..Default::default()
    };
    let hub = Hub::new(
        hub.broker().clone(),
        Namespaces {
            default: o,
            by_name: Default::default(),
        },
    );
    let m1 = hub.publish(&c, None, text("m1")).await.expect("publish");
    for i in 2..=5 {
        hub.publish(&c, None, text(format!("m{i}")))
            .await
            .expect("publish");
    }
    let mut sub = Subscription::new(hub.clone(), Transport::Ws, 1 << 20);
    sub.add(&c, Some(m1.msg.position)).await.expect("subscribe");
    let items = collect(&mut sub, 3).await;
    match &items[0] {
        Item::Reset(r) => {
            assert_eq!(r.reason, ResetReason::Expired);
            assert_eq!(r.position.offset, 3);
        }
        other => panic!("expected a reset first, got {other:?}"),
    }
    assert_eq!(offsets(&items), vec![4, 5]);
}
