//! The Kinesis output: lines become records, records become PutRecords calls.
//!
//! Stages: each line is placed (partition key, hash key, shard) by the [`Partitioner`]; with
//! `aggregate: true` lines bound for the same shard are packed into KPL aggregated records; records
//! fill batches by count, bytes and age; full batches go to sender lanes, several calls in flight.
//! Keyed strategies map each key to one lane, which sends its batches one at a time, so the order
//! per key is kept; unkeyed ones share a queue served by all lanes.
//!
//! Delivery: only the failed entries of a response are sent again, after the retry policy's
//! backoff with jitter; throttling also slows every lane down through the shared [`Pacer`]. An
//! entry that fails `max_retries` times goes to the dead-letter file with its last error code.
//! Whole calls that fail for reasons of the moment (network, 5xx, throttling, credentials, a
//! missing stream) are retried without limit: the lines wait safely in the buffer.
//!
//! Invariant: every line handed to [`KinesisOutput::submit`] is acknowledged exactly once, after
//! Kinesis accepted it or after its dead-letter record is written.

use super::kinesis_api::{is_throttle, CallError, KinesisApi, PutEntry};
use super::{Acks, OutputError};
use crate::buffer::{Entry, EntryId};
use crate::config::{
    BatchPolicy, KinesisConfig, PartitionKeySpec, RetryPolicy, KINESIS_MAX_BYTES_PER_CALL,
    KINESIS_MAX_RECORDS_PER_CALL, KINESIS_MAX_RECORD_BYTES,
};
use crate::deadletter::{DeadLetter, DeadLine};
use crate::ingest::Health;
use crate::kpl::Aggregator;
use crate::metrics::Metrics;
use crate::partition::{Fallback, Partitioner, Placement, ShardMap, SharedShardMap};
use crate::retry::{self, Pacer};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// One Kinesis record and the lines it carries.
struct Rec {
    put: PutEntry,
    carried: Carried,
    last_error: Option<String>,
}

enum Carried {
    /// A plain record: one line of one entry (the line is the record's data).
    Line(EntryId),
    /// An aggregated record: lines from one or more entries.
    Lines {
        counts: Vec<(EntryId, usize)>,
        lines: Vec<Bytes>,
    },
}

impl Carried {
    fn lines(&self) -> usize {
        match self {
            Carried::Line(_) => 1,
            Carried::Lines { lines, .. } => lines.len(),
        }
    }

    fn count_into(&self, counts: &mut Vec<(EntryId, usize)>) {
        match self {
            Carried::Line(id) => add_counts(counts, *id, 1),
            Carried::Lines { counts: c, .. } => {
                for (id, n) in c {
                    add_counts(counts, *id, *n);
                }
            }
        }
    }
}

/// What Kinesis counts against its limits: data and partition key.
fn record_size(put: &PutEntry) -> usize {
    put.data.len() + put.partition_key.len()
}

fn add_counts(counts: &mut Vec<(EntryId, usize)>, id: EntryId, n: usize) {
    match counts.last_mut() {
        Some((last, c)) if *last == id => *c += n,
        _ => counts.push((id, n)),
    }
}

/// The records of one PutRecords call, side by side (the call borrows `puts` as they are).
#[derive(Default)]
struct Batch {
    puts: Vec<PutEntry>,
    carried: Vec<Carried>,
    errors: Vec<Option<String>>,
    bytes: usize,
    /// The batch's share of `max_in_flight_bytes`, taken as records join it and held until it
    /// is delivered: open, queued and sending batches together stay within the budget.
    permit: Option<OwnedSemaphorePermit>,
}

impl Batch {
    /// KiB of the in-flight budget this batch holds.
    fn reserved_kib(&self) -> u32 {
        self.permit
            .as_ref()
            .map_or(0, |p| u32::try_from(p.num_permits()).unwrap_or(u32::MAX))
    }

    fn push(&mut self, r: Rec) {
        self.bytes += record_size(&r.put);
        self.puts.push(r.put);
        self.carried.push(r.carried);
        self.errors.push(r.last_error);
    }

    fn len(&self) -> usize {
        self.puts.len()
    }

    fn is_empty(&self) -> bool {
        self.puts.is_empty()
    }
}

/// Batches a keyed lane may have waiting.
const LANE_QUEUE: usize = 16;

/// Lanes per allowed call in flight, for keyed strategies.
const KEYED_LANES_PER_CALL: usize = 4;

/// The in-flight byte budget counts KiB so its `u32` permits cover gigabytes.
const KIB: usize = 1024;

/// What the sender lanes share.
struct Sender {
    api: Arc<dyn KinesisApi>,
    stream: String,
    retry: RetryPolicy,
    pacer: Pacer,
    metrics: Arc<Metrics>,
    dead: Arc<DeadLetter>,
    acks: Arc<Acks>,
    shards: Arc<SharedShardMap>,
    watch_shards: bool,
    /// Bytes of records in calls being sent or waiting for a lane.
    in_flight: Arc<Semaphore>,
    in_flight_kib: u32,
    /// PutRecords calls at once (`max_in_flight`), whatever the number of lanes.
    calls: Semaphore,
    /// Budget (KiB) held by batches handed to lanes and not yet delivered: while there is any,
    /// waiting for budget is safe (their delivery gives it back).
    sent_kib: std::sync::atomic::AtomicU64,
}

