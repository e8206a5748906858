//! Raw WebSocket: `GET /ws/{channel}?since=CURSOR`.
//!
//! Each frame is the raw payload, as in the classic `socket.onmessage = e => e.data` demo: text
//! messages as text frames, binary as binary frames. Frames the client sends are published to
//! the channel when its namespace allows client publish; otherwise the socket closes with 4403
//! and a reason. Reset notices are sent (as a JSON text frame) only to clients that passed
//! `since`, since only they can act on one.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{FutureExt, SinkExt};
use tidings_core::{Item, Subscription, Transport};
use tidings_protocol::{ChannelName, Payload};
use tokio::time::Instant;

use super::websocket::{
    check_client_publish, close, farewell, frame, stopped_frame, text, upgrade, Flow, FAIRNESS,
};
use super::{enabled, open, ticker};
use crate::error::{ApiError, Code};
use crate::metrics::{self, ConnGuard};
use crate::request::{sub_request, Params};
use crate::state::State;

/// `GET /ws/{*channel}`
pub async fn handler(
    state: axum::extract::State<State>,
    Path(channel): Path<String>,
    q: RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let state = state.0;
    let prepared = async {
        enabled(state.config.transports.websocket, "websocket")?;
        let params = Params::parse(q.0.as_deref());
        let req = sub_request(
            Some(&channel),
            &Params::default(),
            params.since.as_deref(),
            1,
        )?;
        let sub = open(&state, Transport::WsRaw, &req).await?;
        Ok::<_, ApiError>((sub, req.since.is_some()))
    }
    .await;
    match prepared {
        Ok((sub, resets)) => {
            upgrade(ws, &state).on_upgrade(move |socket| run(state, socket, sub, resets))
        }
        Err(e) => e.into_response(),
    }
}

fn raw_frame(item: &Item) -> Option<Message> {
    match item {
        Item::Message(m) => Some(match &m.msg.data {
            Payload::Text(b) => text(b.clone()),
            Payload::Binary(b) => Message::Binary(b.clone()),
        }),
        Item::Reset(_) => None,
    }
}

/// Handles one client frame: publish it where allowed, else close with the reason.
async fn on_frame(
    state: &State,
    channel: &ChannelName,
    socket: &mut WebSocket,
    frame: Option<Result<Message, axum::Error>>,
) -> Flow {
    let Some(Ok(msg)) = frame else {
        return Flow::Stop;
    };
    let data = match msg {
        Message::Text(t) => Payload::Text(Bytes::copy_from_slice(t.as_str().as_bytes())),
        Message::Binary(b) => Payload::Binary(b),
        Message::Close(_) => return Flow::Stop,
        Message::Ping(_) | Message::Pong(_) => return Flow::Go,
    };
    let result = match check_client_publish(state, channel, &data) {
        Ok(()) => state
            .hub
            .publish(channel, None, data)
            .await
            .map(|_| ())
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        let _ = socket.send(close(e.code, &e.message)).await;
        return Flow::Stop;
    }
    Flow::Go
}

async fn run(state: State, mut socket: WebSocket, mut sub: Subscription, resets: bool) {
    let _guard = ConnGuard::new(Transport::WsRaw);
    let Some(channel) = sub.cursor().entries().first().map(|(c, _)| c.clone()) else {
        return;
    };
    let mut shutdown = state.shutdown.clone();
    let mut ping = ticker(state.config.ws_ping_interval);
    let mut last_seen = Instant::now();
    let mut items = Vec::new();
    let mut burst = 0u32;
    loop {
        // Outgoing first, with the same fairness rule as the multiplexed socket.
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
                    let f = if resets { Some(raw_frame(&item).unwrap_or_else(|| frame(&item))) } else { raw_frame(&item) };
                    if let Some(f) = f {
                        if socket.feed(f).await.is_err() {
                            ok = false;
                            break;
                        }
                    }
                }
                if !ok || socket.flush().await.is_err() {
                    break;
                }
                metrics::delivered(Transport::WsRaw, n);
                burst += 1;
                if burst >= FAIRNESS {
                    burst = 0;
                    if let Some(f) = socket.recv().now_or_never() {
                        last_seen = Instant::now();
                        if let Flow::Stop = on_frame(&state, &channel, &mut socket, f).await {
                            break;
                        }
                    }
                }
            }
            f = socket.recv() => {
                burst = 0;
                last_seen = Instant::now();
                if let Flow::Stop = on_frame(&state, &channel, &mut socket, f).await {
                    break;
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > state.config.ws_ping_timeout {
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
