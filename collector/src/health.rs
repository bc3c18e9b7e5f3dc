//! Liveness and readiness: what `/readyz` answers.
//!
//! Each component (an output, the buffer) reports its own state under its name, with the reason
//! when it is not ready; the collector is ready when none reports a problem and it is not
//! shutting down.
//!
//! Invariant: a reason is a sentence for an operator; it never holds a secret (errors from AWS
//! name codes and actions, never keys).

use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Health {
    shutting_down: AtomicBool,
    /// Per component: `None` when ready, else why not.
    outputs: Mutex<BTreeMap<&'static str, Option<String>>>,
    metrics: Arc<Metrics>,
}

impl Health {
    pub fn new(metrics: Arc<Metrics>) -> Health {
        Health {
            shutting_down: AtomicBool::new(false),
            outputs: Mutex::new(BTreeMap::new()),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Option<String>>> {
        self.outputs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_ready(&self, output: &'static str) {
        let mut m = self.lock();
        if let Some(Some(reason)) = m.insert(output, None) {
            tracing::info!(component = output, was = %reason, "ready again");
        }
        self.publish(&m);
    }

    pub fn set_not_ready(&self, output: &'static str, reason: String) {
        let mut m = self.lock();
        let changed = m
            .get(output)
            .is_none_or(|r| r.as_deref() != Some(reason.as_str()));
        if changed {
            tracing::warn!(component = output, %reason, "not ready");
            m.insert(output, Some(reason));
        }
        self.publish(&m);
    }

    fn publish(&self, m: &BTreeMap<&'static str, Option<String>>) {
        self.metrics
            .output_ready
            .set(i64::from(m.values().all(Option::is_none)));
    }

    pub fn start_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// `Ok` when ready, else every reason (one per line).
    pub fn readiness(&self) -> Result<(), String> {
        if self.shutting_down() {
            return Err("shutting down".into());
        }
        let m = self.lock();
        let reasons: Vec<String> = m
            .iter()
            .filter_map(|(name, r)| r.as_ref().map(|r| format!("{name}: {r}")))
            .collect();
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_names_the_output_and_the_reason_until_it_recovers() {
        let metrics = Arc::new(Metrics::default());
        let h = Health::new(metrics.clone());
        h.set_ready("aws_kinesis");
        assert_eq!(h.readiness(), Ok(()));
        assert_eq!(metrics.output_ready.get(), 1);
        h.set_not_ready("aws_kinesis", "Kinesis permission missing: x".into());
        assert_eq!(
            h.readiness(),
            Err("aws_kinesis: Kinesis permission missing: x".into())
        );
        assert_eq!(metrics.output_ready.get(), 0);
        h.set_ready("aws_kinesis");
        assert_eq!(h.readiness(), Ok(()));
        h.start_shutdown();
        assert_eq!(h.readiness(), Err("shutting down".into()));
    }
}
