//! A connection's subscription to one or more channels: the consumer side of the delivery
//! contract.
//!
//! Resuming works in this order, which is what makes the seam between history and live
//! delivery lossless without any lock shared with publishers:
//! 1. register the outbox with the hub, so every message published from now on is queued;
//! 2. read history after the cursor, and queue it ahead of the live messages;
//! 3. deliver through one filter that tracks, per channel, the last position delivered.
//!
//! The filter drops anything at or below that position (a message both in history and in the
//! queue arrives once), passes the next offset, and treats a jump as a gap: it reads the
//! missing offsets from history, or, when they are gone, emits a reset. A gap the outbox made on
//! purpose (`drop_oldest`, `latest_only`) is passed through. A message from another epoch emits
//! a reset first. So every transport gets the same order and the same exactly-once guarantee.
//!
//! A transport that can write a message from the publisher's call installs a [`Direct`] writer;
//! the subscription arms the outbox with it whenever it waits with nothing pending, and takes it
//! back, with the positions it advanced, before anything else ([`crate::direct`]).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;

use tidings_protocol::{ChannelName, Cursor, Position, Reset, ResetReason};

use crate::broker::{History, Range};
use crate::direct::{Armed, Direct};
use crate::hub::{Hub, HubError, Transport};
use crate::outbox::{CloseReason, Entry, Item, Outbox};

struct Chan {
    name: ChannelName,
    sink: Option<u64>,
    last: Position,
}

