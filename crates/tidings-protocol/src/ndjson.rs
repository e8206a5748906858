//! XHR streaming lines: one JSON envelope per line (`application/x-ndjson`).
//!
//! Besides message and reset envelopes, the stream carries control lines:
//! `{"type":"open","cursor":…}` first (so a client can tell a buffering proxy from a quiet
//! channel), `{"type":"heartbeat"}` while idle, and `{"type":"reconnect","cursor":…}` when the
//! response ends at its byte budget.

use bytes::{BufMut, BytesMut};

use crate::envelope;

/// Appends a line holding an already-encoded envelope.
pub fn write_line(out: &mut BytesMut, envelope_json: &[u8]) {
    out.reserve(envelope_json.len() + 1);
    out.put_slice(envelope_json);
    out.put_u8(b'\n');
}

/// Appends a control line.
pub fn write_control(out: &mut BytesMut, kind: &str, cursor: &str) {
    envelope::write_control(out, kind, cursor);
    out.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_end_with_newline() {
        let mut b = BytesMut::new();
        write_control(&mut b, "open", "a~000000000001~0");
        write_line(&mut b, br#"{"x":1}"#);
        write_control(&mut b, "heartbeat", "");
        assert_eq!(
            &b[..],
            b"{\"type\":\"open\",\"cursor\":\"a~000000000001~0\"}\n{\"x\":1}\n{\"type\":\"heartbeat\"}\n"
        );
    }
}
