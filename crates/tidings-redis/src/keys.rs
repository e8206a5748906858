//! The key layout in Redis.
//!
//! Every key and the pub/sub channel of one Tidings channel carry the channel name as a hash
//! tag, `{<channel>}`, so in a Redis Cluster they all sit in one slot: a Lua script may touch
//! them together, and the sharded pub/sub channel lives on the node that runs the script.
//! Channel names never contain `{` or `}` (see `tidings_protocol::channel`), and the prefix is
//! validated not to, so the tag is always exactly the channel name.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `<prefix>:{<channel>}:meta` | hash | `epoch` (12 hex digits), `top` (last offset), `bytes` (history bytes), `ttl` (history TTL, ms) |
//! | `<prefix>:{<channel>}:stream` | stream | one entry per retained message, ID `0-<offset>`, fields `t` (time ms), `c` (cost), `d` (data), `b` (binary flag), `e` (event) |
//! | `<prefix>:{<channel>}:pub` | pub/sub channel | a [`crate::notice`] per message or reset |

use tidings_protocol::ChannelName;

/// Builds the names of one deployment's keys.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    fn key(&self, channel: &str, suffix: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + channel.len() + suffix.len() + 4);
        k.push_str(&self.prefix);
        k.push_str(":{");
        k.push_str(channel);
        k.push('}');
        k.push_str(suffix);
        k
    }

    /// The hash holding the channel's position.
    pub fn meta(&self, channel: &str) -> String {
        self.key(channel, ":meta")
    }

    /// The stream holding the channel's history.
    pub fn stream(&self, channel: &str) -> String {
        self.key(channel, ":stream")
    }

    /// The pub/sub channel carrying the channel's notices.
    pub fn pubsub(&self, channel: &str) -> String {
        self.key(channel, ":pub")
    }

    /// The `SCAN MATCH` pattern of every meta key.
    pub fn meta_pattern(&self) -> String {
        format!("{}:{{*}}:meta", glob_escape(&self.prefix))
    }

    /// The channel a meta key belongs to, or `None` for a key of another shape.
    pub fn channel_of_meta(&self, key: &[u8]) -> Option<ChannelName> {
        self.channel_of(key, b":meta")
    }

    /// The channel a pub/sub channel name belongs to, or `None` for another shape.
    pub fn channel_of_pubsub<'a>(&self, name: &'a [u8]) -> Option<&'a str> {
        self.inner(name, b":pub")
    }

    fn channel_of(&self, key: &[u8], suffix: &[u8]) -> Option<ChannelName> {
        ChannelName::new(self.inner(key, suffix)?).ok()
    }

    fn inner<'a>(&self, key: &'a [u8], suffix: &[u8]) -> Option<&'a str> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        let rest = rest.strip_prefix(b":{")?;
        let rest = rest.strip_suffix(suffix)?;
        let rest = rest.strip_suffix(b"}")?;
        std::str::from_utf8(rest).ok()
    }
}

/// Escapes the glob characters of `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_exact_and_round_trips() {
        let k = Keys::new("tidings");
        assert_eq!(k.meta("chat:lobby"), "tidings:{chat:lobby}:meta");
        assert_eq!(k.stream("chat:lobby"), "tidings:{chat:lobby}:stream");
        assert_eq!(k.pubsub("chat:lobby"), "tidings:{chat:lobby}:pub");
        assert_eq!(k.meta_pattern(), "tidings:{*}:meta");
        assert_eq!(
            k.channel_of_meta(b"tidings:{chat:lobby}:meta").as_deref(),
            Some("chat:lobby")
        );
        assert_eq!(
            k.channel_of_pubsub(b"tidings:{a}:pub"),
            Some("a"),
            "pub/sub names map back"
        );
    }

    #[test]
    fn foreign_keys_are_refused() {
        let k = Keys::new("tidings");
        assert!(k.channel_of_meta(b"other:{a}:meta").is_none());
        assert!(k.channel_of_meta(b"tidings:{a}:stream").is_none());
        assert!(k.channel_of_meta(b"tidings:{a b}:meta").is_none());
        assert!(k.channel_of_meta(b"tidings:{}:meta").is_none());
        assert!(k.channel_of_pubsub(b"tidings:{a}:meta").is_none());
        assert!(k.channel_of_pubsub(b"tidings").is_none());
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(Keys::new("a*b").meta_pattern(), "a\\*b:{*}:meta");
    }
}
