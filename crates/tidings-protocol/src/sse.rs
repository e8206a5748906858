//! Server-Sent Events encoding (WHATWG HTML §9.2).
//!
//! Invariants the encoder holds, whatever the data:
//! - `data` is split on every line break the parser recognises (`\r\n`, `\r`, `\n`) into one
//!   `data:` line each, so the browser rebuilds the exact text, joined by `\n`. (A lone `\r` or a
//!   `\r\n` therefore arrives as `\n`: SSE cannot carry them, and docs/transports/sse.md says so.)
//! - `id` and `event` never contain a line break or NUL (cursors and event names are validated
//!   upstream; this module refuses them again).
//! - `event:` is written only when the event is not `message`, so `onmessage` sees default events.
//! - Binary data is base64 and its event name gets the suffix `.base64`, so it is never mistaken
//!   for text.
//!
//! An event is built as two parts: the `id:` line, which differs per subscription when it names
//! several channels, and the body (`event:` and `data:` lines plus the blank line), which is the
//! same for every subscriber and so is encoded once per message.

use base64::Engine as _;
use bytes::{BufMut, BytesMut};

use crate::message::{Message, Payload, DEFAULT_EVENT};

/// Suffix of the event name of a binary message.
pub const BINARY_SUFFIX: &str = ".base64";

/// True when `s` may be written in an `id:` or `event:` field.
pub fn is_field_safe(s: &str) -> bool {
    !s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

/// Appends `id: ID\n`. Refuses (writes nothing and returns false) an unsafe id.
pub fn write_id(out: &mut BytesMut, id: &str) -> bool {
    if !is_field_safe(id) {
        return false;
    }
    out.put_slice(b"id: ");
    out.put_slice(id.as_bytes());
    out.put_u8(b'\n');
    true
}

/// Appends `data:` lines for `text`, one per line, splitting on CRLF, CR and LF.
pub fn write_data(out: &mut BytesMut, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 8);
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' | b'\r' => {
                out.put_slice(b"data: ");
                out.put_slice(&bytes[start..i]);
                out.put_u8(b'\n');
                if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.put_slice(b"data: ");
    out.put_slice(&bytes[start..]);
    out.put_u8(b'\n');
}

/// Appends `event: NAME\n` unless the name is the default. Unsafe names are dropped.
pub fn write_event_name(out: &mut BytesMut, name: &str) {
    if name != DEFAULT_EVENT && is_field_safe(name) {
        out.put_slice(b"event: ");
        out.put_slice(name.as_bytes());
        out.put_u8(b'\n');
    }
}

/// Appends the shared body of a message event: `event:`, `data:` lines and the blank line.
pub fn write_message_body(out: &mut BytesMut, msg: &Message) {
    match &msg.data {
        Payload::Text(_) => {
            write_event_name(out, msg.event_name());
            write_data(out, msg.data.as_text().unwrap_or_default());
        }
        Payload::Binary(b) => {
            let name = format!("{}{BINARY_SUFFIX}", msg.event_name());
            out.put_slice(b"event: ");
            out.put_slice(name.as_bytes());
            out.put_u8(b'\n');
            write_data(out, &base64::engine::general_purpose::STANDARD.encode(b));
        }
    }
    out.put_u8(b'\n');
}

/// Appends the shared body of an event whose data is a JSON envelope (`?format=json`).
pub fn write_json_body(out: &mut BytesMut, event: &str, json: &[u8]) {
    write_event_name(out, event);
    out.put_slice(b"data: ");
    out.put_slice(json);
    out.put_slice(b"\n\n");
}

/// Appends `retry: MS\n\n`, sent first on every stream.
pub fn write_retry(out: &mut BytesMut, ms: u64) {
    out.put_slice(b"retry: ");
    out.put_slice(ms.to_string().as_bytes());
    out.put_slice(b"\n\n");
}

/// Appends a comment, used for heartbeats (`: hb`). Line breaks in `text` are dropped.
pub fn write_comment(out: &mut BytesMut, text: &str) {
    out.put_slice(b": ");
    for b in text.bytes().filter(|b| !matches!(b, b'\r' | b'\n')) {
        out.put_u8(b);
    }
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::tests::msg;
    use bytes::Bytes;
    use proptest::prelude::*;

    /// A WHATWG event-stream parser written from the spec's algorithm, independent of the
    /// encoder: returns (event type, data, last event id) per dispatched event.
    fn parse(stream: &str) -> Vec<(String, String, String)> {
        let mut events = Vec::new();
        let (mut data, mut event, mut last_id) = (String::new(), String::new(), String::new());
        let normalized = stream.replace("\r\n", "\n").replace('\r', "\n");
        for line in normalized.split('\n') {
            if line.is_empty() {
                if !data.is_empty() {
                    if data.ends_with('\n') {
                        data.pop();
                    }
                    let kind = if event.is_empty() {
                        "message".to_string()
                    } else {
                        event.clone()
                    };
                    events.push((kind, data.clone(), last_id.clone()));
                }
                data.clear();
                event.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.find(':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(' ').unwrap_or(v))
                }
                None => (line, ""),
            };
            match field {
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "event" => event = value.to_string(),
                "id" if !value.contains('\0') => last_id = value.to_string(),
                _ => {}
            }
        }
        events
    }

    fn event(id: &str, m: &Message) -> String {
        let mut b = BytesMut::new();
        write_id(&mut b, id);
        write_message_body(&mut b, m);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn exact_bytes_for_multiline_named_event() {
        let m = msg(Payload::text("a\nb\r\nc\rd"), Some("tick"));
        assert_eq!(
            event("c~0a1b2c3d4e5f~42", &m),
            "id: c~0a1b2c3d4e5f~42\nevent: tick\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn default_event_has_no_event_line_and_empty_data_survives() {
        let m = msg(Payload::text(""), None);
        assert_eq!(event("x", &m), "id: x\ndata: \n\n");
        assert_eq!(
            parse(&event("x", &m)),
            vec![("message".into(), "".into(), "x".into())]
        );
    }

    #[test]
    fn binary_is_base64_and_says_so() {
        let m = msg(Payload::Binary(Bytes::from_static(b"\x00\xff")), None);
        assert_eq!(
            event("x", &m),
            "id: x\nevent: message.base64\ndata: AP8=\n\n"
        );
    }

    #[test]
    fn refuses_unsafe_fields() {
        let mut b = BytesMut::new();
        assert!(!write_id(&mut b, "a\nb"));
        write_event_name(&mut b, "x\ry");
        assert!(b.is_empty());
    }

    #[test]
    fn heartbeat_and_retry() {
        let mut b = BytesMut::new();
        write_retry(&mut b, 2000);
        write_comment(&mut b, "hb\n");
        assert_eq!(&b[..], b"retry: 2000\n\n: hb\n\n");
    }

    proptest! {
        /// Whatever the text, the parser gives back the text with line breaks normalised to `\n`.
        #[test]
        fn parser_recovers_data(data in any::<String>(), ev in "[a-z]{1,8}") {
            let data = data.replace('\0', "");
            let m = msg(Payload::text(data.clone()), Some(&ev));
            let parsed = parse(&event("c~0a1b2c3d4e5f~42", &m));
            let want = data.replace("\r\n", "\n").replace('\r', "\n");
            prop_assert_eq!(parsed, vec![(ev, want, "c~0a1b2c3d4e5f~42".to_string())]);
        }
    }
}
