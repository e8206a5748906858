//! SSE framing rules and forever-iframe safety, checked on the raw response bytes.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{channel, parse_iframe, Server};
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// Reads a streaming body until `pred` holds for everything read so far (or 10 s pass).
async fn read_until(body: &mut Incoming, buf: &mut BytesMut, pred: impl Fn(&[u8]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pred(buf) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("timed out; got {:?}", String::from_utf8_lossy(buf)));
        let Some(frame) = frame else {
            panic!("body ended; got {:?}", String::from_utf8_lossy(buf))
        };
        if let Ok(d) = frame.expect("frame").into_data() {
            buf.extend_from_slice(&d);
        }
    }
}

fn text(buf: &[u8]) -> String {
    String::from_utf8_lossy(buf).into_owned()
}

/// A WHATWG event-stream parse: (event type, data, last event id) per dispatched event.
fn whatwg(stream: &str) -> Vec<(String, String, String)> {
    let mut events = Vec::new();
    let (mut data, mut event, mut id) = (String::new(), String::new(), String::new());
    for line in stream.replace("\r\n", "\n").replace('\r', "\n").split('\n') {
        if line.is_empty() {
            if !data.is_empty() {
                data.pop();
                events.push((
                    if event.is_empty() {
                        "message".into()
                    } else {
                        event.clone()
                    },
                    data.clone(),
                    id.clone(),
                ));
            }
            data.clear();
            event.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (f, v) = line
            .split_once(':')
            .map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)))
            .unwrap_or((line, ""));
        match f {
            "data" => {
                data.push_str(v);
                data.push('\n');
            }
            "event" => event = v.into(),
            "id" => id = v.into(),
            _ => {}
        }
    }
    events
}

#[tokio::test]
async fn sse_headers_retry_multiline_crlf_and_event_names() {
    let s = Server::start("sse_retry = \"1500ms\"").await;
    let ch = channel("sse");
    let res = s
        .request("GET", &format!("/sse/{ch}"), &[], Bytes::new())
        .await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-cache, no-store");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let mut body = res.into_body();
    let mut buf = BytesMut::new();
    read_until(&mut body, &mut buf, |b| b.starts_with(b"retry: 1500\n\n")).await;
    let a = s.publish(&ch, "line1\nline2\r\nline3\rline4").await;
    s.publish_with(&ch, "tick!", Some("tick")).await;
    s.publish(&ch, "").await;
    read_until(&mut body, &mut buf, |b| {
        b.windows(5).filter(|w| w == b"\n\nid:").count() >= 2
            && b.ends_with(b"\n\n")
            && text(b).matches("id: ").count() == 3
    })
    .await;
    let t = text(&buf);
    assert!(
        t.contains(&format!(
            "id: {}\ndata: line1\ndata: line2\ndata: line3\ndata: line4\n\n",
            a["cursor"].as_str().unwrap()
        )),
        "{t}"
    );
    assert!(t.contains("event: tick\ndata: tick!\n\n"), "{t}");
    let events = whatwg(&t);
    assert_eq!(events[0].0, "message");
    assert_eq!(events[0].1, "line1\nline2\nline3\nline4");
    assert_eq!(
        (events[1].0.as_str(), events[1].1.as_str()),
        ("tick", "tick!")
    );
    assert_eq!(events[2].1, "");
    assert!(
        !t.contains("event: message"),
        "default event never named: {t}"
    );
}

#[tokio::test]
async fn sse_binary_is_base64_and_says_so() {
    let s = Server::start("").await;
    let ch = channel("bin");
    let res = s
        .request("GET", &format!("/sse/{ch}"), &[], Bytes::new())
        .await;
    let mut body = res.into_body();
    let mut buf = BytesMut::new();
    read_until(&mut body, &mut buf, |b| b.ends_with(b"\n\n")).await;
    let r = s
        .request(
            "POST",
            &format!("/api/channels/{ch}/messages"),
            &[("content-type", "application/octet-stream")],
            vec![0u8, 255, 1],
        )
        .await;
    assert_eq!(r.status(), 201);
    read_until(&mut body, &mut buf, |b| text(b).contains("AP8B")).await;
    assert!(
        text(&buf).contains("event: message.base64\ndata: AP8B\n\n"),
        "{}",
        text(&buf)
    );
}

