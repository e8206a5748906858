//! One subscriber: a task that connects over its transport, parses what arrives, hands each
//! payload to its [`Slot`], and reconnects with its resume point when the connection ends.
//!
//! Resume points per dialect:
//! - SSE (both servers): the last `id:`, sent back as `Last-Event-ID`.
//! - Tidings stream, iframe, poll and long poll: the cursor, sent back as `?since=`.
//! - Nchan long poll and interval poll: `Last-Modified`/`Etag`, sent back as
//!   `If-Modified-Since`/`If-None-Match`.
//! - Raw WebSocket frames and Nchan's chunked stream carry no position: a reconnect there starts
//!   from "now", and anything published meanwhile shows up as loss.
//!
//! A storm (`--storm-at`) makes every session end at once and reconnect at once.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::args::{Server, Transport};
use crate::framing::{self, Format, Item, Parser};
use crate::http1::{self, BodyDecoder, BodyKind, Conn};
use crate::net;
use crate::slot::{now_ns, Latency, Seen, Slot};
use crate::target::Targets;

/// What every subscriber of a process shares.
pub struct Ctx {
    pub server: Server,
    pub transport: Transport,
    pub targets: Targets,
    pub headers: Vec<(String, String)>,
    pub source: Option<std::net::IpAddr>,
    pub poll_interval: Duration,
    pub latency: Latency,
    pub storm: watch::Receiver<u64>,
    /// Bounds connection attempts in flight.
    pub gate: Arc<tokio::sync::Semaphore>,
}

/// Where a subscriber resumes.
#[derive(Debug, Default)]
struct Resume {
    /// Cursor or SSE id.
    cursor: String,
    last_modified: String,
    etag: String,
}

enum End {
    Closed,
    Storm,
}

