//! The Kinesis output against a scripted client: batching, retry rules, pacing, the in-flight
//! budget, dead letters, record sizes and start-up. Time is paused: waits are virtual and exact.
//! Longer than 650 lines: the tests share one scripted client and its rig, kept in one place.

use super::api::{CallError, Fault, KinesisApi, PutEntry, PutResult};
use super::output::KinesisOutput;
use super::partition::Shard;
use crate::buffer::Buffer;
use crate::config::{
    Backoff, BatchPolicy, BufferConfig, KinesisConfig, PartitionKeySpec, PutRecordsClient,
    RetryPolicy, StreamMode, DEFAULT_KINESIS_MAX_RECORD_BYTES, KINESIS_MAX_BYTES_PER_CALL,
};
use crate::deadletter::DeadLetter;
use crate::health::Delivery;
use crate::lines::LineBatch;
use crate::metrics::Metrics;
use crate::output::acks::Acks;
use crate::output::error::OutputError;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted answer: entries (by index) to fail with a code, or a whole-call error.
type Step = Result<Vec<(usize, &'static str)>, CallError>;

/// A scripted Kinesis: records every call, fails entries as told, takes `latency` per call.
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<Vec<PutEntry>>>,
    /// Per call, in order: entries (by index) to fail with this code, or a whole-call error.
    script: Mutex<Vec<Step>>,
    /// Fail every entry whose data contains this text with this code, on every call.
    poison: Mutex<Option<(&'static str, &'static str)>>,
    shards: Mutex<Vec<Shard>>,
    list_error: Mutex<Option<CallError>>,
    latency: Mutex<Duration>,
    /// Every call fails as unreachable until then.
    down_until: Mutex<Option<tokio::time::Instant>>,
    /// The stream's maximum record size: a call with a record whose data is longer is refused
    /// as Kinesis refuses it.
    stream_limit: Mutex<Option<usize>>,
    /// Record bytes inside calls now, and the most ever.
    in_call_bytes: AtomicUsize,
    peak_in_call_bytes: AtomicUsize,
}

impl Fake {
    /// Records per PutRecords call, in call order.
    fn call_sizes(&self) -> Vec<usize> {
        let calls = self.calls.lock().expect("lock");
        calls.iter().map(Vec::len).collect()
    }

    fn datas(&self) -> Vec<Vec<String>> {
        let calls = self.calls.lock().expect("lock");
        calls
            .iter()
            .map(|c| {
                c.iter()
                    .map(|e| String::from_utf8_lossy(&e.data).into_owned())
                    .collect()
            })
            .collect()
    }
}

fn error(fault: Fault, code: &str) -> CallError {
    CallError {
        fault,
        code: code.into(),
        message: "m".into(),
    }
}

