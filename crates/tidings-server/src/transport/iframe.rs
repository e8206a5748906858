//! Forever iframe: `GET /iframe/{channel}?callback=NAME` — `text/html`, one
//! `<script>parent.NAME(ENVELOPE);</script>` per message.
//!
//! Padding first (browsers hold back the first KiB before running scripts), then an `open`
//! call, messages, `heartbeat` calls while idle, and at the byte budget a `reconnect` call
//! carrying the cursor before the document ends, so the frame's DOM stays small. `NAME` must
//! be an identifier path (checked by the protocol crate) and the envelope is script-safe.

use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use tidings_core::{Item, Published, Transport};
use tidings_protocol::{envelope, iframe, Cursor};

use super::direct::Framer;
use super::{enabled, open, Format, Prepared};
use crate::error::{ApiError, Code};
use crate::request::Params;
use crate::state::State;

struct Frame {
    callback: String,
}

impl Format for Frame {
    fn open(&mut self, cursor: &Cursor, out: &mut BytesMut) {
        iframe::write_preamble(out);
        iframe::write_control(out, &self.callback, "open", &cursor.to_string());
    }

    fn item(&mut self, item: &Item, _: &Cursor, out: &mut BytesMut) {
        match item {
            Item::Message(m) => iframe::write_call(out, &self.callback, m.json()),
            Item::Reset(r) => {
                let mut json = BytesMut::new();
                envelope::write_reset(&mut json, r);
                iframe::write_call(out, &self.callback, &json);
            }
        }
    }

    fn heartbeat(&mut self, out: &mut BytesMut) {
        iframe::write_control(out, &self.callback, "heartbeat", "");
    }

    fn end(&mut self, cursor: &Cursor, out: &mut BytesMut) {
        iframe::write_control(out, &self.callback, "reconnect", &cursor.to_string());
        iframe::write_end(out);
    }

    fn framer(&self) -> Option<Box<dyn Framer>> {
        Some(Box::new(Call(iframe::call_prefix(&self.callback))))
    }
}

/// A message as a call of the page's callback; the prefix names the callback.
struct Call(String);

impl Framer for Call {
    fn frame<'a>(&'a self, m: &'a Published) -> [&'a [u8]; 3] {
        [self.0.as_bytes(), m.json(), iframe::CALL_SUFFIX]
    }
}

/// `GET /iframe/{*channel}`
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

/// `GET /iframe?channel=…`
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
    enabled(state.config.transports.iframe, "iframe")?;
    let params = Params::parse(query);
    let callback = params
        .callback
        .as_deref()
        .unwrap_or(iframe::DEFAULT_CALLBACK)
        .to_owned();
    iframe::validate_callback(&callback)
        .map_err(|e| ApiError::new(Code::BadCallback, e.to_string()))?;
    let req = params.request(channel.as_deref(), state.config.max_channels_per_connection)?;
    let sub = open(state, Transport::Iframe, &req).await?;
    Ok(Prepared::new(
        state,
        sub,
        Box::new(Frame { callback }),
        Transport::Iframe,
        state.config.stream_budget,
        "text/html; charset=utf-8",
    ))
}
