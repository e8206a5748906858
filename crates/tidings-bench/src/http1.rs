//! A minimal HTTP/1.1 client: request bytes, response heads and body decoding.
//!
//! The generator speaks HTTP/1.1 itself rather than through hyper so that every byte it reads
//! or writes is counted on the socket it crossed, one task per subscriber reads the socket
//! directly (no connection task in between), and each connection binds the source address it
//! is told to. The parsing half is pure: [`parse_head`] and [`BodyDecoder`] work on buffers and
//! are tested on exact bytes; [`Conn`] adds the socket.

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::Counted;

/// A parsed response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// How the body is delimited, for a response to GET or POST.
    pub fn body_kind(&self) -> BodyKind {
        if self.status == 204 || self.status == 304 || (100..200).contains(&self.status) {
            return BodyKind::Length(0);
        }
        if self
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            return BodyKind::Chunked;
        }
        match self
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
        {
            Some(n) => BodyKind::Length(n),
            None => BodyKind::UntilClose,
        }
    }
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Builds a request. `headers` are written as given after `Host`.
pub fn request(
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    if !body.is_empty() || method == "POST" {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Parses a response head at the start of `buf`: `Ok(None)` until it is complete, else the
/// head and its length in bytes.
pub fn parse_head(buf: &[u8]) -> anyhow::Result<Option<(Head, usize)>> {
    let mut raw = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut raw);
    match res
        .parse(buf)
        .context("the server sent a malformed HTTP response head")?
    {
        httparse::Status::Partial => {
            if buf.len() > 64 * 1024 {
                bail!("the response head is over 64 KiB");
            }
            Ok(None)
        }
        httparse::Status::Complete(n) => {
            let headers = res
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            Ok(Some((
                Head {
                    status: res.code.unwrap_or(0),
                    headers,
                },
                n,
            )))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
}

/// Decodes a body incrementally from raw socket bytes.
#[derive(Debug)]
pub struct BodyDecoder {
    kind: BodyKind,
    left: usize,
    chunk: Chunk,
    done: bool,
}

impl BodyDecoder {
    /// A decoder for a body of `kind`.
    pub fn new(kind: BodyKind) -> Self {
        let left = match kind {
            BodyKind::Length(n) => n,
            _ => 0,
        };
        BodyDecoder {
            kind,
            left,
            chunk: Chunk::Size,
            done: kind == BodyKind::Length(0),
        }
    }

    /// Whether the whole body has been decoded.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Moves decoded body bytes from `raw` to `out`; bytes past the body's end stay in `raw`.
    pub fn decode(&mut self, raw: &mut BytesMut, out: &mut BytesMut) -> anyhow::Result<()> {
        match self.kind {
            BodyKind::UntilClose => {
                out.extend_from_slice(raw);
                raw.clear();
            }
            BodyKind::Length(_) => {
                let n = self.left.min(raw.len());
                out.extend_from_slice(&raw[..n]);
                raw.advance(n);
                self.left -= n;
                self.done = self.left == 0;
            }
            BodyKind::Chunked => self.dechunk(raw, out)?,
        }
        Ok(())
    }

    fn dechunk(&mut self, raw: &mut BytesMut, out: &mut BytesMut) -> anyhow::Result<()> {
        while !self.done {
            match self.chunk {
                Chunk::Size => {
                    let Some(nl) = raw.iter().position(|&b| b == b'\n') else {
                        if raw.len() > 1024 {
                            bail!("a chunk-size line is over 1 KiB");
                        }
                        return Ok(());
                    };
                    let line = std::str::from_utf8(&raw[..nl]).unwrap_or("");
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16)
                        .with_context(|| format!("bad chunk size {hex:?}"))?;
                    raw.advance(nl + 1);
                    self.chunk = if size == 0 {
                        Chunk::Trailer
                    } else {
                        Chunk::Data(size)
                    };
                }
                Chunk::Data(left) => {
                    if raw.is_empty() {
                        return Ok(());
                    }
                    let n = left.min(raw.len());
                    out.extend_from_slice(&raw[..n]);
                    raw.advance(n);
                    self.chunk = if n == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n)
                    };
                }
                Chunk::DataEnd | Chunk::Trailer => {
                    let Some(nl) = raw.iter().position(|&b| b == b'\n') else {
                        return Ok(());
                    };
                    let empty = raw[..nl].iter().all(|&b| b == b'\r');
                    raw.advance(nl + 1);
                    if self.chunk == Chunk::DataEnd {
                        self.chunk = Chunk::Size;
                    } else if empty {
                        self.done = true;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A keep-alive HTTP/1.1 connection with a read buffer.
pub struct Conn {
    pub io: Counted,
    pub buf: BytesMut,
}

impl Conn {
    /// Wraps a connected stream.
    pub fn new(io: Counted) -> Self {
        Conn {
            io,
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// Reads more bytes into the buffer; an error at end of stream.
    pub async fn fill(&mut self) -> anyhow::Result<()> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        let n = self.io.read_buf(&mut self.buf).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }

    /// Writes a whole request.
    pub async fn send(&mut self, req: &[u8]) -> anyhow::Result<()> {
        self.io.write_all(req).await?;
        Ok(())
    }

    /// Reads a response head.
    pub async fn head(&mut self) -> anyhow::Result<Head> {
        loop {
            if let Some((head, n)) = parse_head(&self.buf)? {
                self.buf.advance(n);
                return Ok(head);
            }
            self.fill().await?;
        }
    }

    /// Reads a whole (finite) body into `out`.
    pub async fn body(&mut self, head: &Head, out: &mut BytesMut) -> anyhow::Result<()> {
        let mut dec = BodyDecoder::new(head.body_kind());
        if head.body_kind() == BodyKind::UntilClose {
            bail!("a response with neither Content-Length nor chunked encoding cannot be reused");
        }
        loop {
            dec.decode(&mut self.buf, out)?;
            if dec.done() {
                return Ok(());
            }
            self.fill().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_once_complete() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nEtag: 3\r\n\r\nbody";
        assert!(parse_head(&raw[..20]).unwrap().is_none());
        let (h, n) = parse_head(raw).unwrap().unwrap();
        assert_eq!(
            (h.status, n, h.header("etag")),
            (200, raw.len() - 4, Some("3"))
        );
        assert_eq!(h.body_kind(), BodyKind::Chunked);
    }

    #[test]
    fn not_modified_has_no_body() {
        let (h, _) = parse_head(b"HTTP/1.1 304 Not Modified\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body_kind(), BodyKind::Length(0));
        assert!(BodyDecoder::new(h.body_kind()).done());
    }

    #[test]
    fn chunks_decode_across_any_split() {
        let raw = b"9\r\n1:2:3:xx;\r\n7;ext=1\r\nsecond;\r\n0\r\n\r\nNEXT";
        for split in 0..raw.len() {
            let mut dec = BodyDecoder::new(BodyKind::Chunked);
            let mut out = BytesMut::new();
            let mut buf = BytesMut::from(&raw[..split]);
            dec.decode(&mut buf, &mut out).unwrap();
            buf.extend_from_slice(&raw[split..]);
            dec.decode(&mut buf, &mut out).unwrap();
            assert_eq!(&out[..], b"1:2:3:xx;second;", "split at {split}");
            assert!(dec.done());
            assert_eq!(&buf[..], b"NEXT");
        }
    }

    #[test]
    fn a_length_body_leaves_the_next_response() {
        let mut dec = BodyDecoder::new(BodyKind::Length(3));
        let (mut buf, mut out) = (BytesMut::from(&b"abcHTTP"[..]), BytesMut::new());
        dec.decode(&mut buf, &mut out).unwrap();
        assert_eq!(
            (&out[..], &buf[..], dec.done()),
            (&b"abc"[..], &b"HTTP"[..], true)
        );
    }

    #[test]
    fn requests_carry_host_headers_and_length() {
        let r = request(
            "POST",
            "/pub/a",
            "127.0.0.1:80",
            &[("Content-Type", "text/plain")],
            b"hi",
        );
        assert_eq!(
            r,
            b"POST /pub/a HTTP/1.1\r\nHost: 127.0.0.1:80\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        );
    }
}
