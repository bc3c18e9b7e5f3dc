//! Outputs: where buffered lines go, and the driver that feeds them.
//!
//! The driver reads entries from the buffer in order and hands them to the output; [`Acks`]
//! counts, per entry, the lines not yet delivered (or dead-lettered) and acknowledges the entry to
//! the buffer when that count reaches zero. Invariant: an entry is acknowledged exactly once and
//! only when every one of its lines is accounted for, whatever order calls complete in.

pub mod kinesis;
pub mod kinesis_api;
pub mod kinesis_direct;
pub mod stdio;

use crate::buffer::{Buffer, Entry, EntryId};
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Per-entry delivery accounting.
pub struct Acks {
    buffer: Arc<Buffer>,
    pending: Mutex<HashMap<EntryId, Pending>>,
    /// Bounds the bytes read from the buffer and not yet acknowledged (disk buffer read-ahead).
    read_ahead: Option<(Arc<Semaphore>, u32)>,
    metrics: Arc<Metrics>,
}

struct Pending {
    lines: usize,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Read-ahead is counted in KiB so the semaphore's `u32` permits cover gigabytes.
const KIB: usize = 1024;

impl Acks {
    /// `read_ahead_bytes`: most bytes of entries read but not yet acknowledged; `None` when the
    /// buffer itself bounds them (memory buffer).
    pub fn new(
        buffer: Arc<Buffer>,
        read_ahead_bytes: Option<usize>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let read_ahead = read_ahead_bytes.map(|b| {
            let permits = (b / KIB).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
            (Arc::new(Semaphore::new(permits as usize)), permits)
        });
        Acks {
            buffer,
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
            self.buffer.ack(entry.id);
            return;
        }
        self.lock().insert(
            entry.id,
            Pending {
                lines: entry.batch.len(),
                _permit: permit,
            },
        );
    }

    /// `n` lines of entry `id` are delivered or dead-lettered.
    pub fn done(&self, id: EntryId, n: usize) {
        self.done_many(std::iter::once((id, n)));
    }

    /// Like [`Acks::done`] for several entries at once (one lock).
    pub fn done_many(&self, counts: impl IntoIterator<Item = (EntryId, usize)>) {
        let mut finished = Vec::new();
        {
            let mut p = self.lock();
            for (id, n) in counts {
                if let Some(entry) = p.get_mut(&id) {
                    entry.lines = entry.lines.saturating_sub(n);
                    if entry.lines == 0 {
                        p.remove(&id);
                        finished.push(id);
                    }
                }
            }
        }
        for id in finished {
            self.buffer.ack(id);
        }
    }

    /// Entries with lines still on their way.
    pub fn outstanding(&self) -> usize {
        self.lock().len()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EntryId, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output failed to start: {0}")]
    Start(String),
}

/// The configured output.
pub enum Output {
    Stdio(stdio::StdioOutput),
    Kinesis(Box<kinesis::KinesisOutput>),
}

impl Output {
    /// Takes an entry; may wait (backpressure) but never drops it.
    async fn submit(&mut self, entry: Entry, acks: &Arc<Acks>) {
        match self {
            Output::Stdio(o) => o.submit(entry, acks).await,
            Output::Kinesis(o) => o.submit(entry, acks).await,
        }
    }

    /// Sends what has waited long enough (the batch duration).
    async fn tick(&mut self) {
        if let Output::Kinesis(o) = self {
            o.flush_due().await;
        }
    }

    fn tick_every(&self) -> Duration {
        match self {
            Output::Stdio(_) => Duration::from_secs(3600),
            Output::Kinesis(o) => o.tick_every(),
        }
    }

    /// Sends everything held and waits until it is delivered.
    async fn finish(&mut self) {
        match self {
            Output::Stdio(o) => o.finish().await,
            Output::Kinesis(o) => o.finish().await,
        }
    }
}

/// Feeds buffered entries to the output until the buffer is closed and drained.
pub async fn drive(buffer: Arc<Buffer>, mut output: Output, acks: Arc<Acks>) {
    let mut tick = tokio::time::interval(output.tick_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            entry = buffer.next() => match entry {
                Some(e) => {
                    acks.register(&e).await;
                    output.submit(e, &acks).await;
                }
                None => break,
            },
            _ = tick.tick() => output.tick().await,
        }
    }
    output.finish().await;
}
