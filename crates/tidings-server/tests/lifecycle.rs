//! Graceful shutdown, the channel API, health and metrics.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{channel, Kind, Server, Sub};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_every_stream_to_reconnect_and_drains() {
    let mut s = Server::start("shutdown_grace = \"3s\"").await;
    let ch = channel("bye");
    let sse = s
        .request("GET", &format!("/sse/{ch}"), &[], Bytes::new())
        .await;
    let mut stream = Sub::open(&s, Kind::Stream, &[&ch], None).await;
    let mut ws = s.ws("/ws", Some("tidings.v1")).await;
    let held = {
        let url = s.url(&format!("/longpoll/{ch}?timeout=60"));
        tokio::spawn(async move {
            let c =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<Bytes>>();
            let res = c.get(url.parse().unwrap()).await.unwrap();
            (
                res.status(),
                res.into_body().collect().await.unwrap().to_bytes(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = tokio::time::Instant::now();
    s.shutdown();
    // SSE: a short retry, then the end of the response.
    let mut body = sse.into_body();
    let mut buf = BytesMut::new();
    while let Some(f) = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("sse ends")
    {
        if let Ok(d) = f.unwrap().into_data() {
            buf.extend_from_slice(&d);
        }
    }
    let text = String::from_utf8_lossy(&buf);
    assert_eq!(text.matches("retry: ").count(), 2, "{text}");
    // XHR stream: a reconnect notice, then the end.
    while stream
        .next_within(&s, Duration::from_secs(5))
        .await
        .is_some()
    {}
    assert!(stream.ended);
    assert!(
        stream.controls.iter().any(|v| v["type"] == "reconnect"),
        "{:?}",
        stream.controls
    );
    // WebSocket: close 1001.
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("ws closes")
        {
            Some(Ok(Message::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("expected close, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1001));
    // Long poll: answered with an empty batch.
    let (status, body) = held.await.unwrap();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("\"messages\":[]"));
    // The server itself stops well within the grace period.
    let task = s.task.take().unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn channel_api_history_and_health() {
    let s = Server::start("").await;
    let ch = channel("api");
    let _sub = Sub::open(&s, Kind::Sse, &[&ch], None).await;
    for i in 1..=5 {
        s.publish(&ch, &format!("m{i}")).await;
    }
    let (status, info) = s.get_json(&format!("/api/channels/{ch}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            info["offset"].as_u64(),
            info["history"]["messages"].as_u64(),
            info["subscribers"]["sse"].as_u64()
        ),
        (Some(5), Some(5), Some(1)),
        "{info}"
    );
    let (_, list) = s.get_json("/api/channels").await;
    assert!(list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == ch.as_str()));
    let (_, h) = s
        .get_json(&format!("/api/channels/{ch}/history?limit=2"))
        .await;
    let datas: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].as_str().unwrap())
        .collect();
    assert_eq!(datas, ["m4", "m5"]);
    let since = format!("{ch}~{}~2", info["epoch"].as_str().unwrap());
    let (_, h) = s
        .get_json(&format!("/api/channels/{ch}/history?since={since}"))
        .await;
    assert_eq!(h["messages"].as_array().unwrap().len(), 3);
    assert_eq!(
        h["cursor"],
        format!("{ch}~{}~5", info["epoch"].as_str().unwrap())
    );
    let (status, health) = s.get_json("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, metrics) = s.get("/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert_eq!(status, 200);
    for name in [
        "tidings_connections{transport=\"sse\"}",
        "tidings_messages_published_total",
        "tidings_messages_delivered_total",
        "tidings_history_bytes",
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
}
