//! The collector's Kinesis output and its strategies against a real emulator (kinesalite):
//! shard-balanced, keyed by a field (with Fastly's line prefix removed first), static, random and
//! timestamp keys, resharding followed, KPL aggregation, start-up errors, and the no-op stub the
//! benchmarks use. Every line posted is read back from the stream. Throttling and failures are in
//! `collector_kinesis_faults`.

use edgelog_testkit::collector::start_error;
use edgelog_testkit::delivery::{exactly_once, lines, post_all, stream, yaml};
use edgelog_testkit::kpl::deaggregate;
use edgelog_testkit::{
    spawn_collector, spawn_kinesalite, spawn_kinesis_front, Faults, KinesisClient,
};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[tokio::test]
async fn shard_balanced_delivers_every_line_once_spread_evenly_over_the_shards() {
    let (k, kc) = stream("balanced", 4).await;
    let col = spawn_collector(&yaml(&k.endpoint, "balanced", "", "")).await;
    let all = lines("b", 4000);
    post_all(&col.url, &all, 100).await;
    let recs = kc
        .wait_for_lines("balanced", 4000, Duration::from_secs(60))
        .await;
    exactly_once(&recs, &all);
    let mut per_shard: HashMap<&str, usize> = HashMap::new();
    for r in &recs {
        *per_shard.entry(r.shard_id.as_str()).or_default() += 1;
        assert_eq!(
            r.partition_key, r.shard_id,
            "shard-balanced records are keyed by their shard"
        );
    }
    assert_eq!(per_shard.len(), 4);
    assert!(per_shard.values().all(|&n| n == 1000), "{per_shard:?}");
    let m = &col.handles.metrics;
    assert_eq!(m.output_records.get(), 4000);
    assert_eq!(m.output_lines.get(), 4000);
    assert!(m.output_calls.get() >= 8);
    assert!(!col.path("dead.ndjson").exists());
}

#[tokio::test]
async fn a_field_key_keeps_order_per_key_and_lines_without_it_fall_back() {
    let (k, kc) = stream("keyed", 4).await;
    let col = spawn_collector(&yaml(
        &k.endpoint,
        "keyed",
        "    partition_key: geo.country_code\n    max_in_flight: 8\n",
        "",
    ))
    .await;
    let countries = ["US", "DE", "JP", "BR", "ZA", "FR"];
    let mut all = Vec::new();
    for i in 0..3000 {
        let cc = countries[i % countries.len()];
        all.push(format!(
            "{{\"geo\":{{\"country_code\":\"{cc}\"}},\"seq\":{i}}}"
        ));
        if i % 100 == 0 {
            all.push(format!("plain text line {i} without the field"));
        }
    }
    post_all(&col.url, &all, 250).await;
    let mut recs = kc
        .wait_for_lines("keyed", all.len(), Duration::from_secs(60))
        .await;
    exactly_once(&recs, &all);
    // Kinesis orders records per shard by sequence number; per key they must be in post order.
    recs.sort_by(|a, b| {
        (
            a.shard_id.as_str(),
            a.sequence_number.len(),
            a.sequence_number.as_str(),
        )
            .cmp(&(
                b.shard_id.as_str(),
                b.sequence_number.len(),
                b.sequence_number.as_str(),
            ))
    });
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut fallback = 0;
    for r in &recs {
        match serde_json::from_slice::<serde_json::Value>(&r.data) {
            Ok(v) => {
                let cc = v["geo"]["country_code"].as_str().expect("cc");
                assert_eq!(r.partition_key, cc);
                let seq = v["seq"].as_i64().expect("seq");
                let prev = last.insert(cc.to_string(), seq).unwrap_or(-1);
                assert!(seq > prev, "{cc}: {seq} after {prev}");
            }
            Err(_) => {
                fallback += 1;
                assert!(
                    r.partition_key.starts_with("shardId-"),
                    "{}",
                    r.partition_key
                );
            }
        }
    }
    assert_eq!(fallback, 30);
    assert_eq!(col.handles.metrics.output_partition_fallback.get(), 30);
}

