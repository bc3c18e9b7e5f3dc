//! Reading one entry of a segment at a position, for the disk buffer's reader: the fast path
//! reads the header and the entry it announces; on damage the rest of the segment is read and
//! scanned for the next valid entry.

use super::segment::{self, Scan, HEADER_LEN};
use crate::lines::LineBatch;
use bytes::Bytes;
use std::fs::File;
use std::os::unix::fs::FileExt;

pub(super) enum Read {
    Entry {
        batch: LineBatch,
        arrived_ms: u64,
        seq: Option<u64>,
        next: u64,
    },
    Corrupt {
        resume: u64,
    },
    /// No complete entry left in this segment; `torn` if bytes were left over.
    End {
        torn: bool,
    },
}

/// Reads the entry at `offset`. `limit` is the writer's published end for the active segment;
/// closed segments are read to the end of the file.
pub(super) fn read_at(file: &File, offset: u64, limit: Option<u64>) -> std::io::Result<Read> {
    let end = match limit {
        Some(l) => l,
        None => file.metadata()?.len(),
    };
    if offset >= end {
        return Ok(Read::End { torn: false });
    }
    let avail = end - offset;
    let mut head = [0u8; HEADER_LEN];
    let head_len = avail.min(HEADER_LEN as u64) as usize;
    file.read_exact_at(&mut head[..head_len], offset)?;
    if let Some(len) = segment::announced_len(&head[..head_len]) {
        if len as u64 <= avail {
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset)?;
            if let Scan::Entry {
                batch,
                arrived_ms,
                seq,
                next,
            } = segment::scan(&Bytes::from(buf), 0)
            {
                return Ok(Read::Entry {
                    batch,
                    arrived_ms,
                    seq,
                    next: offset + next as u64,
                });
            }
        }
    }
    // Damage: read the rest of the segment and resynchronise.
    let mut rest = vec![0u8; avail as usize];
    file.read_exact_at(&mut rest, offset)?;
    Ok(match segment::scan(&Bytes::from(rest), 0) {
        Scan::Entry {
            batch,
            arrived_ms,
            seq,
            next,
        } => Read::Entry {
            batch,
            arrived_ms,
            seq,
            next: offset + next as u64,
        },
        Scan::Corrupt { resume } if (resume as u64) < avail => Read::Corrupt {
            resume: offset + resume as u64,
        },
        Scan::Corrupt { .. } | Scan::Incomplete => Read::End { torn: true },
        Scan::End => Read::End { torn: false },
    })
}
