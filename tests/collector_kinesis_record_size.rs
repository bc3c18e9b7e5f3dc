//! Records up to `output.aws_kinesis.max_record_bytes` (1 MiB by default, at most 10 MiB): a
//! 2 MiB line delivered to a stream that takes it (kinesalite with its 1 MiB limit raised), a
//! line over the key dead-lettered with its reason, and streams whose own maximum record size is
//! lower than the key (kinesalite as it is, 1 MiB like a stream never raised; the fault front
//! playing a stream raised to 2 MiB): the records over it dead-lettered with Kinesis' refusal,
//! the others delivered, and the stream's maximum named in `/delivery`.

use edgelog_testkit::collector::delivery;
use edgelog_testkit::delivery::{exactly_once, lines, post_all, stream, yaml};
use edgelog_testkit::kinesis::spawn_kinesalite_taking;
use edgelog_testkit::procs::until;
use edgelog_testkit::{
    spawn_collector, spawn_kinesis_front, Faults, KinesisClient, RunningCollector,
};
use std::sync::atomic::Ordering;
use std::time::Duration;

const MIB: usize = 1 << 20;

/// A JSON line of exactly `bytes` bytes.
fn line_of(tag: &str, bytes: usize) -> String {
    let head = format!("{{\"id\":\"{tag}\",\"pad\":\"");
    let line = format!("{head}{}\"}}", "p".repeat(bytes - head.len() - 2));
    assert_eq!(line.len(), bytes);
    line
}

