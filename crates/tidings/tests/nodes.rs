//! Scale-out on Redis, end to end: several `tidings serve` processes on one private
//! `redis-server`, talked to with real clients of every transport.

#[path = "../../tidings-server/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{channel, entry, Kind, Server, Sub, ALL};
use serde_json::Value;
use tidings_redis::testing::RedisServer;

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

struct Node {
    child: Child,
    server: Server,
}

impl Node {
    fn start(redis: &RedisServer) -> Node {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("TIDINGS_DEMOS", "false")
            .env("TIDINGS_BROKER", "redis")
            .env("TIDINGS_REDIS__URL", redis.url())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tidings serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("tidings listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("address");
        Node {
            child,
            server: Server::attach(addr),
        }
    }

    /// kill -9.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn data(v: &Value) -> String {
    v["data"]
        .as_str()
        .unwrap_or_else(|| panic!("no data in {v}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_node_delivery_on_every_transport() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, b) = (Node::start(&redis), Node::start(&redis));
    for kind in ALL {
        let ch = channel("x-node");
        let first = a.server.publish(&ch, "m0").await;
        let mut sub = Sub::open(&b.server, kind, &[&ch], first["cursor"].as_str()).await;
        for i in 1..=10 {
            a.server.publish(&ch, &format!("m{i}")).await;
        }
        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(data(&sub.next(&b.server).await));
        }
        assert_eq!(
            got,
            (1..=10).map(|i| format!("m{i}")).collect::<Vec<_>>(),
            "{kind:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_from_three_nodes_give_everyone_the_same_gapless_order() {
    let redis = RedisServer::start().expect("redis-server");
    let nodes = [
        Node::start(&redis),
        Node::start(&redis),
        Node::start(&redis),
    ];
    let ch = channel("three");
    let first = nodes[0].server.publish(&ch, "start").await;
    let since = first["cursor"].as_str().expect("cursor").to_owned();
    let mut subs = Vec::new();
    for n in &nodes {
        subs.push(Sub::open(&n.server, Kind::Sse, &[&ch], Some(&since)).await);
    }
    let per = 40;
    let mut publishers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let url = n.server.url(&format!("/api/channels/{ch}/messages"));
        publishers.push(tokio::spawn(async move {
            let c =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http();
            for j in 0..per {
                let req = hyper::Request::post(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                        "n{i}-{j}"
                    ))))
                    .expect("request");
                assert_eq!(c.request(req).await.expect("publish").status(), 201);
            }
        }));
    }
    for p in publishers {
        p.await.expect("publisher");
    }
    let mut orders = Vec::new();
    for (sub, n) in subs.iter_mut().zip(&nodes) {
        let mut got = Vec::new();
        for k in 0..3 * per {
            let v = sub.next(&n.server).await;
            assert_eq!(
                v["offset"].as_u64(),
                Some(2 + k as u64),
                "gapless offsets: {v}"
            );
            got.push(data(&v));
        }
        orders.push(got);
    }
    assert_eq!(orders[0], orders[1]);
    assert_eq!(orders[1], orders[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_node_b_with_node_a_cursor_and_survives_kill_9() {
    let redis = RedisServer::start().expect("redis-server");
    let (mut a, b) = (Node::start(&redis), Node::start(&redis));
    let ch = channel("failover");
    let start = b.server.publish(&ch, "m0").await;
    let total = 120;
    let publisher = {
        let url = b.server.url(&format!("/api/channels/{ch}/messages"));
        tokio::spawn(async move {
            let c =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http();
            for i in 1..=total {
                let req = hyper::Request::post(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                        "m{i}"
                    ))))
                    .expect("request");
                assert_eq!(c.request(req).await.expect("publish").status(), 201);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let mut got: Vec<String> = Vec::new();
    let mut cursor = start["cursor"].as_str().expect("cursor").to_owned();
    let mut sub = Sub::open(&a.server, Kind::Stream, &[&ch], Some(&cursor)).await;
    while got.len() < 40 {
        let v = sub.next(&a.server).await;
        got.push(data(&v));
        cursor = entry(&v);
    }
    // Node A dies mid-stream; the client drains what it got, then resumes on B.
    a.kill();
    while let Some(v) = sub.next_within(&a.server, Duration::from_secs(2)).await {
        got.push(data(&v));
        cursor = entry(&v);
    }
    let mut sub = Sub::open(&b.server, Kind::Stream, &[&ch], Some(&cursor)).await;
    while got.len() < total {
        let v = sub.next(&b.server).await;
        got.push(data(&v));
    }
    publisher.await.expect("publisher");
    assert_eq!(
        got,
        (1..=total).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_publishes_loudly_and_subscribers_recover() {
    let mut redis = RedisServer::start_persistent().expect("redis-server");
    let node = Node::start(&redis);
    let s = &node.server;
    let ch = channel("outage");
    let first = s.publish(&ch, "m0").await;
    let mut sub = Sub::open(s, Kind::Sse, &[&ch], first["cursor"].as_str()).await;
    for i in 1..=5 {
        s.publish(&ch, &format!("m{i}")).await;
    }
    for i in 1..=5 {
        assert_eq!(data(&sub.next(s).await), format!("m{i}"));
    }
    redis.stop();
    let mut refused = 0;
    for _ in 0..3 {
        let res = s
            .request(
                "POST",
                &format!("/api/channels/{ch}/messages"),
                &[],
                "lost?",
            )
            .await;
        assert_eq!(res.status(), 503, "publishes fail loudly during the outage");
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .expect("body")
            .to_bytes();
        let v: Value = serde_json::from_slice(&body).expect("JSON error");
        assert_eq!(v["error"]["code"], "broker_unavailable");
        refused += 1;
    }
    assert_eq!(refused, 3);
    let (status, health) = s.get_json("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (503, Some("degraded")));
    redis.restart().expect("redis restarts");
    let mut healthy = false;
    for _ in 0..100 {
        if s.get_json("/healthz").await.0 == 200 {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "the node recovers when Redis is back");
    for i in 6..=10 {
        s.publish(&ch, &format!("m{i}")).await;
    }
    let mut got = Vec::new();
    for _ in 6..=10 {
        got.push(data(&sub.next(s).await));
    }
    assert_eq!(
        got,
        (6..=10).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "accepted messages arrive, refused ones never do"
    );
    assert!(
        !sub.ended,
        "the subscriber stayed connected through the outage"
    );
}
