//! The Kinesis output under what real Kinesis does and emulators do not, through the
//! fault-injecting front: entries throttled (30%, a steady 1%, 85% then none), whole calls
//! throttled, an outage, entries that keep failing (dead-lettered with their code), and calls
//! that fail and arrive out of order, where the order per key must still hold. Every line posted
//! is read back from kinesalite.

use edgelog_testkit::collector::{delivery, readyz};
use edgelog_testkit::config_yaml::KinesisYaml;
use edgelog_testkit::delivery::{
    exactly_once, kinesis_config, lines, post_all, stream_behind_front, yaml,
};
use edgelog_testkit::procs::until;
use edgelog_testkit::{spawn_collector, Faults};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// 30% of entries fail as throttled; `client` is the PutRecords client (`direct` or `sdk`).
async fn thirty_percent_throttled(client: &str) {
    let (_k, kc, front) = stream_behind_front("throttled", 4).await;
    front.set(Faults::throttle_entries(0.3));
    let col = spawn_collector(&yaml(
        &front.endpoint,
        "throttled",
        &format!("    put_records_client: {client}\n"),
        "",
    ))
    .await;
    let all = lines("t", 5000);
    post_all(&col.url, &all, 200).await;
    let recs = kc
        .wait_for_lines("throttled", 5000, Duration::from_secs(120))
        .await;
    exactly_once(&recs, &all);
    let injected = front
        .stats
        .failed_entries
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(injected > 1000, "{injected}");
    let m = &col.handles.metrics;
    assert_eq!(
        m.output_failed_entries
            .get("ProvisionedThroughputExceededException"),
        injected
    );
    assert_eq!(m.output_throttles.get(), injected);
    assert!(m.output_retries.get() >= injected);
    assert!(!col.path("dead.ndjson").exists(), "nothing dead-lettered");
    eprintln!("{client}: {injected} entries throttled, 5000 lines delivered, 0 duplicates");
}

#[tokio::test]
async fn thirty_percent_throttled_entries_give_no_duplicates_and_no_loss() {
    thirty_percent_throttled("direct").await;
}

#[tokio::test]
async fn the_sdk_put_records_client_does_the_same() {
    thirty_percent_throttled("sdk").await;
}

#[tokio::test]
async fn whole_call_throttling_and_outages_are_retried_until_delivered() {
    let (_k, kc, front) = stream_behind_front("calls", 2).await;
    let col = spawn_collector(&yaml(
        &front.endpoint,
        "calls",
        "    health_check_interval: 200ms\n",
        "",
    ))
    .await;
    front.set(Faults {
        fail_next_calls: 5,
        call_error: Some((400, "ProvisionedThroughputExceededException".into())),
        ..Faults::default()
    });
    let all = lines("c", 1000);
    post_all(&col.url, &all, 100).await;
    kc.wait_for_lines("calls", 1000, Duration::from_secs(30))
        .await;
    assert!(col.handles.metrics.output_throttles.get() >= 5);

    // An outage: every call fails for a while. Ingest still answers 204 (the disk buffer holds
    // the lines) and /readyz stays ready (the collector takes batches), /delivery says not
    // delivering, and nothing is dead-lettered, however long it lasts.
    front.set(Faults::every_request_fails(503, "ServiceUnavailable"));
    let during = lines("outage", 500);
    post_all(&col.url, &during, 100).await;
    until(
        Duration::from_secs(10),
        "/delivery not delivering during the outage",
        async || delivery(&col.url).await.0 == 503,
    )
    .await;
    assert_eq!(readyz(&col.url).await.0, 200, "ready: batches are taken");
    tokio::time::sleep(Duration::from_secs(2)).await;
    front.set(Faults::default());
    let recs = kc
        .wait_for_lines("calls", 1500, Duration::from_secs(60))
        .await;
    exactly_once(&recs, &[all, during].concat());
    assert!(
        col.handles
            .metrics
            .output_call_errors
            .get("ServiceUnavailable")
            > 0
    );
    assert!(!col.path("dead.ndjson").exists());
    until(
        Duration::from_secs(10),
        "/delivery delivering again",
        async || delivery(&col.url).await.0 == 200,
    )
    .await;
}

#[tokio::test]
async fn entries_failing_past_max_retries_go_to_the_dead_letter_file_with_their_code() {
    let (_k, kc, front) = stream_behind_front("poison", 2).await;
    front.set(Faults {
        poison: Some((b"POISON".to_vec(), "InvalidArgumentException".into())),
        ..Faults::default()
    });
    let col = spawn_collector(
        &kinesis_config(&KinesisYaml::new(&front.endpoint, "poison"))
            .retry("{max_retries: 2, initial_wait: 10ms, max_wait: 100ms}")
            .text(),
    )
    .await;
    let mut all = lines("ok", 100);
    let poisoned: Vec<String> = (0..3)
        .map(|i| format!("{{\"id\":\"POISON-{i}\"}}"))
        .collect();
    all.extend(poisoned.clone());
    post_all(&col.url, &all, 50).await;
    until(Duration::from_secs(30), "dead-lettered", async || {
        col.handles.metrics.dead_lettered.get("retries_exhausted") >= 3
    })
    .await;
    let recs = kc
        .wait_for_lines("poison", 100, Duration::from_secs(30))
        .await;
    exactly_once(&recs, &all[..100]);
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(col.path("dead.ndjson"))
        .expect("dead letter")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(dead.len(), 3);
    for d in &dead {
        assert_eq!(d["reason"], "retries_exhausted");
        assert_eq!(d["error_code"], "InvalidArgumentException");
        assert!(poisoned.contains(&d["line"].as_str().expect("line").to_string()));
    }
    // 1 try + 2 retries per poisoned entry.
    assert_eq!(
        col.handles
            .metrics
            .output_failed_entries
            .get("InvalidArgumentException"),
        9
    );
}

