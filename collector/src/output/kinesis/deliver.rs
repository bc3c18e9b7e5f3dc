//! Delivery: one batch, from its first PutRecords call until every record is accepted or
//! dead-lettered.
//!
//! Rules (the classification is `classify.rs`'s):
//! - only the failed entries of an answer are sent again;
//! - a throttled entry, or one that hit `InternalFailure`, waits (a short backoff, and its
//!   shard's pace) and is sent again without limit: its lines stay in the buffer meanwhile;
//! - an entry Kinesis refuses for another reason counts toward `max_retries`, then goes to the
//!   dead-letter file with its last error code;
//! - a whole call that fails is retried without limit (with the retry policy's backoff) unless
//!   Kinesis refused the request as invalid, which counts toward `max_retries` for every record;
//!   meanwhile `/delivery` names the reason;
//! - a call refused because a record is over the stream's own maximum record size (lower than
//!   `max_record_bytes`): the records over it are dead-lettered at once, the others sent again
//!   at once; `/delivery` names the stream's maximum until a record over it is accepted.
//!
//! Order: in an ordered lane, a batch is finished before the lane's next one starts, and records
//! of one shard keep their order while they wait for pacing. A record that fails inside a call
//! is sent again after the records that followed it in that same call, so it can land after
//! them (never after a record of a later call of its lane).

use super::api::{CallError, Fault, KinesisApi, PutEntry};
use super::batch::{record_size, Batch, Carried, Meta};
use super::classify::{entry_fault, EntryFault};
use super::outage::Outage;
use super::pacing::{Answer, Ask, Pacing};
use super::partition::{ShardMap, SharedShardMap};
use crate::config::{RetryPolicy, KINESIS_MAX_BYTES_PER_CALL, KINESIS_MAX_RECORDS_PER_CALL};
use crate::deadletter::{DeadLetter, DeadLine};
use crate::health::Delivery;
use crate::logging::ratelimit::Every;
use crate::metrics::Metrics;
use crate::output::acks::Acks;
use crate::output::retry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The name this output reports its readiness under.
pub const OUTPUT_NAME: &str = "aws_kinesis";

/// What the sender lanes share.
pub struct Sender {
    pub api: Arc<dyn KinesisApi>,
    pub stream: String,
    pub retry: RetryPolicy,
    pub pacing: Pacing,
    pub metrics: Arc<Metrics>,
    pub dead: Arc<DeadLetter>,
    pub acks: Arc<Acks>,
    pub shards: Arc<SharedShardMap>,
    pub watch_shards: bool,
    pub delivery: Arc<Delivery>,
    /// PutRecords calls at once (`max_in_flight`), whatever the number of lanes.
    pub calls: Semaphore,
    /// Calls waiting out an outage, woken when the stream answers again.
    pub outage: Arc<Outage>,
    /// Rate limits for repeated warnings.
    pub call_warnings: Every,
    /// `max_record_bytes`.
    pub max_record_bytes: usize,
    /// The stream's maximum record size, once a call was refused for a record over it and
    /// until a record over it is accepted (0: none known).
    pub stream_limit: AtomicUsize,
}

/// What pacing allows for a batch.
enum Paced {
    /// These records go now; the held ones wait (per shard, in order).
    Go { now: Batch, held: Batch },
    /// None can go before `at`.
    Wait { held: Batch, at: Instant },
}

/// What is left of a batch that must wait before its next call.
pub struct Later {
    pub batch: Batch,
    pub at: Instant,
}

