//! Per-subscriber sequence accounting: loss, duplicates and reordering.
//!
//! A subscriber of one channel should see 1, 2, 3, … exactly once each. The tracker keeps the
//! contiguous prefix (`next`: everything below it arrived) and a small set of numbers that
//! arrived ahead of a gap. A number below `next` or already in the set is a duplicate; a number
//! below the highest seen is reordered. The set is bounded: past [`AHEAD_LIMIT`] entries the
//! oldest gap is written off as lost (a late arrival of it then counts as a duplicate), so a
//! subscriber that lost one message early does not grow without bound.

use std::collections::BTreeSet;

/// Out-of-order numbers held before the oldest gap is written off.
pub const AHEAD_LIMIT: usize = 4096;

/// Whether a number was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    New,
    Duplicate,
}

/// The sequence state of one subscriber.
#[derive(Debug, Clone)]
pub struct Tracker {
    next: u64,
    ahead: BTreeSet<u64>,
    max_seen: u64,
    written_off: u64,
    /// Numbers received more than once.
    pub duplicates: u64,
    /// Numbers received after a higher one.
    pub reordered: u64,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            next: 1,
            ahead: BTreeSet::new(),
            max_seen: 0,
            written_off: 0,
            duplicates: 0,
            reordered: 0,
        }
    }
}

impl Tracker {
    /// Records one received sequence number.
    pub fn record(&mut self, seq: u64) -> Outcome {
        if seq < self.next || (seq > self.next && self.ahead.contains(&seq)) {
            self.duplicates += 1;
            return Outcome::Duplicate;
        }
        if seq < self.max_seen {
            self.reordered += 1;
        }
        self.max_seen = self.max_seen.max(seq);
        if seq == self.next {
            self.next += 1;
            while self.ahead.remove(&self.next) {
                self.next += 1;
            }
        } else {
            self.ahead.insert(seq);
            if self.ahead.len() > AHEAD_LIMIT {
                if let Some(first) = self.ahead.pop_first() {
                    self.written_off += first - self.next;
                    self.next = first + 1;
                    while self.ahead.remove(&self.next) {
                        self.next += 1;
                    }
                }
            }
        }
        Outcome::New
    }

    /// Every number below this one has arrived (or was written off).
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Distinct numbers received.
    pub fn distinct(&self) -> u64 {
        (self.next - 1 - self.written_off) + self.ahead.len() as u64
    }

    /// Numbers in `1..=last` that never arrived.
    pub fn lost(&self, last: u64) -> u64 {
        let beyond = self.ahead.range(last + 1..).count() as u64;
        let within = self.distinct() - beyond;
        let within = within.min(last); // numbers past `last` cannot be ours
        last - within
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(seqs: &[u64]) -> Tracker {
        let mut t = Tracker::default();
        for &s in seqs {
            t.record(s);
        }
        t
    }

    #[test]
    fn in_order_delivery_is_clean() {
        let t = feed(&[1, 2, 3, 4]);
        assert_eq!(
            (t.next(), t.lost(4), t.duplicates, t.reordered),
            (5, 0, 0, 0)
        );
    }

    #[test]
    fn a_gap_is_loss() {
        let t = feed(&[1, 2, 4, 5]);
        assert_eq!((t.next(), t.lost(5), t.reordered), (3, 1, 0));
        assert_eq!(t.lost(7), 3, "6 and 7 never came either");
    }

    #[test]
    fn a_late_arrival_is_reordering_not_loss() {
        let t = feed(&[1, 3, 2, 4]);
        assert_eq!(
            (t.next(), t.lost(4), t.reordered, t.duplicates),
            (5, 0, 1, 0)
        );
    }

    #[test]
    fn repeats_are_duplicates() {
        let t = feed(&[1, 2, 2, 4, 4, 1]);
        assert_eq!((t.duplicates, t.lost(4)), (3, 1));
    }

    #[test]
    fn the_ahead_set_stays_bounded() {
        let mut t = Tracker::default();
        t.record(1);
        for s in 3..(AHEAD_LIMIT as u64 + 10) {
            t.record(s);
        }
        assert!(t.ahead.len() <= AHEAD_LIMIT);
        assert_eq!(t.lost(AHEAD_LIMIT as u64 + 9), 1, "only 2 is missing");
    }
}
