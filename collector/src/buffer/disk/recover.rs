//! What a start finds in the buffer directory: the segments left by a previous run, checked
//! against the saved ack position, scanned and counted.
//!
//! Invariants: nothing is deleted on the word of an ack position that does not fit the segments
//! (one past the last segment, in a segment that is not there, or in the middle of an entry): such
//! a position is reported and everything is sent again. A segment that cannot be read is named,
//! set aside as `<name>.unreadable` and skipped; the rest is still sent. Damage is counted in
//! entries, from the sequence numbers either side of each damaged region.

use super::ackfile::Found;
use super::segment::{self, Damage, Scan};
use super::writer::seg_path;
use crate::buffer::entry::Pos;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Attempts at reading a segment before it is set aside as unreadable.
pub const READ_ATTEMPTS: u32 = 3;
/// Pause between attempts at start.
const START_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Segment numbers beyond this are not taken from an ack file (they would leave no room).
const MAX_SEGMENT_NUMBER: u64 = 1 << 62;

/// What the directory held.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Readable segments from the start position on, with their sizes.
    pub segments: BTreeMap<u64, u64>,
    /// Where reading begins.
    pub start: Pos,
    /// The highest segment number seen (or taken from the ack position).
    pub last_segment: u64,
    /// The next entry's sequence number.
    pub next_seq: u64,
    /// Entries to send (again).
    pub entries: u64,
    pub bytes: u64,
    /// Damage found: entries lost and the regions they were in.
    pub damage: Damage,
    /// Segments that could not be read, set aside.
    pub unreadable: Vec<PathBuf>,
    /// Why the saved ack position was not used, if it was not.
    pub ack_rejected: Option<String>,
    /// Where each output resumes, in the order the outputs were given.
    pub lanes: Vec<LaneStart>,
}

/// Where one output resumes: its own saved position if that fits the segments and is not below
/// the common one, else the common one.
#[derive(Debug, Default, Clone)]
pub struct LaneStart {
    pub pos: Pos,
    /// Entries, lines and bytes from `pos` on.
    pub entries: u64,
    pub lines: u64,
    pub bytes: u64,
    /// Why the output's own saved position was not used, if it was not.
    pub rejected: Option<String>,
}

/// Recovers the segments in `dir` given the ack file's content (the position every output has
/// passed) and each output's own saved position.
pub fn recover(dir: &Path, ack: Found, lanes: &[Found]) -> std::io::Result<Recovered> {
    let mut numbers: Vec<u64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let num = name.strip_suffix(".seg")?;
            (num.len() == 16).then(|| num.parse::<u64>().ok()).flatten()
        })
        .collect();
    numbers.sort_unstable();
    let mut out = Recovered::default();

    let mut data: BTreeMap<u64, Bytes> = BTreeMap::new();
    for &n in &numbers {
        match read_segment(&seg_path(dir, n), READ_ATTEMPTS, START_RETRY_PAUSE) {
            Ok(bytes) => {
                data.insert(n, bytes);
            }
            Err(e) => out.unreadable.push(set_aside(dir, n, &e)),
        }
    }

    let first = numbers.first().copied();
    let start = match (ack, first) {
        (Found::Nothing, _) => None,
        (Found::Unreadable, _) => {
            out.ack_rejected = Some("the ack file holds no position".into());
            None
        }
        (Found::Position(p), None) if p.seg < MAX_SEGMENT_NUMBER => Some(p),
        (Found::Position(p), None) => {
            out.ack_rejected = Some(format!("segment number {} is out of range", p.seg));
            None
        }
        (Found::Position(p), Some(first)) => match check(p, first, &numbers, &data) {
            Ok(p) => Some(p),
            Err(why) => {
                out.ack_rejected = Some(why);
                None
            }
        },
    };
    let start = start.unwrap_or(Pos {
        seg: first.unwrap_or(0),
        offset: 0,
    });
    for &n in numbers.iter().filter(|&&n| n < start.seg) {
        let _ = std::fs::remove_file(seg_path(dir, n));
        data.remove(&n);
    }
    out.start = start;
    out.last_segment = numbers.last().copied().unwrap_or(0).max(start.seg);
    out.lanes = lanes
        .iter()
        .map(|found| {
            let mut lane = LaneStart {
                pos: start,
                ..LaneStart::default()
            };
            if let (Found::Position(p), Some(first)) = (found, first) {
                if *p > start {
                    match check(*p, first, &numbers, &data) {
                        Ok(p) => lane.pos = p,
                        Err(why) => lane.rejected = Some(why),
                    }
                }
            }
            lane
        })
        .collect();

    let mut max_seq = None;
    for &n in numbers.iter().filter(|&&n| n >= start.seg) {
        let Some(bytes) = data.get(&n) else {
            // Unreadable: the numbers either side count the entries it held.
            out.damage.region();
            continue;
        };
        let from = if n == start.seg {
            start.offset as usize
        } else {
            0
        };
        let mut at = from;
        loop {
            match segment::scan(bytes, at) {
                Scan::Entry {
                    seq, next, batch, ..
                } => {
                    out.entries += 1;
                    let here = Pos {
                        seg: n,
                        offset: at as u64,
                    };
                    for lane in out.lanes.iter_mut().filter(|l| l.pos <= here) {
                        lane.entries += 1;
                        lane.lines += batch.len() as u64;
                    }
                    out.damage.entry(seq);
                    max_seq = max_seq.max(seq);
                    at = next;
                }
                Scan::Corrupt { resume } => {
                    out.damage.region();
                    at = resume;
                }
                Scan::Incomplete => {
                    out.damage.region();
                    break;
                }
                Scan::End => break,
            }
        }
        out.bytes += bytes.len().saturating_sub(from) as u64;
        for lane in out.lanes.iter_mut().filter(|l| l.pos.seg <= n) {
            let from = if lane.pos.seg == n {
                lane.pos.offset
            } else {
                0
            };
            lane.bytes += (bytes.len() as u64).saturating_sub(from);
        }
        out.segments.insert(n, bytes.len() as u64);
    }
    out.damage.finish();
    out.next_seq = max_seq.map_or(0, |s| s + 1);
    Ok(out)
}

