//! The `tidings.v1` protocol: subprotocol, replies, publish, binary frames, unsubscribe,
//! deleted-channel resets and server pings.

mod common;

use std::time::Duration;

use common::{channel, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("frame in time")
            .expect("open")
            .expect("ok");
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Binary(b) => {
                let nl = b.iter().position(|&x| x == b'\n').unwrap();
                let mut v: Value = serde_json::from_slice(&b[..nl]).unwrap();
                v["bytes"] = json!(b[nl + 1..].to_vec());
                return v;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn negotiates_the_subprotocol_and_multiplexes_channels() {
    let s = Server::start("[namespaces.chat]\nclient_publish = true").await;
    let mut req = s.ws_url("/ws").into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "tidings.v1".parse().unwrap());
    let (mut ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(res.headers()["sec-websocket-protocol"], "tidings.v1");
    let (a, b) = (
        format!("chat:{}", channel("a")),
        format!("chat:{}", channel("b")),
    );
    for (i, c) in [&a, &b].iter().enumerate() {
        ws.send(Message::text(
            json!({"id": i, "op": "subscribe", "channel": c}).to_string(),
        ))
        .await
        .unwrap();
        let r = next_json(&mut ws).await;
        assert_eq!(
            (r["id"].as_u64(), r["ok"].as_bool(), r["offset"].as_u64()),
            (Some(i as u64), Some(true), Some(0)),
            "{r}"
        );
    }
    ws.send(Message::text(
        json!({"id": 10, "op": "publish", "channel": a, "data": "hi", "event": "say"}).to_string(),
    ))
    .await
    .unwrap();
    let mut seen = [next_json(&mut ws).await, next_json(&mut ws).await];
    seen.sort_by_key(|v| v.get("id").is_none());
    assert_eq!(
        (seen[0]["id"].as_u64(), seen[0]["offset"].as_u64()),
        (Some(10), Some(1))
    );
    assert_eq!(
        (
            seen[1]["channel"].as_str(),
            seen[1]["event"].as_str(),
            seen[1]["data"].as_str()
        ),
        (Some(a.as_str()), Some("say"), Some("hi"))
    );
    s.publish(&b, "from http").await;
    let m = next_json(&mut ws).await;
    assert_eq!(
        (m["channel"].as_str(), m["data"].as_str()),
        (Some(b.as_str()), Some("from http"))
    );
    // Binary publish travels as a binary frame: header, newline, bytes.
    let mut frame = json!({"id": 11, "op": "publish", "channel": a})
        .to_string()
        .into_bytes();
    frame.push(b'\n');
    frame.extend_from_slice(&[0, 1, 2, 255]);
    ws.send(Message::binary(frame)).await.unwrap();
    let mut got = [next_json(&mut ws).await, next_json(&mut ws).await];
    got.sort_by_key(|v| v.get("id").is_none());
    assert_eq!(got[0]["ok"], true);
    assert_eq!(
        (got[1]["encoding"].as_str(), got[1]["bytes"].clone()),
        (Some("binary"), json!([0, 1, 2, 255]))
    );
    // Unsubscribe stops delivery on that channel only.
    ws.send(Message::text(
        json!({"id": 12, "op": "unsubscribe", "channel": a}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await, json!({"id": 12, "ok": true}));
    s.publish(&a, "ignored").await;
    s.publish(&b, "delivered").await;
    assert_eq!(next_json(&mut ws).await["data"], "delivered");
}

#[tokio::test]
async fn delete_sends_a_deleted_reset_and_a_new_epoch() {
    let s = Server::start("").await;
    let ch = channel("del");
    let m1 = s.publish(&ch, "before").await;
    let mut ws = s.ws("/ws", Some("tidings.v1")).await;
    ws.send(Message::text(
        json!({"id": 1, "op": "subscribe", "channel": ch, "since": m1["cursor"]}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["ok"], true);
    let res = s
        .request(
            "DELETE",
            &format!("/api/channels/{ch}"),
            &[],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(res.status(), 200);
    let r = next_json(&mut ws).await;
    assert_eq!(
        (
            r["type"].as_str(),
            r["reason"].as_str(),
            r["offset"].as_u64()
        ),
        (Some("reset"), Some("deleted"), Some(0))
    );
    assert_ne!(r["epoch"], m1["epoch"]);
    let m = s.publish(&ch, "after").await;
    let v = next_json(&mut ws).await;
    assert_eq!(
        (v["data"].as_str(), v["epoch"].clone(), v["offset"].as_u64()),
        (Some("after"), m["epoch"].clone(), Some(1))
    );
}

#[tokio::test]
async fn server_pings_and_drops_silent_peers() {
    let s = Server::start("ws_ping_interval = \"100ms\"\nws_ping_timeout = \"350ms\"").await;
    let mut ws = s.ws("/ws", Some("tidings.v1")).await;
    // tungstenite answers pings only while the socket is read; read a ping, then go silent.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Ping(_))) => break,
            Some(Ok(_)) => continue,
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    // Keep reading: pongs are sent, so the connection stays up past the timeout.
    let until = tokio::time::Instant::now() + Duration::from_millis(800);
    while tokio::time::Instant::now() < until {
        if let Ok(Some(Err(e))) = tokio::time::timeout(Duration::from_millis(50), ws.next()).await {
            panic!("a live peer was dropped: {e}");
        }
    }
    // Now go silent: no reads, so no pongs. The server drops the peer after the timeout.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a silent peer is dropped");
}
