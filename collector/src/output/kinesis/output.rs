//! The Kinesis output's batching stage: lines become records, records fill batches, full
//! batches go to the sender lanes.
//!
//! Stages, one file each: `partition.rs` places each line (partition key, hash key, shard);
//! `aggregate.rs` packs lines per shard into KPL records (`aggregate: true`, format in `kpl.rs`,
//! their MD5 trailers computed several at once by `md5lanes.rs`); this file fills
//! batches by count, bytes and age; `budget.rs` bounds the bytes in flight; `lanes.rs` runs the
//! senders; `deliver.rs` sends a batch until it is done, paced per shard by `pacing.rs`;
//! `background.rs` refreshes the shard map. `api.rs` is the client contract, `classify.rs` the
//! one place error codes are read, `sdk.rs` and `direct.rs` the two clients, `connect.rs` the
//! wiring.
//!
//! Start-up calls only what the partition strategy needs (least privilege): ListShards for
//! shard-balanced and aggregated sending (required), and for a field key (optional: without it,
//! records are paced as one); nothing for `random`, `static:` and `timestamp`.
//!
//! Invariant: every line handed to [`KinesisOutput::submit`] is acknowledged exactly once, after
//! Kinesis accepted it or after its dead-letter record is written.

use super::aggregate::{Added, Aggregates};
use super::api::{CallError, Fault, KinesisApi, PutEntry};
use super::background::{list_shards_problem, Refresher};
use super::batch::{record_size, Batch, Carried, Meta};
use super::budget::{Budget, Cover};
use super::deliver::{Sender, OUTPUT_NAME};
use super::error::KinesisStartError;
use super::lanes::Lanes;
use super::outage::Outage;
use super::pacing::Pacing;
use super::partition::{Fallback, Partitioner, Placement, ShardMap, SharedShardMap};
use crate::buffer::{Entry, EntryId};
use crate::config::{
    BatchPolicy, KinesisConfig, PartitionKeySpec, RetryPolicy, AGGREGATE_RECORD_BYTES,
};
use crate::deadletter::DeadLetter;
use crate::health::Delivery;
use crate::logging::ratelimit::Every;
use crate::output::acks::Acks;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Lanes per allowed call in flight, for keyed strategies.
const KEYED_LANES_PER_CALL: usize = 4;

/// Aggregated records a batch holds at most: one pass of the multi-lane MD5 (`md5lanes.rs`).
/// Smaller calls than the 5 MiB Kinesis allows keep several in flight within
/// `max_in_flight_bytes`, so entries are acknowledged sooner, and their request bodies small.
const AGGREGATES_PER_BATCH: usize = 8;

/// An open batch waiting to fill.
#[derive(Default)]
struct OpenBatch {
    batch: Batch,
    since: Option<Instant>,
}

pub struct KinesisOutput {
    sender: Arc<Sender>,
    partitioner: Partitioner,
    batch: BatchPolicy,
    aggregate: bool,
    lanes: Option<Lanes>,
    lane_count: usize,
    budget: Arc<Budget>,
    open: Vec<OpenBatch>,
    aggs: Aggregates,
    /// The shard map the open aggregates were built for.
    aggs_map: Option<Arc<ShardMap>>,
    /// Aggregated and shard-balanced: the shard whose aggregate takes lines until it is full.
    balanced_shard: usize,
    workers: Vec<JoinHandle<()>>,
    background: Vec<JoinHandle<()>>,
    next_lane: usize,
}

/// The start-up error for a failed ListShards that the strategy cannot do without.
pub(crate) fn start_error(cfg: &KinesisConfig, e: CallError) -> KinesisStartError {
    let stream = cfg.stream_name.clone();
    match e.fault {
        Fault::NotFound => KinesisStartError::StreamMissing { stream, source: e },
        Fault::Credentials => KinesisStartError::CredentialsRefused(e),
        Fault::AccessDenied => KinesisStartError::ListShardsDenied { stream, source: e },
        _ => KinesisStartError::ListShards { stream, source: e },
    }
}

