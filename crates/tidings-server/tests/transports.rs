//! The delivery contract on every transport: order, lossless resume under a concurrent
//! publisher, resets for expired and foreign cursors, and multi-channel cursors.

mod common;

use std::time::Duration;

use common::{channel, entry, Kind, Server, Sub};
use serde_json::Value;

const SMALL: &str = "[namespaces.small]\nhistory_size = 3\n";

fn data(v: &Value) -> String {
    v["data"]
        .as_str()
        .unwrap_or_else(|| panic!("no text data in {v}"))
        .to_owned()
}

/// A cursor for a transport that does not carry positions (raw WebSocket): offsets are gapless,
/// so the position after `seen` messages past `start` is `start + seen`.
fn cursor_after(ch: &str, start: &Value, seen: usize) -> String {
    let offset = start["offset"].as_u64().expect("offset") + seen as u64;
    format!("{ch}~{}~{offset}", start["epoch"].as_str().expect("epoch"))
}

async fn receives_in_order(kind: Kind) {
    let s = Server::start("").await;
    let ch = channel("order");
    let first = s.publish(&ch, "m0").await;
    let mut sub = Sub::open(&s, kind, &[&ch], first["cursor"].as_str()).await;
    for i in 1..=20 {
        s.publish(&ch, &format!("m{i}")).await;
    }
    let mut got = Vec::new();
    for _ in 1..=20 {
        got.push(data(&sub.next(&s).await));
    }
    assert_eq!(
        got,
        (1..=20).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "{kind:?}"
    );
}

async fn resumes_without_loss_or_duplicate(kind: Kind) {
    let s = Server::start("").await;
    let ch = channel("resume");
    let start = s.publish(&ch, "m0").await;
    let total = 150;
    let publisher = {
        let url = s.url(&format!("/api/channels/{ch}/messages"));
        tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http();
            for i in 1..=total {
                let req = hyper::Request::post(&url)
                    .header("content-type", "text/plain")
                    .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                        "m{i}"
                    ))))
                    .expect("request");
                let res = client.request(req).await.expect("publish");
                assert_eq!(res.status(), 201);
                if i % 5 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    let mut got: Vec<String> = Vec::new();
    let mut cursor = start["cursor"].as_str().expect("cursor").to_owned();
    // Three connections: drop each after a share of the messages, resume with the cursor.
    for stop in [40, 90, total] {
        let mut sub = Sub::open(&s, kind, &[&ch], Some(&cursor)).await;
        while got.len() < stop {
            let v = sub.next(&s).await;
            assert!(v.get("type").is_none(), "{kind:?}: unexpected notice {v}");
            got.push(data(&v));
            cursor = if kind == Kind::WsRaw {
                cursor_after(&ch, &start, got.len())
            } else {
                entry(&v)
            };
        }
        drop(sub);
    }
    publisher.await.expect("publisher");
    assert_eq!(
        got,
        (1..=total).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "{kind:?}"
    );
}

async fn resets_on_stale_cursors(kind: Kind) {
    let s = Server::start(SMALL).await;
    let ch = format!("small:{}", channel("reset"));
    let first = s.publish(&ch, "m1").await;
    for i in 2..=10 {
        s.publish(&ch, &format!("m{i}")).await;
    }
    // Older than history (3 kept: 8, 9, 10).
    let mut sub = Sub::open(&s, kind, &[&ch], first["cursor"].as_str()).await;
    let r = sub.next(&s).await;
    assert_eq!(
        (
            r["type"].as_str(),
            r["reason"].as_str(),
            r["offset"].as_u64()
        ),
        (Some("reset"), Some("expired"), Some(7)),
        "{kind:?}: {r}"
    );
    let rest: Vec<String> = vec![
        data(&sub.next(&s).await),
        data(&sub.next(&s).await),
        data(&sub.next(&s).await),
    ];
    assert_eq!(rest, ["m8", "m9", "m10"]);
    drop(sub);
    // From another epoch.
    let epoch = first["epoch"].as_str().expect("epoch");
    let other = if epoch == "000000000001" {
        "000000000002"
    } else {
        "000000000001"
    };
    let foreign = format!("{ch}~{other}~4");
    let mut sub = Sub::open(&s, kind, &[&ch], Some(&foreign)).await;
    let r = sub.next(&s).await;
    assert_eq!(
        (
            r["type"].as_str(),
            r["reason"].as_str(),
            r["epoch"].as_str()
        ),
        (Some("reset"), Some("epoch"), Some(epoch)),
        "{kind:?}: {r}"
    );
    assert_eq!(data(&sub.next(&s).await), "m8");
}

