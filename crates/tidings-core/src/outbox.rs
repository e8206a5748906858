//! A connection's outbox: the bounded queue between fan-out and the connection task.
//!
//! The hub pushes into it from the publisher's call (never blocking, never awaiting); the
//! connection task drains everything queued in one go, so several messages leave in one write.
//! The bound is in bytes. What happens on overflow is the channel's named [`SlowConsumer`]
//! policy:
//! - `disconnect`: the outbox closes with [`CloseReason::SlowConsumer`]; the client reconnects with
//!   its cursor and resumes from history, so nothing is lost;
//! - `drop_oldest`: the channel's oldest queued messages are dropped to make room;
//! - `latest_only`: every queued message of the channel is replaced by the new one.
//!
//! A drop leaves a gap in offsets on purpose, so the entry after it is marked `gap_ok` and the
//! [`crate::Subscription`] does not try to refill it from history.
//!
//! While the consumer waits with nothing pending it may *arm* the outbox with a write-through
//! writer ([`crate::direct`]); a push then writes the next message straight to the socket and
//! skips the queue and the wake-up.

use std::collections::VecDeque;

use std::future::poll_fn;
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

use tidings_protocol::Reset;

use crate::direct::{Armed, Wrote};
use crate::options::SlowConsumer;
use crate::published::Shared;

/// What flows to a connection.
#[derive(Debug, Clone)]
pub enum Item {
    Message(Shared),
    Reset(Reset),
}

impl Item {
    fn channel(&self) -> &str {
        match self {
            Item::Message(m) => &m.msg.channel,
            Item::Reset(r) => &r.channel,
        }
    }

    fn cost(&self) -> usize {
        match self {
            Item::Message(m) => m.cost(),
            Item::Reset(_) => 96,
        }
    }
}

/// A queued item and whether a gap before it is intended.
#[derive(Debug, Clone)]
pub struct Entry {
    pub item: Item,
    pub gap_ok: bool,
}

/// Why an outbox stopped delivering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    #[error("the connection fell too far behind and was closed; reconnect with your cursor")]
    SlowConsumer,
    #[error("the server is shutting down; reconnect with your cursor")]
    Shutdown,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Queued after dropping this many older messages.
    Dropped(usize),
    /// The outbox overflowed under `disconnect`, or was already closed.
    Closed,
    /// Written straight to the connection's socket.
    Direct,
}

struct State {
    items: VecDeque<Entry>,
    bytes: usize,
    closed: Option<CloseReason>,
    /// The consumer's write-through writer, held while it waits (and until it takes it back).
    armed: Option<Box<Armed>>,
    /// True while pushes may use `armed`: from arming until the first push that cannot.
    live: bool,
}

/// A bounded, byte-accounted queue with one consumer.
///
/// The consumer is woken through an [`AtomicWaker`] rather than a `tokio::sync::Notify`: there
/// is exactly one waiter, and a wake is then one atomic swap instead of a locked waiter list,
/// which shows in fan-out profiles where every delivery wakes one connection.
pub struct Outbox {
    state: Mutex<State>,
    waker: AtomicWaker,
    max_bytes: usize,
}

impl Outbox {
    /// An outbox that holds at most `max_bytes` of queued messages.
    pub fn new(max_bytes: usize) -> Self {
        Outbox {
            state: Mutex::new(State {
                items: VecDeque::new(),
                bytes: 0,
                closed: None,
                armed: None,
                live: false,
            }),
            waker: AtomicWaker::new(),
            max_bytes,
        }
    }

    /// Queues `item`, applying `policy` if it does not fit, or writes it through when the
    /// consumer has armed the outbox. Never blocks on the consumer.
    pub fn push(&self, item: Item, policy: SlowConsumer) -> Pushed {
        self.push_as(item, policy, true)
    }

