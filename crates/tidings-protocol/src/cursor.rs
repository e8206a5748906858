//! Positions, epochs and cursors.
//!
//! A channel is an ordered log: every message gets the next offset (1, 2, 3, … with no gaps)
//! in the channel's current epoch, a random 48-bit token that changes whenever the log's past
//! is lost. A [`Position`] is `(epoch, offset)`; offset 0 means "nothing seen yet".
//!
//! A cursor names, for each channel of a subscription, the last position seen. Its text form
//! is `channel~epoch~offset` entries joined by `,`, for example
//! `chat:lobby~0a1b2c3d4e5f~42,news~00000000beef~7`. `~` and `,` can never appear in a channel
//! name, so the form is unambiguous, and every character is URL-safe and valid in an SSE `id`.

use std::fmt::{self, Write as _};

use crate::channel::{self, ChannelName};

/// A channel log's epoch: a random token, 48 bits, written as 12 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The mask that keeps an epoch within 48 bits.
    pub const MASK: u64 = (1 << 48) - 1;

    /// Builds an epoch from random bits, keeping the low 48.
    pub fn from_random(bits: u64) -> Self {
        Epoch(bits & Self::MASK)
    }

    /// Parses the 12-hex-digit text form.
    pub fn parse(text: &str) -> Option<Epoch> {
        if text.len() != 12 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Epoch)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}", self.0)
    }
}

/// A place in one channel's log: the last offset seen in an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Position {
    pub epoch: Epoch,
    pub offset: u64,
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("cursor is empty; omit `since` to start from now")]
    Empty,
    #[error("cursor entry {0} is not `channel~epoch~offset`; pass back a cursor exactly as the server gave it")]
    Shape(usize),
    #[error("cursor entry {0} has a bad channel name: {1}")]
    Channel(usize, channel::ChannelError),
    #[error("cursor entry {0} has a bad epoch; epochs are 12 hex digits")]
    Epoch(usize),
    #[error("cursor entry {0} has a bad offset; offsets are decimal integers")]
    Offset(usize),
    #[error("cursor names channel {0:?} twice")]
    Duplicate(String),
    #[error("cursor is {0} bytes long; the limit is 8192")]
    TooLong(usize),
}

/// The longest cursor text accepted.
pub const MAX_CURSOR_LEN: usize = 8192;

/// The positions a subscription has seen, one per channel, in subscription order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    entries: Vec<(ChannelName, Position)>,
}

impl Cursor {
    /// An empty cursor.
    pub fn new() -> Self {
        Cursor::default()
    }

    /// Parses the text form. Refuses duplicates and anything malformed.
    pub fn parse(text: &str) -> Result<Cursor, CursorError> {
        if text.is_empty() {
            return Err(CursorError::Empty);
        }
        if text.len() > MAX_CURSOR_LEN {
            return Err(CursorError::TooLong(text.len()));
        }
        let mut cursor = Cursor::new();
        for (i, entry) in text.split(',').enumerate() {
            let (name, pos) = split_entry(i, entry)?;
            let name = ChannelName::new(name).map_err(|e| CursorError::Channel(i, e))?;
            if cursor.get(&name).is_some() {
                return Err(CursorError::Duplicate(name.to_string()));
            }
            cursor.entries.push((name, pos));
        }
        Ok(cursor)
    }

    /// The position recorded for `channel`.
    pub fn get(&self, channel: &str) -> Option<Position> {
        self.entries
            .iter()
            .find(|(c, _)| c.as_str() == channel)
            .map(|(_, p)| *p)
    }

    /// Records `pos` for `channel`, replacing an earlier entry or appending a new one.
    pub fn set(&mut self, channel: &ChannelName, pos: Position) {
        match self.entries.iter_mut().find(|(c, _)| c == channel) {
            Some((_, p)) => *p = pos,
            None => self.entries.push((channel.clone(), pos)),
        }
    }

    /// The entries in order.
    pub fn entries(&self) -> &[(ChannelName, Position)] {
        &self.entries
    }

    /// True when no channel is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends the text form to `out`.
    pub fn write_to(&self, out: &mut String) {
        for (i, (name, pos)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_entry(out, name, *pos);
        }
    }
}

