//! Sender lanes: the tasks that take full batches and deliver them.
//!
//! Keyed strategies (a field, `static:`, `timestamp`, aggregated or not) get ordered lanes: each key
//! maps to one lane, which finishes a batch before it starts the next, so the order per key is
//! kept between calls. Unordered strategies (shard-balanced, `random`) share one queue served by
//! every lane, and a batch whose records must wait (pacing, a throttled entry's backoff) is set
//! aside and queued again when due, so no lane sits idle behind a hot shard.
//!
//! A lane writes the MD5 trailers of its batch's aggregated records before the first call (see
//! `batch::seal`), so that work is spread over the lanes, not done on the batching task.
//!
//! Invariant: the queues are bounded; closing them (dropping [`Lanes`]) lets every lane finish
//! what it holds, waiting batches included, and then stop.

use super::batch::{seal, Batch};
use super::deliver::{Later, Sender};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Batches a keyed lane may have waiting.
const LANE_QUEUE: usize = 16;

pub enum Lanes {
    /// One queue served by every lane (order does not matter).
    Shared(mpsc::Sender<Batch>),
    /// A queue per lane (order per key).
    Keyed(Vec<mpsc::Sender<Batch>>),
}

impl Lanes {
    /// Starts `count` lanes.
    pub fn start(sender: Arc<Sender>, keyed: bool, count: usize) -> (Lanes, Vec<JoinHandle<()>>) {
        let mut workers = Vec::with_capacity(count);
        if keyed {
            let mut txs = Vec::with_capacity(count);
            for _ in 0..count {
                // Deep enough that one busy lane does not hold up the others; the in-flight
                // byte budget bounds what these queues hold.
                let (tx, mut rx) = mpsc::channel::<Batch>(LANE_QUEUE);
                let s = sender.clone();
                workers.push(tokio::spawn(async move {
                    while let Some(mut batch) = rx.recv().await {
                        seal(&mut batch);
                        s.deliver(batch, false).await;
                    }
                }));
                txs.push(tx);
            }
            return (Lanes::Keyed(txs), workers);
        }
        let (tx, rx) = mpsc::channel::<Batch>(count.max(1));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..count {
            let s = sender.clone();
            let rx = rx.clone();
            let requeue = tx.downgrade();
            workers.push(tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some(mut batch) = next else { break };
                    seal(&mut batch);
                    let Some(Later { batch, at }) = s.deliver(batch, true).await else {
                        continue;
                    };
                    match requeue.upgrade() {
                        // Queued again when due; the queue stays open until it is.
                        Some(tx) => {
                            tokio::spawn(async move {
                                tokio::time::sleep_until(at).await;
                                if let Err(back) = tx.send(batch).await {
                                    tracing::error!(
                                        records = back.0.len(),
                                        "Kinesis lanes closed with records waiting; they stay in the buffer"
                                    );
                                }
                            });
                        }
                        // Closing: finish it here.
                        None => {
                            tokio::time::sleep_until(at).await;
                            s.deliver(batch, false).await;
                        }
                    }
                }
            }));
        }
        (Lanes::Shared(tx), workers)
    }

    /// Hands a batch to lane `lane` (or the shared queue); waits while it is full.
    pub async fn send(&self, lane: usize, batch: Batch) -> bool {
        match self {
            Lanes::Shared(tx) => tx.send(batch).await.is_ok(),
            Lanes::Keyed(txs) => txs[lane % txs.len()].send(batch).await.is_ok(),
        }
    }
}
