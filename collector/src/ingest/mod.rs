//! The HTTP side: Fastly's challenge, the ingest endpoint, health, readiness and metrics.
//!
//! One ingest request is one batch: it is authenticated before its body is read, received within
//! a time limit and a memory budget, decoded, and appended to the buffer as one entry; the answer
//! is 204 only once the buffer has taken every line (lines too long for Kinesis go to the
//! dead-letter file first). Invariant: a 2xx means every line of the batch is either in the buffer
//! or in the dead-letter file; any refusal means none of it was kept.

pub mod auth;
pub mod challenge;
pub mod decode;
pub mod error;

use crate::buffer::Buffer;
use crate::config::Config;
use crate::deadletter::{DeadLetter, DeadLine};
use crate::metrics::Metrics;
use crate::tail::Tail;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::{Bytes, BytesMut};
use decode::FrameOptions;
use error::IngestError;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bodies at least this large (or compressed) are decoded off the async threads.
const BLOCKING_DECODE_BYTES: usize = 64 * 1024;
/// The memory budget counts in KiB so `u32` permits cover gigabytes.
const KIB: usize = 1024;

/// Liveness and readiness as `/readyz` reports them.
#[derive(Default)]
pub struct Health {
    /// The output's last check succeeded (stream reachable).
    pub output_ready: AtomicBool,
    pub shutting_down: AtomicBool,
}

/// Everything a request handler needs.
pub struct IngestState {
    pub path: String,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub frame: FrameOptions,
    pub challenge: String,
    pub auth: Option<auth::TokenCheck>,
    pub buffer: Arc<Buffer>,
    pub dead: Arc<DeadLetter>,
    pub metrics: Arc<Metrics>,
    pub in_flight: Arc<Semaphore>,
    pub budget: Arc<Semaphore>,
    pub health: Arc<Health>,
    pub tail: Arc<Tail>,
}

impl IngestState {
    pub fn new(
        cfg: &Config,
        buffer: Arc<Buffer>,
        dead: Arc<DeadLetter>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        tail: Arc<Tail>,
    ) -> Self {
        let ing = &cfg.ingest;
        let auth = ing.auth.as_ref().and_then(|a| {
            a.header
                .parse::<HeaderName>()
                .ok()
                .map(|h| auth::TokenCheck::new(h, a.token.expose()))
        });
        let budget_kib = (ing.max_in_flight_bytes / KIB).min(Semaphore::MAX_PERMITS);
        IngestState {
            path: ing.path.clone(),
            max_body_bytes: ing.max_body_bytes,
            request_timeout: ing.request_timeout,
            frame: FrameOptions {
                framing: ing.framing,
                json_content_type: false,
                strip_prefix: ing.strip_prefix,
                max_line_bytes: ing.max_line_bytes,
            },
            challenge: challenge::body(&cfg.service_ids),
            auth,
            buffer,
            dead,
            metrics,
            in_flight: Arc::new(Semaphore::new(ing.max_in_flight)),
            budget: Arc::new(Semaphore::new(budget_kib)),
            health,
            tail,
        }
    }
}

/// The collector's routes.
pub fn router(state: Arc<IngestState>) -> Router {
    let mut r = Router::new()
        .route(challenge::PATH, get(challenge))
        .route(&state.path, post(ingest).put(ingest))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    if state.tail.enabled() {
        r = r.route(crate::tail::PATH, get(crate::tail::handler));
    }
    r.fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .with_state(state)
}

async fn count_status(State(s): State<Arc<IngestState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    s.metrics.http_requests.inc(resp.status().as_str());
    resp
}

async fn challenge(State(s): State<Arc<IngestState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], s.challenge.clone()).into_response()
}

