//! The accept loop, and the streaming transports served without hyper.
//!
//! Why: hyper gives every HTTP/1 connection an 8 KiB read buffer and an 8 KiB header write
//! buffer for its whole life. For a push server most connections sit idle in a stream, so that
//! is most of their cost (measured: 16 KB per idle SSE connection through hyper). So the accept
//! loop reads the first request head itself into a small buffer. A `GET` for SSE, XHR streaming
//! or the forever iframe is answered right here: the response head, then chunked frames from
//! the same [`Pump`](crate::transport::Pump) the hyper path uses, one `write` per wake-up, in a
//! task of the stream's own, and the connection closes when the stream ends. Polls are answered
//! here too, on the kept-alive connection: a long poll may keep its subscription for the
//! connection's next poll ([`longpoll::Kept`]), and while it is held the publisher may write
//! its answer ([`crate::transport::answer`]). The connection keeps one request deadline, one
//! hold timer and one shutdown wait for its life. Every other connection (API, publishing,
//! WebSocket upgrades, demo pages) is handed to hyper with the bytes already read put back in
//! front ([`Prefixed`]), so routing, layers and upgrades work unchanged. A streaming request that
//! arrives later on a kept-alive hyper connection is served by hyper, correctly, at hyper's cost.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::Router;
use bytes::{Buf, BufMut, BytesMut};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::error::{ApiError, Code};
use crate::prefixed::Prefixed;
use crate::state::State;
use crate::stop::{self, Stop};
use crate::transport::answer::{json_head, HEAD_ROOM};
use crate::transport::direct::write_all;
use crate::transport::longpoll::Reply;
use crate::transport::{iframe, longpoll, poll, sse, stream, Prepared};
use axum::response::IntoResponse;

/// Longest request head read natively before giving up.
const MAX_HEAD: usize = 16 << 10;
/// A client must send its request head within this time.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A kept-alive polling connection may stay idle this long between requests.
const KEEP_ALIVE: Duration = Duration::from_secs(75);

/// Accepts connections until shutdown, then waits for them to finish.
pub async fn serve(listener: TcpListener, state: State, app: Router) {
    let mut shutdown = state.shutdown.clone();
    let live = Arc::new(());
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = async { let _ = shutdown.wait_for(|v| *v).await; } => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (state, app, token) = (state.clone(), app.clone(), live.clone());
                tokio::spawn(connection(stream, peer, state, app, token));
            }
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    while Arc::strong_count(&live) > 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Which natively served transport a path names, if any, and the channel in it.
fn native_route(path: &str) -> Option<(&'static str, Option<&str>)> {
    for name in ["sse", "stream", "iframe", "poll", "longpoll"] {
        if let Some(rest) = path.strip_prefix('/').and_then(|p| p.strip_prefix(name)) {
            if rest.is_empty() {
                return Some((name, None));
            }
            if let Some(ch) = rest.strip_prefix('/') {
                return Some((name, Some(ch)));
            }
        }
    }
    None
}

/// True for the transports whose response is a never-ending stream.
fn is_streaming(name: &str) -> bool {
    matches!(name, "sse" | "stream" | "iframe")
}

/// A request head, borrowed from the connection's buffer (a poll allocates nothing to read it).
struct Head<'b> {
    /// Bytes of the request head in the buffer.
    len: usize,
    path: &'b str,
    query: Option<&'b str>,
    last_event_id: Option<&'b str>,
    if_none_match: Option<&'b str>,
    /// `Connection: close`.
    close: bool,
}

/// Parses a complete request head; `None` when it is not a plain `GET` of a native route.
fn native_head(buf: &[u8]) -> Option<Head<'_>> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(buf).ok()? else {
        return None;
    };
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let target = req.path?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    native_route(path)?;
    let (mut last_event_id, mut if_none_match, mut close) = (None, None, false);
    for h in req.headers.iter() {
        let value = || std::str::from_utf8(h.value).ok();
        if h.name.eq_ignore_ascii_case("upgrade") || h.name.eq_ignore_ascii_case("expect") {
            return None;
        } else if h.name.eq_ignore_ascii_case("last-event-id") {
            last_event_id = value();
        } else if h.name.eq_ignore_ascii_case("if-none-match") {
            if_none_match = value();
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = value()
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        } else if h.name.eq_ignore_ascii_case("content-length")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
        {
            // A GET with a body is left to hyper.
            return None;
        }
    }
    Some(Head {
        len,
        path,
        query,
        last_event_id,
        if_none_match,
        close,
    })
}