    /// [`Outbox::push`], writing through only if `through` allows it (the hub decides per
    /// fan-out, see `hub::Pace`). An armed outbox that is told not to write through queues and
    /// wakes its consumer as usual, which takes its writer back.
    pub fn push_as(&self, item: Item, policy: SlowConsumer, through: bool) -> Pushed {
        let cost = item.cost();
        let mut s = self.state.lock();
        if s.closed.is_some() {
            return Pushed::Closed;
        }
        if s.live && !through {
            s.live = false;
        }
        if s.live {
            // Armed implies an empty queue: arming needs one, and the first push that is not
            // written through ends `live`, so nothing can overtake a queued message.
            let offered = match (&item, s.armed.as_mut()) {
                (Item::Message(m), Some(a)) => a.offer(m),
                _ => None,
            };
            match offered {
                Some(Wrote::All) => return Pushed::Direct,
                Some(_) => {
                    // Half a frame is out: the consumer must send the rest before anything else.
                    s.live = false;
                    drop(s);
                    self.waker.wake();
                    return Pushed::Direct;
                }
                None => s.live = false,
            }
        }
        let mut dropped = 0;
        let mut gap_ok = false;
        if s.bytes + cost > self.max_bytes && !s.items.is_empty() {
            match policy {
                SlowConsumer::Disconnect => {
                    s.closed = Some(CloseReason::SlowConsumer);
                    s.items.clear();
                    s.bytes = 0;
                    drop(s);
                    metrics::counter!("tidings_slow_consumer_disconnects_total").increment(1);
                    self.waker.wake();
                    return Pushed::Closed;
                }
                SlowConsumer::LatestOnly => {
                    let channel = item.channel().to_owned();
                    let before = s.items.len();
                    let mut freed = 0;
                    s.items.retain(|e| {
                        let keep = e.item.channel() != channel;
                        if !keep {
                            freed += e.item.cost();
                        }
                        keep
                    });
                    s.bytes -= freed;
                    dropped = before - s.items.len();
                    gap_ok = dropped > 0;
                }
                SlowConsumer::DropOldest => {
                    let channel = item.channel().to_owned();
                    while s.bytes + cost > self.max_bytes {
                        let Some(i) = s.items.iter().position(|e| e.item.channel() == channel)
                        else {
                            break;
                        };
                        if let Some(e) = s.items.remove(i) {
                            s.bytes -= e.item.cost();
                            dropped += 1;
                        }
                        // The next queued entry of the channel, or the new one, follows a gap.
                        match s
                            .items
                            .iter_mut()
                            .skip(i)
                            .find(|e| e.item.channel() == channel)
                        {
                            Some(next) => next.gap_ok = true,
                            None => gap_ok = true,
                        }
                    }
                }
            }
            if dropped > 0 {
                metrics::counter!("tidings_slow_consumer_drops_total").increment(dropped as u64);
            }
            if s.bytes + cost > self.max_bytes && !s.items.is_empty() {
                // Other channels' messages fill the queue: the connection is too slow to keep.
                s.closed = Some(CloseReason::SlowConsumer);
                s.items.clear();
                s.bytes = 0;
                drop(s);
                metrics::counter!("tidings_slow_consumer_disconnects_total").increment(1);
                self.waker.wake();
                return Pushed::Closed;
            }
        }
        s.bytes += cost;
        s.items.push_back(Entry { item, gap_ok });
        let was_empty = s.items.len() == 1;
        drop(s);
        if was_empty {
            self.waker.wake();
        }
        if dropped > 0 {
            Pushed::Dropped(dropped)
        } else {
            Pushed::Queued
        }
    }

    /// Closes the outbox; the consumer sees `reason` once the queue is drained.
    pub fn close(&self, reason: CloseReason) {
        let mut s = self.state.lock();
        if s.closed.is_none() {
            s.closed = Some(reason);
        }
        drop(s);
        self.waker.wake();
    }

