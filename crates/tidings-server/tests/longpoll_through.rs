//! Long polls answered through: on a kept-alive connection the publisher writes a held poll's
//! answer straight to its socket. What the client sees must not change: whole answers, in
//! order, nothing lost or repeated, also when the socket takes an answer only in part, when the
//! client pipelines its next request, or when it leaves while its poll is held. `/metrics`
//! shows that answers were in fact written through. (The recorder is shared by every server in
//! this test binary, so the counts are lower bounds.)

mod common;

use std::time::Duration;

use common::{channel, data, KeptAlive, Server};
use tokio::net::TcpSocket;

/// A long-poll counter from `/metrics`: `delivered` or `written_through`.
async fn counter(s: &Server, name: &str) -> u64 {
    s.messages(name, "longpoll").await
}

async fn written_through(s: &Server) -> u64 {
    counter(s, "written_through").await
}

async fn longpoll_subscribers(s: &Server, ch: &str) -> u64 {
    let (_, v) = s.get_json(&format!("/api/channels/{ch}")).await;
    v["subscribers"]["longpoll"].as_u64().unwrap_or(0)
}

/// Waits up to 2 s for the channel's long-poll subscribers to number `n`.
async fn subscribers_become(s: &Server, ch: &str, n: u64) -> bool {
    for _ in 0..200 {
        if longpoll_subscribers(s, ch).await == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn cursor_of(s: &Server, ch: &str, data: &str) -> String {
    s.publish(ch, data).await["cursor"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn held_polls_are_answered_by_the_publisher_and_resume_exactly() {
    let s = Server::start("").await;
    let ch = channel("through");
    let c0 = cursor_of(&s, &ch, "m0").await;
    let before = written_through(&s).await;
    let delivered_before = counter(&s, "delivered").await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push((KeptAlive::connect(&s).await, c0.clone()));
    }
    for i in 1..=20 {
        for (c, cursor) in clients.iter_mut() {
            c.send(&format!("/longpoll/{ch}?since={cursor}&timeout=10"))
                .await;
        }
        // Held (and armed) before the publish, so the publisher answers.
        tokio::time::sleep(Duration::from_millis(30)).await;
        s.publish(&ch, &format!("m{i}")).await;
        for (c, cursor) in clients.iter_mut() {
            let a = c.answer().await;
            assert_eq!(data(&a), [format!("m{i}")]);
            *cursor = a["cursor"].as_str().unwrap().to_owned();
        }
    }
    let through = written_through(&s).await - before;
    assert!(
        through >= 60,
        "only {through} of 60 answers written through"
    );
    let delivered = counter(&s, "delivered").await - delivered_before;
    assert!(delivered >= 60, "only {delivered} of 60 deliveries counted");

    // Published while no poll is held: the next poll gets both at once, from the kept
    // subscription's queue.
    s.publish(&ch, "m21").await;
    s.publish(&ch, "m22").await;
    for (c, cursor) in clients.iter_mut() {
        let a = c
            .get(&format!("/longpoll/{ch}?since={cursor}&timeout=10"))
            .await;
        assert_eq!(data(&a), ["m21", "m22"]);
    }
}

#[tokio::test]
async fn an_answer_the_socket_takes_in_part_arrives_whole_and_in_order() {
    let s = Server::start("queue_bytes = 33554432\nmax_message_bytes = 8388608\n").await;
    let ch = channel("part");
    let c0 = cursor_of(&s, &ch, "m0").await;
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut c = KeptAlive::on(sock.connect(s.addr).await.unwrap());
    c.send(&format!("/longpoll/{ch}?since={c0}&timeout=10"))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = written_through(&s).await;
    // The first answer is bigger than a socket's largest send buffer (`tcp_wmem`, 4 MiB), so
    // it goes out in part; the connection must send the rest at once, not when another message
    // or the hold comes. The rest are 60 KB each.
    let big = |i: usize| {
        format!(
            "{i:02}:{}",
            "x".repeat(if i == 0 { 5 << 20 } else { 60_000 })
        )
    };
    s.publish(&ch, &big(0)).await;
    assert!(
        written_through(&s).await > before,
        "the answer went through"
    );
    let mut a = c
        .answer_within(Duration::from_secs(3))
        .await
        .expect("the rest of the answer without waiting for the 10 s hold");
    for i in 1..30 {
        s.publish(&ch, &big(i)).await;
    }
    let mut got = Vec::new();
    loop {
        got.extend(data(&a));
        if got.len() >= 30 {
            break;
        }
        let cursor = a["cursor"].as_str().unwrap().to_owned();
        a = c
            .get(&format!("/longpoll/{ch}?since={cursor}&timeout=10"))
            .await;
    }
    let want: Vec<String> = (0..30).map(big).collect();
    assert!(got == want, "answers lost, repeated or reordered");
}

#[tokio::test]
async fn pipelined_polls_are_answered_in_order_without_waiting_for_the_hold() {
    let s = Server::start("").await;
    let ch = channel("pipe");
    let c0 = cursor_of(&s, &ch, "m0").await;
    let mut c = KeptAlive::connect(&s).await;
    let poll = format!("GET /longpoll/{ch}?since={c0}&timeout=20 HTTP/1.1\r\nHost: x\r\n\r\n");
    c.send_raw(&format!("{poll}{poll}")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let c1 = cursor_of(&s, &ch, "m1").await;
    // Both answered now, not after the 20 s hold: the second resumes from the same cursor.
    for _ in 0..2 {
        let a = c
            .answer_within(Duration::from_secs(3))
            .await
            .expect("answered without waiting for the hold");
        assert_eq!(
            (data(&a), a["cursor"].as_str()),
            (vec!["m1".into()], Some(&*c1))
        );
    }
    // The connection goes on serving polls.
    c.send(&format!("/longpoll/{ch}?since={c1}&timeout=10"))
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.publish(&ch, "m2").await;
    assert_eq!(data(&c.answer().await), ["m2"]);
}

#[tokio::test]
async fn a_client_that_leaves_a_held_poll_is_unsubscribed_at_once() {
    let s = Server::start("").await;
    let ch = channel("leave");
    let c0 = cursor_of(&s, &ch, "m0").await;
    let mut c = KeptAlive::connect(&s).await;
    c.send(&format!("/longpoll/{ch}?since={c0}&timeout=60"))
        .await;
    assert!(subscribers_become(&s, &ch, 1).await, "the poll is held");
    drop(c);
    assert!(
        subscribers_become(&s, &ch, 0).await,
        "a poll whose client left is still subscribed 2 s later (its hold is 60 s)"
    );
}
