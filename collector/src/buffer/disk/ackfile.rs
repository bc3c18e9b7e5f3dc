//! The ack file: the position of the first entry not yet fully delivered. With several outputs,
//! `ack` holds the position all of them have passed (below it, segments are deleted) and
//! `ack.<output>` each output's own.
//!
//! The file has a fixed size, allocated when the buffer opens, and is overwritten in place: saving
//! a position never needs a new block, so it still works on a full disk (which is when freeing
//! delivered segments matters most). It holds two slots, written in turn; each carries a
//! generation and a checksum, and the valid slot with the higher generation is the position. A
//! torn write spoils only the slot being written, so a crash leaves this position or the one
//! before it: lines are sent again, never skipped. Beside the position, a slot holds the output's
//! [`Tally`] (lines delivered and dead-lettered before it), so the ledger resumes exactly where the
//! position does. The older forms (a slot without a tally; `"<segment> <offset>\n"`, replaced by
//! rename) are still read, and rewritten in the new form.

use crate::buffer::entry::Pos;
use crate::buffer::ledger::{Tally, TALLY_BYTES};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Size of the ack file: room for two slots, each in its own 512-byte sector.
pub const ACK_FILE_BYTES: u64 = 4096;
const SLOT_SPACING: u64 = 512;
/// A slot: magic, generation, segment, offset, tally, checksum.
const SLOT_LEN: usize = 28 + TALLY_BYTES + 4;
const SLOT_MAGIC: u32 = 0xED6E_ACC1;
/// The older slot, without a tally.
const OLD_SLOT_LEN: usize = 32;
const OLD_SLOT_MAGIC: u32 = 0xED6E_ACC0;
/// The file of the position every output has passed; each output's own is `ack.<output>`.
const COMMON_NAME: &str = "ack";

/// The open ack file.
pub struct AckFile {
    path: PathBuf,
    file: File,
    /// The generation of the last slot written.
    generation: Mutex<u64>,
    /// The position found on open.
    found: Found,
    /// The tally saved with it.
    tally: Tally,
}

/// What opening the ack file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No position saved yet.
    Nothing,
    Position(Pos),
    /// A file whose content is no position; everything is sent again.
    Unreadable,
}

impl AckFile {
    /// Opens `dir/ack`, the position every output has passed.
    pub fn open(dir: &Path) -> std::io::Result<AckFile> {
        Self::open_named(dir, COMMON_NAME)
    }

    /// Opens `dir/ack.<output>`, one output's own position.
    pub fn open_lane(dir: &Path, output: &str) -> std::io::Result<AckFile> {
        Self::open_named(dir, &format!("{COMMON_NAME}.{output}"))
    }

