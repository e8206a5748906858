//! Write-through delivery: the publisher writes a message straight to an idle connection.
//!
//! Why: at a fixed rate every delivery otherwise costs a task wake-up, a scheduler round trip,
//! a queue push and pop and a poll of the connection's `select!`, on top of the one `send()` it
//! needs. When a connection is idle (nothing queued, nothing half-written) and the next message
//! is exactly the one its subscription expects, none of that is needed: the fan-out loop frames
//! the shared bytes and makes the non-blocking `send()` itself.
//!
//! How it stays correct:
//! - The connection task *arms* its outbox only while it waits with nothing pending, handing it
//!   a [`Direct`] writer and the last position delivered on each channel ([`Armed`]).
//! - [`crate::Outbox::push`] writes through only while armed and the queue is empty, and only
//!   the next offset of the same epoch. Anything else (a gap, a reset, a full socket) disarms the
//!   outbox and takes the queued path, so order is kept: once one message is queued, every later
//!   one is queued behind it until the task has caught up and armed again.
//! - The task disarms before it touches the socket or its positions, and takes back the writer
//!   with the positions advanced; a partial write leaves its rest with the writer, which the task
//!   sends before anything else.
//!
//! Every step happens under the outbox's lock, so the publisher and the task never write to the
//! socket at the same time.

use tidings_protocol::{ChannelName, Position};

use crate::published::Published;

/// What a write-through attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrote {
    /// The whole frame went to the socket.
    All,
    /// Nothing was written (the socket is full, or the writer declines): queue the message.
    Nothing,
    /// Part of the frame was written; the writer keeps the rest for the connection task, which
    /// must send it before anything else.
    Part,
}

/// A connection's socket, writable from the publisher's call.
pub trait Direct: Send {
    /// Frames `msg` and writes it without blocking.
    fn write(&mut self, msg: &Published) -> Wrote;

    /// False while the rest of a partial write waits for the connection task.
    fn ready(&self) -> bool;
}

/// A writer handed to an outbox, with the positions it continues from.
pub(crate) struct Armed {
    pub(crate) sink: Box<dyn Direct>,
    /// The last position delivered per subscribed channel, in the subscription's order.
    pub(crate) last: Vec<(ChannelName, Position)>,
    /// Messages written through since the writer was armed.
    pub(crate) delivered: usize,
}

impl Armed {
    /// Writes `msg` through if it is the next one on its channel. `None` means it was not
    /// written at all and must be queued.
    pub(crate) fn offer(&mut self, msg: &Published) -> Option<Wrote> {
        let pos = msg.msg.position;
        let i = self.last.iter().position(|(n, _)| *n == msg.msg.channel)?;
        let prev = self.last[i].1;
        if pos.epoch != prev.epoch || pos.offset != prev.offset + 1 {
            return None;
        }
        match self.sink.write(msg) {
            Wrote::Nothing => None,
            w => {
                self.last[i].1 = pos;
                self.delivered += 1;
                Some(w)
            }
        }
    }
}
