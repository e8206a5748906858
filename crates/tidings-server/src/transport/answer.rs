//! Complete JSON answers on a natively served connection: the response head, and the long
//! poll's write-through writer, with which the publisher answers a held poll itself.
//!
//! Why: a long poll answered by its task costs, per delivery, a wake-up of the task, a queue
//! push and drain, a poll of its `select!` and a response to format, on top of the one
//! `send()` it needs; then the client's next request wakes the task a second time. With this
//! writer armed (see `tidings_core::direct`), the fan-out loop sends the answer (this head and
//! the message's shared poll body, the same bytes for every waiter) while it visits the
//! subscriber, and the task wakes once, for the next request.
//!
//! The writer answers one message and then declines, so later messages queue for the next poll
//! and the task finds out, when it next wakes, that its poll was answered ([`Held::take`]).

use std::io::IoSlice;
use std::sync::Arc;

use axum::http::StatusCode;
use bytes::{BufMut, BytesMut};
use parking_lot::Mutex;
use tidings_core::{Direct, Published, Transport, Wrote};
use tidings_protocol::{json, Position};
use tokio::net::TcpStream;

use super::direct::{keep_rest, send};
use crate::metrics;

/// Room for the longest head [`json_head`] writes.
pub const HEAD_ROOM: usize = 256;

/// Writes the head of a JSON answer whose body is `len` bytes (at most [`HEAD_ROOM`] bytes).
pub fn json_head(status: StatusCode, len: usize, close: bool, out: &mut impl BufMut) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(
        b"\r\ncontent-type: application/json\r\ncache-control: no-cache\r\n\
          access-control-allow-origin: *\r\naccess-control-expose-headers: *\r\ncontent-length: ",
    );
    json::write_u64(out, len as u64);
    out.put_slice(if close {
        b"\r\nconnection: close\r\n\r\n"
    } else {
        b"\r\n\r\n"
    });
}

/// What a held long poll shares with its write-through writer.
pub struct Held {
    pub stream: Arc<TcpStream>,
    state: Mutex<Answered>,
}

#[derive(Default)]
struct Answered {
    /// The position of the message the writer answered this poll with, once it has.
    at: Option<Position>,
    /// Set when the task must answer this poll itself (see [`Held::decline`]).
    declined: bool,
    /// The rest of an answer the socket took only part of; the task sends it.
    tail: BytesMut,
}

impl Held {
    pub fn new(stream: Arc<TcpStream>) -> Arc<Held> {
        Arc::new(Held {
            stream,
            state: Mutex::new(Answered::default()),
        })
    }

    /// Opens the writer for a new poll. Call only while the writer is not armed.
    pub fn reset(&self) {
        let mut s = self.state.lock();
        s.at = None;
        s.declined = false;
        s.tail.clear();
    }

    /// Leaves this poll's answer to the task. A client that pipelined its next request will
    /// not make the socket readable again, so the task, which learns of an answer written
    /// through only when it wakes, would otherwise sleep until the hold ends.
    pub fn decline(&self) {
        self.state.lock().declined = true;
    }

    /// The position this poll was answered at by the writer, with the unsent rest of the
    /// answer, if it was. Call after the subscription has settled (taken the writer back).
    pub fn take(&self) -> Option<(Position, BytesMut)> {
        let mut s = self.state.lock();
        let at = s.at?;
        Some((at, std::mem::take(&mut s.tail)))
    }
}

/// The write-through writer of one kept long-poll connection.
pub struct Answer(pub Arc<Held>);

impl Direct for Answer {
    fn write(&mut self, m: &Published) -> Wrote {
        let mut s = self.0.state.lock();
        if s.at.is_some() || s.declined {
            // This poll is answered (or left to the task): the message is queued.
            return Wrote::Nothing;
        }
        let body = m.poll_single();
        let mut head = [0u8; HEAD_ROOM];
        let mut room = &mut head[..];
        json_head(StatusCode::OK, body.len(), false, &mut room);
        let head_len = HEAD_ROOM - room.len();
        let total = head_len + body.len();
        let slices = [IoSlice::new(&head[..head_len]), IoSlice::new(body)];
        // A write error is left for the task to meet when it reads the next request.
        let n = match send(&self.0.stream, &slices, total) {
            Ok(n) if n > 0 => n,
            _ => return Wrote::Nothing,
        };
        s.at = Some(m.msg.position);
        metrics::delivered_through(Transport::LongPoll);
        if n == total {
            return Wrote::All;
        }
        keep_rest(&slices, n, &mut s.tail);
        Wrote::Part
    }

    fn ready(&self) -> bool {
        self.0.state.lock().tail.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_carry_the_length_and_close() {
        let mut out = BytesMut::new();
        json_head(StatusCode::OK, 1234, false, &mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"));
        assert!(text.ends_with("content-length: 1234\r\n\r\n"), "{text}");
        let mut out = BytesMut::new();
        json_head(StatusCode::SERVICE_UNAVAILABLE, 0, true, &mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text.ends_with("content-length: 0\r\nconnection: close\r\n\r\n"));
        assert!(out.len() <= HEAD_ROOM);
    }
}
