//! The `tidings.v1` WebSocket protocol: client commands, replies and pushes.
//!
//! Client → server, one JSON object per text frame:
//! ```text
//! {"id":1,"op":"subscribe","channel":"chat:lobby","since":"chat:lobby~0a1b2c3d4e5f~40"}
//! {"id":2,"op":"unsubscribe","channel":"chat:lobby"}
//! {"id":3,"op":"publish","channel":"chat:lobby","data":"hi","event":"say"}
//! {"id":4,"op":"ping"}
//! ```
//! A binary frame publishes raw bytes: a JSON header (a `publish` command without `data`), one
//! `\n`, then the bytes.
//!
//! Server → client: replies carry the request `id` and either `"ok":true` or an `error` object;
//! pushes are message or reset envelopes ([`crate::envelope`]) and never carry `id`. A binary
//! message is pushed as a binary frame: its envelope without data, `\n`, then the bytes.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;

use crate::channel::ChannelName;
use crate::cursor::{Cursor, Position};
use crate::json::{write_str, write_u64};
use crate::message::Payload;

/// The subprotocol name negotiated in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "tidings.v1";
/// The longest request id string accepted.
pub const MAX_ID_LEN: usize = 64;

/// A request id: a non-negative integer or a short string, echoed in the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestId {
    Number(u64),
    Text(String),
}

/// A decoded client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Subscribe {
        id: RequestId,
        channel: ChannelName,
        since: Option<Cursor>,
    },
    Unsubscribe {
        id: RequestId,
        channel: ChannelName,
    },
    Publish {
        id: RequestId,
        channel: ChannelName,
        event: Option<String>,
        data: Payload,
    },
    Ping {
        id: RequestId,
    },
}

/// A command that could not be decoded, with the id when one was readable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CommandError {
    pub id: Option<RequestId>,
    /// One of `bad_json`, `bad_request`, `unknown_op`, `bad_channel`, `bad_cursor`, `bad_event`.
    pub code: &'static str,
    pub message: String,
}

#[derive(Deserialize)]
struct Raw {
    id: Option<serde_json::Value>,
    op: Option<String>,
    channel: Option<String>,
    since: Option<String>,
    data: Option<serde_json::Value>,
    event: Option<String>,
}

fn err(id: &Option<RequestId>, code: &'static str, message: impl Into<String>) -> CommandError {
    CommandError {
        id: id.clone(),
        code,
        message: message.into(),
    }
}

fn parse_id(v: Option<serde_json::Value>) -> Result<Option<RequestId>, CommandError> {
    match v {
        None => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .map(|n| Some(RequestId::Number(n)))
            .ok_or_else(|| {
                err(
                    &None,
                    "bad_request",
                    "`id` must be a non-negative integer or a string",
                )
            }),
        Some(serde_json::Value::String(s)) if s.len() <= MAX_ID_LEN => Ok(Some(RequestId::Text(s))),
        Some(_) => Err(err(
            &None,
            "bad_request",
            "`id` must be a non-negative integer or a string of at most 64 bytes",
        )),
    }
}

/// Checks an event name: 1–64 bytes of `[A-Za-z0-9_.:-]`.
pub fn validate_event(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("event name must be 1-64 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.:-".contains(*c)))
    {
        return Err(format!(
            "event name has {c:?}; only [A-Za-z0-9_.:-] are allowed"
        ));
    }
    Ok(())
}