impl KinesisApi for Fake {
    fn put_records<'a>(
        &'a self,
        _: &'a str,
        entries: &'a [PutEntry],
    ) -> BoxFuture<'a, Result<PutResult, CallError>> {
        Box::pin(async move {
            let bytes: usize = entries.iter().map(|e| e.data.len()).sum();
            let now = self.in_call_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
            self.peak_in_call_bytes.fetch_max(now, Ordering::AcqRel);
            let latency = *self.latency.lock().expect("lock");
            tokio::time::sleep(latency).await;
            self.in_call_bytes.fetch_sub(bytes, Ordering::AcqRel);
            if self
                .down_until
                .lock()
                .expect("lock")
                .is_some_and(|t| tokio::time::Instant::now() < t)
            {
                return Err(error(Fault::Outage, "ConnectionError"));
            }
            if let Some(limit) = *self.stream_limit.lock().expect("lock") {
                if let Some(i) = entries.iter().position(|e| e.data.len() > limit) {
                    return Err(super::classify::call_error(
                        "ValidationException".into(),
                        format!(
                            "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim={n} cap={n}]' at 'records.{}.member.data' failed to satisfy constraint: Member must have length less than or equal to {limit}",
                            i + 1,
                            n = entries[i].data.len()
                        ),
                        false,
                    ));
                }
            }
            let step = {
                let mut s = self.script.lock().expect("lock");
                if s.is_empty() {
                    Ok(vec![])
                } else {
                    s.remove(0)
                }
            };
            self.calls.lock().expect("lock").push(entries.to_vec());
            let mut fails = step?;
            if let Some((text, code)) = *self.poison.lock().expect("lock") {
                for (i, e) in entries.iter().enumerate() {
                    if String::from_utf8_lossy(&e.data).contains(text)
                        && !fails.iter().any(|(j, _)| *j == i)
                    {
                        fails.push((i, code));
                    }
                }
                fails.sort();
            }
            Ok(PutResult {
                failed: fails.into_iter().map(|(i, c)| (i, c.to_string())).collect(),
                shards: vec!["shardId-000000000000".into()],
            })
        })
    }
    fn list_shards<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<Shard>, CallError>> {
        Box::pin(async move {
            match self.list_error.lock().expect("lock").clone() {
                Some(e) => Err(e),
                None => Ok(self.shards.lock().expect("lock").clone()),
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
        max_record_bytes: DEFAULT_KINESIS_MAX_RECORD_BYTES,
        put_records_client: PutRecordsClient::Direct,
        stream_mode: StreamMode::OnDemand,
    }
}

fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        initial_wait: Duration::from_millis(1),
        max_wait: Duration::from_millis(5),
        backoff: Backoff::Exponential,
    }
}

struct Rig {
    fake: Arc<Fake>,
    buffer: Arc<Buffer>,
    acks: Arc<Acks>,
    dead_path: std::path::PathBuf,
    metrics: Arc<Metrics>,
    delivery: Arc<Delivery>,
    _dir: tempfile::TempDir,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().expect("tmp");
    let metrics = Arc::new(Metrics::default());
    let buffer =
        Arc::new(Buffer::open(&BufferConfig::for_tests(1 << 30), metrics.clone()).expect("buffer"));
    let acks = Arc::new(Acks::new(buffer.clone(), 0, None, metrics.clone()));
    Rig {
        fake: Arc::new(Fake::default()),
        buffer,
        acks,
        dead_path: dir.path().join("dead.ndjson"),
        delivery: Arc::new(Delivery::new(Duration::from_secs(300), metrics.clone())),
        metrics,
        _dir: dir,
    }
}

fn shards(n: u128) -> Vec<Shard> {
    let step = u128::MAX / n;
    (0..n)
        .map(|i| {
            let end = if i == n - 1 {
                u128::MAX
            } else {
                (i + 1) * step - 1
            };
            Shard::new(&format!("shardId-{i:012}"), i * step, end)
        })
        .collect()
}

impl Rig {
    /// The delivery verdict, its reasons one per line.
    fn delivering(&self) -> Result<(), String> {
        self.delivery.verdict(&[]).map_err(|r| r.join("\n"))
    }
}

async fn output(r: &Rig, c: &KinesisConfig) -> Result<KinesisOutput, OutputError> {
    output_retrying(r, c, retry_policy()).await
}

async fn output_retrying(
    r: &Rig,
    c: &KinesisConfig,
    retry: RetryPolicy,
) -> Result<KinesisOutput, OutputError> {
    let dead = Arc::new(DeadLetter::new(
        &crate::config::DeadLetterConfig::at(r.dead_path.clone()),
        r.metrics.clone(),
    ));
    KinesisOutput::start(
        c,
        r.fake.clone(),
        r.acks.clone(),
        dead,
        r.delivery.clone(),
        retry,
    )
    .await
    .map_err(OutputError::from)
}

async fn feed(r: &Rig, out: &mut KinesisOutput, lines: Vec<String>) {
    r.buffer
        .append(LineBatch::from_lines(lines))
        .await
        .expect("append");
    let e = r.buffer.next(0).await.expect("entry");
    r.acks.register(&e).await;
    out.submit(e).await;
}

