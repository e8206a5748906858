//! Reading a subscribe request: channels from the path or repeated `channel=` keys, and the
//! cursor from `since` (or, for SSE, `Last-Event-ID` / `lastEventId`).
//!
//! Unknown query keys are ignored, so cache-busters such as `_=1712` pass.

use std::borrow::Cow;

use tidings_protocol::{ChannelName, Cursor};

use crate::error::{ApiError, Code};

/// The query keys the transports read. Values borrow from the query string unless they had
/// to be percent-decoded, so a poll's `?since=…` costs no allocation.
#[derive(Debug, Default)]
pub struct Params<'q> {
    pub channels: Vec<Cow<'q, str>>,
    pub since: Option<Cow<'q, str>>,
    pub last_event_id: Option<Cow<'q, str>>,
    pub callback: Option<Cow<'q, str>>,
    pub timeout: Option<Cow<'q, str>>,
    pub format: Option<Cow<'q, str>>,
}

impl<'q> Params<'q> {
    /// Parses a raw query string.
    pub fn parse(query: Option<&'q str>) -> Params<'q> {
        let query = query.unwrap_or("");
        if !query.contains(['%', '+']) {
            // Nothing to decode (a poll's `?since=…`): split the text as it is.
            let mut p = Params::default();
            for pair in query.split('&').filter(|s| !s.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                p.set(Cow::Borrowed(k), Cow::Borrowed(v));
            }
            return p;
        }
        let mut p = Params::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            p.set(k, v);
        }
        p
    }

    /// Records one decoded key and value.
    fn set(&mut self, k: Cow<'q, str>, v: Cow<'q, str>) {
        match &*k {
            "channel" => self.channels.push(v),
            "since" => self.since = Some(v),
            "lastEventId" => self.last_event_id = Some(v),
            "callback" => self.callback = Some(v),
            "timeout" => self.timeout = Some(v),
            "format" => self.format = Some(v),
            _ => {}
        }
    }

    /// The subscribe request of a transport whose cursor is the `since` key: the path channel
    /// (if any) and the `channel=` keys, at most `max_channels` of them.
    pub fn request(
        &self,
        path_channel: Option<&str>,
        max_channels: usize,
    ) -> Result<SubRequest, ApiError> {
        sub_request(path_channel, self, self.since.as_deref(), max_channels)
    }
}

/// A validated subscribe request.
#[derive(Debug)]
pub struct SubRequest {
    pub channels: Vec<ChannelName>,
    pub since: Option<Cursor>,
}

impl SubRequest {
    /// True when the request names more than one channel.
    pub fn multi(&self) -> bool {
        self.channels.len() > 1
    }
}

/// Builds a request from the path channel (if any), the query, and a cursor text.
pub fn sub_request(
    path_channel: Option<&str>,
    params: &Params,
    cursor: Option<&str>,
    max_channels: usize,
) -> Result<SubRequest, ApiError> {
    let mut channels: Vec<ChannelName> = Vec::new();
    for name in path_channel
        .into_iter()
        .chain(params.channels.iter().map(|c| &**c))
    {
        let c = ChannelName::new(name)?;
        if !channels.contains(&c) {
            channels.push(c);
        }
    }
    if channels.is_empty() {
        return Err(ApiError::new(
            Code::BadRequest,
            "name a channel in the path (/sse/news) or with channel= (/sse?channel=a&channel=b)",
        ));
    }
    if channels.len() > max_channels {
        return Err(ApiError::new(
            Code::TooManySubscriptions,
            format!(
                "{} channels requested; the limit is {max_channels} (max_channels_per_connection)",
                channels.len()
            ),
        ));
    }
    let since = match cursor {
        None | Some("") => None,
        Some(text) => Some(Cursor::parse(text)?),
    };
    Ok(SubRequest { channels, since })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_repeated_channels_and_ignores_unknown_keys() {
        let p = Params::parse(Some("channel=a&channel=b%3Ax&since=a~000000000001~2&_=17"));
        let r = sub_request(None, &p, p.since.as_deref(), 8).unwrap();
        assert_eq!(
            r.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            vec!["a", "b:x"]
        );
        assert!(r.multi());
        assert_eq!(r.since.unwrap().to_string(), "a~000000000001~2");
    }

    #[test]
    fn plain_and_encoded_queries_read_the_same() {
        for q in [
            "channel=a&since=a~000000000001~2&timeout=5&&x&format=json",
            "channel=%61&since=a%7E000000000001%7E2&timeout=5&&x&format=js%6Fn",
        ] {
            let p = Params::parse(Some(q));
            assert_eq!(p.channels, ["a"], "{q}");
            assert_eq!(p.since.as_deref(), Some("a~000000000001~2"), "{q}");
            assert_eq!(p.timeout.as_deref(), Some("5"), "{q}");
            assert_eq!(p.format.as_deref(), Some("json"), "{q}");
        }
        let p = Params::parse(Some("callback=a+b&lastEventId="));
        assert_eq!(p.callback.as_deref(), Some("a b"));
        assert_eq!(p.last_event_id.as_deref(), Some(""));
    }

    #[test]
    fn rejects_bad_input_with_the_right_code() {
        let p = Params::parse(Some("channel=a%20b"));
        assert_eq!(
            sub_request(None, &p, None, 8).unwrap_err().code,
            Code::BadChannel
        );
        let p = Params::parse(None);
        assert_eq!(
            sub_request(None, &p, None, 8).unwrap_err().code,
            Code::BadRequest
        );
        assert_eq!(
            sub_request(Some("a"), &p, Some("junk"), 8)
                .unwrap_err()
                .code,
            Code::BadCursor
        );
        let p = Params::parse(Some("channel=a&channel=b&channel=c"));
        assert_eq!(
            sub_request(None, &p, None, 2).unwrap_err().code,
            Code::TooManySubscriptions
        );
    }
}
