//! The buffer between ingest and the output: what makes a 2xx a promise.
//!
//! Ingest appends one entry per accepted batch and answers 2xx only once `append` returned (for
//! the disk buffer: written, and synced as `fsync` says). The output reads entries in order and
//! acknowledges each one once all its lines are delivered or dead-lettered; only then is its space
//! freed (memory) or its segment deleted (disk). Appends over `max_bytes` are refused (`reject`)
//! or wait for space (`block`, up to a timeout): memory stays bounded either way.

pub mod disk;
pub mod memory;
pub mod segment;

use crate::config::{BufferConfig, BufferKind, WhenFull};
use crate::lines::LineBatch;
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Entries are numbered in the order the output reads them.
pub type EntryId = u64;

/// One accepted batch, as the output reads it.
#[derive(Debug)]
pub struct Entry {
    pub id: EntryId,
    pub batch: LineBatch,
    /// When ingest accepted the batch, Unix milliseconds.
    pub arrived_ms: u64,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BufferError {
    #[error("the buffer is full")]
    Full,
    #[error("the buffer is closed (shutting down)")]
    Closed,
    #[error("buffer storage failed: {0}")]
    Io(String),
}

impl From<std::io::Error> for BufferError {
    fn from(e: std::io::Error) -> Self {
        BufferError::Io(e.to_string())
    }
}

/// What opening a disk buffer found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Entries left from a previous run, to be sent (again).
    pub entries: u64,
    pub bytes: u64,
    /// Damaged or torn entries skipped.
    pub corrupt_entries: u64,
}

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

    /// Bytes held (not yet acknowledged).
    pub fn used_bytes(&self) -> u64 {
        match self {
            Buffer::Memory(b) => b.capacity().used(),
            Buffer::Disk(b) => b.capacity().used(),
        }
    }
}

/// A byte budget with the `when_full` policy.
pub struct Capacity {
    max: u64,
    used: AtomicU64,
    freed: Notify,
    policy: WhenFull,
    block_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Capacity {
    pub fn new(max: u64, policy: WhenFull, block_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Capacity {
            max,
            used: AtomicU64::new(0),
            freed: Notify::new(),
            policy,
            block_timeout,
            metrics,
        }
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    fn try_reserve(&self, n: u64) -> bool {
        let mut cur = self.used.load(Ordering::Acquire);
        loop {
            if cur + n > self.max {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(cur, cur + n, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.metrics.buffer_bytes.set((cur + n) as i64);
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Reserves `n` bytes: at once or `Full` (`reject`), or waiting up to the timeout (`block`).
    pub async fn reserve(&self, n: u64) -> Result<(), BufferError> {
        if self.try_reserve(n) {
            return Ok(());
        }
        if self.policy == WhenFull::Reject {
            return Err(BufferError::Full);
        }
        let deadline = tokio::time::Instant::now() + self.block_timeout;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.try_reserve(n) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return if self.try_reserve(n) {
                    Ok(())
                } else {
                    Err(BufferError::Full)
                };
            }
        }
    }

    /// Counts `n` bytes that are already held (recovered at start).
    pub fn force_reserve(&self, n: u64) {
        let v = self.used.fetch_add(n, Ordering::AcqRel) + n;
        self.metrics.buffer_bytes.set(v as i64);
    }

    pub fn release(&self, n: u64) {
        let prev = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            })
            .unwrap_or(0);
        self.metrics.buffer_bytes.set(prev.saturating_sub(n) as i64);
        self.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reject_and_block_policies() {
        let m = Arc::new(Metrics::default());
        let reject = Capacity::new(100, WhenFull::Reject, Duration::from_secs(1), m.clone());
        assert!(reject.reserve(60).await.is_ok());
        assert_eq!(reject.reserve(50).await, Err(BufferError::Full));
        reject.release(60);
        assert!(reject.reserve(100).await.is_ok());

        let block = Arc::new(Capacity::new(
            100,
            WhenFull::Block,
            Duration::from_secs(5),
            m,
        ));
        block.reserve(100).await.expect("fits");
        let waiter = {
            let b = block.clone();
            tokio::spawn(async move { b.reserve(40).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "waits for space");
        block.release(50);
        assert_eq!(waiter.await.expect("join"), Ok(()));
        assert_eq!(block.used(), 90);
        // Nobody frees space: the timeout answers Full.
        let start = tokio::time::Instant::now();
        assert_eq!(block.reserve(20).await, Err(BufferError::Full));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
