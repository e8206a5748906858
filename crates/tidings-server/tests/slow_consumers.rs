//! Slow consumers: a reader that stops never delays the publisher or healthy readers, and its
//! bounded queue overflows into the namespace's named policy.

mod common;

use std::time::{Duration, Instant};

use common::{channel, Kind, Server, Sub};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const CONFIG: &str = "queue_bytes = 65536\nmax_message_bytes = 32768\n\
[namespaces.cut]\nslow_consumer = \"disconnect\"\n\
[namespaces.drop]\nslow_consumer = \"drop_oldest\"\n\
[namespaces.latest]\nslow_consumer = \"latest_only\"\n";

const COUNT: usize = 300;
const SIZE: usize = 30_000;

/// An SSE subscriber with a tiny receive buffer that sends its request and then stops reading.
async fn stalled_reader(s: &Server, ch: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stream = sock.connect(s.addr).await.unwrap();
    let req = format!(
        "GET /sse/{ch} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        s.addr
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    stream
}

async fn sse_subscribers(s: &Server, ch: &str) -> u64 {
    let (_, v) = s.get_json(&format!("/api/channels/{ch}")).await;
    v["subscribers"]["sse"].as_u64().unwrap_or(0)
}

async fn wait_subscribers(s: &Server, ch: &str, n: u64) {
    for _ in 0..200 {
        if sse_subscribers(s, ch).await == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {n} SSE subscribers on {ch}");
}

/// Publishes COUNT big messages while a healthy SSE reader keeps up; returns the time taken
/// and the healthy reader, still connected.
async fn flood(s: &Server, ch: &str) -> (Duration, Sub) {
    let mut healthy = Sub::open(s, Kind::Sse, &[ch], None).await;
    wait_subscribers(s, ch, 2).await;
    let filler = "x".repeat(SIZE);
    let started = Instant::now();
    // The healthy reader's own queue holds two messages, so the publisher stays at most two
    // ahead of it: whatever happens to the stalled reader, the healthy one must keep flowing.
    let received = std::sync::atomic::AtomicUsize::new(0);
    let reader = async {
        let mut got = Vec::new();
        while got.len() < COUNT {
            let v: Value = healthy.next(s).await;
            got.push(v["data"].as_str().unwrap()[..8].to_owned());
            received.store(got.len(), std::sync::atomic::Ordering::Release);
        }
        got
    };
    let publisher = async {
        for i in 0..COUNT {
            while i > received.load(std::sync::atomic::Ordering::Acquire) + 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            s.publish(ch, &format!("{i:07}:{filler}")).await;
        }
        started.elapsed()
    };
    let (got, took) = tokio::join!(reader, publisher);
    let want: Vec<String> = (0..COUNT).map(|i| format!("{i:07}:")).collect();
    assert_eq!(got, want, "the healthy reader got everything, in order");
    (took, healthy)
}

/// Reads what the stalled socket holds until it goes quiet or closes; returns the data lines
/// and whether the response ended (the chunked terminator, or the socket closed).
async fn drain(mut stream: TcpStream) -> (Vec<String>, bool) {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let closed = loop {
        match tokio::time::timeout(Duration::from_millis(700), stream.read(&mut buf)).await {
            Ok(Ok(0)) => break true,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break true,
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&all);
    let closed = closed || text.ends_with("\r\n0\r\n\r\n");
    let lines = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| d.chars().take(7).collect())
        .collect();
    (lines, closed)
}

fn increasing(lines: &[String]) -> bool {
    lines.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_policy_cuts_the_stalled_reader_and_nobody_else() {
    let s = Server::start(CONFIG).await;
    let ch = format!("cut:{}", channel("slow"));
    let stalled = stalled_reader(&s, &ch).await;
    let (took, _healthy) = flood(&s, &ch).await;
    assert!(
        took < Duration::from_secs(20),
        "publisher was not held up: {took:?}"
    );
    let (_, v) = s.get("/metrics").await;
    assert!(String::from_utf8_lossy(&v).contains("tidings_slow_consumer_disconnects_total"));
    let (lines, closed) = drain(stalled).await;
    assert!(closed, "the stalled response was ended");
    assert!(
        lines.len() < COUNT && increasing(&lines),
        "it got a prefix in order: {}",
        lines.len()
    );
    wait_subscribers(&s, &ch, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_keeps_the_reader_with_the_newest_messages() {
    let s = Server::start(CONFIG).await;
    let ch = format!("drop:{}", channel("slow"));
    let stalled = stalled_reader(&s, &ch).await;
    let (_, _healthy) = flood(&s, &ch).await;
    assert_eq!(sse_subscribers(&s, &ch).await, 2, "still connected");
    let (lines, closed) = drain(stalled).await;
    assert!(!closed);
    assert!(lines.len() < COUNT, "some were dropped");
    assert!(increasing(&lines), "what arrives is in order");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("0000299"),
        "the newest arrives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_only_coalesces_to_the_newest_state() {
    let s = Server::start(CONFIG).await;
    let ch = format!("latest:{}", channel("slow"));
    let stalled = stalled_reader(&s, &ch).await;
    let (_, _healthy) = flood(&s, &ch).await;
    assert_eq!(sse_subscribers(&s, &ch).await, 2, "still connected");
    let (lines, closed) = drain(stalled).await;
    assert!(!closed);
    assert!(lines.len() < COUNT / 2, "coalesced: {}", lines.len());
    assert!(increasing(&lines));
    assert_eq!(lines.last().map(String::as_str), Some("0000299"));
}
