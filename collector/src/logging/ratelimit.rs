//! Rate limits for repeated log messages: the same warning at most once per interval, with the
//! number of repeats it stands for.
//!
//! Invariant: [`Every::allow`] is one atomic load on the common (suppressed) path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The default interval between two logs of one repeated message.
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(10);

pub struct Every {
    interval: Duration,
    origin: Instant,
    /// Milliseconds since `origin` of the last allowed message, plus one (0: never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for Every {
    fn default() -> Self {
        Every::new(DEFAULT_LOG_INTERVAL)
    }
}

impl Every {
    pub fn new(interval: Duration) -> Every {
        Every {
            interval,
            origin: Instant::now(),
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// True for the first call and then at most once per interval.
    pub fn allow(&self) -> bool {
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.interval.as_millis() as u64 {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.last
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Messages suppressed since the last call (for "and N more" notes).
    pub fn take_suppressed(&self) -> u64 {
        self.suppressed.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_held_back_within_the_interval() {
        let e = Every::new(Duration::from_secs(3600));
        assert!(e.allow());
        assert!((0..1000).all(|_| !e.allow()));
        assert_eq!(e.take_suppressed(), 1000);
        let e = Every::new(Duration::ZERO);
        assert!(e.allow() && e.allow());
    }
}
