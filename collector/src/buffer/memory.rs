//! The bounded in-memory buffer: fast, and lost when the process exits.
//!
//! Invariant: the bytes of every entry count against `max_bytes` from `append` until `ack`, so the
//! memory held by batches waiting, batches being sent and batches being retried is bounded.

use super::capacity::Capacity;
use super::entry::{now_ms, BufferError, Entry, EntryId, Pos};
use crate::buffer::ledger::{Ledger, Tally};
use crate::config::BufferConfig;
use crate::lines::LineBatch;
use crate::metrics::Metrics;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub struct MemoryBuffer {
    /// A new id at each start: nothing in it outlives the process.
    id: String,
    capacity: Capacity,
    state: Mutex<State>,
    readable: Notify,
    ledger: Ledger,
    metrics: Arc<Metrics>,
}

/// Most outputs one buffer feeds (each has a bit in [`Held::acked`]).
pub const MAX_LANES: usize = 64;

#[derive(Default)]
struct State {
    /// Entries some output has not acknowledged, numbered from `first`.
    held: VecDeque<Held>,
    first: EntryId,
    next_id: EntryId,
    /// Per output: the next entry to read, and entries and bytes not acknowledged.
    lanes: Vec<LaneCursor>,
    closed: bool,
}

#[derive(Default, Clone, Copy)]
struct LaneCursor {
    next: EntryId,
    entries: u64,
    bytes: u64,
}

struct Held {
    batch: LineBatch,
    arrived_ms: u64,
    size: u64,
    /// One bit per output that acknowledged it.
    acked: u64,
}

