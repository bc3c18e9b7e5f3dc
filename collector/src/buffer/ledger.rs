//! The ledger: where every line an output was given is, as one equation per output.
//!
//! For each output, `received = delivered + dead_lettered (by reason) + buffered`, exactly, at
//! any moment it is read. A line is received when the buffer stores it (or, after a restart, when
//! the buffer finds it waiting), and it leaves `buffered` for `delivered` or `dead_lettered` when
//! the output acknowledges its entry: both sides move under one lock, so no reader sees a line in
//! two places or in none.
//!
//! Across restarts, the disk buffer saves each output's [`Tally`] (the lines delivered and
//! dead-lettered below its saved position) in the same slot of the ack file as the position
//! itself. A restart therefore resumes the counts exactly where the position resumes: lines sent
//! after the last saved position are sent again and counted once, when they are acknowledged
//! again. Lines refused at ingest never enter the buffer; they are counted beside the ledger.

use serde::Serialize;
use std::sync::Mutex;

/// The reasons a line is dead-lettered, in the order tallies keep them.
pub const DEAD_REASONS: [&str; 4] = [
    "line_too_long",
    "record_too_large",
    "retries_exhausted",
    "other",
];

/// Lines acknowledged by an output: delivered, and dead-lettered by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub delivered: u64,
    /// Indexed like [`DEAD_REASONS`].
    pub dead: [u64; DEAD_REASONS.len()],
}

/// Bytes a [`Tally`] takes in the ack file.
pub const TALLY_BYTES: usize = 8 * (1 + DEAD_REASONS.len());

impl Tally {
    /// The index of `reason` in [`DEAD_REASONS`] (`other` for a reason not listed).
    pub fn reason_index(reason: &str) -> usize {
        DEAD_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(DEAD_REASONS.len() - 1)
    }

    pub fn dead_lettered(&self) -> u64 {
        self.dead.iter().sum()
    }

    /// Every line the tally covers.
    pub fn lines(&self) -> u64 {
        self.delivered + self.dead_lettered()
    }

    pub fn add(&mut self, other: &Tally) {
        self.delivered += other.delivered;
        for (a, b) in self.dead.iter_mut().zip(other.dead) {
            *a += b;
        }
    }

    pub fn to_bytes(self) -> [u8; TALLY_BYTES] {
        let mut out = [0u8; TALLY_BYTES];
        for (i, v) in std::iter::once(self.delivered).chain(self.dead).enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(b: &[u8; TALLY_BYTES]) -> Tally {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let mut t = Tally {
            delivered: word(0),
            ..Tally::default()
        };
        for (i, d) in t.dead.iter_mut().enumerate() {
            *d = word(i + 1);
        }
        t
    }
}

/// One output's numbers at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub received: u64,
    pub settled: Tally,
    pub buffered: u64,
}

impl Counts {
    /// Whether `received = delivered + dead_lettered + buffered`.
    pub fn balances(&self) -> bool {
        self.received == self.settled.lines() + self.buffered
    }
}

/// Every output's counts, kept by the buffer.
#[derive(Debug, Default)]
pub struct Ledger {
    lanes: Vec<Mutex<Counts>>,
}

impl Ledger {
    /// A ledger for outputs that start with `tally` acknowledged before their position and
    /// `buffered` lines waiting after it.
    pub fn new(starts: impl IntoIterator<Item = (Tally, u64)>) -> Ledger {
        Ledger {
            lanes: starts
                .into_iter()
                .map(|(settled, buffered)| {
                    Mutex::new(Counts {
                        received: settled.lines() + buffered,
                        settled,
                        buffered,
                    })
                })
                .collect(),
        }
    }

    /// A ledger for `n` outputs starting from nothing.
    pub fn empty(n: usize) -> Ledger {
        Self::new((0..n).map(|_| (Tally::default(), 0)))
    }

    /// `lines` were stored for every output.
    pub fn received(&self, lines: u64) {
        for l in &self.lanes {
            let mut c = lock(l);
            c.received += lines;
            c.buffered += lines;
        }
    }

    /// Output `lane` acknowledged an entry whose lines went as `tally` says.
    pub fn settled(&self, lane: usize, tally: &Tally) {
        if let Some(l) = self.lanes.get(lane) {
            let mut c = lock(l);
            c.settled.add(tally);
            c.buffered = c.buffered.saturating_sub(tally.lines());
        }
    }

    /// Output `lane`'s numbers now.
    pub fn counts(&self, lane: usize) -> Counts {
        self.lanes.get(lane).map(|l| *lock(l)).unwrap_or_default()
    }
}

fn lock(m: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_move_from_buffered_to_settled_and_the_equation_holds() {
        let l = Ledger::new([(Tally::default(), 0), (Tally::default(), 5)]);
        l.received(10);
        let mut t = Tally {
            delivered: 7,
            ..Tally::default()
        };
        t.dead[Tally::reason_index("retries_exhausted")] = 2;
        t.dead[Tally::reason_index("not a reason")] = 1;
        l.settled(0, &t);
        let c = l.counts(0);
        assert_eq!((c.received, c.buffered, c.settled.lines()), (10, 0, 10));
        assert_eq!(c.settled.dead, [0, 0, 2, 1]);
        assert!(c.balances());
        let c = l.counts(1);
        assert_eq!((c.received, c.buffered), (15, 15));
        assert!(c.balances());
    }

    #[test]
    fn a_tally_survives_its_bytes() {
        let t = Tally {
            delivered: u64::MAX - 3,
            dead: [1, 2, 3, 1 << 40],
        };
        assert_eq!(Tally::from_bytes(&t.to_bytes()), t);
    }
}