fn decode_raw(raw: Raw, binary: Option<Bytes>) -> Result<Command, CommandError> {
    let id = parse_id(raw.id)?;
    let Some(op) = raw.op else {
        return Err(err(
            &id,
            "bad_request",
            "missing `op`; use subscribe, unsubscribe, publish or ping",
        ));
    };
    let Some(rid) = id.clone() else {
        return Err(err(
            &None,
            "bad_request",
            "missing `id`; every command carries a request id",
        ));
    };
    let channel = |raw_channel: Option<String>| -> Result<ChannelName, CommandError> {
        let name = raw_channel
            .ok_or_else(|| err(&id, "bad_request", format!("`{op}` needs `channel`")))?;
        ChannelName::new(&name).map_err(|e| err(&id, "bad_channel", e.to_string()))
    };
    match op.as_str() {
        "subscribe" => {
            let channel = channel(raw.channel)?;
            let since = match raw.since.as_deref() {
                None | Some("") => None,
                Some(s) => {
                    Some(Cursor::parse(s).map_err(|e| err(&id, "bad_cursor", e.to_string()))?)
                }
            };
            Ok(Command::Subscribe {
                id: rid,
                channel,
                since,
            })
        }
        "unsubscribe" => Ok(Command::Unsubscribe {
            id: rid,
            channel: channel(raw.channel)?,
        }),
        "publish" => {
            let channel = channel(raw.channel)?;
            if let Some(e) = &raw.event {
                validate_event(e).map_err(|m| err(&id, "bad_event", m))?;
            }
            let data = match (binary, raw.data) {
                (Some(bytes), None) => Payload::Binary(bytes),
                (Some(_), Some(_)) => {
                    return Err(err(
                        &id,
                        "bad_request",
                        "a binary publish carries its data after the header, not in `data`",
                    ))
                }
                (None, Some(serde_json::Value::String(s))) => Payload::text(s),
                (None, Some(other)) => Payload::text(other.to_string()),
                (None, None) => return Err(err(&id, "bad_request", "`publish` needs `data`")),
            };
            Ok(Command::Publish {
                id: rid,
                channel,
                event: raw.event,
                data,
            })
        }
        "ping" => Ok(Command::Ping { id: rid }),
        other => Err(err(
            &id,
            "unknown_op",
            format!("unknown op {other:?}; use subscribe, unsubscribe, publish or ping"),
        )),
    }
}

/// Decodes a text frame.
pub fn decode_text(frame: &str) -> Result<Command, CommandError> {
    let raw: Raw = serde_json::from_str(frame).map_err(|e| {
        err(
            &None,
            "bad_json",
            format!("command is not a JSON object: {e}"),
        )
    })?;
    decode_raw(raw, None)
}

/// Decodes a binary frame: a JSON `publish` header, `\n`, then the payload bytes.
pub fn decode_binary(frame: &Bytes) -> Result<Command, CommandError> {
    let Some(nl) = frame.iter().position(|&b| b == b'\n') else {
        return Err(err(
            &None,
            "bad_request",
            "a binary frame is a JSON header, a newline, then the data",
        ));
    };
    let raw: Raw = serde_json::from_slice(&frame[..nl]).map_err(|e| {
        err(
            &None,
            "bad_json",
            format!("binary frame header is not a JSON object: {e}"),
        )
    })?;
    if raw.op.as_deref() != Some("publish") {
        let id = parse_id(raw.id.clone()).ok().flatten();
        return Err(err(
            &id,
            "bad_request",
            "binary frames may only carry `publish`",
        ));
    }
    decode_raw(raw, Some(frame.slice(nl + 1..)))
}

fn write_id(out: &mut BytesMut, id: &RequestId) {
    out.put_slice(b"{\"id\":");
    match id {
        RequestId::Number(n) => write_u64(out, *n),
        RequestId::Text(s) => write_str(out, s),
    }
}

/// `{"id":ID,"ok":true}`
pub fn write_ok(out: &mut BytesMut, id: &RequestId) {
    write_id(out, id);
    out.put_slice(b",\"ok\":true}");
}

/// `{"id":ID,"ok":true,"channel":C,"epoch":E,"offset":N}`: the reply to subscribe (the position
/// live delivery starts after) and to publish (the message's position).
pub fn write_ok_position(out: &mut BytesMut, id: &RequestId, channel: &str, pos: Position) {
    write_id(out, id);
    out.put_slice(b",\"ok\":true,\"channel\":");
    write_str(out, channel);
    out.put_slice(b",\"epoch\":\"");
    out.put_slice(pos.epoch.to_string().as_bytes());
    out.put_slice(b"\",\"offset\":");
    write_u64(out, pos.offset);
    out.put_u8(b'}');
}

