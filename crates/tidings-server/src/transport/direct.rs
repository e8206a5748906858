//! Write-through for the natively served streams (SSE, XHR streaming, forever iframe).
//!
//! The fan-out loop writes a message straight to an idle connection's socket (see
//! `tidings_core::direct`), so a delivery at a fixed rate is one `send()` from the publisher's
//! call instead of a wake-up, a scheduler round trip and a poll of the connection's task. The
//! frame is the message's shared bytes with the format's fixed framing and the HTTP chunk
//! framing around it: gathered into one stack buffer when small ([`send`]), written vectored
//! otherwise. When the socket takes only part of it, the rest waits in [`Shared::tail`] for the
//! connection task.

use std::io::IoSlice;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use tidings_core::{Direct, Published, Transport, Wrote};
use tokio::net::TcpStream;

use crate::metrics;

/// The framing of a message that is the same for every subscriber of a format: up to three
/// byte runs written in order (the middle one is usually the message's shared encoding).
pub trait Framer: Send + Sync + 'static {
    /// The runs of `m`'s frame.
    fn frame<'a>(&'a self, m: &'a Published) -> [&'a [u8]; 3];
}

/// What a connection task and its write-through writer share.
pub struct Shared {
    pub stream: Arc<TcpStream>,
    /// The rest of a frame the socket took only part of; the task sends it first.
    pub tail: Mutex<BytesMut>,
    /// Response bytes written so far, by either side (for the stream's byte budget).
    pub sent: AtomicUsize,
    /// The byte budget: a message that would reach it is left to the task, which ends the
    /// response after it.
    pub budget: usize,
}

impl Shared {
    pub fn new(stream: Arc<TcpStream>, budget: usize) -> Arc<Shared> {
        Arc::new(Shared {
            stream,
            tail: Mutex::new(BytesMut::new()),
            sent: AtomicUsize::new(0),
            budget,
        })
    }
}

/// A write-through writer for a chunked HTTP response.
pub struct Chunked {
    pub shared: Arc<Shared>,
    pub framer: Box<dyn Framer>,
    pub transport: Transport,
}

/// `len` in hex and CRLF: an HTTP chunk's size line.
fn chunk_size_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    let digits = (usize::BITS as usize / 4) - (len.leading_zeros() as usize / 4);
    let digits = digits.max(1);
    for (i, b) in buf[..digits].iter_mut().enumerate() {
        *b = b"0123456789abcdef"[(len >> (4 * (digits - 1 - i))) & 0xf];
    }
    buf[digits] = b'\r';
    buf[digits + 1] = b'\n';
    &buf[..digits + 2]
}

impl Direct for Chunked {
    fn write(&mut self, m: &Published) -> Wrote {
        let runs = self.framer.frame(m);
        let len: usize = runs.iter().map(|r| r.len()).sum();
        let mut size = [0u8; 18];
        let size = chunk_size_line(len, &mut size);
        let total = size.len() + len + 2;
        if self
            .shared
            .sent
            .load(Ordering::Relaxed)
            .saturating_add(total)
            >= self.shared.budget
        {
            return Wrote::Nothing;
        }
        let slices = [
            IoSlice::new(size),
            IoSlice::new(runs[0]),
            IoSlice::new(runs[1]),
            IoSlice::new(runs[2]),
            IoSlice::new(b"\r\n"),
        ];
        // A write error is left for the task to meet on its own next write.
        let n = match send(&self.shared.stream, &slices, total) {
            Ok(n) if n > 0 => n,
            _ => return Wrote::Nothing,
        };
        self.shared.sent.fetch_add(total, Ordering::Relaxed);
        metrics::delivered_through(self.transport);
        if n == total {
            return Wrote::All;
        }
        keep_rest(&slices, n, &mut self.shared.tail.lock());
        Wrote::Part
    }

    fn ready(&self) -> bool {
        self.shared.tail.lock().is_empty()
    }
}