impl MemoryBuffer {
    /// A buffer feeding `lanes` outputs (1 to [`MAX_LANES`]).
    pub fn new(cfg: &BufferConfig, lanes: usize, metrics: Arc<Metrics>) -> Self {
        MemoryBuffer {
            id: super::entry::new_buffer_id(),
            capacity: Capacity::new(
                cfg.max_bytes,
                cfg.when_full,
                cfg.block_timeout,
                metrics.clone(),
            ),
            state: Mutex::new(State {
                lanes: vec![LaneCursor::default(); lanes.clamp(1, MAX_LANES)],
                ..State::default()
            }),
            readable: Notify::new(),
            ledger: Ledger::empty(lanes.clamp(1, MAX_LANES)),
            metrics,
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn id(&self) -> &str {
        &self.id
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
        s.next_id += 1;
        self.ledger.received(batch.len() as u64);
        s.held.push_back(Held {
            batch,
            arrived_ms: now_ms(),
            size,
            acked: 0,
        });
        for l in &mut s.lanes {
            l.entries += 1;
            l.bytes += size;
        }
        self.metrics.buffer_entries.set(s.held.len() as i64);
        drop(s);
        self.readable.notify_waiters();
        Ok(())
    }

    /// The next entry for output `lane`, in order; `None` once closed and fully read.
    pub async fn next(&self, lane: usize) -> Option<Entry> {
        loop {
            let notified = self.readable.notified();
            {
                let mut s = self.lock();
                let shared = s.lanes.len() > 1;
                let first = s.first;
                let id = s.lanes.get(lane)?.next;
                if id < s.next_id {
                    s.lanes[lane].next += 1;
                    let held = s.held.get_mut((id - first) as usize)?;
                    let batch = if shared {
                        held.batch.clone()
                    } else {
                        std::mem::take(&mut held.batch)
                    };
                    return Some(Entry {
                        id,
                        batch,
                        arrived_ms: held.arrived_ms,
                        start: Pos { seg: 0, offset: id },
                        end: Pos {
                            seg: 0,
                            offset: id + 1,
                        },
                    });
                }
                if s.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Output `lane` has delivered or dead-lettered every line of entry `id`, as `tally` says;
    /// the entry's room is freed once every output has.
    pub fn ack(&self, lane: usize, id: EntryId, tally: Tally) {
        let mut s = self.lock();
        let all = u64::MAX >> (64 - s.lanes.len());
        let Some(idx) = id.checked_sub(s.first) else {
            return;
        };
        let Some(held) = s.held.get_mut(idx as usize) else {
            return;
        };
        let bit = 1u64 << lane;
        if held.acked & bit != 0 || lane >= MAX_LANES {
            return;
        }
        held.acked |= bit;
        self.ledger.settled(lane, &tally);
        let size = held.size;
        // Room is freed as soon as every output has the entry, in whatever order entries finish.
        let mut freed = 0;
        if held.acked == all {
            freed = std::mem::take(&mut held.size);
            held.batch = LineBatch::default();
        }
        if let Some(l) = s.lanes.get_mut(lane) {
            l.entries -= 1;
            l.bytes -= size;
        }
        while s.held.front().is_some_and(|h| h.acked == all) {
            s.held.pop_front();
            s.first += 1;
        }
        let held = s.lanes.iter().map(|l| l.entries).max().unwrap_or(0);
        self.metrics.buffer_entries.set(held as i64);
        drop(s);
        if freed > 0 {
            self.capacity.release(freed);
        }
    }

    /// Entries and bytes output `lane` has not acknowledged.
    pub fn lag(&self, lane: usize) -> (u64, u64) {
        self.lock()
            .lanes
            .get(lane)
            .map_or((0, 0), |l| (l.entries, l.bytes))
    }

    pub fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_waiters();
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
        let b = MemoryBuffer::new(
            &BufferConfig::for_tests(100),
            1,
            Arc::new(Metrics::default()),
        );
        b.append(LineBatch::from_lines(["aaaa"]))
            .await
            .expect("append");
        b.append(LineBatch::from_lines(["bb", "cc"]))
            .await
            .expect("append");
        let e0 = b.next(0).await.expect("first");
        let e1 = b.next(0).await.expect("second");
        assert_eq!((e0.id, e1.id), (0, 1));
        assert_eq!(e1.batch.len(), 2);
        let used = b.capacity().used();
        assert_eq!(used, 8 + 5 + 8);
        b.ack(0, e1.id, Tally::default());
        assert_eq!(b.capacity().used(), 8);
        b.ack(0, e1.id, Tally::default()); // a second ack is harmless
        assert_eq!(b.capacity().used(), 8);
        // Bytes stay counted while the entry is in flight (read, not acked).
        let big = LineBatch::from_lines(["x".repeat(90)]);
        assert_eq!(b.append(big).await, Err(BufferError::Full));
        b.ack(0, e0.id, Tally::default());
        b.close();
        assert!(b.next(0).await.is_none());
        assert_eq!(
            b.append(LineBatch::from_lines(["late"])).await,
            Err(BufferError::Closed)
        );
    }

    #[tokio::test]
    async fn each_output_reads_every_entry_and_room_is_freed_once_all_acked() {
        let b = MemoryBuffer::new(
            &BufferConfig::for_tests(100),
            2,
            Arc::new(Metrics::default()),
        );
        b.append(LineBatch::from_lines(["aaaa"]))
            .await
            .expect("append");
        b.append(LineBatch::from_lines(["bb"]))
            .await
            .expect("append");
        let fast: Vec<Entry> = vec![b.next(0).await.expect("0"), b.next(0).await.expect("1")];
        for e in &fast {
            b.ack(0, e.id, Tally::default());
        }
        assert_eq!(b.lag(0), (0, 0));
        assert_eq!(b.lag(1), (2, 8 + 6));
        assert_eq!(b.capacity().used(), 8 + 6, "held for the slow output");
        let slow = b.next(1).await.expect("slow reads the first");
        assert_eq!(slow.batch, LineBatch::from_lines(["aaaa"]));
        assert_eq!((slow.start.offset, slow.end.offset), (0, 1));
        b.ack(1, slow.id, Tally::default());
        b.ack(1, slow.id, Tally::default()); // a second ack is harmless
        assert_eq!(b.capacity().used(), 6);
        assert_eq!(b.lag(1), (1, 6));
        b.ack(1, 1, Tally::default());
        assert_eq!(b.capacity().used(), 0);
    }
}