async fn multi_channel_cursor_resumes(kind: Kind) {
    let s = Server::start("").await;
    let (a, b) = (channel("multi-a"), channel("multi-b"));
    let a0 = s.publish(&a, "a0").await;
    let b0 = s.publish(&b, "b0").await;
    let mut cursor = format!(
        "{},{}",
        a0["cursor"].as_str().expect("a"),
        b0["cursor"].as_str().expect("b")
    );
    let mut sub = Sub::open(&s, kind, &[&a, &b], Some(&cursor)).await;
    for i in 1..=3 {
        s.publish(&a, &format!("a{i}")).await;
        s.publish(&b, &format!("b{i}")).await;
    }
    let mut got = Vec::new();
    let (mut ca, mut cb) = (
        a0["cursor"].as_str().expect("a").to_owned(),
        b0["cursor"].as_str().expect("b").to_owned(),
    );
    for _ in 0..4 {
        let v = sub.next(&s).await;
        if v["channel"] == a.as_str() {
            ca = entry(&v)
        } else {
            cb = entry(&v)
        }
        got.push(data(&v));
    }
    drop(sub);
    cursor = format!("{ca},{cb}");
    for i in 4..=5 {
        s.publish(&a, &format!("a{i}")).await;
        s.publish(&b, &format!("b{i}")).await;
    }
    let mut sub = Sub::open(&s, kind, &[&a, &b], Some(&cursor)).await;
    while got.len() < 10 {
        got.push(data(&sub.next(&s).await));
    }
    let mut only_a: Vec<&str> = got
        .iter()
        .filter(|d| d.starts_with('a'))
        .map(String::as_str)
        .collect();
    let mut only_b: Vec<&str> = got
        .iter()
        .filter(|d| d.starts_with('b'))
        .map(String::as_str)
        .collect();
    assert_eq!(only_a, ["a1", "a2", "a3", "a4", "a5"], "{kind:?}: {got:?}");
    assert_eq!(only_b, ["b1", "b2", "b3", "b4", "b5"], "{kind:?}: {got:?}");
    only_a.clear();
    only_b.clear();
    assert!(
        sub.next_within(&s, Duration::from_millis(300))
            .await
            .is_none(),
        "{kind:?}: duplicate after resume"
    );
}

macro_rules! per_transport {
    ($($name:ident: $kind:expr),* $(,)?) => {
        $(
            mod $name {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn receives_in_order() { super::receives_in_order($kind).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn resumes_without_loss_or_duplicate() { super::resumes_without_loss_or_duplicate($kind).await }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn resets_on_stale_cursors() { super::resets_on_stale_cursors($kind).await }
            }
        )*
    };
}

per_transport! {
    poll: Kind::Poll,
    longpoll: Kind::LongPoll,
    iframe: Kind::Iframe,
    stream: Kind::Stream,
    sse: Kind::Sse,
    ws: Kind::Ws,
    ws_raw: Kind::WsRaw,
}

macro_rules! multi {
    ($($name:ident: $kind:expr),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { multi_channel_cursor_resumes($kind).await }
        )*
    };
}

multi! {
    multi_channel_poll: Kind::Poll,
    multi_channel_longpoll: Kind::LongPoll,
    multi_channel_iframe: Kind::Iframe,
    multi_channel_stream: Kind::Stream,
    multi_channel_sse: Kind::Sse,
    multi_channel_ws: Kind::Ws,
}
