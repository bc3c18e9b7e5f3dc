//! What the buffer holds and answers: entries, their ids, its errors, what a start recovered.

use crate::lines::LineBatch;
use std::path::PathBuf;
use std::sync::Arc;

/// A position in the buffer: segment number and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub seg: u64,
    pub offset: u64,
}

/// An output's name, as the buffer keeps a read position for it.
pub type Lane = String;

/// Entries are numbered in the order the output reads them.
pub type EntryId = u64;

/// One accepted batch, as the output reads it.
#[derive(Debug)]
pub struct Entry {
    pub id: EntryId,
    pub batch: LineBatch,
    /// When ingest accepted the batch, Unix milliseconds.
    pub arrived_ms: u64,
    /// Where the entry starts in the buffer, and where the next one starts: the same across
    /// restarts for a disk buffer (segment and offset); the entry's number for a memory buffer.
    pub start: Pos,
    pub end: Pos,
}

/// A new buffer id: 16 random hex digits.
pub fn new_buffer_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a batch was not stored, or a position not saved, while running. Cloned to every append
/// a failed group sync answers, hence the shared I/O errors.
#[derive(Debug, thiserror::Error, Clone)]
pub enum BufferError {
    #[error("the buffer is full")]
    Full,
    #[error("the buffer is closed (shutting down)")]
    Closed,
    #[error("the buffer's disk has no room: {0}")]
    NoRoom(#[source] Arc<std::io::Error>),
    #[error("buffer storage failed: {0}")]
    Io(#[source] Arc<std::io::Error>),
}

impl From<std::io::Error> for BufferError {
    fn from(e: std::io::Error) -> Self {
        BufferError::Io(Arc::new(e))
    }
}

/// Two errors are the same when they are of the same kind (for I/O errors: of the same
/// [`std::io::ErrorKind`]).
impl PartialEq for BufferError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (BufferError::Full, BufferError::Full) | (BufferError::Closed, BufferError::Closed) => {
                true
            }
            (BufferError::NoRoom(a), BufferError::NoRoom(b))
            | (BufferError::Io(a), BufferError::Io(b)) => a.kind() == b.kind(),
            _ => false,
        }
    }
}

/// Why the buffer could not be opened at start; each names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("buffer storage failed: {outputs} outputs: the buffer feeds 1 to {max}")]
    Outputs { outputs: usize, max: usize },
    #[error("buffer storage failed: cannot create {}: {source}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("buffer storage failed: cannot open {}: {source}", dir.join("LOCK").display())]
    Lock {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("buffer storage failed: buffer directory {} is in use by another collector", dir.display())]
    InUse { dir: PathBuf },
    #[error("buffer storage failed: cannot keep the buffer's id in {}: {source}", dir.display())]
    Id {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("buffer storage failed: cannot open or make room for the ack file in {}: {source}", dir.display())]
    AckFile {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("buffer storage failed: cannot open or make room for an output's ack file in {}: {source}", dir.display())]
    LaneAckFile {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("buffer storage failed: cannot read the segments in {}: {source}", dir.display())]
    Recover {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("buffer storage failed: cannot start in {}: {source}", dir.display())]
    Start {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// What opening a disk buffer found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Entries left from a previous run, to be sent (again).
    pub entries: u64,
    pub bytes: u64,
    /// Entries lost to damage (torn, damaged, or in a segment that could not be read).
    pub corrupt_entries: u64,
    /// Damaged regions the lost entries were in.
    pub damaged_regions: u64,
    /// Segments that could not be read, set aside.
    pub unreadable_segments: Vec<std::path::PathBuf>,
    /// Why the saved ack position was not used (everything is sent again), if it was not.
    pub ack_rejected: Option<String>,
}
