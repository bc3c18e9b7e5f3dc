//! A real Kinesis emulator (kinesalite, from npm) on a free port, and a client that creates
//! streams, reshards them and reads every record back.

use crate::paths::tool;
use crate::procs::{command, start_on_free_port, wait_for_port, KillOnDrop};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;
use std::process::Stdio;
use std::time::Duration;

/// kinesalite running on 127.0.0.1; stopped when dropped.
pub struct Kinesalite {
    pub endpoint: String,
    pub port: u16,
    _child: KillOnDrop,
}

/// Starts kinesalite (in memory; streams are ACTIVE at once, up to 100 shards). Like a stream
/// whose maximum record size was never raised, it refuses a record whose data is over 1 MiB
/// (`ValidationException`, as Kinesis words it).
pub async fn spawn_kinesalite() -> Kinesalite {
    let (child, port) =
        start_on_free_port("kinesalite", |port| kinesalite_command(port, None)).await;
    Kinesalite {
        endpoint: format!("http://127.0.0.1:{port}"),
        port,
        _child: KillOnDrop(child),
    }
}

/// kinesalite taking records of up to `max_data_bytes` of data, like a stream raised with
/// `UpdateMaxRecordSize` (kinesalite's own limit is 1 MiB; its validation table is patched in
/// memory as it starts). Its limit on a request's size (7 MiB of JSON) stays.
pub struct LargeRecordKinesalite {
    pub kinesalite: Kinesalite,
    _dir: tempfile::TempDir,
}

pub async fn spawn_kinesalite_taking(max_data_bytes: usize) -> LargeRecordKinesalite {
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = std::fs::canonicalize(tool("kinesalite")).expect("kinesalite's cli.js");
    let package = cli.parent().expect("kinesalite's package directory");
    let preload = dir.path().join("max-record-size.js");
    std::fs::write(
        &preload,
        format!(
            "const dir = {dir:?};\n\
             require(dir + '/validations/putRecords.js').types.Records.children.children.Data.lengthLessThanOrEqual = {max_data_bytes};\n\
             require(dir + '/validations/putRecord.js').types.Data.lengthLessThanOrEqual = {max_data_bytes};\n",
            dir = package.display().to_string()
        ),
    )
    .expect("write the preload");
    let (child, port) = start_on_free_port("kinesalite", |port| {
        let mut cmd = kinesalite_args(port, None);
        cmd.env("NODE_OPTIONS", format!("--require {}", preload.display()));
        spawn(cmd)
    })
    .await;
    LargeRecordKinesalite {
        kinesalite: Kinesalite {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            _child: KillOnDrop(child),
        },
        _dir: dir,
    }
}

fn kinesalite_command(port: u16, path: Option<&std::path::Path>) -> tokio::process::Child {
    spawn(kinesalite_args(port, path))
}

fn spawn(mut cmd: tokio::process::Command) -> tokio::process::Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start kinesalite")
}

fn kinesalite_args(port: u16, path: Option<&std::path::Path>) -> tokio::process::Command {
    let mut cmd = command(tool("kinesalite"));
    cmd.args(["--port", &port.to_string()]).args([
        "--shardLimit",
        "100",
        "--createStreamMs",
        "0",
        "--deleteStreamMs",
        "0",
        "--updateStreamMs",
        "0",
    ]);
    if let Some(p) = path {
        cmd.arg("--path").arg(p);
    }
    cmd
}

async fn start_kinesalite(port: u16, path: Option<&std::path::Path>) -> KillOnDrop {
    let child = kinesalite_command(port, path);
    wait_for_port(port, Duration::from_secs(30), "kinesalite").await;
    KillOnDrop(child)
}

/// kinesalite keeping its data on disk, so it can be stopped and started again (a Kinesis
/// outage) without losing the stream.
pub struct DurableKinesalite {
    pub endpoint: String,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<KillOnDrop>,
}

impl DurableKinesalite {
    pub async fn start() -> DurableKinesalite {
        let dir = tempfile::tempdir().expect("tempdir");
        let (child, port) = start_on_free_port("kinesalite", |port| {
            kinesalite_command(port, Some(dir.path()))
        })
        .await;
        let child = KillOnDrop(child);
        DurableKinesalite {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            child: Some(child),
        }
    }

    /// Stops the emulator: connections are refused until [`DurableKinesalite::resume`].
    pub async fn stop(&mut self) {
        if let Some(c) = self.child.take() {
            c.kill().await;
        }
    }

    pub async fn resume(&mut self) {
        if self.child.is_none() {
            self.child = Some(start_kinesalite(self.port, Some(self.dir.path())).await);
        }
    }
}

/// One record read back from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Bytes,
}

/// A plain SDK client for tests (static dummy credentials; emulators do not check them).
pub struct KinesisClient {
    pub client: aws_sdk_kinesis::Client,
}

impl KinesisClient {
    pub async fn new(endpoint: &str) -> KinesisClient {
        let creds =
            aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test");
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(endpoint)
            .load()
            .await;
        KinesisClient {
            client: aws_sdk_kinesis::Client::new(&shared),
        }
    }

