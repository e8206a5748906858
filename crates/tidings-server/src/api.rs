//! The publish and channel API under `/api/channels`.
//!
//! - `POST /api/channels/{channel}/messages?event=E`: the body is the data. `text/*` and JSON
//!   bodies are text (and must be UTF-8); `application/octet-stream` is binary; any other type
//!   is text when it is valid UTF-8 and binary otherwise. `201 {"channel","id","epoch","offset","cursor"}`.
//! - `GET /api/channels`, `GET /api/channels/{channel}`, `GET /api/channels/{channel}/history`,
//!   `DELETE /api/channels/{channel}`.
//!
//! A channel name holding `/` must be percent-encoded (`%2F`) in these paths. Authorization is a
//! layer in front of these routes ([`crate::auth`]).

use axum::body::{to_bytes, Body};
use axum::extract::{Path, RawQuery, State as Axum};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use tidings_core::broker::Range;
use tidings_core::subscription::catch_up;
use tidings_core::Item;
use tidings_protocol::{ChannelName, Cursor, Payload};

use crate::error::{ApiError, Code};
use crate::request::Params;
use crate::state::State;
use crate::transport::advance;
use crate::transport::poll::{body as poll_body, json_response};

fn channel(name: &str) -> Result<ChannelName, ApiError> {
    Ok(ChannelName::new(name)?)
}

fn json_status(status: StatusCode, v: serde_json::Value) -> Response {
    let mut res = (status, v.to_string()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

/// Reads the event name from `?event=`.
fn event(query: Option<&str>) -> Result<Option<Box<str>>, ApiError> {
    let e = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "event")
        .map(|(_, v)| v.into_owned());
    match e {
        None => Ok(None),
        Some(e) if e == "message" => Ok(None),
        Some(e) => {
            tidings_protocol::ws::validate_event(&e)
                .map_err(|m| ApiError::new(Code::BadEvent, m))?;
            Ok(Some(e.into()))
        }
    }
}

/// Turns a request body into a payload by its content type.
pub fn payload(headers: &HeaderMap, body: Bytes) -> Result<Payload, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let textual =
        ct.starts_with("text/") || ct.starts_with("application/json") || ct.contains("+json");
    if ct.starts_with("application/octet-stream") {
        return Ok(Payload::Binary(body));
    }
    match std::str::from_utf8(&body) {
        Ok(_) => Ok(Payload::Text(body)),
        Err(e) if textual => Err(ApiError::new(
            Code::BadRequest,
            format!("body is not UTF-8 ({e}); send binary data as application/octet-stream"),
        )),
        Err(_) => Ok(Payload::Binary(body)),
    }
}

/// `POST /api/channels/{channel}/messages`
pub async fn publish(
    Axum(state): Axum<State>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let channel = channel(&name)?;
    let event = event(query.as_deref())?;
    let limit = state.config.max_message_bytes;
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            Code::PayloadTooLarge,
            format!("message is over the {limit}-byte limit (max_message_bytes)"),
        )
    })?;
    let data = payload(&headers, bytes)?;
    let m = state.hub.publish(&channel, event, data).await?;
    let cursor = m.cursor_entry();
    Ok(json_status(
        StatusCode::CREATED,
        json!({
            "channel": channel.as_str(),
            "id": cursor,
            "epoch": m.msg.position.epoch.to_string(),
            "offset": m.msg.position.offset,
            "cursor": cursor,
        }),
    ))
}

/// `GET /api/channels`
pub async fn list(Axum(state): Axum<State>) -> Result<Response, ApiError> {
    let names: Vec<String> = state
        .hub
        .channels()
        .await?
        .iter()
        .map(|c| c.to_string())
        .collect();
    Ok(json_status(StatusCode::OK, json!({ "channels": names })))
}

/// `GET /api/channels/{channel}`
pub async fn info(
    Axum(state): Axum<State>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let channel = channel(&name)?;
    let stats = state.hub.stats(&channel).await?.unwrap_or_default();
    let subs: serde_json::Map<String, serde_json::Value> = state
        .hub
        .local_subscribers(&channel)
        .into_iter()
        .map(|(t, n)| (t.as_str().to_owned(), json!(n)))
        .collect();
    let o = state.hub.options(&channel);
    Ok(json_status(
        StatusCode::OK,
        json!({
            "channel": channel.as_str(),
            "epoch": stats.top.epoch.to_string(),
            "offset": stats.top.offset,
            "history": { "messages": stats.history_len, "bytes": stats.history_bytes },
            "subscribers": subs,
            "options": {
                "history_size": o.history_size,
                "history_bytes": o.history_bytes,
                "history_ttl_seconds": o.history_ttl.as_secs(),
                "client_publish": o.client_publish,
                "slow_consumer": o.slow_consumer.as_str(),
            },
        }),
    ))
}

/// `GET /api/channels/{channel}/history?since=C&limit=N` (poll-shaped body).
pub async fn history(
    Axum(state): Axum<State>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let channel = channel(&name)?;
    let params = Params::parse(query.as_deref());
    let limit = form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "limit")
        .map(|(_, v)| {
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ApiError::new(
                        Code::BadRequest,
                        format!("limit={v:?}; use a number from 1 to 1000"),
                    )
                })
        })
        .transpose()?
        .unwrap_or(100);
    let since = match params.since.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Cursor::parse(s)?),
    };
    let mut items = Vec::new();
    let mut cursor = Cursor::new();
    match since.as_ref().and_then(|c| c.get(&channel)) {
        Some(pos) => {
            let up = catch_up(&state.hub, &channel, Some(pos), 0).await?;
            cursor.set(&channel, up.start);
            items.extend(up.reset.map(Item::Reset));
            items.extend(up.messages.into_iter().take(limit).map(Item::Message));
        }
        None => {
            let h = state.hub.history(&channel, Range::Latest { limit }).await?;
            let start = h
                .messages
                .first()
                .map(|m| m.msg.position.offset - 1)
                .unwrap_or(h.top.offset);
            cursor.set(
                &channel,
                tidings_protocol::Position {
                    epoch: h.top.epoch,
                    offset: start,
                },
            );
            items.extend(h.messages.into_iter().map(Item::Message));
        }
    }
    for i in &items {
        advance(&mut cursor, i);
    }
    Ok(json_response(poll_body(&items, &cursor), None))
}

/// `DELETE /api/channels/{channel}`
pub async fn delete(
    Axum(state): Axum<State>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let channel = channel(&name)?;
    let top = state.hub.delete(&channel).await?;
    Ok(json_status(
        StatusCode::OK,
        json!({ "channel": channel.as_str(), "epoch": top.epoch.to_string(), "offset": top.offset }),
    ))
}
