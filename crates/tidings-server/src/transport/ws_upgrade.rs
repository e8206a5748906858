//! The WebSocket handshake (RFC 6455 §4.2), done here rather than by axum's extractor.
//!
//! Why: after the upgrade the server needs the connection's own `TcpStream`, so the fan-out
//! loop can write frames to it directly ([`super::ws_io`]); axum's `WebSocket` hides it. The
//! handshake itself is small: check the request, answer `101` with `Sec-WebSocket-Accept`
//! (tungstenite's `derive_accept_key`) and the subprotocol, then take the upgraded connection
//! back from hyper and recover the `TcpStream` under it. A request that is not a WebSocket
//! handshake gets a JSON error that says what to send instead.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use super::ws_io::Socket;
use crate::error::{ApiError, Code};
use crate::prefixed::Prefixed;

/// A WebSocket connection after the handshake.
pub type WebSocket = WebSocketStream<Socket>;

/// A checked WebSocket handshake request, ready to be accepted.
pub struct Upgrade {
    key: HeaderValue,
    offered: Option<HeaderValue>,
    on_upgrade: hyper::upgrade::OnUpgrade,
}

fn header_has_token(parts: &Parts, name: header::HeaderName, token: &str) -> bool {
    parts
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn not_a_handshake(what: &str) -> ApiError {
    ApiError::new(
        Code::BadRequest,
        format!(
            "this is a WebSocket endpoint and the request {what}; connect with a WebSocket client \
             (GET with Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Version: 13 and a \
             Sec-WebSocket-Key)"
        ),
    )
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if parts.method != Method::GET {
            return Err(not_a_handshake("is not a GET"));
        }
        if !header_has_token(parts, header::CONNECTION, "upgrade")
            || !header_has_token(parts, header::UPGRADE, "websocket")
        {
            return Err(not_a_handshake("asks for no upgrade to websocket"));
        }
        if parts
            .headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v != "13")
        {
            return Err(not_a_handshake("has no Sec-WebSocket-Version: 13"));
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(not_a_handshake("has no Sec-WebSocket-Key"));
        };
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(not_a_handshake(
                "arrived on a connection that cannot be upgraded",
            ));
        };
        Ok(Upgrade {
            key,
            offered: parts.headers.get(header::SEC_WEBSOCKET_PROTOCOL).cloned(),
            on_upgrade,
        })
    }
}

impl Upgrade {
    /// Accepts the handshake: answers `101`, choosing `protocol` when the client offered it,
    /// and runs `callback` on the connection once hyper hands it over.
    pub fn on_upgrade<F, Fut>(
        self,
        protocol: Option<&'static str>,
        config: WebSocketConfig,
        callback: F,
    ) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let chosen = protocol.filter(|p| {
            self.offered
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|o| o.trim() == *p))
        });
        let on_upgrade = self.on_upgrade;
        // The connection's task holds only the callback's future once the socket is set up:
        // `accept` runs first as a separate future, so its locals do not stay in the task.
        tokio::spawn(async move {
            if let Some(socket) = accept(on_upgrade, config).await {
                callback(socket).await;
            }
        });
        let mut res = (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
            ],
        )
            .into_response();
        let accept = derive_accept_key(self.key.as_bytes());
        if let Ok(v) = HeaderValue::from_str(&accept) {
            res.headers_mut().insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(p) = chosen {
            res.headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
        }
        res
    }
}

/// Waits for hyper to hand over the upgraded connection, takes the `TcpStream` back out of it
/// with any bytes already read, and wraps it as a WebSocket.
async fn accept(
    on_upgrade: hyper::upgrade::OnUpgrade,
    config: WebSocketConfig,
) -> Option<WebSocket> {
    let upgraded = match on_upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!("websocket upgrade failed: {e}");
            return None;
        }
    };
    // Every connection reaches hyper through the accept loop as this type.
    let parts = match upgraded.downcast::<TokioIo<Prefixed<TcpStream>>>() {
        Ok(p) => p,
        Err(_) => {
            tracing::error!("websocket upgrade on an unexpected connection type; closing it");
            return None;
        }
    };
    // Hyper read `read_buf` through the accept loop's prefix, so it comes first. Both
    // are taken apart here: an empty slice may still hold hyper's whole read buffer
    // alive, and the WebSocket lives as long as the connection.
    let hyper::upgrade::Parts { io, read_buf, .. } = parts;
    let (unread, stream) = io.into_inner().into_parts();
    let ahead: Bytes = match (read_buf.is_empty(), unread.is_empty()) {
        (true, true) => Bytes::new(),
        (false, true) => Bytes::copy_from_slice(&read_buf),
        (true, false) => Bytes::copy_from_slice(&unread),
        (false, false) => {
            let mut b = BytesMut::from(&read_buf[..]);
            b.extend_from_slice(&unread);
            b.freeze()
        }
    };
    drop((read_buf, unread));
    let socket =
        WebSocketStream::from_raw_socket(Socket::new(stream, ahead), Role::Server, Some(config))
            .await;
    Some(socket)
}