#[tokio::test]
async fn static_random_and_timestamp_keys() {
    let k = spawn_kinesalite().await;
    let kc = KinesisClient::new(&k.endpoint).await;
    for (stream, key) in [
        ("st", "static:tenant-7"),
        ("rnd", "random"),
        ("ts", "timestamp"),
    ] {
        kc.create_stream(stream, 3).await;
        let col = spawn_collector(&yaml(
            &k.endpoint,
            stream,
            &format!("    partition_key: \"{key}\"\n"),
            "",
        ))
        .await;
        let all = lines(stream, 300);
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        post_all(&col.url, &all, 50).await;
        let recs = kc
            .wait_for_lines(stream, 300, Duration::from_secs(30))
            .await;
        exactly_once(&recs, &all);
        let keys: HashSet<&str> = recs.iter().map(|r| r.partition_key.as_str()).collect();
        match stream {
            "st" => {
                assert_eq!(keys, HashSet::from(["tenant-7"]));
                assert_eq!(
                    recs.iter()
                        .map(|r| &r.shard_id)
                        .collect::<HashSet<_>>()
                        .len(),
                    1
                );
            }
            "rnd" => {
                assert_eq!(keys.len(), 300, "a fresh UUID per record");
                assert!(keys.iter().all(|k| k.len() == 36));
            }
            _ => {
                for key in keys {
                    let ms: u64 = key.parse().expect("milliseconds");
                    assert!(ms >= before && ms < before + 60_000, "{ms} vs {before}");
                }
            }
        }
        col.stop().await.expect("stop");
    }
}

#[tokio::test]
async fn resharding_is_followed() {
    let (k, kc) = stream("grow", 2).await;
    let col = spawn_collector(&yaml(&k.endpoint, "grow", "    shard_refresh: 500ms\n", "")).await;
    let first = lines("before", 1000);
    post_all(&col.url, &first, 100).await;
    kc.wait_for_lines("grow", 1000, Duration::from_secs(30))
        .await;
    let first_shard = kc.shards("grow").await[0].0.clone();
    kc.split_in_half("grow", &first_shard).await;
    let open: HashSet<String> = kc
        .shards("grow")
        .await
        .into_iter()
        .filter(|s| s.3)
        .map(|s| s.0)
        .collect();
    assert_eq!(open.len(), 3);
    // Wait for a shard-map refresh after the split.
    let refreshed = col.handles.metrics.output_shard_refreshes.get();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while col.handles.metrics.output_shard_refreshes.get() < refreshed + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no shard map refresh"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = lines("after", 3000);
    post_all(&col.url, &second, 100).await;
    let recs = kc
        .wait_for_lines("grow", 4000, Duration::from_secs(60))
        .await;
    exactly_once(&recs, &[first, second].concat());
    let mut per_shard: HashMap<String, usize> = HashMap::new();
    for r in recs
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.data).contains("after-"))
    {
        *per_shard.entry(r.shard_id.clone()).or_default() += 1;
    }
    assert_eq!(
        per_shard.keys().cloned().collect::<HashSet<_>>(),
        open,
        "only the open shards"
    );
    assert!(per_shard.values().all(|&n| n == 1000), "{per_shard:?}");
}

#[tokio::test]
async fn aggregated_records_pack_many_lines_and_deaggregate_exactly() {
    let (k, kc) = stream("agg", 4).await;
    let col = spawn_collector(&yaml(&k.endpoint, "agg", "    aggregate: true\n", "")).await;
    let all: Vec<String> = (0..6000)
        .map(|i| format!("{{\"id\":{i},\"pad\":\"{}\"}}", "x".repeat(400)))
        .collect();
    post_all(&col.url, &all, 500).await;
    let recs = kc
        .wait_for_lines("agg", 6000, Duration::from_secs(60))
        .await;
    assert!(
        recs.len() < 60,
        "{} Kinesis records for 6000 lines",
        recs.len()
    );
    exactly_once(&recs, &all);
    let shards = kc.hash_ranges("agg").await;
    for r in &recs {
        assert!(r.data.len() <= 1024 * 1024);
        let users = deaggregate(&r.data).expect("aggregated");
        let (start, end) = shards[&r.shard_id];
        for u in users {
            // Shard-balanced: every user record's hash key lies in the shard it landed in.
            let h: u128 = u
                .explicit_hash_key
                .expect("hash key")
                .parse()
                .expect("decimal");
            assert!(start <= h && h <= end);
        }
    }
    // Keyed and aggregated: user records keep their own keys and land in their key's shard.
    kc.create_stream("aggkeyed", 4).await;
    let col2 = spawn_collector(&yaml(
        &k.endpoint,
        "aggkeyed",
        "    aggregate: true\n    partition_key: user\n",
        "",
    ))
    .await;
    let keyed: Vec<String> = (0..2000)
        .map(|i| format!("{{\"user\":\"u{}\",\"i\":{i}}}", i % 37))
        .collect();
    post_all(&col2.url, &keyed, 500).await;
    let recs = kc
        .wait_for_lines("aggkeyed", 2000, Duration::from_secs(60))
        .await;
    exactly_once(&recs, &keyed);
    let shards = kc.hash_ranges("aggkeyed").await;
    for r in &recs {
        let (start, end) = shards[&r.shard_id];
        for u in deaggregate(&r.data).expect("aggregated") {
            let h = u128::from_be_bytes(md5_of(&u.partition_key));
            assert!(
                start <= h && h <= end,
                "user key {} outside its record's shard",
                u.partition_key
            );
        }
    }
}

