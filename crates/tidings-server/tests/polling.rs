//! Short and long polling: latest-message semantics, ETag/304, hold and timeout.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{channel, Server};
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