impl KinesisOutput {
    /// Loads the shard map when the strategy needs it, and starts the sender lanes and the
    /// background checks.
    pub async fn start(
        cfg: &KinesisConfig,
        api: Arc<dyn KinesisApi>,
        acks: Arc<Acks>,
        dead: Arc<DeadLetter>,
        delivery: Arc<Delivery>,
        retry_policy: RetryPolicy,
    ) -> Result<KinesisOutput, KinesisStartError> {
        let metrics = acks.metrics().clone();
        let shards = Arc::new(SharedShardMap::default());
        let required = cfg.aggregate || cfg.partition_key == PartitionKeySpec::ShardBalanced;
        let wants_map = required || Partitioner::needs_shard_map(&cfg.partition_key);
        delivery.clear(OUTPUT_NAME);
        if wants_map {
            match api.list_shards(&cfg.stream_name).await {
                Ok(list) if !list.is_empty() => {
                    tracing::info!(stream = %cfg.stream_name, open_shards = list.len(), "Kinesis stream checked");
                    shards.set(ShardMap::new(list));
                }
                Ok(_) => tracing::warn!("ListShards returned no open shard"),
                // Out of reach for the moment: start anyway (not ready); lines are buffered.
                Err(e) if matches!(e.fault, Fault::Outage | Fault::Throttled | Fault::Kms) => {
                    tracing::warn!(error = %e, "cannot reach Kinesis yet; starting not ready, lines are buffered");
                    delivery.set_problem(OUTPUT_NAME, list_shards_problem(&e));
                }
                Err(e) if required || e.fault != Fault::AccessDenied => {
                    return Err(start_error(cfg, e))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ListShards is not allowed; records are placed by their key alone and paced as one")
                }
            }
        }

        // Order matters only per key: shard-balanced and random records (aggregated or not)
        // share one open batch and every lane, so batches fill from all shards at once.
        let keyed = matches!(
            cfg.partition_key,
            PartitionKeySpec::Field(_) | PartitionKeySpec::Static(_) | PartitionKeySpec::Timestamp
        );
        let outage = Arc::new(Outage::default());
        let sender = Arc::new(Sender {
            api: api.clone(),
            stream: cfg.stream_name.clone(),
            retry: retry_policy,
            pacing: Pacing::new(cfg.stream_mode, cfg.max_record_bytes),
            metrics: metrics.clone(),
            dead,
            acks,
            shards: shards.clone(),
            watch_shards: wants_map,
            delivery: delivery.clone(),
            calls: Semaphore::new(cfg.max_in_flight),
            call_warnings: Every::default(),
            outage: outage.clone(),
            max_record_bytes: cfg.max_record_bytes,
            stream_limit: Default::default(),
        });
        // Keyed: a lane per order domain, 4 per call in flight, so that a few busy keys rarely
        // share a lane (one call at a time per lane); the calls semaphore caps concurrency.
        let lane_count = if keyed {
            cfg.max_in_flight * KEYED_LANES_PER_CALL
        } else {
            cfg.max_in_flight
        };
        let (lanes, workers) = Lanes::start(sender.clone(), keyed, lane_count);
        let mut background = Vec::new();
        if wants_map {
            background.push(
                Refresher {
                    api,
                    stream: cfg.stream_name.clone(),
                    shards: shards.clone(),
                    every: cfg.shard_refresh.min(cfg.health_check_interval),
                    delivery,
                    metrics,
                    outage,
                }
                .spawn(),
            );
        }
        let open_count = if keyed { lane_count } else { 1 };
        Ok(KinesisOutput {
            sender,
            partitioner: Partitioner::new(cfg.partition_key.clone(), shards),
            batch: cfg.batch,
            aggregate: cfg.aggregate,
            lanes: Some(lanes),
            lane_count,
            budget: Budget::new(cfg.max_in_flight_bytes),
            open: (0..open_count).map(|_| OpenBatch::default()).collect(),
            aggs: Aggregates::default(),
            aggs_map: None,
            balanced_shard: 0,
            workers,
            background,
            next_lane: 0,
        })
    }

    /// How often [`KinesisOutput::flush_due`] should run.
    pub fn tick_every(&self) -> Duration {
        (self.batch.duration / 4).clamp(Duration::from_millis(5), Duration::from_millis(250))
    }

