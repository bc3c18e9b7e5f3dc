//! Delivery health: whether the lines are getting out (see the module above).
//!
//! Outputs report what their calls and checks find ([`Delivery::set_problem`],
//! [`Delivery::throttled`]); the verdict adds what only time tells (throttled for longer than
//! [`THROTTLED_ALERT_AFTER`], a buffered line older than `delivery_alert_after`) when it is asked.

use crate::config::THROTTLED_ALERT_AFTER;
use crate::metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One output's state as its calls left it.
#[derive(Default)]
struct State {
    /// Why its calls fail (unreachable, refused, a permission, a missing stream or bucket).
    problem: Option<String>,
    /// Since when every call has been throttled, if it is.
    throttled_since: Option<Instant>,
    /// What lasts past a call that goes through: a setting the destination does not match
    /// (lines dead-lettered because of it), until the output sees it fixed.
    mismatch: Option<String>,
}

pub struct Delivery {
    outputs: Mutex<BTreeMap<&'static str, State>>,
    /// A buffered line older than this is a delivery problem.
    alert_after: Duration,
    metrics: Arc<Metrics>,
}

impl Delivery {
    pub fn new(alert_after: Duration, metrics: Arc<Metrics>) -> Delivery {
        Delivery {
            outputs: Mutex::new(BTreeMap::new()),
            alert_after,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, State>> {
        self.outputs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The output's calls fail, for `reason`.
    pub fn set_problem(&self, output: &'static str, reason: String) {
        let mut m = self.lock();
        let s = m.entry(output).or_default();
        if s.problem.as_deref() != Some(reason.as_str()) {
            tracing::warn!(output, %reason, "not delivering; the lines stay buffered");
            s.problem = Some(reason);
        }
        drop(m);
        self.publish();
    }

    /// The destination does not take what the output is set to send, for `reason`: it stays
    /// named until [`Delivery::clear_mismatch`], whatever later calls do.
    pub fn set_mismatch(&self, output: &'static str, reason: String) {
        let mut m = self.lock();
        let s = m.entry(output).or_default();
        if s.mismatch.as_deref() != Some(reason.as_str()) {
            tracing::warn!(output, %reason, "not delivering every line");
            s.mismatch = Some(reason);
        }
    }

    /// The destination takes what it refused before.
    pub fn clear_mismatch(&self, output: &'static str) {
        if let Some(was) = self.lock().get_mut(output).and_then(|s| s.mismatch.take()) {
            tracing::info!(output, %was, "the destination takes every line again");
        }
    }

    /// The output's calls are answered (throttled or not).
    pub fn clear(&self, output: &'static str) {
        let mut m = self.lock();
        let s = m.entry(output).or_default();
        if let Some(was) = s.problem.take() {
            tracing::info!(output, %was, "delivering again");
        }
        drop(m);
        self.publish();
    }

    /// The output's last call was throttled.
    pub fn throttled(&self, output: &'static str) {
        self.lock()
            .entry(output)
            .or_default()
            .throttled_since
            .get_or_insert_with(Instant::now);
    }

    /// The output's last call went through without throttling.
    pub fn unthrottled(&self, output: &'static str) {
        if let Some(s) = self.lock().get_mut(output) {
            s.throttled_since = None;
        }
    }

    /// `Ok` when every output delivers, else each reason (`<output>: <reason>`), given each
    /// output's name and the age of its oldest buffered line.
    pub fn verdict(&self, oldest: &[(&str, Duration)]) -> Result<(), Vec<String>> {
        let mut reasons = Vec::new();
        let m = self.lock();
        let mut names: Vec<&str> = m.keys().copied().collect();
        for (name, _) in oldest {
            if !names.contains(name) {
                names.push(name);
            }
        }
        names.sort_unstable();
        for name in names {
            let state = m.get(name);
            if let Some(p) = state.and_then(|s| s.problem.as_ref()) {
                reasons.push(format!("{name}: {p}"));
            }
            if let Some(p) = state.and_then(|s| s.mismatch.as_ref()) {
                reasons.push(format!("{name}: {p}"));
            }
            if let Some(since) = state.and_then(|s| s.throttled_since) {
                let for_ = since.elapsed();
                if for_ > THROTTLED_ALERT_AFTER {
                    reasons.push(format!(
                        "{name}: throttled for {} s (the stream needs more shards, or fewer writers)",
                        for_.as_secs()
                    ));
                }
            }
            let age = oldest
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, a)| *a)
                .max()
                .unwrap_or_default();
            if age > self.alert_after {
                reasons.push(format!(
                    "{name}: the oldest buffered line is {} s old (delivery_alert_after {})",
                    age.as_secs(),
                    humantime::format_duration(self.alert_after)
                ));
            }
        }
        drop(m);
        let ok = reasons.is_empty();
        self.metrics.delivering.set(i64::from(ok));
        if ok {
            Ok(())
        } else {
            Err(reasons)
        }
    }

    /// The gauge of the outputs' own reports (without the lag, which needs the buffer).
    fn publish(&self) {
        let none = self.lock().values().all(|s| s.problem.is_none());
        self.metrics.output_ready.set(i64::from(none));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_a_long_throttle_or_an_old_line_is_not_delivering() {
        let metrics = Arc::new(Metrics::default());
        let d = Delivery::new(Duration::from_secs(300), metrics.clone());
        let fresh = [("aws_kinesis", Duration::from_secs(2))];
        assert_eq!(d.verdict(&fresh), Ok(()));
        assert_eq!(metrics.delivering.get(), 1);
        d.set_problem("aws_kinesis", "Kinesis unreachable: x".into());
        assert_eq!(metrics.output_ready.get(), 0);
        assert_eq!(
            d.verdict(&fresh),
            Err(vec!["aws_kinesis: Kinesis unreachable: x".to_string()])
        );
        assert_eq!(metrics.delivering.get(), 0);
        d.clear("aws_kinesis");
        assert_eq!(metrics.output_ready.get(), 1);
        assert_eq!(d.verdict(&fresh), Ok(()));
        // A mismatch outlives answered calls, until it is fixed.
        d.set_mismatch("aws_kinesis", "records over 1048576 bytes".into());
        d.clear("aws_kinesis");
        assert_eq!(
            d.verdict(&fresh),
            Err(vec!["aws_kinesis: records over 1048576 bytes".to_string()])
        );
        d.clear_mismatch("aws_kinesis");
        assert_eq!(d.verdict(&fresh), Ok(()));
        // Throttled: only once it lasts.
        d.throttled("aws_kinesis");
        assert_eq!(d.verdict(&fresh), Ok(()));
        d.lock()
            .get_mut("aws_kinesis")
            .expect("state")
            .throttled_since = Instant::now().checked_sub(THROTTLED_ALERT_AFTER * 2);
        let why = d.verdict(&fresh).expect_err("throttled for long");
        assert!(why[0].starts_with("aws_kinesis: throttled for "), "{why:?}");
        d.unthrottled("aws_kinesis");
        assert_eq!(d.verdict(&fresh), Ok(()));
        // A line older than delivery_alert_after, whatever the output says.
        let old = [
            ("s3", Duration::from_secs(301)),
            ("aws_kinesis", Duration::ZERO),
        ];
        assert_eq!(
            d.verdict(&old),
            Err(vec![
                "s3: the oldest buffered line is 301 s old (delivery_alert_after 5m)".to_string()
            ])
        );
    }
}
