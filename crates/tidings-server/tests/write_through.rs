//! Write-through delivery (the publisher writing frames straight to idle sockets) under real
//! back-pressure: readers with a 4 KiB receive buffer stop reading while big messages are
//! published, so the kernel takes frames only in part and the rest must follow whole, in
//! order, before anything else. And a WebSocket whose client keeps sending commands while
//! messages are written through: replies (tungstenite's frames) and messages must never
//! interleave inside a frame.

mod common;

use std::time::Duration;

use bytes::{Buf, BytesMut};
use common::{channel, find, parse_iframe, parse_ndjson, parse_sse, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const CONFIG: &str =
    "queue_bytes = 16777216\nmax_message_bytes = 65536\nstream_budget = 67108864\n";
// More than the kernel buffers of a stalled loopback connection hold, in frames bigger than
// the room that is left when one fills: some writes are taken only in part.
const COUNT: usize = 120;
const SIZE: usize = 60_000;

fn payload(i: usize) -> String {
    format!(
        "{i:04}:{}",
        char::from(b'a' + (i % 26) as u8).to_string().repeat(SIZE)
    )
}

async fn small_socket(s: &Server) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(s.addr).await.unwrap()
}

/// Moves the complete chunks of an HTTP/1.1 chunked body from `raw` to `body`.
fn dechunk(raw: &mut BytesMut, body: &mut BytesMut) {
    while let Some(eol) = find(raw, b"\r\n") {
        let len = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {:?}", &raw[..eol.min(40)]));
        if raw.len() < eol + 2 + len + 2 {
            return;
        }
        raw.advance(eol + 2);
        body.extend_from_slice(&raw.split_to(len));
        assert_eq!(&raw[..2], b"\r\n", "chunk trailer");
        raw.advance(2);
    }
}

async fn publish_all(s: &Server, ch: &str) {
    for i in 0..COUNT {
        s.publish(ch, &payload(i)).await;
    }
}

fn check(kind: &str, messages: &[Value]) {
    let data: Vec<&str> = messages
        .iter()
        .filter(|v| v.get("offset").is_some())
        .map(|v| v["data"].as_str().expect("text data"))
        .collect();
    assert_eq!(data.len(), COUNT, "{kind}: every message once");
    for (i, d) in data.iter().enumerate() {
        assert!(*d == payload(i), "{kind}: message {i} intact and in order");
    }
}

#[tokio::test]
async fn stalled_http_streams_get_whole_frames_in_order() {
    let s = Server::start(CONFIG).await;
    for kind in ["sse", "stream", "iframe"] {
        let ch = channel("wt");
        let mut stream = small_socket(&s).await;
        let query = match kind {
            "sse" => "?format=json",
            "iframe" => "?callback=cb",
            _ => "",
        };
        let req = format!("GET /{kind}/{ch}{query} HTTP/1.1\r\nHost: t\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        // Wait for the open notice: from here the stream is idle and armed for write-through.
        let mut raw = BytesMut::new();
        let mut buf = vec![0u8; 65536];
        let head = loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "{kind}: stream ended early");
            raw.extend_from_slice(&buf[..n]);
            if let Some(i) = find(&raw, b"\r\n\r\n") {
                if find(&raw[i..], b"open").is_some() {
                    break i + 4;
                }
            }
        };
        raw.advance(head);
        // Publish while the reader does not read: the socket fills mid-frame.
        publish_all(&s, &ch).await;
        let mut body = BytesMut::new();
        let mut messages: Vec<Value> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            dechunk(&mut raw, &mut body);
            messages.extend(match kind {
                "sse" => parse_sse(&mut body),
                "stream" => parse_ndjson(&mut body),
                _ => parse_iframe(&mut body),
            });
            if messages
                .iter()
                .filter(|v| v.get("offset").is_some())
                .count()
                >= COUNT
            {
                break;
            }
            let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("{kind}: messages missing after 30 s"))
                .unwrap();
            assert!(n > 0, "{kind}: stream ended early");
            raw.extend_from_slice(&buf[..n]);
        }
        check(kind, &messages);
    }
}