impl Sender {
    /// Sends one batch until every record is accepted or dead-lettered.
    async fn deliver(&self, mut batch: Batch) {
        let mut attempts: u32 = 0;
        let mut outages: u32 = 0;
        loop {
            self.pacer.wait().await;
            self.metrics.output_calls.inc();
            self.metrics
                .output_batch_records
                .observe(batch.len() as f64);
            self.metrics.output_batch_fill.observe(
                (batch.len() as f64 / KINESIS_MAX_RECORDS_PER_CALL as f64)
                    .max(batch.bytes as f64 / KINESIS_MAX_BYTES_PER_CALL as f64),
            );
            let call = self.calls.acquire().await;
            let started = Instant::now();
            let result = self.api.put_records(&self.stream, &batch.puts).await;
            drop(call);
            self.metrics
                .output_put_latency
                .observe_duration(started.elapsed());
            match result {
                Ok(r) => {
                    outages = 0;
                    if self.watch_shards {
                        let map = self.shards.get();
                        if !map.is_empty() && r.shards.iter().any(|s| !map.contains_id(s)) {
                            // A shard we do not know took a record: the stream was resharded.
                            self.shards.mark_stale();
                        }
                    }
                    let throttled = r.failed.iter().filter(|(_, c)| is_throttle(c)).count() as u64;
                    if throttled > 0 {
                        self.metrics.output_throttles.add(throttled);
                        self.pacer.throttled();
                    } else {
                        self.pacer.succeeded();
                    }
                    let Batch {
                        puts,
                        carried,
                        errors,
                        permit,
                        ..
                    } = batch;
                    let mut failed = r.failed.into_iter().peekable();
                    let mut retry = Batch {
                        permit,
                        ..Batch::default()
                    };
                    let mut delivered: Vec<(EntryId, usize)> = Vec::new();
                    let (mut records, mut bytes, mut lines) = (0u64, 0u64, 0u64);
                    for (i, ((put, carried), error)) in
                        puts.into_iter().zip(carried).zip(errors).enumerate()
                    {
                        if failed.peek().is_some_and(|(j, _)| *j == i) {
                            let (_, code) = failed.next().unwrap_or_default();
                            self.metrics.output_failed_entries.inc(&code);
                            retry.push(Rec {
                                put,
                                carried,
                                last_error: Some(code),
                            });
                        } else {
                            let _ = error;
                            records += 1;
                            bytes += record_size(&put) as u64;
                            lines += carried.lines() as u64;
                            carried.count_into(&mut delivered);
                        }
                    }
                    self.metrics.output_records.add(records);
                    self.metrics.output_bytes.add(bytes);
                    self.metrics.output_lines.add(lines);
                    self.acks.done_many(delivered);
                    if retry.is_empty() {
                        return;
                    }
                    batch = retry;
                    attempts += 1;
                }
                Err(CallError::Transient {
                    code,
                    message,
                    throttled,
                }) => {
                    self.metrics.output_call_errors.inc(&code);
                    if throttled {
                        self.metrics.output_throttles.inc();
                        self.pacer.throttled();
                    }
                    outages += 1;
                    if outages == 1 || outages.is_power_of_two() {
                        tracing::warn!(%code, %message, records = batch.len(), attempt = outages, "PutRecords failed; retrying (the lines stay buffered)");
                    }
                    self.metrics.output_retries.add(batch.len() as u64);
                    tokio::time::sleep(retry::delay(&self.retry, outages)).await;
                    continue;
                }
                Err(CallError::Permanent { code, message }) => {
                    self.metrics.output_call_errors.inc(&code);
                    tracing::warn!(%code, %message, records = batch.len(), "PutRecords refused the request");
                    for e in &mut batch.errors {
                        *e = Some(code.clone());
                    }
                    attempts += 1;
                }
            }
            if attempts > self.retry.max_retries {
                self.dead_letter(batch, "retries_exhausted").await;
                return;
            }
            self.metrics.output_retries.add(batch.len() as u64);
            tokio::time::sleep(retry::delay(&self.retry, attempts)).await;
        }
    }

