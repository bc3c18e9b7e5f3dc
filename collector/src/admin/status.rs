//! What `/status`, the status page and `collector status` show: the ledger per output, lag,
//! buffer fill, errors and refusals by reason, and rates over the last 15 minutes.
//!
//! Invariants: nothing here is on the ingest or delivery path. A snapshot reads counters the
//! pipeline keeps anyway (the ledger, the metrics) when someone asks; the history is one sample
//! of a few counters every [`HISTORY_EVERY`], kept for [`HISTORY_SAMPLES`] samples, so the
//! page costs nothing while nobody watches it.

use crate::admin::answers::{BufferStatus, History, IngestStatus, OutputStatus, Status};
use crate::buffer::ledger::DEAD_REASONS;
use crate::buffer::Buffer;
use crate::deadletter::replay::{read_journal, Journal};
use crate::health::{Delivery, Health};
use crate::metrics::Metrics;
use crate::output::acks::Acks;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the history takes a sample.
pub const HISTORY_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: 15 minutes.
pub const HISTORY_SAMPLES: usize = 180;

/// Everything a status snapshot reads.
pub struct Observer {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub delivery: Arc<Delivery>,
    pub buffer: Arc<Buffer>,
    /// Each output's name and delivery accounting, in the configured order.
    pub outputs: Vec<(String, Arc<Acks>)>,
    /// The dead-letter file, beside which the replay journal is kept.
    pub dead_letter: PathBuf,
    started: Instant,
    history: Mutex<VecDeque<Sample>>,
}

/// Counters at one moment.
#[derive(Debug, Clone)]
struct Sample {
    unix_ms: u64,
    received: u64,
    refused: u64,
    /// Per output: delivered, dead-lettered.
    outputs: Vec<(u64, u64)>,
}