async fn readyz(State(s): State<Arc<IngestState>>) -> Response {
    if s.health.shutting_down.load(Ordering::Acquire) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        )
            .into_response()
    } else if !s.health.output_ready.load(Ordering::Acquire) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: output unreachable\n",
        )
            .into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn metrics(State(s): State<Arc<IngestState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

async fn ingest(State(s): State<Arc<IngestState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    s.metrics.ingest_in_flight.add(1);
    let result = accept(&s, &headers, body).await;
    s.metrics.ingest_in_flight.add(-1);
    s.metrics
        .ingest_duration
        .observe_duration(started.elapsed());
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            s.metrics.ingest_rejections.inc(e.reason());
            match &e {
                IngestError::Storage(detail) => {
                    tracing::error!(error = %detail, "buffer write failed; answered 500")
                }
                other => tracing::debug!(reason = other.reason(), "batch refused: {other}"),
            }
            e.into_response()
        }
    }
}

async fn accept(s: &Arc<IngestState>, headers: &HeaderMap, body: Body) -> Result<(), IngestError> {
    let _slot = s
        .in_flight
        .clone()
        .try_acquire_owned()
        .map_err(|_| IngestError::Overloaded)?;
    if let Some(check) = &s.auth {
        if !check.allows(headers) {
            return Err(IngestError::Unauthorized);
        }
    }
    if s.health.shutting_down.load(Ordering::Acquire) {
        return Err(IngestError::ShuttingDown);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > s.max_body_bytes) {
        return Err(IngestError::TooLarge {
            limit: s.max_body_bytes,
        });
    }

    let mut held = Budget::new(s.budget.clone());
    let raw = tokio::time::timeout(
        s.request_timeout,
        read_body(body, s.max_body_bytes, declared, &mut held),
    )
    .await
    .map_err(|_| IngestError::Timeout)??;
    s.metrics.ingest_body_bytes.add(raw.len() as u64);

    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.as_bytes().to_vec());
    let json_content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("application/json") && !ct.contains("ndjson")
        });
    let frame = FrameOptions {
        json_content_type,
        ..s.frame
    };
    let limit = s.max_body_bytes;
    let big = raw.len() >= BLOCKING_DECODE_BYTES || encoding.is_some();
    let decode = move |mut held: Budget| {
        let framed = decode::decode_body(encoding.as_deref(), raw, limit, &frame, &mut |n| {
            held.grow_by(n)
        });
        (framed, held)
    };
    let (framed, _held) = if big {
        tokio::task::spawn_blocking(move || decode(held))
            .await
            .map_err(|e| IngestError::Storage(e.to_string()))?
    } else {
        decode(held)
    };
    let framed = framed?;

    if !framed.oversized.is_empty() {
        let max = s.frame.max_line_bytes;
        let dead: Vec<DeadLine> = framed
            .oversized
            .iter()
            .map(|l| DeadLine {
                line: l.clone(),
                reason: "line_too_long",
                error_code: None,
                detail: Some(format!("{} bytes > ingest.max_line_bytes {max}", l.len())),
            })
            .collect();
        s.metrics
            .ingest_rejections
            .add("line_too_long", dead.len() as u64);
        s.dead
            .write(dead)
            .await
            .map_err(|e| IngestError::Storage(format!("dead-letter write: {e}")))?;
    }

    let batch = framed.batch;
    let lines = batch.len() as u64;
    let bytes = batch.line_bytes() as u64;
    s.tail.publish(&batch);
    s.buffer.append(batch).await?;
    s.metrics.ingest_batches.inc();
    s.metrics.ingest_lines.add(lines);
    s.metrics.ingest_line_bytes.add(bytes);
    s.metrics.buffer_appended_lines.add(lines);
    Ok(())
}

