//! The bench payload: `{channel}:{seq}:{sent_ns}:{padding};` in plain ASCII.
//!
//! Every message names its channel (an index), its sequence number on that channel (1, 2, …)
//! and its send time in nanoseconds since the Unix epoch (the wall clock, so that several
//! generator processes on one machine agree). Padding of `x` brings it to the requested size.
//!
//! The text needs no escaping in JSON, SSE, HTML or a WebSocket text frame, so both servers'
//! raw modes carry it verbatim. The closing `;` makes it self-delimiting, which a raw byte
//! stream (Nchan's chunked transport) needs: chunk boundaries are not message boundaries once
//! TCP has split or merged them.

use bytes::BytesMut;

/// What a payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Channel index (`0..channels`).
    pub channel: u32,
    /// Sequence number on the channel, from 1.
    pub seq: u64,
    /// Send time, ns since the Unix epoch.
    pub sent_ns: u64,
}

/// The byte that ends every payload.
pub const END: u8 = b';';

/// Writes a payload of `size` bytes (longer when the header alone does not fit).
pub fn encode(stamp: Stamp, size: usize, out: &mut Vec<u8>) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "{}:{}:{}:", stamp.channel, stamp.seq, stamp.sent_ns);
    let pad = size.saturating_sub(out.len() + 1);
    out.resize(out.len() + pad, b'x');
    out.push(END);
}

/// Reads the stamp of a payload; `None` when it is not one of ours.
pub fn decode(data: &[u8]) -> Option<Stamp> {
    let mut parts = data.splitn(4, |&b| b == b':');
    let channel = number(parts.next()?)?;
    let seq = number(parts.next()?)?;
    let sent_ns = number(parts.next()?)?;
    parts.next()?;
    Some(Stamp {
        channel: u32::try_from(channel).ok()?,
        seq,
        sent_ns,
    })
}

fn number(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// Splits the next whole payload off a raw byte stream, if one has fully arrived.
pub fn split_stream(buf: &mut BytesMut) -> Option<BytesMut> {
    let end = buf.iter().position(|&b| b == END)?;
    Some(buf.split_to(end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Stamp = Stamp {
        channel: 3,
        seq: 42,
        sent_ns: 1_764_510_000_123_456_789,
    };

    #[test]
    fn encodes_to_the_exact_size() {
        let mut out = Vec::new();
        encode(S, 64, &mut out);
        assert_eq!(out.len(), 64);
        assert!(out.starts_with(b"3:42:1764510000123456789:xxx"));
        assert_eq!(out.last(), Some(&END));
        assert_eq!(decode(&out), Some(S));
    }

    #[test]
    fn a_small_size_still_carries_the_stamp() {
        let mut out = Vec::new();
        encode(S, 1, &mut out);
        assert_eq!(out, b"3:42:1764510000123456789:;");
        assert_eq!(decode(&out), Some(S));
    }

    #[test]
    fn foreign_text_is_not_a_stamp() {
        assert_eq!(decode(b"hello"), None);
        assert_eq!(decode(b"1:2:3"), None);
        assert_eq!(decode(b"1:x:3:;"), None);
        assert_eq!(decode(b"99999999999:1:3:;"), None);
    }

    #[test]
    fn a_stream_splits_at_each_end() {
        let mut buf = BytesMut::from(&b"0:1:5:xx;0:2:6:x"[..]);
        assert_eq!(&split_stream(&mut buf).unwrap()[..], b"0:1:5:xx;");
        assert_eq!(split_stream(&mut buf), None);
        buf.extend_from_slice(b"x;");
        assert_eq!(&split_stream(&mut buf).unwrap()[..], b"0:2:6:xx;");
    }
}