/// Runs subscriber `idx` until aborted.
pub async fn run(ctx: Arc<Ctx>, slot: Arc<Slot>, idx: usize) {
    if let Ok(permit) = ctx.gate.clone().acquire_owned().await {
        if let Ok(mut p) = slot.permit.lock() {
            *p = Some(permit);
        }
    }
    let mut resume = Resume::default();
    let mut storm = ctx.storm.clone();
    storm.borrow_and_update();
    let mut backoff = Duration::from_millis(100);
    let mut stormed = false;
    loop {
        let r = match ctx.transport {
            Transport::Ws => ws(&ctx, &slot, idx, &mut storm, stormed).await,
            Transport::Sse | Transport::Stream | Transport::Iframe => {
                streaming(&ctx, &slot, idx, &mut resume, &mut storm, stormed).await
            }
            Transport::Longpoll | Transport::Poll => {
                polling(&ctx, &slot, idx, &mut resume, &mut storm, stormed).await
            }
        };
        slot.reconnects.fetch_add(1, Relaxed);
        match r {
            Ok(End::Storm) => {
                stormed = true;
                slot.reconnected_ns.store(0, Relaxed);
                slot.recovered_ns.store(0, Relaxed);
            }
            Ok(End::Closed) => backoff = Duration::from_millis(100),
            Err(e) => {
                slot.error(&e);
                slot.release(false);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The connection is up: count it ready, note a storm reconnect, and park a slow consumer.
async fn up(slot: &Slot, stormed: bool) {
    slot.release(true);
    if stormed && slot.reconnected_ns.load(Relaxed) == 0 {
        slot.reconnected_ns.store(now_ns(), Relaxed);
    }
    if slot.slow {
        std::future::pending::<()>().await;
    }
}

fn handle(ctx: &Ctx, slot: &Slot, idx: usize, seen: Seen, resume: &mut Resume, item: Item) {
    match item {
        Item::Data(d) => slot.deliver(d, seen, &ctx.latency, idx),
        Item::Resume(r) => {
            resume.cursor.clear();
            resume.cursor.push_str(r);
        }
        Item::Reset => {
            slot.resets.fetch_add(1, Relaxed);
        }
    }
}

/// Percent-encodes a query value (cursors hold `~`, `,`, `:` and channel characters).
fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_query(target: &str, key: &str, value: &str) -> String {
    let sep = if target.contains('?') { '&' } else { '?' };
    format!("{target}{sep}{key}={}", query_value(value))
}

async fn refused(conn: &mut Conn, head: &http1::Head, what: &str) -> anyhow::Error {
    let mut body = BytesMut::new();
    if head.body_kind() != BodyKind::UntilClose {
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.body(head, &mut body)).await;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    anyhow::anyhow!("{what} answered {}: {}", head.status, text.trim())
}

async fn streaming(
    ctx: &Ctx,
    slot: &Slot,
    idx: usize,
    resume: &mut Resume,
    storm: &mut watch::Receiver<u64>,
    stormed: bool,
) -> anyhow::Result<End> {
    let url = &ctx.targets.subscribe[slot.channel as usize];
    let mut conn = Conn::new(net::connect(url.addr, ctx.source, slot.io.clone()).await?);
    let mut target = url.target.clone();
    let mut headers: Vec<(&str, &str)> = Vec::new();
    let format = match (ctx.transport, ctx.server) {
        (Transport::Sse, _) => {
            headers.push(("Accept", "text/event-stream"));
            if !resume.cursor.is_empty() {
                headers.push(("Last-Event-ID", &resume.cursor));
            }
            Format::Sse
        }
        (Transport::Stream, Server::Nchan) => {
            headers.push(("TE", "chunked"));
            Format::Raw
        }
        (t, _) => {
            if !resume.cursor.is_empty() {
                target = with_query(&target, "since", &resume.cursor);
            }
            if t == Transport::Iframe {
                Format::Iframe
            } else {
                Format::Ndjson
            }
        }
    };
    headers.extend(ctx.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    conn.send(&http1::request(
        "GET",
        &target,
        &url.authority,
        &headers,
        b"",
    ))
    .await?;
    slot.requests.fetch_add(1, Relaxed);
    let head = conn.head().await?;
    if head.status != 200 {
        return Err(refused(&mut conn, &head, &format!("GET {}", url.to_text())).await);
    }
    up(slot, stormed).await;
    let kind = head.body_kind();
    // One `changed()` future per session, not per read: re-arming a watch each time costs.
    let stormy = storm.changed();
    tokio::pin!(stormy);
    let mut dec = BodyDecoder::new(kind);
    let mut parser = Parser::new(format);
    let mut body = BytesMut::new();
    loop {
        dec.decode(&mut conn.buf, &mut body)?;
        if !body.is_empty() {
            let seen = Seen::now(conn.io.arrival_ns());
            parser.feed(&body, &mut |item| {
                handle(ctx, slot, idx, seen, resume, item)
            });
            body.clear();
        }
        if dec.done() {
            return Ok(End::Closed);
        }
        tokio::select! {
            r = conn.fill() => match r {
                Ok(()) => {}
                Err(_) if kind == BodyKind::UntilClose => return Ok(End::Closed),
                Err(e) => return Err(e.context("the stream broke")),
            },
            _ = &mut stormy => return Ok(End::Storm),
        }
    }
}

async fn ws(
    ctx: &Ctx,
    slot: &Slot,
    idx: usize,
    storm: &mut watch::Receiver<u64>,
    stormed: bool,
) -> anyhow::Result<End> {
    let url = &ctx.targets.subscribe[slot.channel as usize];
    let io = net::connect(url.addr, ctx.source, slot.io.clone()).await?;
    let mut req = url
        .to_text()
        .into_client_request()
        .context("bad WebSocket URL")?;
    for (k, v) in &ctx.headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::try_from(k.as_str())?,
            v.parse()?,
        );
    }
    // Small buffers: thousands of idle sockets must not cost 128 KiB each.
    let config = WebSocketConfig::default()
        .read_buffer_size(2048)
        .write_buffer_size(0);
    slot.requests.fetch_add(1, Relaxed);
    let (mut socket, _) = tokio_tungstenite::client_async_with_config(req, io, Some(config))
        .await
        .with_context(|| format!("WebSocket handshake with {} failed", url.to_text()))?;
    up(slot, stormed).await;
    let mut ignore = Resume::default();
    let stormy = storm.changed();
    tokio::pin!(stormy);
    loop {
        tokio::select! {
            m = socket.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let seen = Seen::now(socket.get_ref().arrival_ns());
                    handle(ctx, slot, idx, seen, &mut ignore, Item::Data(t.as_bytes()))
                }
                Some(Ok(Message::Binary(b))) => {
                    let seen = Seen::now(socket.get_ref().arrival_ns());
                    handle(ctx, slot, idx, seen, &mut ignore, Item::Data(&b))
                }
                Some(Ok(Message::Close(f))) => bail!("the server closed the WebSocket: {f:?}"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(anyhow::Error::new(e).context("the WebSocket broke")),
                None => return Ok(End::Closed),
            },
            _ = &mut stormy => return Ok(End::Storm),
        }
    }
}

async fn polling(
    ctx: &Ctx,
    slot: &Slot,
    idx: usize,
    resume: &mut Resume,
    storm: &mut watch::Receiver<u64>,
    stormed: bool,
) -> anyhow::Result<End> {
    let url = &ctx.targets.subscribe[slot.channel as usize];
    let mut conn = Conn::new(net::connect(url.addr, ctx.source, slot.io.clone()).await?);
    let short = ctx.transport == Transport::Poll;
    let mut tick = tokio::time::interval(ctx.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    let mut body = BytesMut::new();
    loop {
        if short {
            tokio::select! {
                _ = tick.tick() => {}
                _ = storm.changed() => return Ok(End::Storm),
            }
        }
        let mut target = url.target.clone();
        let mut headers: Vec<(&str, &str)> = Vec::new();
        let tag;
        match ctx.server {
            Server::Tidings if !resume.cursor.is_empty() => {
                target = with_query(&target, "since", &resume.cursor);
                if short && !resume.etag.is_empty() {
                    tag = resume.etag.clone();
                    headers.push(("If-None-Match", &tag));
                }
            }
            Server::Nchan if !resume.etag.is_empty() => {
                headers.push(("If-Modified-Since", &resume.last_modified));
                headers.push(("If-None-Match", &resume.etag));
            }
            _ => {}
        }
        headers.extend(ctx.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        conn.send(&http1::request(
            "GET",
            &target,
            &url.authority,
            &headers,
            b"",
        ))
        .await?;
        slot.requests.fetch_add(1, Relaxed);
        if first {
            // A long poll is held by design; being sent is as ready as it gets.
            first = false;
            if !short {
                up(slot, stormed).await;
            }
        }
        let head = tokio::select! {
            h = conn.head() => h?,
            _ = storm.changed() => return Ok(End::Storm),
        };
        body.clear();
        if head.status != 200 && head.status != 304 {
            return Err(refused(&mut conn, &head, &format!("GET {}", url.to_text())).await);
        }
        conn.body(&head, &mut body).await?;
        if short {
            up(slot, stormed).await;
        }
        let seen = Seen::now(conn.io.arrival_ns());
        let mut got = 0;
        if head.status == 200 {
            match ctx.server {
                Server::Tidings => {
                    got = framing::poll_body(&body, &mut |item| {
                        handle(ctx, slot, idx, seen, resume, item)
                    });
                    if let Some(e) = head.header("etag") {
                        resume.etag = e.to_owned();
                    }
                }
                Server::Nchan => {
                    if !body.is_empty() {
                        got = 1;
                        handle(ctx, slot, idx, seen, resume, Item::Data(&body));
                    }
                }
            }
        }
        if ctx.server == Server::Nchan {
            if let Some(lm) = head.header("last-modified") {
                resume.last_modified = lm.to_owned();
            }
            if let Some(e) = head.header("etag") {
                resume.etag = e.to_owned();
            }
        }
        if got == 0 {
            slot.empty.fetch_add(1, Relaxed);
        }
        if head
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return Ok(End::Closed);
        }
    }
}
