//! The byte stream under a WebSocket, shared by tungstenite and the write-through writer.
//!
//! After the upgrade the connection's `TcpStream` is held in an `Arc`: tungstenite reads and
//! writes through [`Socket`], and the fan-out loop writes message frames straight to it through
//! [`WsDirect`] while the connection is idle (`tidings_core::direct`). Both writers go through
//! one lock and one rule, so their frames never interleave: a write is taken whole or not at all.
//! When the kernel takes only part of it, the rest is kept in the shared tail and sent before
//! anything else; while a tail is pending the write-through writer declines and [`Socket`]
//! accepts nothing new. tungstenite hands over whole frames (it buffers frames and writes its
//! buffer out), so every byte accepted by either writer belongs to a whole frame, in order.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use tidings_core::{Direct, Published, Transport, Wrote};
use tidings_protocol::Payload;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::metrics;

/// What [`Socket`] and [`WsDirect`] share.
pub struct WsShared {
    stream: Arc<TcpStream>,
    /// The accepted bytes the kernel has not taken yet; sent before anything else.
    tail: Mutex<BytesMut>,
}

/// The WebSocket's byte stream: bytes read ahead during the upgrade first, then the socket.
pub struct Socket {
    shared: Arc<WsShared>,
    ahead: Bytes,
}

impl Socket {
    /// Wraps an upgraded connection; `ahead` holds bytes already read past the request.
    pub fn new(stream: TcpStream, ahead: Bytes) -> Socket {
        Socket {
            shared: Arc::new(WsShared {
                stream: Arc::new(stream),
                tail: Mutex::new(BytesMut::new()),
            }),
            ahead,
        }
    }

    /// A write-through writer for this socket; `raw` frames bare payloads (`/ws/{channel}`),
    /// otherwise envelopes (`/ws`).
    pub fn direct(&self, raw: bool) -> WsDirect {
        WsDirect {
            shared: self.shared.clone(),
            raw,
        }
    }

    /// Sends the pending tail; ready once it is empty.
    fn poll_tail(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut tail = self.shared.tail.lock();
            if tail.is_empty() {
                return Poll::Ready(Ok(()));
            }
            match self.shared.stream.try_write(&tail) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => tail.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(tail);
                    ready!(self.shared.stream.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.ahead.is_empty() {
            let n = self.ahead.len().min(buf.remaining());
            buf.put_slice(&self.ahead[..n]);
            self.ahead.advance(n);
            if self.ahead.is_empty() {
                self.ahead = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        loop {
            ready!(self.shared.stream.poll_read_ready(cx))?;
            match self.shared.stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_tail(cx))?;
            let mut tail = self.shared.tail.lock();
            if !tail.is_empty() {
                // The write-through writer left a tail in between; send that first.
                continue;
            }
            match self.shared.stream.try_write(buf) {
                Ok(n) => {
                    // Whole or nothing: keep what the kernel did not take.
                    tail.extend_from_slice(&buf[n..]);
                    return Poll::Ready(Ok(buf.len()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drop(tail);
                    ready!(self.shared.stream.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_tail(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_tail(cx))?;
        let _ = socket2::SockRef::from(&*self.shared.stream).shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}

/// Writes message frames straight to the socket from the publisher's call.
pub struct WsDirect {
    shared: Arc<WsShared>,
    raw: bool,
}

/// A server frame's header (FIN set, no mask) for a payload of `len` bytes.
fn frame_header(opcode: u8, len: usize, buf: &mut [u8; 10]) -> &[u8] {
    buf[0] = 0x80 | opcode;
    if len < 126 {
        buf[1] = len as u8;
        &buf[..2]
    } else if len <= u16::MAX as usize {
        buf[1] = 126;
        buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        &buf[..4]
    } else {
        buf[1] = 127;
        buf[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        &buf[..10]
    }
}

impl Direct for WsDirect {
    fn write(&mut self, m: &Published) -> Wrote {
        let (opcode, payload, transport) = match (&m.msg.data, self.raw) {
            (Payload::Text(b), true) => (1, &b[..], Transport::WsRaw),
            (Payload::Binary(b), true) => (2, &b[..], Transport::WsRaw),
            (Payload::Text(_), false) => (1, &m.json()[..], Transport::Ws),
            // A binary envelope frame is built per connection; the task sends it.
            (Payload::Binary(_), false) => return Wrote::Nothing,
        };
        let mut head = [0u8; 10];
        let head = frame_header(opcode, payload.len(), &mut head);
        let mut tail = self.shared.tail.lock();
        if !tail.is_empty() {
            return Wrote::Nothing;
        }
        let slices = [IoSlice::new(head), IoSlice::new(payload)];
        let n = match super::direct::send(&self.shared.stream, &slices, head.len() + payload.len())
        {
            Ok(n) if n > 0 => n,
            _ => return Wrote::Nothing,
        };
        metrics::delivered_through(transport);
        let total = head.len() + payload.len();
        if n == total {
            return Wrote::All;
        }
        super::direct::keep_rest(&slices, n, &mut tail);
        Wrote::Part
    }

    fn ready(&self) -> bool {
        self.shared.tail.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_follow_rfc6455() {
        let mut b = [0u8; 10];
        assert_eq!(frame_header(1, 5, &mut b), &[0x81, 5]);
        assert_eq!(frame_header(2, 125, &mut b), &[0x82, 125]);
        assert_eq!(frame_header(1, 126, &mut b), &[0x81, 126, 0, 126]);
        assert_eq!(frame_header(1, 65535, &mut b), &[0x81, 126, 0xff, 0xff]);
        assert_eq!(
            frame_header(2, 65536, &mut b),
            &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }
}