    /// True once the outbox has been closed (its queue may still hold items).
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed.is_some()
    }

    /// Moves everything queued into `out` without waiting. Returns the close reason once the
    /// queue is empty and closed.
    pub fn drain(&self, out: &mut Vec<Entry>) -> Result<(), CloseReason> {
        let mut s = self.state.lock();
        if s.items.is_empty() {
            return match s.closed {
                Some(r) => Err(r),
                None => Ok(()),
            };
        }
        out.extend(s.items.drain(..));
        s.bytes = 0;
        Ok(())
    }

    /// Waits until something is queued or the outbox closes, then drains like [`Outbox::drain`].
    /// Cancel-safe: nothing is taken from the queue unless this returns.
    pub async fn recv(&self, out: &mut Vec<Entry>) -> Result<(), CloseReason> {
        poll_fn(|cx| self.poll_recv(cx, out, || None)).await
    }

    /// One poll of [`Outbox::recv`]. When it would wait and nothing is armed yet, `arm` may
    /// supply a write-through writer, which pushes then use until one cannot. Returns at once,
    /// with nothing, when an armed writer has stopped (after a partial write), so the consumer
    /// takes it back.
    pub(crate) fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<Entry>,
        arm: impl FnOnce() -> Option<Box<Armed>>,
    ) -> Poll<Result<(), CloseReason>> {
        // Register before looking, so a push between the look and the return still wakes us.
        self.waker.register(cx.waker());
        let mut s = self.state.lock();
        if !s.items.is_empty() {
            out.extend(s.items.drain(..));
            s.bytes = 0;
            return Poll::Ready(Ok(()));
        }
        if let Some(r) = s.closed {
            return Poll::Ready(Err(r));
        }
        if s.armed.is_some() && !s.live {
            // The writer stopped with nothing queued: it wrote a frame only in part, and the
            // consumer must take it back and send the rest now, not at its next message.
            return Poll::Ready(Ok(()));
        }
        if s.armed.is_none() {
            if let Some(a) = arm() {
                s.armed = Some(a);
                s.live = true;
            }
        }
        Poll::Pending
    }

    /// Stops write-through and returns the writer, if one is held.
    pub(crate) fn disarm(&self) -> Option<Box<Armed>> {
        let mut s = self.state.lock();
        s.live = false;
        s.armed.take()
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Context;
    use tidings_protocol::{ChannelName, Epoch, Message, Payload, Position};

    fn item(ch: &str, offset: u64) -> Item {
        Item::Message(crate::published::Published::new(Message {
            channel: ChannelName::new(ch).unwrap(),
            position: Position {
                epoch: Epoch(1),
                offset,
            },
            event: None,
            data: Payload::text("x".repeat(4)),
            time_ms: 0,
        }))
    }

    fn offsets(out: &[Entry]) -> Vec<(u64, bool)> {
        out.iter()
            .map(|e| match &e.item {
                Item::Message(m) => (m.msg.position.offset, e.gap_ok),
                Item::Reset(_) => (0, e.gap_ok),
            })
            .collect()
    }

    // Each test item costs 4 + 1 + 96 = 101 bytes; an outbox of 303 holds three.
    #[test]
    fn disconnect_policy_closes_on_overflow() {
        let o = Outbox::new(303);
        for i in 1..=3 {
            assert_eq!(
                o.push(item("a", i), SlowConsumer::Disconnect),
                Pushed::Queued
            );
        }
        assert_eq!(
            o.push(item("a", 4), SlowConsumer::Disconnect),
            Pushed::Closed
        );
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), Err(CloseReason::SlowConsumer));
        assert!(out.is_empty());
    }

    #[test]
    fn drop_oldest_keeps_newest_and_marks_the_gap() {
        let o = Outbox::new(303);
        for i in 1..=5 {
            o.push(item("a", i), SlowConsumer::DropOldest);
        }
        let mut out = Vec::new();
        o.drain(&mut out).unwrap();
        assert_eq!(offsets(&out), vec![(3, true), (4, false), (5, false)]);
    }

    #[test]
    fn latest_only_coalesces_per_channel() {
        let o = Outbox::new(303);
        o.push(item("b", 1), SlowConsumer::LatestOnly);
        for i in 1..=5 {
            o.push(item("a", i), SlowConsumer::LatestOnly);
        }
        let mut out = Vec::new();
        o.drain(&mut out).unwrap();
        assert_eq!(offsets(&out), vec![(1, false), (5, true)]);
    }

    #[test]
    fn close_is_seen_after_the_queue_drains() {
        let o = Outbox::new(1000);
        o.push(item("a", 1), SlowConsumer::Disconnect);
        o.close(CloseReason::Shutdown);
        let mut out = Vec::new();
        assert_eq!(o.drain(&mut out), Ok(()));
        assert_eq!(out.len(), 1);
        assert_eq!(o.drain(&mut out), Err(CloseReason::Shutdown));
    }

    /// Records what is written through; `room` is how many frames the "socket" takes.
    struct Recorder {
        wrote: std::sync::Arc<Mutex<Vec<u64>>>,
        room: usize,
    }

    impl crate::direct::Direct for Recorder {
        fn write(&mut self, msg: &crate::Published) -> Wrote {
            if self.room == 0 {
                return Wrote::Nothing;
            }
            self.room -= 1;
            self.wrote.lock().push(msg.msg.position.offset);
            Wrote::All
        }
        fn ready(&self) -> bool {
            true
        }
    }

    fn arm(o: &Outbox, room: usize, last: u64) -> std::sync::Arc<Mutex<Vec<u64>>> {
        let wrote = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = Box::new(Recorder {
            wrote: wrote.clone(),
            room,
        });
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        let armed = Box::new(Armed {
            sink,
            last: vec![(
                ChannelName::new("a").unwrap(),
                Position {
                    epoch: Epoch(1),
                    offset: last,
                },
            )],
            delivered: 0,
        });
        assert!(o.poll_recv(&mut cx, &mut out, || Some(armed)).is_pending());
        wrote
    }

    fn push_all(o: &Outbox, pushes: &[(&str, u64)]) -> Vec<Pushed> {
        pushes
            .iter()
            .map(|(ch, off)| o.push(item(ch, *off), SlowConsumer::Disconnect))
            .collect()
    }

    /// A "socket" that takes part of every frame.
    struct Half;

    impl crate::direct::Direct for Half {
        fn write(&mut self, _: &crate::Published) -> Wrote {
            Wrote::Part
        }
        fn ready(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_partial_write_through_returns_the_consumer_at_once() {
        let o = Outbox::new(10_000);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        let armed = Box::new(Armed {
            sink: Box::new(Half),
            last: vec![(
                ChannelName::new("a").unwrap(),
                Position {
                    epoch: Epoch(1),
                    offset: 0,
                },
            )],
            delivered: 0,
        });
        assert!(o.poll_recv(&mut cx, &mut out, || Some(armed)).is_pending());
        assert_eq!(
            o.push(item("a", 1), SlowConsumer::Disconnect),
            Pushed::Direct
        );
        // Nothing is queued, but the writer holds the rest of a frame: the consumer must take
        // it back now rather than wait for the next push.
        assert_eq!(o.poll_recv(&mut cx, &mut out, || None), Poll::Ready(Ok(())));
        assert!(out.is_empty());
        assert!(o.disarm().is_some());
    }

    #[test]
    fn armed_outbox_writes_the_next_offset_through_and_queues_the_rest_in_order() {
        let o = Outbox::new(10_000);
        let wrote = arm(&o, 2, 0);
        // Room for two frames; then the socket is full: queued, and from then on everything
        // queues behind it.
        let (direct, queued) = (Pushed::Direct, Pushed::Queued);
        assert_eq!(
            push_all(&o, &[("a", 1), ("a", 2), ("a", 3), ("a", 4)]),
            vec![direct, direct, queued, queued]
        );
        assert_eq!(*wrote.lock(), vec![1, 2]);
        let a = o.disarm().expect("the writer comes back");
        assert_eq!((a.delivered, a.last[0].1.offset), (2, 2));
        let mut out = Vec::new();
        o.drain(&mut out).unwrap();
        assert_eq!(offsets(&out), vec![(3, false), (4, false)]);
    }

    #[test]
    fn armed_outbox_never_writes_across_a_gap_or_another_channel() {
        // Offset 7 after 5 is a gap the subscription must fill from history first; a message
        // of another channel is not this writer's either. Both queue, and so does what follows.
        for first in [("a", 7), ("b", 6)] {
            let o = Outbox::new(10_000);
            let wrote = arm(&o, 10, 5);
            assert_eq!(
                push_all(&o, &[first, ("a", 6)]),
                vec![Pushed::Queued, Pushed::Queued]
            );
            assert!(wrote.lock().is_empty());
        }
    }
}