    /// Opens `dir/<name>`, reads the position in it and makes sure its room is allocated.
    fn open_named(dir: &Path, name: &str) -> std::io::Result<AckFile> {
        let path = dir.join(name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let len = file.metadata()?.len();
        let mut content = vec![0u8; len.min(ACK_FILE_BYTES) as usize];
        file.read_exact_at(&mut content, 0)?;
        let (found, generation, tally) = parse(&content);
        if len != ACK_FILE_BYTES || matches!(found, Found::Position(_)) && generation == 0 {
            // New, or in the older form: write the whole file, so its blocks are allocated.
            let mut fresh = vec![0u8; ACK_FILE_BYTES as usize];
            if let Found::Position(pos) = found {
                fresh[..SLOT_LEN].copy_from_slice(&slot(1, pos, &tally));
            }
            file.write_all_at(&fresh, 0)?;
            file.set_len(ACK_FILE_BYTES)?;
            file.flush()?;
            file.sync_all()?;
            File::open(dir)?.sync_all()?;
        }
        Ok(AckFile {
            path,
            file,
            generation: Mutex::new(generation.max(1)),
            found,
            tally,
        })
    }

    pub fn found(&self) -> Found {
        self.found
    }

    /// The tally saved with the position found on open (zero without one).
    pub fn found_tally(&self) -> Tally {
        self.tally
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves `pos` and the tally of the lines before it in the slot not holding the newest
    /// position; with `sync`, synced, so that after a power loss the position is this one or a
    /// later one.
    pub fn save(&self, pos: Pos, tally: &Tally, sync: bool) -> std::io::Result<()> {
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let next = *generation + 1;
        self.file
            .write_all_at(&slot(next, pos, tally), (next % 2) * SLOT_SPACING)?;
        if sync {
            self.file.sync_data()?;
        }
        *generation = next;
        Ok(())
    }
}

fn slot(generation: u64, pos: Pos, tally: &Tally) -> [u8; SLOT_LEN] {
    let mut s = [0u8; SLOT_LEN];
    s[..4].copy_from_slice(&SLOT_MAGIC.to_le_bytes());
    s[4..12].copy_from_slice(&generation.to_le_bytes());
    s[12..20].copy_from_slice(&pos.seg.to_le_bytes());
    s[20..28].copy_from_slice(&pos.offset.to_le_bytes());
    s[28..28 + TALLY_BYTES].copy_from_slice(&tally.to_bytes());
    let crc = crc32c::crc32c(&s[4..SLOT_LEN - 4]);
    s[SLOT_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
    s
}

/// A slot's generation, position and tally, if it is one (in either form) and intact.
fn read_slot(s: &[u8]) -> Option<(u64, Pos, Tally)> {
    let magic = u32::from_le_bytes(s.get(..4)?.try_into().ok()?);
    let len = match magic {
        SLOT_MAGIC => SLOT_LEN,
        OLD_SLOT_MAGIC => OLD_SLOT_LEN,
        _ => return None,
    };
    let s = s.get(..len)?;
    let word = |i: usize| u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(s[len - 4..].try_into().ok()?);
    if crc != crc32c::crc32c(&s[4..len - 4]) {
        return None;
    }
    let tally = match s.get(28..28 + TALLY_BYTES) {
        Some(t) if magic == SLOT_MAGIC => Tally::from_bytes(t.try_into().ok()?),
        _ => Tally::default(),
    };
    Some((
        word(4),
        Pos {
            seg: word(12),
            offset: word(20),
        },
        tally,
    ))
}

/// The position in the file's content, the generation it was saved with (0: the text form, or
/// nothing) and the tally saved with it.
fn parse(content: &[u8]) -> (Found, u64, Tally) {
    if content.iter().all(|&b| b == 0) {
        return (Found::Nothing, 0, Tally::default());
    }
    let newest = [0, SLOT_SPACING as usize]
        .iter()
        .filter_map(|&at| read_slot(content.get(at..)?))
        .max_by_key(|(generation, _, _)| *generation);
    if let Some((generation, pos, tally)) = newest {
        return (Found::Position(pos), generation, tally);
    }
    let text = String::from_utf8_lossy(content);
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(seg)), Some(Ok(offset)), None) => {
            (Found::Position(Pos { seg, offset }), 0, Tally::default())
        }
        _ => (Found::Unreadable, 0, Tally::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(seg: u64, offset: u64) -> Pos {
        Pos { seg, offset }
    }

    #[test]
    fn positions_survive_reopening_and_the_newest_wins() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = AckFile::open(dir.path()).expect("open");
        assert_eq!(a.found(), Found::Nothing);
        for i in 1..=5 {
            a.save(pos(i, i * 10), &Tally::default(), i % 2 == 0)
                .expect("save");
        }
        drop(a);
        assert_eq!(
            std::fs::metadata(dir.path().join("ack"))
                .expect("meta")
                .len(),
            ACK_FILE_BYTES
        );
        let b = AckFile::open(dir.path()).expect("reopen");
        assert_eq!(b.found(), Found::Position(pos(5, 50)));
        b.save(pos(6, 1), &Tally::default(), true).expect("save");
        drop(b);
        let c = AckFile::open(dir.path()).expect("reopen");
        assert_eq!(c.found(), Found::Position(pos(6, 1)));
    }

    #[test]
    fn a_torn_slot_leaves_the_position_before_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = AckFile::open(dir.path()).expect("open");
        a.save(pos(3, 100), &Tally::default(), true).expect("save");
        a.save(pos(4, 200), &Tally::default(), true).expect("save");
        drop(a);
        // Damage the newest slot (generation 3 is in slot 1).
        let path = dir.path().join("ack");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[SLOT_SPACING as usize + 14] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        let b = AckFile::open(dir.path()).expect("reopen");
        assert_eq!(b.found(), Found::Position(pos(3, 100)));
    }

    #[test]
    fn the_older_text_form_is_read_and_rewritten() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("ack"), "7 4096\n").expect("write");
        let a = AckFile::open(dir.path()).expect("open");
        assert_eq!(a.found(), Found::Position(pos(7, 4096)));
        drop(a);
        let b = AckFile::open(dir.path()).expect("reopen");
        assert_eq!(b.found(), Found::Position(pos(7, 4096)));
        assert_eq!(
            std::fs::metadata(dir.path().join("ack"))
                .expect("meta")
                .len(),
            ACK_FILE_BYTES
        );
    }

    #[test]
    fn garbage_is_unreadable_not_a_position() {
        let dir = tempfile::tempdir().expect("tmp");
        for garbage in ["hello", "1 2 3", "-1 5", "\u{1}\u{2}"] {
            std::fs::write(dir.path().join("ack"), garbage).expect("write");
            let a = AckFile::open(dir.path()).expect("open");
            assert_eq!(a.found(), Found::Unreadable, "{garbage:?}");
        }
    }

    #[test]
    fn the_tally_is_saved_with_the_position_and_older_slots_still_read() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = AckFile::open(dir.path()).expect("open");
        let t = Tally {
            delivered: 41,
            dead: [1, 0, 7, 0],
        };
        a.save(pos(2, 20), &t, true).expect("save");
        drop(a);
        let b = AckFile::open(dir.path()).expect("reopen");
        assert_eq!(b.found(), Found::Position(pos(2, 20)));
        assert_eq!(b.found_tally(), t);
        drop(b);
        // A slot in the form without a tally.
        let mut old = [0u8; OLD_SLOT_LEN];
        old[..4].copy_from_slice(&OLD_SLOT_MAGIC.to_le_bytes());
        old[4..12].copy_from_slice(&9u64.to_le_bytes());
        old[12..20].copy_from_slice(&5u64.to_le_bytes());
        old[20..28].copy_from_slice(&50u64.to_le_bytes());
        let crc = crc32c::crc32c(&old[4..28]);
        old[28..].copy_from_slice(&crc.to_le_bytes());
        let mut content = vec![0u8; ACK_FILE_BYTES as usize];
        content[..OLD_SLOT_LEN].copy_from_slice(&old);
        std::fs::write(dir.path().join("ack"), content).expect("write");
        let c = AckFile::open(dir.path()).expect("open old");
        assert_eq!(c.found(), Found::Position(pos(5, 50)));
        assert_eq!(c.found_tally(), Tally::default());
    }
}
