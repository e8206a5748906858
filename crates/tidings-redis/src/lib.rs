//! The Tidings Redis broker: positions and history in Redis, fan-out over pub/sub.
//!
//! With several Tidings nodes behind a load balancer, every node connects to the same Redis
//! (or Redis Cluster) through [`RedisBroker`], an implementation of
//! [`tidings_core::Broker`] that passes the same conformance suite as the memory broker:
//! - positions are assigned atomically by a Lua script per publish, so offsets are gapless
//!   per channel however many nodes publish, and a cursor from one node resumes on any other;
//! - history is a Redis stream per channel, bounded by count, bytes and age;
//! - each node keeps one pub/sub connection (RESP3 push; sharded pub/sub on a cluster) and
//!   listens to a channel only while it has local subscribers;
//! - while Redis is unreachable, calls fail fast with `Unavailable` and `healthy()` is false;
//!   reconnecting, resubscribing and recovering missed messages from history are automatic.
//!
//! See [`keys`] for the key layout, [`scripts`] for the log's rules, [`notice`] for the pub/sub
//! payload and [`fanout`] for subscription and recovery.

pub mod broker;
pub mod config;
mod conn;
pub mod fanout;
pub mod keys;
pub mod notice;
mod scan;
pub mod scripts;
mod supervisor;
#[cfg(feature = "testing")]
pub mod testing;

pub use broker::RedisBroker;
pub use config::{ConnectError, RedisConfig};
pub use scan::MAX_CHANNELS;
