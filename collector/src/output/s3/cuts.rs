//! Where objects end, remembered across restarts.
//!
//! Before an object is stored, its first and end positions are added to `s3.cuts` in the disk
//! buffer's directory (written to a new file, synced, renamed over the old one). After a restart
//! the output reads again from its saved position, which is always where an object starts; each
//! object that starts at a remembered position ends where it ended before, so it gets the same
//! name and overwrites the object already stored instead of adding a second copy of its lines.
//! Cuts below the output's saved position are forgotten. With a memory buffer nothing is kept
//! (nothing is sent again after a restart).

use crate::buffer::Pos;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const FILE_NAME: &str = "s3.cuts";
/// The newest cuts are kept even below the saved position: a position saved without a sync can
/// be lost with the machine's power, and the objects after the older one must still be cut alike.
const ALWAYS_KEPT: usize = 256;

pub struct Cuts {
    path: Option<PathBuf>,
    known: BTreeMap<Pos, Pos>,
}

impl Cuts {
    /// The cuts kept in `dir`; none without one. Lines that are not cuts are skipped (logged).
    pub fn load(dir: Option<&Path>) -> Cuts {
        let path = dir.map(|d| d.join(FILE_NAME));
        let mut known = BTreeMap::new();
        if let Some(p) = &path {
            match std::fs::read_to_string(p) {
                Ok(text) => {
                    for line in text.lines() {
                        match parse(line) {
                            Some((a, b)) if a < b => {
                                known.insert(a, b);
                            }
                            _ => tracing::warn!(
                                file = %p.display(),
                                line,
                                "s3: skipped a line that is not an object's positions"
                            ),
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %p.display(), error = %e, "s3: cannot read where objects ended; objects after a restart may be cut differently")
                }
            }
        }
        Cuts { path, known }
    }

    /// Where the object starting at `start` ended before, if it did.
    pub fn end_for(&self, start: Pos) -> Option<Pos> {
        self.known.get(&start).copied()
    }

    /// Remembers an object (durably, before it is stored); forgets the oldest of those ending at
    /// or before `saved` (the output's saved position) beyond the newest `ALWAYS_KEPT`.
    pub fn record(&mut self, first: Pos, end: Pos, saved: Option<Pos>) -> std::io::Result<()> {
        self.known.insert(first, end);
        if let Some(saved) = saved {
            while self.known.len() > ALWAYS_KEPT {
                match self.known.first_key_value() {
                    Some((_, e)) if *e <= saved => {
                        self.known.pop_first();
                    }
                    _ => break,
                }
            }
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut text = String::new();
        for (a, b) in &self.known {
            text.push_str(&format!("{} {} {} {}\n", a.seg, a.offset, b.seg, b.offset));
        }
        let tmp = path.with_extension("cuts.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn parse(line: &str) -> Option<(Pos, Pos)> {
    let n: Vec<u64> = line
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    match n[..] {
        [a, b, c, d] => Some((Pos { seg: a, offset: b }, Pos { seg: c, offset: d })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seg: u64, offset: u64) -> Pos {
        Pos { seg, offset }
    }

    #[test]
    fn cuts_survive_a_restart_and_old_ones_are_forgotten() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut c = Cuts::load(Some(dir.path()));
        c.record(p(1, 0), p(1, 500), None).expect("record");
        c.record(p(1, 500), p(2, 40), None).expect("record");
        drop(c);
        let mut c = Cuts::load(Some(dir.path()));
        assert_eq!(c.end_for(p(1, 0)), Some(p(1, 500)));
        assert_eq!(c.end_for(p(1, 500)), Some(p(2, 40)));
        assert_eq!(c.end_for(p(1, 1)), None);
        c.record(p(2, 40), p(3, 0), Some(p(1, 500)))
            .expect("record");
        let c2 = Cuts::load(Some(dir.path()));
        assert_eq!(c2.end_for(p(1, 0)), Some(p(1, 500)), "the newest are kept");
        for k in 3..(ALWAYS_KEPT as u64 + 10) {
            c.record(p(k, 0), p(k + 1, 0), Some(p(3, 0)))
                .expect("record");
        }
        let c = Cuts::load(Some(dir.path()));
        assert_eq!(
            c.end_for(p(1, 0)),
            None,
            "ended at the saved position: forgotten"
        );
        assert_eq!(c.end_for(p(1, 500)), None);
        assert_eq!(c.end_for(p(2, 40)), None);
        assert_eq!(
            c.end_for(p(3, 0)),
            Some(p(4, 0)),
            "beyond the saved position: kept"
        );
        assert_eq!(
            c.known.len(),
            ALWAYS_KEPT + 7,
            "none beyond the saved position forgotten"
        );
    }

    #[test]
    fn lines_that_are_not_cuts_are_skipped() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join(FILE_NAME),
            "1 0 1 9\ngarbage\n5 5 1 1\n1 2 3\n",
        )
        .expect("write");
        let c = Cuts::load(Some(dir.path()));
        assert_eq!(c.end_for(p(1, 0)), Some(p(1, 9)));
        assert_eq!(c.end_for(p(5, 5)), None, "an end before its start");
        assert_eq!(c.known.len(), 1);
    }
}