/// Whether `ack` fits the segments: in one that exists, at the start of an entry (or the end).
fn check(
    ack: Pos,
    first: u64,
    numbers: &[u64],
    data: &BTreeMap<u64, Bytes>,
) -> Result<Pos, String> {
    let last = numbers.last().copied().unwrap_or(first);
    if ack.seg < first {
        return Ok(Pos {
            seg: first,
            offset: 0,
        });
    }
    if !numbers.contains(&ack.seg) {
        return Err(format!(
            "it points into segment {}, and the segments are {first} to {last}",
            ack.seg
        ));
    }
    let Some(bytes) = data.get(&ack.seg) else {
        // Set aside as unreadable: its entries are gone; the ones after it are not.
        return Ok(Pos {
            seg: ack.seg,
            offset: 0,
        });
    };
    if ack.offset == 0 || ack.offset == bytes.len() as u64 {
        return Ok(ack);
    }
    let mut at = 0usize;
    while (at as u64) < ack.offset {
        at = match segment::scan(bytes, at) {
            Scan::Entry { next, .. } => next,
            Scan::Corrupt { resume } => resume,
            Scan::Incomplete | Scan::End => break,
        };
    }
    if at as u64 == ack.offset {
        Ok(ack)
    } else {
        Err(format!(
            "offset {} in segment {} is not the start of an entry (the segment holds {} bytes)",
            ack.offset,
            ack.seg,
            bytes.len()
        ))
    }
}

/// Reads a whole segment, trying `attempts` times.
pub fn read_segment(path: &Path, attempts: u32, pause: Duration) -> std::io::Result<Bytes> {
    let mut tries = 0;
    loop {
        match std::fs::read(path) {
            Ok(v) => return Ok(Bytes::from(v)),
            Err(e) => {
                tries += 1;
                if tries >= attempts {
                    return Err(e);
                }
                std::thread::sleep(pause);
            }
        }
    }
}

/// Renames an unreadable segment out of the way (kept for an operator) and reports it.
pub fn set_aside(dir: &Path, seg: u64, error: &std::io::Error) -> PathBuf {
    let path = seg_path(dir, seg);
    let mut aside = path.clone().into_os_string();
    aside.push(".unreadable");
    let aside = PathBuf::from(aside);
    match std::fs::rename(&path, &aside) {
        Ok(()) => tracing::error!(
            segment = %path.display(),
            kept_as = %aside.display(),
            %error,
            "buffer: cannot read a segment; its entries are skipped, the file is kept"
        ),
        Err(rename) => tracing::error!(
            segment = %path.display(),
            %error,
            rename_error = %rename,
            "buffer: cannot read a segment; its entries are skipped"
        ),
    }
    path
}
