//! Several Tidings nodes (several `RedisBroker`s) on one private Redis.

use std::sync::Arc;
use std::time::Duration;

use tidings_core::broker::Range;
use tidings_core::{Broker, ChannelOptions, Hub, Item, Namespaces, Subscription, Transport};
use tidings_protocol::{ChannelName, Payload, ResetReason};
use tidings_redis::testing::{Event, Recorder, RedisServer};
use tidings_redis::{RedisBroker, RedisConfig};

fn ch(name: &str) -> ChannelName {
    ChannelName::new(&format!("{name}-{:x}", rand::random::<u32>())).unwrap()
}

async fn node(server: &RedisServer) -> Arc<RedisBroker> {
    RedisBroker::connect(RedisConfig {
        url: Some(server.url()),
        ..Default::default()
    })
    .await
    .expect("connect")
}

fn text(s: impl Into<String>) -> Payload {
    Payload::text(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_on_one_node_reaches_the_other() {
    let server = RedisServer::start().unwrap();
    let (a, b) = (node(&server).await, node(&server).await);
    let (ra, rb) = (Recorder::install(&*a), Recorder::install(&*b));
    let c = ch("cross");
    b.subscribe(&c).await.unwrap();
    let o = ChannelOptions::default();
    let m = a
        .publish(
            &c,
            Some("ev".into()),
            Payload::Binary(vec![0, 1, 255].into()),
            &o,
        )
        .await
        .unwrap();
    assert!(rb.wait_for(&c, 1, Duration::from_secs(5)).await);
    let Event::Message(got) = &rb.events(&c)[0] else {
        panic!("expected a message")
    };
    assert_eq!(got.msg, m.msg, "the notice carries the whole message");
    assert!(
        ra.offsets(&c).is_empty(),
        "a node without subscribers gets nothing"
    );

    let top = a.delete(&c).await.unwrap();
    for _ in 0..500 {
        if rb.events(&c).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match rb.events(&c).get(1) {
        Some(Event::Reset(_, p, ResetReason::Deleted)) => assert_eq!(*p, top),
        other => panic!("expected a deleted reset, got {other:?}"),
    }
    let m2 = a.publish(&c, None, text("after"), &o).await.unwrap();
    assert!(rb.wait_for(&c, 2, Duration::from_secs(5)).await);
    assert_eq!(m2.msg.position.epoch, top.epoch);
    assert_eq!(rb.offsets(&c), vec![1, 1]);

    b.unsubscribe(&c).await.unwrap();
    a.publish(&c, None, text("unheard"), &o).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rb.offsets(&c).len(), 2, "no delivery after unsubscribe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_on_three_nodes_get_gapless_offsets() {
    let server = RedisServer::start().unwrap();
    let nodes = [
        node(&server).await,
        node(&server).await,
        node(&server).await,
    ];
    let watcher = node(&server).await;
    let seen = Recorder::install(&*watcher);
    let c = ch("gapless");
    watcher.subscribe(&c).await.unwrap();
    let mut tasks = Vec::new();
    for n in &nodes {
        for t in 0..3 {
            let (n, c) = (n.clone(), c.clone());
            tasks.push(tokio::spawn(async move {
                let o = ChannelOptions::default();
                let mut offs = Vec::new();
                for i in 0..40 {
                    let m = n.publish(&c, None, text(format!("{t}-{i}")), &o).await;
                    offs.push(m.expect("publish").msg.position.offset);
                }
                offs
            }));
        }
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    assert_eq!(all, (1..=360).collect::<Vec<_>>());
    assert!(seen.wait_for(&c, 360, Duration::from_secs(10)).await);
    assert_eq!(seen.offsets(&c), (1..=360).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_from_one_node_resumes_on_another() {
    let server = RedisServer::start().unwrap();
    let a = Hub::new(node(&server).await, Namespaces::default());
    let b = Hub::new(node(&server).await, Namespaces::default());
    let c = ch("resume");
    let m1 = a.publish(&c, None, text("m1")).await.unwrap();
    a.publish(&c, None, text("m2")).await.unwrap();
    let mut sub = Subscription::new(b.clone(), Transport::Sse, 1 << 20);
    sub.add(&c, Some(m1.msg.position)).await.unwrap();
    a.publish(&c, None, text("m3")).await.unwrap();
    let mut out = Vec::new();
    while out.len() < 2 {
        tokio::time::timeout(Duration::from_secs(5), sub.next_batch(&mut out))
            .await
            .expect("delivery")
            .unwrap();
    }
    let offs: Vec<u64> = out
        .iter()
        .filter_map(|i| match i {
            Item::Message(m) => Some(m.msg.position.offset),
            Item::Reset(_) => None,
        })
        .collect();
    assert_eq!(offs, vec![2, 3]);
    let h = b.history(&c, Range::Latest { limit: 10 }).await.unwrap();
    assert_eq!(h.top, sub.position(&c).unwrap());
}

fn numsub(server: &RedisServer, channel: &str) -> String {
    let name = format!("tidings:{{{channel}}}:pub");
    let out = server.cli(&["PUBSUB", "NUMSUB", &name]).unwrap();
    out.lines().nth(1).unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_and_unsubscribe_races_settle_on_the_reference_count() {
    let server = RedisServer::start().unwrap();
    let b = node(&server).await;
    let c = ch("race");
    b.subscribe(&c).await.unwrap();
    for _ in 0..20 {
        // The hub's 1→0 unsubscribe runs in a spawned task, so it can race the next 0→1.
        let (u, s) = tokio::join!(b.unsubscribe(&c), b.subscribe(&c));
        u.unwrap();
        s.unwrap();
    }
    assert_eq!(numsub(&server, &c), "1", "still subscribed once");
    let o = ChannelOptions::default();
    let r = Recorder::install(&*b);
    b.publish(&c, None, text("x"), &o).await.unwrap();
    assert!(r.wait_for(&c, 1, Duration::from_secs(5)).await);
    b.unsubscribe(&c).await.unwrap();
    assert_eq!(numsub(&server, &c), "0", "unsubscribed at zero");
}

/// A handler that blocks while the test holds its gate, so the push queue backs up.
#[derive(Default)]
struct Gated {
    gate: std::sync::Mutex<()>,
    seen: std::sync::Mutex<Vec<u64>>,
}

impl tidings_core::BrokerHandler for Gated {
    fn on_message(&self, msg: &tidings_core::Shared) {
        let _open = self.gate.lock();
        self.seen.lock().unwrap().push(msg.msg.position.offset);
    }
    fn on_reset(&self, _: &ChannelName, _: tidings_protocol::Position, _: ResetReason) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
// Holding the gate across awaits is the point: the fan-out task stays stuck meanwhile.
#[allow(clippy::await_holding_lock)]
async fn an_overflowing_push_queue_recovers_from_history() {
    let server = RedisServer::start().unwrap();
    let slow = RedisBroker::connect(RedisConfig {
        url: Some(server.url()),
        push_queue: 4,
        ..Default::default()
    })
    .await
    .unwrap();
    let publisher = node(&server).await;
    let handler = Arc::new(Gated::default());
    let weak: std::sync::Weak<dyn tidings_core::BrokerHandler> =
        Arc::downgrade(&(handler.clone() as Arc<dyn tidings_core::BrokerHandler>));
    slow.set_handler(weak);
    let c = ch("overflow");
    slow.subscribe(&c).await.unwrap();
    let o = ChannelOptions::default();
    {
        let _closed = handler.gate.lock().unwrap();
        for i in 1..=40 {
            publisher
                .publish(&c, None, text(format!("{i}")), &o)
                .await
                .unwrap();
        }
        // Let the pushes reach the full queue while the fan-out task is stuck.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while handler.seen.lock().unwrap().len() < 40 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*handler.seen.lock().unwrap(), (1..=40).collect::<Vec<_>>());
    assert!(
        slow.recovered_messages() > 0,
        "the dropped pushes came from history"
    );
}
