//! Incremental parsers for what subscribers receive, one per wire format. Pure: bytes in,
//! [`Item`]s out, no I/O.
//!
//! - SSE (both servers): `data:` lines joined by `\n`, `id:` kept as the resume point,
//!   `event: reset` counted as a reset.
//! - Tidings JSON envelopes (XHR stream lines, iframe calls, poll bodies): the `data` field is
//!   the payload; `channel~epoch~offset`, or a control notice's `cursor`, is the resume point.
//! - A raw byte stream (Nchan's chunked transport): split at each payload's closing `;`.
//!
//! The JSON scanning is deliberately shallow: Tidings writes envelopes as flat objects with
//! fields in a fixed order and the bench payload needs no escaping, so finding `"data":"` is
//! enough, and far cheaper than a full parse on a generator that must outrun the server.

use bytes::{Buf, BytesMut};

use crate::payload;

/// One thing a subscriber learned.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A message's payload.
    Data(&'a [u8]),
    /// Where to resume after this point (a cursor, or an SSE id).
    Resume(&'a str),
    /// The server announced a reset (a gap it could not fill).
    Reset,
}

/// Finds `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return None,
            Some(p) => i += p,
        }
        if &hay[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The raw (unescaped) text of string field `key` in a flat JSON object.
pub fn json_str<'a>(json: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let pat = format!("\"{key}\":\"");
    let start = find(json, pat.as_bytes())? + pat.len();
    let mut i = start;
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return Some(&json[start..i]),
            _ => i += 1,
        }
    }
    None
}

/// Number field `key` in a flat JSON object.
pub fn json_u64(json: &[u8], key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let start = find(json, pat.as_bytes())? + pat.len();
    let digits = json[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&json[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

/// Reads one Tidings JSON envelope or control notice.
pub fn envelope(json: &[u8], sink: &mut impl FnMut(Item)) {
    let kind = json_str(json, "type");
    match kind {
        None | Some(b"reset") => {
            if kind.is_some() {
                sink(Item::Reset);
            } else if let Some(d) = json_str(json, "data") {
                sink(Item::Data(d));
            }
            let c = json_str(json, "channel").and_then(|c| std::str::from_utf8(c).ok());
            let e = json_str(json, "epoch").and_then(|c| std::str::from_utf8(c).ok());
            if let (Some(c), Some(e), Some(o)) = (c, e, json_u64(json, "offset")) {
                sink(Item::Resume(&format!("{c}~{e}~{o}")));
            }
        }
        Some(_) => {
            if let Some(c) = json_str(json, "cursor").and_then(|c| std::str::from_utf8(c).ok()) {
                if !c.is_empty() {
                    sink(Item::Resume(c));
                }
            }
        }
    }
}

/// Reads a Tidings poll body, `{"messages":[…],"cursor":"…"}`.
pub fn poll_body(body: &[u8], sink: &mut impl FnMut(Item)) -> usize {
    let mut count = 0;
    let Some(start) = find(body, b"\"messages\":[") else {
        return 0;
    };
    let mut i = start + b"\"messages\":[".len();
    while i < body.len() {
        match body[i] {
            b'{' => {
                let Some(len) = object_len(&body[i..]) else {
                    break;
                };
                envelope(&body[i..i + len], sink);
                count += 1;
                i += len;
            }
            b']' => {
                i += 1;
                break;
            }
            _ => i += 1,
        }
    }
    if let Some(c) = json_str(&body[i.min(body.len())..], "cursor") {
        if let Ok(c) = std::str::from_utf8(c) {
            sink(Item::Resume(c));
        }
    }
    count
}

/// Length of the flat JSON object at the start of `s`, strings taken into account.
fn object_len(s: &[u8]) -> Option<usize> {
    let (mut in_str, mut i) = (false, 1);
    while i < s.len() {
        match (in_str, s[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') | (false, b'"') => in_str = !in_str,
            (false, b'}') => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The wire format a streaming subscriber parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sse,
    Ndjson,
    Iframe,
    Raw,
}

/// An incremental parser of one response body.
#[derive(Debug)]
pub struct Parser {
    format: Format,
    buf: BytesMut,
    data: Vec<u8>,
    has_data: bool,
    reset: bool,
    id: String,
}

impl Parser {
    /// A parser for `format`.
    pub fn new(format: Format) -> Self {
        Parser {
            format,
            buf: BytesMut::new(),
            data: Vec::new(),
            has_data: false,
            reset: false,
            id: String::new(),
        }
    }

    /// Feeds decoded body bytes; calls `sink` for each complete item.
    pub fn feed(&mut self, input: &[u8], sink: &mut impl FnMut(Item)) {
        self.buf.extend_from_slice(input);
        match self.format {
            Format::Raw => {
                while let Some(p) = payload::split_stream(&mut self.buf) {
                    sink(Item::Data(&p));
                }
            }
            Format::Ndjson => {
                while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                    let line = self.buf.split_to(nl + 1);
                    envelope(&line, sink);
                }
            }
            Format::Iframe => self.iframe(sink),
            Format::Sse => self.sse(sink),
        }
    }

    fn iframe(&mut self, sink: &mut impl FnMut(Item)) {
        const OPEN: &[u8] = b"<script>parent.";
        const CLOSE: &[u8] = b");</script>";
        loop {
            let Some(start) = find(&self.buf, OPEN) else {
                let keep = self.buf.len().min(OPEN.len());
                self.buf.advance(self.buf.len() - keep);
                return;
            };
            let Some(end) = find(&self.buf[start..], CLOSE) else {
                self.buf.advance(start);
                return;
            };
            let call = &self.buf[start + OPEN.len()..start + end];
            if let Some(paren) = call.iter().position(|&b| b == b'(') {
                envelope(&call[paren + 1..], sink);
            }
            self.buf.advance(start + end + CLOSE.len());
        }
    }

    fn sse(&mut self, sink: &mut impl FnMut(Item)) {
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line = self.buf.split_to(nl + 1);
            line.truncate(nl);
            if line.last() == Some(&b'\r') {
                line.truncate(nl - 1);
            }
            if line.is_empty() {
                if self.reset {
                    sink(Item::Reset);
                } else if self.has_data {
                    sink(Item::Data(&self.data));
                }
                if (self.reset || self.has_data) && !self.id.is_empty() {
                    sink(Item::Resume(&self.id));
                }
                self.data.clear();
                self.has_data = false;
                self.reset = false;
                continue;
            }
            if line[0] == b':' {
                continue;
            }
            let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
            let mut value = &line[(colon + 1).min(line.len())..];
            if value.first() == Some(&b' ') {
                value = &value[1..];
            }
            match &line[..colon] {
                b"data" => {
                    if self.has_data {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                    self.has_data = true;
                }
                b"id" => self.id = String::from_utf8_lossy(value).into_owned(),
                b"event" => self.reset = value == b"reset",
                _ => {}
            }
        }
    }
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
