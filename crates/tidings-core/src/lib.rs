//! The Tidings hub: channels, the broker seam, history and per-connection outboxes.
//!
//! Flow: `publish` → [`Broker`] (assigns the position, stores history) → [`Hub`] (local
//! subscriber registry, sharded) → each connection's bounded [`Outbox`] → the connection task's
//! [`Subscription`], which restores order at the seam between history and live delivery and
//! fills gaps from history → a transport encoder.
//!
//! The memory broker is one implementation of [`Broker`], never a special case in the hub; the
//! [`conformance`] suite is written once and run against every broker.

pub mod broker;
pub mod conformance;
pub mod direct;
pub mod hub;
pub mod memory;
pub mod options;
pub mod outbox;
pub mod published;
pub mod subscription;

pub use broker::{Broker, BrokerError, BrokerHandler, History};
pub use direct::{Direct, Wrote};
pub use hub::{Hub, HubError, Transport};
pub use memory::MemoryBroker;
pub use options::{ChannelOptions, Namespaces, SlowConsumer};
pub use outbox::{CloseReason, Item, Outbox};
pub use published::{Published, Shared};
pub use subscription::Subscription;
