//! A `BrokerHandler` that records every message and reset a node delivers, in order.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tidings_core::{Broker, BrokerHandler, Shared};
use tidings_protocol::{ChannelName, Position, ResetReason};

/// One delivery to the handler.
#[derive(Debug, Clone)]
pub enum Event {
    Message(Shared),
    Reset(ChannelName, Position, ResetReason),
}

/// Records deliveries; install it with [`Recorder::install`].
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    /// A recorder installed as `broker`'s handler.
    pub fn install(broker: &dyn Broker) -> Arc<Recorder> {
        let r = Arc::new(Recorder::default());
        let weak: Weak<dyn BrokerHandler> = Arc::downgrade(&(r.clone() as Arc<dyn BrokerHandler>));
        broker.set_handler(weak);
        r
    }

    /// Everything recorded for `channel`, in order.
    pub fn events(&self, channel: &str) -> Vec<Event> {
        let events = self.events.lock().map(|e| e.clone()).unwrap_or_default();
        events
            .into_iter()
            .filter(|e| match e {
                Event::Message(m) => m.msg.channel.as_str() == channel,
                Event::Reset(c, _, _) => c.as_str() == channel,
            })
            .collect()
    }

    /// The offsets of the messages recorded for `channel`, in order.
    pub fn offsets(&self, channel: &str) -> Vec<u64> {
        self.events(channel)
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.msg.position.offset),
                Event::Reset(..) => None,
            })
            .collect()
    }

    /// Waits up to `within` until `channel` has `n` messages; returns whether it did.
    pub async fn wait_for(&self, channel: &str, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while self.offsets(channel).len() < n {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    fn push(&self, e: Event) {
        if let Ok(mut events) = self.events.lock() {
            events.push(e);
        }
    }
}

impl BrokerHandler for Recorder {
    fn on_message(&self, msg: &Shared) {
        self.push(Event::Message(msg.clone()));
    }
    fn on_reset(&self, channel: &ChannelName, top: Position, reason: ResetReason) {
        self.push(Event::Reset(channel.clone(), top, reason));
    }
}
