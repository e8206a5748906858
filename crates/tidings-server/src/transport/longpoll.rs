//! Long polling: `GET /longpoll/{channel}?since=CURSOR&timeout=S`.
//!
//! The request is held until at least one message is available, then answered with every
//! available one (up to [`BATCH`]) and the cursor after them; on timeout, with an empty batch
//! and the same cursor. Because the next poll carries that cursor and resumes from history, no
//! message published between two polls is lost. With no `since`, the poll waits for the next
//! message published after it arrives.
//!
//! On a kept-alive connection served natively, a single-channel poll keeps its subscription for
//! the connection's next poll ([`Kept`]), and while it is held the publisher may write its
//! answer straight to the socket ([`Answer`]); the task then learns of the answer when
//! the client's next request wakes it. A held poll also watches its socket, so a client that
//! leaves is unsubscribed at once rather than at the end of the hold.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tidings_core::{Item, SlowConsumer, Subscription, Transport};
use tidings_protocol::{cursor, ChannelName, Cursor, Position};
use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::answer::{Answer, Held};
use super::direct::write_all;
use super::poll::{body, json_response, BATCH};
use super::{advance, enabled, open};
use crate::error::{ApiError, Code};
use crate::metrics::{self, ConnGuard};
use crate::request::Params;
use crate::state::State;
use crate::stop::{self, Stop};

