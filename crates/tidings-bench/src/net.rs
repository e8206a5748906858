//! TCP connections that bind a chosen source address and count their bytes.
//!
//! Loopback offers about 28k ephemeral ports per (source, destination) pair, so large runs
//! spread their connections over 127.0.0.2, 127.0.0.3, … (`--processes`). Every byte read or
//! written goes through [`Counted`], which adds it to the owner's [`Counters`]: "bytes on the
//! wire" in the report are these application-level TCP payload bytes (TCP/IP headers excluded).

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

/// A TCP stream that counts what crosses it.
pub struct Counted {
    inner: TcpStream,
    counters: Arc<Counters>,
}

impl Counted {
    /// Wraps `inner`, counting into `counters`.
    pub fn new(inner: TcpStream, counters: Arc<Counters>) -> Self {
        Counted { inner, counters }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counters.rx.fetch_add(n as u64, Relaxed);
        }
        r
    }
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