/// Memory reserved from the shared budget for one request; returned when dropped.
struct Budget {
    sem: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Budget {
    fn new(sem: Arc<Semaphore>) -> Self {
        Budget {
            sem,
            held: None,
            bytes: 0,
        }
    }

    /// Reserves `n` more bytes; false when the budget is spent.
    fn grow_by(&mut self, n: usize) -> bool {
        let before = self.bytes.div_ceil(KIB);
        let after = (self.bytes + n).div_ceil(KIB);
        let want = (after - before) as u32;
        if want > 0 {
            match self.sem.clone().try_acquire_many_owned(want) {
                Ok(p) => match &mut self.held {
                    Some(h) => h.merge(p),
                    None => self.held = Some(p),
                },
                Err(_) => return false,
            }
        }
        self.bytes += n;
        true
    }
}

async fn read_body(
    mut body: Body,
    limit: usize,
    declared: Option<usize>,
    budget: &mut Budget,
) -> Result<Bytes, IngestError> {
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| IngestError::BodyRead)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        total += data.len();
        if total > limit {
            return Err(IngestError::TooLarge { limit });
        }
        if !budget.grow_by(data.len()) {
            return Err(IngestError::OverBudget);
        }
        match (&mut first, &mut buf) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut b =
                    BytesMut::with_capacity(declared.unwrap_or(0).max(f.len() + data.len()));
                b.extend_from_slice(f);
                b.extend_from_slice(&data);
                buf = Some(b);
            }
            (Some(_), Some(b)) => b.extend_from_slice(&data),
        }
    }
    Ok(match (first, buf) {
        (_, Some(b)) => b.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::http::Request as HttpRequest;
    use tower::ServiceExt;

    struct Fixture {
        state: Arc<IngestState>,
        _dir: tempfile::TempDir,
    }

    fn fixture(extra: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tmp");
        let yaml = format!(
            "fastly: {{service_ids: [\"SVC1\", \"*\"]}}\noutput: {{stdout: {{}}}}\nbuffer: {{type: memory}}\n\
             dead_letter: {{path: {}}}\ningest: {{auth: {{header: X-Token, token: sekret}}, max_body_bytes: 1000, max_in_flight_bytes: 100000, max_line_bytes: 50}}\n{extra}",
            dir.path().join("dead.ndjson").display()
        );
        let cfg = Config::from_yaml(&yaml, &|_| None).expect("config");
        let metrics = Arc::new(Metrics::default());
        let buffer = Arc::new(Buffer::open(&cfg.buffer, metrics.clone()).expect("buffer"));
        let dead = Arc::new(DeadLetter::new(&cfg.dead_letter, metrics.clone()));
        let tail = Arc::new(Tail::new(None, metrics.clone()));
        let state = Arc::new(IngestState::new(
            &cfg,
            buffer,
            dead,
            metrics,
            Arc::new(Health::default()),
            tail,
        ));
        Fixture { state, _dir: dir }
    }

    async fn call(f: &Fixture, req: HttpRequest<Body>) -> (StatusCode, HeaderMap, String) {
        let resp = router(f.state.clone())
            .oneshot(req)
            .await
            .expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn post(body: impl Into<Body>) -> axum::http::request::Builder {
        let _ = body;
        HttpRequest::post("/logs").header("x-token", "sekret")
    }

    #[tokio::test]
    async fn challenge_lists_hashes_and_star() {
        let f = fixture("");
        let (status, headers, body) = call(
            &f,
            HttpRequest::get(challenge::PATH)
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain");
        assert_eq!(
            body,
            format!("{}\n*\n", challenge::lines(&["SVC1".into()])[0])
        );
    }

    #[tokio::test]
    async fn accepted_lines_reach_the_buffer_and_the_answer_is_204() {
        let f = fixture("");
        let req = post(()).body(Body::from("a\nb\n")).expect("req");
        let (status, _, _) = call(&f, req).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let e = f.state.buffer.next().await.expect("entry");
        assert_eq!(e.batch.iter().collect::<Vec<_>>(), vec![&b"a"[..], b"b"]);
        let put = HttpRequest::put("/logs")
            .header("x-token", "sekret")
            .body(Body::from("c"))
            .expect("req");
        assert_eq!(
            call(&f, put).await.0,
            StatusCode::NO_CONTENT,
            "PUT works too"
        );
        assert_eq!(f.state.metrics.ingest_lines.get(), 3);
        assert_eq!(f.state.metrics.http_requests.get("204"), 2);
    }

    #[tokio::test]
    async fn bad_requests_get_their_status_and_a_counted_reason() {
        let f = fixture("");
        let cases: Vec<(HttpRequest<Body>, StatusCode, &str, &str)> = vec![
            (
                HttpRequest::post("/logs")
                    .body(Body::from("x"))
                    .expect("req"),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "token",
            ),
            (
                HttpRequest::post("/logs")
                    .header("x-token", "wrong")
                    .body(Body::from("x"))
                    .expect("req"),
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "token",
            ),
            (
                post(())
                    .header("content-length", "5000")
                    .body(Body::from(vec![b'x'; 5000]))
                    .expect("req"),
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "1000",
            ),
            (
                post(())
                    .header("content-encoding", "gzip")
                    .body(Body::from("not gzip"))
                    .expect("req"),
                StatusCode::BAD_REQUEST,
                "corrupt_body",
                "gzip",
            ),
            (
                post(())
                    .header("content-encoding", "zstd")
                    .body(Body::from("not zstd"))
                    .expect("req"),
                StatusCode::BAD_REQUEST,
                "corrupt_body",
                "zstd",
            ),
            (
                post(())
                    .header("content-encoding", "br")
                    .body(Body::from("x"))
                    .expect("req"),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                "br",
            ),
            (
                post(())
                    .header("content-type", "application/json")
                    .body(Body::from("[{\"a\":"))
                    .expect("req"),
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "JSON array",
            ),
        ];
        for (req, status, reason, text) in cases {
            let before = f.state.metrics.ingest_rejections.get(reason);
            let (got, _, body) = call(&f, req).await;
            assert_eq!(got, status, "{reason}");
            assert!(body.contains(text), "{reason}: {body}");
            assert!(!body.contains("sekret"));
            assert_eq!(
                f.state.metrics.ingest_rejections.get(reason),
                before + 1,
                "{reason}"
            );
        }
    }

    #[tokio::test]
    async fn other_methods_and_paths() {
        let f = fixture("");
        let (status, headers, _) = call(
            &f,
            HttpRequest::get("/logs").body(Body::empty()).expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let allow = headers[header::ALLOW].to_str().expect("allow");
        assert!(allow.contains("POST") && allow.contains("PUT"), "{allow}");
        let (status, _, _) = call(
            &f,
            HttpRequest::delete("/logs")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let (status, _, _) = call(
            &f,
            HttpRequest::get("/nope").body(Body::empty()).expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = call(
            &f,
            HttpRequest::get("/tail").body(Body::empty()).expect("req"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "tail is off without a token");
    }

    #[tokio::test]
    async fn too_long_lines_go_to_the_dead_letter_file() {
        let f = fixture("");
        let long = "L".repeat(60);
        let req = post(())
            .body(Body::from(format!("ok1\n{long}\nok2\n")))
            .expect("req");
        assert_eq!(call(&f, req).await.0, StatusCode::NO_CONTENT);
        let e = f.state.buffer.next().await.expect("entry");
        assert_eq!(e.batch.len(), 2);
        let dead = std::fs::read_to_string(f.state.dead.path()).expect("dead letter");
        let rec: serde_json::Value = serde_json::from_str(dead.trim()).expect("json");
        assert_eq!(rec["reason"], "line_too_long");
        assert_eq!(rec["line"], long);
        assert_eq!(f.state.metrics.dead_lettered.get("line_too_long"), 1);
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let f = fixture("");
        let get = |p: &str| HttpRequest::get(p).body(Body::empty()).expect("req");
        assert_eq!(call(&f, get("/healthz")).await.0, StatusCode::OK);
        assert_eq!(
            call(&f, get("/readyz")).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        f.state.health.output_ready.store(true, Ordering::Release);
        assert_eq!(call(&f, get("/readyz")).await.0, StatusCode::OK);
        f.state.health.shutting_down.store(true, Ordering::Release);
        let (status, _, body) = call(&f, get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting down"));
        let (status, _, body) = call(&f, post(()).body(Body::from("x")).expect("req")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting down"));
        let (status, headers, body) = call(&f, get("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ct")
            .starts_with("text/plain"));
        assert!(
            body.contains("edgelog_ingest_rejections_total{reason=\"shutting_down\"} 1"),
            "{body}"
        );
    }
}