/// Frames up to this size are gathered into one buffer and sent with `send()`.
const SMALL: usize = 512;

/// Writes `slices` (`total` bytes) without blocking. A small frame is copied into one stack
/// buffer and sent with `send()`: on Linux that skips `writev`'s file layer (iovec import,
/// `fdget_pos`, fsnotify), which the profile showed costing more than the copy.
///
/// The call goes to the socket directly, not through tokio's `try_write`: that first reads the
/// socket's readiness from tokio's per-socket state, a cache miss per subscriber in a fan-out
/// (4% of the server's CPU in the 10k WebSocket profile). Skipping it is safe: the socket is
/// non-blocking, and a full socket (`EAGAIN`) leaves tokio's readiness stale at worst, which
/// costs the connection task one `EAGAIN` of its own before it waits. The syscall is rustix's,
/// made inline: libc's `send` wraps it in the thread-cancellation bookkeeping of a POSIX
/// cancellation point, which showed in the fan-out profiles and does nothing for us.
pub fn send(stream: &TcpStream, slices: &[IoSlice<'_>], total: usize) -> std::io::Result<usize> {
    if total > SMALL {
        let mut control = rustix::net::SendAncillaryBuffer::default();
        return Ok(rustix::net::sendmsg(
            stream,
            slices,
            &mut control,
            NO_SIGNAL,
        )?);
    }
    let mut buf = [0u8; SMALL];
    let mut len = 0;
    for s in slices {
        buf[len..len + s.len()].copy_from_slice(s);
        len += s.len();
    }
    Ok(rustix::net::send(stream, &buf[..len], NO_SIGNAL)?)
}

/// No `SIGPIPE` for a send to a closed socket, where the flag exists (Rust programs ignore the
/// signal anyway; the flag covers an embedder that does not).
#[cfg(any(target_os = "linux", target_os = "android"))]
const NO_SIGNAL: rustix::net::SendFlags = rustix::net::SendFlags::NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NO_SIGNAL: rustix::net::SendFlags = rustix::net::SendFlags::empty();

/// Appends to `tail` what is left of `slices` after the first `sent` bytes: the rest of a frame
/// the socket took only in part, for the connection task to send before anything else.
pub fn keep_rest(slices: &[IoSlice<'_>], sent: usize, tail: &mut BytesMut) {
    let mut skip = sent;
    for s in slices {
        if skip >= s.len() {
            skip -= s.len();
        } else {
            tail.extend_from_slice(&s[skip..]);
            skip = 0;
        }
    }
}

/// Writes all of `buf` to `stream`, vectored, waiting for room when the socket is full.
pub async fn write_all(stream: &TcpStream, mut buf: impl bytes::Buf) -> std::io::Result<()> {
    while buf.has_remaining() {
        let mut slices = [IoSlice::new(&[]); 4];
        let k = buf.chunks_vectored(&mut slices);
        match stream.try_write_vectored(&slices[..k]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::future::poll_fn(|cx| stream.poll_write_ready(cx)).await?
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_a_partial_write_is_kept_in_order() {
        let slices = [IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")];
        for (sent, rest) in [(0, &b"abcde"[..]), (1, b"bcde"), (2, b"cde"), (4, b"e")] {
            let mut tail = BytesMut::from(&b"<"[..]);
            keep_rest(&slices, sent, &mut tail);
            assert_eq!(&tail[1..], rest, "after {sent} bytes");
        }
    }

    #[test]
    fn chunk_size_lines_are_hex() {
        let mut b = [0u8; 18];
        assert_eq!(chunk_size_line(0, &mut b), b"0\r\n");
        assert_eq!(chunk_size_line(10, &mut b), b"a\r\n");
        assert_eq!(chunk_size_line(255, &mut b), b"ff\r\n");
        assert_eq!(chunk_size_line(4096, &mut b), b"1000\r\n");
        assert_eq!(chunk_size_line(usize::MAX, &mut b), b"ffffffffffffffff\r\n");
    }
}
