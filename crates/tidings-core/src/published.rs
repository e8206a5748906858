//! A published message with its encodings, built at most once and shared by every subscriber.
//!
//! DESIGN §6: the SSE event, the JSON envelope (used by ndjson, iframe, poll and WebSocket), the
//! single-channel SSE event and the single-message poll body are the same bytes for every
//! subscriber. Each is encoded lazily
//! on first use and then handed out as a `Bytes` clone (a reference-count bump).

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use tidings_protocol::cursor::write_entry;
use tidings_protocol::{envelope, poll, sse, Message};

/// A message shared between history, queues and connections.
pub type Shared = Arc<Published>;

/// A message plus its lazily built encodings.
#[derive(Debug)]
pub struct Published {
    pub msg: Message,
    json: OnceLock<Bytes>,
    sse_body: OnceLock<Bytes>,
    sse_single: OnceLock<Bytes>,
    sse_json_single: OnceLock<Bytes>,
    poll_single: OnceLock<Bytes>,
}

impl Published {
    /// Wraps a message.
    pub fn new(msg: Message) -> Shared {
        Arc::new(Published {
            msg,
            json: OnceLock::new(),
            sse_body: OnceLock::new(),
            sse_single: OnceLock::new(),
            sse_json_single: OnceLock::new(),
            poll_single: OnceLock::new(),
        })
    }

    /// The script-safe JSON envelope.
    pub fn json(&self) -> &Bytes {
        self.json.get_or_init(|| {
            let mut b = BytesMut::new();
            envelope::write_message(&mut b, &self.msg);
            b.freeze()
        })
    }

    /// The SSE event body (`event:`/`data:` lines and the blank line), without `id:`.
    pub fn sse_body(&self) -> &Bytes {
        self.sse_body.get_or_init(|| {
            let mut b = BytesMut::new();
            sse::write_message_body(&mut b, &self.msg);
            b.freeze()
        })
    }

    /// The whole SSE event for a single-channel subscription, whose `id:` is this message's
    /// own cursor entry.
    pub fn sse_single(&self) -> &Bytes {
        self.sse_single.get_or_init(|| {
            let mut b = BytesMut::new();
            sse::write_id(&mut b, &self.cursor_entry());
            b.extend_from_slice(self.sse_body());
            b.freeze()
        })
    }

    /// The whole SSE event in `format=json` for a single-channel subscription.
    pub fn sse_json_single(&self) -> &Bytes {
        self.sse_json_single.get_or_init(|| {
            let mut b = BytesMut::new();
            sse::write_id(&mut b, &self.cursor_entry());
            sse::write_json_body(&mut b, "message", self.json());
            b.freeze()
        })
    }

    /// The poll body answering a single-channel poll with just this message:
    /// `{"messages":[ENVELOPE],"cursor":"channel~epoch~offset"}` (every long poll waiting on the
    /// channel gets these same bytes).
    pub fn poll_single(&self) -> &Bytes {
        self.poll_single.get_or_init(|| {
            let mut b = BytesMut::new();
            poll::write_body(&mut b, [&self.json()[..]], &self.cursor_entry());
            b.freeze()
        })
    }

    /// `channel~epoch~offset`.
    pub fn cursor_entry(&self) -> String {
        let mut s = String::with_capacity(self.msg.channel.len() + 24);
        write_entry(&mut s, &self.msg.channel, self.msg.position);
        s
    }

    /// Bytes this message is charged in queues and history.
    pub fn cost(&self) -> usize {
        self.msg.cost()
    }
}
