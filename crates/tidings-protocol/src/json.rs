//! Script-safe JSON string writing.
//!
//! Every JSON text Tidings emits is safe to embed in an HTML `<script>` element: besides the
//! escapes JSON requires, `<`, `>`, `&`, U+2028 and U+2029 are written as `\uXXXX`. So data holding
//! `</script>`, `<!--` or a line separator can never end the script or break the JavaScript parse,
//! and the same bytes serve the iframe, ndjson, poll and WebSocket transports alike.

use bytes::{BufMut, BytesMut};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `s` as a quoted, script-safe JSON string.
pub fn write_str(out: &mut BytesMut, s: &str) {
    out.reserve(s.len() + 2);
    out.put_u8(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            b'<' => Some(b"\\u003c"),
            b'>' => Some(b"\\u003e"),
            b'&' => Some(b"\\u0026"),
            0..=0x1f => None,
            // U+2028 and U+2029 are E2 80 A8 / E2 80 A9 in UTF-8.
            0xE2 if bytes.get(i + 1) == Some(&0x80)
                && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) =>
            {
                out.put_slice(&bytes[start..i]);
                out.put_slice(if bytes[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.put_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.put_slice(e),
            None => {
                out.put_slice(b"\\u00");
                out.put_u8(HEX[(b >> 4) as usize]);
                out.put_u8(HEX[(b & 15) as usize]);
            }
        }
        i += 1;
        start = i;
    }
    out.put_slice(&bytes[start..]);
    out.put_u8(b'"');
}

/// Writes an unsigned integer (in decimal, so also an HTTP `content-length`).
pub fn write_u64(out: &mut impl BufMut, n: u64) {
    let mut buf = itoa_buf(n);
    out.put_slice(buf.as_bytes_mut());
}

struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut i = 20;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(s: &str) -> String {
        let mut b = BytesMut::new();
        write_str(&mut b, s);
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn escapes_script_breakers() {
        assert_eq!(enc("</script><!--"), r#""\u003c/script\u003e\u003c!--""#);
        assert_eq!(enc("a\u{2028}b\u{2029}c&"), "\"a\\u2028b\\u2029c\\u0026\"");
        assert_eq!(enc("q\"\\\n\r\t\u{1}"), r#""q\"\\\n\r\t\u0001""#);
        assert_eq!(enc("héllo ✓"), "\"héllo ✓\"");
    }

    #[test]
    fn writes_integers() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let mut b = BytesMut::new();
            write_u64(&mut b, n);
            assert_eq!(&b[..], n.to_string().as_bytes());
        }
    }

    proptest! {
        #[test]
        fn decodes_back_and_never_contains_script_breakers(s in any::<String>()) {
            let out = enc(&s);
            prop_assert!(!out.contains('<') && !out.contains('>') && !out.contains('&'));
            prop_assert!(!out.contains('\u{2028}'), "raw U+2028");
            prop_assert!(!out.contains('\u{2029}'), "raw U+2029");
            let back: String = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, s);
        }
    }
}
