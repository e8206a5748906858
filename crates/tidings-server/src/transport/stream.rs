//! XHR streaming: `GET /stream/{channel}` — chunked `application/x-ndjson`, one JSON envelope
//! per line.
//!
//! First line `{"type":"open","cursor":…}`, heartbeats `{"type":"heartbeat"}`, and at the byte
//! budget (or shutdown) `{"type":"reconnect","cursor":…}` before the response ends, so the
//! client's response buffer never grows without bound.

use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use tidings_core::{Item, Published, Transport};
use tidings_protocol::{envelope, ndjson, Cursor};

use super::direct::Framer;
use super::{enabled, open, Format, Prepared};
use crate::error::ApiError;
use crate::request::Params;
use crate::state::State;

struct Ndjson;

impl Format for Ndjson {
    fn open(&mut self, cursor: &Cursor, out: &mut BytesMut) {
        ndjson::write_control(out, "open", &cursor.to_string());
    }

    fn item(&mut self, item: &Item, _: &Cursor, out: &mut BytesMut) {
        match item {
            Item::Message(m) => ndjson::write_line(out, m.json()),
            Item::Reset(r) => {
                envelope::write_reset(out, r);
                out.extend_from_slice(b"\n");
            }
        }
    }

    fn heartbeat(&mut self, out: &mut BytesMut) {
        ndjson::write_control(out, "heartbeat", "");
    }

    fn end(&mut self, cursor: &Cursor, out: &mut BytesMut) {
        ndjson::write_control(out, "reconnect", &cursor.to_string());
    }

    fn framer(&self) -> Option<Box<dyn Framer>> {
        Some(Box::new(Ndjson))
    }
}

impl Framer for Ndjson {
    fn frame<'a>(&'a self, m: &'a Published) -> [&'a [u8]; 3] {
        [m.json(), b"\n", &[]]
    }
}

/// `GET /stream/{*channel}`
pub async fn one(
    state: axum::extract::State<State>,
    Path(channel): Path<String>,
    q: RawQuery,
) -> Response {
    prepare(&state.0, Some(channel), q.0.as_deref())
        .await
        .map(Prepared::into_response)
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /stream?channel=…`
pub async fn many(state: axum::extract::State<State>, q: RawQuery) -> Response {
    prepare(&state.0, None, q.0.as_deref())
        .await
        .map(Prepared::into_response)
        .unwrap_or_else(IntoResponse::into_response)
}

/// Validates the request and opens the stream.
pub async fn prepare(
    state: &State,
    channel: Option<String>,
    query: Option<&str>,
) -> Result<Prepared, ApiError> {
    enabled(state.config.transports.stream, "stream")?;
    let params = Params::parse(query);
    let req = params.request(channel.as_deref(), state.config.max_channels_per_connection)?;
    let sub = open(state, Transport::Stream, &req).await?;
    Ok(Prepared::new(
        state,
        sub,
        Box::new(Ndjson),
        Transport::Stream,
        state.config.stream_budget,
        "application/x-ndjson",
    ))
}
