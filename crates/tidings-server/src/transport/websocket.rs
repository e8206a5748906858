//! Multiplexed WebSocket: `GET /ws`, subprotocol `tidings.v1`.
//!
//! One task per connection runs the shared `select!` loop of [`super::socket_loop`] over shutdown,
//! the outbox, the client's frames and the ping tick. Commands (`subscribe`, `unsubscribe`, `publish`,
//! `ping`) carry a request id and get a reply; messages and resets are pushed as envelopes.
//! Binary messages travel in binary frames (envelope header, `\n`, bytes). Everything queued
//! when the task wakes is fed to the socket and flushed once.
//!
//! Close codes come from the error table: 4408 when the outbox overflows under `disconnect`,
//! 1001 on shutdown, 1013 when the broker is unreachable. A peer silent for `ws_ping_timeout`
//! (no frame, no pong) is dropped.

use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use tidings_core::subscription::Stopped;
use tidings_core::{CloseReason, Item, Subscription, Transport};
use tidings_protocol::ws::{self as proto, Command, RequestId};
use tidings_protocol::{envelope, Payload};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

use super::enabled;
use super::socket_loop::{drive, Flow, Peer};
use super::ws_upgrade::{Upgrade, WebSocket};
use crate::error::{ApiError, Code};
use crate::state::State;

/// Socket settings with small buffers: an idle connection should cost a few KB.
/// tungstenite allocates its read buffer up front (so it is small) and grows its write buffer
/// only as frames are queued; `write_buffer_size` is the threshold at which queued frames are
/// written, so frames fed in one wake-up leave in one `write` at `flush`.
pub fn socket_config(state: &State) -> WebSocketConfig {
    let max = state.config.max_message_bytes * 2 + 4096;
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(64 << 10)
        .max_write_buffer_size(state.config.queue_bytes * 2 + (64 << 10))
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// `GET /ws`
pub async fn handler(state: axum::extract::State<State>, ws: Upgrade) -> Response {
    let state = state.0;
    if let Err(e) = enabled(state.config.transports.websocket, "websocket") {
        return e.into_response();
    }
    let config = socket_config(&state);
    ws.on_upgrade(Some(proto::SUBPROTOCOL), config, move |socket| {
        let sub = Subscription::new(state.hub.clone(), Transport::Ws, state.config.queue_bytes);
        drive(state, socket, sub, Mux)
    })
}

/// Encodes an item as a frame.
pub fn frame(item: &Item) -> Message {
    match item {
        Item::Message(m) => match &m.msg.data {
            Payload::Text(_) => text(m.json().clone()),
            Payload::Binary(b) => {
                let mut out = BytesMut::with_capacity(b.len() + 128);
                envelope::write_message_with(&mut out, &m.msg, false);
                out.put_u8(b'\n');
                out.extend_from_slice(b);
                Message::Binary(out.freeze())
            }
        },
        Item::Reset(r) => {
            let mut out = BytesMut::new();
            envelope::write_reset(&mut out, r);
            text(out.freeze())
        }
    }
}

/// A text frame from bytes the protocol crate produced (always UTF-8).
pub fn text(b: Bytes) -> Message {
    match Utf8Bytes::try_from(b) {
        Ok(t) => Message::Text(t),
        Err(_) => Message::Text(Utf8Bytes::from_static("{}")),
    }
}

/// A close frame from the error table.
pub fn close(code: Code, reason: &str) -> Message {
    let mut reason = reason.to_owned();
    // A close reason may hold at most 123 bytes.
    while reason.len() > 123 {
        reason.pop();
    }
    Message::Close(Some(CloseFrame {
        code: code.close_code().into(),
        reason: reason.into(),
    }))
}

/// Sends a close frame to a peer that may be gone, waiting at most a second.
pub async fn farewell(socket: &mut WebSocket, frame: Message) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), socket.send(frame)).await;
}

/// Close frame for a subscription that stopped.
pub fn stopped_frame(e: &Stopped) -> Message {
    match e {
        Stopped::Closed(CloseReason::SlowConsumer) => close(
            Code::SlowConsumer,
            "slow consumer: reconnect and resume with your cursor",
        ),
        Stopped::Closed(CloseReason::Shutdown) => {
            close(Code::ShuttingDown, "server shutting down: reconnect")
        }
        Stopped::Hub(h) => close(Code::BrokerUnavailable, &h.to_string()),
    }
}

