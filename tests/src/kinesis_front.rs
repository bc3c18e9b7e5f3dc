//! A fault-injecting HTTP front between the collector and the Kinesis emulator. No emulator can
//! throttle; this front fails chosen PutRecords entries (forwarding only the others, so the
//! stream really holds exactly what the collector was told succeeded), fails whole calls, plays
//! an outage, or plays a stream whose maximum record size is lower than the emulator's, speaking
//! the Kinesis JSON 1.1 protocol.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use rand::Rng;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What to break.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Fraction of PutRecords entries failed at random with `entry_error_code`.
    pub entry_failure_rate: f64,
    pub entry_error_code: String,
    /// Entries whose data contains these bytes always fail with the given code.
    pub poison: Option<(Vec<u8>, String)>,
    /// The next this-many PutRecords calls fail as a whole with `call_error`.
    pub fail_next_calls: u32,
    pub call_error: Option<(u16, String)>,
    /// Every request (any action) gets this answer: an outage, refused credentials...
    pub every_request: Option<(u16, String)>,
    /// Like an IAM policy: when set, only these actions (`PutRecords`, `ListShards`, ...) are
    /// allowed; any other gets AccessDeniedException.
    pub allowed_actions: Option<Vec<String>>,
    /// Each PutRecords call is held up to this long (a random delay), to mix up call order.
    pub max_call_delay: Option<std::time::Duration>,
    /// The stream's maximum record size, in bytes of a record's data: a PutRecords call with a
    /// record over it is refused whole (400 `ValidationException`, worded as Kinesis words it).
    pub stream_max_record_bytes: Option<usize>,
}

impl Faults {
    /// Every request (any action) answered `status` with the error `code`: an outage, refused
    /// credentials...
    pub fn every_request_fails(status: u16, code: &str) -> Faults {
        Faults {
            every_request: Some((status, code.into())),
            ..Faults::default()
        }
    }

    /// A fraction of PutRecords entries throttled.
    pub fn throttle_entries(rate: f64) -> Faults {
        Faults {
            entry_failure_rate: rate,
            entry_error_code: "ProvisionedThroughputExceededException".into(),
            ..Faults::default()
        }
    }
}

/// What passed through.
#[derive(Default, Debug)]
pub struct FrontStats {
    pub put_calls: AtomicU64,
    pub entries: AtomicU64,
    pub failed_entries: AtomicU64,
    pub failed_calls: AtomicU64,
    /// Every action asked for, in order (`PutRecords`, `ListShards`, ...).
    pub actions: Mutex<Vec<String>>,
    /// The data of every entry failed on purpose.
    pub failed_data: Mutex<Vec<Vec<u8>>>,
    /// Every request's action and the access key id that signed it.
    pub signed_by: Mutex<Vec<(String, String)>>,
}

pub struct KinesisFront {
    pub endpoint: String,
    pub faults: Arc<Mutex<Faults>>,
    pub stats: Arc<FrontStats>,
    _task: crate::procs::AbortOnDrop,
}

impl KinesisFront {
    pub fn set(&self, f: Faults) {
        *self.faults.lock().expect("faults") = f;
    }
}

#[derive(Clone)]
struct FrontState {
    upstream: String,
    http: reqwest::Client,
    faults: Arc<Mutex<Faults>>,
    stats: Arc<FrontStats>,
}

/// Starts the front on a free port, forwarding to `upstream` (the emulator).
pub async fn spawn_kinesis_front(upstream: &str) -> KinesisFront {
    let faults = Arc::new(Mutex::new(Faults::default()));
    let stats = Arc::new(FrontStats::default());
    let state = FrontState {
        upstream: upstream.to_string(),
        http: reqwest::Client::new(),
        faults: faults.clone(),
        stats: stats.clone(),
    };
    let app = Router::new()
        .route("/", post(handle))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state);
    let (addr, task) = crate::procs::serve_on_loopback(app).await;
    KinesisFront {
        endpoint: format!("http://{addr}"),
        faults,
        stats,
        _task: crate::procs::AbortOnDrop(task),
    }
}

/// The key id in a SigV4 `Authorization` header (`... Credential=<id>/<date>/...`); empty if none.
fn access_key_id(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next())
        .unwrap_or("")
        .to_string()
}

fn error(status: u16, code: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        [("content-type", "application/x-amz-json-1.1")],
        json!({"__type": code, "message": format!("injected {code}")}).to_string(),
    )
        .into_response()
}

async fn forward(
    s: &FrontState,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(u16, Bytes), Response> {
    let mut req = s.http.post(&s.upstream).body(body);
    for (k, v) in headers {
        if k != "content-length" && k != "host" {
            req = req.header(k, v);
        }
    }
    let resp = req
        .send()
        .await
        .map_err(|_| error(500, "InternalFailure"))?;
    let status = resp.status().as_u16();
    let body = resp
        .bytes()
        .await
        .map_err(|_| error(500, "InternalFailure"))?;
    Ok((status, body))
}

/// Kinesis' answer to a PutRecords call with records whose data is over the stream's maximum
/// record size: the whole call refused, one validation error per record over it.
fn over_stream_limit(records: &[Value], limit: usize) -> Option<Response> {
    let errors: Vec<String> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let n = base64_simd::STANDARD
                .decode_to_vec(r["Data"].as_str().unwrap_or(""))
                .map_or(0, |d| d.len());
            (n > limit).then(|| {
                format!(
                    "Value 'java.nio.HeapByteBuffer[pos=0 lim={n} cap={n}]' at 'records.{}.member.data' failed to satisfy constraint: Member must have length less than or equal to {limit}",
                    i + 1
                )
            })
        })
        .collect();
    if errors.is_empty() {
        return None;
    }
    let message = format!(
        "{} validation error{} detected: {}",
        errors.len(),
        if errors.len() > 1 { "s" } else { "" },
        errors.join("; ")
    );
    Some(
        (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.1")],
            json!({"__type": "ValidationException", "message": message}).to_string(),
        )
            .into_response(),
    )
}

