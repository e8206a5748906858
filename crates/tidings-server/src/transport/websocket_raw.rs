//! Raw WebSocket: `GET /ws/{channel}?since=CURSOR`.
//!
//! Each frame is the raw payload, as in the classic `socket.onmessage = e => e.data` demo: text
//! messages as text frames, binary as binary frames. Frames the client sends are published to
//! the channel when its namespace allows client publish; otherwise the socket closes with 4403
//! and a reason. Reset notices are sent (as a JSON text frame) only to clients that passed
//! `since`, since only they can act on one. The connection loop is [`super::socket_loop`].

use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::SinkExt;
use tidings_core::{Item, Subscription, Transport};
use tidings_protocol::{ChannelName, Payload};
use tokio_tungstenite::tungstenite::{self, Message};

use super::socket_loop::{drive, Flow, Peer};
use super::websocket::{check_client_publish, close, frame, socket_config, text};
use super::ws_upgrade::{Upgrade, WebSocket};
use super::{enabled, open};
use crate::error::{ApiError, Code};
use crate::request::{sub_request, Params};
use crate::state::State;

/// `GET /ws/{*channel}`
pub async fn handler(
    state: axum::extract::State<State>,
    Path(channel): Path<String>,
    q: RawQuery,
    ws: Upgrade,
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
            let Some(channel) = sub.cursor().entries().first().map(|(c, _)| c.clone()) else {
                return ApiError::new(Code::BadRequest, "name a channel: /ws/{channel}")
                    .into_response();
            };
            let config = socket_config(&state);
            ws.on_upgrade(None, config, move |socket| {
                drive(state, socket, sub, Raw { channel, resets })
            })
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
    frame: Option<Result<Message, tungstenite::Error>>,
) -> Flow {
    let Some(Ok(msg)) = frame else {
        return Flow::Stop;
    };
    let data = match msg {
        Message::Text(t) => Payload::Text(Bytes::copy_from_slice(t.as_str().as_bytes())),
        Message::Binary(b) => Payload::Binary(b),
        Message::Close(_) => return Flow::Stop,
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Flow::Go,
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

/// The raw socket: items as bare payload frames, client frames published to the channel.
struct Raw {
    channel: ChannelName,
    /// Whether the client passed `since` and so gets reset notices (as JSON text frames).
    resets: bool,
}

impl Peer for Raw {
    const TRANSPORT: Transport = Transport::WsRaw;
    const RAW: bool = true;

    fn encode(&self, item: &Item) -> Option<Message> {
        match raw_frame(item) {
            Some(f) => Some(f),
            None if self.resets => Some(frame(item)),
            None => None,
        }
    }

    fn on_frame<'a>(
        &'a mut self,
        state: &'a State,
        _sub: &'a mut Subscription,
        socket: &'a mut WebSocket,
        frame: Option<Result<Message, tungstenite::Error>>,
    ) -> impl std::future::Future<Output = Flow> + Send + 'a {
        on_frame(state, &self.channel, socket, frame)
    }
}
