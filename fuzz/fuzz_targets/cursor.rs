//! Fuzzes cursor parsing: never panics, and whatever parses prints back to the same cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_protocol::Cursor;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = Cursor::parse(text) {
            let again = Cursor::parse(&c.to_string()).expect("a printed cursor parses");
            assert_eq!(again, c);
        }
    }
});
