//! Channel names: 1–200 bytes from `[A-Za-z0-9_.:@/=-]`.
//!
//! The part before the first `:` is the channel's namespace (`chat:lobby` is in `chat`); a name
//! without `:` is in the default namespace `""`. Validation names the first bad byte so that a
//! 400 can say exactly what to fix.

use std::fmt;
use std::sync::Arc;

/// The longest channel name accepted, in bytes.
pub const MAX_CHANNEL_LEN: usize = 200;

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("channel name is empty; use 1-200 characters from [A-Za-z0-9_.:@/=-]")]
    Empty,
    #[error("channel name is {0} bytes long; the limit is 200")]
    TooLong(usize),
    #[error("channel name has {found:?} at byte {index}; only [A-Za-z0-9_.:@/=-] are allowed")]
    BadChar { index: usize, found: char },
}

/// True when `b` may appear in a channel name.
pub fn is_channel_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'@' | b'/' | b'=' | b'-')
}

/// Checks a channel name without allocating.
pub fn validate(name: &str) -> Result<(), ChannelError> {
    if name.is_empty() {
        return Err(ChannelError::Empty);
    }
    if name.len() > MAX_CHANNEL_LEN {
        return Err(ChannelError::TooLong(name.len()));
    }
    if let Some(index) = name.bytes().position(|b| !is_channel_byte(b)) {
        let found = name[index..].chars().next().unwrap_or('?');
        return Err(ChannelError::BadChar { index, found });
    }
    Ok(())
}

/// A validated channel name, cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

impl ChannelName {
    /// Validates `name` and wraps it.
    pub fn new(name: &str) -> Result<Self, ChannelError> {
        validate(name)?;
        Ok(ChannelName(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace: the part before the first `:`, or `""` when there is none.
    pub fn namespace(&self) -> &str {
        namespace_of(&self.0)
    }
}

/// The namespace of a (valid) channel name.
pub fn namespace_of(name: &str) -> &str {
    name.split_once(':').map(|(ns, _)| ns).unwrap_or("")
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for ChannelName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_allowed_character() {
        assert!(validate("chat:lobby").is_ok());
        assert!(validate("a_b.c:d@e/f=g-h0Z").is_ok());
        assert!(validate(&"x".repeat(200)).is_ok());
    }

    #[test]
    fn names_the_bad_character() {
        assert_eq!(validate(""), Err(ChannelError::Empty));
        assert_eq!(validate(&"x".repeat(201)), Err(ChannelError::TooLong(201)));
        assert_eq!(
            validate("chat lobby"),
            Err(ChannelError::BadChar {
                index: 4,
                found: ' '
            })
        );
        assert_eq!(
            validate("caf\u{e9}"),
            Err(ChannelError::BadChar {
                index: 3,
                found: '\u{e9}'
            })
        );
    }

    #[test]
    fn namespace_is_the_part_before_the_first_colon() {
        assert_eq!(ChannelName::new("chat:a:b").unwrap().namespace(), "chat");
        assert_eq!(ChannelName::new("plain").unwrap().namespace(), "");
    }
}
