//! The connection loop both WebSocket transports run: one task, one `select!` over shutdown,
//! the subscription's outbox, the client's frames and the ping tick.
//!
//! Outgoing messages are polled before the socket's read side, so a wake-up with messages queued
//! polls the read side once (when the loop next waits), not twice; every [`FAIRNESS`] outgoing
//! batches in a row the read side is looked at anyway, so a flood cannot starve the client's
//! commands and pongs. Everything queued when the task wakes is fed and flushed once. What differs
//! between the multiplexed and the raw socket (how an item becomes a frame, what a client frame
//! does) is a [`Peer`].
//!
//! While the loop waits, the publisher writes messages straight to the socket
//! ([`super::ws_io::WsDirect`]); the subscription takes back the positions it advanced whenever
//! it is used again, and both writers share one lock, so their frames never interleave.

use std::future::Future;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tidings_core::{Item, Subscription, Transport};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use super::ticker;
use super::websocket::{close, farewell, stopped_frame};
use super::ws_upgrade::WebSocket;
use crate::error::Code;
use crate::metrics::{self, ConnGuard};
use crate::state::State;

/// Outgoing batches in a row after which the client's side is looked at even if more are ready.
pub const FAIRNESS: u32 = 16;

/// What the loop does after a client frame.
pub enum Flow {
    Go,
    Stop,
}

/// The transport-specific half of a WebSocket connection.
pub trait Peer: Send {
    /// The transport, for metrics.
    const TRANSPORT: Transport;
    /// Whether messages are bare payload frames (else envelopes), for write-through.
    const RAW: bool;

    /// The frame for an item, or `None` to send nothing.
    fn encode(&self, item: &Item) -> Option<Message>;

    /// Handles one frame from the client (`None` or an error means the socket is gone).
    fn on_frame<'a>(
        &'a mut self,
        state: &'a State,
        sub: &'a mut Subscription,
        socket: &'a mut WebSocket,
        frame: Option<Result<Message, tungstenite::Error>>,
    ) -> impl Future<Output = Flow> + Send + 'a;
}

/// Runs the connection until either side ends it.
///
/// This future is what an idle WebSocket costs, so it is kept small: it is an `async move`
/// block rather than an `async fn` (whose arguments the compiler stores twice, once as
/// arguments and once as locals), and a client frame is handled in a boxed future, since
/// frames are rare and their handling is the largest state in the loop.
#[allow(clippy::manual_async_fn)]
pub fn drive<P: Peer>(
    state: State,
    mut socket: WebSocket,
    mut sub: Subscription,
    mut peer: P,
) -> impl Future<Output = ()> + Send {
    async move {
        let _guard = ConnGuard::new(P::TRANSPORT);
        let mut shutdown = state.shutdown.clone();
        let mut ping = ticker(state.config.ws_ping_interval);
        let mut last_seen = Instant::now();
        let mut items = Vec::new();
        let mut burst = 0u32;
        // Write-through from the first message on: set up with the first delivery instead, it
        // saved an idle socket a few dozen bytes but sent every subscriber's first message
        // through its task (see `Pump::allow_write_through`).
        sub.set_direct(Box::new(socket.get_ref().direct(P::RAW)));
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    let _ = socket.send(close(Code::ShuttingDown, "server shutting down: reconnect")).await;
                    break;
                }
                r = sub.next_batch(&mut items) => {
                    if let Err(e) = r {
                        let _ = socket.send(stopped_frame(&e)).await;
                        break;
                    }
                    let n = items.len();
                    let mut ok = true;
                    for item in items.drain(..) {
                        if let Some(f) = peer.encode(&item) {
                            if socket.feed(f).await.is_err() {
                                ok = false;
                                break;
                            }
                        }
                    }
                    if !ok || socket.flush().await.is_err() {
                        break;
                    }
                    metrics::delivered(P::TRANSPORT, n);
                    burst += 1;
                    if burst >= FAIRNESS {
                        burst = 0;
                        if let Some(f) = socket.next().now_or_never() {
                            last_seen = Instant::now();
                            let flow = Box::pin(peer.on_frame(&state, &mut sub, &mut socket, f)).await;
                            if let Flow::Stop = flow {
                                break;
                            }
                        }
                    }
                }
                f = socket.next() => {
                    burst = 0;
                    last_seen = Instant::now();
                    let flow = Box::pin(peer.on_frame(&state, &mut sub, &mut socket, f)).await;
                    if let Flow::Stop = flow {
                        break;
                    }
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() > state.config.ws_ping_timeout {
                        tracing::debug!("websocket peer silent for {:?}; dropping it", last_seen.elapsed());
                        farewell(&mut socket, close(Code::ShuttingDown, "no pong within ws_ping_timeout")).await;
                        break;
                    }
                    if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
}