impl Sender {
    /// Sends `batch` until it is done. With `hand_back`, records that must wait (pacing, a
    /// throttled entry's backoff) are handed back instead of waited for, so an unordered lane
    /// goes on with other batches meanwhile.
    pub async fn deliver(&self, mut batch: Batch, hand_back: bool) -> Option<Later> {
        let mut outages: u32 = 0;
        loop {
            if batch.is_empty() {
                return None;
            }
            let map = self.shards.get();
            // The common case (no shard paced, no record waiting out a backoff) skips pacing.
            let paced =
                !self.pacing.nothing_paced() || batch.meta.iter().any(|m| m.not_before.is_some());
            let (now_batch, held) = if paced {
                match self.pace(batch, &map) {
                    Paced::Go { now, held } => (now, held),
                    Paced::Wait { held, at } => {
                        if hand_back {
                            return Some(Later { batch: held, at });
                        }
                        self.metrics.output_pacing_waits.inc();
                        tokio::time::sleep_until(at).await;
                        batch = held;
                        continue;
                    }
                }
            } else {
                (batch, Batch::default())
            };
            match self.call(&now_batch).await {
                Ok(r) => {
                    outages = 0;
                    self.answered(&map, &r.shards);
                    batch = self.settle(now_batch, r.failed, held, map.len()).await;
                }
                Err(e) => {
                    outages += 1;
                    self.call_failed(&e, outages, now_batch.len());
                    let mut all = now_batch;
                    let mut held = held;
                    let (puts, metas) = held.take_records();
                    for (p, m) in puts.into_iter().zip(metas) {
                        all.push_again(p, m);
                    }
                    all.sort_by_seq();
                    if e.fault.retried_without_limit() {
                        self.metrics.output_retries.add(all.len() as u64);
                        self.outage.wait(retry::delay(&self.retry, outages)).await;
                        batch = all;
                        continue;
                    }
                    batch = match e.fault {
                        Fault::RecordTooLarge { stream_limit } => {
                            outages = 0;
                            self.over_stream_limit(all, stream_limit, &e).await
                        }
                        _ => self.refused_all(all, &e.code).await,
                    };
                }
            }
            if let Some(later) = self.hand_back(&mut batch, hand_back) {
                return Some(later);
            }
        }
    }

    /// Splits a batch into the records that may go now (movable ones moved off shards that must
    /// wait) and those held back, or says when the first could go if none can.
    fn pace(&self, mut batch: Batch, map: &ShardMap) -> Paced {
        let asks: Vec<Ask> = batch
            .puts
            .iter()
            .zip(&batch.meta)
            .map(|(p, m)| Ask {
                shard: m.shard,
                bytes: record_size(p),
                movable: m.movable && !map.is_empty(),
                not_before: m.not_before,
            })
            .collect();
        let now = Instant::now();
        let split = self.pacing.split(&asks, map.len(), now);
        for &(i, j) in &split.moves {
            if let Some(shard) = map.shards.get(j) {
                batch.puts[i].partition_key = shard.id.clone();
                batch.puts[i].explicit_hash_key = Some(shard.target.clone());
                batch.meta[i].shard = Some(j);
            }
        }
        if split.all_go() {
            return Paced::Go {
                now: batch,
                held: Batch::default(),
            };
        }
        let (puts, metas) = batch.take_records();
        let mut go = Batch::default();
        let mut held = Batch {
            reservation: std::mem::take(&mut batch.reservation),
            ..Batch::default()
        };
        for ((p, m), g) in puts.into_iter().zip(metas).zip(&split.go) {
            if *g {
                go.push_again(p, m);
            } else {
                held.push_again(p, m);
            }
        }
        if go.is_empty() {
            let at = split.wake.unwrap_or(now + Duration::from_millis(1));
            return Paced::Wait { held, at };
        }
        go.reservation = std::mem::take(&mut held.reservation);
        Paced::Go { now: go, held }
    }

    /// With `hand_back`, what is left of a batch whose every record must wait, to be queued
    /// again when the first can go.
    fn hand_back(&self, batch: &mut Batch, hand_back: bool) -> Option<Later> {
        if !hand_back || batch.is_empty() {
            return None;
        }
        let now = Instant::now();
        let waiting = batch
            .meta
            .iter()
            .all(|m| m.not_before.is_some_and(|t| t > now));
        let at = batch.meta.iter().filter_map(|m| m.not_before).min()?;
        waiting.then(|| Later {
            batch: std::mem::take(batch),
            at,
        })
    }

    /// A call was answered: the output is ready, and a shard we do not know means a reshard.
    fn answered(&self, map: &ShardMap, shards: &[String]) {
        self.outage.back();
        self.delivery.clear(OUTPUT_NAME);
        if self.watch_shards && !map.is_empty() && shards.iter().any(|s| !map.contains_id(s)) {
            self.shards.mark_stale();
        }
    }

    async fn call(&self, batch: &Batch) -> Result<super::api::PutResult, CallError> {
        self.metrics.output_calls.inc();
        self.metrics
            .output_batch_records
            .observe(batch.len() as f64);
        self.metrics.output_batch_fill.observe(
            (batch.len() as f64 / KINESIS_MAX_RECORDS_PER_CALL as f64)
                .max(batch.bytes as f64 / KINESIS_MAX_BYTES_PER_CALL as f64),
        );
        let permit = self.calls.acquire().await;
        let started = Instant::now();
        let result = self.api.put_records(&self.stream, &batch.puts).await;
        drop(permit);
        self.metrics
            .output_put_latency
            .observe_duration(started.elapsed());
        result
    }

