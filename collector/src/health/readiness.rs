//! Readiness: whether the collector takes batches now (see the module above).
//!
//! Invariants: the phase only moves forward (starting, accepting, draining, shutting down); a
//! component's problem stays until that component says it is gone.

use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

const STARTING: u8 = 0;
const ACCEPTING: u8 = 1;
const DRAINING: u8 = 2;
const SHUTTING_DOWN: u8 = 3;

pub struct Health {
    phase: AtomicU8,
    /// Per component (the buffer): why it would refuse a batch.
    problems: Mutex<BTreeMap<&'static str, String>>,
    metrics: Arc<Metrics>,
}

impl Health {
    /// A collector that is starting (not ready until [`Health::started`]).
    pub fn new(metrics: Arc<Metrics>) -> Health {
        Health {
            phase: AtomicU8::new(STARTING),
            problems: Mutex::new(BTreeMap::new()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, String>> {
        self.problems.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves to `to` when that is forward; returns whether it moved.
    fn advance(&self, to: u8) -> bool {
        let moved = self
            .phase
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                (p < to).then_some(to)
            })
            .is_ok();
        self.publish();
        moved
    }

    /// Serving: batches are taken from now on.
    pub fn started(&self) {
        self.advance(ACCEPTING);
    }

    /// Stops taking batches for good, to deliver what is buffered; false when it already was
    /// (or is shutting down).
    pub fn start_draining(&self) -> bool {
        self.advance(DRAINING)
    }

    pub fn start_shutdown(&self) {
        self.advance(SHUTTING_DOWN);
    }

    pub fn draining(&self) -> bool {
        self.phase.load(Ordering::SeqCst) == DRAINING
    }

    pub fn shutting_down(&self) -> bool {
        self.phase.load(Ordering::SeqCst) == SHUTTING_DOWN
    }

    /// `component` would refuse batches, for `reason`.
    pub fn set_problem(&self, component: &'static str, reason: String) {
        let mut m = self.lock();
        if m.get(component) != Some(&reason) {
            tracing::warn!(component, %reason, "not ready: batches are refused");
            m.insert(component, reason);
        }
        drop(m);
        self.publish();
    }

    /// `component` takes batches again.
    pub fn clear(&self, component: &'static str) {
        if let Some(was) = self.lock().remove(component) {
            tracing::info!(component, %was, "ready again: batches are taken");
        }
        self.publish();
    }

    /// `Ok` when batches are taken, else every reason (one per line).
    pub fn readiness(&self) -> Result<(), String> {
        let phase = match self.phase.load(Ordering::SeqCst) {
            STARTING => Some("starting"),
            DRAINING => Some("draining"),
            SHUTTING_DOWN => Some("shutting down"),
            _ => None,
        };
        let mut reasons: Vec<String> = phase.into_iter().map(str::to_string).collect();
        reasons.extend(self.lock().iter().map(|(c, r)| format!("{c}: {r}")));
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("\n"))
        }
    }

    fn publish(&self) {
        self.metrics.ready.set(i64::from(self.readiness().is_ok()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_while_taking_batches() {
        let metrics = Arc::new(Metrics::default());
        let h = Health::new(metrics.clone());
        assert_eq!(h.readiness(), Err("starting".into()));
        assert_eq!(metrics.ready.get(), 0);
        h.started();
        assert_eq!(h.readiness(), Ok(()));
        assert_eq!(metrics.ready.get(), 1);
        h.set_problem("buffer", "the buffer's disk is full".into());
        assert_eq!(
            h.readiness(),
            Err("buffer: the buffer's disk is full".into())
        );
        assert_eq!(metrics.ready.get(), 0);
        h.clear("buffer");
        assert_eq!(h.readiness(), Ok(()));
        assert!(h.start_draining());
        assert!(!h.start_draining(), "draining twice is the same drain");
        assert!(h.draining());
        assert_eq!(h.readiness(), Err("draining".into()));
        h.start_shutdown();
        assert!(!h.draining() && h.shutting_down());
        assert_eq!(h.readiness(), Err("shutting down".into()));
        assert!(!h.start_draining(), "no drain once shutting down");
        h.started();
        assert_eq!(h.readiness(), Err("shutting down".into()), "never back");
    }
}
