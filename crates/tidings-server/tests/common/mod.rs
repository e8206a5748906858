//! Test harness: starts the real server on 127.0.0.1:0 and talks to it with real clients of
//! every transport (hyper for HTTP, tokio-tungstenite for WebSocket).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tidings_server::Config;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

mod kept_alive;
#[allow(unused_imports)]
pub use kept_alive::{data, KeptAlive};

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    pub http: Client<HttpConnector, Full<Bytes>>,
}

impl Server {
    /// Starts a server with demos off and `extra` TOML appended to the config.
    pub async fn start(extra: &str) -> Server {
        let toml = format!("demos = false\nlisten = \"127.0.0.1:0\"\n{extra}");
        let config = Config::load(Some(&toml), [], []).expect("valid test config");
        Server::start_with(config).await
    }

    pub async fn start_with(config: Config) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let broker = tidings_server::memory_broker(&config);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(tidings_server::run(listener, config, broker, async move {
            let _ = rx.await;
        }));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Server {
            addr,
            stop: Some(tx),
            task: Some(task),
            http,
        }
    }

    /// A handle on a server running elsewhere (another process).
    pub fn attach(addr: SocketAddr) -> Server {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Server {
            addr,
            stop: None,
            task: None,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Begins graceful shutdown.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> hyper::Response<Incoming> {
        let mut req = hyper::Request::builder().method(method).uri(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).expect("request");
        self.http.request(req).await.expect("server reachable")
    }

    pub async fn get(&self, path: &str) -> (u16, Bytes) {
        let res = self.request("GET", path, &[], Bytes::new()).await;
        let status = res.status().as_u16();
        (
            status,
            res.into_body().collect().await.expect("body").to_bytes(),
        )
    }

    /// A delivery counter from `/metrics`, `tidings_messages_{name}_total`, for `transport`
    /// (`delivered` or `written_through`; 0 before the first).
    pub async fn messages(&self, name: &str, transport: &str) -> u64 {
        let (_, body) = self.get("/metrics").await;
        let prefix = format!("tidings_messages_{name}_total{{transport=\"{transport}\"}} ");
        String::from_utf8_lossy(&body)
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let (s, b) = self.get(path).await;
        (
            s,
            serde_json::from_slice(&b).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {b:?}")),
        )
    }

    /// Publishes text; returns the reply JSON.
    pub async fn publish(&self, channel: &str, data: &str) -> Value {
        self.publish_with(channel, data, None).await
    }

    pub async fn publish_with(&self, channel: &str, data: &str, event: Option<&str>) -> Value {
        let path = match event {
            Some(e) => format!("/api/channels/{channel}/messages?event={e}"),
            None => format!("/api/channels/{channel}/messages"),
        };
        let res = self
            .request(
                "POST",
                &path,
                &[("content-type", "text/plain")],
                data.to_owned(),
            )
            .await;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(status, 201, "publish failed: {body:?}");
        serde_json::from_slice(&body).expect("publish reply JSON")
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn ws(
        &self,
        path: &str,
        protocol: Option<&str>,
    ) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        let mut req = self.ws_url(path).into_client_request().expect("ws request");
        if let Some(p) = protocol {
            req.headers_mut()
                .insert("sec-websocket-protocol", p.parse().expect("header"));
        }
        tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connect")
            .0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The transports a [`Sub`] can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Poll,
    LongPoll,
    Iframe,
    Stream,
    Sse,
    Ws,
    WsRaw,
}

pub const ALL: [Kind; 7] = [
    Kind::Poll,
    Kind::LongPoll,
    Kind::Iframe,
    Kind::Stream,
    Kind::Sse,
    Kind::Ws,
    Kind::WsRaw,
];

enum Conn {
    Body(Incoming, BytesMut),
    Ws(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    Poll { cursor: String },
}

/// A subscriber over one transport. [`Sub::next`] yields the next message or reset envelope
/// (control notices are consumed). Raw WebSocket yields `{"data": …}` only.
pub struct Sub {
    pub kind: Kind,
    conn: Conn,
    queue: VecDeque<Value>,
    path_query: String,
    pub ended: bool,
    pub controls: Vec<Value>,
}

fn channels_query(channels: &[&str]) -> String {
    channels
        .iter()
        .map(|c| format!("channel={c}"))
        .collect::<Vec<_>>()
        .join("&")
}

impl Sub {
    /// Subscribes to `channels` (one, or several on the base path) resuming after `since`.
    pub async fn open(s: &Server, kind: Kind, channels: &[&str], since: Option<&str>) -> Sub {
        let since_q = since.map(|c| format!("&since={c}")).unwrap_or_default();
        let base = |name: &str| -> String {
            if channels.len() == 1 {
                format!("/{name}/{}?x=1{since_q}", channels[0])
            } else {
                format!("/{name}?{}{since_q}", channels_query(channels))
            }
        };
        let (conn, path_query) = match kind {
            Kind::Poll | Kind::LongPoll => {
                let name = if kind == Kind::Poll {
                    "poll"
                } else {
                    "longpoll"
                };
                let q = if channels.len() == 1 {
                    format!("/{name}/{}?timeout=5", channels[0])
                } else {
                    format!("/{name}?timeout=5&{}", channels_query(channels))
                };
                (
                    Conn::Poll {
                        cursor: since.unwrap_or("").to_owned(),
                    },
                    q,
                )
            }
            Kind::Iframe | Kind::Stream | Kind::Sse => {
                let name = match kind {
                    Kind::Iframe => "iframe",
                    Kind::Stream => "stream",
                    _ => "sse",
                };
                let mut path = base(name);
                if kind == Kind::Sse {
                    path.push_str("&format=json");
                }
                if kind == Kind::Iframe {
                    path.push_str("&callback=cb");
                }
                let res = s.request("GET", &path, &[], Bytes::new()).await;
                assert_eq!(res.status(), 200, "{path}");
                (Conn::Body(res.into_body(), BytesMut::new()), path)
            }
            Kind::Ws => {
                let mut ws = s.ws("/ws", Some("tidings.v1")).await;
                for (i, c) in channels.iter().enumerate() {
                    let cmd = serde_json::json!({"id": i, "op": "subscribe", "channel": c, "since": since});
                    ws.send(Message::text(cmd.to_string())).await.expect("send");
                }
                (Conn::Ws(Box::new(ws)), String::new())
            }
            Kind::WsRaw => {
                assert_eq!(channels.len(), 1);
                let path = format!(
                    "/ws/{}{}",
                    channels[0],
                    since.map(|c| format!("?since={c}")).unwrap_or_default()
                );
                (Conn::Ws(Box::new(s.ws(&path, None).await)), String::new())
            }
        };
        Sub {
            kind,
            conn,
            queue: VecDeque::new(),
            path_query,
            ended: false,
            controls: Vec::new(),
        }
    }

    /// The next message or reset, within 10 s. Panics on timeout.
    pub async fn next(&mut self, s: &Server) -> Value {
        self.next_within(s, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("{:?}: nothing within 10 s", self.kind))
    }

    /// The next message or reset, or None after `limit` or when the response ended.
    pub async fn next_within(&mut self, s: &Server, limit: Duration) -> Option<Value> {
        tokio::time::timeout(limit, self.next_inner(s))
            .await
            .ok()
            .flatten()
    }

    async fn next_inner(&mut self, s: &Server) -> Option<Value> {
        loop {
            if let Some(v) = self.queue.pop_front() {
                return Some(v);
            }
            if self.ended {
                return None;
            }
            match &mut self.conn {
                Conn::Poll { cursor } => {
                    let path = if cursor.is_empty() {
                        self.path_query.clone()
                    } else {
                        format!("{}&since={cursor}", self.path_query)
                    };
                    let (status, v) = s.get_json(&path).await;
                    assert_eq!(status, 200, "{path}: {v}");
                    *cursor = v["cursor"].as_str().expect("cursor").to_owned();
                    self.queue
                        .extend(v["messages"].as_array().expect("messages").iter().cloned());
                    if self.kind == Kind::Poll && self.queue.is_empty() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                Conn::Body(body, buf) => {
                    let Some(frame) = body.frame().await else {
                        self.ended = true;
                        continue;
                    };
                    // A dropped connection (a killed node) ends the subscription.
                    let Ok(frame) = frame else {
                        self.ended = true;
                        continue;
                    };
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    buf.extend_from_slice(&data);
                    let parsed = match self.kind {
                        Kind::Sse => parse_sse(buf),
                        Kind::Iframe => parse_iframe(buf),
                        _ => parse_ndjson(buf),
                    };
                    for v in parsed {
                        match v["type"].as_str() {
                            Some("open") | Some("heartbeat") | Some("reconnect") => {
                                self.controls.push(v)
                            }
                            _ => self.queue.push_back(v),
                        }
                    }
                }
                Conn::Ws(ws) => {
                    let Some(msg) = ws.next().await else {
                        self.ended = true;
                        continue;
                    };
                    let Ok(msg) = msg else {
                        self.ended = true;
                        continue;
                    };
                    match msg {
                        Message::Text(t) if self.kind == Kind::WsRaw => {
                            let v = if t.as_str().starts_with("{\"type\":\"reset\"") {
                                serde_json::from_str(t.as_str()).expect("reset JSON")
                            } else {
                                serde_json::json!({ "data": t.as_str() })
                            };
                            self.queue.push_back(v);
                        }
                        Message::Binary(b) if self.kind == Kind::WsRaw => {
                            self.queue
                                .push_back(serde_json::json!({ "binary": b.to_vec() }));
                        }
                        Message::Text(t) => {
                            let v: Value = serde_json::from_str(t.as_str()).expect("ws JSON");
                            if v.get("id").is_some() {
                                assert!(v.get("error").is_none(), "command refused: {v}");
                                self.controls.push(v);
                            } else {
                                self.queue.push_back(v);
                            }
                        }
                        Message::Binary(b) => {
                            let nl = b.iter().position(|&x| x == b'\n').expect("binary header");
                            let mut v: Value =
                                serde_json::from_slice(&b[..nl]).expect("header JSON");
                            v["binary"] = serde_json::json!(b[nl + 1..].to_vec());
                            self.queue.push_back(v);
                        }
                        Message::Close(f) => {
                            self.controls.push(serde_json::json!({"type": "close", "code": f.as_ref().map(|f| u16::from(f.code)), "reason": f.as_ref().map(|f| f.reason.to_string())}));
                            self.ended = true;
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

pub fn parse_ndjson(buf: &mut BytesMut) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(i) = buf.iter().position(|&b| b == b'\n') {
        let line = buf.split_to(i + 1);
        out.push(
            serde_json::from_slice(&line)
                .unwrap_or_else(|e| panic!("bad ndjson line {line:?}: {e}")),
        );
    }
    out
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn parse_iframe(buf: &mut BytesMut) -> Vec<Value> {
    const OPEN: &[u8] = b"<script>parent.cb(";
    const CLOSE: &[u8] = b");</script>";
    let mut out = Vec::new();
    while let Some(start) = find(buf, OPEN) {
        let Some(end) = find(&buf[start..], CLOSE) else {
            break;
        };
        let json = buf[start + OPEN.len()..start + end].to_vec();
        let _ = buf.split_to(start + end + CLOSE.len());
        out.push(serde_json::from_slice(&json).unwrap_or_else(|e| panic!("bad iframe call: {e}")));
    }
    out
}

/// Parses complete SSE events in `format=json` into their envelopes.
pub fn parse_sse(buf: &mut BytesMut) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(end) = find(buf, b"\n\n") {
        let event = buf.split_to(end + 2);
        let text = String::from_utf8(event.to_vec()).expect("utf-8");
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        if !data.is_empty() {
            out.push(serde_json::from_str(&data.join("\n")).expect("SSE data JSON"));
        }
    }
    out
}

/// The cursor entry of an envelope.
pub fn entry(v: &Value) -> String {
    format!(
        "{}~{}~{}",
        v["channel"].as_str().expect("channel"),
        v["epoch"].as_str().expect("epoch"),
        v["offset"]
    )
}

/// A unique channel name for a test.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}-{:x}", rand_u32())
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish() as u32
}