#[tokio::test]
async fn heavy_throttling_is_a_pause_not_bad_data_and_delivery_recovers_by_itself() {
    let (_k, kc, front) = stream_behind_front("hot", 2).await;
    // The default retry policy (max_retries 3): throttled entries must not use it up.
    let col = spawn_collector(
        &kinesis_config(&KinesisYaml::new(&front.endpoint, "hot"))
            .default_retry()
            .text(),
    )
    .await;
    front.set(Faults::throttle_entries(0.85));
    let all = lines("hot", 5000);
    post_all(&col.url, &all, 500).await;
    // While throttled, the lines wait in the buffer and the lag shows.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, body) = readyz(&col.url).await;
    let pending: usize = body
        .lines()
        .find_map(|l| l.strip_prefix("pending_lines: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(pending > 0, "lag not visible in /readyz:\n{body}");
    assert!(col.handles.metrics.output_throttles.get() > 0);
    let ended = Instant::now();
    front.set(Faults::default());
    let recs = kc
        .wait_for_lines("hot", 5000, Duration::from_secs(60))
        .await;
    let recovered = ended.elapsed();
    exactly_once(&recs, &all);
    assert!(
        !col.path("dead.ndjson").exists(),
        "throttled lines were dead-lettered"
    );
    assert_eq!(col.handles.metrics.dead_lettered.total(), 0);
    eprintln!(
        "85% throttled then clear: the last of 5,000 lines read back {recovered:?} after the throttling ended"
    );
}

#[tokio::test]
async fn a_steady_one_percent_of_throttled_entries_does_not_slow_delivery_down() {
    let (_k, kc, front) = stream_behind_front("busy", 4).await;
    front.set(Faults::throttle_entries(0.01));
    let col = spawn_collector(
        &kinesis_config(&KinesisYaml::new(&front.endpoint, "busy"))
            .default_retry()
            .text(),
    )
    .await;
    let all = lines("busy", 20_000);
    let t0 = Instant::now();
    post_all(&col.url, &all, 1000).await;
    let recs = kc
        .wait_for_lines("busy", 20_000, Duration::from_secs(60))
        .await;
    let took = t0.elapsed();
    exactly_once(&recs, &all);
    assert!(!col.path("dead.ndjson").exists());
    assert!(
        front
            .stats
            .failed_entries
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    eprintln!("1% throttled: 20,000 lines posted and read back in {took:?}");
}

#[tokio::test]
async fn order_per_key_holds_between_calls_and_only_a_failed_line_can_move_within_its_call() {
    let (_k, kc, front) = stream_behind_front("ordered", 2).await;
    front.set(Faults {
        entry_failure_rate: 0.05,
        entry_error_code: "InternalFailure".into(),
        max_call_delay: Some(Duration::from_millis(20)),
        ..Faults::default()
    });
    let batch = 50;
    let kinesis = KinesisYaml::new(&front.endpoint, "ordered")
        .batch(&format!("{{size: {batch}, duration: 20ms}}"))
        .key("partition_key: k");
    let col = spawn_collector(&kinesis_config(&kinesis).text()).await;
    let keys = 5;
    let all: Vec<String> = (0..3000)
        .map(|i| format!("{{\"k\":\"key{}\",\"i\":{i}}}", i % keys))
        .collect();
    post_all(&col.url, &all, 100).await;
    let recs = kc
        .wait_for_lines("ordered", all.len(), Duration::from_secs(60))
        .await;
    exactly_once(&recs, &all);
    let failed: HashSet<Vec<u8>> = front
        .stats
        .failed_data
        .lock()
        .expect("failed")
        .iter()
        .cloned()
        .collect();
    assert!(!failed.is_empty(), "the front failed some entries");
    // Per key, in stream order (one key lives on one shard, read in sequence order).
    let mut per_key: HashMap<String, Vec<(i64, Vec<u8>)>> = HashMap::new();
    for r in &recs {
        let v: serde_json::Value = serde_json::from_slice(&r.data).expect("json");
        let key = v["k"].as_str().expect("k").to_string();
        assert_eq!(r.partition_key, key);
        per_key
            .entry(key)
            .or_default()
            .push((v["i"].as_i64().expect("i"), r.data.to_vec()));
    }
    let mut moved = 0;
    for (key, seq) in &per_key {
        for (pos, (i, data)) in seq.iter().enumerate() {
            // A line that lands after a later line of its key was failed and sent again, and
            // only lines of its own call (at most a batch) went ahead of it.
            let overtaken_by = seq[..pos].iter().filter(|(j, _)| j > i).count();
            if overtaken_by > 0 {
                moved += 1;
                assert!(
                    failed.contains(data),
                    "key {key}: line {i} landed after {overtaken_by} later lines without having failed"
                );
                assert!(
                    overtaken_by < batch,
                    "key {key}: line {i} overtaken by {overtaken_by}"
                );
            }
        }
    }
    eprintln!(
        "{} entries failed on purpose, {moved} lines landed after later lines of their call",
        failed.len()
    );
}