/// `{"id":ID,"error":{"code":CODE,"message":MSG}}`; with no id, `"id":null`.
pub fn write_error(out: &mut BytesMut, id: Option<&RequestId>, code: &str, message: &str) {
    match id {
        Some(id) => write_id(out, id),
        None => out.put_slice(b"{\"id\":null"),
    }
    out.put_slice(b",\"error\":{\"code\":");
    write_str(out, code);
    out.put_slice(b",\"message\":");
    write_str(out, message);
    out.put_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_each_command() {
        assert_eq!(
            decode_text(r#"{"id":1,"op":"subscribe","channel":"a","since":"a~000000000001~3"}"#)
                .unwrap(),
            Command::Subscribe {
                id: RequestId::Number(1),
                channel: ChannelName::new("a").unwrap(),
                since: Some(Cursor::parse("a~000000000001~3").unwrap()),
            }
        );
        assert_eq!(
            decode_text(r#"{"id":"x","op":"publish","channel":"a","data":"hi","event":"say"}"#)
                .unwrap(),
            Command::Publish {
                id: RequestId::Text("x".into()),
                channel: ChannelName::new("a").unwrap(),
                event: Some("say".into()),
                data: Payload::text("hi"),
            }
        );
        assert_eq!(
            decode_text(r#"{"id":4,"op":"ping"}"#).unwrap(),
            Command::Ping {
                id: RequestId::Number(4)
            }
        );
        let bin = Bytes::from_static(b"{\"id\":5,\"op\":\"publish\",\"channel\":\"a\"}\n\x00\x01");
        assert_eq!(
            decode_binary(&bin).unwrap(),
            Command::Publish {
                id: RequestId::Number(5),
                channel: ChannelName::new("a").unwrap(),
                event: None,
                data: Payload::Binary(Bytes::from_static(b"\x00\x01")),
            }
        );
    }

    #[test]
    fn rejections_carry_code_and_id() {
        let e = decode_text("{nope").unwrap_err();
        assert_eq!((e.code, e.id), ("bad_json", None));
        let e = decode_text(r#"{"id":7,"op":"dance"}"#).unwrap_err();
        assert_eq!((e.code, e.id), ("unknown_op", Some(RequestId::Number(7))));
        let e = decode_text(r#"{"id":8,"op":"subscribe","channel":"a b"}"#).unwrap_err();
        assert_eq!(e.code, "bad_channel");
        let e = decode_text(r#"{"id":9,"op":"subscribe","channel":"a","since":"zz"}"#).unwrap_err();
        assert_eq!(e.code, "bad_cursor");
        let e = decode_text(r#"{"op":"ping"}"#).unwrap_err();
        assert_eq!(e.code, "bad_request");
        let e = decode_text(r#"{"id":1,"op":"publish","channel":"a","data":"x","event":"a b"}"#)
            .unwrap_err();
        assert_eq!(e.code, "bad_event");
    }

    #[test]
    fn reply_bytes() {
        let mut b = BytesMut::new();
        write_ok(&mut b, &RequestId::Number(1));
        write_error(
            &mut b,
            Some(&RequestId::Text("q".into())),
            "unknown_op",
            "no \"x\"",
        );
        write_error(&mut b, None, "bad_json", "m");
        assert_eq!(
            &b[..],
            br#"{"id":1,"ok":true}{"id":"q","error":{"code":"unknown_op","message":"no \"x\""}}{"id":null,"error":{"code":"bad_json","message":"m"}}"#
        );
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = decode_text(&s);
            let _ = decode_binary(&Bytes::from(s.into_bytes()));
        }
    }
}