/// Splits entry `i`, `channel~epoch~offset`, into its channel text (not yet validated) and its
/// position.
fn split_entry(i: usize, entry: &str) -> Result<(&str, Position), CursorError> {
    let mut parts = entry.split('~');
    let (Some(name), Some(epoch), Some(offset), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(CursorError::Shape(i));
    };
    let epoch = Epoch::parse(epoch).ok_or(CursorError::Epoch(i))?;
    if offset.is_empty() || offset.len() > 20 || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CursorError::Offset(i));
    }
    let offset: u64 = offset.parse().map_err(|_| CursorError::Offset(i))?;
    Ok((name, Position { epoch, offset }))
}

/// True when `text` is exactly the one entry `channel~epoch~offset` at `pos`, as a
/// single-channel answer carries it. Allocates nothing (a long poll checks this per request).
pub fn is_entry(text: &str, channel: &str, pos: Position) -> bool {
    split_entry(0, text).is_ok_and(|(name, p)| name == channel && p == pos)
}

/// Appends one `channel~epoch~offset` entry.
pub fn write_entry(out: &mut String, channel: &str, pos: Position) {
    let _ = write!(out, "{channel}~{}~{}", pos.epoch, pos.offset);
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn is_entry_matches_exactly_one_entry() {
        let p = pos(0xabc, 7);
        assert!(is_entry("a:b~000000000abc~7", "a:b", p));
        for other in [
            "a:b~000000000abc~8",
            "a:c~000000000abc~7",
            "a:b~000000000abd~7",
            "a:b~abc~7",
            "a:b~000000000abc~+7",
            "a:b~000000000abc~7,c~000000000abc~7",
            "a:b~000000000abc~7~1",
            "a:b~000000000abc~",
            "",
        ] {
            assert!(!is_entry(other, "a:b", p), "{other:?}");
        }
    }

    fn pos(e: u64, o: u64) -> Position {
        Position {
            epoch: Epoch(e),
            offset: o,
        }
    }

    #[test]
    fn text_form_is_exact() {
        let mut c = Cursor::new();
        c.set(
            &ChannelName::new("chat:lobby").unwrap(),
            pos(0x0a1b2c3d4e5f, 42),
        );
        c.set(&ChannelName::new("news").unwrap(), pos(0xbeef, 7));
        assert_eq!(
            c.to_string(),
            "chat:lobby~0a1b2c3d4e5f~42,news~00000000beef~7"
        );
    }

    #[test]
    fn rejects_malformed_cursors() {
        assert_eq!(Cursor::parse(""), Err(CursorError::Empty));
        assert_eq!(Cursor::parse("abc"), Err(CursorError::Shape(0)));
        assert_eq!(
            Cursor::parse("a~000000000001~1~2"),
            Err(CursorError::Shape(0))
        );
        assert_eq!(Cursor::parse("a~xyz~1"), Err(CursorError::Epoch(0)));
        assert_eq!(
            Cursor::parse("a~000000000001~-1"),
            Err(CursorError::Offset(0))
        );
        assert_eq!(
            Cursor::parse("a~000000000001~99999999999999999999"),
            Err(CursorError::Offset(0))
        );
        assert!(matches!(
            Cursor::parse("a b~000000000001~1"),
            Err(CursorError::Channel(0, _))
        ));
        assert_eq!(
            Cursor::parse("a~000000000001~1,a~000000000001~2"),
            Err(CursorError::Duplicate("a".into()))
        );
    }

    #[test]
    fn set_replaces_in_place() {
        let mut c = Cursor::parse("a~000000000001~1,b~000000000002~5").unwrap();
        c.set(&ChannelName::new("a").unwrap(), pos(1, 9));
        assert_eq!(c.to_string(), "a~000000000001~9,b~000000000002~5");
    }

    proptest! {
        #[test]
        fn round_trips(entries in proptest::collection::btree_map(
            "[A-Za-z0-9_.:@/=-]{1,20}", (0u64..(1u64 << 48), any::<u64>()), 1..6)) {
            let mut c = Cursor::new();
            for (name, (e, o)) in &entries {
                c.set(&ChannelName::new(name).unwrap(), pos(*e, *o));
            }
            let text = c.to_string();
            prop_assert_eq!(Cursor::parse(&text).unwrap(), c);
        }

        #[test]
        fn never_panics_on_garbage(text in ".{0,64}") {
            let _ = Cursor::parse(&text);
        }
    }
}
