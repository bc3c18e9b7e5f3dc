//! What the Kinesis tests share: the collector configuration they start from, numbered lines,
//! posting them, a stream to deliver to, and checking that it holds each line exactly once.

use crate::collector::post_in_batches;
use crate::config_yaml::{ConfigYaml, KinesisYaml, DISK_BUFFER, FAST_RETRY, FEW_RETRIES};
use crate::kinesis::StoredRecord;
use crate::kpl::{deaggregate, DeaggError};
use std::collections::{HashMap, HashSet};

/// The configuration the Kinesis tests start from: a disk buffer that never syncs, the given
/// Kinesis output, retries that wait little ([`FAST_RETRY`]).
pub fn kinesis_config(kinesis: &KinesisYaml) -> ConfigYaml {
    ConfigYaml::new()
        .set(DISK_BUFFER)
        .kinesis(kinesis)
        .retry(FAST_RETRY)
}

/// What the tests of the collector in its own process start from: it delivers to `stream` at
/// `endpoint`, sees Kinesis go and come back within a second ([`KinesisYaml::watchful`]) and
/// retries a few times ([`FEW_RETRIES`]). The buffer and the rest are the test's.
pub fn process_kinesis_config(endpoint: &str, stream: &str) -> ConfigYaml {
    ConfigYaml::new()
        .process()
        .kinesis(&KinesisYaml::new(endpoint, stream).watchful())
        .retry(FEW_RETRIES)
}

/// [`kinesis_config`]'s text for `stream` at `endpoint`; `kinesis` adds lines to the
/// `aws_kinesis` block (indented by four), `top` top-level keys.
pub fn yaml(endpoint: &str, stream: &str, kinesis: &str, top: &str) -> String {
    kinesis_config(&KinesisYaml::new(endpoint, stream).keys(kinesis))
        .set_all(top)
        .text()
}

/// Numbered JSON lines: `{"id":"<prefix>-<i>","n":<i>}`.
pub fn lines(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{{\"id\":\"{prefix}-{i}\",\"n\":{i}}}"))
        .collect()
}

/// Posts `all` in batches of `per_batch`, without a token; each must get 204.
pub async fn post_all(url: &str, all: &[String], per_batch: usize) {
    post_in_batches(url, None, all, per_batch).await;
}

/// [`post_all`], presenting the ingest token when there is one.
pub async fn post_all_with_token(url: &str, token: Option<&str>, all: &[String], per_batch: usize) {
    post_in_batches(url, token, all, per_batch).await;
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