    /// Writes the records' lines to the dead-letter file, then acknowledges them. A dead-letter
    /// write that fails is retried: nothing is acknowledged without its trace.
    async fn dead_letter(&self, batch: Batch, reason: &'static str) {
        let mut dead = Vec::new();
        let mut counts = Vec::new();
        for ((put, carried), code) in batch.puts.into_iter().zip(batch.carried).zip(batch.errors) {
            carried.count_into(&mut counts);
            match carried {
                Carried::Line(_) => dead.push(DeadLine {
                    line: put.data,
                    reason,
                    error_code: code,
                    detail: None,
                }),
                Carried::Lines { lines, .. } => {
                    dead.extend(lines.into_iter().map(|line| DeadLine {
                        line,
                        reason,
                        error_code: code.clone(),
                        detail: Some("sent in a KPL aggregated record".into()),
                    }))
                }
            }
        }
        let n = dead.len();
        loop {
            match self.dead.write(dead.clone()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, path = %self.dead.path().display(), "cannot write the dead-letter file; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::warn!(lines = n, reason, "lines written to the dead-letter file");
        self.acks.done_many(counts);
    }
}

/// An open batch waiting to fill.
#[derive(Default)]
struct OpenBatch {
    batch: Batch,
    since: Option<Instant>,
}

/// An aggregated record being filled for one shard.
struct OpenAgg {
    agg: Aggregator,
    counts: Vec<(EntryId, usize)>,
    lines: Vec<Bytes>,
    since: Instant,
}

enum Lanes {
    /// One queue served by every lane (order does not matter).
    Shared(mpsc::Sender<Batch>),
    /// A queue per lane (order per key).
    Keyed(Vec<mpsc::Sender<Batch>>),
}

pub struct KinesisOutput {
    sender: Arc<Sender>,
    partitioner: Partitioner,
    batch: BatchPolicy,
    aggregate: bool,
    lanes: Option<Lanes>,
    lane_count: usize,
    open: Vec<OpenBatch>,
    aggs: HashMap<usize, OpenAgg>,
    workers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    next_lane: usize,
}

/// Failures that say nothing about the configuration, only about the moment.
fn is_unreachable(code: &str) -> bool {
    matches!(
        code,
        "ConnectionError"
            | "Timeout"
            | "ResponseError"
            | "InternalFailure"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "LimitExceededException"
            | "ThrottlingException"
    )
}

fn start_error(cfg: &KinesisConfig, e: &CallError) -> OutputError {
    let code = e.code();
    let why = match code {
        "ResourceNotFoundException" => format!(
            "output.aws_kinesis.stream_name: stream {:?} does not exist ({e})",
            cfg.stream_name
        ),
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "AccessDeniedException"
        | "ExpiredTokenException"
        | "MissingAuthenticationToken"
        | "IncompleteSignature"
        | "InvalidClientTokenId"
        | "NoCredentials" => {
            format!("output.aws_kinesis.credentials: Kinesis refused the credentials ({e})")
        }
        _ => format!(
            "output.aws_kinesis: checking stream {:?} failed ({e})",
            cfg.stream_name
        ),
    };
    OutputError::Start(why)
}

impl KinesisOutput {
    /// Checks the stream (DescribeStreamSummary), loads the shard map when the strategy needs
    /// it, and starts the sender lanes and background checks.
    pub async fn start(
        cfg: &KinesisConfig,
        api: Arc<dyn KinesisApi>,
        acks: Arc<Acks>,
        dead: Arc<DeadLetter>,
        health: Arc<Health>,
        retry_policy: RetryPolicy,
    ) -> Result<KinesisOutput, OutputError> {
        let metrics = acks.metrics().clone();
        let reachable = match api.describe(&cfg.stream_name).await {
            Ok(state) if state.status == "ACTIVE" || state.status == "UPDATING" => true,
            Ok(state) => {
                return Err(OutputError::Start(format!(
                    "output.aws_kinesis.stream_name: stream {:?} is {}, not ACTIVE",
                    cfg.stream_name, state.status
                )))
            }
            // Kinesis is out of reach for the moment: start anyway (not ready); the lines wait
            // in the buffer. Only a missing stream or refused credentials stop the start.
            Err(e) if is_unreachable(e.code()) => {
                tracing::warn!(error = %e, "cannot reach Kinesis yet; starting not ready, lines are buffered");
                false
            }
            Err(e) => return Err(start_error(cfg, &e)),
        };
        let shards = Arc::new(SharedShardMap::default());
        let needs_map = cfg.aggregate || Partitioner::needs_shard_map(&cfg.partition_key);
        if needs_map && reachable {
            match api.list_shards(&cfg.stream_name).await {
                Ok(list) if !list.is_empty() => shards.set(ShardMap::new(list)),
                Ok(_) => tracing::warn!("ListShards returned no open shard"),
                Err(e) if cfg.partition_key == PartitionKeySpec::ShardBalanced || cfg.aggregate => {
                    return Err(OutputError::Start(format!(
                        "output.aws_kinesis: ListShards failed ({e}); shard-balanced and aggregated sending need kinesis:ListShards"
                    )))
                }
                Err(e) => tracing::warn!(error = %e, "ListShards failed; lines without the partition-key field use a fixed key"),
            }
        }
        health.output_ready.store(reachable, Ordering::Release);
        metrics.output_ready.set(reachable as i64);
        if reachable {
            tracing::info!(
                stream = %cfg.stream_name,
                open_shards = shards.get().len(),
                "Kinesis stream checked"
            );
        }

        let in_flight_kib = (cfg.max_in_flight_bytes / KIB).clamp(1, u32::MAX as usize) as u32;
        let sender = Arc::new(Sender {
            api: api.clone(),
            stream: cfg.stream_name.clone(),
            retry: retry_policy,
            pacer: Pacer::new(retry_policy.max_wait),
            metrics: metrics.clone(),
            dead,
            acks,
            shards: shards.clone(),
            watch_shards: needs_map,
            in_flight: Arc::new(Semaphore::new(in_flight_kib as usize)),
            in_flight_kib,
            calls: Semaphore::new(cfg.max_in_flight),
            sent_kib: std::sync::atomic::AtomicU64::new(0),
        });

        let keyed = cfg.aggregate
            || matches!(
                cfg.partition_key,
                PartitionKeySpec::Field(_)
                    | PartitionKeySpec::Static(_)
                    | PartitionKeySpec::Timestamp
            );
        // Keyed: a lane per order domain, 4 per call in flight, so that a few busy keys rarely
        // share a lane (one call at a time per lane); the calls semaphore caps concurrency.
        let lane_count = if keyed {
            cfg.max_in_flight * KEYED_LANES_PER_CALL
        } else {
            cfg.max_in_flight
        };
        let mut workers = Vec::new();
        let lanes = if keyed {
            let mut txs = Vec::new();
            for _ in 0..lane_count {
                // Deep enough that one busy lane does not hold up the others; the in-flight
                // byte budget bounds what these queues hold.
                let (tx, mut rx) = mpsc::channel::<Batch>(LANE_QUEUE);
                let s = sender.clone();
                workers.push(tokio::spawn(async move {
                    while let Some(batch) = rx.recv().await {
                        let kib = u64::from(batch.reserved_kib());
                        s.deliver(batch).await;
                        s.sent_kib.fetch_sub(kib, Ordering::AcqRel);
                    }
                }));
                txs.push(tx);
            }
            Lanes::Keyed(txs)
        } else {
            let (tx, rx) = mpsc::channel::<Batch>(lane_count);
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            for _ in 0..lane_count {
                let s = sender.clone();
                let rx = rx.clone();
                workers.push(tokio::spawn(async move {
                    loop {
                        let next = rx.lock().await.recv().await;
                        match next {
                            Some(batch) => {
                                let kib = u64::from(batch.reserved_kib());
                                s.deliver(batch).await;
                                s.sent_kib.fetch_sub(kib, Ordering::AcqRel);
                            }
                            None => break,
                        }
                    }
                }));
            }
            Lanes::Shared(tx)
        };

        let mut background = Vec::new();
        if needs_map {
            let api = api.clone();
            let stream = cfg.stream_name.clone();
            let every = cfg.shard_refresh;
            let shards = shards.clone();
            let metrics = metrics.clone();
            background.push(tokio::spawn(async move {
                loop {
                    // Without a map yet (Kinesis was out of reach at start), ask again soon.
                    let wait = if shards.get().is_empty() {
                        every.min(Duration::from_secs(1))
                    } else {
                        every
                    };
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shards.stale() => {}
                    }
                    match api.list_shards(&stream).await {
                        Ok(list) if !list.is_empty() => {
                            let map = ShardMap::new(list);
                            metrics.output_shard_refreshes.inc();
                            if *shards.get() != map {
                                tracing::info!(open_shards = map.len(), "the stream's shards changed; spreading over the new ones");
                                shards.set(map);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "ListShards failed; keeping the current shard map"),
                    }
                }
            }));
        }
        {
            let api = api.clone();
            let stream = cfg.stream_name.clone();
            let every = cfg.health_check_interval;
            background.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let ok = matches!(api.describe(&stream).await, Ok(s) if s.status == "ACTIVE" || s.status == "UPDATING");
                    if health.output_ready.swap(ok, Ordering::AcqRel) != ok {
                        tracing::info!(ready = ok, "Kinesis stream readiness changed");
                    }
                    metrics.output_ready.set(ok as i64);
                }
            }));
        }

        let open_count = if keyed { lane_count } else { 1 };
        Ok(KinesisOutput {
            sender,
            partitioner: Partitioner::new(cfg.partition_key.clone(), shards),
            batch: cfg.batch,
            aggregate: cfg.aggregate,
            lanes: Some(lanes),
            lane_count,
            open: (0..open_count).map(|_| OpenBatch::default()).collect(),
            aggs: HashMap::new(),
            workers,
            background,
            next_lane: 0,
        })
    }

    /// How often [`KinesisOutput::flush_due`] should run.
    pub fn tick_every(&self) -> Duration {
        (self.batch.duration / 4).clamp(Duration::from_millis(5), Duration::from_millis(250))
    }

    pub async fn submit(&mut self, entry: Entry, _acks: &Arc<Acks>) {
        let map = self.partitioner.shard_map();
        for i in 0..entry.batch.len() {
            let line = entry.batch.line(i);
            let (place, fallback) = self.partitioner.place(&map, &line, entry.arrived_ms);
            if fallback == Fallback::MissingField {
                self.sender.metrics.output_partition_fallback.inc();
            }
            if self.aggregate {
                self.add_aggregated(entry.id, line, place).await;
            } else {
                let lane = self.lane_for(&place);
                let rec = Rec {
                    put: PutEntry {
                        data: line,
                        partition_key: place.partition_key,
                        explicit_hash_key: place.explicit_hash_key,
                    },
                    carried: Carried::Line(entry.id),
                    last_error: None,
                };
                self.add_record(lane, rec).await;
            }
        }
    }

    fn lane_for(&mut self, place: &Placement) -> usize {
        match self.lanes {
            Some(Lanes::Keyed(_)) => {
                let key = if self.aggregate {
                    place.shard.map(|s| s as u64).or(place.affinity)
                } else {
                    place.affinity
                };
                match key {
                    Some(k) => (k % self.lane_count as u64) as usize,
                    // Lines without a key (field missing) share one lane until its batch goes,
                    // so they fill batches instead of trickling into every lane.
                    None => self.next_lane,
                }
            }
            _ => 0,
        }
    }

    async fn add_record(&mut self, lane: usize, rec: Rec) {
        let size = record_size(&rec.put);
        if size > KINESIS_MAX_RECORD_BYTES {
            let mut rec = rec;
            rec.last_error = Some(format!(
                "{size} bytes with its partition key > {KINESIS_MAX_RECORD_BYTES}"
            ));
            let mut one = Batch::default();
            one.push(rec);
            self.sender.dead_letter(one, "record_too_large").await;
            return;
        }
        let full = {
            let ob = &self.open[lane].batch;
            !ob.is_empty()
                && (ob.len() >= self.batch.size || ob.bytes + size > self.batch.max_batch_bytes)
        };
        if full {
            self.send(lane).await;
        }
        self.reserve(lane, size).await;
        let ob = &mut self.open[lane];
        ob.batch.push(rec);
        ob.since.get_or_insert_with(Instant::now);
        if ob.batch.len() >= self.batch.size {
            self.send(lane).await;
        }
    }

    async fn add_aggregated(&mut self, id: EntryId, line: Bytes, place: Placement) {
        let shard = place.shard.unwrap_or(0);
        let limit = KINESIS_MAX_RECORD_BYTES;
        let fits = self.aggs.get(&shard).is_none_or(|o| {
            o.agg.fits(
                &place.partition_key,
                place.explicit_hash_key.as_ref(),
                line.len(),
                limit,
            )
        });
        if !fits {
            self.emit_aggregate(shard).await;
        }
        let alone_fits = Aggregator::default().fits(
            &place.partition_key,
            place.explicit_hash_key.as_ref(),
            line.len(),
            limit,
        );
        if !alone_fits {
            // Too big to aggregate: a plain record (deaggregators pass those through).
            let lane = self.lane_for(&place);
            let rec = Rec {
                put: PutEntry {
                    data: line,
                    partition_key: place.partition_key,
                    explicit_hash_key: place.explicit_hash_key,
                },
                carried: Carried::Line(id),
                last_error: None,
            };
            self.add_record(lane, rec).await;
            return;
        }
        let open = self.aggs.entry(shard).or_insert_with(|| OpenAgg {
            agg: Aggregator::default(),
            counts: Vec::new(),
            lines: Vec::new(),
            since: Instant::now(),
        });
        open.agg
            .add(place.partition_key, place.explicit_hash_key, line.clone());
        add_counts(&mut open.counts, id, 1);
        open.lines.push(line);
    }

    /// Turns the shard's open aggregate into a record in its lane's batch.
    async fn emit_aggregate(&mut self, shard: usize) -> Option<usize> {
        let mut open = self.aggs.remove(&shard)?;
        if open.agg.is_empty() {
            return None;
        }
        let partition_key = open.agg.first_key().cloned()?;
        let explicit_hash_key = open.agg.first_hash_key().cloned();
        let data = open.agg.finish();
        let lane = shard % self.lane_count;
        let rec = Rec {
            put: PutEntry {
                data,
                partition_key,
                explicit_hash_key,
            },
            carried: Carried::Lines {
                counts: open.counts,
                lines: open.lines,
            },
            last_error: None,
        };
        self.add_record(lane, rec).await;
        Some(lane)
    }

    /// Takes budget for `size` more bytes in lane `lane`'s open batch, in steps of 256 KiB;
    /// waits while the in-flight byte budget is spent (backpressure down to the buffer).
    async fn reserve(&mut self, lane: usize, size: usize) {
        const STEP_KIB: u32 = 256;
        let max = self.sender.in_flight_kib;
        let batch = &mut self.open[lane].batch;
        let need = (((batch.bytes + size) / KIB) as u32 + 1).min(max);
        let reserved = batch.reserved_kib();
        if need <= reserved {
            return;
        }
        let take = (need - reserved).max(STEP_KIB).min(max - reserved);
        if take == 0 {
            return;
        }
        let permit = match self.sender.in_flight.clone().try_acquire_many_owned(take) {
            Ok(p) => Some(p),
            Err(_) => {
                // Spent. If only open batches hold it, nothing would give it back: send them
                // first. Otherwise batches on their way will, so just wait (keeping the open
                // batches filling).
                if self.sender.sent_kib.load(Ordering::Acquire) == 0 {
                    for l in 0..self.open.len() {
                        Box::pin(self.send(l)).await;
                    }
                }
                let need = ((size / KIB) as u32 + 1).max(STEP_KIB).min(max);
                self.sender
                    .in_flight
                    .clone()
                    .acquire_many_owned(need)
                    .await
                    .ok()
            }
        };
        if let Some(p) = permit {
            let batch = &mut self.open[lane].batch;
            match &mut batch.permit {
                Some(held) => held.merge(p),
                None => batch.permit = Some(p),
            }
        }
    }

    /// Hands lane `lane`'s open batch to its sender; waits while the lane is busy.
    async fn send(&mut self, lane: usize) {
        let ob = std::mem::take(&mut self.open[lane]).batch;
        if ob.is_empty() {
            return;
        }
        self.sender
            .sent_kib
            .fetch_add(u64::from(ob.reserved_kib()), Ordering::AcqRel);
        if lane == self.next_lane {
            self.next_lane = (self.next_lane + 1) % self.lane_count;
        }
        let sent = match &self.lanes {
            Some(Lanes::Shared(tx)) => tx.send(ob).await.is_ok(),
            Some(Lanes::Keyed(txs)) => txs[lane].send(ob).await.is_ok(),
            None => false,
        };
        if !sent {
            tracing::error!("Kinesis sender lanes are closed; lines stay in the buffer");
        }
    }

    /// Sends what has waited for `batch.duration`.
    pub async fn flush_due(&mut self) {
        let now = Instant::now();
        let due_aggs: Vec<usize> = self
            .aggs
            .iter()
            .filter(|(_, o)| now.duration_since(o.since) >= self.batch.duration)
            .map(|(s, _)| *s)
            .collect();
        let mut touched = Vec::new();
        for s in due_aggs {
            if let Some(lane) = self.emit_aggregate(s).await {
                touched.push(lane);
            }
        }
        for lane in 0..self.open.len() {
            let due = self.open[lane]
                .since
                .is_some_and(|t| now.duration_since(t) >= self.batch.duration);
            if due || touched.contains(&lane) {
                self.send(lane).await;
            }
        }
    }

    /// Sends everything and waits until it is delivered or dead-lettered.
    pub async fn finish(&mut self) {
        let shards: Vec<usize> = self.aggs.keys().copied().collect();
        for s in shards {
            self.emit_aggregate(s).await;
        }
        for lane in 0..self.open.len() {
            self.send(lane).await;
        }
        self.lanes = None; // closes the queues; workers exit when drained
        for w in self.workers.drain(..) {
            let _ = w.await;
        }
        for b in self.background.drain(..) {
            b.abort();
        }
    }
}

