//! Sans-IO wire formats of Tidings.
//!
//! Everything a transport puts on the wire, and everything a client may send, is a pure
//! function over bytes here: channel names, positions and cursors, the JSON envelope, the
//! SSE event, the forever-iframe `<script>` chunk, the ndjson line, the poll body and the
//! WebSocket commands. Nothing in this crate does I/O or reads a clock, so every function is
//! tested by comparing exact bytes, and fuzzed where it parses untrusted input.

pub mod channel;
pub mod cursor;
pub mod envelope;
pub mod iframe;
pub mod json;
pub mod message;
pub mod ndjson;
pub mod poll;
pub mod sse;
pub mod ws;

pub use channel::{ChannelError, ChannelName};
pub use cursor::{Cursor, CursorError, Epoch, Position};
pub use message::{Message, Payload, Reset, ResetReason};
