//! Forever-iframe chunks: a `text/html` response whose every message is a
//! `<script>parent.NAME(ENVELOPE);</script>` element.
//!
//! Safety rests on two invariants:
//! - `NAME` is a plain identifier path (`onMsg`, `app.push`), checked by [`validate_callback`],
//!   so a hostile callback parameter cannot inject script.
//! - The envelope is script-safe JSON ([`crate::json`]): `<`, `>`, `&`, U+2028 and U+2029 are
//!   escaped, so data holding `</script>`, `<!--` or a line separator can never leave the call.
//!
//! The preamble carries padding, because browsers buffer the first KiB or so of a response
//! before they run any script in it.

use bytes::{BufMut, BytesMut};

use crate::envelope;

/// The default callback name when the request names none.
pub const DEFAULT_CALLBACK: &str = "tidings";
/// The longest callback accepted.
pub const MAX_CALLBACK_LEN: usize = 128;
/// Bytes of padding sent after the preamble.
pub const PADDING: usize = 2048;

/// Why a callback name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("callback must be 1-128 characters long")]
    Length,
    #[error("callback must be an identifier path such as `onMessage` or `app.push`: letters, digits, `_` and `$`, parts joined by `.`")]
    Shape,
}

/// Checks that `name` is a dotted path of JavaScript identifiers (ASCII only).
pub fn validate_callback(name: &str) -> Result<(), CallbackError> {
    if name.is_empty() || name.len() > MAX_CALLBACK_LEN {
        return Err(CallbackError::Length);
    }
    for part in name.split('.') {
        let mut bytes = part.bytes();
        match bytes.next() {
            Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b'$' => {}
            _ => return Err(CallbackError::Shape),
        }
        if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$') {
            return Err(CallbackError::Shape);
        }
    }
    Ok(())
}

/// Appends the document head and the padding.
pub fn write_preamble(out: &mut BytesMut) {
    out.put_slice(b"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>tidings</title></head><body>\n<!--");
    out.put_bytes(b' ', PADDING);
    out.put_slice(b"-->\n");
}

/// Appends one call: `<script>parent.NAME(JSON);</script>\n`. `callback` must be validated.
pub fn write_call(out: &mut BytesMut, callback: &str, json: &[u8]) {
    out.reserve(json.len() + callback.len() + 36);
    out.put_slice(CALL_OPEN);
    out.put_slice(callback.as_bytes());
    out.put_u8(b'(');
    out.put_slice(json);
    out.put_slice(CALL_SUFFIX);
}

/// What precedes the JSON in a call to `callback`; [`CALL_SUFFIX`] follows it.
pub fn call_prefix(callback: &str) -> String {
    format!(
        "{}{callback}(",
        std::str::from_utf8(CALL_OPEN).unwrap_or_default()
    )
}

const CALL_OPEN: &[u8] = b"<script>parent.";

/// What follows the JSON in a call.
pub const CALL_SUFFIX: &[u8] = b");</script>\n";

/// Appends a control call (`open`, `heartbeat`, `reconnect`).
pub fn write_control(out: &mut BytesMut, callback: &str, kind: &str, cursor: &str) {
    let mut json = BytesMut::new();
    envelope::write_control(&mut json, kind, cursor);
    write_call(out, callback, &json);
}

/// Appends the end of the document, sent when the byte budget is spent.
pub fn write_end(out: &mut BytesMut) {
    out.put_slice(b"</body></html>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{tests::msg, write_message};
    use crate::message::Payload;
    use proptest::prelude::*;

    #[test]
    fn callback_validation() {
        assert!(validate_callback("onMsg").is_ok());
        assert!(validate_callback("app.push_1.$x").is_ok());
        for bad in [
            "",
            "a..b",
            "1a",
            "alert(1)",
            "a;b",
            "x</script>",
            "a.",
            ".a",
            "a b",
            "é",
        ] {
            assert!(validate_callback(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_callback(&"a".repeat(129)),
            Err(CallbackError::Length)
        );
    }

    #[test]
    fn call_bytes_cannot_break_out() {
        let mut json = BytesMut::new();
        write_message(
            &mut json,
            &msg(
                Payload::text("</script><script>x=1</script><!--\u{2028}"),
                None,
            ),
        );
        let mut out = BytesMut::new();
        write_call(&mut out, "cb", &json);
        let s = String::from_utf8(out.to_vec()).unwrap();
        assert!(s.starts_with("<script>parent.cb({\"channel\""));
        assert!(s.ends_with("});</script>\n"));
        assert_eq!(s.matches("</script>").count(), 1);
        assert!(!s.contains("<!--") && !s.contains('\u{2028}'));
    }

    #[test]
    fn preamble_is_padded() {
        let mut out = BytesMut::new();
        write_preamble(&mut out);
        assert!(out.len() > PADDING);
        assert!(out.starts_with(b"<!DOCTYPE html>"));
    }

    proptest! {
        #[test]
        fn any_data_yields_exactly_one_script_end(data in any::<String>()) {
            let mut json = BytesMut::new();
            write_message(&mut json, &msg(Payload::text(data), None));
            let mut out = BytesMut::new();
            write_call(&mut out, "cb", &json);
            let s = String::from_utf8(out.to_vec()).unwrap();
            prop_assert_eq!(s.to_ascii_lowercase().matches("</script").count(), 1);
            prop_assert!(!s.contains("<!--"));
        }
    }
}