#[tokio::test]
async fn sse_resumes_from_last_event_id_header_or_query_and_the_header_wins() {
    let s = Server::start("").await;
    let ch = channel("lei");
    let m1 = s.publish(&ch, "m1").await;
    let m2 = s.publish(&ch, "m2").await;
    s.publish(&ch, "m3").await;
    for (path, headers) in [
        (
            format!("/sse/{ch}"),
            vec![("last-event-id", m1["cursor"].as_str().unwrap())],
        ),
        (
            format!("/sse/{ch}?lastEventId={}", m1["cursor"].as_str().unwrap()),
            vec![],
        ),
        // The browser's reconnect sends the newest id while the URL keeps the first one.
        (
            format!("/sse/{ch}?lastEventId={}", m1["cursor"].as_str().unwrap()),
            vec![("last-event-id", m2["cursor"].as_str().unwrap())],
        ),
    ] {
        let res = s.request("GET", &path, &headers, Bytes::new()).await;
        let mut body = res.into_body();
        let mut buf = BytesMut::new();
        read_until(&mut body, &mut buf, |b| text(b).contains("data: m3")).await;
        let events = whatwg(&text(&buf));
        let datas: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
        let want: &[&str] = if headers.len() == 1 && path.contains("lastEventId") {
            &["m3"]
        } else {
            &["m2", "m3"]
        };
        assert_eq!(datas, want, "{path} {headers:?}");
        assert_eq!(
            events.last().unwrap().2,
            format!("{ch}~{}~3", m1["epoch"].as_str().unwrap())
        );
    }
}

#[tokio::test]
async fn sse_multi_channel_id_is_the_whole_cursor() {
    let s = Server::start("").await;
    let (a, b) = (channel("a"), channel("b"));
    let a0 = s.publish(&a, "a0").await;
    let b0 = s.publish(&b, "b0").await;
    let since = format!(
        "{},{}",
        a0["cursor"].as_str().unwrap(),
        b0["cursor"].as_str().unwrap()
    );
    let res = s
        .request(
            "GET",
            &format!("/sse?channel={a}&channel={b}&lastEventId={since}"),
            &[],
            Bytes::new(),
        )
        .await;
    let mut body = res.into_body();
    let mut buf = BytesMut::new();
    let a1 = s.publish(&a, "a1").await;
    read_until(&mut body, &mut buf, |x| text(x).contains("data: a1")).await;
    let events = whatwg(&text(&buf));
    assert_eq!(
        events[0].2,
        format!(
            "{},{}",
            a1["cursor"].as_str().unwrap(),
            b0["cursor"].as_str().unwrap()
        )
    );
}

