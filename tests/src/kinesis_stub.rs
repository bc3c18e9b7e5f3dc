//! A no-op Kinesis server speaking the JSON 1.1 protocol (PutRecords, ListShards,
//! DescribeStreamSummary) that accepts everything and counts what arrives: calls, records,
//! bytes, lines (KPL aggregated records unpacked) and the latency of the load generator's probe
//! lines. For benchmarks, where an emulator would be the bottleneck.
//!
//! It reads PutRecords bodies with a byte scanner rather than a JSON parser, so that it costs
//! little next to the collector it measures.

use crate::load::now_micros;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// `{"probe_ts":` in base64.
const PROBE_B64: &[u8] = b"eyJwcm9iZV90cyI6";
/// The KPL magic `F3 89 9A` in base64.
const KPL_B64: &[u8] = b"84ma";

#[derive(Default)]
pub struct StubStats {
    pub calls: AtomicU64,
    pub records: AtomicU64,
    pub data_bytes: AtomicU64,
    pub lines: AtomicU64,
    pub latencies_us: Mutex<Vec<u64>>,
    pub first_us: AtomicU64,
    pub last_us: AtomicU64,
}

/// A snapshot of the stats, as `/stats` serves it.
#[derive(Serialize, serde::Deserialize, Debug, Clone, Default)]
pub struct StubReport {
    pub calls: u64,
    pub records: u64,
    pub data_bytes: u64,
    pub lines: u64,
    pub latency_p50_us: u64,
    pub latency_p99_us: u64,
    pub latency_samples: usize,
    pub first_us: u64,
    pub last_us: u64,
}

impl StubStats {
    pub fn report(&self) -> StubReport {
        let mut lat = self
            .latencies_us
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        StubReport {
            calls: self.calls.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            data_bytes: self.data_bytes.load(Ordering::Relaxed),
            lines: self.lines.load(Ordering::Relaxed),
            latency_samples: lat.len(),
            latency_p50_us: crate::load::quantile(&mut lat, 0.5),
            latency_p99_us: crate::load::quantile(&mut lat, 0.99),
            first_us: self.first_us.load(Ordering::Relaxed),
            last_us: self.last_us.load(Ordering::Relaxed),
        }
    }
}

#[derive(Clone)]
struct Stub {
    shards: usize,
    stats: Arc<StubStats>,
}

/// The router of a stub with `shards` shards.
pub fn router(shards: usize, stats: Arc<StubStats>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/stats", get(stats_handler))
        // PutRecords bodies reach ~7 MB (5 MiB of data, base64-encoded).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(Stub {
            shards: shards.max(1),
            stats,
        })
}

async fn stats_handler(State(s): State<Stub>) -> Response {
    axum::Json(s.stats.report()).into_response()
}

fn json(body: String) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        body,
    )
        .into_response()
}

async fn handle(State(s): State<Stub>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let action = target.rsplit('.').next().unwrap_or("");
    match action {
        "PutRecords" => put_records(&s, &body),
        "ListShards" => {
            let step = u128::MAX / s.shards as u128;
            let shards: Vec<String> = (0..s.shards)
                .map(|i| {
                    let start = step * i as u128;
                    let end = if i + 1 == s.shards { u128::MAX } else { step * (i as u128 + 1) - 1 };
                    format!(
                        "{{\"ShardId\":\"shardId-{i:012}\",\"HashKeyRange\":{{\"StartingHashKey\":\"{start}\",\"EndingHashKey\":\"{end}\"}},\"SequenceNumberRange\":{{\"StartingSequenceNumber\":\"49590000000000000000000000000000000000000000000000000000\"}}}}"
                    )
                })
                .collect();
            json(format!("{{\"Shards\":[{}]}}", shards.join(",")))
        }
        "DescribeStreamSummary" => json(format!(
            "{{\"StreamDescriptionSummary\":{{\"StreamName\":\"bench\",\"StreamARN\":\"arn:aws:kinesis:us-east-1:000000000000:stream/bench\",\
\"StreamStatus\":\"ACTIVE\",\"RetentionPeriodHours\":24,\"StreamCreationTimestamp\":1700000000.0,\
\"EnhancedMonitoring\":[{{\"ShardLevelMetrics\":[]}}],\"EncryptionType\":\"NONE\",\"OpenShardCount\":{},\"ConsumerCount\":0}}}}",
            s.shards
        )),
        _ => (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.1")],
            format!("{{\"__type\":\"UnknownOperationException\",\"message\":\"{action}\"}}"),
        )
            .into_response(),
    }
}

