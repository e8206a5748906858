//! Fuzzes WebSocket command decoding (text and binary frames): never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_protocol::ws;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ws::decode_text(text);
    }
    let _ = ws::decode_binary(&bytes::Bytes::copy_from_slice(data));
});
