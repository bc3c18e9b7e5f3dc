//! The buffer's byte budget (`max_bytes`), shared by ingest's appends and the output's acks.

use super::entry::BufferError;
use crate::config::WhenFull;
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

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
    use crate::config::WhenFull;
    use std::time::Duration;

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
