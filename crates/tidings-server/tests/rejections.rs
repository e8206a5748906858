//! Every rejection path returns its documented error: status plus JSON code over HTTP, a reply
//! error or a close code over WebSocket.

mod common;

use bytes::Bytes;
use common::{channel, Server};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn expect_error(
    s: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
    status: u16,
    code: &str,
) {
    let res = s.request(method, path, headers, body).await;
    assert_eq!(res.status().as_u16(), status, "{method} {path}");
    assert_eq!(res.headers()["content-type"], "application/json", "{path}");
    let b = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&b).unwrap_or_else(|_| panic!("{path}: not JSON: {b:?}"));
    assert_eq!(v["error"]["code"], code, "{path}: {v}");
    assert!(
        v["error"]["message"].as_str().is_some_and(|m| m.len() > 10),
        "{path}: message says what to do: {v}"
    );
}

#[tokio::test]
async fn http_rejections() {
    let s = Server::start("max_message_bytes = 1024\n[transports]\nstream = false").await;
    for path in [
        "/poll/bad%20name",
        "/sse/caf%C3%A9",
        "/longpoll/a%3Cb",
        "/iframe/x%22y",
        "/poll?channel=&channel=ok",
    ] {
        expect_error(&s, "GET", path, &[], Bytes::new(), 400, "bad_channel").await;
    }
    let long = "x".repeat(201);
    expect_error(
        &s,
        "GET",
        &format!("/poll/{long}"),
        &[],
        Bytes::new(),
        400,
        "bad_channel",
    )
    .await;
    expect_error(
        &s,
        "POST",
        "/api/channels/a%20b/messages",
        &[],
        "x",
        400,
        "bad_channel",
    )
    .await;
    for c in [
        "junk",
        "a~zz~1",
        "a~000000000001~-1",
        "a~000000000001~1,a~000000000001~2",
    ] {
        expect_error(
            &s,
            "GET",
            &format!("/poll/a?since={c}"),
            &[],
            Bytes::new(),
            400,
            "bad_cursor",
        )
        .await;
        expect_error(
            &s,
            "GET",
            &format!("/sse/a?lastEventId={c}"),
            &[],
            Bytes::new(),
            400,
            "bad_cursor",
        )
        .await;
    }
    expect_error(
        &s,
        "GET",
        "/sse/a",
        &[("last-event-id", "nonsense")],
        Bytes::new(),
        400,
        "bad_cursor",
    )
    .await;
    expect_error(
        &s,
        "POST",
        "/api/channels/a/messages",
        &[],
        vec![b'x'; 2000],
        413,
        "payload_too_large",
    )
    .await;
    expect_error(
        &s,
        "POST",
        "/api/channels/a/messages?event=bad%20event",
        &[],
        "x",
        400,
        "bad_event",
    )
    .await;
    expect_error(
        &s,
        "POST",
        "/api/channels/a/messages",
        &[("content-type", "text/plain")],
        vec![0xff, 0xfe],
        400,
        "bad_request",
    )
    .await;
    expect_error(
        &s,
        "GET",
        "/longpoll/a?timeout=soon",
        &[],
        Bytes::new(),
        400,
        "bad_request",
    )
    .await;
    expect_error(
        &s,
        "GET",
        "/api/channels/a/history?limit=0",
        &[],
        Bytes::new(),
        400,
        "bad_request",
    )
    .await;
    expect_error(&s, "GET", "/poll", &[], Bytes::new(), 400, "bad_request").await;
    expect_error(&s, "GET", "/nowhere", &[], Bytes::new(), 404, "not_found").await;
    expect_error(
        &s,
        "GET",
        "/stream/a",
        &[],
        Bytes::new(),
        404,
        "transport_disabled",
    )
    .await;
    let many: String = (0..70).map(|i| format!("channel=c{i}&")).collect();
    expect_error(
        &s,
        "GET",
        &format!("/poll?{many}"),
        &[],
        Bytes::new(),
        429,
        "too_many_subscriptions",
    )
    .await;
    // Nothing was lost: the valid channel still works.
    let ch = channel("ok");
    s.publish(&ch, "fine").await;
}

#[tokio::test]
async fn websocket_endpoints_refuse_requests_that_are_not_handshakes() {
    let s = Server::start("").await;
    let ch = channel("nohs");
    let upgrade = [("connection", "Upgrade"), ("upgrade", "websocket")];
    let versioned = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
    ];
    for path in ["/ws".to_owned(), format!("/ws/{ch}")] {
        expect_error(&s, "GET", &path, &[], Bytes::new(), 400, "bad_request").await;
        let old = [
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "8"),
        ];
        expect_error(&s, "GET", &path, &old, Bytes::new(), 400, "bad_request").await;
        expect_error(&s, "GET", &path, &upgrade, Bytes::new(), 400, "bad_request").await;
        // Everything but the key.
        expect_error(
            &s,
            "GET",
            &path,
            &versioned,
            Bytes::new(),
            400,
            "bad_request",
        )
        .await;
    }
}