/// Why a subscription stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Stopped {
    #[error(transparent)]
    Closed(#[from] CloseReason),
    #[error(transparent)]
    Hub(#[from] HubError),
}

/// One connection's channels, their positions and its outbox.
pub struct Subscription {
    hub: Arc<Hub>,
    outbox: Arc<Outbox>,
    transport: Transport,
    chans: Vec<Chan>,
    pending: VecDeque<Entry>,
    scratch: Vec<Entry>,
    /// The write-through writer and its positions while the task holds them (`None` while the
    /// outbox holds them, or before the transport installs a writer). Boxed and reused, so an
    /// idle connection without a writer pays one pointer.
    armed: Option<Box<Armed>>,
    /// True once a writer is installed; with `armed` empty, the outbox holds it.
    has_direct: bool,
    /// Messages written through since [`Subscription::settle`] last reported.
    direct_delivered: usize,
}

/// A gap before the message at the head of the pending queue: `want` messages after `after`.
struct Gap {
    channel: ChannelName,
    after: u64,
    want: usize,
    /// The position of the message after the gap.
    pos: Position,
}

/// The outcome of catching up one channel from a cursor position.
pub struct CatchUp {
    /// The channel's position when history was read.
    pub top: Position,
    /// A reset notice, when the position could not be resumed.
    pub reset: Option<Reset>,
    /// Retained messages after the position (or after the reset), oldest first.
    pub messages: Vec<crate::published::Shared>,
    /// The position the subscription continues from, before `messages`.
    pub start: Position,
}

/// Reads what a subscriber resuming from `since` must receive first. With no `since`, returns
/// the newest `latest` messages (none for "from now on").
pub async fn catch_up(
    hub: &Hub,
    channel: &ChannelName,
    since: Option<Position>,
    latest: usize,
) -> Result<CatchUp, HubError> {
    let Some(pos) = since else {
        let h = hub
            .history(channel, Range::Latest { limit: latest })
            .await?;
        let start = match h.messages.first() {
            Some(m) => Position {
                epoch: h.top.epoch,
                offset: m.msg.position.offset - 1,
            },
            None => h.top,
        };
        return Ok(CatchUp {
            top: h.top,
            reset: None,
            messages: h.messages,
            start,
        });
    };
    let mut h: History = hub
        .history(
            channel,
            Range::After {
                after: pos.offset,
                limit: usize::MAX,
            },
        )
        .await?;
    let reason = if h.top.epoch != pos.epoch || pos.offset > h.top.offset {
        Some(ResetReason::Epoch)
    } else if pos.offset + 1 < h.first {
        Some(ResetReason::Expired)
    } else {
        None
    };
    let Some(reason) = reason else {
        return Ok(CatchUp {
            top: h.top,
            reset: None,
            messages: h.messages,
            start: pos,
        });
    };
    if reason == ResetReason::Epoch {
        h = hub
            .history(
                channel,
                Range::After {
                    after: 0,
                    limit: usize::MAX,
                },
            )
            .await?;
    }
    let start = Position {
        epoch: h.top.epoch,
        offset: h.first.saturating_sub(1),
    };
    let reset = Reset {
        channel: channel.clone(),
        position: start,
        reason,
    };
    Ok(CatchUp {
        top: h.top,
        reset: Some(reset),
        messages: h.messages,
        start,
    })
}

impl Subscription {
    /// An empty subscription whose outbox holds at most `queue_bytes`.
    pub fn new(hub: Arc<Hub>, transport: Transport, queue_bytes: usize) -> Self {
        Subscription {
            hub,
            outbox: Arc::new(Outbox::new(queue_bytes)),
            transport,
            chans: Vec::new(),
            pending: VecDeque::new(),
            scratch: Vec::new(),
            armed: None,
            has_direct: false,
            direct_delivered: 0,
        }
    }

    /// Installs a write-through writer, used from the next wait on. The transport must call
    /// [`Subscription::settle`] before it writes to the socket itself.
    pub fn set_direct(&mut self, direct: Box<dyn Direct>) {
        self.reclaim();
        self.has_direct = true;
        self.armed = Some(Box::new(Armed {
            sink: direct,
            last: Vec::new(),
            delivered: 0,
        }));
    }

    /// Takes the write-through writer back from the outbox, if it is there, and brings the
    /// positions up to date. Returns how many messages were written through since the last call.
    /// After this, until the next wait in [`Subscription::next_batch`], only the task writes.
    pub fn settle(&mut self) -> usize {
        self.reclaim();
        std::mem::take(&mut self.direct_delivered)
    }

    /// Takes the writer back from the outbox, when the outbox holds it (otherwise no lock is
    /// taken), advancing the positions and counting what it wrote.
    fn reclaim(&mut self) {
        if !self.has_direct || self.armed.is_some() {
            return;
        }
        if let Some(mut a) = self.outbox.disarm() {
            for (c, (_, pos)) in self.chans.iter_mut().zip(a.last.iter()) {
                c.last = *pos;
            }
            self.direct_delivered += std::mem::take(&mut a.delivered);
            self.armed = Some(a);
        }
    }

    /// True while the rest of a partial write-through waits to be sent by the task.
    fn direct_blocked(&self) -> bool {
        self.armed.as_ref().is_some_and(|a| !a.sink.ready())
    }

    /// Subscribes to `channel`, resuming after `since` when given, otherwise from now on.
    /// Returns the channel's position at subscribe time. Subscribing twice is a no-op.
    pub async fn add(
        &mut self,
        channel: &ChannelName,
        since: Option<Position>,
    ) -> Result<Position, HubError> {
        self.reclaim();
        if let Some(c) = self.chans.iter().find(|c| &c.name == channel) {
            return Ok(c.last);
        }
        let sink = self
            .hub
            .register(channel, &self.outbox, self.transport)
            .await?;
        let up = match catch_up(&self.hub, channel, since, 0).await {
            Ok(up) => up,
            Err(e) => {
                self.hub.unregister(channel, sink);
                return Err(e);
            }
        };
        // History goes ahead of anything already queued live; the filter removes overlap.
        let mut ahead: Vec<Entry> = Vec::with_capacity(up.messages.len() + 1);
        let last = match (&up.reset, since) {
            (Some(r), _) => {
                ahead.push(Entry {
                    item: Item::Reset(r.clone()),
                    gap_ok: true,
                });
                r.position
            }
            (None, Some(p)) => p,
            (None, None) => up.start,
        };
        ahead.extend(up.messages.into_iter().map(|m| Entry {
            item: Item::Message(m),
            gap_ok: false,
        }));
        for e in ahead.into_iter().rev() {
            self.pending.push_front(e);
        }
        self.chans.push(Chan {
            name: channel.clone(),
            sink: Some(sink),
            last,
        });
        Ok(up.top)
    }

    /// Unsubscribes from `channel`. Returns false when it was not subscribed.
    pub fn remove(&mut self, channel: &ChannelName) -> bool {
        self.reclaim();
        let Some(i) = self.chans.iter().position(|c| &c.name == channel) else {
            return false;
        };
        let c = self.chans.remove(i);
        if let Some(id) = c.sink {
            self.hub.unregister(&c.name, id);
        }
        true
    }

    /// Number of channels subscribed.
    pub fn len(&self) -> usize {
        self.chans.len()
    }

    /// True when no channel is subscribed.
    pub fn is_empty(&self) -> bool {
        self.chans.is_empty()
    }

    /// The positions delivered so far, as a cursor over every channel. With a write-through
    /// writer, as of the last [`Subscription::settle`].
    pub fn cursor(&self) -> Cursor {
        let mut c = Cursor::new();
        for ch in &self.chans {
            c.set(&ch.name, ch.last);
        }
        c
    }

    /// The last position delivered on `channel` (as of the last settle, like `cursor`).
    pub fn position(&self, channel: &str) -> Option<Position> {
        self.chans
            .iter()
            .find(|c| c.name.as_str() == channel)
            .map(|c| c.last)
    }

    /// The outbox, so the server can close it on shutdown.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// True when items are ready without waiting.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Waits for the next items and appends them to `out`, in order, each exactly once.
    /// Everything available is taken in one call, so transports can coalesce their writes.
    ///
    /// With a write-through writer installed, this may also return with nothing added: when a
    /// partial write-through left bytes that the transport must send first.
    pub async fn next_batch(&mut self, out: &mut Vec<Item>) -> Result<(), Stopped> {
        loop {
            self.reclaim();
            if self.direct_blocked() {
                return Ok(());
            }
            let start = out.len();
            if self.pending.is_empty() {
                let Subscription {
                    outbox,
                    scratch,
                    armed,
                    chans,
                    ..
                } = self;
                poll_fn(|cx| {
                    outbox.poll_recv(cx, scratch, || {
                        let mut a = armed.take()?;
                        a.last.clear();
                        a.last
                            .extend(chans.iter().map(|c| (c.name.clone(), c.last)));
                        Some(a)
                    })
                })
                .await?;
                self.reclaim();
                self.pending.extend(self.scratch.drain(..));
                self.filter(out).await?;
            } else {
                // Take whatever else is queued too, without waiting.
                self.take_ready(out).await?;
            }
            if out.len() > start {
                return Ok(());
            }
        }
    }

    /// Appends to `out` whatever is deliverable now, without waiting and without handing the
    /// write-through writer to the outbox: for a transport that already holds items to send,
    /// so one answer carries everything available.
    pub async fn take_ready(&mut self, out: &mut Vec<Item>) -> Result<(), Stopped> {
        self.reclaim();
        // What was queued before a close still goes; the close itself is for the caller to
        // see (`Outbox::is_closed`, or its next wait).
        let _ = self.outbox.drain(&mut self.scratch);
        self.pending.extend(self.scratch.drain(..));
        self.filter(out).await?;
        Ok(())
    }

    /// Moves what is deliverable from `pending` to `out`, filling gaps from history.
    async fn filter(&mut self, out: &mut Vec<Item>) -> Result<(), HubError> {
        while let Some(gap) = self.pass(out) {
            // Gaps are rare (concurrent publishes, a broker that lost messages), so reading
            // history for one runs in a box rather than in every connection's future.
            Box::pin(self.fill(gap)).await?;
        }
        Ok(())
    }

    /// The synchronous part of [`Subscription::filter`]: delivers, drops and resets until the
    /// head of `pending` is a message after a gap, which it leaves there and returns.
    fn pass(&mut self, out: &mut Vec<Item>) -> Option<Gap> {
        while let Some(entry) = self.pending.pop_front() {
            let (channel, pos) = match &entry.item {
                Item::Reset(r) => {
                    if let Some(c) = self.chans.iter_mut().find(|c| c.name == r.channel) {
                        c.last = r.position;
                        out.push(entry.item);
                    }
                    continue;
                }
                Item::Message(m) => (m.msg.channel.clone(), m.msg.position),
            };
            let Some(c) = self.chans.iter_mut().find(|c| c.name == channel) else {
                continue;
            };
            if pos.epoch != c.last.epoch {
                let position = Position {
                    epoch: pos.epoch,
                    offset: pos.offset - 1,
                };
                c.last = position;
                out.push(Item::Reset(Reset {
                    channel: channel.clone(),
                    position,
                    reason: ResetReason::Epoch,
                }));
            }
            if pos.offset <= c.last.offset {
                continue;
            }
            if pos.offset == c.last.offset + 1 || entry.gap_ok {
                c.last = pos;
                out.push(entry.item);
                continue;
            }
            // A gap nobody made on purpose: fill it from history, or reset when it is gone.
            // The entry goes back first, so a caller that drops the filling future (a
            // `select!` that picked another branch) loses nothing: the gap is seen again.
            let after = c.last.offset;
            self.pending.push_front(Entry {
                item: entry.item,
                gap_ok: false,
            });
            return Some(Gap {
                want: (pos.offset - after - 1) as usize,
                after,
                channel,
                pos,
            });
        }
        None
    }

    /// Reads the messages of `gap` from history and queues them (or a reset, when they are
    /// gone) ahead of the message after it.
    async fn fill(&mut self, gap: Gap) -> Result<(), HubError> {
        let Gap {
            channel,
            after,
            want,
            pos,
        } = gap;
        let h = self
            .hub
            .history(&channel, Range::After { after, limit: want })
            .await?;
        if let Some(e) = self.pending.front_mut() {
            e.gap_ok = true;
        }
        let complete = h.top.epoch == pos.epoch
            && h.messages.first().map(|m| m.msg.position.offset) == Some(after + 1)
            && h.messages.len() == want;
        if complete {
            for m in h.messages.into_iter().rev() {
                self.pending.push_front(Entry {
                    item: Item::Message(m),
                    gap_ok: false,
                });
            }
        } else {
            let position = Position {
                epoch: pos.epoch,
                offset: pos.offset - 1,
            };
            self.pending.push_front(Entry {
                item: Item::Reset(Reset {
                    channel,
                    position,
                    reason: ResetReason::Expired,
                }),
                gap_ok: true,
            });
        }
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Take a write-through writer back from the outbox, so what it holds (the connection's
        // socket) goes now, not when the last fan-out holding the outbox lets go of it.
        if self.has_direct && self.armed.is_none() {
            drop(self.outbox.disarm());
        }
        for c in &self.chans {
            if let Some(id) = c.sink {
                self.hub.unregister(&c.name, id);
            }
        }
    }
}
