//! The buffer between ingest and the output: what makes a 2xx a promise.
//!
//! Ingest appends one entry per accepted batch and answers 2xx only once `append` returned (for
//! the disk buffer: written, and synced as `fsync` says). The output reads entries in order and
//! acknowledges each one once all its lines are delivered or dead-lettered; only then is its space
//! freed (memory) or its segment deleted (disk). Appends over `max_bytes` are refused (`reject`)
//! or wait for space (`block`, up to a timeout): memory stays bounded either way.

pub mod ackfile;
pub mod capacity;
pub mod disk;
pub mod entry;
pub mod memory;
pub mod read;
pub mod recover;
pub mod room;
pub mod segment;
pub mod writer;

pub use capacity::Capacity;
pub use entry::{now_ms, BufferError, Entry, EntryId, Recovery};

use crate::config::{BufferConfig, BufferKind};
use crate::lines::LineBatch;
use crate::metrics::Metrics;
use std::sync::Arc;

pub enum Buffer {
    Memory(memory::MemoryBuffer),
    Disk(disk::DiskBuffer),
}

impl Buffer {
    /// Opens the configured buffer; a disk buffer recovers what a previous run left.
    pub fn open(cfg: &BufferConfig, metrics: Arc<Metrics>) -> Result<Buffer, BufferError> {
        Ok(match cfg.kind {
            BufferKind::Memory => Buffer::Memory(memory::MemoryBuffer::new(cfg, metrics)),
            BufferKind::Disk => Buffer::Disk(disk::DiskBuffer::open(cfg, metrics)?),
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

    /// The next entry for the output, in order; `None` once closed and fully read.
    pub async fn next(&self) -> Option<Entry> {
        match self {
            Buffer::Memory(b) => b.next().await,
            Buffer::Disk(b) => b.next().await,
        }
    }

    /// All lines of entry `id` are delivered (or dead-lettered).
    pub fn ack(&self, id: EntryId) {
        match self {
            Buffer::Memory(b) => b.ack(id),
            Buffer::Disk(b) => b.ack(id),
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

    /// Why the buffer cannot take entries or free delivered ones, while that lasts.
    pub fn problem(&self) -> Option<String> {
        match self {
            Buffer::Memory(_) => None,
            Buffer::Disk(b) => b.problem(),
        }
    }

    /// Bytes held (not yet acknowledged).
    pub fn used_bytes(&self) -> u64 {
        match self {
            Buffer::Memory(b) => b.capacity().used(),
            Buffer::Disk(b) => b.capacity().used(),
        }
    }
}
