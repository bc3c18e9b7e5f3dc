//! The bounded in-memory buffer: fast, and lost when the process exits.
//!
//! Invariant: the bytes of every entry count against `max_bytes` from `append` until `ack`, so the
//! memory held by batches waiting, batches being sent and batches being retried is bounded.

use super::capacity::Capacity;
use super::entry::{now_ms, BufferError, Entry, EntryId};
use crate::config::BufferConfig;
use crate::lines::LineBatch;
use crate::metrics::Metrics;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub struct MemoryBuffer {
    capacity: Capacity,
    state: Mutex<State>,
    readable: Notify,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Entry>,
    next_id: EntryId,
    /// Bytes of each entry not yet acknowledged.
    held: HashMap<EntryId, u64>,
    closed: bool,
}

impl MemoryBuffer {
    pub fn new(cfg: &BufferConfig, metrics: Arc<Metrics>) -> Self {
        MemoryBuffer {
            capacity: Capacity::new(
                cfg.max_bytes,
                cfg.when_full,
                cfg.block_timeout,
                metrics.clone(),
            ),
            state: Mutex::new(State::default()),
            readable: Notify::new(),
            metrics,
        }
    }

    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    fn size(batch: &LineBatch) -> u64 {
        batch.joined().len() as u64 + 4 * batch.len() as u64
    }

    pub async fn append(&self, batch: LineBatch) -> Result<(), BufferError> {
        if self.lock().closed {
            return Err(BufferError::Closed);
        }
        let size = Self::size(&batch);
        self.capacity.reserve(size).await?;
        let mut s = self.lock();
        if s.closed {
            drop(s);
            self.capacity.release(size);
            return Err(BufferError::Closed);
        }
        let id = s.next_id;
        s.next_id += 1;
        s.held.insert(id, size);
        s.queue.push_back(Entry {
            id,
            batch,
            arrived_ms: now_ms(),
        });
        self.metrics.buffer_entries.set(s.held.len() as i64);
        drop(s);
        self.readable.notify_one();
        Ok(())
    }

    pub async fn next(&self) -> Option<Entry> {
        loop {
            let notified = self.readable.notified();
            {
                let mut s = self.lock();
                if let Some(e) = s.queue.pop_front() {
                    return Some(e);
                }
                if s.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    pub fn ack(&self, id: EntryId) {
        let mut s = self.lock();
        if let Some(size) = s.held.remove(&id) {
            self.metrics.buffer_entries.set(s.held.len() as i64);
            drop(s);
            self.capacity.release(size);
        }
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_waiters();
        self.readable.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another task panicked mid-update of plain data; go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_come_out_in_order_and_ack_frees_space() {
        let b = MemoryBuffer::new(&BufferConfig::for_tests(100), Arc::new(Metrics::default()));
        b.append(LineBatch::from_lines(["aaaa"]))
            .await
            .expect("append");
        b.append(LineBatch::from_lines(["bb", "cc"]))
            .await
            .expect("append");
        let e0 = b.next().await.expect("first");
        let e1 = b.next().await.expect("second");
        assert_eq!((e0.id, e1.id), (0, 1));
        assert_eq!(e1.batch.len(), 2);
        let used = b.capacity().used();
        assert_eq!(used, 8 + 5 + 8);
        b.ack(e1.id);
        assert_eq!(b.capacity().used(), 8);
        b.ack(e1.id); // a second ack is harmless
        assert_eq!(b.capacity().used(), 8);
        // Bytes stay counted while the entry is in flight (read, not acked).
        let big = LineBatch::from_lines(["x".repeat(90)]);
        assert_eq!(b.append(big).await, Err(BufferError::Full));
        b.ack(e0.id);
        b.close();
        assert!(b.next().await.is_none());
        assert_eq!(
            b.append(LineBatch::from_lines(["late"])).await,
            Err(BufferError::Closed)
        );
    }
}