impl Observer {
    pub fn new(
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        delivery: Arc<Delivery>,
        buffer: Arc<Buffer>,
        outputs: Vec<(String, Arc<Acks>)>,
        dead_letter: PathBuf,
    ) -> Observer {
        let o = Observer {
            metrics,
            health,
            delivery,
            buffer,
            outputs,
            dead_letter,
            started: Instant::now(),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_SAMPLES + 1)),
        };
        o.sample();
        o
    }

    fn now_sample(&self) -> Sample {
        Sample {
            unix_ms: crate::buffer::now_ms(),
            received: self.metrics.ingest_lines.get(),
            refused: self.metrics.ingest_rejections.total(),
            outputs: self
                .outputs
                .iter()
                .map(|(_, a)| {
                    let c = a.counts();
                    (c.settled.delivered, c.settled.dead_lettered())
                })
                .collect(),
        }
    }

    /// Takes one history sample (the sampler calls this every [`HISTORY_EVERY`]).
    pub fn sample(&self) {
        let s = self.now_sample();
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.push_back(s);
        while h.len() > HISTORY_SAMPLES + 1 {
            h.pop_front();
        }
    }

    /// Samples every [`HISTORY_EVERY`], forever.
    pub async fn run_sampler(self: Arc<Self>) {
        let mut every = tokio::time::interval(HISTORY_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            self.sample();
        }
    }

    /// Whether every output delivers, else why not (`<output>: <reason>`).
    pub fn delivery_verdict(&self) -> Result<(), Vec<String>> {
        let oldest: Vec<(&str, Duration)> = self
            .outputs
            .iter()
            .map(|(name, acks)| (name.as_str(), acks.lag().oldest_age))
            .collect();
        self.delivery.verdict(&oldest)
    }

    /// Lines each output has still to deliver: `aws_kinesis 12 lines, s3 0 lines`.
    pub fn lines_left(&self) -> (u64, String) {
        let mut total = 0;
        let each: Vec<String> = self
            .outputs
            .iter()
            .map(|(name, acks)| {
                let n = acks.counts().buffered;
                total += n;
                format!("{name} {n} lines")
            })
            .collect();
        (total, each.join(", "))
    }

    /// Sets the gauges `/metrics` reads at scrape time: lag and the ledger, per output.
    pub fn update_metrics(&self) {
        let _ = self.delivery_verdict();
        let m = &self.metrics;
        let mut oldest = Duration::ZERO;
        for (name, acks) in &self.outputs {
            let age = acks.lag().oldest_age;
            oldest = oldest.max(age);
            let (entries, bytes) = acks.buffer_lag();
            m.output_lag_entries.set(name, entries as i64);
            m.output_lag_bytes.set(name, bytes as i64);
            m.output_lag_oldest_ms.set(name, age.as_millis() as i64);
            let c = acks.counts();
            m.ledger_received.set(name, c.received as i64);
            m.ledger_delivered.set(name, c.settled.delivered as i64);
            m.ledger_buffered.set(name, c.buffered as i64);
            for (reason, n) in DEAD_REASONS.iter().zip(c.settled.dead) {
                m.ledger_dead_lettered.set(name, reason, n as i64);
            }
        }
        if !self.outputs.is_empty() {
            m.output_oldest_pending_ms.set(oldest.as_millis() as i64);
        }
    }

    /// The status now.
    pub fn status(&self) -> Status {
        let m = &self.metrics;
        let now = self.now_sample();
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let h = build_history(history.iter().chain(std::iter::once(&now)), &self.outputs);
        // "Now": over the last full interval and the part since.
        let last = history.back();
        let rate = |a: u64, b: u64, since: Option<u64>| -> f64 {
            let dt = now.unix_ms.saturating_sub(since.unwrap_or(now.unix_ms)) as f64 / 1000.0;
            if dt <= 0.0 {
                0.0
            } else {
                a.saturating_sub(b) as f64 / dt
            }
        };
        let base = history
            .iter()
            .rev()
            .find(|s| now.unix_ms.saturating_sub(s.unix_ms) >= HISTORY_EVERY.as_millis() as u64)
            .or(last);
        let used = self.buffer.used_bytes();
        let problems: Vec<String> = match self.health.readiness() {
            Ok(()) => Vec::new(),
            Err(why) => why.lines().map(str::to_string).collect(),
        };
        let delivery_problems = self.delivery_verdict().err().unwrap_or_default();
        let outputs = self
            .outputs
            .iter()
            .enumerate()
            .map(|(i, (name, acks))| {
                let c = acks.counts();
                let (lag_entries, lag_bytes) = acks.buffer_lag();
                let before = base.and_then(|b| b.outputs.get(i)).map_or(0, |o| o.0);
                OutputStatus {
                    name: name.clone(),
                    received: c.received,
                    delivered: c.settled.delivered,
                    dead_lettered: DEAD_REASONS
                        .iter()
                        .map(|r| r.to_string())
                        .zip(c.settled.dead)
                        .collect(),
                    dead_lettered_total: c.settled.dead_lettered(),
                    buffered: c.buffered,
                    balanced: c.balances(),
                    lag_entries,
                    lag_bytes,
                    oldest_seconds: acks.lag().oldest_age.as_secs_f64(),
                    delivered_per_second: rate(
                        c.settled.delivered,
                        before,
                        base.map(|b| b.unix_ms),
                    ),
                }
            })
            .collect();
        let mut errors = BTreeMap::new();
        for (kind, labeled) in [
            ("kinesis_call_errors", &m.output_call_errors),
            ("kinesis_failed_entries", &m.output_failed_entries),
            ("s3_upload_errors", &m.s3_upload_errors),
            ("dead_lettered", &m.dead_lettered),
        ] {
            errors.insert(kind.to_string(), labeled.snapshot().into_iter().collect());
        }
        errors.insert(
            "admin".to_string(),
            BTreeMap::from([("unauthorized".to_string(), m.admin_unauthorized.get())]),
        );
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_seconds: self.started.elapsed().as_secs(),
            ready: problems.is_empty(),
            problems,
            draining: self.health.draining(),
            delivering: delivery_problems.is_empty(),
            delivery_problems,
            ingest: IngestStatus {
                lines: now.received,
                batches: m.ingest_batches.get(),
                bytes: m.ingest_line_bytes.get(),
                refused: m.ingest_rejections.snapshot().into_iter().collect(),
                lines_per_second: rate(
                    now.received,
                    base.map_or(0, |b| b.received),
                    base.map(|b| b.unix_ms),
                ),
            },
            buffer: BufferStatus {
                kind: self.buffer.kind().to_string(),
                id: self.buffer.id().to_string(),
                used_bytes: used,
                max_bytes: self.buffer.max_bytes(),
                fill: used as f64 / self.buffer.max_bytes().max(1) as f64,
                entries: m.buffer_entries.get(),
            },
            outputs,
            errors,
            replayed: Journal {
                files: BTreeMap::new(),
                ..read_journal(&self.dead_letter)
            },
            history: h,
        }
    }
}

/// Per-second rates between consecutive samples.
fn build_history<'a>(
    samples: impl Iterator<Item = &'a Sample>,
    outputs: &[(String, Arc<Acks>)],
) -> History {
    let samples: Vec<&Sample> = samples.collect();
    let mut h = History {
        interval_seconds: HISTORY_EVERY.as_secs(),
        ..History::default()
    };
    for (name, _) in outputs {
        h.delivered_per_second.insert(name.clone(), Vec::new());
        h.dead_lettered_per_second.insert(name.clone(), Vec::new());
    }
    for w in samples.windows(2) {
        let (a, b) = (w[0], w[1]);
        let dt = b.unix_ms.saturating_sub(a.unix_ms) as f64 / 1000.0;
        if dt < 0.5 {
            continue;
        }
        let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
        h.unix_ms.push(b.unix_ms);
        h.received_per_second.push(per(a.received, b.received));
        h.refused_per_second.push(per(a.refused, b.refused));
        for (i, (name, _)) in outputs.iter().enumerate() {
            let (ad, ax) = a.outputs.get(i).copied().unwrap_or_default();
            let (bd, bx) = b.outputs.get(i).copied().unwrap_or_default();
            if let Some(v) = h.delivered_per_second.get_mut(name) {
                v.push(per(ad, bd));
            }
            if let Some(v) = h.dead_lettered_per_second.get_mut(name) {
                v.push(per(ax, bx));
            }
        }
    }
    h
}
