//! The pub/sub notice: what a publish or a delete sends to every node, sans I/O.
//!
//! The Lua scripts build these bytes and the fan-out task decodes them, so a node needs no
//! extra round trip to deliver a message. The channel is not in the payload: it is the hash
//! tag of the pub/sub channel name (see [`crate::keys`]).
//!
//! ```text
//! message: m,<epoch>,<offset>,<time_ms>,<binary 0|1>,<event length or ->,<event bytes><data bytes>
//! reset:   r,<epoch>,<offset>
//! ```
//! `<epoch>` is 12 hex digits and the numbers are decimal. The event length is `-` when the
//! message has no event name (the default, `message`). Decoding never panics: anything
//! malformed is an error, and the fan-out task skips it.

use bytes::Bytes;
use tidings_protocol::{Epoch, Position};

/// A decoded notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A published message.
    Message {
        position: Position,
        time_ms: u64,
        binary: bool,
        event: Option<Box<str>>,
        data: Bytes,
    },
    /// The channel was deleted; it continues from this position.
    Reset(Position),
}

/// Why a notice could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    #[error("pub/sub notice is malformed near {0}; another program may publish on Tidings' pub/sub channels, give it another prefix")]
    Malformed(&'static str),
}

/// Appends the message notice (the Lua scripts build the same bytes).
pub fn encode_message(
    out: &mut Vec<u8>,
    position: Position,
    time_ms: u64,
    binary: bool,
    event: Option<&str>,
    data: &[u8],
) {
    out.extend_from_slice(
        format!(
            "m,{},{},{},{},",
            position.epoch,
            position.offset,
            time_ms,
            u8::from(binary)
        )
        .as_bytes(),
    );
    match event {
        Some(e) => {
            out.extend_from_slice(format!("{},", e.len()).as_bytes());
            out.extend_from_slice(e.as_bytes());
        }
        None => out.extend_from_slice(b"-,"),
    }
    out.extend_from_slice(data);
}

/// Appends the reset notice.
pub fn encode_reset(out: &mut Vec<u8>, position: Position) {
    out.extend_from_slice(format!("r,{},{}", position.epoch, position.offset).as_bytes());
}

/// Splits off the field before the next `,`.
fn field<'a>(rest: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], NoticeError> {
    let i = rest
        .iter()
        .position(|b| *b == b',')
        .ok_or(NoticeError::Malformed(what))?;
    let (f, r) = rest.split_at(i);
    *rest = &r[1..];
    Ok(f)
}

fn number(f: &[u8], what: &'static str) -> Result<u64, NoticeError> {
    if f.is_empty() || f.len() > 20 || !f.iter().all(u8::is_ascii_digit) {
        return Err(NoticeError::Malformed(what));
    }
    std::str::from_utf8(f)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(NoticeError::Malformed(what))
}

fn epoch(f: &[u8]) -> Result<Epoch, NoticeError> {
    std::str::from_utf8(f)
        .ok()
        .and_then(Epoch::parse)
        .ok_or(NoticeError::Malformed("epoch"))
}

/// Decodes a notice; `data` is sliced out of `payload` without copying.
pub fn decode(payload: &Bytes) -> Result<Notice, NoticeError> {
    let mut rest: &[u8] = payload;
    let kind = field(&mut rest, "kind")?;
    match kind {
        b"r" => {
            let e = epoch(field(&mut rest, "epoch")?)?;
            let offset = number(rest, "offset")?;
            Ok(Notice::Reset(Position { epoch: e, offset }))
        }
        b"m" => {
            let e = epoch(field(&mut rest, "epoch")?)?;
            let offset = number(field(&mut rest, "offset")?, "offset")?;
            let time_ms = number(field(&mut rest, "time")?, "time")?;
            let binary = match field(&mut rest, "binary flag")? {
                b"0" => false,
                b"1" => true,
                _ => return Err(NoticeError::Malformed("binary flag")),
            };
            let ev = field(&mut rest, "event length")?;
            let event = if ev == b"-" {
                None
            } else {
                let n = number(ev, "event length")? as usize;
                if n > rest.len() {
                    return Err(NoticeError::Malformed("event"));
                }
                let (name, r) = rest.split_at(n);
                rest = r;
                let name =
                    std::str::from_utf8(name).map_err(|_| NoticeError::Malformed("event"))?;
                Some(name.into())
            };
            let start = payload.len() - rest.len();
            Ok(Notice::Message {
                position: Position { epoch: e, offset },
                time_ms,
                binary,
                event,
                data: payload.slice(start..),
            })
        }
        _ => Err(NoticeError::Malformed("kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(e: u64, o: u64) -> Position {
        Position {
            epoch: Epoch(e),
            offset: o,
        }
    }

    #[test]
    fn message_bytes_are_exact_and_round_trip() {
        let mut b = Vec::new();
        encode_message(&mut b, pos(0xabc, 42), 1700, false, Some("tick"), b"a,b");
        assert_eq!(b, b"m,000000000abc,42,1700,0,4,ticka,b");
        let n = decode(&Bytes::from(b)).unwrap();
        assert_eq!(
            n,
            Notice::Message {
                position: pos(0xabc, 42),
                time_ms: 1700,
                binary: false,
                event: Some("tick".into()),
                data: Bytes::from_static(b"a,b"),
            }
        );
        let mut b = Vec::new();
        encode_message(&mut b, pos(1, 1), 0, true, None, &[0, 255, b',']);
        assert_eq!(&b[..], b"m,000000000001,1,0,1,-,\x00\xff,");
        match decode(&Bytes::from(b)).unwrap() {
            Notice::Message {
                binary,
                event,
                data,
                ..
            } => {
                assert!(binary);
                assert!(event.is_none());
                assert_eq!(&data[..], &[0, 255, b',']);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reset_round_trips() {
        let mut b = Vec::new();
        encode_reset(&mut b, pos(0xbeef, 0));
        assert_eq!(b, b"r,00000000beef,0");
        assert_eq!(
            decode(&Bytes::from(b)).unwrap(),
            Notice::Reset(pos(0xbeef, 0))
        );
    }

    #[test]
    fn malformed_notices_are_errors_not_panics() {
        let bad: &[&[u8]] = &[
            b"",
            b"x,1",
            b"m",
            b"m,zz,1,1,0,-,",
            b"m,000000000001,1,1,2,-,",
            b"m,000000000001,-1,1,0,-,",
            b"m,000000000001,1,1,0,9,abc",
            b"m,000000000001,1,1,0,99999999999999999999999,",
            b"m,000000000001,1,1,0,1,\xff",
            b"r,000000000001",
            b"r,000000000001,",
        ];
        for b in bad {
            assert!(decode(&Bytes::copy_from_slice(b)).is_err(), "{b:?}");
        }
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37) ^ n).collect();
            let _ = decode(&Bytes::from(junk));
        }
    }
}