#[tokio::test]
async fn stalled_websockets_get_whole_frames_in_order() {
    let s = Server::start(CONFIG).await;
    for raw in [false, true] {
        let ch = channel("wt");
        let stream = small_socket(&s).await;
        let path = if raw {
            format!("/ws/{ch}")
        } else {
            "/ws".to_owned()
        };
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                s.ws_url(&path),
            )
            .unwrap();
        if !raw {
            req.headers_mut()
                .insert("sec-websocket-protocol", "tidings.v1".parse().unwrap());
        }
        let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
        if !raw {
            let cmd = serde_json::json!({"id": 1, "op": "subscribe", "channel": ch});
            ws.send(Message::text(cmd.to_string())).await.unwrap();
            let reply = ws.next().await.unwrap().unwrap();
            assert!(reply.to_text().unwrap().contains("\"ok\""), "{reply:?}");
        } else {
            // The raw socket subscribes during the upgrade; give it a moment to go idle.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        publish_all(&s, &ch).await;
        let mut messages = Vec::new();
        while messages.len() < COUNT {
            let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .expect("messages within 30 s")
                .expect("socket open")
                .expect("a well-formed frame");
            let text = m.to_text().unwrap().to_owned();
            messages.push(if raw {
                serde_json::json!({"offset": messages.len(), "data": text})
            } else {
                serde_json::from_str(&text).unwrap()
            });
        }
        check(if raw { "ws raw" } else { "ws" }, &messages);
    }
}

#[tokio::test]
async fn websocket_replies_never_split_written_through_frames() {
    let s = Server::start(CONFIG).await;
    let ch = channel("wt");
    let mut ws = s.ws("/ws", Some("tidings.v1")).await;
    let cmd = serde_json::json!({"id": 0, "op": "subscribe", "channel": ch});
    ws.send(Message::text(cmd.to_string())).await.unwrap();
    let (mut tx, mut rx) = ws.split();
    let pinger = async {
        for i in 1..=200 {
            let cmd = serde_json::json!({"id": i, "op": "ping"});
            tx.send(Message::text(cmd.to_string())).await.unwrap();
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        tx
    };
    let publisher = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..200 {
            s.publish(&ch, &format!("{i}:{}", "p".repeat(i * 50))).await;
        }
    };
    let reader = async {
        let (mut replies, mut data) = (0, Vec::new());
        while replies < 201 || data.len() < 200 {
            let m = tokio::time::timeout(Duration::from_secs(20), rx.next())
                .await
                .expect("frames within 20 s")
                .expect("socket open")
                .expect("a well-formed frame");
            let v: Value = serde_json::from_str(m.to_text().unwrap()).expect("JSON frame");
            if v.get("id").is_none() {
                data.push(v["data"].as_str().unwrap().to_owned());
            } else {
                assert!(v.get("id").is_some(), "a reply: {v}");
                replies += 1;
            }
        }
        data
    };
    let (_tx, (), data) = tokio::join!(pinger, publisher, reader);
    for (i, d) in data.iter().enumerate() {
        assert_eq!(*d, format!("{i}:{}", "p".repeat(i * 50)));
    }
}

/// Reads what arrives on `stream` for `how_long`.
async fn read_for(stream: &mut TcpStream, buf: &mut BytesMut, how_long: Duration) {
    let _ = tokio::time::timeout(how_long, async {
        loop {
            if stream.read_buf(buf).await.unwrap_or(0) == 0 {
                return;
            }
        }
    })
    .await;
}

/// Heartbeats are for idle streams. A stream whose messages are written through is not idle,
/// although its task, which resets the heartbeat when it delivers, never sees them: it gets no
/// heartbeat while they flow, and gets them again once they stop.
#[tokio::test]
async fn streams_busy_with_written_through_messages_get_no_heartbeats() {
    let s = Server::start("heartbeat = \"300ms\"").await;
    let ch = channel("busy");
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(format!("GET /sse/{ch} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    while find(&buf, b"\r\n\r\n").is_none() {
        assert!(
            stream.read_buf(&mut buf).await.unwrap() > 0,
            "a response head"
        );
    }
    let through = s.messages("written_through", "sse").await;
    // 1.5 s of messages, every 30 ms: five heartbeat periods.
    let publisher = async {
        for i in 0..50 {
            s.publish(&ch, &format!("m{i}")).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    let ((), ()) = tokio::join!(
        publisher,
        read_for(&mut stream, &mut buf, Duration::from_millis(1700))
    );
    let busy = String::from_utf8_lossy(&buf).into_owned();
    assert!(busy.contains("data: m49"), "every message: {busy}");
    assert_eq!(
        busy.matches(": hb").count(),
        0,
        "no heartbeat while busy: {busy}"
    );
    assert!(
        s.messages("written_through", "sse").await >= through + 40,
        "the messages were written through, which is what this test is about"
    );
    read_for(&mut stream, &mut buf, Duration::from_millis(900)).await;
    let idle = String::from_utf8_lossy(&buf[busy.len()..]).into_owned();
    assert!(idle.contains(": hb"), "heartbeats once idle: {idle:?}");
}
