//! Retry timing: the configured backoff (with jitter) and a shared pacer that slows every sender
//! down while Kinesis throttles.
//!
//! Invariants: a wait never exceeds `max_wait`; jitter keeps retries of many senders from landing
//! together; the pacer's delay doubles on each throttled response and decays on clean ones, so the
//! sending rate converges on what the stream accepts instead of hammering it.

use crate::config::{Backoff, RetryPolicy};
use rand::Rng;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The wait before retry number `attempt` (1-based), before jitter.
pub fn base_delay(policy: &RetryPolicy, attempt: u32) -> Duration {
    let n = attempt.max(1);
    let d = match policy.backoff {
        Backoff::Constant => policy.initial_wait,
        Backoff::Linear => policy.initial_wait.saturating_mul(n),
        Backoff::Exponential => policy
            .initial_wait
            .saturating_mul(2u32.saturating_pow((n - 1).min(31))),
    };
    d.min(policy.max_wait)
}

/// The wait before retry `attempt`, with "equal jitter": between half and all of the base.
pub fn delay(policy: &RetryPolicy, attempt: u32) -> Duration {
    let base = base_delay(policy, attempt);
    let half = base / 2;
    let jitter = rand::rng().random_range(0..=half.as_micros().max(1) as u64);
    half + Duration::from_micros(jitter)
}

/// Spaces out the calls of all senders to one stream while it throttles.
pub struct Pacer {
    state: Mutex<PacerState>,
    max: Duration,
}

struct PacerState {
    delay: Duration,
    next: Instant,
}

/// The first step up when throttling starts.
const MIN_STEP: Duration = Duration::from_millis(10);

impl Pacer {
    pub fn new(max: Duration) -> Self {
        Pacer {
            state: Mutex::new(PacerState {
                delay: Duration::ZERO,
                next: Instant::now(),
            }),
            max: max.max(MIN_STEP),
        }
    }

    /// Waits for this sender's turn.
    pub async fn wait(&self) {
        let at = {
            let mut s = self.lock();
            if s.delay.is_zero() {
                return;
            }
            let now = Instant::now();
            let at = s.next.max(now);
            s.next = at + s.delay;
            at
        };
        tokio::time::sleep_until(at).await;
    }

    /// Kinesis throttled: slow down.
    pub fn throttled(&self) {
        let mut s = self.lock();
        s.delay = (s.delay * 2).max(MIN_STEP).min(self.max);
    }

    /// A clean response: speed up again.
    pub fn succeeded(&self) {
        let mut s = self.lock();
        s.delay = if s.delay <= Duration::from_millis(1) {
            Duration::ZERO
        } else {
            s.delay * 3 / 4
        };
    }

    pub fn current(&self) -> Duration {
        self.lock().delay
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PacerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            initial_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(5),
            backoff,
        }
    }

    #[test]
    fn backoff_shapes_and_cap() {
        let secs = |b, n| base_delay(&policy(b), n).as_secs();
        assert_eq!(
            (1..=4)
                .map(|n| secs(Backoff::Constant, n))
                .collect::<Vec<_>>(),
            [1, 1, 1, 1]
        );
        assert_eq!(
            (1..=6)
                .map(|n| secs(Backoff::Linear, n))
                .collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 5]
        );
        assert_eq!(
            (1..=5)
                .map(|n| secs(Backoff::Exponential, n))
                .collect::<Vec<_>>(),
            [1, 2, 4, 5, 5]
        );
        assert_eq!(
            base_delay(&policy(Backoff::Exponential), 1000),
            Duration::from_secs(5)
        );
        for n in 1..10 {
            let d = delay(&policy(Backoff::Exponential), n);
            let b = base_delay(&policy(Backoff::Exponential), n);
            assert!(d >= b / 2 && d <= b, "{d:?} vs {b:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_slows_down_on_throttling_and_recovers() {
        let p = Pacer::new(Duration::from_secs(1));
        let t0 = Instant::now();
        p.wait().await;
        assert_eq!(
            t0.elapsed(),
            Duration::ZERO,
            "no delay before any throttling"
        );
        for _ in 0..4 {
            p.throttled();
        }
        assert_eq!(p.current(), Duration::from_millis(80));
        let t0 = Instant::now();
        for _ in 0..5 {
            p.wait().await;
        }
        assert_eq!(
            t0.elapsed(),
            Duration::from_millis(320),
            "calls spaced by the delay"
        );
        for _ in 0..20 {
            p.throttled();
        }
        assert_eq!(p.current(), Duration::from_secs(1), "capped");
        for _ in 0..40 {
            p.succeeded();
        }
        assert_eq!(p.current(), Duration::ZERO);
    }
}
