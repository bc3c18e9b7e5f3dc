//! The disk buffer's entry format and the scanner that reads it back, damage included.
//!
//! One entry is `[magic u32][len u32][crc32c u32][arrived_ms u64][seq u64][payload]`
//! (little-endian). `seq` numbers entries in write order across segments and restarts, so the
//! entries lost in a damaged region are counted from the numbers either side of it. The checksum
//! covers the length, the arrival time, the payload and `seq`, so a torn write (a crash
//! mid-entry) or flipped bits are caught. Entries written before sequence numbers existed
//! (`LEGACY_MAGIC`, no `seq`, a 20-byte header) are still read.
//! The payload is a [`LineBatch`]'s joined form. After a bad entry the scanner resynchronises on
//! the next magic whose entry checks out, so one damaged entry costs only itself.

use crate::lines::LineBatch;
use bytes::Bytes;
#[cfg(test)]
use bytes::{BufMut, BytesMut};

/// Marks the start of every entry.
pub const MAGIC: u32 = 0xED6E_1061;
pub const HEADER_LEN: usize = 28;
/// Marks an entry of the older format: no sequence number.
pub const LEGACY_MAGIC: u32 = 0xED6E_1060;
pub const LEGACY_HEADER_LEN: usize = 20;
/// The three bytes both magics share after their first (little-endian).
const MAGIC_TAIL: [u8; 3] = [0x10, 0x6E, 0xED];

/// A header still waiting for its sequence number, which the writer assigns: the checksum of
/// the payload is computed by the caller, off the writer thread.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    len: u32,
    arrived_ms: u64,
    crc: u32,
}

impl Pending {
    pub fn new(payload: &[u8], arrived_ms: u64) -> Pending {
        let len = payload.len() as u32;
        Pending {
            len,
            arrived_ms,
            crc: legacy_checksum(len, arrived_ms, payload),
        }
    }

    /// The header of entry number `seq`.
    pub fn finish(&self, seq: u64) -> [u8; HEADER_LEN] {
        let crc = crc32c::crc32c_append(self.crc, &seq.to_le_bytes());
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&self.len.to_le_bytes());
        h[8..12].copy_from_slice(&crc.to_le_bytes());
        h[12..20].copy_from_slice(&self.arrived_ms.to_le_bytes());
        h[20..].copy_from_slice(&seq.to_le_bytes());
        h
    }
}

/// Encodes one entry.
#[cfg(test)]
pub fn encode(batch: &LineBatch, arrived_ms: u64, seq: u64) -> Bytes {
    let payload = batch.joined();
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    out.put_slice(&Pending::new(payload, arrived_ms).finish(seq));
    out.extend_from_slice(payload);
    out.freeze()
}

/// Encodes one entry in the older format (no sequence number).
#[cfg(test)]
pub fn encode_legacy(batch: &LineBatch, arrived_ms: u64) -> Bytes {
    let payload = batch.joined();
    let len = payload.len() as u32;
    let mut out = BytesMut::with_capacity(LEGACY_HEADER_LEN + payload.len());
    out.put_u32_le(LEGACY_MAGIC);
    out.put_u32_le(len);
    out.put_u32_le(legacy_checksum(len, arrived_ms, payload));
    out.put_u64_le(arrived_ms);
    out.extend_from_slice(payload);
    out.freeze()
}

/// Encoded size of an entry for `batch`.
#[cfg(test)]
pub fn encoded_len(batch: &LineBatch) -> u64 {
    (HEADER_LEN + batch.joined().len()) as u64
}

fn legacy_checksum(len: u32, arrived_ms: u64, payload: &[u8]) -> u32 {
    let c = crc32c::crc32c(&len.to_le_bytes());
    let c = crc32c::crc32c_append(c, &arrived_ms.to_le_bytes());
    crc32c::crc32c_append(c, payload)
}

/// The header length for an entry starting with `magic`, if it is one.
fn header_len(magic: u32) -> Option<usize> {
    match magic {
        MAGIC => Some(HEADER_LEN),
        LEGACY_MAGIC => Some(LEGACY_HEADER_LEN),
        _ => None,
    }
}

/// The whole length (header and payload) an entry announces in its first `HEADER_LEN` bytes
/// (fewer for a legacy entry), or `None` if they do not start an entry.
pub fn announced_len(head: &[u8]) -> Option<usize> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(head.get(i..i + 4)?.try_into().ok()?))
    };
    let hl = header_len(word(0)?)?;
    (head.len() >= hl).then_some(())?;
    Some(hl + word(4)? as usize)
}

/// What the scanner found at a position.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// A valid entry: its batch, arrival time, sequence number (none in the legacy format), and
    /// where the next entry starts.
    Entry {
        batch: LineBatch,
        arrived_ms: u64,
        seq: Option<u64>,
        next: usize,
    },
    /// Bytes `[at, resume)` are damaged; scanning goes on at `resume` (end of data if none).
    Corrupt { resume: usize },
    /// The data ends inside an entry that may still be being written.
    Incomplete,
    /// No bytes left.
    End,
}