#[tokio::test(start_paused = true)]
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
    let datas = r.fake.datas();
    assert_eq!(datas[0], ["line0", "line1", "line2", "line3", "line4"]);
    assert_eq!(
        datas[1],
        ["line1", "line3"],
        "only the failed entries, in order"
    );
    assert_eq!(datas[2], ["line1"]);
    assert_eq!(datas.len(), 3);
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

#[tokio::test(start_paused = true)]
async fn throttled_and_internal_failures_never_reach_the_dead_letter_file() {
    // Far more throttled answers than max_retries (2): the line waits and is delivered.
    let r = rig();
    let mut script: Vec<Step> = (0..20)
        .map(|_| Ok(vec![(0, "ProvisionedThroughputExceededException")]))
        .collect();
    script.extend((0..10).map(|_| Ok(vec![(0, "InternalFailure")])));
    r.fake.script.lock().expect("lock").extend(script);
    let mut out = output(&r, &cfg(PartitionKeySpec::Static("k".into()), 2))
        .await
        .expect("start");
    feed(&r, &mut out, vec!["hot".into(), "fine".into()]).await;
    out.finish().await;
    assert_eq!(r.fake.calls.lock().expect("lock").len(), 31);
    assert!(!r.dead_path.exists(), "nothing dead-lettered");
    assert_eq!(r.metrics.output_lines.get(), 2);
    assert_eq!(r.acks.outstanding(), 0);
}

#[tokio::test(start_paused = true)]
async fn after_max_retries_invalid_records_go_to_the_dead_letter_file_with_their_code() {
    let r = rig();
    let always = (0..10).map(|_| Ok(vec![(0, "InvalidArgumentException")]));
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
    assert_eq!(rec["error_code"], "InvalidArgumentException");
    assert_eq!(r.acks.outstanding(), 0);
    assert_eq!(r.metrics.output_lines.get(), 1);
    assert_eq!(r.metrics.dead_lettered.get("retries_exhausted"), 1);
}

#[tokio::test(start_paused = true)]
async fn outages_are_retried_without_dead_lettering_and_readiness_names_them() {
    let r = rig();
    let down = error(Fault::Outage, "ConnectionError");
    let denied = error(Fault::AccessDenied, "AccessDeniedException");
    r.fake.script.lock().expect("lock").extend(
        (0..3)
            .map(|_| Err(down.clone()))
            .chain((0..3).map(|_| Err(denied.clone())))
            .chain([Ok(vec![])]),
    );
    *r.fake.latency.lock().expect("lock") = Duration::from_millis(1);
    let mut out = output(&r, &cfg(PartitionKeySpec::Random, 1))
        .await
        .expect("start");
    feed(&r, &mut out, vec!["survives".into()]).await;
    out.flush_due().await;
    // While the calls are refused, the delivery verdict says why.
    let mut saw = Vec::new();
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if let Err(reason) = r.delivering() {
            if !saw.contains(&reason) {
                saw.push(reason);
            }
        }
    }
    out.finish().await;
    assert!(saw.iter().any(|s| s.contains("unreachable")), "{saw:?}");
    assert!(
        saw.iter()
            .any(|s| s.contains("permission missing") && s.contains("kinesis:PutRecords")),
        "{saw:?}"
    );
    assert_eq!(r.delivering(), Ok(()), "delivering again after a success");
    assert_eq!(r.fake.calls.lock().expect("lock").len(), 7);
    assert!(!r.dead_path.exists());
    assert_eq!(r.metrics.output_lines.get(), 1);
    assert_eq!(r.metrics.output_call_errors.get("ConnectionError"), 3);
}

