//! `tidings subscribe CHANNEL… --transport sse|ws|stream|iframe|longpoll|poll`
//!
//! A real terminal client of each transport: it follows the wire format of docs/protocol.md,
//! keeps the cursor, reconnects with it after a drop (so nothing is lost or repeated), and
//! prints each message's data on its own line (`--json` prints whole envelopes). Reset notices
//! go to stderr.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use serde_json::Value;
use tidings_protocol::{ChannelName, Cursor, Epoch, Position};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::http;

/// The transports.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Kind {
    Sse,
    Ws,
    Stream,
    Iframe,
    Longpoll,
    Poll,
}

/// Flags of `subscribe`.
#[derive(clap::Args)]
pub struct Args {
    /// One or more channels.
    #[arg(required = true)]
    channels: Vec<String>,
    /// Transport to use.
    #[arg(long, short, value_enum, default_value = "sse")]
    transport: Kind,
    /// Resume after this cursor.
    #[arg(long)]
    since: Option<String>,
    /// Print whole JSON envelopes instead of the data.
    #[arg(long)]
    json: bool,
    /// Exit after this many messages.
    #[arg(long, short = 'n')]
    count: Option<usize>,
    /// Short-poll interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval: u64,
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TIDINGS_URL")]
    url: String,
}

struct Printer {
    cursor: Cursor,
    json: bool,
    left: Option<usize>,
}

impl Printer {
    /// Handles one envelope; returns false when the count is reached.
    fn envelope(&mut self, v: &Value) -> bool {
        let channel = v["channel"].as_str().and_then(|c| ChannelName::new(c).ok());
        let epoch = v["epoch"].as_str().and_then(Epoch::parse);
        let offset = v["offset"].as_u64();
        match v["type"].as_str() {
            None => {}
            Some("reset") => {
                eprintln!("reset: {v}");
                if let (Some(c), Some(epoch), Some(offset)) = (channel, epoch, offset) {
                    self.cursor.set(&c, Position { epoch, offset });
                }
                return true;
            }
            Some(_) => return true,
        }
        let (Some(c), Some(epoch), Some(offset)) = (channel, epoch, offset) else {
            return true;
        };
        if let Some(p) = self.cursor.get(&c) {
            if p.epoch == epoch && offset <= p.offset {
                return true; // already printed
            }
        }
        self.cursor.set(&c, Position { epoch, offset });
        if self.json {
            println!("{v}");
        } else {
            println!("{}", v["data"].as_str().unwrap_or_default());
        }
        match &mut self.left {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n > 0
            }
            None => true,
        }
    }

    fn since(&self) -> String {
        self.cursor.to_string()
    }
}

fn query(channels: &[String], since: &str) -> String {
    let mut q = form_query(channels);
    if !since.is_empty() {
        q.push_str(&format!("&since={}", http::segment(since)));
    }
    q
}

