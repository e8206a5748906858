//! A raw HTTP/1.1 client of one kept-alive connection, for the polls whose behaviour depends
//! on the connection they arrive on (a long poll keeps its subscription there).

use std::time::Duration;

use super::Server;

/// A client of one kept-alive connection that sends `GET`s and reads their responses in order
/// (pipelined ones included).
pub struct KeptAlive {
    pub stream: tokio::net::TcpStream,
    /// Bytes read past the last response.
    rest: Vec<u8>,
}

impl KeptAlive {
    pub async fn connect(s: &Server) -> KeptAlive {
        KeptAlive::on(tokio::net::TcpStream::connect(s.addr).await.unwrap())
    }

    /// A client of an already connected socket.
    pub fn on(stream: tokio::net::TcpStream) -> KeptAlive {
        KeptAlive {
            stream,
            rest: Vec::new(),
        }
    }

    /// Sends the request head now; [`KeptAlive::answer`] reads the response.
    pub async fn send(&mut self, path: &str) {
        self.send_raw(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
            .await;
    }

    /// Sends `text` as it is (several requests, to pipeline them).
    pub async fn send_raw(&mut self, text: &str) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(text.as_bytes()).await.unwrap();
    }

    /// Reads one `200` response with a `content-length` body and parses the body.
    pub async fn answer(&mut self) -> serde_json::Value {
        self.answer_within(Duration::from_secs(5))
            .await
            .expect("an answer within 5 s")
    }

    /// [`KeptAlive::answer`], or `None` when none is complete within `limit`.
    pub async fn answer_within(&mut self, limit: Duration) -> Option<serde_json::Value> {
        use tokio::io::AsyncReadExt;
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = vec![0u8; 65536];
        loop {
            let got = &self.rest;
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .expect("content-length")
                    .trim()
                    .parse()
                    .unwrap();
                if got.len() >= end + 4 + len {
                    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
                    let body = serde_json::from_slice(&got[end + 4..end + 4 + len]).unwrap();
                    self.rest.drain(..end + 4 + len);
                    return Some(body);
                }
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .ok()?
                .unwrap();
            assert!(
                n > 0,
                "connection closed: {}",
                String::from_utf8_lossy(&self.rest)
            );
            self.rest.extend_from_slice(&buf[..n]);
        }
    }

    pub async fn get(&mut self, path: &str) -> serde_json::Value {
        self.send(path).await;
        self.answer().await
    }
}

/// The `data` of each message in a poll answer (`<reset>` for a reset entry).
pub fn data(v: &serde_json::Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].as_str().unwrap_or("<reset>").to_owned())
        .collect()
}
