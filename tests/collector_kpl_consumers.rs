//! KPL aggregated records as their consumers read them: every shard read back, every record
//! deaggregated by the published Python library (aws-kinesis-agg), every user record's effective
//! hash key checked against the range of the shard it was read from, and the stream read as KCL
//! 2.x reads it (dropping user records outside their shard's range) to find every line exactly
//! once. Each partition strategy runs while a shard is split and two are merged.

use edgelog_testkit::consumers::{read_as_consumers, ConsumerView};
use edgelog_testkit::delivery::{post_all, stream, yaml};
use edgelog_testkit::KinesisClient;
use std::collections::HashMap;
use std::time::Duration;

const LINES: usize = 12_000;
const PER_POST: usize = 100;

#[derive(Clone, Copy, Debug)]
enum Reshard {
    /// The open shard with the lowest range, split in half.
    Split,
    /// The second and third open shards (by range), merged.
    Merge,
}

async fn reshard(kc: &KinesisClient, name: &str, how: Reshard) {
    let open = kc.open_shards(name).await;
    match how {
        Reshard::Split => kc.split_in_half(name, &open[0].0).await,
        Reshard::Merge => kc.merge(name, &open[1].0, &open[2].0).await,
    }
}

/// Posts [`LINES`] lines in parts, one more part than `reshards`: each reshard starts once the
/// part before it is accepted and runs while the next part is posted, so aggregates are open
/// while the shards change. Returns the lines and what consumers find.
async fn aggregated_while_resharding(
    name: &str,
    key: &str,
    reshards: &[Reshard],
) -> (Vec<String>, ConsumerView) {
    let (k, kc) = stream(name, 4).await;
    let col = edgelog_testkit::spawn_collector(&yaml(
        &k.endpoint,
        name,
        &format!("    aggregate: true\n    shard_refresh: 500ms\n{key}"),
        "",
    ))
    .await;
    let all: Vec<String> = (0..LINES)
        .map(|i| {
            format!(
                "{{\"id\":\"{name}-{i}\",\"user\":\"u{}\",\"pad\":\"{}\"}}",
                i % 101,
                "x".repeat(i % 64)
            )
        })
        .collect();
    let parts: Vec<&[String]> = all.chunks(LINES.div_ceil(reshards.len() + 1)).collect();
    post_all(&col.url, parts[0], PER_POST).await;
    for (how, part) in reshards.iter().zip(&parts[1..]) {
        tokio::join!(reshard(&kc, name, *how), post_all(&col.url, part, PER_POST));
    }
    kc.wait_for_lines(name, LINES, Duration::from_secs(120))
        .await;
    let view = read_as_consumers(&kc, name).await;
    col.stop().await.expect("stop");
    (all, view)
}

/// No user record outside its shard's range, and KCL's reading holds every line exactly once.
/// `spread`: the lines' keys spread them over every shard (all strategies but `static:`).
fn assert_consumers_find_every_line_once(
    name: &str,
    all: &[String],
    view: &ConsumerView,
    spread: bool,
) {
    let shards: std::collections::HashSet<&str> =
        view.records.iter().map(|r| r.shard_id.as_str()).collect();
    assert!(
        shards.len() >= if spread { 3 } else { 1 },
        "{name}: lines landed in {} shards",
        shards.len()
    );
    assert!(
        view.records.iter().all(|r| r.aggregated),
        "{name}: every line travels in an aggregated record"
    );
    if let Some((r, range)) = view.out_of_range.first() {
        panic!(
            "{name}: {} of {} user records lie outside the hash range of the shard they were read from; the first: key {:?}, hash key {:?} ({}), shard {} [{}, {}]",
            view.out_of_range.len(),
            view.records.len(),
            r.partition_key,
            r.explicit_hash_key,
            r.effective_hash_key(),
            r.shard_id,
            range.0,
            range.1
        );
    }
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for l in &view.kcl_lines {
        *seen.entry(l.as_slice()).or_default() += 1;
    }
    let missing = all
        .iter()
        .filter(|l| !seen.contains_key(l.as_bytes()))
        .count();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    assert_eq!(
        (missing, duplicated, seen.len()),
        (0, 0, all.len()),
        "{name}: (lines missing, lines seen twice, distinct lines) as KCL reads the stream"
    );
}

async fn check(name: &str, key: &str) {
    let (all, view) =
        aggregated_while_resharding(name, key, &[Reshard::Split, Reshard::Merge]).await;
    assert_consumers_find_every_line_once(name, &all, &view, !key.contains("static:"));
}

#[tokio::test]
async fn field_keys_stay_in_their_shards_range_across_a_split_and_a_merge() {
    check("field", "    partition_key: user\n").await;
}

#[tokio::test]
async fn shard_balanced_records_stay_in_their_shards_range_across_a_split_and_a_merge() {
    check("balanced", "").await;
}

#[tokio::test]
async fn static_keys_stay_in_their_shards_range_across_a_split_and_a_merge() {
    check("static", "    partition_key: \"static:tenant-7\"\n").await;
}

#[tokio::test]
async fn random_keys_stay_in_their_shards_range_across_a_split_and_a_merge() {
    check("random", "    partition_key: random\n").await;
}

#[tokio::test]
async fn timestamp_keys_stay_in_their_shards_range_across_a_split_and_a_merge() {
    check("timestamp", "    partition_key: timestamp\n").await;
}