fn md5_of(s: &str) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(s.as_bytes()).into()
}

#[tokio::test]
async fn start_up_fails_clearly_for_a_missing_stream_or_refused_credentials() {
    let k = spawn_kinesalite().await;
    let err = start_error(&yaml(&k.endpoint, "nope", "", "")).await;
    assert!(err.contains("stream \"nope\" does not exist"), "{err}");

    let front = spawn_kinesis_front(&k.endpoint).await;
    front.set(Faults::every_request_fails(
        400,
        "UnrecognizedClientException",
    ));
    let err = start_error(&yaml(&front.endpoint, "any", "", "")).await;
    assert!(err.contains("refused the credentials"), "{err}");
}

#[tokio::test]
async fn the_no_op_kinesis_stub_counts_what_the_collector_sends() {
    let (endpoint, stats) = edgelog_testkit::kinesis_stub::spawn_kinesis_stub(4).await;
    for aggregate in [false, true] {
        let before = stats.report();
        let extra = if aggregate {
            "    aggregate: true\n"
        } else {
            ""
        };
        let col = spawn_collector(&yaml(&endpoint, "bench", extra, "")).await;
        let bodies = edgelog_testkit::load::Bodies::new(2, 500, false);
        for i in 0..4 {
            let body = bodies.body(i);
            let resp = reqwest::Client::new()
                .post(format!("{}/logs", col.url))
                .body(body)
                .send()
                .await
                .expect("post");
            assert_eq!(resp.status().as_u16(), 204);
        }
        col.stop().await.expect("stop");
        let after = stats.report();
        assert_eq!(after.lines - before.lines, 4 * 501, "aggregate {aggregate}");
        assert_eq!(
            after.latency_samples - before.latency_samples,
            4,
            "one probe per batch"
        );
        if aggregate {
            assert!(after.records - before.records < 20);
        } else {
            assert_eq!(after.records - before.records, 4 * 501);
        }
    }
}

#[tokio::test]
async fn fastlys_default_line_prefix_is_removed_and_counted() {
    let (k, kc) = stream("prefixed", 2).await;
    let col = spawn_collector(&yaml(&k.endpoint, "prefixed", "    partition_key: k\n", "")).await;
    let plain: Vec<String> = (0..20)
        .map(|i| format!("{{\"k\":\"key{}\",\"i\":{i}}}", i % 3))
        .collect();
    let sent: Vec<String> = plain
        .iter()
        .enumerate()
        .map(|(i, l)| match i % 3 {
            0 => format!("<134>2026-11-21T10:00:00Z cache-xyz My Log Endpoint[4242]: {l}"),
            1 => format!("<134>1 2026-11-21T10:00:00Z cache-xyz collector 4242 - - {l}"),
            _ => l.clone(),
        })
        .collect();
    post_all(&col.url, &sent, 20).await;
    let recs = kc
        .wait_for_lines("prefixed", 20, Duration::from_secs(30))
        .await;
    exactly_once(&recs, &plain);
    for r in &recs {
        let v: serde_json::Value = serde_json::from_slice(&r.data).expect("json, prefix gone");
        assert_eq!(
            r.partition_key,
            v["k"].as_str().expect("k"),
            "the field key applies"
        );
    }
    assert_eq!(col.handles.metrics.ingest_prefix_stripped.get(), 14);
    assert_eq!(col.handles.metrics.output_partition_fallback.get(), 0);
}