#[tokio::test]
async fn sse_disabled_answers_204_so_eventsource_stops() {
    let s = Server::start("[transports]\nsse = false").await;
    let (status, _) = s.get("/sse/x").await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn iframe_escapes_script_breakers_and_pads() {
    let s = Server::start("").await;
    let ch = channel("frame");
    let res = s
        .request(
            "GET",
            &format!("/iframe/{ch}?callback=app.onMsg"),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    let mut body = res.into_body();
    let mut buf = BytesMut::new();
    read_until(&mut body, &mut buf, |b| {
        text(b).contains("\"type\":\"open\"")
    })
    .await;
    assert!(buf.len() > 2048, "padding defeats browser buffering");
    let preamble_len = buf.len();
    let hostile = "</script><script>window.pwned=1</script><!-- \u{2028}\u{2029} & <b>";
    s.publish(&ch, hostile).await;
    read_until(&mut body, &mut buf, |b| {
        b.len() > preamble_len && b.ends_with(b");</script>\n")
    })
    .await;
    let chunk = text(&buf[preamble_len..]);
    assert_eq!(
        chunk.to_ascii_lowercase().matches("</script").count(),
        1,
        "{chunk}"
    );
    assert!(
        !chunk.contains("<!--") && !chunk.contains('\u{2028}') && !chunk.contains('\u{2029}'),
        "{chunk}"
    );
    assert!(chunk.starts_with("<script>parent.app.onMsg({"), "{chunk}");
    let json = chunk
        .trim_start_matches("<script>parent.app.onMsg(")
        .trim_end_matches(");</script>\n");
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON");
    assert_eq!(v["data"], hostile);
}

#[tokio::test]
async fn iframe_refuses_hostile_callbacks() {
    let s = Server::start("").await;
    for cb in [
        "alert(1)",
        "x%3C%2Fscript%3E",
        "a..b",
        "1abc",
        "a%20b",
        "a;b",
    ] {
        let (status, v) = s.get_json(&format!("/iframe/x?callback={cb}")).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some("bad_callback")),
            "{cb}"
        );
    }
}

#[tokio::test]
async fn iframe_and_stream_end_at_the_byte_budget_with_a_reconnect_cursor() {
    let s = Server::start("stream_budget = 4096").await;
    let ch = channel("budget");
    for (path, end) in [
        (format!("/iframe/{ch}?callback=cb"), "</body></html>\n"),
        (format!("/stream/{ch}"), "\"type\":\"reconnect\""),
    ] {
        let res = s.request("GET", &path, &[], Bytes::new()).await;
        let mut body = res.into_body();
        let mut buf = BytesMut::new();
        read_until(&mut body, &mut buf, |b| {
            text(b).contains("\"type\":\"open\"")
        })
        .await;
        let mut last = serde_json::Value::Null;
        for i in 0..40 {
            last = s.publish(&ch, &format!("{i}:{}", "x".repeat(200))).await;
        }
        read_until(&mut body, &mut buf, |b| text(b).contains(end)).await;
        // The body then ends.
        while let Some(f) = body.frame().await {
            if let Ok(d) = f.expect("frame").into_data() {
                buf.extend_from_slice(&d);
            }
        }
        let t = text(&buf);
        assert!(
            t.len() < 4096 + 2048 + 2048 + 1024,
            "{path}: {} bytes",
            t.len()
        );
        let reconnect = t
            .split("\"type\":\"reconnect\",\"cursor\":\"")
            .nth(1)
            .expect("reconnect cursor");
        let cursor = reconnect.split('"').next().unwrap();
        assert!(cursor.starts_with(&ch), "{cursor}");
        assert_ne!(
            cursor,
            last["cursor"].as_str().unwrap(),
            "budget ended the response before the last message"
        );
        let mut b2 = BytesMut::from(&buf[..]);
        let calls = if path.starts_with("/iframe") {
            parse_iframe(&mut b2)
        } else {
            common::parse_ndjson(&mut b2)
        };
        let last_msg = calls
            .iter()
            .rfind(|v| v.get("type").is_none())
            .expect("some messages");
        assert_eq!(
            common::entry(last_msg),
            cursor,
            "reconnect cursor is the last delivered position"
        );
    }
}

#[tokio::test]
async fn heartbeats_on_every_streaming_transport() {
    let s = Server::start("heartbeat = \"150ms\"").await;
    for (path, beat) in [
        ("/sse/hb".to_string(), ": hb\n\n"),
        ("/stream/hb".to_string(), "{\"type\":\"heartbeat\"}\n"),
        (
            "/iframe/hb?callback=cb".to_string(),
            "parent.cb({\"type\":\"heartbeat\"})",
        ),
    ] {
        let res = s.request("GET", &path, &[], Bytes::new()).await;
        let mut body = res.into_body();
        let mut buf = BytesMut::new();
        read_until(&mut body, &mut buf, |b| text(b).matches(beat).count() >= 2).await;
    }
}