    /// Creates a stream and waits until it is ACTIVE.
    pub async fn create_stream(&self, name: &str, shards: i32) {
        self.client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
            .expect("create stream");
        self.wait_active(name).await;
    }

    pub async fn wait_active(&self, name: &str) {
        for _ in 0..200 {
            let s = self
                .client
                .describe_stream_summary()
                .stream_name(name)
                .send()
                .await
                .expect("describe");
            if s.stream_description_summary()
                .map(|d| d.stream_status().as_str())
                == Some("ACTIVE")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("stream {name} did not become ACTIVE");
    }

    /// All shards (open and closed): id, start and end hash key, open.
    pub async fn shards(&self, name: &str) -> Vec<(String, u128, u128, bool)> {
        let out = self
            .client
            .list_shards()
            .stream_name(name)
            .send()
            .await
            .expect("list shards");
        out.shards()
            .iter()
            .map(|s| {
                let r = s.hash_key_range().expect("range");
                (
                    s.shard_id().to_string(),
                    r.starting_hash_key().parse().expect("u128"),
                    r.ending_hash_key().parse().expect("u128"),
                    s.sequence_number_range()
                        .is_none_or(|q| q.ending_sequence_number().is_none()),
                )
            })
            .collect()
    }

    /// Each shard's hash key range (start, end), by shard id.
    pub async fn hash_ranges(&self, name: &str) -> std::collections::HashMap<String, (u128, u128)> {
        self.shards(name)
            .await
            .into_iter()
            .map(|(id, s, e, _)| (id, (s, e)))
            .collect()
    }

    /// Splits a shard at the midpoint of its range.
    pub async fn split_in_half(&self, name: &str, shard_id: &str) {
        let (_, start, end, _) = self
            .shards(name)
            .await
            .into_iter()
            .find(|s| s.0 == shard_id)
            .expect("shard");
        let mid = start + (end - start) / 2;
        self.client
            .split_shard()
            .stream_name(name)
            .shard_to_split(shard_id)
            .new_starting_hash_key(mid.to_string())
            .send()
            .await
            .expect("split");
        self.wait_active(name).await;
    }

    /// Merges two open shards with adjacent ranges (the first ends where the second starts).
    pub async fn merge(&self, name: &str, shard_id: &str, adjacent_id: &str) {
        self.client
            .merge_shards()
            .stream_name(name)
            .shard_to_merge(shard_id)
            .adjacent_shard_to_merge(adjacent_id)
            .send()
            .await
            .expect("merge");
        self.wait_active(name).await;
    }

    /// The open shards, ordered by hash range: id, start and end hash key.
    pub async fn open_shards(&self, name: &str) -> Vec<(String, u128, u128)> {
        let mut open: Vec<(String, u128, u128)> = self
            .shards(name)
            .await
            .into_iter()
            .filter(|s| s.3)
            .map(|(id, start, end, _)| (id, start, end))
            .collect();
        open.sort_by_key(|s| s.1);
        open
    }

    pub async fn put(&self, name: &str, data: &[u8], key: &str) {
        self.client
            .put_record()
            .stream_name(name)
            .data(Blob::new(data))
            .partition_key(key)
            .send()
            .await
            .expect("put");
    }

    /// Every record in every shard, in sequence order per shard.
    pub async fn read_all(&self, name: &str) -> Vec<StoredRecord> {
        let mut out = Vec::new();
        for (shard, _, _, _) in self.shards(name).await {
            let mut it = self
                .client
                .get_shard_iterator()
                .stream_name(name)
                .shard_id(&shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("iterator")
                .shard_iterator()
                .map(str::to_string);
            while let Some(iter) = it {
                let r = self
                    .client
                    .get_records()
                    .shard_iterator(&iter)
                    .limit(10_000)
                    .send()
                    .await
                    .expect("get records");
                let empty = r.records().is_empty();
                for rec in r.records() {
                    out.push(StoredRecord {
                        shard_id: shard.clone(),
                        sequence_number: rec.sequence_number().to_string(),
                        partition_key: rec.partition_key().unwrap_or_default().to_string(),
                        data: Bytes::copy_from_slice(rec.data().as_ref()),
                    });
                }
                let caught_up = r.millis_behind_latest().unwrap_or(0) == 0;
                it = if empty && caught_up {
                    None
                } else {
                    r.next_shard_iterator().map(str::to_string)
                };
            }
        }
        out
    }

    /// Reads until at least `n` user records (deaggregated) are in the stream, or panics.
    pub async fn wait_for_lines(
        &self,
        name: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<StoredRecord> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let recs = self.read_all(name).await;
            let lines: usize = recs
                .iter()
                .map(|r| {
                    crate::kpl::deaggregate(&r.data)
                        .map(|v| v.len())
                        .unwrap_or(1)
                })
                .sum();
            if lines >= n {
                return recs;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("only {lines} of {n} lines reached stream {name}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