#[tokio::test]
async fn api_key_is_required_when_configured() {
    let s = Server::start("api_key = \"0123456789abcdef0123\"").await;
    expect_error(
        &s,
        "POST",
        "/api/channels/a/messages",
        &[],
        "x",
        401,
        "unauthorized",
    )
    .await;
    expect_error(
        &s,
        "POST",
        "/api/channels/a/messages",
        &[("authorization", "Bearer wrong-key-wrong-key")],
        "x",
        401,
        "unauthorized",
    )
    .await;
    expect_error(
        &s,
        "DELETE",
        "/api/channels/a",
        &[],
        Bytes::new(),
        401,
        "unauthorized",
    )
    .await;
    let res = s
        .request(
            "POST",
            "/api/channels/a/messages",
            &[("authorization", "Bearer 0123456789abcdef0123")],
            "x",
        )
        .await;
    assert_eq!(res.status(), 201);
}

async fn ws_reply(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    send: Message,
) -> Value {
    ws.send(send).await.unwrap();
    loop {
        match ws.next().await.expect("reply").expect("frame") {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_command_rejections() {
    let s =
        Server::start("max_message_bytes = 1024\n[namespaces.open]\nclient_publish = true").await;
    let mut ws = s.ws("/ws", Some("tidings.v1")).await;
    let cases: Vec<(String, Value, &str)> = vec![
        ("{nope".into(), Value::Null, "bad_json"),
        (r#"{"id":1,"op":"dance"}"#.into(), 1.into(), "unknown_op"),
        (
            r#"{"id":2,"op":"subscribe","channel":"a b"}"#.into(),
            2.into(),
            "bad_channel",
        ),
        (
            r#"{"id":3,"op":"subscribe","channel":"a","since":"zz"}"#.into(),
            3.into(),
            "bad_cursor",
        ),
        (
            r#"{"id":4,"op":"subscribe"}"#.into(),
            4.into(),
            "bad_request",
        ),
        (
            r#"{"id":5,"op":"publish","channel":"closed:x","data":"hi"}"#.into(),
            5.into(),
            "forbidden",
        ),
        (
            format!(
                r#"{{"id":6,"op":"publish","channel":"open:x","data":"{}"}}"#,
                "x".repeat(2000)
            ),
            6.into(),
            "payload_too_large",
        ),
        (
            r#"{"id":7,"op":"unsubscribe","channel":"never"}"#.into(),
            7.into(),
            "not_found",
        ),
        (
            r#"{"id":8,"op":"publish","channel":"open:x","data":"x","event":"a b"}"#.into(),
            8.into(),
            "bad_event",
        ),
        (r#"{"op":"ping"}"#.into(), Value::Null, "bad_request"),
    ];
    for (cmd, id, code) in cases {
        let v = ws_reply(&mut ws, Message::text(cmd.clone())).await;
        assert_eq!(v["id"], id, "{cmd}: {v}");
        assert_eq!(v["error"]["code"], code, "{cmd}: {v}");
    }
    // The connection survives every rejection.
    let v = ws_reply(&mut ws, Message::text(r#"{"id":"last","op":"ping"}"#)).await;
    assert_eq!(v, serde_json::json!({"id": "last", "ok": true}));
    let v = ws_reply(&mut ws, Message::binary(b"no header".to_vec())).await;
    assert_eq!(v["error"]["code"], "bad_request");
}

#[tokio::test]
async fn foreign_origin_is_refused_and_same_origin_allowed() {
    let s = Server::start("allowed_origins = [\"https://app.example\"]").await;
    for (origin, ok) in [
        ("https://evil.example", false),
        ("https://app.example", true),
        ("http://localhost:3000", true),
    ] {
        let mut req = s.ws_url("/ws").into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => assert!(ok, "{origin} should be refused"),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                assert!(!ok, "{origin} should be allowed");
                assert_eq!(res.status(), 403);
                let body: Value =
                    serde_json::from_slice(res.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(body["error"]["code"], "forbidden");
            }
            Err(e) => panic!("{origin}: {e}"),
        }
    }
}

#[tokio::test]
async fn raw_websocket_publish_where_not_allowed_closes_with_4403() {
    let s = Server::start("").await;
    let mut ws = s.ws("/ws/locked", None).await;
    ws.send(Message::text("hello")).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 4403);
                assert!(f.reason.contains("client_publish"), "{}", f.reason);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}