/// True once `buf` holds a whole request head (or as much as is ever read natively).
fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= MAX_HEAD
}

/// Reads into `buf` until it holds a complete request head. False on EOF, error or when
/// `deadline` fires; returns early (`None`) at shutdown while nothing has been read. The
/// deadline and the shutdown wait are the connection's own, set per request, not registered
/// anew for every read.
async fn read_head(
    stream: &TcpStream,
    buf: &mut BytesMut,
    mut deadline: Pin<&mut Sleep>,
    stop: &mut Stop<'_>,
) -> Option<bool> {
    loop {
        if head_complete(buf) {
            return Some(true);
        }
        // Allocate only once the client has sent something, so an idle kept-alive
        // connection holds no buffer, then read the head in one call.
        tokio::select! {
            biased;
            r = stream.readable() => {
                if r.is_err() {
                    return Some(false);
                }
            }
            _ = deadline.as_mut() => return Some(false),
            // Between polls, an idle kept-alive connection closes at shutdown.
            _ = stop.wait(), if buf.is_empty() => return None,
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(1024);
        }
        match read_once(stream, buf) {
            Ok(0) => return Some(false),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return Some(false),
        }
    }
}

/// One `recv` into `buf`'s spare room. A read that leaves room has most likely emptied the
/// socket, so tokio is told it would block now (which clears its readiness) instead of
/// learning it from a second `recv` that returns `EAGAIN`: one syscall fewer per polling
/// request. This is safe: data arriving meanwhile raises a new readiness event, which a clear
/// based on the older event leaves alone, and a peer's close is never cleared.
fn read_once(stream: &TcpStream, buf: &mut BytesMut) -> std::io::Result<usize> {
    let mut got = 0;
    let r = stream.try_io(tokio::io::Interest::READABLE, || {
        let start = buf.len();
        let room = buf.capacity() - start;
        buf.resize(start + room, 0);
        let n = rustix::net::recv(stream, &mut buf[start..], rustix::net::RecvFlags::empty())
            .map(|(n, _)| n);
        buf.truncate(start + *n.as_ref().unwrap_or(&0));
        let n = n?;
        got = n;
        if n > 0 && n < room {
            Err(std::io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && got > 0 => Ok(got),
        r => r,
    }
}

/// Serves one connection: polls on it while it is kept alive, a stream in a task of its own,
/// anything else through hyper. `live` is the accept loop's count of open connections.
async fn connection(stream: TcpStream, peer: SocketAddr, state: State, app: Router, live: Arc<()>) {
    let _ = stream.set_nodelay(true);
    // Shared with a long poll's write-through writer, and a stream's.
    let stream = Arc::new(stream);
    let mut buf = BytesMut::new();
    let mut limit = HEAD_TIMEOUT;
    // The connection's request deadline, its long-poll hold timer and its shutdown wait: each
    // registered once and moved per request (a later deadline is a cheap move for tokio).
    let mut deadline = pin!(tokio::time::sleep(HEAD_TIMEOUT));
    let mut hold = pin!(tokio::time::sleep(KEEP_ALIVE));
    let mut signal = pin!(stop::signal(state.shutdown.clone()));
    let mut stop = Stop::new(signal.as_mut());
    // A long poll's subscription kept for this connection's next poll (boxed: a connection
    // that never long-polls pays one pointer for it).
    let mut kept: Option<Box<longpoll::Kept>> = None;
    loop {
        deadline.as_mut().reset(Instant::now() + limit);
        let Some(complete) = read_head(&stream, &mut buf, deadline.as_mut(), &mut stop).await
        else {
            return;
        };
        if !complete && buf.is_empty() {
            return;
        }
        // Each branch is boxed on its own, so an idle stream's task is sized for the stream,
        // not for hyper's connection state.
        let Some(head) = native_head(&buf) else {
            // Anything else (or a malformed head) goes to hyper, which answers it properly.
            // Dropping the kept subscription takes its writer's handle on the socket back.
            drop(kept);
            match Arc::try_unwrap(stream) {
                Ok(stream) => Box::pin(hand_to_hyper(stream, buf, peer, state, app)).await,
                Err(_) => tracing::warn!("a connection's socket is still shared; closing it"),
            }
            return;
        };
        let Some((name, _)) = native_route(head.path) else {
            return;
        };
        if is_streaming(name) {
            drop(kept);
            Box::pin(respond(stream, &state, &head, live)).await;
            return;
        }
        let close = head.close || *state.shutdown.borrow();
        let len = head.len;
        let polled = Box::pin(respond_poll(
            &stream,
            &state,
            &head,
            close,
            longpoll::Conn {
                stream: &stream,
                kept: &mut kept,
                hold: hold.as_mut(),
                stop: &mut stop,
                pipelined: buf.len() > len,
            },
        ))
        .await;
        if polled.is_err() || close || stop.fired() {
            return;
        }
        buf.advance(len);
        if buf.is_empty() && kept.is_none() {
            // Hold no buffer between polls, unless the connection long-polls (and holds a
            // subscription, which costs far more): then it reads every request into this one.
            buf = BytesMut::new();
        }
        limit = KEEP_ALIVE;
    }
}

/// The channel named in the path, percent-decoded (borrowed when it had no escapes).
fn path_channel(channel: Option<&str>) -> Result<Option<Cow<'_, str>>, ApiError> {
    channel
        .map(|c| {
            if !c.contains('%') {
                return Ok(Cow::Borrowed(c));
            }
            percent_encoding::percent_decode_str(c)
                .decode_utf8()
                .map_err(|_| {
                    ApiError::new(
                        Code::BadChannel,
                        "channel name is not valid UTF-8; use [A-Za-z0-9_.:@/=-]",
                    )
                })
        })
        .transpose()
}

/// Answers a short or long poll on a kept-alive connection. A long poll borrows `conn` (the
/// connection's kept subscription, timers and socket); anything else empties its slot.
async fn respond_poll(
    stream: &TcpStream,
    state: &State,
    head: &Head<'_>,
    close: bool,
    conn: longpoll::Conn<'_, '_>,
) -> std::io::Result<()> {
    let Some((name, channel)) = native_route(head.path) else {
        return Ok(());
    };
    if name != "longpoll" || close {
        *conn.kept = None;
    }
    let channel = match path_channel(channel) {
        Ok(c) => c,
        Err(e) => return write_error(stream, &e, close).await,
    };
    if name == "poll" {
        let mut headers = axum::http::HeaderMap::new();
        if let Some(v) = head
            .if_none_match
            .and_then(|v| axum::http::HeaderValue::from_str(v).ok())
        {
            headers.insert(axum::http::header::IF_NONE_MATCH, v);
        }
        let owned = channel.map(|c| c.into_owned());
        let res = poll::handle(state.clone(), owned, head.query.map(str::to_owned), headers).await;
        return write_response(
            stream,
            res.unwrap_or_else(IntoResponse::into_response),
            close,
        )
        .await;
    }
    // A poll that closes the connection keeps nothing and is not written through.
    let conn = (!close).then_some(conn);
    match longpoll::wait(state, channel.as_deref(), head.query, conn).await {
        Ok(Reply::Body(body)) => write_json(stream, StatusCode::OK, body, close).await,
        Ok(Reply::Sent) => Ok(()),
        Ok(Reply::Gone) => Err(std::io::ErrorKind::ConnectionAborted.into()),
        Err(e) => write_error(stream, &e, close).await,
    }
}

/// Writes a JSON answer: the head built here, then the body (for a long poll often the same
/// bytes for every waiter of a channel), in one `send()` when small.
async fn write_json(
    stream: &TcpStream,
    status: StatusCode,
    body: bytes::Bytes,
    close: bool,
) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(HEAD_ROOM + body.len().min(4096));
    json_head(status, body.len(), close, &mut out);
    if body.len() <= 4096 {
        // One buffer and `send()`: cheaper than `writev` for a few hundred bytes.
        out.put_slice(&body);
        return write_all(stream, out).await;
    }
    write_all(stream, out.chain(body)).await
}

/// Writes a complete (non-streaming) response with `content-length`, plus the CORS headers
/// the hyper path's layer would add.
async fn write_response(
    stream: &TcpStream,
    res: axum::response::Response,
    close: bool,
) -> std::io::Result<()> {
    let (parts, body) = res.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut out = BytesMut::with_capacity(256 + body.len());
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(parts.status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    for (k, v) in parts.headers.iter() {
        out.put_slice(k.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(v.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"access-control-allow-origin: *\r\naccess-control-expose-headers: *\r\n");
    let has_body =
        parts.status != StatusCode::NOT_MODIFIED && parts.status != StatusCode::NO_CONTENT;
    if has_body {
        out.put_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    if close {
        out.put_slice(b"connection: close\r\n");
    }
    out.put_slice(b"\r\n");
    if has_body {
        out.put_slice(&body);
    }
    write_all(stream, out).await
}

async fn hand_to_hyper(
    stream: TcpStream,
    buf: BytesMut,
    peer: SocketAddr,
    state: State,
    app: Router,
) {
    let svc = app.map_request(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let io = TokioIo::new(Prefixed::new(buf.freeze(), stream));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    let conn = builder
        .serve_connection(io, TowerToHyperService::new(svc))
        .with_upgrades();
    tokio::pin!(conn);
    let mut shutdown = state.shutdown.clone();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { let _ = shutdown.wait_for(|v| *v).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Answers a request for a stream: subscribes, then hands the socket and the pump to a task of
/// their own ([`pump`]), so what an idle stream keeps is sized for streaming alone, not for
/// this connection task that reads requests and hands them to hyper.
async fn respond(stream: Arc<TcpStream>, state: &State, head: &Head<'_>, live: Arc<()>) {
    let Some((name, channel)) = native_route(head.path) else {
        return;
    };
    let channel = match path_channel(channel) {
        Ok(c) => c.map(|c| c.into_owned()),
        Err(e) => {
            let _ = write_error(&stream, &e, true).await;
            return;
        }
    };
    let query = head.query;
    let prepared = match name {
        "sse" => sse::prepare(state, channel, query, head.last_event_id).await,
        "stream" => stream::prepare(state, channel, query).await.map(Some),
        _ => iframe::prepare(state, channel, query).await.map(Some),
    };
    match prepared {
        Ok(Some(p)) => {
            tokio::spawn(pump(stream, p, live));
            return;
        }
        Ok(None) => {
            let _ = write_all(
                &stream,
                &b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"[..],
            )
            .await;
        }
        Err(e) => {
            let _ = write_error(&stream, &e, true).await;
        }
    }
    if let Ok(mut s) = Arc::try_unwrap(stream) {
        let _ = s.shutdown().await;
    }
}

async fn write_error(stream: &TcpStream, e: &ApiError, close: bool) -> std::io::Result<()> {
    write_json(stream, e.code.status(), e.body().into(), close).await
}

/// Writes the response head, then one chunk per wake-up of the pump, watching for the client
/// going away while idle. While the stream waits, the publisher writes messages through to the
/// socket itself ([`crate::transport::direct`]); this task only sends what it is woken for.
///
/// This future is what an idle stream costs, so it is an `async move` block (an `async fn`
/// stores its arguments twice) that holds the socket, the pump, `live` (the accept loop's count
/// of open connections) and little else.
#[allow(clippy::manual_async_fn)]
fn pump(
    stream: Arc<TcpStream>,
    mut p: Prepared,
    live: Arc<()>,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let _live = &live;
        p.pump.allow_write_through(stream.clone());
        // The response head goes out with the first chunk. (Built from a temporary, so nothing
        // but these bytes is kept in this long-lived future.)
        let mut prefix = BytesMut::from(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {}\r\ncache-control: no-cache, no-store\r\nx-accel-buffering: no\r\n\
                 x-content-type-options: nosniff\r\naccess-control-allow-origin: *\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
                p.content_type
            )
            .as_bytes(),
        );
        loop {
            let chunk = tokio::select! {
                biased;
                c = p.pump.next() => c,
                r = stream.readable() => {
                    if r.is_err() {
                        return;
                    }
                    let mut scratch = [0u8; 256];
                    match stream.try_read(&mut scratch) {
                        Ok(0) => return,
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(_) => return,
                    }
                }
            };
            // The rest of a frame the publisher could only half write goes first.
            if let Some(tail) = p.pump.direct().map(|d| std::mem::take(&mut *d.tail.lock())) {
                if !tail.is_empty() && write_all(&stream, tail).await.is_err() {
                    return;
                }
            }
            match chunk {
                Some(data) if data.is_empty() => continue,
                Some(data) => {
                    // Chunk framing around the pump's bytes, written vectored: no second copy.
                    prefix.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    let frame = prefix.split().freeze().chain(data).chain(&b"\r\n"[..]);
                    if write_all(&stream, frame).await.is_err() {
                        return;
                    }
                }
                None => {
                    prefix.put_slice(b"0\r\n\r\n");
                    if write_all(&stream, prefix).await.is_err() {
                        return;
                    }
                    drop(p);
                    // The writer held by the outbox went with the subscription; close cleanly.
                    if let Ok(mut s) = Arc::try_unwrap(stream) {
                        let _ = s.shutdown().await;
                    }
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_native_gets() {
        assert_eq!(native_route("/sse/a:b"), Some(("sse", Some("a:b"))));
        assert_eq!(native_route("/stream"), Some(("stream", None)));
        assert_eq!(native_route("/iframe/x/y"), Some(("iframe", Some("x/y"))));
        assert_eq!(native_route("/longpoll/c"), Some(("longpoll", Some("c"))));
        assert_eq!(native_route("/poll"), Some(("poll", None)));
        assert_eq!(native_route("/sseX"), None);
        assert_eq!(native_route("/api/channels"), None);
        let h = native_head(
            b"GET /sse/a?x=1 HTTP/1.1\r\nHost: h\r\nLast-Event-ID: a~000000000001~2\r\n\r\nGET",
        )
        .unwrap();
        assert_eq!(
            (h.path, h.query, h.last_event_id, h.close),
            ("/sse/a", Some("x=1"), Some("a~000000000001~2"), false)
        );
        assert_eq!(h.len, 69, "the head ends before the next pipelined request");
        let h = native_head(
            b"GET /poll/a HTTP/1.1\r\nConnection: close\r\nIf-None-Match: \"x\"\r\n\r\n",
        )
        .unwrap();
        assert!(h.close);
        assert_eq!(h.if_none_match, Some("\"x\""));
        let keep = |v: &str| {
            native_head(format!("GET /poll/a HTTP/1.1\r\nConnection: {v}\r\n\r\n").as_bytes())
                .map(|h| h.close)
        };
        assert_eq!(keep("keep-alive"), Some(false));
        assert_eq!(keep("Keep-Alive, CLOSE"), Some(true));
        assert_eq!(keep("closed"), Some(false), "a token, not a substring");
        assert!(native_head(b"POST /sse/a HTTP/1.1\r\n\r\n").is_none());
        assert!(native_head(b"GET /ws/a HTTP/1.1\r\nUpgrade: websocket\r\n\r\n").is_none());
        assert!(native_head(b"GET /poll/a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").is_none());
        assert!(
            native_head(b"GET /sse/a HTTP/1.1\r\nHost: h\r\n").is_none(),
            "incomplete head"
        );
    }
}
