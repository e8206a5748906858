//! Server-Sent Events: `GET /sse/{channel}` and `GET /sse?channel=a&channel=b`.
//!
//! - `retry:` first, then one event per message; `id:` is the cursor (the message's own entry
//!   on a single channel, the whole cursor on several), `event:` only when not `message`.
//! - Resume from the `Last-Event-ID` header (what EventSource sends on reconnect), else
//!   `?lastEventId=`, else `?since=`. The header wins: the URL keeps the first cursor forever.
//! - `?format=json`: each event's data is the JSON envelope and no `event:` line is written
//!   except `event: reset`, so a client needs only `onmessage` and one `reset` listener. The
//!   stream opens with an id-less `{"type":"open","cursor":…}` event.
//! - Resets are `event: reset` with the reset envelope as data.
//! - `: hb` comments while idle. On shutdown a short `retry:` and the end of the response.
//! - `204 No Content` when SSE is disabled, which tells EventSource to stop reconnecting.

use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use tidings_core::{Item, Published, Transport};
use tidings_protocol::{envelope, sse, Cursor};

use super::direct::Framer;
use super::{open, Format, Prepared};
use crate::error::ApiError;
use crate::request::{sub_request, Params};
use crate::state::State;

struct Sse {
    multi: bool,
    json: bool,
    retry_ms: u64,
}

impl Format for Sse {
    fn open(&mut self, cursor: &Cursor, out: &mut BytesMut) {
        sse::write_retry(out, self.retry_ms);
        if self.json {
            // An id-less event: it leaves Last-Event-ID alone, and lets a client tell a
            // buffering proxy from a quiet channel.
            let mut json = BytesMut::new();
            envelope::write_control(&mut json, "open", &cursor.to_string());
            sse::write_json_body(out, "message", &json);
        }
    }

    fn item(&mut self, item: &Item, cursor: &Cursor, out: &mut BytesMut) {
        match item {
            Item::Message(m) if !self.multi => {
                out.extend_from_slice(if self.json {
                    m.sse_json_single()
                } else {
                    m.sse_single()
                });
            }
            Item::Message(m) => {
                sse::write_id(out, &cursor.to_string());
                if self.json {
                    sse::write_json_body(out, "message", m.json());
                } else {
                    out.extend_from_slice(m.sse_body());
                }
            }
            Item::Reset(r) => {
                sse::write_id(out, &cursor.to_string());
                let mut json = BytesMut::new();
                envelope::write_reset(&mut json, r);
                sse::write_json_body(out, "reset", &json);
            }
        }
    }

    fn heartbeat(&mut self, out: &mut BytesMut) {
        sse::write_comment(out, "hb");
    }

    fn end(&mut self, _: &Cursor, out: &mut BytesMut) {
        // Come back soon (with jitter, so a restart is not met by every client at once).
        sse::write_retry(out, 250 + rand::random::<u64>() % 1000);
    }

    fn framer(&self) -> Option<Box<dyn Framer>> {
        // On several channels the `id:` is the whole cursor, different per connection.
        (!self.multi).then(|| Box::new(SingleEvent { json: self.json }) as Box<dyn Framer>)
    }
}

/// A single-channel event: the message's own shared bytes.
struct SingleEvent {
    json: bool,
}

impl Framer for SingleEvent {
    fn frame<'a>(&'a self, m: &'a Published) -> [&'a [u8]; 3] {
        let event = if self.json {
            m.sse_json_single()
        } else {
            m.sse_single()
        };
        [event, &[], &[]]
    }
}

/// `GET /sse/{*channel}`
pub async fn one(
    state: axum::extract::State<State>,
    Path(channel): Path<String>,
    q: RawQuery,
    h: HeaderMap,
) -> Response {
    respond(prepare(&state.0, Some(channel), q.0.as_deref(), last_event_id(&h)).await)
}

/// `GET /sse?channel=…`
pub async fn many(state: axum::extract::State<State>, q: RawQuery, h: HeaderMap) -> Response {
    respond(prepare(&state.0, None, q.0.as_deref(), last_event_id(&h)).await)
}

fn last_event_id(h: &HeaderMap) -> Option<&str> {
    h.get("last-event-id").and_then(|v| v.to_str().ok())
}

fn respond(r: Result<Option<Prepared>, ApiError>) -> Response {
    match r {
        Ok(Some(p)) => p.into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Validates the request and opens the stream; `None` means `204` (SSE is disabled).
pub async fn prepare(
    state: &State,
    channel: Option<String>,
    query: Option<&str>,
    header_id: Option<&str>,
) -> Result<Option<Prepared>, ApiError> {
    if !state.config.transports.sse {
        return Ok(None);
    }
    let params = Params::parse(query);
    let header_id = header_id.filter(|s| !s.is_empty());
    let cursor = header_id
        .or(params.last_event_id.as_deref())
        .or(params.since.as_deref());
    let req = sub_request(
        channel.as_deref(),
        &params,
        cursor,
        state.config.max_channels_per_connection,
    )?;
    let sub = open(state, Transport::Sse, &req).await?;
    let fmt = Sse {
        multi: req.multi(),
        json: params.format.as_deref() == Some("json"),
        retry_ms: state.config.sse_retry.as_millis() as u64,
    };
    Ok(Some(Prepared::new(
        state,
        sub,
        Box::new(fmt),
        Transport::Sse,
        usize::MAX,
        "text/event-stream",
    )))
}