    fn call_failed(&self, e: &CallError, outages: u32, records: usize) {
        self.metrics.output_call_errors.inc(&e.code);
        match e.fault {
            Fault::Throttled => {
                self.metrics.output_throttles.inc();
                self.delivery.throttled(OUTPUT_NAME);
            }
            // Named for as long as it lasts by `over_stream_limit`.
            Fault::RecordTooLarge { .. } => {}
            fault => self.delivery.set_problem(
                OUTPUT_NAME,
                format!(
                    "Kinesis {}: {}{}",
                    fault.name(),
                    e,
                    if fault == Fault::AccessDenied {
                        " (the credentials need kinesis:PutRecords on the stream)"
                    } else {
                        ""
                    }
                ),
            ),
        }
        if self.call_warnings.allow() {
            tracing::warn!(
                code = %e.code,
                fault = e.fault.name(),
                message = %e.message,
                records,
                attempt = outages,
                "PutRecords failed; retrying (the lines stay buffered)"
            );
        }
    }

    /// Sorts the records of an answered call: accepted ones are acknowledged, failed ones go
    /// back (or to the dead-letter file); returns what is left to send, held records included.
    async fn settle(
        &self,
        mut sent: Batch,
        failed: Vec<(usize, String)>,
        held: Batch,
        shards: usize,
    ) -> Batch {
        let reservation = std::mem::take(&mut sent.reservation);
        let (puts, metas) = sent.take_records();
        let mut retry = Batch {
            reservation,
            ..Batch::default()
        };
        let mut doomed = Batch::default();
        let mut failed = failed.into_iter().peekable();
        let mut delivered = Vec::new();
        let mut answers = Vec::with_capacity(puts.len());
        let (mut records, mut bytes, mut lines, mut throttled) = (0u64, 0u64, 0u64, 0u64);
        let now = Instant::now();
        // One wait per attempt count for the whole answer, so records that failed together are
        // sent again together.
        let mut waits_at: HashMap<u32, Instant> = HashMap::new();
        let mut refusals_at: HashMap<u32, Instant> = HashMap::new();
        let stream_limit = self.stream_limit.load(Ordering::Relaxed);
        let mut raised = false;
        for (i, (put, mut meta)) in puts.into_iter().zip(metas).enumerate() {
            if failed.peek().is_some_and(|(j, _)| *j == i) {
                let (_, code) = failed.next().unwrap_or_default();
                self.metrics.output_failed_entries.inc(&code);
                match entry_fault(&code) {
                    fault @ (EntryFault::Throttled | EntryFault::Transient) => {
                        if fault == EntryFault::Throttled {
                            throttled += 1;
                            answers.push((meta.shard, Answer::Throttled));
                        }
                        meta.waits += 1;
                        let w = meta.waits;
                        meta.not_before = Some(
                            *waits_at
                                .entry(w)
                                .or_insert_with(|| now + retry::throttle_delay(w)),
                        );
                    }
                    EntryFault::Refused => {
                        meta.refusals += 1;
                        let n = meta.refusals;
                        meta.not_before = Some(
                            *refusals_at
                                .entry(n)
                                .or_insert_with(|| now + retry::delay(&self.retry, n)),
                        );
                    }
                }
                meta.last_error = Some(code);
                if meta.refusals > self.retry.max_retries {
                    doomed.push_again(put, meta);
                } else {
                    retry.push_again(put, meta);
                }
            } else {
                let size = record_size(&put);
                if stream_limit > 0 && put.data.len() > stream_limit {
                    raised = true;
                }
                answers.push((meta.shard, Answer::Accepted { bytes: size }));
                records += 1;
                bytes += size as u64;
                lines += meta.carried.lines() as u64;
                meta.carried.count_into(&mut delivered);
            }
        }
        if raised {
            // The stream took a record over the maximum it named: it was raised.
            self.stream_limit.store(0, Ordering::Relaxed);
            self.delivery.clear_mismatch(OUTPUT_NAME);
        }
        self.pacing.observe(answers, shards);
        if throttled > 0 {
            self.metrics.output_throttles.add(throttled);
        }
        // Throttled means held back: a call of which nothing went through.
        if records == 0 && throttled > 0 {
            self.delivery.throttled(OUTPUT_NAME);
        } else if records > 0 {
            self.delivery.unthrottled(OUTPUT_NAME);
        }
        self.metrics.output_records.add(records);
        self.metrics.output_bytes.add(bytes);
        self.metrics.output_lines.add(lines);
        self.acks.done_many(delivered);
        if !doomed.is_empty() {
            self.dead_letter(doomed, "retries_exhausted").await;
        }
        let (puts, metas) = { held }.take_records();
        for (p, m) in puts.into_iter().zip(metas) {
            retry.push_again(p, m);
        }
        retry.sort_by_seq();
        self.metrics.output_retries.add(retry.len() as u64);
        retry
    }