#[tokio::test(start_paused = true)]
async fn batches_fill_by_count_and_bytes_and_flush_by_age() {
    // By count: 7 records in batches of 3; the 7th goes when it is old enough.
    let r = rig();
    let mut out = output(&r, &cfg(PartitionKeySpec::Random, 3))
        .await
        .expect("start");
    feed(&r, &mut out, (0..7).map(|i| format!("{i}")).collect()).await;
    out.flush_due().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(r.fake.call_sizes(), [3, 3], "the 7th waits for its batch");
    tokio::time::sleep(Duration::from_millis(40)).await;
    out.flush_due().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(r.fake.call_sizes(), [3, 3, 1]);
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

#[tokio::test(start_paused = true)]
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

#[tokio::test(start_paused = true)]
async fn the_in_flight_budget_bounds_the_bytes_in_calls() {
    // 4 calls may be in flight, each 10 records of about 110 bytes (1.1 KB); each call takes
    // 50 ms. With a 2 KiB budget at most one batch can be on its way at a time; ignoring the
    // budget would put 4 (4.4 KB) in flight at once.
    let r = rig();
    *r.fake.latency.lock().expect("lock") = Duration::from_millis(50);
    let mut c = cfg(PartitionKeySpec::Random, 10);
    c.max_in_flight = 4;
    c.max_in_flight_bytes = 2048;
    let mut out = output(&r, &c).await.expect("start");
    let lines: Vec<String> = (0..300)
        .map(|i| format!("{i:05}{}", "x".repeat(105)))
        .collect();
    feed(&r, &mut out, lines).await;
    out.finish().await;
    assert_eq!(r.metrics.output_lines.get(), 300);
    assert_eq!(r.acks.outstanding(), 0);
    let peak = r.fake.peak_in_call_bytes.load(Ordering::Acquire);
    assert!(
        peak <= 2048,
        "{peak} bytes in calls at once, over the 2 KiB budget"
    );
    assert!(peak >= 1000, "{peak}: at least one batch at a time");
}

#[tokio::test(start_paused = true)]
async fn a_small_in_flight_budget_with_keyed_lanes_never_deadlocks() {
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

#[tokio::test(start_paused = true)]
async fn too_large_records_are_dead_lettered() {
    let r = rig();
    let mut out = output(&r, &cfg(PartitionKeySpec::Field(vec!["k".into()]), 10))
        .await
        .expect("start");
    let big = format!(
        "{{\"k\":\"{}\",\"pad\":\"{}\"}}",
        "K".repeat(200),
        "p".repeat(DEFAULT_KINESIS_MAX_RECORD_BYTES - 220)
    );
    feed(&r, &mut out, vec![big, "{\"k\":\"small\"}".into()]).await;
    out.finish().await;
    let dead = std::fs::read_to_string(&r.dead_path).expect("dead");
    assert!(dead.contains("record_too_large"));
    assert!(
        dead.contains("output.aws_kinesis.max_record_bytes 1048576"),
        "{dead:.300}"
    );
    assert_eq!(r.metrics.output_lines.get(), 1);
    assert_eq!(r.acks.outstanding(), 0);
}

/// Sends what is due until every line fed is acknowledged (time is paused: the waits are
/// virtual).
async fn settle(r: &Rig, out: &mut KinesisOutput) {
    for _ in 0..10_000 {
        out.flush_due().await;
        if r.acks.outstanding() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} entries never acknowledged", r.acks.outstanding());
}

#[tokio::test(start_paused = true)]
async fn large_records_fill_calls_up_to_10_mib() {
    let r = rig();
    let mut c = cfg(PartitionKeySpec::Static("k".into()), 500);
    c.max_record_bytes = 4 << 20;
    let mut out = output(&r, &c).await.expect("start");
    let three_mib = |i: usize| format!("{i}{}", "x".repeat((3 << 20) - 1));
    feed(&r, &mut out, (0..4).map(three_mib).collect()).await;
    out.finish().await;
    // Three 3 MiB records fit in a 10 MiB call; the fourth does not.
    assert_eq!(r.fake.call_sizes(), vec![3, 1]);
    assert_eq!(r.metrics.output_lines.get(), 4);
}

#[tokio::test(start_paused = true)]
async fn records_over_a_lower_stream_limit_are_dead_lettered_and_named_until_it_is_raised() {
    let r = rig();
    *r.fake.stream_limit.lock().expect("lock") = Some(DEFAULT_KINESIS_MAX_RECORD_BYTES);
    let mut c = cfg(PartitionKeySpec::Static("k".into()), 10);
    c.max_record_bytes = 4 << 20;
    let mut out = output(&r, &c).await.expect("start");
    let two_mib = |tag: &str| format!("{tag}{}", "x".repeat((2 << 20) - tag.len()));
    feed(
        &r,
        &mut out,
        vec!["small-1".into(), two_mib("big-1"), "small-2".into()],
    )
    .await;
    settle(&r, &mut out).await;
    // The small lines are delivered (sent again at once, without a refusal counted), the
    // 2 MiB one is dead-lettered naming the stream's maximum.
    assert_eq!(r.metrics.output_lines.get(), 2);
    let dead = std::fs::read_to_string(&r.dead_path).expect("dead");
    assert_eq!(dead.lines().count(), 1, "{dead:.300}");
    assert!(
        dead.contains("\"reason\":\"record_too_large\""),
        "{dead:.300}"
    );
    assert!(
        dead.contains(
            "ValidationException: 2097152 bytes > the stream's maximum record size 1048576"
        ),
        "{dead:.300}"
    );
    let why = r.delivering().expect_err("named in /delivery");
    assert!(
        why.contains("the stream's maximum record size is 1048576 bytes, below output.aws_kinesis.max_record_bytes (4194304)"),
        "{why}"
    );
    // Other calls going through do not clear it; a record over it accepted does.
    feed(&r, &mut out, vec!["small-3".into()]).await;
    settle(&r, &mut out).await;
    assert!(r.delivering().is_err());
    *r.fake.stream_limit.lock().expect("lock") = None;
    feed(&r, &mut out, vec![two_mib("big-2")]).await;
    out.finish().await;
    assert_eq!(r.metrics.output_lines.get(), 4);
    assert_eq!(r.delivering(), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn a_hot_shard_slows_its_own_records_and_not_the_others() {
    // Provisioned: each shard takes 1,000 records a second. 3,000 lines for shard 0 (static
    // key) and, meanwhile, lines keyed for the other shards must not wait behind them.
    let r = rig();
    *r.fake.shards.lock().expect("lock") = shards(4);
    let mut c = cfg(PartitionKeySpec::Field(vec!["k".into()]), 500);
    c.stream_mode = StreamMode::Provisioned;
    c.batch.duration = Duration::from_millis(10);
    let mut out = output(&r, &c).await.expect("start");
    let map = super::partition::ShardMap::new(shards(4));
    // Keys that land on shard 0, and keys that do not.
    let (hot, cool): (Vec<String>, Vec<String>) = (0..200)
        .map(|i| format!("key{i}"))
        .partition(|k| map.index_of_hash(super::partition::hash_key(k)) == 0);
    let t0 = tokio::time::Instant::now();
    let lines: Vec<String> = (0..3000)
        .map(|i| format!("{{\"k\":\"{}\",\"i\":{i}}}", hot[0]))
        .chain((0..300).map(|i| format!("{{\"k\":\"{}\",\"c\":{i}}}", cool[i % cool.len()])))
        .collect();
    feed(&r, &mut out, lines).await;
    out.flush_due().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    out.flush_due().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cool_done = r
        .fake
        .datas()
        .iter()
        .flatten()
        .filter(|d| d.contains("\"c\":"))
        .count();
    assert_eq!(cool_done, 300, "the other shards' lines went at once");
    out.finish().await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "3,000 records for one shard take about 2 s after its first second of burst ({took:?})"
    );
    assert_eq!(r.metrics.output_lines.get(), 3300);
    assert_eq!(
        r.metrics.output_throttles.get(),
        0,
        "paced, never throttled"
    );
}

#[tokio::test(start_paused = true)]
async fn start_needs_list_shards_only_where_the_strategy_does() {
    // Random, static and timestamp keys call nothing at start: a denied ListShards is fine.
    for spec in [
        PartitionKeySpec::Random,
        PartitionKeySpec::Static("k".into()),
        PartitionKeySpec::Timestamp,
        PartitionKeySpec::Field(vec!["k".into()]),
    ] {
        let r = rig();
        *r.fake.list_error.lock().expect("lock") =
            Some(error(Fault::AccessDenied, "AccessDeniedException"));
        let out = output(&r, &cfg(spec.clone(), 10)).await;
        assert!(out.is_ok(), "{spec:?}");
        assert_eq!(r.delivering(), Ok(()), "{spec:?}");
    }
    // Shard-balanced needs it, and says so.
    let r = rig();
    *r.fake.list_error.lock().expect("lock") =
        Some(error(Fault::AccessDenied, "AccessDeniedException"));
    let err = output(&r, &cfg(PartitionKeySpec::ShardBalanced, 10))
        .await
        .err()
        .expect("fails");
    assert!(err.to_string().contains("kinesis:ListShards"), "{err}");
    assert!(
        !err.to_string().contains("refused the credentials"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_kinesis_at_start_means_not_delivering_not_a_failed_start() {
    let r = rig();
    *r.fake.list_error.lock().expect("lock") = Some(error(Fault::Outage, "ConnectionError"));
    let out = output(&r, &cfg(PartitionKeySpec::ShardBalanced, 10))
        .await
        .expect("starts");
    let reason = r.delivering().expect_err("not delivering");
    assert!(reason.contains("unreachable"), "{reason}");
    drop(out);
}

#[tokio::test(start_paused = true)]
async fn start_fails_clearly_for_a_missing_stream_or_refused_credentials() {
    for (fault, code, want) in [
        (
            Fault::NotFound,
            "ResourceNotFoundException",
            "does not exist",
        ),
        (
            Fault::Credentials,
            "UnrecognizedClientException",
            "refused the credentials",
        ),
    ] {
        let r = rig();
        *r.fake.list_error.lock().expect("lock") = Some(error(fault, code));
        let err = output(&r, &cfg(PartitionKeySpec::ShardBalanced, 1))
            .await
            .err()
            .expect("fails");
        assert!(err.to_string().contains(want), "{err}");
    }
}

/// However long the backoff grew during an outage (here up to 30 s), the calls waiting it out
/// go again within about a second of the stream answering: one of them probes every second,
/// and its answer wakes the others.
#[tokio::test(start_paused = true)]
async fn delivery_resumes_within_seconds_of_an_outage_ending_whatever_the_backoff() {
    let r = rig();
    let start = tokio::time::Instant::now();
    let back_at = start + Duration::from_secs(120);
    *r.fake.down_until.lock().expect("lock") = Some(back_at);
    let retry = RetryPolicy {
        max_retries: 2,
        initial_wait: Duration::from_secs(1),
        max_wait: Duration::from_secs(30),
        backoff: Backoff::Exponential,
    };
    let mut out = output_retrying(&r, &cfg(PartitionKeySpec::Random, 2), retry)
        .await
        .expect("start");
    for i in 0..4 {
        feed(&r, &mut out, vec![format!("a{i}"), format!("b{i}")]).await;
    }
    out.flush_due().await;
    tokio::time::sleep_until(back_at - Duration::from_secs(1)).await;
    assert_eq!(r.metrics.output_lines.get(), 0, "down: nothing delivered");
    assert!(r.delivering().is_err(), "down: not delivering");
    tokio::time::sleep_until(back_at + Duration::from_secs(2)).await;
    assert_eq!(
        r.metrics.output_lines.get(),
        8,
        "every line delivered within 2 s of the stream coming back"
    );
    assert_eq!(r.delivering(), Ok(()));
    out.finish().await;
    assert_eq!(r.acks.outstanding(), 0);
}
