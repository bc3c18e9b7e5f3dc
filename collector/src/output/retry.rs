//! Retry timing for every output: the configured backoff (with jitter), and the short backoff of
//! throttled Kinesis entries.
//!
//! Invariants: a wait never exceeds its maximum; jitter keeps retries of many senders from landing
//! together. Kinesis's pacing per shard is `kinesis/pacing.rs`'s.

use crate::config::{Backoff, RetryPolicy};
use rand::Rng;
use std::time::Duration;

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

/// The first wait of an entry that was throttled or failed for the moment.
pub const THROTTLE_RETRY_FIRST: Duration = Duration::from_millis(20);
/// The longest such wait (the shard's pace does the rest).
pub const THROTTLE_RETRY_MAX: Duration = Duration::from_secs(1);

/// The wait before sending again an entry throttled `waits` times (1-based): short, doubling,
/// jittered; never counted against `max_retries`.
pub fn throttle_delay(waits: u32) -> Duration {
    delay(
        &RetryPolicy {
            max_retries: 0,
            initial_wait: THROTTLE_RETRY_FIRST,
            max_wait: THROTTLE_RETRY_MAX,
            backoff: Backoff::Exponential,
        },
        waits,
    )
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

    #[test]
    fn throttled_entries_wait_briefly_and_never_long() {
        let first = throttle_delay(1);
        assert!(first >= THROTTLE_RETRY_FIRST / 2 && first <= THROTTLE_RETRY_FIRST);
        assert!(throttle_delay(100) <= THROTTLE_RETRY_MAX);
    }
}