impl Drop for KinesisOutput {
    fn drop(&mut self) {
        for b in &self.background {
            b.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::Buffer;
    use crate::config::BufferConfig;
    use crate::lines::LineBatch;
    use crate::output::kinesis_api::{PutResult, StreamState};
    use crate::partition::Shard;
    use futures::future::BoxFuture;
    use std::sync::Mutex;

    /// One scripted answer: entries (by index) to fail with a code, or a whole-call error.
    type Step = Result<Vec<(usize, &'static str)>, CallError>;

    /// A scripted Kinesis: records every call, fails entries as told.
    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<Vec<PutEntry>>>,
        /// Per call, in order: entries (by index) to fail with this code, or a whole-call error.
        script: Mutex<Vec<Step>>,
        shards: Mutex<Vec<Shard>>,
        describe_error: Mutex<Option<CallError>>,
    }

    impl Fake {
        /// Records per PutRecords call, in call order.
        fn call_sizes(&self) -> Vec<usize> {
            let calls = self.calls.lock().expect("lock");
            calls.iter().map(Vec::len).collect()
        }
    }

    impl KinesisApi for Fake {
        fn put_records<'a>(
            &'a self,
            _: &'a str,
            entries: &'a [PutEntry],
        ) -> BoxFuture<'a, Result<PutResult, CallError>> {
            Box::pin(async move {
                let step = {
                    let mut s = self.script.lock().expect("lock");
                    if s.is_empty() {
                        Ok(vec![])
                    } else {
                        s.remove(0)
                    }
                };
                self.calls.lock().expect("lock").push(entries.to_vec());
                let fails = step?;
                Ok(PutResult {
                    failed: fails.into_iter().map(|(i, c)| (i, c.to_string())).collect(),
                    shards: vec!["shardId-000000000000".into()],
                })
            })
        }
        fn list_shards<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<Shard>, CallError>> {
            Box::pin(async move { Ok(self.shards.lock().expect("lock").clone()) })
        }
        fn describe<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<StreamState, CallError>> {
            Box::pin(async move {
                match self.describe_error.lock().expect("lock").clone() {
                    Some(e) => Err(e),
                    None => Ok(StreamState {
                        status: "ACTIVE".into(),
                        open_shards: Some(1),
                    }),
                }
            })
        }
    }

