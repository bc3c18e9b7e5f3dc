//! The collector's hot-path pieces in isolation (`cargo bench -p collector`): line splitting,
//! decompression, partition-key extraction (with a full JSON parse beside it as the baseline),
//! PutRecords request encoding, and KPL aggregation. Each runs over a realistic batch: 1,000
//! access-log lines of about 460 bytes.

use bytes::Bytes;
use collector::__internals::{
    decode, decode_body, decode_with_serde, encode, field_value, frame, Aggregator, FrameOptions,
    Framing, PutEntry,
};
use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use std::io::Write;
use std::sync::Arc;

fn main() {
    divan::main();
}

const LINES: usize = 1000;

fn lines() -> Vec<String> {
    let countries = ["US", "DE", "JP", "BR", "GB", "IN", "AU", "FR"];
    (0..LINES)
        .map(|i| {
            format!(
                "{{\"timestamp\":\"2026-11-21T08:03:18.{:06}+00:00\",\"request_id\":\"{:032x}\",\"client_ip\":\"203.0.{}.{}\",\
\"geo\":{{\"country_code\":\"{}\",\"city\":\"Somewhere\",\"latitude\":37.77869,\"longitude\":-122.39557}},\"pop\":\"SJC\",\
\"cache_host\":\"cache-sjc{}\",\"method\":\"GET\",\"url\":\"/products/{}?v={}\",\"protocol\":\"HTTP/2\",\
\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0\",\"status\":200,\
\"body_bytes_sent\":{},\"elapsed_us\":{},\"outcome\":\"origin\"}}",
                i * 37 % 1_000_000,
                i * 7919,
                i % 250,
                i % 199,
                countries[i % countries.len()],
                1000 + i % 9000,
                i % 97,
                i % 13,
                200 + i * 31 % 90_000,
                100 + i * 17 % 200_000
            )
        })
        .collect()
}

fn body() -> Bytes {
    let mut b = lines().join("\n");
    b.push('\n');
    Bytes::from(b)
}

fn opts() -> FrameOptions {
    FrameOptions {
        framing: Framing::Auto,
        json_content_type: false,
        strip_prefix: false,
        max_line_bytes: 1 << 20,
    }
}

#[divan::bench]
fn split_lines(b: Bencher) {
    let body = body();
    b.counter(BytesCount::new(body.len()))
        .bench(|| frame(black_box(body.clone()), &opts()).map(|f| f.batch.len()));
}

#[divan::bench]
fn split_lines_crlf(b: Bencher) {
    let body = Bytes::from(String::from_utf8_lossy(&body()).replace('\n', "\r\n"));
    b.counter(BytesCount::new(body.len()))
        .bench(|| frame(black_box(body.clone()), &opts()).map(|f| f.batch.len()));
}

#[divan::bench]
fn split_json_array(b: Bencher) {
    let body = Bytes::from(format!("[{}]", lines().join(",")));
    b.counter(BytesCount::new(body.len()))
        .bench(|| frame(black_box(body.clone()), &opts()).map(|f| f.batch.len()));
}

#[divan::bench(args = ["gzip", "zstd"])]
fn decompress(b: Bencher, codec: &str) {
    let plain = body();
    let compressed = match codec {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&plain).expect("gzip");
            e.finish().expect("gzip")
        }
        _ => zstd::encode_all(&plain[..], 3).expect("zstd"),
    };
    let compressed = Bytes::from(compressed);
    let header = codec.as_bytes().to_vec();
    b.counter(BytesCount::new(plain.len())).bench(|| {
        decode_body(
            Some(&header),
            black_box(compressed.clone()),
            8 << 20,
            &opts(),
            &mut |_| true,
        )
        .map(|f| f.batch.len())
    });
}

