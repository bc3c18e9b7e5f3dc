//! Counters, gauges and histograms for `/metrics`, kept in a `prometheus-client` registry and
//! rendered in its text format.
//!
//! Each metric is declared once, in the list at [`Metrics`]: its field, its type and how it is
//! made, its name and its help text; the macro makes the struct and registers every field.
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
#[derive(Default)]
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

/// A metric that can be registered under a name.
trait Register {
    fn register(&self, registry: &mut Registry, name: &'static str, help: &'static str);
    /// Records one sample for a made-up label value, so that the exposition shows the labels.
    #[cfg(test)]
    fn touch(&self) {}
}

impl Register for Counter {
    fn register(&self, r: &mut Registry, name: &'static str, help: &'static str) {
        r.register(name, help, self.0.clone());
    }
}

impl Register for Gauge {
    fn register(&self, r: &mut Registry, name: &'static str, help: &'static str) {
        r.register(name, help, self.0.clone());
    }
}

impl Register for Histogram {
    fn register(&self, r: &mut Registry, name: &'static str, help: &'static str) {
        r.register(name, help, self.0.clone());
    }
}

impl Register for Labeled {
    fn register(&self, r: &mut Registry, name: &'static str, help: &'static str) {
        r.register(name, help, self.family.clone());
    }
    #[cfg(test)]
    fn touch(&self) {
        self.inc("x");
    }
}

impl Register for LabeledGauge {
    fn register(&self, r: &mut Registry, name: &'static str, help: &'static str) {
        r.register(name, help, self.family.clone());
    }
    #[cfg(test)]
    fn touch(&self) {
        self.set("x", 1);
    }
}

impl Register for ReasonGauge {
    fn register(&self, r: &mut Registry, name: &'static str, help: &'static str) {
        r.register(name, help, self.family.clone());
    }
    #[cfg(test)]
    fn touch(&self) {
        self.set("x", "y", 1);
    }
}