fn put_records(s: &Stub, body: &[u8]) -> Response {
    let now = now_micros();
    let _ = s
        .stats
        .first_us
        .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    s.stats.last_us.store(now, Ordering::Relaxed);
    let mut records = 0u64;
    let mut data_bytes = 0u64;
    let mut lines = 0u64;
    let mut pos = 0;
    let finder = memchr::memmem::Finder::new(b"\"Data\":\"");
    while let Some(i) = finder.find(&body[pos..]) {
        let start = pos + i + 8;
        let Some(len) = memchr::memchr(b'"', &body[start..]) else {
            break;
        };
        let b64 = &body[start..start + len];
        pos = start + len;
        records += 1;
        let pad = b64.iter().rev().take_while(|c| **c == b'=').count();
        data_bytes += (b64.len() / 4 * 3).saturating_sub(pad) as u64;
        if b64.starts_with(PROBE_B64) {
            lines += 1;
            probe(s, b64, now);
        } else if b64.starts_with(KPL_B64) {
            let raw = base64_simd::STANDARD.decode_to_vec(b64).unwrap_or_default();
            match count_user_records(&raw, |data| {
                if data.starts_with(crate::load::PROBE_PREFIX.as_bytes()) {
                    probe_plain(s, data, now);
                }
            }) {
                Some(n) => lines += n,
                None => lines += 1,
            }
        } else {
            lines += 1;
        }
    }
    let st = &s.stats;
    st.calls.fetch_add(1, Ordering::Relaxed);
    st.records.fetch_add(records, Ordering::Relaxed);
    st.data_bytes.fetch_add(data_bytes, Ordering::Relaxed);
    st.lines.fetch_add(lines, Ordering::Relaxed);
    let mut out = String::with_capacity(32 + records as usize * 120);
    out.push_str("{\"FailedRecordCount\":0,\"Records\":[");
    for i in 0..records {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"SequenceNumber\":\"49590000000000000000000000000000000000000000000000000001\",\"ShardId\":\"shardId-");
        out.push_str(&format!("{:012}", i as usize % s.shards));
        out.push_str("\"}");
    }
    out.push_str("]}");
    json(out)
}

/// Counts the user records of a KPL aggregated record by walking its top-level protobuf fields
/// (no digest check, no copies: the stub must stay cheap), handing each record's data to `seen`.
fn count_user_records(raw: &[u8], mut seen: impl FnMut(&[u8])) -> Option<u64> {
    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let x = *b.get(*i)?;
            *i += 1;
            v |= u64::from(x & 0x7f) << shift;
            if x & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let body = raw.get(4..raw.len().checked_sub(16)?)?;
    let (mut i, mut n) = (0usize, 0u64);
    while i < body.len() {
        let tag = varint(body, &mut i)?;
        if tag & 7 != 2 {
            return None;
        }
        let len = varint(body, &mut i)? as usize;
        let field = body.get(i..i + len)?;
        i += len;
        if tag >> 3 == 3 {
            n += 1;
            // The record's data is its field 3.
            let mut j = 0;
            while j < field.len() {
                let t = varint(field, &mut j)?;
                match t & 7 {
                    0 => {
                        varint(field, &mut j)?;
                    }
                    2 => {
                        let l = varint(field, &mut j)? as usize;
                        if t >> 3 == 3 {
                            seen(field.get(j..j + l)?);
                        }
                        j += l;
                    }
                    _ => return None,
                }
            }
        }
    }
    Some(n)
}

fn probe(s: &Stub, b64: &[u8], now: u64) {
    if let Ok(raw) = base64_simd::STANDARD.decode_to_vec(b64) {
        probe_plain(s, &raw, now);
    }
}

fn probe_plain(s: &Stub, line: &[u8], now: u64) {
    let rest = &line[crate::load::PROBE_PREFIX.len().min(line.len())..];
    let digits: String = rest
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .map(|c| *c as char)
        .collect();
    if let Ok(ts) = digits.parse::<u64>() {
        if let Ok(mut l) = s.stats.latencies_us.lock() {
            l.push(now.saturating_sub(ts));
        }
    }
}

/// Starts the stub in this process on a free port; returns its URL.
pub async fn spawn_kinesis_stub(shards: usize) -> (String, Arc<StubStats>) {
    let stats = Arc::new(StubStats::default());
    let app = router(shards, stats.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stub");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), stats)
}
