//! The disk buffer's entry format and the scanner that reads it back, damage included.
//!
//! One entry is `[magic u32][len u32][crc32c u32][arrived_ms u64][payload]` (little-endian); the
//! checksum covers the length, the arrival time and the payload, so a torn write (a crash
//! mid-entry) or flipped bits are caught.
//! The payload is a [`LineBatch`]'s joined form. After a bad entry the scanner resynchronises on
//! the next magic whose entry checks out, so one damaged entry costs only itself.

use crate::lines::LineBatch;
use bytes::{BufMut, Bytes, BytesMut};

/// Marks the start of every entry.
pub const MAGIC: u32 = 0xED6E_1060;
pub const HEADER_LEN: usize = 20;

/// The header of an entry holding `payload`, which arrived at `arrived_ms` (Unix milliseconds).
pub fn header(payload: &[u8], arrived_ms: u64) -> [u8; HEADER_LEN] {
    let len = payload.len() as u32;
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h[8..12].copy_from_slice(&checksum(len, arrived_ms, payload).to_le_bytes());
    h[12..].copy_from_slice(&arrived_ms.to_le_bytes());
    h
}

/// Encodes one entry.
pub fn encode(batch: &LineBatch, arrived_ms: u64) -> Bytes {
    let payload = batch.joined();
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    out.put_slice(&header(payload, arrived_ms));
    out.extend_from_slice(payload);
    out.freeze()
}

/// Encoded size of an entry for `batch`.
pub fn encoded_len(batch: &LineBatch) -> u64 {
    (HEADER_LEN + batch.joined().len()) as u64
}

fn checksum(len: u32, arrived_ms: u64, payload: &[u8]) -> u32 {
    let c = crc32c::crc32c(&len.to_le_bytes());
    let c = crc32c::crc32c_append(c, &arrived_ms.to_le_bytes());
    crc32c::crc32c_append(c, payload)
}

/// What the scanner found at a position.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// A valid entry: its batch, arrival time, and where the next entry starts.
    Entry {
        batch: LineBatch,
        arrived_ms: u64,
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
        Parsed::Ok(batch, arrived_ms, next) => Scan::Entry {
            batch,
            arrived_ms,
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
    Ok(LineBatch, u64, usize),
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
    if rest.len() < HEADER_LEN {
        return if MAGIC.to_le_bytes().starts_with(&rest[..rest.len().min(4)]) {
            Parsed::Short
        } else {
            Parsed::Bad
        };
    }
    let word = |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
    if word(0) != MAGIC {
        return Parsed::Bad;
    }
    let len = word(4) as usize;
    let crc = word(8);
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&rest[12..20]);
    let arrived_ms = u64::from_le_bytes(ts);
    if rest.len() < HEADER_LEN + len {
        return Parsed::Short;
    }
    let payload = &rest[HEADER_LEN..HEADER_LEN + len];
    if checksum(len as u32, arrived_ms, payload) != crc {
        return Parsed::Bad;
    }
    let start = at + HEADER_LEN;
    match LineBatch::from_joined(data.slice(start..start + len)) {
        Some(batch) => Parsed::Ok(batch, arrived_ms, start + len),
        None => Parsed::Bad,
    }
}

/// The first position at or after `from` holding a valid entry, or the end of the data.
fn resync(data: &Bytes, from: usize) -> usize {
    let magic = MAGIC.to_le_bytes();
    let mut pos = from;
    while pos < data.len() {
        match memchr::memmem::find(&data[pos..], &magic) {
            Some(i) => {
                let candidate = pos + i;
                if let Parsed::Ok(..) = parse(data, candidate) {
                    return candidate;
                }
                pos = candidate + 1;
            }
            None => break,
        }
    }
    data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lines: &[&str]) -> LineBatch {
        LineBatch::from_lines(lines.iter().copied())
    }

    fn file(entries: &[LineBatch]) -> BytesMut {
        let mut f = BytesMut::new();
        for e in entries {
            f.extend_from_slice(&encode(e, 7));
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
        assert_eq!(encoded_len(&entries[0]), 20 + 4);
    }

    #[test]
    fn a_torn_tail_is_incomplete_and_everything_before_it_survives() {
        let entries = vec![batch(&["one"]), batch(&["two", "three"])];
        let full = file(&entries);
        for cut in 1..encode(&entries[1], 7).len() {
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
        let second_payload = encode(&entries[0], 7).len() + HEADER_LEN + 2;
        data[second_payload] ^= 0x55; // flip bits inside the second entry's payload
        let (read, corrupt, _) = read_all(data.clone().freeze());
        assert_eq!(read, vec![entries[0].clone(), entries[2].clone()]);
        assert_eq!(corrupt, 1);
        // A damaged length field is caught the same way.
        let mut data = file(&entries);
        let second_len = encode(&entries[0], 7).len() + 4;
        data[second_len] = 0xff;
        let (read, corrupt, _) = read_all(data.freeze());
        assert_eq!(read, vec![entries[0].clone(), entries[2].clone()]);
        assert_eq!(corrupt, 1);
    }

    #[test]
    fn garbage_between_entries_is_one_corrupt_region() {
        let entries = vec![batch(&["a"]), batch(&["b"])];
        let mut data = BytesMut::new();
        data.extend_from_slice(&encode(&entries[0], 7));
        data.extend_from_slice(b"garbage garbage");
        data.extend_from_slice(&encode(&entries[1], 7));
        let (read, corrupt, torn) = read_all(data.freeze());
        assert_eq!(read, entries);
        assert_eq!((corrupt, torn), (1, false));
    }
}
