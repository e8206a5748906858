//! Redis going away mid-stream: fail fast, report unhealthy, recover without losing anything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidings_core::{Broker, BrokerError, Hub, Item, Namespaces, Subscription, Transport};
use tidings_protocol::{ChannelName, Payload, Position, ResetReason};
use tidings_redis::testing::RedisServer;
use tidings_redis::{RedisBroker, RedisConfig};

fn ch(name: &str) -> ChannelName {
    ChannelName::new(&format!("{name}-{:x}", rand::random::<u32>())).unwrap()
}

async fn node(server: &RedisServer, ping: Duration) -> Arc<RedisBroker> {
    RedisBroker::connect(RedisConfig {
        url: Some(server.url()),
        timeout: Duration::from_secs(1),
        ping_interval: ping,
        ..Default::default()
    })
    .await
    .expect("connect")
}

async fn until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes until one is accepted (Redis may still be coming back).
async fn publish_retrying(hub: &Hub, c: &ChannelName, data: &str) -> Position {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match hub.publish(c, None, Payload::text(data)).await {
            Ok(m) => return m.msg.position,
            Err(e) => assert!(Instant::now() < deadline, "publish never recovered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn collect(sub: &mut Subscription, messages: usize) -> Vec<Item> {
    let mut out = Vec::new();
    let count = |out: &[Item]| out.iter().filter(|i| matches!(i, Item::Message(_))).count();
    while count(&out) < messages {
        tokio::time::timeout(Duration::from_secs(20), sub.next_batch(&mut out))
            .await
            .expect("delivery within 20 s")
            .expect("subscription alive");
    }
    out
}

fn positions(items: &[Item]) -> Vec<Position> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Message(m) => Some(m.msg.position),
            Item::Reset(_) => None,
        })
        .collect()
}