/// Handles one client frame: decode, run the command, reply.
async fn on_frame(
    state: &State,
    sub: &mut Subscription,
    socket: &mut WebSocket,
    frame: Option<Result<Message, tungstenite::Error>>,
) -> Flow {
    let Some(Ok(msg)) = frame else {
        return Flow::Stop;
    };
    let decoded = match msg {
        Message::Text(t) => proto::decode_text(t.as_str()),
        Message::Binary(b) => proto::decode_binary(&b),
        Message::Close(_) => return Flow::Stop,
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Flow::Go,
    };
    let reply = match decoded {
        Ok(cmd) => command(state, sub, cmd).await,
        Err(e) => error_reply(e.id.as_ref(), Code::from_wire(e.code), &e.message),
    };
    if socket.send(text(reply)).await.is_err() {
        return Flow::Stop;
    }
    Flow::Go
}

/// The multiplexed socket: every item as its envelope frame, client frames as commands.
struct Mux;

impl Peer for Mux {
    const TRANSPORT: Transport = Transport::Ws;
    const RAW: bool = false;

    fn encode(&self, item: &Item) -> Option<Message> {
        Some(frame(item))
    }

    fn on_frame<'a>(
        &'a mut self,
        state: &'a State,
        sub: &'a mut Subscription,
        socket: &'a mut WebSocket,
        frame: Option<Result<Message, tungstenite::Error>>,
    ) -> impl std::future::Future<Output = Flow> + Send + 'a {
        on_frame(state, sub, socket, frame)
    }
}

fn error_reply(id: Option<&RequestId>, code: Code, message: &str) -> Bytes {
    let mut out = BytesMut::new();
    proto::write_error(&mut out, id, code.as_str(), message);
    out.freeze()
}

fn api_error_reply(id: &RequestId, e: ApiError) -> Bytes {
    error_reply(Some(id), e.code, &e.message)
}

/// Checks that a client may publish `data` on `channel`.
pub fn check_client_publish(state: &State, channel: &str, data: &Payload) -> Result<(), ApiError> {
    if !state.hub.options(channel).client_publish {
        let ns = tidings_protocol::channel::namespace_of(channel);
        let key = if ns.is_empty() {
            "channel_defaults.client_publish".to_owned()
        } else {
            format!("namespaces.{ns}.client_publish")
        };
        return Err(ApiError::new(
            Code::Forbidden,
            format!("clients may not publish to {channel:?}; set {key} = true to allow it"),
        ));
    }
    if data.len() > state.config.max_message_bytes {
        return Err(ApiError::new(
            Code::PayloadTooLarge,
            format!(
                "message is {} bytes; the limit is {} (max_message_bytes)",
                data.len(),
                state.config.max_message_bytes
            ),
        ));
    }
    Ok(())
}

async fn command(state: &State, sub: &mut Subscription, cmd: Command) -> Bytes {
    let mut out = BytesMut::new();
    match cmd {
        Command::Ping { id } => proto::write_ok(&mut out, &id),
        Command::Subscribe { id, channel, since } => {
            if sub.position(&channel).is_none()
                && sub.len() >= state.config.max_channels_per_connection
            {
                return api_error_reply(
                    &id,
                    ApiError::new(
                        Code::TooManySubscriptions,
                        format!(
                            "at most {} channels per connection (max_channels_per_connection)",
                            state.config.max_channels_per_connection
                        ),
                    ),
                );
            }
            let since = since.and_then(|c| c.get(&channel));
            match sub.add(&channel, since).await {
                Ok(top) => proto::write_ok_position(&mut out, &id, &channel, top),
                Err(e) => return api_error_reply(&id, e.into()),
            }
        }
        Command::Unsubscribe { id, channel } => {
            if sub.remove(&channel) {
                proto::write_ok(&mut out, &id);
            } else {
                return api_error_reply(
                    &id,
                    ApiError::new(Code::NotFound, format!("not subscribed to {channel:?}")),
                );
            }
        }
        Command::Publish {
            id,
            channel,
            event,
            data,
        } => {
            if let Err(e) = check_client_publish(state, &channel, &data) {
                return api_error_reply(&id, e);
            }
            match state
                .hub
                .publish(&channel, event.map(Into::into), data)
                .await
            {
                Ok(m) => proto::write_ok_position(&mut out, &id, &channel, m.msg.position),
                Err(e) => return api_error_reply(&id, e.into()),
            }
        }
    }
    out.freeze()
}