async fn handle(State(s): State<FrontState>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let faults = s.faults.lock().expect("faults").clone();
    let action = target.rsplit('.').next().unwrap_or("").to_string();
    s.stats
        .actions
        .lock()
        .expect("actions")
        .push(action.clone());
    s.stats
        .signed_by
        .lock()
        .expect("signers")
        .push((action.clone(), access_key_id(&headers)));
    if let Some((status, code)) = &faults.every_request {
        return error(*status, code);
    }
    if let Some(allowed) = &faults.allowed_actions {
        if !allowed.contains(&action) {
            return (
                StatusCode::BAD_REQUEST,
                [("content-type", "application/x-amz-json-1.1")],
                json!({"__type": "AccessDeniedException", "message": format!("User: arn:aws:iam::123456789012:user/edgelog is not authorized to perform: kinesis:{action} on resource: stream")}).to_string(),
            )
                .into_response();
        }
    }
    if let Some(max) = faults.max_call_delay {
        let d = rand::rng().random_range(0..=max.as_micros() as u64);
        tokio::time::sleep(std::time::Duration::from_micros(d)).await;
    }
    if !target.ends_with(".PutRecords") {
        return match forward(&s, &headers, body).await {
            Ok((status, b)) => (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [("content-type", "application/x-amz-json-1.1")],
                b,
            )
                .into_response(),
            Err(r) => r,
        };
    }
    s.stats.put_calls.fetch_add(1, Ordering::Relaxed);
    if faults.fail_next_calls > 0 {
        s.faults.lock().expect("faults").fail_next_calls -= 1;
        s.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
        let (status, code) = faults
            .call_error
            .clone()
            .unwrap_or((400, "ProvisionedThroughputExceededException".into()));
        return error(status, &code);
    }
    let Ok(mut req) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "SerializationException");
    };
    let records = req["Records"].as_array().cloned().unwrap_or_default();
    if let Some(limit) = faults.stream_max_record_bytes {
        if let Some(refusal) = over_stream_limit(&records, limit) {
            s.stats.failed_calls.fetch_add(1, Ordering::Relaxed);
            return refusal;
        }
    }
    s.stats
        .entries
        .fetch_add(records.len() as u64, Ordering::Relaxed);
    // Decide which entries fail.
    let mut failures: Vec<Option<String>> = vec![None; records.len()];
    {
        let mut rng = rand::rng();
        for (i, r) in records.iter().enumerate() {
            if let Some((needle, code)) = &faults.poison {
                let data = base64_simd::STANDARD
                    .decode_to_vec(r["Data"].as_str().unwrap_or(""))
                    .unwrap_or_default();
                if data
                    .windows(needle.len().max(1))
                    .any(|w| w == needle.as_slice())
                {
                    failures[i] = Some(code.clone());
                    continue;
                }
            }
            if faults.entry_failure_rate > 0.0
                && rng.random_bool(faults.entry_failure_rate.min(1.0))
            {
                failures[i] = Some(faults.entry_error_code.clone());
            }
        }
    }
    let passing: Vec<Value> = records
        .iter()
        .zip(&failures)
        .filter(|(_, f)| f.is_none())
        .map(|(r, _)| r.clone())
        .collect();
    let mut upstream_results: Vec<Value> = Vec::new();
    if !passing.is_empty() {
        req["Records"] = Value::Array(passing);
        let (status, b) = match forward(&s, &headers, Bytes::from(req.to_string())).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        if status != 200 {
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                [("content-type", "application/x-amz-json-1.1")],
                b,
            )
                .into_response();
        }
        let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
        upstream_results = v["Records"].as_array().cloned().unwrap_or_default();
    }
    {
        let mut failed_data = s.stats.failed_data.lock().expect("failed data");
        for (r, f) in records.iter().zip(&failures) {
            if f.is_some() {
                failed_data.push(
                    base64_simd::STANDARD
                        .decode_to_vec(r["Data"].as_str().unwrap_or(""))
                        .unwrap_or_default(),
                );
            }
        }
    }
    let mut passed = upstream_results.into_iter();
    let mut failed = 0;
    let merged: Vec<Value> = failures
        .iter()
        .map(|f| match f {
            Some(code) => {
                failed += 1;
                json!({"ErrorCode": code, "ErrorMessage": format!("injected {code}")})
            }
            None => passed.next().unwrap_or_else(
                || json!({"ErrorCode": "InternalFailure", "ErrorMessage": "missing"}),
            ),
        })
        .collect();
    s.stats.failed_entries.fetch_add(failed, Ordering::Relaxed);
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        json!({"FailedRecordCount": failed, "Records": merged}).to_string(),
    )
        .into_response()
}