fn form_query(channels: &[String]) -> String {
    channels
        .iter()
        .map(|c| format!("channel={}", http::segment(c)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Runs the subscription until the count is reached or Ctrl-C.
pub async fn run(a: Args) -> anyhow::Result<()> {
    for c in &a.channels {
        ChannelName::new(c).with_context(|| format!("bad channel {c:?}"))?;
    }
    let cursor = match &a.since {
        Some(s) => Cursor::parse(s).context("bad --since")?,
        None => Cursor::new(),
    };
    let mut p = Printer {
        cursor,
        json: a.json,
        left: a.count,
    };
    let base = a.url.trim_end_matches('/').to_owned();
    let mut backoff = Duration::from_millis(250);
    loop {
        let r = match a.transport {
            Kind::Poll => poll(&base, &a, &mut p, false).await,
            Kind::Longpoll => poll(&base, &a, &mut p, true).await,
            Kind::Stream | Kind::Iframe | Kind::Sse => streaming(&base, &a, &mut p).await,
            Kind::Ws => websocket(&base, &a, &mut p).await,
        };
        match r {
            Ok(true) => return Ok(()),
            Ok(false) => backoff = Duration::from_millis(250),
            Err(e) => {
                eprintln!("{e:#}; reconnecting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// One poll cycle run until done. Returns Ok(true) when the count is reached.
async fn poll(base: &str, a: &Args, p: &mut Printer, long: bool) -> anyhow::Result<bool> {
    let c = http::client();
    loop {
        let path = if long { "longpoll" } else { "poll" };
        let url = format!("{base}/{path}?{}", query(&a.channels, &p.since()));
        let res = http::send(&c, hyper::Method::GET, &url, &[], Bytes::new()).await?;
        let status = res.status();
        let body = http::body(res).await?;
        if !status.is_success() {
            bail!("{status}: {}", String::from_utf8_lossy(&body));
        }
        let v: Value = serde_json::from_slice(&body).context("poll body is not JSON")?;
        for m in v["messages"].as_array().into_iter().flatten() {
            if !p.envelope(m) {
                return Ok(true);
            }
        }
        if let Some(c) = v["cursor"].as_str().filter(|c| !c.is_empty()) {
            p.cursor = Cursor::parse(c).context("server sent a bad cursor")?;
        }
        if !long {
            tokio::time::sleep(Duration::from_millis(a.interval)).await;
        }
    }
}

/// SSE, XHR streaming and the iframe: one long response, parsed as it arrives.
async fn streaming(base: &str, a: &Args, p: &mut Printer) -> anyhow::Result<bool> {
    let c = http::client();
    let since = p.since();
    let (url, headers) = match a.transport {
        Kind::Sse => {
            let mut h = vec![("accept", "text/event-stream".to_owned())];
            if !since.is_empty() {
                h.push(("last-event-id", since));
            }
            (
                format!("{base}/sse?{}&format=json", form_query(&a.channels)),
                h,
            )
        }
        Kind::Iframe => (
            format!("{base}/iframe?{}&callback=cb", query(&a.channels, &since)),
            vec![],
        ),
        _ => (
            format!("{base}/stream?{}", query(&a.channels, &since)),
            vec![],
        ),
    };
    let res = http::send(&c, hyper::Method::GET, &url, &headers, Bytes::new()).await?;
    if !res.status().is_success() {
        let status = res.status();
        bail!(
            "{status}: {}",
            String::from_utf8_lossy(&http::body(res).await?)
        );
    }
    let mut body = res.into_body();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("connection dropped")?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        let done = match a.transport {
            Kind::Sse => sse_events(&mut buf, p)?,
            Kind::Iframe => iframe_calls(&mut buf, p)?,
            _ => ndjson_lines(&mut buf, p)?,
        };
        if done {
            return Ok(true);
        }
    }
    Ok(false)
}

fn ndjson_lines(buf: &mut BytesMut, p: &mut Printer) -> anyhow::Result<bool> {
    while let Some(i) = buf.iter().position(|&b| b == b'\n') {
        let line = buf.split_to(i + 1);
        let v: Value = serde_json::from_slice(&line).context("stream line is not JSON")?;
        if !p.envelope(&v) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn iframe_calls(buf: &mut BytesMut, p: &mut Printer) -> anyhow::Result<bool> {
    const OPEN: &[u8] = b"<script>parent.cb(";
    const CLOSE: &[u8] = b");</script>";
    loop {
        let Some(start) = find(buf, OPEN) else {
            return Ok(false);
        };
        let Some(end) = find(&buf[start..], CLOSE) else {
            return Ok(false);
        };
        let json = buf[start + OPEN.len()..start + end].to_vec();
        let _ = buf.split_to(start + end + CLOSE.len());
        let v: Value = serde_json::from_slice(&json).context("iframe call is not JSON")?;
        if !p.envelope(&v) {
            return Ok(true);
        }
    }
}

fn sse_events(buf: &mut BytesMut, p: &mut Printer) -> anyhow::Result<bool> {
    while let Some(end) = find(buf, b"\n\n") {
        let event = buf.split_to(end + 2);
        let text = String::from_utf8_lossy(&event);
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        if data.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&data.join("\n")).context("SSE data is not JSON")?;
        if !p.envelope(&v) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn websocket(base: &str, a: &Args, p: &mut Printer) -> anyhow::Result<bool> {
    let url = format!("{}/ws", base.replacen("http", "ws", 1));
    let mut req = url.clone().into_client_request().context("bad URL")?;
    req.headers_mut()
        .insert("sec-websocket-protocol", "tidings.v1".parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let since = p.since();
    for (i, c) in a.channels.iter().enumerate() {
        let cmd = serde_json::json!({"id": i + 1, "op": "subscribe", "channel": c, "since": since});
        ws.send(Message::text(cmd.to_string())).await?;
    }
    while let Some(msg) = ws.next().await {
        let v: Value = match msg.context("connection dropped")? {
            Message::Text(t) => serde_json::from_str(t.as_str()).context("frame is not JSON")?,
            Message::Binary(b) => {
                let nl = b.iter().position(|&x| x == b'\n').unwrap_or(b.len());
                let mut v: Value =
                    serde_json::from_slice(&b[..nl]).context("binary header is not JSON")?;
                v["data"] = Value::String(
                    String::from_utf8_lossy(&b[(nl + 1).min(b.len())..]).into_owned(),
                );
                v
            }
            Message::Close(f) => bail!("server closed the socket: {f:?}"),
            _ => continue,
        };
        if let Some(err) = v.get("error") {
            bail!("server refused a command: {err}");
        }
        if v.get("id").is_some() {
            continue; // a reply
        }
        if !p.envelope(&v) {
            return Ok(true);
        }
    }
    Ok(false)
}