async fn restart(server: RedisServer) -> RedisServer {
    tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.restart().expect("restart redis-server");
        server
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_stream_loses_no_accepted_message() {
    let mut server = RedisServer::start_persistent().unwrap();
    let a = node(&server, Duration::from_millis(200)).await;
    let b = node(&server, Duration::from_millis(100)).await;
    let (hub_a, hub_b) = (
        Hub::new(a.clone(), Namespaces::default()),
        Hub::new(b.clone(), Namespaces::default()),
    );
    let c = ch("outage");
    let mut sub = Subscription::new(hub_a.clone(), Transport::Sse, 1 << 20);
    sub.add(&c, None).await.unwrap();
    let mut accepted = Vec::new();
    for i in 1..=5 {
        accepted.push(publish_retrying(&hub_b, &c, &format!("m{i}")).await);
    }
    assert!(a.healthy() && b.healthy());

    server.stop();
    let t = Instant::now();
    let err = hub_b.publish(&c, None, Payload::text("lost")).await;
    assert!(
        matches!(
            err,
            Err(tidings_core::HubError::Broker(BrokerError::Unavailable(_)))
        ),
        "a publish during the outage fails: {err:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "and fails fast: {:?}",
        t.elapsed()
    );
    until("both nodes unhealthy", Duration::from_secs(5), || {
        !a.healthy() && !b.healthy()
    })
    .await;

    let server = restart(server).await;
    for i in 6..=10 {
        accepted.push(publish_retrying(&hub_b, &c, &format!("m{i}")).await);
    }
    let items = collect(&mut sub, accepted.len()).await;
    assert_eq!(
        positions(&items),
        accepted,
        "every accepted message, once, in order"
    );
    assert!(
        items.iter().all(|i| matches!(i, Item::Message(_))),
        "no reset: AOF kept the log"
    );
    assert_eq!(
        accepted.iter().map(|p| p.offset).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    until("both nodes healthy again", Duration::from_secs(15), || {
        a.healthy() && b.healthy()
    })
    .await;
    // Live delivery works again after recovery.
    let p = publish_retrying(&hub_b, &c, "m11").await;
    let items = collect(&mut sub, 1).await;
    assert_eq!(positions(&items), vec![p]);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_that_loses_data_resets_subscribers() {
    let server = RedisServer::start().unwrap();
    let a = node(&server, Duration::from_millis(200)).await;
    let hub = Hub::new(a.clone(), Namespaces::default());
    let c = ch("amnesia");
    let mut sub = Subscription::new(hub.clone(), Transport::Ws, 1 << 20);
    sub.add(&c, None).await.unwrap();
    let old = publish_retrying(&hub, &c, "m1").await;
    assert_eq!(positions(&collect(&mut sub, 1).await), vec![old]);

    let server = restart(server).await;
    let new = publish_retrying(&hub, &c, "n1").await;
    assert_ne!(
        new.epoch, old.epoch,
        "Redis lost the log, so the epoch changed"
    );
    let items = collect(&mut sub, 1).await;
    match &items[0] {
        Item::Reset(r) => {
            assert_eq!(r.reason, ResetReason::Epoch);
            assert_eq!(r.position.epoch, new.epoch);
        }
        other => panic!("expected a reset first, got {other:?}"),
    }
    assert_eq!(positions(&items), vec![new]);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pubsub_connection_is_recovered() {
    let server = RedisServer::start().unwrap();
    let a = node(&server, Duration::from_millis(200)).await;
    let b = node(&server, Duration::from_millis(200)).await;
    let hub_a = Hub::new(a.clone(), Namespaces::default());
    let hub_b = Hub::new(b.clone(), Namespaces::default());
    let c = ch("killed");
    let mut sub = Subscription::new(hub_a.clone(), Transport::Stream, 1 << 20);
    sub.add(&c, None).await.unwrap();
    let mut accepted = vec![publish_retrying(&hub_b, &c, "m1").await];
    server.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]).unwrap();
    for i in 2..=20 {
        accepted.push(publish_retrying(&hub_b, &c, &format!("m{i}")).await);
    }
    let items = collect(&mut sub, accepted.len()).await;
    assert_eq!(positions(&items), accepted);
    until("healthy", Duration::from_secs(5), || a.healthy()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_node_recovers_what_pubsub_missed() {
    let server = RedisServer::start().unwrap();
    let acl = |args: &[&str]| {
        let out = server.cli(&[&["ACL", "SETUSER"], args].concat()).unwrap();
        assert_eq!(out.trim(), "OK", "ACL SETUSER {args:?}");
    };
    // The publisher node logs in as its own user, so the subscriber's user can be made deaf.
    acl(&["pub", "on", ">secret", "~*", "&*", "+@all"]);
    let a = node(&server, Duration::from_millis(100)).await;
    let b = RedisBroker::connect(RedisConfig {
        url: Some(format!("redis://pub:secret@127.0.0.1:{}", server.port())),
        ..Default::default()
    })
    .await
    .unwrap();
    let hub_a = Hub::new(a.clone(), Namespaces::default());
    let hub_b = Hub::new(b.clone(), Namespaces::default());
    let c = ch("deaf");
    let mut sub = Subscription::new(hub_a.clone(), Transport::Sse, 1 << 20);
    sub.add(&c, None).await.unwrap();
    let first = publish_retrying(&hub_b, &c, "m1").await;
    assert_eq!(positions(&collect(&mut sub, 1).await), vec![first]);

    // Redis drops the subscriber's pub/sub connection and refuses to let it subscribe again.
    acl(&["default", "resetchannels"]);
    until("the deaf node to report it", Duration::from_secs(5), || {
        !a.healthy()
    })
    .await;
    let mut missed = Vec::new();
    for i in 2..=5 {
        missed.push(publish_retrying(&hub_b, &c, &format!("m{i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !sub.has_pending() && a.recovered_messages() == 0,
        "nothing can arrive yet"
    );

    // Once it may listen again, it recovers the missed messages with no new publish.
    acl(&["default", "allchannels"]);
    let items = collect(&mut sub, missed.len()).await;
    assert_eq!(positions(&items), missed);
    assert_eq!(
        a.recovered_messages(),
        4,
        "they came from the recovery read"
    );
    until("healthy again", Duration::from_secs(5), || a.healthy()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_no_redis_fails_fast_and_says_what_to_do() {
    let port = tidings_redis::testing::free_port().unwrap();
    let t = Instant::now();
    let err = RedisBroker::connect(RedisConfig {
        url: Some(format!("redis://127.0.0.1:{port}")),
        timeout: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .err()
    .expect("nothing listens there");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(matches!(
        err,
        tidings_redis::ConnectError::Unreachable { .. }
    ));
    assert!(
        err.to_string().contains("start Redis or fix redis.url"),
        "{err}"
    );
}
