//! The buffer between ingest and the output: what makes a 2xx a promise.
//!
//! Ingest appends one entry per accepted batch and answers 2xx only once `append` returned (for
//! the disk buffer: written, and synced as `fsync` says). Each output reads every entry in
//! order from its own position (a lane) and acknowledges each one once all its lines are
//! delivered or dead-lettered; once every output has, its space is freed (memory) or its segment
//! deleted (disk). A slow output holds room, never another output's reads. Appends over `max_bytes` are refused (`reject`)
//! or wait for space (`block`, up to a timeout): memory stays bounded either way.

pub(crate) mod capacity;
pub(crate) mod disk;
pub(crate) mod entry;
pub(crate) mod ledger;
pub(crate) mod memory;

use capacity::Capacity;
pub use entry::{now_ms, BufferError, Entry, EntryId, Lane, OpenError, Pos, Recovery};

use crate::buffer::ledger::{Ledger, Tally};
use crate::config::{BufferConfig, BufferKind};
use crate::lines::LineBatch;
use crate::metrics::Metrics;
use std::sync::Arc;

pub enum Buffer {
    Memory(memory::MemoryBuffer),
    Disk(disk::DiskBuffer),
}

impl Buffer {
    /// Opens the configured buffer for one output; a disk buffer recovers what a previous run
    /// left.
    #[cfg(test)]
    pub fn open(cfg: &BufferConfig, metrics: Arc<Metrics>) -> Result<Buffer, OpenError> {
        Self::open_lanes(cfg, &[Lane::from("output")], metrics)
    }

    /// Opens the configured buffer with one read position per output (`lanes`, in order).
    pub fn open_lanes(
        cfg: &BufferConfig,
        lanes: &[Lane],
        metrics: Arc<Metrics>,
    ) -> Result<Buffer, OpenError> {
        if lanes.is_empty() || lanes.len() > memory::MAX_LANES {
            return Err(OpenError::Outputs {
                outputs: lanes.len(),
                max: memory::MAX_LANES,
            });
        }
        Ok(match cfg.kind {
            BufferKind::Memory => {
                Buffer::Memory(memory::MemoryBuffer::new(cfg, lanes.len(), metrics))
            }
            BufferKind::Disk => Buffer::Disk(disk::DiskBuffer::open_lanes(cfg, lanes, metrics)?),
        })
    }

    /// Stores a batch; returns once it is as durable as the configuration promises.
    pub async fn append(&self, batch: LineBatch) -> Result<(), BufferError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self {
            Buffer::Memory(b) => b.append(batch).await,
            Buffer::Disk(b) => b.append(batch).await,
        }
    }

    /// The next entry for output `lane`, in order; `None` once closed and fully read.
    pub async fn next(&self, lane: usize) -> Option<Entry> {
        match self {
            Buffer::Memory(b) => b.next(lane).await,
            Buffer::Disk(b) => b.next(lane).await,
        }
    }

    /// Output `lane` has delivered or dead-lettered all lines of entry `id`, as `tally` says;
    /// its room is freed once every output has.
    pub fn ack(&self, lane: usize, id: EntryId, tally: Tally) {
        match self {
            Buffer::Memory(b) => b.ack(lane, id, tally),
            Buffer::Disk(b) => b.ack(lane, id, tally),
        }
    }

    /// Where every line each output was given is (kept across restarts by a disk buffer).
    pub fn ledger(&self) -> &Ledger {
        match self {
            Buffer::Memory(b) => b.ledger(),
            Buffer::Disk(b) => b.ledger(),
        }
    }

    /// Entries and bytes output `lane` has not acknowledged.
    pub fn lag(&self, lane: usize) -> (u64, u64) {
        match self {
            Buffer::Memory(b) => b.lag(lane),
            Buffer::Disk(b) => b.lag(lane),
        }
    }

    /// The position of output `lane` last saved (disk buffer); a restart resumes there.
    pub fn saved_position(&self, lane: usize) -> Option<Pos> {
        match self {
            Buffer::Memory(_) => None,
            Buffer::Disk(b) => b.saved_position(lane),
        }
    }

    /// Which buffer this is: kept in a disk buffer's directory, new at each start in memory.
    /// With positions, it names what the buffer held (the archive's object names).
    pub fn id(&self) -> &str {
        match self {
            Buffer::Memory(b) => b.id(),
            Buffer::Disk(b) => b.id(),
        }
    }

    /// Where the buffer's positions survive a restart: the disk buffer's directory.
    pub fn dir(&self) -> Option<&std::path::Path> {
        match self {
            Buffer::Memory(_) => None,
            Buffer::Disk(b) => Some(b.dir()),
        }
    }

    /// Refuses further appends; `next` drains what is there, then returns `None`.
    pub fn close(&self) {
        match self {
            Buffer::Memory(b) => b.close(),
            Buffer::Disk(b) => b.close(),
        }
    }

    /// Makes the acknowledgements durable and frees what they cover (disk; no-op in memory).
    pub async fn persist_acks(&self) -> Result<(), BufferError> {
        match self {
            Buffer::Memory(_) => Ok(()),
            Buffer::Disk(b) => b.persist_acks().await,
        }
    }

    pub fn recovery(&self) -> Recovery {
        match self {
            Buffer::Memory(_) => Recovery::default(),
            Buffer::Disk(b) => b.recovery(),
        }
    }

    /// Why the buffer cannot take entries or free delivered ones, while that lasts: full (a
    /// batch was refused for room and none was freed since), its disk full, its ack position not
    /// saved.
    pub fn problem(&self) -> Option<String> {
        let disk = match self {
            Buffer::Memory(_) => None,
            Buffer::Disk(b) => b.problem(),
        };
        disk.or_else(|| {
            self.capacity().refusing().then(|| {
                format!(
                    "full: {} of {} bytes hold lines the outputs have not delivered",
                    self.used_bytes(),
                    self.max_bytes()
                )
            })
        })
    }

    fn capacity(&self) -> &Capacity {
        match self {
            Buffer::Memory(b) => b.capacity(),
            Buffer::Disk(b) => b.capacity(),
        }
    }

    /// Bytes held (not yet acknowledged).
    pub fn used_bytes(&self) -> u64 {
        self.capacity().used()
    }

    /// `buffer.max_bytes`.
    pub fn max_bytes(&self) -> u64 {
        self.capacity().max()
    }

    /// `memory` or `disk`.
    pub fn kind(&self) -> &'static str {
        match self {
            Buffer::Memory(_) => "memory",
            Buffer::Disk(_) => "disk",
        }
    }
}
