//! Transports: thin adapters from a [`Subscription`] to one wire format.
//!
//! The streaming HTTP transports (SSE, XHR streaming, forever iframe) share one driver,
//! [`Pump`]: a response body that is a `select!` loop over the subscription, a heartbeat
//! tick and shutdown, with the framing left to a [`Format`]. Everything queued for the
//! connection when it wakes leaves in one chunk (one write). WebSocket and polling have their
//! own files because their control flow differs.

pub mod answer;
pub mod direct;
pub mod iframe;
pub mod longpoll;
pub mod poll;
pub mod socket_loop;
pub mod sse;
pub mod stream;
pub mod websocket;
pub mod websocket_raw;
pub mod ws_io;
pub mod ws_upgrade;

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
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
    /// The framing of a message when it is the same for every subscriber of this format, so
    /// the publisher may write it through ([`direct`]); `None` when it is per connection.
    fn framer(&self) -> Option<Box<dyn direct::Framer>> {
        None
    }
}

/// A streaming response in the making: the subscription, its framing, and the loop that turns
/// them into chunks. The same pump feeds a hyper body and the native writer ([`crate::native`]).
pub struct Pump {
    sub: Subscription,
    fmt: Box<dyn Format>,
    cursor: Cursor,
    heartbeat: Interval,
    shutdown: watch::Receiver<bool>,
    budget: usize,
    sent: usize,
    opened: bool,
    done: bool,
    items: Vec<Item>,
    transport: Transport,
    /// Shared with the write-through writer, when one is installed.
    direct: Option<Arc<direct::Shared>>,
    /// `direct.sent` when this task last looked: a change means the publisher wrote to the
    /// stream meanwhile, so it is not idle and needs no heartbeat.
    seen_sent: usize,
    /// The socket, until the write-through writer is set up, when the stream first waits.
    stream: Option<Arc<tokio::net::TcpStream>>,
    _guard: ConnGuard,
}

pub(crate) fn ticker(period: Duration) -> Interval {
    let mut i = interval_at(Instant::now() + period, period);
    i.set_missed_tick_behavior(MissedTickBehavior::Delay);
    i
}

/// A streaming response ready to be sent: its content type and its pump.
pub struct Prepared {
    pub content_type: &'static str,
    pub pump: Pump,
}

impl Prepared {
    /// Builds the pump for `sub` framed by `fmt`. The response ends after `budget` bytes, on
    /// shutdown, when the connection is too slow, or after a `deleted` reset.
    pub fn new(
        state: &State,
        sub: Subscription,
        fmt: Box<dyn Format>,
        transport: Transport,
        budget: usize,
        content_type: &'static str,
    ) -> Prepared {
        let cursor = sub.cursor();
        let pump = Pump {
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
            direct: None,
            seen_sent: 0,
            stream: None,
            _guard: ConnGuard::new(transport),
        };
        Prepared { content_type, pump }
    }

    /// The response for hyper: streaming headers and a body fed by the pump.
    pub fn into_response(self) -> axum::response::Response {
        use axum::response::IntoResponse;
        let body = Body::from_stream(futures_util::stream::unfold(
            self.pump,
            |mut p| async move { p.next().await.map(|b| (Ok::<_, Infallible>(b), p)) },
        ));
        (streaming_headers(self.content_type), body).into_response()
    }
}

impl Pump {
    /// Lets the publisher write messages straight to `stream` while this stream is idle, when the
    /// format allows it. The writer is set up when the stream first waits, after its opening
    /// chunk, so that the first message is written through too: set up with the first delivery
    /// instead, it saved an idle connection about 0.4 KiB but sent every subscriber's first
    /// message through its task, and a channel's first fan-out to 10k new subscribers took
    /// three times as long as the next (max latency 152 against 62 ms). The writer of the
    /// chunks [`Pump::next`] returns must first send [`direct::Shared::tail`] (see
    /// [`Pump::direct`]), and must have written each chunk before asking for the next.
    pub fn allow_write_through(&mut self, stream: Arc<tokio::net::TcpStream>) {
        self.stream = Some(stream);
    }

    /// What this pump shares with its write-through writer, once there is one.
    pub fn direct(&self) -> Option<&Arc<direct::Shared>> {
        self.direct.as_ref()
    }

    /// True when the publisher has written to the stream since this task last looked.
    fn written_through(&mut self) -> bool {
        let Some(d) = &self.direct else {
            return false;
        };
        let sent = d.sent.load(Ordering::Relaxed);
        std::mem::replace(&mut self.seen_sent, sent) != sent
    }

    fn start_write_through(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        let Some(framer) = self.fmt.framer() else {
            return;
        };
        let shared = direct::Shared::new(stream, self.budget);
        shared.sent.store(self.sent, Ordering::Relaxed);
        self.seen_sent = self.sent;
        self.sub.set_direct(Box::new(direct::Chunked {
            shared: shared.clone(),
            framer,
            transport: self.transport,
        }));
        self.direct = Some(shared);
    }

    /// The next chunk to write, or `None` when the response is complete. Everything queued for
    /// the connection when it wakes is framed into one chunk.
    pub async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut out = BytesMut::new();
        if !self.opened {
            self.opened = true;
            self.fmt.open(&self.cursor, &mut out);
            return Some(out.freeze());
        }
        let mut end = false;
        if self.items.is_empty() {
            if self.direct.is_none() {
                // Everything this task produced has been written: let the publisher write.
                self.start_write_through();
            }
            if *self.shutdown.borrow() {
                end = true;
            } else {
                loop {
                    tokio::select! {
                        biased;
                        _ = self.shutdown.changed() => end = true,
                        r = self.sub.next_batch(&mut self.items) => {
                            if let Err(e) = r {
                                tracing::debug!(transport = self.transport.as_str(), "stream ends: {e}");
                                end = true;
                            }
                        }
                        _ = self.heartbeat.tick() => {
                            // Messages written through never pass this task, so they cannot
                            // reset the heartbeat as its own deliveries do: look at the bytes.
                            if self.written_through() {
                                continue;
                            }
                            self.fmt.heartbeat(&mut out);
                        }
                    }
                    break;
                }
            }
        }
        // From here until the next wait, only this task writes; catch up with what the
        // publisher wrote through meanwhile.
        if self.sub.settle() > 0 {
            self.cursor = self.sub.cursor();
        }
        let n = self.items.len();
        for item in self.items.drain(..) {
            advance(&mut self.cursor, &item);
            self.fmt.item(&item, &self.cursor, &mut out);
            // A deleted channel's streams end; the client comes back in the new epoch.
            end |= matches!(&item, Item::Reset(r) if r.reason == ResetReason::Deleted);
        }
        metrics::delivered(self.transport, n);
        if n > 0 {
            self.heartbeat.reset();
        }
        let sent = match &self.direct {
            Some(d) => {
                self.seen_sent = d.sent.fetch_add(out.len(), Ordering::Relaxed) + out.len();
                self.seen_sent
            }
            None => {
                self.sent += out.len();
                self.sent
            }
        };
        if end || sent >= self.budget {
            self.fmt.end(&self.cursor, &mut out);
            self.done = true;
        }
        Some(out.freeze())
    }
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