/// Reads the entry at `at` in `data`.
pub fn scan(data: &Bytes, at: usize) -> Scan {
    match parse(data, at) {
        Parsed::Ok {
            batch,
            arrived_ms,
            seq,
            next,
        } => Scan::Entry {
            batch,
            arrived_ms,
            seq,
            next,
        },
        Parsed::End => Scan::End,
        // Short data followed by a valid entry is a damaged length, not a torn tail.
        Parsed::Short => match resync(data, at + 1) {
            resume if resume < data.len() => Scan::Corrupt { resume },
            _ => Scan::Incomplete,
        },
        Parsed::Bad => Scan::Corrupt {
            resume: resync(data, at + 1),
        },
    }
}

enum Parsed {
    Ok {
        batch: LineBatch,
        arrived_ms: u64,
        seq: Option<u64>,
        next: usize,
    },
    End,
    /// Not enough bytes for the header or the payload the header announces.
    Short,
    Bad,
}

fn parse(data: &Bytes, at: usize) -> Parsed {
    if at >= data.len() {
        return Parsed::End;
    }
    let rest = &data[at..];
    if rest.len() < 4 {
        let starts_a_magic = [MAGIC, LEGACY_MAGIC]
            .iter()
            .any(|m| m.to_le_bytes().starts_with(rest));
        return if starts_a_magic {
            Parsed::Short
        } else {
            Parsed::Bad
        };
    }
    let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
    let long = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rest[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let Some(hl) = header_len(word(0)) else {
        return Parsed::Bad;
    };
    if rest.len() < hl {
        return Parsed::Short;
    }
    let len = word(4) as usize;
    let crc = word(8);
    let arrived_ms = long(12);
    let seq = (hl == HEADER_LEN).then(|| long(20));
    if rest.len() < hl + len {
        return Parsed::Short;
    }
    let payload = &rest[hl..hl + len];
    let mut want = legacy_checksum(len as u32, arrived_ms, payload);
    if let Some(seq) = seq {
        want = crc32c::crc32c_append(want, &seq.to_le_bytes());
    }
    if want != crc {
        return Parsed::Bad;
    }
    let start = at + hl;
    match LineBatch::from_joined(data.slice(start..start + len)) {
        Some(batch) => Parsed::Ok {
            batch,
            arrived_ms,
            seq,
            next: start + len,
        },
        None => Parsed::Bad,
    }
}

/// The first position at or after `from` holding a valid entry, or the end of the data.
fn resync(data: &Bytes, from: usize) -> usize {
    // Search for the bytes both magics share; the candidate starts one byte earlier.
    let mut pos = from + 1;
    while pos < data.len() {
        match memchr::memmem::find(&data[pos..], &MAGIC_TAIL) {
            Some(i) => {
                let candidate = pos + i - 1;
                if let Parsed::Ok { .. } = parse(data, candidate) {
                    return candidate;
                }
                pos = pos + i + 1;
            }
            None => break,
        }
    }
    data.len()
}

/// Counts the entries lost to damage: the sequence numbers either side of a damaged region say
/// how many entries it held; a region with no number after it (the end of the data, or a legacy
/// entry) counts as one.
#[derive(Debug, Default, Clone)]
pub struct Damage {
    last_seq: Option<u64>,
    /// Damaged regions seen since the last valid entry.
    open: u64,
    /// Entries lost, counted so far.
    pub entries: u64,
    /// Damaged regions seen.
    pub regions: u64,
}

impl Damage {
    /// A damaged region.
    pub fn region(&mut self) {
        self.regions += 1;
        self.open += 1;
    }

    /// A valid entry; returns the entries lost just before it.
    pub fn entry(&mut self, seq: Option<u64>) -> u64 {
        let mut lost = 0;
        if self.open > 0 {
            let gap = match (self.last_seq, seq) {
                (Some(a), Some(b)) if b > a => b - a - 1,
                _ => 0,
            };
            lost = gap.max(self.open);
            self.entries += lost;
            self.open = 0;
        }
        if seq.is_some() {
            self.last_seq = seq;
        }
        lost
    }

    /// No more entries: open regions count one entry each. Returns the entries added.
    pub fn finish(&mut self) -> u64 {
        let lost = self.open;
        self.entries += lost;
        self.open = 0;
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lines: &[&str]) -> LineBatch {
        LineBatch::from_lines(lines.iter().copied())
    }

    fn file(entries: &[LineBatch]) -> BytesMut {
        let mut f = BytesMut::new();
        for (seq, e) in entries.iter().enumerate() {
            f.extend_from_slice(&encode(e, 7, seq as u64));
        }
        f
    }

    fn read_all(data: Bytes) -> (Vec<LineBatch>, usize, bool) {
        let (mut out, mut corrupt, mut at) = (Vec::new(), 0, 0);
        loop {
            match scan(&data, at) {
                Scan::Entry {
                    batch,
                    arrived_ms,
                    next,
                    ..
                } => {
                    assert_eq!(arrived_ms, 7);
                    out.push(batch);
                    at = next;
                }
                Scan::Corrupt { resume } => {
                    corrupt += 1;
                    at = resume;
                }
                Scan::Incomplete => return (out, corrupt, true),
                Scan::End => return (out, corrupt, false),
            }
        }
    }

    #[test]
    fn round_trip() {
        let entries = vec![
            batch(&["a", "bb"]),
            batch(&["{\"x\":1}"]),
            batch(&["\u{fffd}z"]),
        ];
        let (read, corrupt, torn) = read_all(file(&entries).freeze());
        assert_eq!(read, entries);
        assert_eq!((corrupt, torn), (0, false));
        assert_eq!(encoded_len(&entries[0]), 28 + 4);
    }

    #[test]
    fn a_torn_tail_is_incomplete_and_everything_before_it_survives() {
        let entries = vec![batch(&["one"]), batch(&["two", "three"])];
        let full = file(&entries);
        for cut in 1..encode(&entries[1], 7, 1).len() {
            let data = Bytes::copy_from_slice(&full[..full.len() - cut]);
            let (read, corrupt, torn) = read_all(data);
            assert_eq!(read, vec![entries[0].clone()], "cut {cut}");
            assert_eq!(corrupt, 0);
            assert!(torn, "cut {cut}");
        }
    }

    #[test]
    fn a_damaged_entry_is_skipped_and_the_next_found() {
        let entries = vec![
            batch(&["first"]),
            batch(&["second line"]),
            batch(&["third"]),
        ];
        let mut data = file(&entries);
        let second_payload = encode(&entries[0], 7, 0).len() + HEADER_LEN + 2;
        data[second_payload] ^= 0x55; // flip bits inside the second entry's payload
        let (read, corrupt, _) = read_all(data.clone().freeze());
        assert_eq!(read, vec![entries[0].clone(), entries[2].clone()]);
        assert_eq!(corrupt, 1);
        // A damaged length field is caught the same way.
        let mut data = file(&entries);
        let second_len = encode(&entries[0], 7, 0).len() + 4;
        data[second_len] = 0xff;
        let (read, corrupt, _) = read_all(data.freeze());
        assert_eq!(read, vec![entries[0].clone(), entries[2].clone()]);
        assert_eq!(corrupt, 1);
    }

    #[test]
    fn garbage_between_entries_is_one_corrupt_region() {
        let entries = vec![batch(&["a"]), batch(&["b"])];
        let mut data = BytesMut::new();
        data.extend_from_slice(&encode(&entries[0], 7, 0));
        data.extend_from_slice(b"garbage garbage");
        data.extend_from_slice(&encode(&entries[1], 7, 1));
        let (read, corrupt, torn) = read_all(data.freeze());
        assert_eq!(read, entries);
        assert_eq!((corrupt, torn), (1, false));
    }

    #[test]
    fn legacy_entries_are_read_and_mixed_with_new_ones() {
        let entries = vec![batch(&["old"]), batch(&["new", "x"]), batch(&["old2"])];
        let mut data = BytesMut::new();
        data.extend_from_slice(&encode_legacy(&entries[0], 7));
        data.extend_from_slice(&encode(&entries[1], 7, 5));
        data.extend_from_slice(b"junk");
        data.extend_from_slice(&encode_legacy(&entries[2], 7));
        let data = data.freeze();
        let (read, corrupt, torn) = read_all(data.clone());
        assert_eq!(read, entries);
        assert_eq!((corrupt, torn), (1, false));
        match scan(&data, 0) {
            Scan::Entry { seq, next, .. } => {
                assert_eq!(seq, None);
                assert_eq!(announced_len(&data[..HEADER_LEN]), Some(next));
                assert!(matches!(
                    scan(&data, next),
                    Scan::Entry { seq: Some(5), .. }
                ));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(announced_len(b"not an entry at all, no magic"), None);
    }

    #[test]
    fn damage_is_counted_in_entries_from_the_numbers_either_side() {
        let entries: Vec<LineBatch> = (0..20).map(|i| batch(&[&format!("line {i:02}")])).collect();
        let mut data = file(&entries);
        let one = encode(&entries[0], 7, 0).len();
        // Zero entries 3 to 7 whole (no magic left), and part of entry 12.
        data[3 * one..8 * one].fill(0);
        data[12 * one + 5] ^= 0xff;
        // Cut the last entry short: a torn tail.
        let data = data.freeze().slice(..20 * one - 3);
        let mut damage = Damage::default();
        let (mut at, mut valid) = (0, 0);
        loop {
            match scan(&data, at) {
                Scan::Entry { seq, next, .. } => {
                    valid += 1;
                    damage.entry(seq);
                    at = next;
                }
                Scan::Corrupt { resume } => {
                    damage.region();
                    at = resume;
                }
                Scan::Incomplete => {
                    damage.region();
                    break;
                }
                Scan::End => break,
            }
        }
        damage.finish();
        assert_eq!(valid, 20 - 5 - 1 - 1);
        assert_eq!(damage.regions, 3);
        assert_eq!(damage.entries, 5 + 1 + 1);
    }
}