    /// A whole call refused because a record is over the stream's maximum record size: the
    /// records over it are dead-lettered, the others go back to be sent at once. If none is
    /// over it, the call was refused for another reason: one refusal for every record.
    async fn over_stream_limit(
        &self,
        mut batch: Batch,
        stream_limit: usize,
        e: &CallError,
    ) -> Batch {
        let over = |p: &PutEntry| p.data.len() > stream_limit;
        if !batch.puts.iter().any(over) {
            return self.refused_all(batch, &e.code).await;
        }
        self.stream_limit.store(stream_limit, Ordering::Relaxed);
        self.delivery.set_mismatch(
            OUTPUT_NAME,
            format!(
                "the stream's maximum record size is {stream_limit} bytes, below output.aws_kinesis.max_record_bytes ({}): records over it go to the dead-letter file (raise the stream's with UpdateMaxRecordSize, or lower max_record_bytes)",
                self.max_record_bytes
            ),
        );
        let reservation = std::mem::take(&mut batch.reservation);
        let (puts, metas) = batch.take_records();
        let mut rest = Batch {
            reservation,
            ..Batch::default()
        };
        let mut doomed = Batch::default();
        for (p, mut m) in puts.into_iter().zip(metas) {
            if over(&p) {
                m.last_error = Some(format!(
                    "{}: {} bytes > the stream's maximum record size {stream_limit}",
                    e.code,
                    p.data.len()
                ));
                doomed.push_again(p, m);
            } else {
                rest.push_again(p, m);
            }
        }
        tracing::error!(
            code = %e.code,
            stream_limit,
            max_record_bytes = self.max_record_bytes,
            records = doomed.len(),
            "records over the stream's maximum record size; dead-lettering them"
        );
        self.dead_letter(doomed, "record_too_large").await;
        self.metrics.output_retries.add(rest.len() as u64);
        rest
    }

    /// A whole call refused as invalid: one refusal for every record.
    async fn refused_all(&self, mut batch: Batch, code: &str) -> Batch {
        let reservation = std::mem::take(&mut batch.reservation);
        let (puts, metas) = batch.take_records();
        let mut retry = Batch {
            reservation,
            ..Batch::default()
        };
        let mut doomed = Batch::default();
        let now = Instant::now();
        for (p, mut m) in puts.into_iter().zip(metas) {
            m.refusals += 1;
            m.last_error = Some(code.to_string());
            m.not_before = Some(now + retry::delay(&self.retry, m.refusals));
            if m.refusals > self.retry.max_retries {
                doomed.push_again(p, m);
            } else {
                retry.push_again(p, m);
            }
        }
        if !doomed.is_empty() {
            self.dead_letter(doomed, "retries_exhausted").await;
        }
        retry
    }

    /// Writes the records' lines to the dead-letter file, then acknowledges them. A dead-letter
    /// write that fails is retried: nothing is acknowledged without its trace.
    pub async fn dead_letter(&self, mut batch: Batch, reason: &'static str) {
        let (puts, metas) = batch.take_records();
        let mut dead = Vec::new();
        let mut counts = Vec::new();
        for (put, meta) in puts.into_iter().zip(metas) {
            meta.carried.count_into(&mut counts);
            let code = meta.last_error;
            match meta.carried {
                Carried::Line(_) => dead.push(DeadLine {
                    line: put.data,
                    reason,
                    error_code: code,
                    detail: None,
                }),
                Carried::Lines(a) => dead.extend(a.lines.into_iter().map(|line| DeadLine {
                    line,
                    reason,
                    error_code: code.clone(),
                    detail: Some("sent in a KPL aggregated record".into()),
                })),
            }
        }
        let n = dead.len();
        self.dead.write_until_written(dead).await;
        tracing::warn!(lines = n, reason, "lines written to the dead-letter file");
        self.acks.dead_lettered(counts, reason);
    }

    /// Dead-letters one record that can never be sent (too large for Kinesis).
    pub async fn dead_letter_one(&self, put: PutEntry, meta: Meta, reason: &'static str) {
        let mut one = Batch::default();
        one.push_again(put, meta);
        self.dead_letter(one, reason).await;
    }
}
