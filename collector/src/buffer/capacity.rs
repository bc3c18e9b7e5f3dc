//! The buffer's byte budget (`max_bytes`), shared by ingest's appends and the output's acks.

use super::entry::BufferError;
use crate::config::WhenFull;
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A byte budget with the `when_full` policy.
pub struct Capacity {
    max: u64,
    used: AtomicU64,
    /// A reservation was refused for room, and no room was freed since.
    refusing: AtomicBool,
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
            refusing: AtomicBool::new(false),
            freed: Notify::new(),
            policy,
            block_timeout,
            metrics,
        }
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// Whether the last reservation was refused for room and none was freed since: the next
    /// batch would be refused too.
    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Acquire)
    }

    fn refused(&self) -> Result<(), BufferError> {
        self.refusing.store(true, Ordering::Release);
        Err(BufferError::Full)
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
            return self.refused();
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
                    self.refused()
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
        if n > 0 {
            self.refusing.store(false, Ordering::Release);
        }
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

    /// Readiness reads `refusing`: set by a refusal (either policy), cleared by freed room;
    /// waiting (`block`) is not refusing.
    #[tokio::test(start_paused = true)]
    async fn refusing_lasts_from_a_refusal_until_room_is_freed() {
        let m = Arc::new(Metrics::default());
        let reject = Capacity::new(100, WhenFull::Reject, Duration::from_secs(1), m.clone());
        reject.reserve(90).await.expect("fits");
        assert!(!reject.refusing(), "full enough, but nothing refused yet");
        assert_eq!(reject.reserve(20).await, Err(BufferError::Full));
        assert!(reject.refusing());
        reject.release(30);
        assert!(!reject.refusing());

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
        assert!(!block.refusing(), "a waiting append is still taken");
        assert_eq!(waiter.await.expect("join"), Err(BufferError::Full));
        assert!(block.refusing(), "it timed out: refused");
    }
}
