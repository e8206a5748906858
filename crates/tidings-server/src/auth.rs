//! Authorization of the channel API, as a middleware layer in front of `/api`.
//!
//! With `api_key` set, every `/api` request must carry `Authorization: Bearer <api_key>`
//! (compared in constant time). With none set, `/api` answers loopback clients only, so a fresh
//! install never exposes publishing to the network; the server says so at start-up.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State as Axum};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, Code};
use crate::state::State;

/// The middleware.
pub async fn require(Axum(state): Axum<State>, req: Request, next: Next) -> Response {
    match &state.config.api_key {
        Some(key) => {
            let given = req
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
                return ApiError::new(
                    Code::Unauthorized,
                    "send Authorization: Bearer <api_key> (the api_key from the server config)",
                )
                .into_response();
            }
        }
        None => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            if !peer.is_some_and(|ip| ip.is_loopback()) {
                return ApiError::new(
                    Code::Unauthorized,
                    "no api_key is configured, so the API accepts loopback clients only; set api_key (or TIDINGS_API_KEY) and send it as a Bearer token",
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}
