//! Transports: thin adapters from a [`Subscription`] to one wire format.
//!
//! The streaming HTTP transports (SSE, XHR streaming, forever iframe) share one driver,
//! [`stream_body`]: a response body that is a `select!` loop over the subscription, a heartbeat
//! tick and shutdown, with the framing left to a [`Format`]. Everything queued for the
//! connection when it wakes leaves in one chunk (one write). WebSocket and polling have their
//! own files because their control flow differs.

pub mod iframe;
pub mod longpoll;
pub mod poll;
pub mod sse;
pub mod stream;
pub mod websocket;
pub mod websocket_raw;

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use tidings_core::{Item, Subscription, Transport};
use tidings_protocol::{Cursor, ResetReason};
use tokio::sync::watch;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

use crate::error::{ApiError, Code};
use crate::metrics::{self, ConnGuard};
use crate::request::SubRequest;
use crate::state::State;

/// Opens a subscription to every channel of `req`, resuming each from its cursor entry.
pub async fn open(
    state: &State,
    transport: Transport,
    req: &SubRequest,
) -> Result<Subscription, ApiError> {
    if state.shutting_down() {
        return Err(ApiError::new(
            Code::ShuttingDown,
            "the server is shutting down; retry shortly",
        ));
    }
    let mut sub = Subscription::new(state.hub.clone(), transport, state.config.queue_bytes);
    for ch in &req.channels {
        sub.add(ch, req.since.as_ref().and_then(|c| c.get(ch)))
            .await?;
    }
    Ok(sub)
}

/// Records an item's position in `cursor`.
pub fn advance(cursor: &mut Cursor, item: &Item) {
    match item {
        Item::Message(m) => cursor.set(&m.msg.channel, m.msg.position),
        Item::Reset(r) => cursor.set(&r.channel, r.position),
    }
}

/// The framing of one streaming transport.
pub trait Format: Send + 'static {
    /// The first bytes, sent at once so clients can tell a buffering proxy from a quiet channel.
    fn open(&mut self, cursor: &Cursor, out: &mut BytesMut);
    /// One item; `cursor` already includes it.
    fn item(&mut self, item: &Item, cursor: &Cursor, out: &mut BytesMut);
    /// A keepalive while idle.
    fn heartbeat(&mut self, out: &mut BytesMut);
    /// The last bytes: tell the client to reconnect with `cursor`.
    fn end(&mut self, cursor: &Cursor, out: &mut BytesMut);
}

struct Conn<F> {
    sub: Subscription,
    fmt: F,
    cursor: Cursor,
    heartbeat: Interval,
    shutdown: watch::Receiver<bool>,
    budget: usize,
    sent: usize,
    opened: bool,
    done: bool,
    items: Vec<Item>,
    transport: Transport,
    _guard: ConnGuard,
}

pub(crate) fn ticker(period: Duration) -> Interval {
    let mut i = interval_at(Instant::now() + period, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

/// A streaming response body driven by `sub` and framed by `fmt`. The response ends after
/// `budget` bytes, on shutdown, when the connection is too slow, or after a `deleted` reset.
pub fn stream_body<F: Format>(
    state: &State,
    sub: Subscription,
    fmt: F,
    transport: Transport,
    budget: usize,
) -> Body {
    let cursor = sub.cursor();
    let conn = Conn {
        sub,
        fmt,
        cursor,
        heartbeat: ticker(state.config.heartbeat),
        shutdown: state.shutdown.clone(),
        budget,
        sent: 0,
        opened: false,
        done: false,
        items: Vec::new(),
        transport,
        _guard: ConnGuard::new(transport),
    };
    Body::from_stream(futures_util::stream::unfold(conn, next_chunk))
}

async fn next_chunk<F: Format>(mut c: Conn<F>) -> Option<(Result<Bytes, Infallible>, Conn<F>)> {
    if c.done {
        return None;
    }
    let mut out = BytesMut::new();
    if !c.opened {
        c.opened = true;
        c.fmt.open(&c.cursor, &mut out);
        return Some((Ok(out.freeze()), c));
    }
    let mut end = false;
    if c.items.is_empty() {
        if *c.shutdown.borrow() {
            end = true;
        } else {
            tokio::select! {
                biased;
                _ = c.shutdown.changed() => end = true,
                r = c.sub.next_batch(&mut c.items) => {
                    if let Err(e) = r {
                        tracing::debug!(transport = c.transport.as_str(), "stream ends: {e}");
                        end = true;
                    }
                }
                _ = c.heartbeat.tick() => c.fmt.heartbeat(&mut out),
            }
        }
    }
    let n = c.items.len();
    for item in c.items.drain(..) {
        advance(&mut c.cursor, &item);
        c.fmt.item(&item, &c.cursor, &mut out);
        // A deleted channel's streams end; the client comes back in the new epoch.
        end |= matches!(&item, Item::Reset(r) if r.reason == ResetReason::Deleted);
    }
    metrics::delivered(c.transport, n);
    if n > 0 {
        c.heartbeat.reset();
    }
    c.sent += out.len();
    if end || c.sent >= c.budget {
        c.fmt.end(&c.cursor, &mut out);
        c.done = true;
    }
    Some((Ok(out.freeze()), c))
}

/// Response headers shared by the streaming transports.
pub fn streaming_headers(
    content_type: &'static str,
) -> [(axum::http::HeaderName, &'static str); 4] {
    use axum::http::header;
    [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "no-cache, no-store"),
        (
            axum::http::HeaderName::from_static("x-accel-buffering"),
            "no",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ]
}

/// Refuses a request for a transport switched off in config.
pub fn enabled(on: bool, name: &str) -> Result<(), ApiError> {
    if on {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::TransportDisabled,
            format!("the {name} transport is disabled on this server (transports.{name} = false)"),
        ))
    }
}
