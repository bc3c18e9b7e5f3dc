//! What the Kinesis tests share: the collector configuration they start from, numbered lines,
//! posting them, and checking that a stream holds each exactly once.

use crate::collector::post_lines;
use crate::kinesis::StoredRecord;
use crate::kpl::{deaggregate, DeaggError};
use std::collections::{HashMap, HashSet};

/// A collector configuration (disk buffer, fast batches and retries) for `stream` at `endpoint`;
/// `kinesis` adds lines to the `aws_kinesis` block, `top` top-level keys.
pub fn yaml(endpoint: &str, stream: &str, kinesis: &str, top: &str) -> String {
    format!(
        "fastly: {{service_ids: [\"*\"]}}\n\
         buffer: {{type: disk, dir: \"{{dir}}/buffer\", fsync: never}}\n\
         dead_letter: {{path: \"{{dir}}/dead.ndjson\"}}\n\
         output:\n  aws_kinesis:\n    stream_name: {stream}\n    region: us-east-1\n    endpoint_url: \"{endpoint}\"\n\
         \x20   credentials: {{access_key_id: AKIDTEST, secret_access_key: secret}}\n\
         \x20   batch: {{duration: 100ms}}\n{kinesis}\
         \x20 retry: {{max_retries: 20, initial_wait: 10ms, max_wait: 100ms}}\n{top}"
    )
}

pub fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{{\"id\":\"{prefix}-{i}\",\"n\":{i}}}"))
        .collect()
}

pub async fn post_all(url: &str, all: &[String], per_batch: usize) {
    post_all_with_token(url, None, all, per_batch).await;
}

/// [`post_all`], presenting the ingest token when there is one.
pub async fn post_all_with_token(url: &str, token: Option<&str>, all: &[String], per_batch: usize) {
    for chunk in all.chunks(per_batch) {
        assert_eq!(post_lines(url, token, chunk).await, 204);
    }
}

/// The lines in the stream (aggregated records unpacked), with no duplicate allowed.
pub fn exactly_once(records: &[StoredRecord], expected: &[String]) {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for r in records {
        match deaggregate(&r.data) {
            Ok(users) => {
                for u in users {
                    *seen.entry(u.data).or_default() += 1;
                }
            }
            Err(DeaggError::NotAggregated) => *seen.entry(r.data.to_vec()).or_default() += 1,
            Err(e) => panic!("bad aggregated record: {e:?}"),
        }
    }
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    assert_eq!(duplicates, 0, "duplicates in the stream");
    let want: HashSet<Vec<u8>> = expected.iter().map(|l| l.as_bytes().to_vec()).collect();
    let got: HashSet<Vec<u8>> = seen.into_keys().collect();
    assert_eq!(got.len(), want.len(), "line count");
    assert!(got == want, "the stream holds other lines than were posted");
}

/// kinesalite with a stream of `shards` shards, and a client to read it back.
pub async fn stream(name: &str, shards: i32) -> (crate::Kinesalite, crate::KinesisClient) {
    let k = crate::spawn_kinesalite().await;
    let kc = crate::KinesisClient::new(&k.endpoint).await;
    kc.create_stream(name, shards).await;
    (k, kc)
}

/// [`stream`], behind a fault-injecting front (the collector talks to the front).
pub async fn stream_behind_front(
    name: &str,
    shards: i32,
) -> (crate::Kinesalite, crate::KinesisClient, crate::KinesisFront) {
    let (k, kc) = stream(name, shards).await;
    let front = crate::spawn_kinesis_front(&k.endpoint).await;
    (k, kc, front)
}
