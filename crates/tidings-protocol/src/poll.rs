//! The short- and long-poll response body:
//! `{"messages":[ENVELOPE,…],"cursor":"CURSOR"}`.
//!
//! Reset notices appear in `messages`, in order, as `{"type":"reset",…}` envelopes.

use bytes::{BufMut, BytesMut};

use crate::json::write_str;

/// Builds a poll body from encoded envelopes and the cursor after them.
pub fn write_body<'a>(
    out: &mut BytesMut,
    envelopes: impl IntoIterator<Item = &'a [u8]>,
    cursor: &str,
) {
    out.put_slice(b"{\"messages\":[");
    for (i, e) in envelopes.into_iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(e);
    }
    out.put_slice(b"],\"cursor\":");
    write_str(out, cursor);
    out.put_u8(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_bytes() {
        let mut b = BytesMut::new();
        write_body(
            &mut b,
            [&b"{\"a\":1}"[..], &b"{\"b\":2}"[..]],
            "c~000000000001~2",
        );
        assert_eq!(
            &b[..],
            br#"{"messages":[{"a":1},{"b":2}],"cursor":"c~000000000001~2"}"#
        );
        let mut b = BytesMut::new();
        write_body(&mut b, [], "");
        assert_eq!(&b[..], br#"{"messages":[],"cursor":""}"#);
    }
}
