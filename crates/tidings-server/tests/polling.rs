//! Short and long polling: latest-message semantics, ETag/304, hold and timeout.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{channel, data, KeptAlive, Server};
use http_body_util::BodyExt;

#[tokio::test]
async fn short_poll_without_since_gives_the_latest_message_and_304_until_new() {
    let s = Server::start("").await;
    let ch = channel("poll");
    let (status, empty) = s.get_json(&format!("/poll/{ch}")).await;
    assert_eq!(
        (status, empty["messages"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    s.publish(&ch, "old").await;
    let latest = s.publish(&ch, "state").await;
    let res = s
        .request("GET", &format!("/poll/{ch}"), &[], Bytes::new())
        .await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let v: serde_json::Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["messages"].as_array().unwrap().len(), 1);
    assert_eq!(v["messages"][0]["data"], "state");
    assert_eq!(v["cursor"], latest["cursor"]);
    let res = s
        .request(
            "GET",
            &format!("/poll/{ch}"),
            &[("if-none-match", &etag)],
            Bytes::new(),
        )
        .await;
    assert_eq!(res.status(), 304);
    let since = format!("/poll/{ch}?since={}", latest["cursor"].as_str().unwrap());
    let res = s
        .request("GET", &since, &[("if-none-match", &etag)], Bytes::new())
        .await;
    assert_eq!(res.status(), 304, "nothing new after the cursor");
    s.publish(&ch, "new").await;
    let res = s
        .request("GET", &since, &[("if-none-match", &etag)], Bytes::new())
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn long_poll_holds_until_a_message_then_answers_at_once() {
    let s = Server::start("").await;
    let ch = channel("lp");
    let first = s.publish(&ch, "m0").await;
    let path = format!(
        "/longpoll/{ch}?since={}&timeout=10",
        first["cursor"].as_str().unwrap()
    );
    let url = s.url(&path);
    let started = Instant::now();
    let held = tokio::spawn(async move {
        let c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Full<Bytes>>();
        let res = c.get(url.parse().unwrap()).await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (
            Instant::now(),
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "the poll is held while nothing is new");
    let m1 = s.publish(&ch, "m1").await;
    let (answered, v) = held.await.unwrap();
    assert!(answered.duration_since(started) < Duration::from_secs(5));
    assert_eq!(v["messages"][0]["data"], "m1");
    assert_eq!(v["cursor"], m1["cursor"]);
}

#[tokio::test]
async fn long_poll_times_out_with_an_empty_batch_and_the_same_cursor() {
    let s = Server::start("").await;
    let ch = channel("lpt");
    let first = s.publish(&ch, "m0").await;
    let started = Instant::now();
    let (status, v) = s
        .get_json(&format!(
            "/longpoll/{ch}?since={}&timeout=0.4",
            first["cursor"].as_str().unwrap()
        ))
        .await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(v["messages"].as_array().unwrap().len(), 0);
    assert_eq!(v["cursor"], first["cursor"]);
}

#[tokio::test]
async fn messages_published_between_long_polls_are_not_lost() {
    let s = Server::start("").await;
    let ch = channel("gap");
    let first = s.publish(&ch, "m0").await;
    let mut cursor = first["cursor"].as_str().unwrap().to_owned();
    let mut got = Vec::new();
    for round in 0..5 {
        for i in 0..3 {
            s.publish(&ch, &format!("r{round}-{i}")).await;
        }
        let (_, v) = s
            .get_json(&format!("/longpoll/{ch}?since={cursor}&timeout=2"))
            .await;
        for m in v["messages"].as_array().unwrap() {
            got.push(m["data"].as_str().unwrap().to_owned());
        }
        cursor = v["cursor"].as_str().unwrap().to_owned();
    }
    let want: Vec<String> = (0..5)
        .flat_map(|r| (0..3).map(move |i| format!("r{r}-{i}")))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn polls_on_one_kept_alive_connection_including_pipelined_ones() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start("").await;
    let ch = channel("keepalive");
    let m = s.publish(&ch, "state").await;
    let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let cursor = m["cursor"].as_str().unwrap();
    // Two requests in one write, then a third after the answers: all on one connection.
    let two = format!(
        "GET /poll/{ch} HTTP/1.1\r\nHost: x\r\n\r\nGET /longpoll/{ch}?since={cursor}&timeout=0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    conn.write_all(two.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 200 OK")
        .count()
        < 2
        || !got.ends_with(b"}")
    {
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.contains("\"data\":\"state\""), "{text}");
    assert!(text.contains("\"messages\":[]"), "{text}");
    assert!(text.contains("access-control-allow-origin: *"), "{text}");
    conn.write_all(
        format!("GET /poll/{ch} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.starts_with("HTTP/1.1 200 OK") && rest.contains("connection: close"),
        "{rest}"
    );
}

#[tokio::test]
async fn a_kept_alive_long_poll_keeps_its_subscription_for_the_next_poll() {
    // History holds one message, so a poll that resumed from history after two publishes
    // would get a reset: only the kept subscription, which queued both, delivers both.
    let s = Server::start("[namespaces.one]\nhistory_size = 1\n").await;
    let ch = format!("one:{}", channel("kept"));
    let m0 = s.publish(&ch, "m0").await;
    let c0 = m0["cursor"].as_str().unwrap().to_owned();
    let mut conn = KeptAlive::connect(&s).await;
    conn.send(&format!("/longpoll/{ch}?since={c0}&timeout=10"))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.publish(&ch, "m1").await;
    let a1 = conn.answer().await;
    assert_eq!(data(&a1), ["m1"]);
    let c1 = a1["cursor"].as_str().unwrap().to_owned();
    s.publish(&ch, "m2").await;
    s.publish(&ch, "m3").await;
    let a2 = conn
        .get(&format!("/longpoll/{ch}?since={c1}&timeout=10&_=1"))
        .await;
    assert_eq!(data(&a2), ["m2", "m3"], "both, from the kept subscription");
    let c3 = a2["cursor"].as_str().unwrap().to_owned();

    // Another cursor (here an older one) is a fresh subscription, from history: m2 is gone.
    let old = conn
        .get(&format!("/longpoll/{ch}?since={c1}&timeout=10"))
        .await;
    assert_eq!(old["messages"][0]["type"], "reset", "{old}");
    assert_eq!(data(&old)[1..], ["m3"]);

    assert_eq!(old["cursor"], c3.as_str());

    // That poll's own subscription, which ended at c3 too, is the one kept now.
    s.publish(&ch, "m4").await;
    s.publish(&ch, "m5").await;
    let a3 = conn
        .get(&format!("/longpoll/{ch}?since={c3}&timeout=10"))
        .await;
    assert_eq!(data(&a3), ["m4", "m5"]);

    // A short poll in between drops what a long poll kept.
    let c5 = a3["cursor"].as_str().unwrap().to_owned();
    conn.send(&format!("/longpoll/{ch}?since={c5}&timeout=10"))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.publish(&ch, "m6").await;
    let c6 = conn.answer().await["cursor"].as_str().unwrap().to_owned();
    conn.get(&format!("/poll/{ch}")).await;
    s.publish(&ch, "m7").await;
    s.publish(&ch, "m8").await;
    let a4 = conn
        .get(&format!("/longpoll/{ch}?since={c6}&timeout=10"))
        .await;
    assert_eq!(a4["messages"][0]["type"], "reset", "{a4}");
}

#[tokio::test]
async fn a_kept_long_poll_subscription_never_loses_what_its_queue_could_not_hold() {
    // The outbox holds about two of these messages between polls. Under `disconnect` it closes
    // and the next poll resumes from history; under `drop_oldest` the subscription is not kept
    // at all. Either way the next poll gets every message, in order.
    let s = Server::start(
        "queue_bytes = 3000\nmax_message_bytes = 2000\n[namespaces.cut]\nslow_consumer = \"disconnect\"\n\
         [namespaces.drop]\nslow_consumer = \"drop_oldest\"\n",
    )
    .await;
    let big = "x".repeat(1000);
    for ns in ["cut", "drop"] {
        let ch = format!("{ns}:{}", channel("overflow"));
        let m0 = s.publish(&ch, "m0").await;
        let mut conn = KeptAlive::connect(&s).await;
        let mut cursor = m0["cursor"].as_str().unwrap().to_owned();
        conn.send(&format!("/longpoll/{ch}?since={cursor}&timeout=10"))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.publish(&ch, "first").await;
        cursor = conn.answer().await["cursor"].as_str().unwrap().to_owned();
        for i in 0..6 {
            s.publish(&ch, &format!("{i}{big}")).await;
        }
        let mut got = Vec::new();
        while got.len() < 6 {
            let a = conn
                .get(&format!("/longpoll/{ch}?since={cursor}&timeout=10"))
                .await;
            assert!(data(&a).iter().all(|d| d != "<reset>"), "{ns}: {a}");
            assert!(
                !data(&a).is_empty(),
                "{ns}: messages are waiting, so no empty answer"
            );
            got.extend(data(&a).iter().map(|d| d[..1].to_owned()));
            cursor = a["cursor"].as_str().unwrap().to_owned();
        }
        assert_eq!(got, ["0", "1", "2", "3", "4", "5"], "{ns}");
    }
}
