//! Short polling: `GET /poll/{channel}?since=CURSOR` answers at once with
//! `{"messages":[…],"cursor":"…"}`.
//!
//! With no `since`, the answer is the newest message: the channel's current state, which is
//! what a clock or ticker wants. The `ETag` is the cursor after the answer, so a client sending
//! `If-None-Match` gets `304 Not Modified` until something new is published. Polling keeps no
//! server state between requests, so any node can answer any poll.

use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use tidings_core::subscription::catch_up;
use tidings_core::Item;
use tidings_protocol::{envelope, poll, Cursor};

use super::{advance, enabled};
use crate::error::ApiError;
use crate::metrics;
use crate::request::Params;
use crate::state::State;

/// Messages per poll answer at most.
pub const BATCH: usize = 100;

/// Encodes items and their cursor as a poll body. The common answer, one message on a
/// single-channel poll, is the message's shared bytes (the same for every poller).
pub fn body(items: &[Item], cursor: &Cursor) -> Bytes {
    if let ([Item::Message(m)], [(ch, pos)]) = (items, cursor.entries()) {
        if *ch == m.msg.channel && *pos == m.msg.position {
            return m.poll_single().clone();
        }
    }
    let resets: Vec<Bytes> = items
        .iter()
        .filter_map(|i| match i {
            Item::Reset(r) => {
                let mut b = BytesMut::new();
                envelope::write_reset(&mut b, r);
                Some(b.freeze())
            }
            Item::Message(_) => None,
        })
        .collect();
    let mut resets = resets.iter();
    let parts: Vec<&[u8]> = items
        .iter()
        .map(|i| match i {
            Item::Message(m) => &m.json()[..],
            Item::Reset(_) => resets.next().map(|b| &b[..]).unwrap_or(b"{}"),
        })
        .collect();
    let mut out = BytesMut::new();
    poll::write_body(&mut out, parts, &cursor.to_string());
    out.freeze()
}

/// A JSON poll response.
pub fn json_response(body: Bytes, etag: Option<&str>) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(t).ok()) {
        h.insert(header::ETAG, tag);
    }
    res
}

/// `GET /poll/{*channel}`
pub async fn one(
    state: axum::extract::State<State>,
    Path(channel): Path<String>,
    q: RawQuery,
    h: HeaderMap,
) -> Response {
    handle(state.0, Some(channel), q.0, h)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /poll?channel=…`
pub async fn many(state: axum::extract::State<State>, q: RawQuery, h: HeaderMap) -> Response {
    handle(state.0, None, q.0, h)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Answers one poll; shared by the hyper route and the native keep-alive path.
pub async fn handle(
    state: State,
    channel: Option<String>,
    query: Option<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    enabled(state.config.transports.poll, "poll")?;
    let params = Params::parse(query.as_deref());
    let req = params.request(channel.as_deref(), state.config.max_channels_per_connection)?;
    let _guard = metrics::ConnGuard::new(tidings_core::Transport::Poll);
    let mut items = Vec::new();
    let mut cursor = Cursor::new();
    for ch in &req.channels {
        let since = req.since.as_ref().and_then(|c| c.get(ch));
        let up = catch_up(&state.hub, ch, since, 1)
            .await
            .map_err(ApiError::from)?;
        cursor.set(ch, up.start);
        if let Some(r) = up.reset {
            items.push(Item::Reset(r));
        }
        let room = BATCH.saturating_sub(items.len());
        items.extend(up.messages.into_iter().take(room).map(Item::Message));
    }
    for item in &items {
        advance(&mut cursor, item);
    }
    let etag = format!("\"{cursor}\"");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches && items.iter().all(|i| matches!(i, Item::Message(_))) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag) {
            res.headers_mut().insert(header::ETAG, v);
        }
        return Ok(res);
    }
    metrics::delivered(tidings_core::Transport::Poll, items.len());
    Ok(json_response(body(&items, &cursor), Some(&etag)))
}
