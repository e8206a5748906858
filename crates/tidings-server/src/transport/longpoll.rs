//! Long polling: `GET /longpoll/{channel}?since=CURSOR&timeout=S`.
//!
//! The request is held until at least one message is available, then answered with every
//! available one (up to [`BATCH`]) and the cursor after them; on timeout, with an empty batch
//! and the same cursor. Because the next poll carries that cursor and resumes from history, no
//! message published between two polls is lost. With no `since`, the poll waits for the next
//! message published after it arrives.

use std::time::Duration;

use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tidings_core::{SlowConsumer, Subscription, Transport};

use super::poll::{body, json_response, BATCH};
use super::{advance, enabled, open};
use crate::error::{ApiError, Code};
use crate::metrics::{self, ConnGuard};
use crate::request::Params;
use crate::state::State;

/// The longest hold a client may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(120);

/// `GET /longpoll/{*channel}`
pub async fn one(
    state: axum::extract::State<State>,
    Path(channel): Path<String>,
    q: RawQuery,
) -> Response {
    handle(state.0, Some(channel), q.0)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /longpoll?channel=…`
pub async fn many(state: axum::extract::State<State>, q: RawQuery) -> Response {
    handle(state.0, None, q.0)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn timeout(params: &Params, default: Duration) -> Result<Duration, ApiError> {
    match params.timeout.as_deref() {
        None | Some("") => Ok(default),
        Some(t) => t
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s).min(MAX_TIMEOUT))
            .ok_or_else(|| {
                ApiError::new(
                    Code::BadRequest,
                    format!("timeout={t:?} is not a number of seconds (0-120)"),
                )
            }),
    }
}

/// Answers one poll through hyper.
pub async fn handle(
    state: State,
    channel: Option<String>,
    query: Option<String>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        wait(state, channel, query, None).await?,
        None,
    ))
}

/// A single-channel long poll's subscription, kept on a kept-alive connection for its next
/// poll (see the module docs).
pub struct Kept {
    /// The path channel of the poll that was answered.
    channel: String,
    /// The cursor text of that answer: the next poll must resume from exactly this.
    cursor: String,
    sub: Subscription,
}

impl Kept {
    /// The kept subscription, if the poll for `channel` with `params` resumes where it stopped.
    fn reuse(self, channel: Option<&str>, params: &Params) -> Option<Subscription> {
        let same = channel == Some(self.channel.as_str())
            && params.channels.is_empty()
            && params.since.as_deref() == Some(self.cursor.as_str())
            && !self.sub.outbox().is_closed();
        same.then_some(self.sub)
    }
}

/// Holds one poll until messages arrive, the hold times out or the server shuts down; returns
/// the JSON body. Shared by the hyper route and the native keep-alive path, which writes the
/// body itself.
///
/// `kept` is the connection's slot for a [`Kept`] subscription (the native keep-alive path has
/// one, hyper's route does not): the poll reuses what it holds when it can, and leaves its own
/// subscription there when it may be reused.
pub async fn wait(
    state: State,
    channel: Option<String>,
    query: Option<String>,
    mut kept: Option<&mut Option<Box<Kept>>>,
) -> Result<Bytes, ApiError> {
    enabled(state.config.transports.longpoll, "longpoll")?;
    let params = Params::parse(query.as_deref());
    let hold = timeout(&params, state.config.longpoll_timeout)?;
    let reused = kept
        .as_mut()
        .and_then(|slot| slot.take())
        .and_then(|k| (*k).reuse(channel.as_deref(), &params));
    let _guard = ConnGuard::new(Transport::LongPoll);
    let mut sub = match reused {
        Some(sub) => sub,
        None => {
            let req =
                params.request(channel.as_deref(), state.config.max_channels_per_connection)?;
            open(&state, Transport::LongPoll, &req).await?
        }
    };
    let mut cursor = sub.cursor();
    let mut items = Vec::new();
    let mut shutdown = state.shutdown.clone();
    let mut ended = *shutdown.borrow();
    if !ended {
        tokio::select! {
            biased;
            r = sub.next_batch(&mut items) => {
                if let Err(e) = r {
                    tracing::debug!("long poll ends early: {e}");
                    ended = true;
                }
            }
            _ = tokio::time::sleep(hold) => {}
            _ = shutdown.changed() => ended = true,
        }
    }
    let cut = items.len() > BATCH;
    items.truncate(BATCH);
    metrics::delivered(Transport::LongPoll, items.len());
    for item in &items {
        advance(&mut cursor, item);
    }
    let body = body(&items, &cursor);
    if let (Some(slot), Some(channel), false) = (kept, channel, ended || cut) {
        let drops = state.hub.options(&channel).slow_consumer != SlowConsumer::Disconnect;
        if !drops && sub.len() == 1 && sub.cursor() == cursor {
            *slot = Some(Box::new(Kept {
                channel,
                cursor: cursor.to_string(),
                sub,
            }));
        }
    }
    Ok(body)
}