/// The dead-letter file's records, once `n` lines are dead-lettered for `reason`.
async fn dead_letters(col: &RunningCollector, reason: &str, n: u64) -> Vec<serde_json::Value> {
    until(Duration::from_secs(60), "lines dead-lettered", async || {
        col.handles.metrics.dead_lettered.get(reason) >= n
    })
    .await;
    std::fs::read_to_string(col.path("dead.ndjson"))
        .expect("dead letter")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[tokio::test]
async fn lines_up_to_max_record_bytes_are_delivered_and_longer_ones_dead_lettered() {
    let k = spawn_kinesalite_taking(10 * MIB).await;
    let endpoint = k.kinesalite.endpoint.clone();
    let kc = KinesisClient::new(&endpoint).await;
    kc.create_stream("large", 2).await;
    let col = spawn_collector(&yaml(
        &endpoint,
        "large",
        "    max_record_bytes: 4194304\n",
        "",
    ))
    .await;
    let mut all = lines("s", 20);
    all.push(line_of("two-mib", 2 * MIB));
    post_all(&col.url, &all, 21).await;
    // Longer than the key: set aside as too long (ingest.max_line_bytes follows the key).
    let five = line_of("five-mib", 5 * MIB);
    post_all(&col.url, std::slice::from_ref(&five), 1).await;
    // As long as the key, but over it with its partition key: too large a record.
    let four = line_of("four-mib", 4 * MIB);
    post_all(&col.url, std::slice::from_ref(&four), 1).await;

    let recs = kc
        .wait_for_lines("large", all.len(), Duration::from_secs(60))
        .await;
    exactly_once(&recs, &all);
    assert!(
        recs.iter().any(|r| r.data.len() == 2 * MIB),
        "one 2 MiB record"
    );

    dead_letters(&col, "line_too_long", 1).await;
    let dead = dead_letters(&col, "record_too_large", 1).await;
    assert_eq!(dead.len(), 2);
    let of = |line: &str| {
        dead.iter()
            .find(|d| d["line"].as_str() == Some(line))
            .unwrap_or_else(|| panic!("{:.80} not dead-lettered", line))
            .clone()
    };
    let d = of(&five);
    assert_eq!(d["reason"], "line_too_long");
    assert_eq!(d["detail"], "5242880 bytes > ingest.max_line_bytes 4194304");
    let d = of(&four);
    assert_eq!(d["reason"], "record_too_large");
    let code = d["error_code"].as_str().unwrap_or_default();
    assert!(
        code.ends_with("with its partition key > output.aws_kinesis.max_record_bytes 4194304"),
        "{code}"
    );
    // A line over the key is the sender's limit, not the stream's: delivery is fine.
    assert_eq!(delivery(&col.url).await.0, 200);
}

/// Posts small lines and one line of `big` bytes to a collector sending records up to 4 MiB to
/// `endpoint`, whose stream refuses records over `stream_limit`; checks the small lines are
/// delivered, the big one dead-lettered with Kinesis' refusal, and `/delivery` naming the
/// stream's maximum.
async fn stream_below_the_key(
    endpoint: &str,
    kc: &KinesisClient,
    stream: &str,
    big: usize,
    stream_limit: usize,
) {
    let col = spawn_collector(&yaml(
        endpoint,
        stream,
        "    max_record_bytes: 4194304\n",
        "",
    ))
    .await;
    let small = lines("s", 30);
    let big_line = line_of("big", big);
    let mut all = small[..15].to_vec();
    all.push(big_line.clone());
    all.extend_from_slice(&small[15..]);
    post_all(&col.url, &all, all.len()).await;

    let dead = dead_letters(&col, "record_too_large", 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["reason"], "record_too_large");
    assert_eq!(dead[0]["line"].as_str(), Some(big_line.as_str()));
    let code = dead[0]["error_code"].as_str().unwrap_or_default();
    assert_eq!(
        code,
        format!(
            "ValidationException: {big} bytes > the stream's maximum record size {stream_limit}"
        )
    );
    // The lines sent beside it in the refused call are delivered, once each.
    let recs = kc
        .wait_for_lines(stream, small.len(), Duration::from_secs(60))
        .await;
    exactly_once(&recs, &small);

    let (status, why) = delivery(&col.url).await;
    assert_eq!(status, 503, "{why}");
    assert!(
        why.contains(&format!(
            "the stream's maximum record size is {stream_limit} bytes, below output.aws_kinesis.max_record_bytes (4194304)"
        )),
        "{why}"
    );
    // It stays named while later lines are delivered.
    let later = lines("later", 10);
    post_all(&col.url, &later, 10).await;
    kc.wait_for_lines(stream, small.len() + later.len(), Duration::from_secs(60))
        .await;
    assert_eq!(delivery(&col.url).await.0, 503);
}

#[tokio::test]
async fn a_stream_never_raised_refuses_records_over_1_mib_and_delivery_names_it() {
    // kinesalite as it is answers like a stream whose maximum was never raised.
    let (k, kc) = stream("default-limit", 2).await;
    stream_below_the_key(&k.endpoint, &kc, "default-limit", 2 * MIB, MIB).await;
}

#[tokio::test]
async fn a_stream_raised_to_2_mib_refuses_a_3_mib_record_and_delivery_names_it() {
    let k = spawn_kinesalite_taking(10 * MIB).await;
    let kc = KinesisClient::new(&k.kinesalite.endpoint).await;
    kc.create_stream("raised", 2).await;
    let front = spawn_kinesis_front(&k.kinesalite.endpoint).await;
    front.set(Faults {
        stream_max_record_bytes: Some(2 * MIB),
        ..Faults::default()
    });
    // Records up to the stream's maximum go through the front.
    let col = spawn_collector(&yaml(
        &front.endpoint,
        "raised",
        "    max_record_bytes: 4194304\n",
        "",
    ))
    .await;
    let fits = line_of("fits", 2 * MIB - 64);
    post_all(&col.url, std::slice::from_ref(&fits), 1).await;
    let recs = kc
        .wait_for_lines("raised", 1, Duration::from_secs(60))
        .await;
    exactly_once(&recs, std::slice::from_ref(&fits));
    drop(col);

    kc.create_stream("raised-too", 2).await;
    stream_below_the_key(&front.endpoint, &kc, "raised-too", 3 * MIB, 2 * MIB).await;
    assert!(front.stats.failed_calls.load(Ordering::Relaxed) >= 1);
}
