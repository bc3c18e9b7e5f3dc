//! Per-entry delivery accounting.
//!
//! [`Acks`] counts, per entry, the lines not yet delivered (or dead-lettered) and acknowledges the
//! entry to the buffer when that count reaches zero, with how its lines went (the ledger's
//! tally). Invariant: an entry is acknowledged exactly once and only when every one of its lines
//! is accounted for, whatever order calls complete in.

use crate::buffer::ledger::Tally;
use crate::buffer::{Buffer, Entry, EntryId};
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Per-entry delivery accounting.
pub struct Acks {
    buffer: Arc<Buffer>,
    /// The output's lane in the buffer.
    lane: usize,
    pending: Mutex<HashMap<EntryId, Pending>>,
    /// Bounds the bytes read from the buffer and not yet acknowledged (disk buffer read-ahead).
    read_ahead: Option<(Arc<Semaphore>, u32)>,
    metrics: Arc<Metrics>,
}

struct Pending {
    lines: usize,
    tally: Tally,
    arrived_ms: u64,
    _permit: Option<OwnedSemaphorePermit>,
}

/// How far delivery is behind: lines read from the buffer and not yet accounted for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    pub entries: usize,
    pub lines: usize,
    /// Age of the oldest such line (since ingest accepted it).
    pub oldest_age: std::time::Duration,
}

/// Read-ahead is counted in KiB so the semaphore's `u32` permits cover gigabytes.
const KIB: usize = 1024;

impl Acks {
    /// `read_ahead_bytes`: most bytes of entries read but not yet acknowledged; `None` when the
    /// buffer itself bounds them (memory buffer).
    pub fn new(
        buffer: Arc<Buffer>,
        lane: usize,
        read_ahead_bytes: Option<usize>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let read_ahead = read_ahead_bytes.map(|b| {
            let permits = (b / KIB).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
            (Arc::new(Semaphore::new(permits as usize)), permits)
        });
        Acks {
            buffer,
            lane,
            pending: Mutex::new(HashMap::new()),
            read_ahead,
            metrics,
        }
    }

    /// Starts tracking an entry; waits while the read-ahead budget is spent.
    pub async fn register(&self, entry: &Entry) {
        let permit = match &self.read_ahead {
            Some((sem, max)) => {
                let want = (entry.batch.joined().len() / KIB + 1).min(*max as usize) as u32;
                sem.clone().acquire_many_owned(want).await.ok()
            }
            None => None,
        };
        if entry.batch.is_empty() {
            self.buffer.ack(self.lane, entry.id, Tally::default());
            return;
        }
        self.lock().insert(
            entry.id,
            Pending {
                lines: entry.batch.len(),
                tally: Tally::default(),
                arrived_ms: entry.arrived_ms,
                _permit: permit,
            },
        );
    }

    /// `n` lines of entry `id` are delivered.
    pub fn done(&self, id: EntryId, n: usize) {
        self.done_many(std::iter::once((id, n)));
    }

    /// Like [`Acks::done`] for several entries at once (one lock).
    pub fn done_many(&self, counts: impl IntoIterator<Item = (EntryId, usize)>) {
        self.settle(counts, None);
    }

    /// The lines counted per entry are written to the dead-letter file, for `reason`.
    pub fn dead_lettered(
        &self,
        counts: impl IntoIterator<Item = (EntryId, usize)>,
        reason: &'static str,
    ) {
        self.settle(counts, Some(Tally::reason_index(reason)));
    }

    /// Accounts for lines: delivered (`dead: None`) or dead-lettered for a reason.
    fn settle(&self, counts: impl IntoIterator<Item = (EntryId, usize)>, dead: Option<usize>) {
        let mut finished = Vec::new();
        {
            let mut p = self.lock();
            for (id, n) in counts {
                if let Some(entry) = p.get_mut(&id) {
                    let n = n.min(entry.lines);
                    entry.lines -= n;
                    match dead {
                        None => entry.tally.delivered += n as u64,
                        Some(r) => entry.tally.dead[r] += n as u64,
                    }
                    if entry.lines == 0 {
                        if let Some(e) = p.remove(&id) {
                            finished.push((id, e.tally));
                        }
                    }
                }
            }
        }
        for (id, tally) in finished {
            self.buffer.ack(self.lane, id, tally);
        }
    }

    /// Lines still on their way, and how old the oldest is.
    pub fn lag(&self) -> Lag {
        let p = self.lock();
        let oldest = p.values().map(|e| e.arrived_ms).min();
        Lag {
            entries: p.len(),
            lines: p.values().map(|e| e.lines).sum(),
            oldest_age: oldest.map_or(std::time::Duration::ZERO, |t| {
                std::time::Duration::from_millis(crate::buffer::now_ms().saturating_sub(t))
            }),
        }
    }

    /// Entries and bytes of the buffer this output has not acknowledged (read or not).
    pub fn buffer_lag(&self) -> (u64, u64) {
        self.buffer.lag(self.lane)
    }

    /// The ledger's numbers for this output.
    pub fn counts(&self) -> crate::buffer::ledger::Counts {
        self.buffer.ledger().counts(self.lane)
    }

    /// Entries with lines still on their way.
    pub fn outstanding(&self) -> usize {
        self.lock().len()
    }

    /// The output's lane in the buffer.
    pub fn lane(&self) -> usize {
        self.lane
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EntryId, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}