    fn cfg(partition_key: PartitionKeySpec, size: usize) -> KinesisConfig {
        KinesisConfig {
            stream_name: "s".into(),
            partition_key,
            region: None,
            endpoint_url: None,
            credentials: None,
            batch: BatchPolicy {
                size,
                duration: Duration::from_millis(50),
                max_batch_bytes: KINESIS_MAX_BYTES_PER_CALL,
            },
            aggregate: false,
            max_in_flight: 2,
            shard_refresh: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
            health_check_interval: Duration::from_secs(10),
            max_in_flight_bytes: 16 << 20,
            put_records_client: crate::config::PutRecordsClient::Direct,
        }
    }

    fn retry_policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            initial_wait: Duration::from_millis(1),
            max_wait: Duration::from_millis(5),
            backoff: crate::config::Backoff::Exponential,
        }
    }

    struct Rig {
        fake: Arc<Fake>,
        buffer: Arc<Buffer>,
        acks: Arc<Acks>,
        dead_path: std::path::PathBuf,
        metrics: Arc<Metrics>,
        _dir: tempfile::TempDir,
    }

    fn rig() -> Rig {
        let dir = tempfile::tempdir().expect("tmp");
        let metrics = Arc::new(Metrics::default());
        let buffer = Arc::new(
            Buffer::open(&BufferConfig::for_tests(1 << 30), metrics.clone()).expect("buffer"),
        );
        let acks = Arc::new(Acks::new(buffer.clone(), None, metrics.clone()));
        Rig {
            fake: Arc::new(Fake::default()),
            buffer,
            acks,
            dead_path: dir.path().join("dead.ndjson"),
            metrics,
            _dir: dir,
        }
    }

    async fn output(r: &Rig, c: &KinesisConfig) -> Result<KinesisOutput, OutputError> {
        let dead = Arc::new(DeadLetter::new(&r.dead_path, r.metrics.clone()));
        KinesisOutput::start(
            c,
            r.fake.clone(),
            r.acks.clone(),
            dead,
            Arc::new(Health::default()),
            retry_policy(),
        )
        .await
    }

    async fn feed(r: &Rig, out: &mut KinesisOutput, lines: Vec<String>) {
        r.buffer
            .append(LineBatch::from_lines(lines))
            .await
            .expect("append");
        let e = r.buffer.next().await.expect("entry");
        r.acks.register(&e).await;
        out.submit(e, &r.acks).await;
    }

    #[tokio::test]
    async fn only_failed_entries_are_sent_again_and_everything_is_acked_once() {
        let r = rig();
        r.fake.script.lock().expect("lock").extend([
            Ok(vec![
                (1, "ProvisionedThroughputExceededException"),
                (3, "InternalFailure"),
            ]),
            Ok(vec![(0, "ProvisionedThroughputExceededException")]),
            Ok(vec![]),
        ]);
        let mut out = output(&r, &cfg(PartitionKeySpec::Static("k".into()), 5))
            .await
            .expect("start");
        feed(&r, &mut out, (0..5).map(|i| format!("line{i}")).collect()).await;
        out.finish().await;
        let calls = r.fake.calls.lock().expect("lock");
        let datas = |c: &Vec<PutEntry>| {
            c.iter()
                .map(|e| String::from_utf8_lossy(&e.data).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            datas(&calls[0]),
            ["line0", "line1", "line2", "line3", "line4"]
        );
        assert_eq!(
            datas(&calls[1]),
            ["line1", "line3"],
            "only the failed entries, in order"
        );
        assert_eq!(datas(&calls[2]), ["line1"]);
        assert_eq!(calls.len(), 3);
        assert_eq!(r.acks.outstanding(), 0, "entry acknowledged");
        assert_eq!(r.metrics.output_lines.get(), 5);
        assert_eq!(
            r.metrics
                .output_failed_entries
                .get("ProvisionedThroughputExceededException"),
            2
        );
        assert_eq!(r.metrics.output_throttles.get(), 2);
        assert!(!r.dead_path.exists());
    }

    #[tokio::test]
    async fn after_max_retries_records_go_to_the_dead_letter_file_with_their_code() {
        let r = rig();
        let always = (0..10).map(|_| Ok(vec![(0, "ProvisionedThroughputExceededException")]));
        r.fake.script.lock().expect("lock").extend(always);
        let mut out = output(&r, &cfg(PartitionKeySpec::Static("k".into()), 2))
            .await
            .expect("start");
        feed(&r, &mut out, vec!["doomed".into(), "fine".into()]).await;
        out.finish().await;
        assert_eq!(
            r.fake.calls.lock().expect("lock").len(),
            3,
            "1 try + max_retries 2"
        );
        let dead = std::fs::read_to_string(&r.dead_path).expect("dead letter");
        let rec: serde_json::Value = serde_json::from_str(dead.trim()).expect("json");
        assert_eq!(rec["line"], "doomed");
        assert_eq!(rec["reason"], "retries_exhausted");
        assert_eq!(rec["error_code"], "ProvisionedThroughputExceededException");
        assert_eq!(r.acks.outstanding(), 0);
        assert_eq!(r.metrics.output_lines.get(), 1);
        assert_eq!(r.metrics.dead_lettered.get("retries_exhausted"), 1);
    }

    #[tokio::test]
    async fn outages_are_retried_without_dead_lettering() {
        let r = rig();
        let down = CallError::Transient {
            code: "ConnectionError".into(),
            message: "refused".into(),
            throttled: false,
        };
        r.fake
            .script
            .lock()
            .expect("lock")
            .extend((0..6).map(|_| Err(down.clone())).chain([Ok(vec![])]));
        let mut out = output(&r, &cfg(PartitionKeySpec::Random, 1))
            .await
            .expect("start");
        feed(&r, &mut out, vec!["survives".into()]).await;
        out.finish().await;
        assert_eq!(r.fake.calls.lock().expect("lock").len(), 7);
        assert!(!r.dead_path.exists());
        assert_eq!(r.metrics.output_lines.get(), 1);
        assert_eq!(r.metrics.output_call_errors.get("ConnectionError"), 6);
    }

    #[tokio::test]
    async fn batches_fill_by_count_and_bytes_and_flush_by_age() {
        // By count: 7 records in batches of 3; the 7th goes when it is old enough.
        let r = rig();
        let mut out = output(&r, &cfg(PartitionKeySpec::Random, 3))
            .await
            .expect("start");
        feed(&r, &mut out, (0..7).map(|i| format!("{i}")).collect()).await;
        out.flush_due().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            r.fake.calls.lock().expect("lock").len(),
            2,
            "the 7th waits for its batch"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        out.flush_due().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sizes = r.fake.call_sizes();
        assert_eq!(sizes, [3, 3, 1]);
        out.finish().await;

        // By bytes: 36-character UUID keys make each 1-byte line a 37-byte record; 100 bytes
        // hold two of them, and a 66-byte record only alone.
        let r = rig();
        let mut c = cfg(PartitionKeySpec::Random, 500);
        c.batch.max_batch_bytes = 100;
        let mut out = output(&r, &c).await.expect("start");
        feed(
            &r,
            &mut out,
            vec![
                "a".into(),
                "b".into(),
                "c".into(),
                "x".repeat(30),
                "y".into(),
            ],
        )
        .await;
        out.finish().await;
        let sizes = r.fake.call_sizes();
        assert_eq!(sizes, [2, 1, 1, 1], "{sizes:?}");
    }

    #[tokio::test]
    async fn keyed_lanes_keep_order_per_key() {
        let r = rig();
        let mut out = output(&r, &cfg(PartitionKeySpec::Field(vec!["k".into()]), 4))
            .await
            .expect("start");
        let lines: Vec<String> = (0..200)
            .map(|i| format!("{{\"k\":\"key{}\",\"i\":{i}}}", i % 7))
            .collect();
        feed(&r, &mut out, lines).await;
        out.finish().await;
        let mut last: HashMap<String, i64> = HashMap::new();
        for call in r.fake.calls.lock().expect("lock").iter() {
            for e in call {
                let v: serde_json::Value = serde_json::from_slice(&e.data).expect("json");
                let k = v["k"].as_str().expect("k").to_string();
                assert_eq!(e.partition_key.as_ref(), k);
                let i = v["i"].as_i64().expect("i");
                let prev = last.insert(k, i).unwrap_or(-1);
                assert!(i > prev);
            }
        }
    }

    #[tokio::test]
    async fn a_small_in_flight_budget_slows_down_but_never_deadlocks() {
        let r = rig();
        let mut c = cfg(PartitionKeySpec::Field(vec!["k".into()]), 50);
        c.max_in_flight = 4;
        c.max_in_flight_bytes = 2048; // two KiB for all lanes: every batch waits for the last
        let mut out = output(&r, &c).await.expect("start");
        let lines: Vec<String> = (0..300)
            .map(|i| format!("{{\"k\":\"key{}\",\"pad\":\"{}\"}}", i % 7, "x".repeat(100)))
            .collect();
        tokio::time::timeout(Duration::from_secs(20), async {
            feed(&r, &mut out, lines).await;
            out.finish().await;
        })
        .await
        .expect("no deadlock");
        assert_eq!(r.metrics.output_lines.get(), 300);
        assert_eq!(r.acks.outstanding(), 0);
    }

    #[tokio::test]
    async fn too_large_records_are_dead_lettered() {
        let r = rig();
        let mut out = output(&r, &cfg(PartitionKeySpec::Field(vec!["k".into()]), 10))
            .await
            .expect("start");
        let big = format!(
            "{{\"k\":\"{}\",\"pad\":\"{}\"}}",
            "K".repeat(200),
            "p".repeat(KINESIS_MAX_RECORD_BYTES - 220)
        );
        feed(&r, &mut out, vec![big, "{\"k\":\"small\"}".into()]).await;
        out.finish().await;
        let dead = std::fs::read_to_string(&r.dead_path).expect("dead");
        assert!(dead.contains("record_too_large"));
        assert_eq!(r.metrics.output_lines.get(), 1);
        assert_eq!(r.acks.outstanding(), 0);
    }

    #[tokio::test]
    async fn an_unreachable_kinesis_at_start_means_not_ready_not_a_failed_start() {
        let r = rig();
        *r.fake.describe_error.lock().expect("lock") = Some(CallError::Transient {
            code: "ConnectionError".into(),
            message: "refused".into(),
            throttled: false,
        });
        let health = Arc::new(Health::default());
        let dead = Arc::new(DeadLetter::new(&r.dead_path, r.metrics.clone()));
        let out = KinesisOutput::start(
            &cfg(PartitionKeySpec::ShardBalanced, 10),
            r.fake.clone(),
            r.acks.clone(),
            dead,
            health.clone(),
            retry_policy(),
        )
        .await
        .expect("starts");
        assert!(!health.output_ready.load(Ordering::Acquire));
        drop(out);
    }

    #[tokio::test]
    async fn start_fails_clearly_for_a_missing_stream_or_refused_credentials() {
        for (code, want) in [
            ("ResourceNotFoundException", "does not exist"),
            ("UnrecognizedClientException", "refused the credentials"),
        ] {
            let r = rig();
            *r.fake.describe_error.lock().expect("lock") = Some(CallError::Transient {
                code: code.into(),
                message: "m".into(),
                throttled: false,
            });
            let err = output(&r, &cfg(PartitionKeySpec::Random, 1))
                .await
                .err()
                .expect("fails");
            assert!(err.to_string().contains(want), "{err}");
        }
    }
}
