//! Counters, gauges and histograms for `/metrics`, in the Prometheus text format.
//!
//! Invariant: recording is a few atomic operations (labelled counters take a short lock on a
//! small map), so metrics cost nothing that matters on the hot path; one [`Metrics`] per running
//! collector, shared by `Arc`, so tests can run several collectors in one process.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1)
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counter per label value (status code, reason, error code).
#[derive(Default)]
pub struct Labeled(Mutex<BTreeMap<String, u64>>);

impl Labeled {
    pub fn inc(&self, label: &str) {
        self.add(label, 1)
    }

    pub fn add(&self, label: &str, n: u64) {
        if let Ok(mut m) = self.0.lock() {
            match m.get_mut(label) {
                Some(v) => *v += n,
                None => {
                    m.insert(label.to_string(), n);
                }
            }
        }
    }

    pub fn get(&self, label: &str) -> u64 {
        self.0
            .lock()
            .map(|m| m.get(label).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    fn snapshot(&self) -> Vec<(String, u64)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }
}

/// A histogram with fixed bucket bounds.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in millionths of the unit, to stay atomic.
    sum_micros: AtomicU64,
}

/// Seconds, for durations.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Records per PutRecords call.
pub const RECORDS_BUCKETS: &[f64] = &[1.0, 10.0, 50.0, 100.0, 250.0, 400.0, 475.0, 499.0, 500.0];
/// Fraction of a PutRecords call's record or byte limit used.
pub const FILL_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64())
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// Everything the collector counts.
pub struct Metrics {
    // ingest
    pub http_requests: Labeled,
    pub ingest_batches: Counter,
    pub ingest_lines: Counter,
    pub ingest_line_bytes: Counter,
    pub ingest_body_bytes: Counter,
    pub ingest_rejections: Labeled,
    pub ingest_duration: Histogram,
    pub ingest_in_flight: Gauge,
    pub ingest_prefix_stripped: Counter,
    // dead letter
    pub dead_lettered: Labeled,
    // buffer
    pub buffer_bytes: Gauge,
    pub buffer_entries: Gauge,
    pub buffer_corrupt_entries: Counter,
    pub buffer_appended_lines: Counter,
    pub buffer_syncs: Counter,
    pub buffer_ack_syncs: Counter,
    // output
    pub output_lines: Counter,
    pub output_records: Counter,
    pub output_bytes: Counter,
    pub output_calls: Counter,
    pub output_call_errors: Labeled,
    pub output_failed_entries: Labeled,
    pub output_retries: Counter,
    pub output_throttles: Counter,
    pub output_batch_records: Histogram,
    pub output_batch_fill: Histogram,
    pub output_put_latency: Histogram,
    pub output_partition_fallback: Counter,
    pub output_shard_refreshes: Counter,
    pub output_ready: Gauge,
    pub output_pacing_waits: Counter,
    pub output_oldest_pending_ms: Gauge,
    // tail
    pub tail_clients: Gauge,
    pub tail_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            http_requests: Labeled::default(),
            ingest_batches: Counter::default(),
            ingest_lines: Counter::default(),
            ingest_line_bytes: Counter::default(),
            ingest_body_bytes: Counter::default(),
            ingest_rejections: Labeled::default(),
            ingest_duration: Histogram::new(SECONDS_BUCKETS),
            ingest_in_flight: Gauge::default(),
            ingest_prefix_stripped: Counter::default(),
            dead_lettered: Labeled::default(),
            buffer_bytes: Gauge::default(),
            buffer_entries: Gauge::default(),
            buffer_corrupt_entries: Counter::default(),
            buffer_appended_lines: Counter::default(),
            buffer_syncs: Counter::default(),
            buffer_ack_syncs: Counter::default(),
            output_lines: Counter::default(),
            output_records: Counter::default(),
            output_bytes: Counter::default(),
            output_calls: Counter::default(),
            output_call_errors: Labeled::default(),
            output_failed_entries: Labeled::default(),
            output_retries: Counter::default(),
            output_throttles: Counter::default(),
            output_batch_records: Histogram::new(RECORDS_BUCKETS),
            output_batch_fill: Histogram::new(FILL_BUCKETS),
            output_put_latency: Histogram::new(SECONDS_BUCKETS),
            output_partition_fallback: Counter::default(),
            output_shard_refreshes: Counter::default(),
            output_ready: Gauge::default(),
            output_pacing_waits: Counter::default(),
            output_oldest_pending_ms: Gauge::default(),
            tail_clients: Gauge::default(),
            tail_dropped: Counter::default(),
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(8192);
        labeled(
            &mut o,
            "edgelog_http_requests_total",
            "HTTP requests answered, by status code.",
            "code",
            &self.http_requests,
        );
        counter(
            &mut o,
            "edgelog_ingest_batches_total",
            "Batches (request bodies) accepted.",
            &self.ingest_batches,
        );
        counter(
            &mut o,
            "edgelog_ingest_lines_total",
            "Lines accepted into the buffer.",
            &self.ingest_lines,
        );
        counter(
            &mut o,
            "edgelog_ingest_line_bytes_total",
            "Bytes of the lines accepted.",
            &self.ingest_line_bytes,
        );
        counter(
            &mut o,
            "edgelog_ingest_body_bytes_total",
            "Request body bytes received, as sent (compressed or not).",
            &self.ingest_body_bytes,
        );
        labeled(
            &mut o,
            "edgelog_ingest_rejections_total",
            "Requests or lines refused, by reason.",
            "reason",
            &self.ingest_rejections,
        );
        histogram(
            &mut o,
            "edgelog_ingest_request_duration_seconds",
            "Time to receive, decode and buffer one batch.",
            &self.ingest_duration,
        );
        gauge(
            &mut o,
            "edgelog_ingest_in_flight",
            "Ingest requests being processed.",
            &self.ingest_in_flight,
        );
        counter(
            &mut o,
            "edgelog_ingest_prefix_stripped_total",
            "Lines whose Fastly syslog-style prefix (classic, loggly, logplex) was removed.",
            &self.ingest_prefix_stripped,
        );
        labeled(
            &mut o,
            "edgelog_dead_lettered_total",
            "Lines written to the dead-letter file, by reason.",
            "reason",
            &self.dead_lettered,
        );
        gauge(
            &mut o,
            "edgelog_buffer_bytes",
            "Bytes held by the buffer (not yet acknowledged by the output).",
            &self.buffer_bytes,
        );
        gauge(
            &mut o,
            "edgelog_buffer_entries",
            "Batches held by the buffer.",
            &self.buffer_entries,
        );
        counter(
            &mut o,
            "edgelog_buffer_corrupt_entries_total",
            "Buffer entries skipped because their checksum failed.",
            &self.buffer_corrupt_entries,
        );
        counter(
            &mut o,
            "edgelog_buffer_syncs_total",
            "Syncs of the disk buffer's active segment (each answers one group of batches).",
            &self.buffer_syncs,
        );
        counter(
            &mut o,
            "edgelog_buffer_ack_syncs_total",
            "Saves of the acknowledgement position synced to disk with their directory.",
            &self.buffer_ack_syncs,
        );
        counter(
            &mut o,
            "edgelog_output_lines_total",
            "Lines delivered by the output.",
            &self.output_lines,
        );
        counter(
            &mut o,
            "edgelog_output_records_put_total",
            "Kinesis records put successfully.",
            &self.output_records,
        );
        counter(
            &mut o,
            "edgelog_output_bytes_put_total",
            "Bytes (data and partition keys) put successfully.",
            &self.output_bytes,
        );
        counter(
            &mut o,
            "edgelog_output_pacing_waits_total",
            "Times a sender waited for a shard's pace before its next call.",
            &self.output_pacing_waits,
        );
        gauge(
            &mut o,
            "edgelog_output_oldest_pending_milliseconds",
            "Age of the oldest line read from the buffer and not yet delivered.",
            &self.output_oldest_pending_ms,
        );
        counter(
            &mut o,
            "edgelog_output_calls_total",
            "PutRecords calls made.",
            &self.output_calls,
        );
        labeled(
            &mut o,
            "edgelog_output_call_errors_total",
            "PutRecords calls that failed as a whole, by error.",
            "error",
            &self.output_call_errors,
        );
        labeled(
            &mut o,
            "edgelog_output_failed_entries_total",
            "Entries a PutRecords response reported failed, by error code.",
            "code",
            &self.output_failed_entries,
        );
        counter(
            &mut o,
            "edgelog_output_retries_total",
            "Records sent again after a failure.",
            &self.output_retries,
        );
        counter(
            &mut o,
            "edgelog_output_throttles_total",
            "Throttling responses (call or entry).",
            &self.output_throttles,
        );
        histogram(
            &mut o,
            "edgelog_output_batch_records",
            "Records per PutRecords call.",
            &self.output_batch_records,
        );
        histogram(
            &mut o,
            "edgelog_output_batch_fill_ratio",
            "Fill of each PutRecords call: the larger of records/500 and bytes/5MiB.",
            &self.output_batch_fill,
        );
        histogram(
            &mut o,
            "edgelog_output_put_latency_seconds",
            "PutRecords call latency.",
            &self.output_put_latency,
        );
        counter(
            &mut o,
            "edgelog_output_partition_key_fallback_total",
            "Lines without the partition-key field, sent shard-balanced.",
            &self.output_partition_fallback,
        );
        counter(
            &mut o,
            "edgelog_output_shard_map_refreshes_total",
            "Shard map (ListShards) refreshes.",
            &self.output_shard_refreshes,
        );
        gauge(
            &mut o,
            "edgelog_output_ready",
            "1 when the output's last check succeeded.",
            &self.output_ready,
        );
        gauge(
            &mut o,
            "edgelog_tail_clients",
            "Connected tail clients.",
            &self.tail_clients,
        );
        counter(
            &mut o,
            "edgelog_tail_dropped_lines_total",
            "Lines a slow tail client missed.",
            &self.tail_dropped,
        );
        o
    }
}

