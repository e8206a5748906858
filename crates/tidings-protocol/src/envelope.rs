//! The JSON envelope: how a message or a reset looks on the JSON transports.
//!
//! ```text
//! {"channel":"chat:lobby","epoch":"0a1b2c3d4e5f","offset":42,"time":1764510000000,"event":"tick","data":"hi"}
//! {"channel":"c","epoch":"…","offset":3,"time":…,"data":"AAEC","encoding":"base64"}
//! {"type":"reset","channel":"c","epoch":"…","offset":9,"reason":"expired"}
//! ```
//! `event` is omitted when it is `message`. A message's cursor entry is
//! `channel~epoch~offset`. The envelope is script-safe (see [`crate::json`]), so the same
//! bytes are used for the iframe, ndjson, poll and WebSocket transports.

use base64::Engine as _;
use bytes::{BufMut, BytesMut};

use crate::json::{write_str, write_u64};
use crate::message::{Message, Payload, Reset};

/// Appends the envelope of `msg`.
pub fn write_message(out: &mut BytesMut, msg: &Message) {
    write_message_with(out, msg, true);
}

/// Appends the envelope of `msg`; without `with_data` the data and encoding fields are left
/// out (the WebSocket binary frame carries the bytes after the header).
pub fn write_message_with(out: &mut BytesMut, msg: &Message, with_data: bool) {
    out.reserve(msg.data.len() + msg.channel.len() + 96);
    out.put_slice(b"{\"channel\":");
    write_str(out, &msg.channel);
    out.put_slice(b",\"epoch\":\"");
    out.put_slice(msg.position.epoch.to_string().as_bytes());
    out.put_slice(b"\",\"offset\":");
    write_u64(out, msg.position.offset);
    out.put_slice(b",\"time\":");
    write_u64(out, msg.time_ms);
    if let Some(event) = &msg.event {
        out.put_slice(b",\"event\":");
        write_str(out, event);
    }
    if with_data {
        out.put_slice(b",\"data\":");
        match &msg.data {
            Payload::Text(_) => write_str(out, msg.data.as_text().unwrap_or_default()),
            Payload::Binary(b) => {
                out.put_u8(b'"');
                out.put_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(b)
                        .as_bytes(),
                );
                out.put_slice(b"\",\"encoding\":\"base64\"");
            }
        }
    } else if msg.data.is_binary() {
        out.put_slice(b",\"encoding\":\"binary\"");
    }
    out.put_u8(b'}');
}

/// Appends the envelope of a reset notice.
pub fn write_reset(out: &mut BytesMut, reset: &Reset) {
    out.put_slice(b"{\"type\":\"reset\",\"channel\":");
    write_str(out, &reset.channel);
    out.put_slice(b",\"epoch\":\"");
    out.put_slice(reset.position.epoch.to_string().as_bytes());
    out.put_slice(b"\",\"offset\":");
    write_u64(out, reset.position.offset);
    out.put_slice(b",\"reason\":\"");
    out.put_slice(reset.reason.as_str().as_bytes());
    out.put_slice(b"\"}");
}

/// Appends a control notice: `{"type":TYPE,"cursor":CURSOR}` (cursor omitted when empty).
/// Types used: `open`, `heartbeat`, `reconnect`.
pub fn write_control(out: &mut BytesMut, kind: &str, cursor: &str) {
    out.put_slice(b"{\"type\":");
    write_str(out, kind);
    if !cursor.is_empty() {
        out.put_slice(b",\"cursor\":");
        write_str(out, cursor);
    }
    out.put_u8(b'}');
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::channel::ChannelName;
    use crate::cursor::{Epoch, Position};
    use crate::message::ResetReason;
    use bytes::Bytes;

    pub fn msg(data: Payload, event: Option<&str>) -> Message {
        Message {
            channel: ChannelName::new("chat:lobby").unwrap(),
            position: Position {
                epoch: Epoch(0x0a1b2c3d4e5f),
                offset: 42,
            },
            event: event.map(Into::into),
            data,
            time_ms: 1_764_510_000_000,
        }
    }

    fn text(b: BytesMut) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn text_message_bytes() {
        let mut b = BytesMut::new();
        write_message(&mut b, &msg(Payload::text("</script>"), Some("tick")));
        assert_eq!(
            text(b),
            r#"{"channel":"chat:lobby","epoch":"0a1b2c3d4e5f","offset":42,"time":1764510000000,"event":"tick","data":"\u003c/script\u003e"}"#
        );
    }

    #[test]
    fn binary_message_bytes() {
        let mut b = BytesMut::new();
        write_message(
            &mut b,
            &msg(Payload::Binary(Bytes::from_static(&[0, 1, 2])), None),
        );
        assert_eq!(
            text(b),
            r#"{"channel":"chat:lobby","epoch":"0a1b2c3d4e5f","offset":42,"time":1764510000000,"data":"AAEC","encoding":"base64"}"#
        );
    }

    #[test]
    fn reset_bytes() {
        let mut b = BytesMut::new();
        let r = Reset {
            channel: ChannelName::new("c").unwrap(),
            position: Position {
                epoch: Epoch(1),
                offset: 9,
            },
            reason: ResetReason::Expired,
        };
        write_reset(&mut b, &r);
        assert_eq!(
            text(b),
            r#"{"type":"reset","channel":"c","epoch":"000000000001","offset":9,"reason":"expired"}"#
        );
    }
}