#[divan::bench(args = ["client_ip", "geo.country_code"])]
fn partition_key_scan(b: Bencher, field: &str) {
    let lines = lines();
    let path: Vec<String> = field.split('.').map(str::to_string).collect();
    b.counter(ItemsCount::new(lines.len())).bench(|| {
        lines
            .iter()
            .filter_map(|l| field_value(black_box(l.as_bytes()), &path))
            .count()
    });
}

/// The baseline the scanner replaced: parse the whole line, then look the field up.
#[divan::bench(args = ["client_ip", "geo.country_code"])]
fn partition_key_full_parse(b: Bencher, field: &str) {
    let lines = lines();
    let path: Vec<&str> = field.split('.').collect();
    b.counter(ItemsCount::new(lines.len())).bench(|| {
        lines
            .iter()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(black_box(l)).ok()?;
                let mut cur = &v;
                for p in &path {
                    cur = cur.get(p)?;
                }
                cur.as_str().map(str::to_string)
            })
            .count()
    });
}

#[divan::bench]
fn put_records_encoding(b: Bencher) {
    let shard: Arc<str> = Arc::from("shardId-000000000001");
    let ehk: Arc<str> = Arc::from("127605887595351923798765477786913079295");
    let entries: Vec<PutEntry> = lines()
        .into_iter()
        .take(500)
        .map(|l| PutEntry {
            data: Bytes::from(l),
            partition_key: shard.clone(),
            explicit_hash_key: Some(ehk.clone()),
        })
        .collect();
    let bytes: usize = entries.iter().map(|e| e.data.len()).sum();
    b.counter(BytesCount::new(bytes))
        .bench(|| encode(black_box("logs"), black_box(&entries)).0.len());
}

/// Reading a 500-entry PutRecords answer as Kinesis writes it: the fast path, and serde_json.
#[divan::bench(args = ["fast", "serde"])]
fn put_records_answer(b: Bencher, path: &str) {
    let entries: Vec<String> = (0..500)
        .map(|i| {
            format!(
                r#"{{"SequenceNumber":"4959{i:052}","ShardId":"shardId-{:012}"}}"#,
                i % 4
            )
        })
        .collect();
    let body = format!(
        r#"{{"EncryptionType":"NONE","FailedRecordCount":0,"Records":[{}]}}"#,
        entries.join(",")
    );
    let read = if path == "fast" {
        decode
    } else {
        decode_with_serde
    };
    b.counter(ItemsCount::new(500usize))
        .bench(|| read(black_box(body.as_bytes()), 500).map(|r| r.shards.len()));
}

#[divan::bench]
fn kpl_aggregation(b: Bencher) {
    let lines: Vec<Bytes> = lines().into_iter().map(Bytes::from).collect();
    let key: Arc<str> = Arc::from("shardId-000000000001");
    let bytes: usize = lines.iter().map(Bytes::len).sum();
    b.counter(BytesCount::new(bytes)).bench(|| {
        let mut agg = Aggregator::default();
        let mut out = 0;
        for l in &lines {
            if !agg.fits(&key, None, l.len(), 1 << 20) {
                out += agg.finish().len();
            }
            agg.add(key.clone(), None, l.clone());
        }
        out + agg.finish().len()
    });
}

/// Eight 256 KiB messages (the aggregated records of a busy batch): their MD5 digests one after
/// the other with `md-5`, and together with the multi-lane path (AVX2 when the CPU has it).
#[divan::bench(args = ["one_by_one", "lanes"])]
fn md5_of_eight_records(b: Bencher, how: &str) {
    use collector::__internals::{md5_digests, md5_one};
    let msgs: Vec<Vec<u8>> = (0..8u8)
        .map(|i| {
            (0..256 * 1024)
                .map(|j| (j as u8).wrapping_mul(31) ^ i)
                .collect()
        })
        .collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    b.counter(BytesCount::new(8 * 256 * 1024usize))
        .bench(|| match how {
            "lanes" => md5_digests(black_box(&refs)),
            _ => refs.iter().map(|m| md5_one(black_box(m))).collect(),
        });
}
