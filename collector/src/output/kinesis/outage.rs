//! Waiting out an outage: the calls that failed wait their backoff (growing up to
//! `retry.max_wait`), but one of them, the probe, tries again every [`PROBE_EVERY`], and the
//! first call answered (the probe's, another lane's, or the shard map's ListShards) wakes every
//! call still waiting, so delivery resumes within about [`PROBE_EVERY`] of the stream coming back
//! whatever the backoff had grown to.
//!
//! Invariants: at most one waiting call is the probe at a time, and a probe that is dropped
//! gives the role up; waking never makes a call wait longer than its own backoff.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// How often the probe tries during an outage.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Outage {
    back: Notify,
    probing: AtomicBool,
}

/// The probe's role, given up when dropped.
struct Probe<'a>(&'a AtomicBool);

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Outage {
    /// A call was answered: the stream is reachable, every waiting call goes now.
    pub fn back(&self) {
        self.back.notify_waiters();
    }

    /// Waits `backoff` after a failed call, or less: [`PROBE_EVERY`] for the probe, and never
    /// past the moment a call is answered.
    pub async fn wait(&self, backoff: Duration) {
        let answered = self.back.notified();
        let probe = (!self.probing.swap(true, Ordering::AcqRel)).then(|| Probe(&self.probing));
        let wait = if probe.is_some() {
            backoff.min(PROBE_EVERY)
        } else {
            backoff
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = answered => {}
        }
        drop(probe);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn one_call_probes_and_an_answer_wakes_the_others() {
        let o = Arc::new(Outage::default());
        let start = Instant::now();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let o = o.clone();
                tokio::spawn(async move {
                    o.wait(Duration::from_secs(30)).await;
                    Instant::now()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        // The probe is back after PROBE_EVERY; the two others still wait their backoff.
        tokio::time::sleep(PROBE_EVERY).await;
        let finished: Vec<bool> = waiters.iter().map(|w| w.is_finished()).collect();
        assert_eq!(finished.iter().filter(|f| **f).count(), 1, "{finished:?}");
        // The probe's call is answered: everyone goes.
        o.back();
        for w in waiters {
            let at = w.await.expect("waiter");
            assert!(at - start < Duration::from_secs(2), "{:?}", at - start);
        }
        // The role was given up: the next failed call probes.
        let t = Instant::now();
        o.wait(Duration::from_secs(30)).await;
        assert_eq!(t.elapsed(), PROBE_EVERY);
    }
}
