//! Counters, gauges and histograms for `/metrics`, kept in a `prometheus-client` registry and
//! rendered in its text format.
//!
//! Invariant: recording is an atomic operation (labelled counters look their series up under a
//! read lock), so metrics cost nothing that matters on the hot path; one [`Metrics`] per running
//! collector, shared by `Arc` and holding its own registry (no global state), so tests can run
//! several collectors in one process.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A counter.
#[derive(Default, Clone)]
pub struct Counter(prometheus_client::metrics::counter::Counter<u64, AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.0.inc();
    }

    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }

    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A gauge.
#[derive(Default, Clone)]
pub struct Gauge(prometheus_client::metrics::gauge::Gauge<i64, AtomicI64>);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.set(v);
    }

    pub fn add(&self, v: i64) {
        self.0.inc_by(v);
    }

    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

/// One label and its value.
type Label = [(&'static str, String); 1];

/// A counter per value of one label (status code, reason, error code).
pub struct Labeled {
    label: &'static str,
    family: Family<Label, prometheus_client::metrics::counter::Counter<u64, AtomicU64>>,
    total: AtomicU64,
    /// The values seen, for listing (a new value takes the write lock once).
    values: std::sync::RwLock<Vec<String>>,
}

impl Labeled {
    pub fn new(label: &'static str) -> Self {
        Labeled {
            label,
            family: Family::default(),
            total: AtomicU64::new(0),
            values: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// Every value seen and its count, in the order first seen.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        values.iter().map(|v| (v.clone(), self.get(v))).collect()
    }

    pub fn inc(&self, value: &str) {
        self.add(value, 1)
    }

    pub fn add(&self, value: &str, n: u64) {
        self.family
            .get_or_create(&[(self.label, value.to_string())])
            .inc_by(n);
        self.total.fetch_add(n, Ordering::Relaxed);
        let seen = self
            .values
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|v| v == value);
        if !seen {
            let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
            if !values.iter().any(|v| v == value) {
                values.push(value.to_string());
            }
        }
    }

    pub fn get(&self, value: &str) -> u64 {
        self.family
            .get(&[(self.label, value.to_string())])
            .map_or(0, |c| c.get())
    }

    /// The sum over every value.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

/// A gauge per output and reason.
pub struct ReasonGauge {
    family: Family<
        [(&'static str, String); 2],
        prometheus_client::metrics::gauge::Gauge<i64, AtomicI64>,
    >,
}

impl ReasonGauge {
    pub fn set(&self, output: &str, reason: &str, v: i64) {
        self.family
            .get_or_create(&[
                ("output", output.to_string()),
                ("reason", reason.to_string()),
            ])
            .set(v);
    }
}

/// A gauge per value of one label (the output).
pub struct LabeledGauge {
    label: &'static str,
    family: Family<Label, prometheus_client::metrics::gauge::Gauge<i64, AtomicI64>>,
}

impl LabeledGauge {
    pub fn new(label: &'static str) -> Self {
        LabeledGauge {
            label,
            family: Family::default(),
        }
    }

    pub fn set(&self, value: &str, v: i64) {
        self.family
            .get_or_create(&[(self.label, value.to_string())])
            .set(v);
    }

    pub fn get(&self, value: &str) -> i64 {
        self.family
            .get(&[(self.label, value.to_string())])
            .map_or(0, |g| g.get())
    }
}

/// A histogram with fixed bucket bounds.
#[derive(Clone)]
pub struct Histogram(prometheus_client::metrics::histogram::Histogram);

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
        Histogram(prometheus_client::metrics::histogram::Histogram::new(
            bounds.iter().copied(),
        ))
    }

    pub fn observe(&self, v: f64) {
        self.0.observe(v);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64())
    }
}

/// Everything the collector counts.
pub struct Metrics {
    registry: Registry,
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
    pub ingest_long_lines: Counter,
    pub connections_open: Gauge,
    pub connections_refused: Counter,
    pub connections_idle_closed: Counter,
    // dead letter
    pub dead_lettered: Labeled,
    pub dead_letter_rotations: Counter,
    // buffer
    pub buffer_bytes: Gauge,
    pub buffer_entries: Gauge,
    pub buffer_corrupt_entries: Counter,
    pub buffer_unreadable_segments: Counter,
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
    // every output
    pub output_lag_entries: LabeledGauge,
    pub output_lag_bytes: LabeledGauge,
    pub output_lag_oldest_ms: LabeledGauge,
    // the ledger
    pub ledger_received: LabeledGauge,
    pub ledger_delivered: LabeledGauge,
    pub ledger_buffered: LabeledGauge,
    pub ledger_dead_lettered: ReasonGauge,
    // admin
    pub admin_unauthorized: Counter,
    // s3
    pub s3_objects: Counter,
    pub s3_parts: Counter,
    pub s3_lines: Counter,
    pub s3_bytes: Counter,
    pub s3_upload_errors: Labeled,
    // tail
    pub tail_clients: Gauge,
    pub tail_dropped: Counter,
    pub tail_filters_refused: Counter,
    // tls
    pub tls_reloads: Labeled,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            http_requests: Labeled::new("code"),
            ingest_batches: Counter::default(),
            ingest_lines: Counter::default(),
            ingest_line_bytes: Counter::default(),
            ingest_body_bytes: Counter::default(),
            ingest_rejections: Labeled::new("reason"),
            ingest_duration: Histogram::new(SECONDS_BUCKETS),
            ingest_in_flight: Gauge::default(),
            ingest_prefix_stripped: Counter::default(),
            ingest_long_lines: Counter::default(),
            connections_open: Gauge::default(),
            connections_refused: Counter::default(),
            connections_idle_closed: Counter::default(),
            dead_lettered: Labeled::new("reason"),
            dead_letter_rotations: Counter::default(),
            ledger_received: LabeledGauge::new("output"),
            ledger_delivered: LabeledGauge::new("output"),
            ledger_buffered: LabeledGauge::new("output"),
            ledger_dead_lettered: ReasonGauge {
                family: Family::default(),
            },
            admin_unauthorized: Counter::default(),
            tail_filters_refused: Counter::default(),
            tls_reloads: Labeled::new("result"),
            buffer_bytes: Gauge::default(),
            buffer_entries: Gauge::default(),
            buffer_corrupt_entries: Counter::default(),
            buffer_unreadable_segments: Counter::default(),
            buffer_appended_lines: Counter::default(),
            buffer_syncs: Counter::default(),
            buffer_ack_syncs: Counter::default(),
            output_lines: Counter::default(),
            output_records: Counter::default(),
            output_bytes: Counter::default(),
            output_calls: Counter::default(),
            output_call_errors: Labeled::new("error"),
            output_failed_entries: Labeled::new("code"),
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
            output_lag_entries: LabeledGauge::new("output"),
            output_lag_bytes: LabeledGauge::new("output"),
            output_lag_oldest_ms: LabeledGauge::new("output"),
            s3_objects: Counter::default(),
            s3_parts: Counter::default(),
            s3_lines: Counter::default(),
            s3_bytes: Counter::default(),
            s3_upload_errors: Labeled::new("error"),
            tail_clients: Gauge::default(),
            tail_dropped: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "edgelog_http_requests",
            "HTTP requests answered, by status code",
            m.http_requests.family.clone(),
        );
        r.register(
            "edgelog_ingest_batches",
            "Batches (request bodies) accepted",
            m.ingest_batches.0.clone(),
        );
        r.register(
            "edgelog_ingest_lines",
            "Lines accepted into the buffer",
            m.ingest_lines.0.clone(),
        );
        r.register(
            "edgelog_ingest_line_bytes",
            "Bytes of the lines accepted",
            m.ingest_line_bytes.0.clone(),
        );
        r.register(
            "edgelog_ingest_body_bytes",
            "Request body bytes received, as sent (compressed or not)",
            m.ingest_body_bytes.0.clone(),
        );
        r.register(
            "edgelog_ingest_rejections",
            "Requests or lines refused, by reason",
            m.ingest_rejections.family.clone(),
        );
        r.register(
            "edgelog_ingest_request_duration_seconds",
            "Time to receive, decode and buffer one batch",
            m.ingest_duration.0.clone(),
        );
        r.register(
            "edgelog_ingest_in_flight",
            "Ingest requests being processed",
            m.ingest_in_flight.0.clone(),
        );
        r.register(
            "edgelog_connections_open",
            "Connections open",
            m.connections_open.0.clone(),
        );
        r.register(
            "edgelog_connections_refused",
            "Connections answered 503 and closed beyond max_connections",
            m.connections_refused.0.clone(),
        );
        r.register(
            "edgelog_connections_idle_closed",
            "Connections closed after idle_timeout",
            m.connections_idle_closed.0.clone(),
        );
        r.register(
            "edgelog_ingest_prefix_stripped",
            "Lines whose Fastly syslog-style prefix (classic, loggly, logplex) was removed",
            m.ingest_prefix_stripped.0.clone(),
        );
        r.register(
            "edgelog_ingest_long_lines",
            "Lines over ingest.max_line_bytes accepted with their batch (the Kinesis output dead-letters them)",
            m.ingest_long_lines.0.clone(),
        );
        r.register(
            "edgelog_dead_lettered",
            "Lines written to the dead-letter file, by reason",
            m.dead_lettered.family.clone(),
        );
        r.register(
            "edgelog_dead_letter_rotations",
            "Times the dead-letter file was rotated",
            m.dead_letter_rotations.0.clone(),
        );
        r.register(
            "edgelog_ledger_received_lines",
            "Lines each output was given: stored in the buffer, or found there at start",
            m.ledger_received.family.clone(),
        );
        r.register(
            "edgelog_ledger_delivered_lines",
            "Lines each output delivered",
            m.ledger_delivered.family.clone(),
        );
        r.register(
            "edgelog_ledger_dead_lettered_lines",
            "Lines each output dead-lettered, by reason",
            m.ledger_dead_lettered.family.clone(),
        );
        r.register(
            "edgelog_ledger_buffered_lines",
            "Lines each output has still to deliver",
            m.ledger_buffered.family.clone(),
        );
        r.register(
            "edgelog_admin_unauthorized",
            "Requests for the status page, status, metrics or the tail with a wrong or missing token",
            m.admin_unauthorized.0.clone(),
        );
        r.register(
            "edgelog_tls_reloads",
            "Reloads of the TLS certificate, key and client CA, by result (ok, failed)",
            m.tls_reloads.family.clone(),
        );
        r.register(
            "edgelog_tail_filters_refused",
            "Tail requests refused for a filter too long or malformed",
            m.tail_filters_refused.0.clone(),
        );
        r.register(
            "edgelog_buffer_bytes",
            "Bytes held by the buffer (not yet acknowledged by the output)",
            m.buffer_bytes.0.clone(),
        );
        r.register(
            "edgelog_buffer_entries",
            "Batches held by the buffer",
            m.buffer_entries.0.clone(),
        );
        r.register(
            "edgelog_buffer_corrupt_entries",
            "Buffer entries lost to damage: torn, failing their checksum, or in a segment that could not be read",
            m.buffer_corrupt_entries.0.clone(),
        );
        r.register(
            "edgelog_buffer_unreadable_segments",
            "Buffer segments that could not be read and were set aside as <name>.unreadable",
            m.buffer_unreadable_segments.0.clone(),
        );
        r.register(
            "edgelog_buffer_syncs",
            "Syncs of the disk buffer's active segment (each answers one group of batches)",
            m.buffer_syncs.0.clone(),
        );
        r.register(
            "edgelog_buffer_ack_syncs",
            "Saves of the acknowledgement position synced to disk with their directory",
            m.buffer_ack_syncs.0.clone(),
        );
        r.register(
            "edgelog_output_lines",
            "Lines delivered by the output",
            m.output_lines.0.clone(),
        );
        r.register(
            "edgelog_output_records_put",
            "Kinesis records put successfully",
            m.output_records.0.clone(),
        );
        r.register(
            "edgelog_output_bytes_put",
            "Bytes (data and partition keys) put successfully",
            m.output_bytes.0.clone(),
        );
        r.register(
            "edgelog_output_pacing_waits",
            "Times a sender waited for a shard's pace before its next call",
            m.output_pacing_waits.0.clone(),
        );
        r.register(
            "edgelog_output_lag_entries",
            "Entries (batches) an output has not yet delivered, by output",
            m.output_lag_entries.family.clone(),
        );
        r.register(
            "edgelog_output_lag_bytes",
            "Bytes of the buffer an output has not yet delivered, by output",
            m.output_lag_bytes.family.clone(),
        );
        r.register(
            "edgelog_output_lag_oldest_milliseconds",
            "Age of the oldest line an output has read and not yet delivered, by output",
            m.output_lag_oldest_ms.family.clone(),
        );
        r.register(
            "edgelog_s3_objects",
            "Objects written to the S3 archive",
            m.s3_objects.0.clone(),
        );
        r.register(
            "edgelog_s3_parts",
            "Multipart upload parts written to the S3 archive",
            m.s3_parts.0.clone(),
        );
        r.register(
            "edgelog_s3_lines",
            "Lines in objects written to the S3 archive",
            m.s3_lines.0.clone(),
        );
        r.register(
            "edgelog_s3_bytes",
            "Bytes of objects written to the S3 archive, as stored",
            m.s3_bytes.0.clone(),
        );
        r.register(
            "edgelog_s3_upload_errors",
            "S3 requests that failed (and were tried again), by error",
            m.s3_upload_errors.family.clone(),
        );
        r.register(
            "edgelog_output_oldest_pending_milliseconds",
            "Age of the oldest line read from the buffer and not yet delivered",
            m.output_oldest_pending_ms.0.clone(),
        );
        r.register(
            "edgelog_output_calls",
            "PutRecords calls made",
            m.output_calls.0.clone(),
        );
        r.register(
            "edgelog_output_call_errors",
            "PutRecords calls that failed as a whole, by error",
            m.output_call_errors.family.clone(),
        );
        r.register(
            "edgelog_output_failed_entries",
            "Entries a PutRecords response reported failed, by error code",
            m.output_failed_entries.family.clone(),
        );
        r.register(
            "edgelog_output_retries",
            "Records sent again after a failure",
            m.output_retries.0.clone(),
        );
        r.register(
            "edgelog_output_throttles",
            "Throttling responses (call or entry)",
            m.output_throttles.0.clone(),
        );
        r.register(
            "edgelog_output_batch_records",
            "Records per PutRecords call",
            m.output_batch_records.0.clone(),
        );
        r.register(
            "edgelog_output_batch_fill_ratio",
            "Fill of each PutRecords call: the larger of records/500 and bytes/5MiB",
            m.output_batch_fill.0.clone(),
        );
        r.register(
            "edgelog_output_put_latency_seconds",
            "PutRecords call latency",
            m.output_put_latency.0.clone(),
        );
        r.register(
            "edgelog_output_partition_key_fallback",
            "Lines without the partition-key field, sent shard-balanced",
            m.output_partition_fallback.0.clone(),
        );
        r.register(
            "edgelog_output_shard_map_refreshes",
            "Shard map (ListShards) refreshes",
            m.output_shard_refreshes.0.clone(),
        );
        r.register(
            "edgelog_output_ready",
            "1 when the output's last check succeeded",
            m.output_ready.0.clone(),
        );
        r.register(
            "edgelog_tail_clients",
            "Connected tail clients",
            m.tail_clients.0.clone(),
        );
        r.register(
            "edgelog_tail_dropped_lines",
            "Lines a slow tail client missed",
            m.tail_dropped.0.clone(),
        );
        m
    }
}

impl Metrics {
    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(8192);
        if let Err(e) = encode(&mut o, &self.registry) {
            o.push_str(&format!("# cannot encode the metrics: {e}\n"));
        }
        o
    }
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
        assert!(text.contains("edgelog_connections_open 0\n"));
        assert!(text.contains("edgelog_connections_idle_closed_total 0\n"));
        for help in text.lines().filter(|l| l.starts_with("# HELP")) {
            assert!(help.ends_with('.') && !help.ends_with(".."), "{help}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().expect("value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
