//! Reading a stream as its consumers do: every shard read from the start, each record
//! deaggregated by the published Python library (`aws-kinesis-agg`, installed by scripts/setup)
//! in the AWS Lambda handler that docs/kinesis-consumers.md shows, each user record's effective hash key (its explicit hash
//! key, else the MD5 of its partition key) checked against the hash range of the shard it was
//! read from, and the lines a KCL 2.x consumer would hand over: KCL drops a deaggregated user
//! record whose effective hash key lies outside its shard's range.

use crate::kinesis::{KinesisClient, StoredRecord};
use crate::paths::cache_dir;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

/// Runs the AWS Lambda handler of docs/kinesis-consumers.md (its code is the first argument)
/// on the records given on stdin (one JSON object a line), as one Lambda event, with a `handle`
/// that prints each user record it is given.
const LAMBDA_HARNESS_PY: &str = r#"
import base64, json, sys

def handle(line, record):
    k = record["kinesis"]
    print(json.dumps({"shard": record["eventID"].split(":")[0], "seq": k["sequenceNumber"],
                      "pk": k["partitionKey"], "ehk": k.get("explicitHashKey"),
                      "aggregated": bool(k.get("aggregated")),
                      "data": base64.b64encode(line).decode()}))

ns = {"handle": handle}
exec(sys.argv[1], ns)
records = []
for line in sys.stdin:
    r = json.loads(line)
    records.append({"eventSource": "aws:kinesis", "eventID": r["shard"] + ":" + r["seq"],
                    "kinesis": {"kinesisSchemaVersion": "1.0", "sequenceNumber": r["seq"],
                                "approximateArrivalTimestamp": 0, "partitionKey": r["pk"],
                                "data": r["data"]}})
ns["handler"]({"Records": records}, None)
"#;

/// One user record as a consumer sees it, with the shard it was read from.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    /// Whether it came out of an aggregated record (a plain record passes through as it is).
    pub aggregated: bool,
    pub data: Vec<u8>,
}

impl ConsumedRecord {
    /// Its explicit hash key, else the MD5 of its partition key (what Kinesis and KCL use).
    pub fn effective_hash_key(&self) -> u128 {
        match &self.explicit_hash_key {
            Some(h) => h.parse().unwrap_or_else(|_| {
                panic!("explicit hash key {h:?} is not a decimal 128-bit number")
            }),
            None => {
                use md5::Digest;
                u128::from_be_bytes(md5::Md5::digest(self.partition_key.as_bytes()).into())
            }
        }
    }
}

/// The Python of the `aws-kinesis-agg` virtual environment.
pub fn kinesis_agg_python() -> PathBuf {
    let py = cache_dir().join("kinesis-agg/bin/python");
    assert!(
        py.is_file(),
        "aws-kinesis-agg is not installed at {}: run scripts/setup",
        py.display()
    );
    py
}

/// Deaggregates stored records with `aws-kinesis-agg`, through the Lambda handler of
/// docs/kinesis-consumers.md.
pub fn deaggregate_with_python(records: &[StoredRecord]) -> Vec<ConsumedRecord> {
    let handler = crate::paths::doc_block("docs/kinesis-consumers.md", "<!-- lambda handler -->");
    let b64 = base64_simd::STANDARD;
    let mut input = Vec::new();
    for r in records {
        let line = serde_json::json!({
            "shard": r.shard_id,
            "seq": r.sequence_number,
            "pk": r.partition_key,
            "data": b64.encode_to_string(&r.data),
        });
        writeln!(input, "{line}").expect("write");
    }
    let mut child = std::process::Command::new(kinesis_agg_python())
        .args(["-c", LAMBDA_HARNESS_PY, &handler])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the aws-kinesis-agg deaggregator");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("deaggregator output");
    writer.join().expect("writer").expect("write records");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "the aws-kinesis-agg deaggregator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).expect("deaggregator json");
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            ConsumedRecord {
                shard_id: s("shard"),
                sequence_number: s("seq"),
                partition_key: s("pk"),
                explicit_hash_key: v["ehk"].as_str().map(str::to_string),
                aggregated: v["aggregated"].as_bool().unwrap_or(false),
                data: b64.decode_to_vec(s("data")).expect("base64 data"),
            }
        })
        .collect()
}

/// What consumers find in a stream.
pub struct ConsumerView {
    /// Every user record, from every shard (open and closed), in shard order.
    pub records: Vec<ConsumedRecord>,
    /// The deaggregated user records whose effective hash key lies outside the range of the
    /// shard they were read from, with that range.
    pub out_of_range: Vec<(ConsumedRecord, (u128, u128))>,
    /// What a KCL 2.x consumer hands over: the user records minus the out-of-range ones.
    pub kcl_lines: Vec<Vec<u8>>,
}

/// Reads every shard of `stream` and deaggregates it as its consumers do.
pub async fn read_as_consumers(kc: &KinesisClient, stream: &str) -> ConsumerView {
    let ranges: HashMap<String, (u128, u128)> = kc
        .shards(stream)
        .await
        .into_iter()
        .map(|(id, start, end, _)| (id, (start, end)))
        .collect();
    let stored = kc.read_all(stream).await;
    let records = deaggregate_with_python(&stored);
    let mut out_of_range = Vec::new();
    let mut kcl_lines = Vec::new();
    for r in &records {
        assert!(
            r.aggregated || !r.data.starts_with(&[0xF3, 0x89, 0x9A, 0xC2]),
            "a record in shard {} starts like an aggregated record but aws-kinesis-agg did not unpack it (a bad digest?)",
            r.shard_id
        );
        let range = ranges[&r.shard_id];
        let h = r.effective_hash_key();
        if r.aggregated && !(range.0 <= h && h <= range.1) {
            out_of_range.push((r.clone(), range));
        } else {
            kcl_lines.push(r.data.clone());
        }
    }
    ConsumerView {
        records,
        out_of_range,
        kcl_lines,
    }
}
