//! TCP connections that bind a chosen source address and count their bytes.
//!
//! Loopback offers about 28k ephemeral ports per (source, destination) pair, so large runs
//! spread their connections over 127.0.0.2, 127.0.0.3, … (`--processes`). Every byte read or
//! written goes through [`Counted`], which adds it to the owner's [`Counters`]: "bytes on the
//! wire" in the report are these application-level TCP payload bytes (TCP/IP headers excluded).
//!
//! Each socket also asks the kernel to stamp what arrives (`SO_TIMESTAMPNS`), and [`Counted`]
//! keeps the stamp of the last segment each read took: the time the bytes reached this
//! subscriber's socket, before the generator got round to reading them. One generator process
//! stands in for thousands of clients on one CPU, so how long it takes to get to the 10,000th
//! socket is its own cost, not the server's; on loopback the stamp is taken inside the
//! server's `send()`. Latency is measured to that arrival, and also to the read (see
//! `slot::Latency`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

/// Bytes moved by one owner (a subscriber, or the publisher).
#[derive(Debug, Default)]
pub struct Counters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
}

/// A TCP stream that counts what crosses it and notes when the last bytes read arrived.
pub struct Counted {
    inner: TcpStream,
    counters: Arc<Counters>,
    /// Kernel arrival stamp (ns since the Unix epoch) of the last segment read; 0 for none.
    arrival_ns: u64,
}

impl Counted {
    /// Wraps `inner`, counting into `counters`, and turns on arrival stamps.
    pub fn new(inner: TcpStream, counters: Arc<Counters>) -> Self {
        stamp_arrivals(&inner);
        Counted {
            inner,
            counters,
            arrival_ns: 0,
        }
    }

    /// When the last bytes read reached the socket (ns since the Unix epoch), if the kernel
    /// stamped them.
    pub fn arrival_ns(&self) -> Option<u64> {
        (self.arrival_ns > 0).then_some(self.arrival_ns)
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            std::task::ready!(this.inner.poll_read_ready(cx))?;
            let room = buf.initialize_unfilled();
            let len = room.len();
            let inner = &this.inner;
            let mut got = None;
            // A read that leaves room has emptied the socket: tell tokio it would block now
            // (clearing its readiness, as its own `poll_read` does) rather than learn it from
            // a second `recvmsg` that returns `EAGAIN`, a syscall per message for the
            // generator.
            let r = inner.try_io(tokio::io::Interest::READABLE, || {
                let (n, stamp) = recv_stamped(inner, room)?;
                if n > 0 && n < len {
                    got = Some((n, stamp));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok((n, stamp))
            });
            match got.map_or(r, Ok) {
                Ok((n, stamp)) => {
                    buf.advance(n);
                    if n > 0 {
                        this.counters.rx.fetch_add(n as u64, Relaxed);
                        if let Some(t) = stamp {
                            this.arrival_ns = t;
                        }
                    }
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Asks the kernel to stamp arriving data (`SO_TIMESTAMPNS`); without it, latency is measured
/// at the read alone.
#[cfg(target_os = "linux")]
fn stamp_arrivals(s: &TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
    let _ = setsockopt(s, ReceiveTimestampns, &true);
}

#[cfg(not(target_os = "linux"))]
fn stamp_arrivals(_: &TcpStream) {}

/// One `recvmsg` into `buf`: the bytes read, and the arrival stamp of the last segment in them.
#[cfg(target_os = "linux")]
fn recv_stamped(s: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = recvmsg::<()>(
        s.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let mut stamp = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmTimestampns(t) = c {
            stamp = u64::try_from(t.tv_sec())
                .ok()
                .map(|s| s * 1_000_000_000 + t.tv_nsec() as u64);
        }
    }
    Ok((msg.bytes, stamp))
}

#[cfg(not(target_os = "linux"))]
fn recv_stamped(s: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<u64>)> {
    Ok((s.try_read(buf)?, None))
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            self.counters.tx.fetch_add(n as u64, Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connects to `addr`, from `source` when given (port chosen by the kernel).
pub async fn connect(
    addr: SocketAddr,
    source: Option<IpAddr>,
    counters: Arc<Counters>,
) -> anyhow::Result<Counted> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0)).map_err(|e| {
            anyhow::anyhow!("cannot bind source address {ip}: {e}; loopback aliases 127.0.0.2… need no setup on Linux, other addresses do")
        })?;
    }
    let stream = socket.connect(addr).await.map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(24) => "; out of file descriptors: use --processes to spread subscribers",
            Some(99) => {
                "; out of local ports: use --processes to spread over more source addresses"
            }
            Some(111) => "; is the server running there?",
            _ => "",
        };
        anyhow::anyhow!("cannot connect to {addr}: {e}{hint}")
    })?;
    stream.set_nodelay(true)?;
    Ok(Counted::new(stream, counters))
}
