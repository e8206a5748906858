//! Fuzzes iframe callback validation: an accepted name can never contain script syntax.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_protocol::iframe::validate_callback;

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data) {
        if validate_callback(name).is_ok() {
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b'.'));
        }
    }
});