    pub async fn submit(&mut self, entry: Entry) {
        let map = self.partitioner.shard_map();
        if self.aggregate && !self.aggs_map.as_ref().is_some_and(|m| Arc::ptr_eq(m, &map)) {
            // The shards changed: the open aggregates are sent as they are (each one's user
            // records share its anchor, so they stay together wherever it lands), and new lines
            // are placed by the new map.
            for s in self.aggs.shards() {
                self.emit_aggregate(s).await;
            }
            self.aggs_map = Some(map.clone());
        }
        for i in 0..entry.batch.len() {
            let line = entry.batch.line(i);
            let (place, fallback) = self.partitioner.place(&map, &line, entry.arrived_ms);
            if fallback == Fallback::MissingField {
                self.sender.metrics.output_partition_fallback.inc();
            }
            if self.aggregate {
                self.add_aggregated(entry.id, line, place, &map).await;
            } else {
                let lane = self.lane_for(&place, map.len());
                let movable = place.affinity.is_none()
                    && place.explicit_hash_key.is_some()
                    && place.shard.is_some();
                let meta = Meta::new(Carried::Line(entry.id), place.shard, movable);
                let put = PutEntry {
                    data: line,
                    partition_key: place.partition_key,
                    explicit_hash_key: place.explicit_hash_key,
                };
                self.add_record(lane, put, meta).await;
            }
        }
    }

    /// Lanes per shard, and the first lane of shard `shard`'s group, for a map of `shards`.
    fn shard_group(&self, shard: usize, shards: usize) -> (usize, usize) {
        let shards = shards.max(1);
        let per = (self.lane_count / shards).max(1);
        (per, (shard % shards * per) % self.lane_count)
    }

    /// The lane of an aggregated record: the first of its shard's group when order per key is
    /// kept, else the one shared open batch.
    fn shard_lane(&self, shard: usize, shards: usize) -> usize {
        match self.lanes {
            Some(Lanes::Keyed(_)) => self.shard_group(shard, shards).1,
            _ => 0,
        }
    }

    /// The lane of a keyed record. With the shard map known, lanes are split among shards, so
    /// that keys of different shards never share a lane while there are at least as many lanes
    /// as shards: a shard that must wait holds up only its own keys.
    fn lane_for(&mut self, place: &Placement, shards: usize) -> usize {
        let Some(Lanes::Keyed(_)) = self.lanes else {
            return 0;
        };
        match (place.shard, place.affinity) {
            (Some(s), affinity) if shards > 0 => {
                let (per, first) = self.shard_group(s, shards);
                (first + (affinity.unwrap_or(0) % per as u64) as usize) % self.lane_count
            }
            (_, Some(k)) => (k % self.lane_count as u64) as usize,
            // Lines without a key (field missing) share one lane until its batch goes, so they
            // fill batches instead of trickling into every lane.
            (_, None) => self.next_lane,
        }
    }

    async fn add_record(&mut self, lane: usize, put: PutEntry, mut meta: Meta) {
        let size = record_size(&put);
        let max_record = self.sender.max_record_bytes;
        if size > max_record {
            meta.last_error = Some(format!(
                "{size} bytes with its partition key > output.aws_kinesis.max_record_bytes {max_record}"
            ));
            self.sender
                .dead_letter_one(put, meta, "record_too_large")
                .await;
            return;
        }
        let max_bytes = if self.aggregate {
            self.batch
                .max_batch_bytes
                .min(AGGREGATES_PER_BATCH * AGGREGATE_RECORD_BYTES)
        } else {
            self.batch.max_batch_bytes
        };
        let full = {
            let ob = &self.open[lane].batch;
            !ob.is_empty() && (ob.len() >= self.batch.size || ob.bytes + size > max_bytes)
        };
        if full {
            self.send(lane).await;
        }
        self.reserve(lane, size).await;
        let ob = &mut self.open[lane];
        ob.batch.push(put, meta);
        ob.since.get_or_insert_with(Instant::now);
        if ob.batch.len() >= self.batch.size {
            self.send(lane).await;
        }
    }