/// Declares [`Metrics`] from one list: `field: Type = constructor, "name", "help";`.
macro_rules! metrics {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $new:expr, $name:literal, $help:literal;)*) => {
        /// Everything the collector counts.
        pub struct Metrics {
            registry: Registry,
            $($(#[$doc])* pub $field: $ty,)*
        }

        impl Default for Metrics {
            fn default() -> Self {
                let mut registry = Registry::default();
                $(
                    let $field: $ty = $new;
                    $field.register(&mut registry, $name, $help);
                )*
                Metrics {
                    registry,
                    $($field,)*
                }
            }
        }

        #[cfg(test)]
        impl Metrics {
            /// Gives every labelled metric one series, so that the exposition shows every
            /// metric's labels.
            fn touch_all(&self) {
                $(self.$field.touch();)*
            }
        }
    };
}

metrics! {
    // ingest
    http_requests: Labeled = Labeled::new("code"),
        "edgelog_http_requests",
        "HTTP requests answered, by status code";
    ingest_batches: Counter = Counter::default(),
        "edgelog_ingest_batches",
        "Batches (request bodies) accepted";
    ingest_lines: Counter = Counter::default(),
        "edgelog_ingest_lines",
        "Lines accepted into the buffer";
    ingest_line_bytes: Counter = Counter::default(),
        "edgelog_ingest_line_bytes",
        "Bytes of the lines accepted";
    ingest_body_bytes: Counter = Counter::default(),
        "edgelog_ingest_body_bytes",
        "Request body bytes received, as sent (compressed or not)";
    ingest_rejections: Labeled = Labeled::new("reason"),
        "edgelog_ingest_rejections",
        "Requests or lines refused, by reason";
    ingest_duration: Histogram = Histogram::new(SECONDS_BUCKETS),
        "edgelog_ingest_request_duration_seconds",
        "Time to receive, decode and buffer one batch";
    ingest_in_flight: Gauge = Gauge::default(),
        "edgelog_ingest_in_flight",
        "Ingest requests being processed";
    ingest_prefix_stripped: Counter = Counter::default(),
        "edgelog_ingest_prefix_stripped",
        "Lines whose Fastly syslog-style prefix (classic, loggly, logplex) was removed";
    ingest_long_lines: Counter = Counter::default(),
        "edgelog_ingest_long_lines",
        "Lines over ingest.max_line_bytes accepted with their batch (the Kinesis output dead-letters them)";
    connections_open: Gauge = Gauge::default(),
        "edgelog_connections_open",
        "Connections open";
    connections_refused: Counter = Counter::default(),
        "edgelog_connections_refused",
        "Connections answered 503 and closed beyond max_connections";
    connections_idle_closed: Counter = Counter::default(),
        "edgelog_connections_idle_closed",
        "Connections closed after idle_timeout";
    // dead letter
    dead_lettered: Labeled = Labeled::new("reason"),
        "edgelog_dead_lettered",
        "Lines written to the dead-letter file, by reason";
    dead_letter_rotations: Counter = Counter::default(),
        "edgelog_dead_letter_rotations",
        "Times the dead-letter file was rotated";
    // buffer
    buffer_bytes: Gauge = Gauge::default(),
        "edgelog_buffer_bytes",
        "Bytes held by the buffer (not yet acknowledged by the output)";
    buffer_entries: Gauge = Gauge::default(),
        "edgelog_buffer_entries",
        "Batches held by the buffer";
    buffer_corrupt_entries: Counter = Counter::default(),
        "edgelog_buffer_corrupt_entries",
        "Buffer entries lost to damage: torn, failing their checksum, or in a segment that could not be read";
    buffer_unreadable_segments: Counter = Counter::default(),
        "edgelog_buffer_unreadable_segments",
        "Buffer segments that could not be read and were set aside as <name>.unreadable";
    buffer_syncs: Counter = Counter::default(),
        "edgelog_buffer_syncs",
        "Syncs of the disk buffer's active segment (each answers one group of batches)";
    buffer_ack_syncs: Counter = Counter::default(),
        "edgelog_buffer_ack_syncs",
        "Saves of the acknowledgement position synced to disk with their directory";
    buffer_ack_save_errors: Counter = Counter::default(),
        "edgelog_buffer_ack_save_errors",
        "Saves of the acknowledgement position that failed (tried again at the next save)";
    buffer_max_bytes: Gauge = Gauge::default(),
        "edgelog_buffer_max_bytes",
        "The buffer's capacity in bytes (buffer.max_bytes)";
    // output
    output_lines: Counter = Counter::default(),
        "edgelog_output_lines",
        "Lines delivered by the output";
    output_records: Counter = Counter::default(),
        "edgelog_output_records_put",
        "Kinesis records put successfully";
    output_bytes: Counter = Counter::default(),
        "edgelog_output_bytes_put",
        "Bytes (data and partition keys) put successfully";
    output_calls: Counter = Counter::default(),
        "edgelog_output_calls",
        "PutRecords calls made";
    output_call_errors: Labeled = Labeled::new("error"),
        "edgelog_output_call_errors",
        "PutRecords calls that failed as a whole, by error";
    output_failed_entries: Labeled = Labeled::new("code"),
        "edgelog_output_failed_entries",
        "Entries a PutRecords response reported failed, by error code";
    output_retries: Counter = Counter::default(),
        "edgelog_output_retries",
        "Records sent again after a failure";
    output_throttles: Counter = Counter::default(),
        "edgelog_output_throttles",
        "Throttling responses (call or entry)";
    output_batch_records: Histogram = Histogram::new(RECORDS_BUCKETS),
        "edgelog_output_batch_records",
        "Records per PutRecords call";
    output_batch_fill: Histogram = Histogram::new(FILL_BUCKETS),
        "edgelog_output_batch_fill_ratio",
        "Fill of each PutRecords call: the larger of records/500 and bytes/5MiB";
    output_put_latency: Histogram = Histogram::new(SECONDS_BUCKETS),
        "edgelog_output_put_latency_seconds",
        "PutRecords call latency";
    output_partition_fallback: Counter = Counter::default(),
        "edgelog_output_partition_key_fallback",
        "Lines without the partition-key field, sent shard-balanced";
    output_shard_refreshes: Counter = Counter::default(),
        "edgelog_output_shard_map_refreshes",
        "Shard map (ListShards) refreshes";
    output_ready: Gauge = Gauge::default(),
        "edgelog_output_ready",
        "1 when no output reports failing calls or checks (unreachable, refused, a permission, stream or bucket missing)";
    ready: Gauge = Gauge::default(),
        "edgelog_ready",
        "1 when the collector takes batches (what /readyz answers 200 to)";
    delivering: Gauge = Gauge::default(),
        "edgelog_delivering",
        "1 when every output is delivering (what /delivery answers 200 to; set when /delivery, /status or /metrics is read)";
    output_pacing_waits: Counter = Counter::default(),
        "edgelog_output_pacing_waits",
        "Times a sender waited for a shard's pace before its next call";
    output_oldest_pending_ms: Gauge = Gauge::default(),
        "edgelog_output_oldest_pending_milliseconds",
        "Age of the oldest line read from the buffer and not yet delivered";
    // every output
    output_lag_entries: LabeledGauge = LabeledGauge::new("output"),
        "edgelog_output_lag_entries",
        "Entries (batches) an output has not yet delivered, by output";
    output_lag_bytes: LabeledGauge = LabeledGauge::new("output"),
        "edgelog_output_lag_bytes",
        "Bytes of the buffer an output has not yet delivered, by output";
    output_lag_oldest_ms: LabeledGauge = LabeledGauge::new("output"),
        "edgelog_output_lag_oldest_milliseconds",
        "Age of the oldest line an output has read and not yet delivered, by output";
    // the ledger
    ledger_received: LabeledGauge = LabeledGauge::new("output"),
        "edgelog_ledger_received_lines",
        "Lines each output was given: stored in the buffer, or found there at start";
    ledger_delivered: LabeledGauge = LabeledGauge::new("output"),
        "edgelog_ledger_delivered_lines",
        "Lines each output delivered";
    ledger_buffered: LabeledGauge = LabeledGauge::new("output"),
        "edgelog_ledger_buffered_lines",
        "Lines each output has still to deliver";
    ledger_dead_lettered: ReasonGauge = ReasonGauge::default(),
        "edgelog_ledger_dead_lettered_lines",
        "Lines each output dead-lettered, by reason";
    // admin
    admin_unauthorized: Counter = Counter::default(),
        "edgelog_admin_unauthorized",
        "Requests for the status page, status, metrics or the tail with a wrong or missing token";
    // s3
    s3_objects: Counter = Counter::default(),
        "edgelog_s3_objects",
        "Objects written to the S3 archive";
    s3_parts: Counter = Counter::default(),
        "edgelog_s3_parts",
        "Multipart upload parts written to the S3 archive";
    s3_lines: Counter = Counter::default(),
        "edgelog_s3_lines",
        "Lines in objects written to the S3 archive";
    s3_bytes: Counter = Counter::default(),
        "edgelog_s3_bytes",
        "Bytes of objects written to the S3 archive, as stored";
    s3_upload_errors: Labeled = Labeled::new("error"),
        "edgelog_s3_upload_errors",
        "S3 requests that failed (and were tried again), by error";
    // tail
    tail_clients: Gauge = Gauge::default(),
        "edgelog_tail_clients",
        "Connected tail clients";
    tail_dropped: Counter = Counter::default(),
        "edgelog_tail_dropped_batches",
        "Batches a slow tail client missed";
    tail_filters_refused: Counter = Counter::default(),
        "edgelog_tail_filters_refused",
        "Tail requests refused for a filter too long or malformed";
    // tls
    tls_reloads: Labeled = Labeled::new("result"),
        "edgelog_tls_reloads",
        "Reloads of the TLS certificate, key and client CA, by result (ok, failed)";
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
mod doc_tests;

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