fn head(o: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(o: &mut String, name: &str, help: &str, c: &Counter) {
    head(o, name, help, "counter");
    let _ = writeln!(o, "{name} {}", c.get());
}

fn gauge(o: &mut String, name: &str, help: &str, g: &Gauge) {
    head(o, name, help, "gauge");
    let _ = writeln!(o, "{name} {}", g.get());
}

fn labeled(o: &mut String, name: &str, help: &str, label: &str, l: &Labeled) {
    head(o, name, help, "counter");
    for (k, v) in l.snapshot() {
        let k = k
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = writeln!(o, "{name}{{{label}=\"{k}\"}} {v}");
    }
}

fn histogram(o: &mut String, name: &str, help: &str, h: &Histogram) {
    head(o, name, help, "histogram");
    let mut cumulative = 0;
    for (b, c) in h.bounds.iter().zip(&h.buckets) {
        cumulative += c.load(Ordering::Relaxed);
        let _ = writeln!(o, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
    }
    let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(o, "{name}_sum {}", h.sum());
    let _ = writeln!(o, "{name}_count {}", h.count());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.ingest_lines.add(5);
        m.http_requests.inc("204");
        m.http_requests.inc("204");
        m.ingest_rejections.inc("unauthorized");
        m.output_failed_entries
            .add("ProvisionedThroughputExceededException", 3);
        m.output_put_latency.observe(0.003);
        m.output_put_latency.observe(100.0);
        let text = m.render();
        assert!(text.contains("edgelog_ingest_lines_total 5\n"));
        assert!(text.contains("edgelog_http_requests_total{code=\"204\"} 2\n"));
        assert!(text.contains("edgelog_ingest_rejections_total{reason=\"unauthorized\"} 1\n"));
        assert!(text.contains(
            "edgelog_output_failed_entries_total{code=\"ProvisionedThroughputExceededException\"} 3\n"
        ));
        assert!(text.contains("edgelog_output_put_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("edgelog_output_put_latency_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("edgelog_output_put_latency_seconds_count 2\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().expect("value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