    async fn add_aggregated(&mut self, id: EntryId, line: Bytes, place: Placement, map: &ShardMap) {
        let shards = map.len();
        // Shard-balanced lines fill one shard's aggregate at a time, the shards taking turns
        // per record: an entry's lines share one or two records instead of one per shard, so
        // the entry is acknowledged as soon as those are delivered.
        let balanced = place.affinity.is_none() && place.explicit_hash_key.is_some();
        let place = if balanced && shards > 0 {
            let mut s = self.balanced_shard % shards;
            if !self.aggs.fits(s, &Self::balanced_place(map, s), line.len()) {
                // Full: sent, and the next shard's turn begins (emitting moves the turn on).
                self.emit_aggregate(s).await;
                s = self.balanced_shard % shards;
            }
            Self::balanced_place(map, s)
        } else {
            place
        };
        match self.aggs.add(id, line, place) {
            Added::Joined => {}
            Added::Flushed(put, meta) | Added::Alone(put, meta) => {
                let lane = self.shard_lane(meta.shard.unwrap_or(0), shards);
                self.add_record(lane, put, meta).await;
            }
        }
    }

    /// Where shard-balanced lines go while it is shard `s`'s turn.
    fn balanced_place(map: &ShardMap, s: usize) -> Placement {
        let shard = &map.shards[s];
        Placement {
            partition_key: shard.id.clone(),
            explicit_hash_key: Some(shard.target.clone()),
            affinity: None,
            shard: Some(s),
        }
    }

    /// Turns the shard's open aggregate into a record in its lane's batch. Emitting the
    /// aggregate whose turn it is (full, or old enough) gives the turn to the next shard.
    async fn emit_aggregate(&mut self, shard: usize) -> Option<usize> {
        let (put, meta) = self.aggs.finish(shard)?;
        let shards = self.aggs_map.as_ref().map_or(0, |m| m.len());
        if shards > 0 && shard == self.balanced_shard % shards {
            self.balanced_shard = (shard + 1) % shards;
        }
        let lane = self.shard_lane(shard, self.partitioner.shard_map().len());
        self.add_record(lane, put, meta).await;
        Some(lane)
    }

    /// Covers `size` more bytes of lane `lane`'s open batch with budget; waits while the
    /// in-flight byte budget is spent (backpressure down to the buffer).
    async fn reserve(&mut self, lane: usize, size: usize) {
        let bytes = self.open[lane].batch.bytes + size;
        let cover = self
            .budget
            .try_cover(&mut self.open[lane].batch.reservation, bytes);
        if let Cover::Spent { nothing_sent } = cover {
            // If only open batches hold budget, nothing would give it back: send them first.
            // Otherwise batches on their way will, so just wait (keeping the open batches).
            if nothing_sent {
                for l in 0..self.open.len() {
                    Box::pin(self.send(l)).await;
                }
            }
            let budget = self.budget.clone();
            budget
                .wait_cover(&mut self.open[lane].batch.reservation, size)
                .await;
        }
    }

    /// Hands lane `lane`'s open batch to its sender; waits while the lane is busy.
    async fn send(&mut self, lane: usize) {
        let mut ob = std::mem::take(&mut self.open[lane]).batch;
        if ob.is_empty() {
            return;
        }
        self.budget.mark_sent(&mut ob.reservation);
        if lane == self.next_lane {
            self.next_lane = (self.next_lane + 1) % self.lane_count;
        }
        let sent = match &self.lanes {
            Some(l) => l.send(lane, ob).await,
            None => false,
        };
        if !sent {
            tracing::error!("Kinesis sender lanes are closed; lines stay in the buffer");
        }
    }

    /// Sends what has waited for `batch.duration`.
    pub async fn flush_due(&mut self) {
        let now = Instant::now();
        let mut touched = Vec::new();
        for s in self.aggs.due(self.batch.duration, now) {
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
        for s in self.aggs.shards() {
            self.emit_aggregate(s).await;
        }
        for lane in 0..self.open.len() {
            self.send(lane).await;
        }
        self.lanes = None; // closes the queues; lanes exit when drained
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