/// The longest hold a client may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// `GET /longpoll/{*channel}`
pub async fn one(
    state: axum::extract::State<State>,
    Path(channel): Path<String>,
    q: RawQuery,
) -> Response {
    handle(state.0, Some(channel), q.0)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /longpoll?channel=…`
pub async fn many(state: axum::extract::State<State>, q: RawQuery) -> Response {
    handle(state.0, None, q.0)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn timeout(params: &Params, default: Duration) -> Result<Duration, ApiError> {
    match params.timeout.as_deref() {
        None | Some("") => Ok(default),
        Some(t) => t
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            // Cut before converting: a huge number does not fit a Duration.
            .map(|s| Duration::from_secs_f64(s.min(MAX_TIMEOUT.as_secs_f64())))
            .ok_or_else(|| {
                ApiError::new(
                    Code::BadRequest,
                    format!("timeout={t:?} is not a number of seconds (0-120)"),
                )
            }),
    }
}

/// Answers one poll through hyper.
pub async fn handle(
    state: State,
    channel: Option<String>,
    query: Option<String>,
) -> Result<Response, ApiError> {
    match wait(&state, channel.as_deref(), query.as_deref(), None).await? {
        Reply::Body(body) => Ok(json_response(body, None)),
        // Only a lent connection is written through or seen to leave; answer nothing.
        Reply::Sent | Reply::Gone => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// What [`wait`] did.
pub enum Reply {
    /// The answer to write.
    Body(Bytes),
    /// The publisher wrote the answer through ([`Answer`]); nothing is left to write.
    Sent,
    /// The client closed the connection while the poll was held.
    Gone,
}

/// What the native keep-alive path lends a long poll: the socket (for write-through and to see
/// the client leave), the connection's slot for a [`Kept`] subscription, and its hold timer and
/// shutdown signal, which live as long as the connection so a poll does not register new ones.
pub struct Conn<'a, 's> {
    pub stream: &'a Arc<TcpStream>,
    pub kept: &'a mut Option<Box<Kept>>,
    pub hold: Pin<&'a mut Sleep>,
    pub stop: &'a mut Stop<'s>,
    /// The client has already sent its next request: the task must answer this one itself
    /// (see [`Held::decline`]).
    pub pipelined: bool,
}

/// A single-channel long poll's subscription, kept on a kept-alive connection for its next
/// poll (see the module docs).
pub struct Kept {
    /// The path channel of the polls.
    channel: ChannelName,
    /// Where the last answer ended: the next poll must resume from exactly this.
    at: Position,
    sub: Subscription,
    /// Messages taken from the queue after the writer had answered: the next poll's answer.
    carry: Vec<Item>,
    /// Shared with the write-through writer, once one is installed.
    held: Option<Arc<Held>>,
}

impl Kept {
    /// True when a poll for `channel` with `params` resumes exactly where the last one ended.
    fn resumes(&self, channel: Option<&str>, params: &Params) -> bool {
        channel == Some(self.channel.as_str())
            && params.channels.is_empty()
            && params
                .since
                .as_deref()
                .is_some_and(|s| cursor::is_entry(s, &self.channel, self.at))
            && !self.sub.outbox().is_closed()
    }
}

/// Holds one poll until messages arrive, the hold times out, the client leaves or the server
/// shuts down. Shared by the hyper route and the native keep-alive path.
///
/// With a [`Conn`], the poll takes up the connection's kept subscription when it resumes from
/// exactly where that one stopped, leaves its own there when it may be reused, and, on a
/// single-channel poll, lets the publisher write the answer through.
pub async fn wait(
    state: &State,
    channel: Option<&str>,
    query: Option<&str>,
    conn: Option<Conn<'_, '_>>,
) -> Result<Reply, ApiError> {
    match conn {
        Some(c) => {
            let lent = Lent {
                stream: c.stream,
                kept: c.kept,
                pipelined: c.pipelined,
            };
            hold_poll(state, channel, query, Some(lent), c.hold, c.stop).await
        }
        None => {
            // Without a connection (hyper), a timer and a shutdown wait of this poll's own.
            let mut sleep = Box::pin(tokio::time::sleep(MAX_TIMEOUT));
            let mut signal = Box::pin(stop::signal(state.shutdown.clone()))
                as Pin<Box<dyn Future<Output = ()> + Send>>;
            let mut stop = Stop::new(signal.as_mut());
            hold_poll(state, channel, query, None, sleep.as_mut(), &mut stop).await
        }
    }
}

/// The socket and the kept-subscription slot of a [`Conn`].
struct Lent<'a> {
    stream: &'a Arc<TcpStream>,
    kept: &'a mut Option<Box<Kept>>,
    pipelined: bool,
}

/// [`wait`], with the timer and shutdown wait to use.
async fn hold_poll(
    state: &State,
    channel: Option<&str>,
    query: Option<&str>,
    lent: Option<Lent<'_>>,
    mut sleep: Pin<&mut Sleep>,
    stop: &mut Stop<'_>,
) -> Result<Reply, ApiError> {
    enabled(state.config.transports.longpoll, "longpoll")?;
    let params = Params::parse(query);
    let hold = timeout(&params, state.config.longpoll_timeout)?;
    let (stream, mut slot, pipelined) = match lent {
        Some(l) => (Some(l.stream), Some(l.kept), l.pipelined),
        None => (None, None, false),
    };
    sleep.as_mut().reset(Instant::now() + hold);
    let _guard = ConnGuard::new(Transport::LongPoll);
    let reused = slot
        .as_mut()
        .and_then(|s| s.take())
        .filter(|k| k.resumes(channel, &params));
    let mut start;
    let mut k = match reused {
        Some(k) => {
            start = Cursor::new();
            start.set(&k.channel, k.at);
            k
        }
        None => {
            let req = params.request(channel, state.config.max_channels_per_connection)?;
            let sub = open(state, Transport::LongPoll, &req).await?;
            start = sub.cursor();
            // Kept (and written through) only where nothing could make a kept subscription
            // differ from a fresh one: one channel named in the path, on a kept-alive
            // connection, on a channel whose slow-consumer policy drops nothing.
            let keep = match (stream, &req.channels[..]) {
                (Some(stream), [ch]) if channel.is_some() && sub.len() == 1 => {
                    let drops = state.hub.options(ch).slow_consumer != SlowConsumer::Disconnect;
                    (!drops).then(|| Held::new(stream.clone()))
                }
                _ => None,
            };
            let mut k = Box::new(Kept {
                channel: req.channels[0].clone(),
                at: Position::default(),
                sub,
                carry: Vec::new(),
                held: None,
            });
            if let Some(held) = keep {
                k.sub.set_direct(Box::new(Answer(held.clone())));
                k.held = Some(held);
            }
            k
        }
    };
    if let Some(held) = &k.held {
        held.reset();
        if pipelined {
            held.decline();
        }
    }
    let mut items = std::mem::take(&mut k.carry);
    let (mut ended, mut gone, mut timed_out) = (stop.fired(), false, false);
    if !items.is_empty() {
        // Carried over from the last poll: send whatever has queued since with it.
        if let Err(e) = k.sub.take_ready(&mut items).await {
            tracing::debug!("long poll ends early: {e}");
            ended = true;
        }
    }
    // Readable means the client left or pipelined a request (or, after an answer written
    // through, sent its next poll); with a request already read, only the first two.
    let mut watch_read = stream.is_some() && !pipelined;
    let answered = loop {
        if !items.is_empty() || ended || timed_out {
            break None;
        }
        let mut readable = false;
        tokio::select! {
            biased;
            r = k.sub.next_batch(&mut items) => {
                if let Err(e) = r {
                    tracing::debug!("long poll ends early: {e}");
                    ended = true;
                }
            }
            _ = sleep.as_mut() => timed_out = true,
            _ = stop.wait() => ended = true,
            _ = readable_of(stream), if watch_read => readable = true,
        }
        // Take the writer back before looking at what it did.
        k.sub.settle();
        if let Some(a) = k.held.as_ref().and_then(|h| h.take()) {
            break Some(a);
        }
        if readable {
            // Not an answer's follow-up: the client left, or pipelined its next request.
            match peer_state(stream).await {
                Peer::Gone => (ended, gone) = (true, true),
                Peer::Sent => {
                    watch_read = false;
                    if let Some(held) = &k.held {
                        held.decline();
                    }
                }
                Peer::Quiet => {}
            }
        }
    };
    if let Some((at, tail)) = answered {
        // The publisher answered this poll; what was taken after it is the next answer.
        if let Some(stream) = stream {
            if !tail.is_empty() {
                // The client must read the rest before anything else; shutdown does not wait
                // for one that does not.
                let sent = tokio::select! {
                    r = write_all(stream, tail) => r.is_ok(),
                    _ = stop.wait() => false,
                };
                if !sent {
                    return Ok(Reply::Gone);
                }
            }
        }
        k.at = at;
        k.carry = items;
        if let Some(slot) = slot {
            *slot = Some(k);
        }
        return Ok(Reply::Sent);
    }
    if gone {
        return Ok(Reply::Gone);
    }
    let cut = items.len() > BATCH;
    items.truncate(BATCH);
    metrics::delivered(Transport::LongPoll, items.len());
    let mut cursor = start;
    for item in &items {
        advance(&mut cursor, item);
    }
    let body = body(&items, &cursor);
    if let (Some(slot), true, false) = (slot, k.held.is_some(), ended || cut) {
        if let Some(at) = cursor.get(&k.channel) {
            if k.sub.position(&k.channel) == Some(at) {
                items.clear();
                k.at = at;
                k.carry = items;
                *slot = Some(k);
            }
        }
    }
    Ok(Reply::Body(body))
}

/// Waits until `stream` is readable (never, without a stream).
async fn readable_of(stream: Option<&Arc<TcpStream>>) {
    match stream {
        Some(s) => {
            let _ = s.readable().await;
        }
        None => std::future::pending().await,
    }
}

enum Peer {
    /// The client closed the connection (or it failed).
    Gone,
    /// The client sent bytes: a pipelined request, read once this poll is answered.
    Sent,
    /// A stale readiness: nothing to read after all.
    Quiet,
}

/// What a readable socket of a held poll holds, looked at without taking it.
async fn peer_state(stream: Option<&Arc<TcpStream>>) -> Peer {
    let Some(stream) = stream else {
        return Peer::Quiet;
    };
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    match std::future::poll_fn(|cx| Poll::Ready(stream.poll_peek(cx, &mut buf))).await {
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Peer::Gone,
        Poll::Ready(Ok(_)) => Peer::Sent,
        Poll::Pending => Peer::Quiet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_cut_to_the_limit_and_bad_ones_refused() {
        let default = Duration::from_secs(25);
        let t = |q: &str| timeout(&Params::parse(Some(q)), default);
        assert_eq!(t("").unwrap(), default);
        assert_eq!(t("timeout=0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(
            t("timeout=1e20").unwrap(),
            MAX_TIMEOUT,
            "too big for a Duration"
        );
        for bad in ["timeout=1e400", "timeout=-1", "timeout=NaN", "timeout=x"] {
            assert_eq!(t(bad).unwrap_err().code, Code::BadRequest, "{bad}");
        }
    }
}
