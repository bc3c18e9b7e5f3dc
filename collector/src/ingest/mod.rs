//! The ingest endpoint: one request is one batch. It is authenticated before its body is read,
//! received within a time limit and a memory budget, decoded, and appended to the buffer as one
//! entry; the answer is 204 only once the buffer holds the whole batch.
//!
//! Invariant: a 2xx means every line of the batch is in the buffer (lines over
//! `ingest.max_line_bytes` included: the output side sets them aside for the dead-letter file);
//! any refusal means none of it was kept, dead-lettered or shown on the live tail.

pub(crate) mod body;
pub(crate) mod challenge;
pub(crate) mod decode;
pub(crate) mod error;

use crate::admin::tail::Tail;
use crate::buffer::Buffer;
use crate::config::Config;
use crate::health::Health;
use crate::http::auth::TokenCheck;
use crate::metrics::Metrics;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use body::{read_body, Budget, KIB};
use decode::{FrameOptions, Framed};
use error::{IngestError, Internal};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Uncompressed bodies at least this large are framed off the async threads; smaller ones are
/// framed in place (a scan for newlines: about 0.1 ms per MiB), which saves a hand-off to another
/// thread and back per batch. Compressed bodies are always decoded off the async threads.
const BLOCKING_DECODE_BYTES: usize = 1024 * 1024;

/// Everything a request handler needs.
pub struct IngestState {
    pub path: String,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub frame: FrameOptions,
    pub challenge: String,
    pub auth: Option<TokenCheck>,
    pub buffer: Arc<Buffer>,
    pub metrics: Arc<Metrics>,
    pub in_flight: Arc<Semaphore>,
    pub budget: Arc<Semaphore>,
    pub health: Arc<Health>,
    pub tail: Arc<Tail>,
    /// Requests being handled (from their first byte of handling to their answer).
    active: AtomicUsize,
}

/// Counts one request as active while it lives (also when its handler is dropped early).
struct Active<'a>(&'a AtomicUsize);

impl<'a> Active<'a> {
    fn enter(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Active(n)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl IngestState {
    pub fn new(
        cfg: &Config,
        buffer: Arc<Buffer>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        tail: Arc<Tail>,
    ) -> Self {
        let ing = &cfg.ingest;
        let auth = ing.auth.as_ref().and_then(|a| {
            a.header
                .parse::<HeaderName>()
                .ok()
                .map(|h| TokenCheck::new(h, a.token.expose()))
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
            metrics,
            in_flight: Arc::new(Semaphore::new(ing.max_in_flight)),
            budget: Arc::new(Semaphore::new(budget_kib)),
            health,
            tail,
            active: AtomicUsize::new(0),
        }
    }

    /// No request is being handled: once readiness refuses new batches (draining), none of the
    /// batches already taken is still on its way into the buffer.
    pub fn idle(&self) -> bool {
        self.active.load(Ordering::SeqCst) == 0
    }
}

/// `GET /.well-known/fastly/logging/challenge`.
pub async fn challenge(State(s): State<Arc<IngestState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], s.challenge.clone()).into_response()
}

/// `POST` (or `PUT`) of one batch.
pub async fn handler(
    State(s): State<Arc<IngestState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let _active = Active::enter(&s.active);
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
                    tracing::error!(error = %detail, "batch not stored; answered 500")
                }
                other => tracing::debug!(reason = other.reason(), "batch refused: {other}"),
            }
            e.into_response()
        }
    }
}

/// Runs the decoder, turning a panic into a storage error (answered 500 and counted) instead of
/// a dropped connection.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, IngestError> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| IngestError::Storage(Internal::DecoderPanicked))
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
    if s.health.shutting_down() {
        return Err(IngestError::ShuttingDown);
    }
    if s.health.draining() {
        return Err(IngestError::Draining);
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
    let big = raw.len() >= BLOCKING_DECODE_BYTES
        || !matches!(
            decode::select_codec(encoding.as_deref(), &raw),
            Ok(decode::Codec::Identity)
        );
    let decode = move |mut held: Budget| {
        let framed = guarded(|| {
            decode::decode_body(encoding.as_deref(), raw, limit, &frame, &mut |n| {
                held.grow_by(n)
            })
        });
        (framed, held)
    };
    let (framed, _held) = if big {
        tokio::task::spawn_blocking(move || decode(held))
            .await
            .map_err(|e| IngestError::Storage(Internal::DecoderTask(e)))?
    } else {
        decode(held)
    };
    let Framed {
        batch,
        oversized,
        stripped,
        ..
    } = framed??;

    let lines = batch.len() as u64;
    let bytes = batch.line_bytes() as u64;
    // The batch is kept whole or not at all: only once the buffer holds it is anything counted
    // or shown.
    let shown = s.tail.watching().then(|| batch.clone());
    s.buffer.append(batch).await?;
    if let Some(b) = shown {
        s.tail.publish(&b);
    }
    if oversized > 0 {
        s.metrics.ingest_long_lines.add(oversized as u64);
    }
    s.metrics.ingest_prefix_stripped.add(stripped as u64);
    s.metrics.ingest_batches.inc();
    s.metrics.ingest_lines.add(lines);
    s.metrics.ingest_line_bytes.add(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::http::routes::{router, App};
    use axum::http::Request as HttpRequest;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    struct Fixture {
        state: Arc<IngestState>,
        app: App,
        _dir: tempfile::TempDir,
    }

    fn fixture(extra: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tmp");
        let buffer = if extra.contains("buffer:") {
            ""
        } else {
            "buffer: {type: memory}\n"
        };
        let yaml = format!(
            "fastly: {{service_ids: [\"SVC1\", \"*\"]}}\noutput: {{stdout: {{}}}}\n{buffer}\
             dead_letter: {{path: {}}}\ningest: {{auth: {{header: X-Token, token: sekret}}, max_body_bytes: 1000, max_in_flight_bytes: 100000, max_line_bytes: 50}}\n{extra}",
            dir.path().join("dead.ndjson").display()
        );
        let cfg = Config::from_yaml(&yaml, &|_| None).expect("config");
        let metrics = Arc::new(Metrics::default());
        let buffer = Arc::new(Buffer::open(&cfg.buffer, metrics.clone()).expect("buffer"));
        let tail = Arc::new(Tail::new(metrics.clone()));
        let health = Arc::new(Health::new(metrics.clone()));
        health.started();
        let state = Arc::new(IngestState::new(
            &cfg,
            buffer.clone(),
            metrics.clone(),
            health.clone(),
            tail.clone(),
        ));
        let app = App {
            ingest: state.clone(),
            tail,
            observer: Arc::new(crate::admin::status::Observer::new(
                metrics.clone(),
                health,
                Arc::new(crate::health::Delivery::new(
                    cfg.delivery_alert_after,
                    metrics,
                )),
                buffer,
                Vec::new(),
                cfg.dead_letter.path.clone(),
            )),
            drain: Arc::new(crate::admin::drain::Drain::default()),
            admin_token: None,
        };
        Fixture {
            state,
            app,
            _dir: dir,
        }
    }

    async fn call(f: &Fixture, req: HttpRequest<Body>) -> (StatusCode, HeaderMap, String) {
        let resp = router(f.app.clone()).oneshot(req).await.expect("response");
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
        let e = f.state.buffer.next(0).await.expect("entry");
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

    #[test]
    fn a_panic_in_the_decoder_is_a_storage_error_not_a_dropped_connection() {
        let r: Result<(), IngestError> = guarded(|| panic!("decoder bug"));
        let e = r.expect_err("caught");
        assert_eq!(e.reason(), "storage");
        assert_eq!(
            e.into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(guarded(|| 7).ok(), Some(7));
    }

    #[tokio::test]
    async fn too_long_lines_travel_with_their_batch_and_are_counted() {
        let f = fixture("");
        let long = "L".repeat(60);
        let req = post(())
            .body(Body::from(format!("ok1\n{long}\nok2\n")))
            .expect("req");
        assert_eq!(call(&f, req).await.0, StatusCode::NO_CONTENT);
        let e = f.state.buffer.next(0).await.expect("entry");
        assert_eq!(
            e.batch.len(),
            3,
            "kept whole; the output side sets the long line aside"
        );
        assert_eq!(f.state.metrics.ingest_long_lines.get(), 1);
    }

    #[tokio::test]
    async fn a_refused_batch_keeps_nothing_and_shows_nothing() {
        let f = fixture("buffer: {type: memory, max_bytes: 1000}\n");
        let mut watcher = f.state.tail.subscribe();
        let first = post(())
            .body(Body::from(format!("{}\n", "x".repeat(29)).repeat(20)))
            .expect("req");
        assert_eq!(call(&f, first).await.0, StatusCode::NO_CONTENT);
        assert!(watcher.try_recv().is_ok(), "a stored batch is shown");
        let long = "L".repeat(60);
        let refused = post(())
            .body(Body::from(format!("ok1\n{long}\n{}\n", "y".repeat(400))))
            .expect("req");
        let (status, headers, _) = call(&f, refused).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key(header::RETRY_AFTER));
        assert!(
            watcher.try_recv().is_err(),
            "nothing of the refused batch on the tail"
        );
        assert_eq!(
            f.state.metrics.ingest_long_lines.get(),
            0,
            "its long line is not counted as set aside"
        );
        assert_eq!(f.state.metrics.ingest_lines.get(), 20);
        assert!(
            !f._dir.path().join("dead.ndjson").exists(),
            "nothing of it in the dead-letter file"
        );
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let f = fixture("");
        let get = |p: &str| HttpRequest::get(p).body(Body::empty()).expect("req");
        assert_eq!(call(&f, get("/healthz")).await.0, StatusCode::OK);
        assert_eq!(
            call(&f, get("/readyz")).await.0,
            StatusCode::OK,
            "no output reports a problem"
        );
        assert_eq!(call(&f, get("/delivery")).await.0, StatusCode::OK);
        // An output that is down is a delivery problem, never a readiness one: the buffer takes
        // the batches meanwhile.
        f.app
            .observer
            .delivery
            .set_problem("aws_kinesis", "Kinesis unreachable: x".into());
        let (status, _, body) = call(&f, get("/readyz")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.starts_with("ready\n"), "{body}");
        let (status, _, body) = call(&f, get("/delivery")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.starts_with("not delivering: aws_kinesis: Kinesis unreachable: x\n"),
            "{body}"
        );
        assert_eq!(
            call(&f, post(()).body(Body::from("x")).expect("req"))
                .await
                .0,
            StatusCode::NO_CONTENT,
            "batches are taken while an output is down"
        );
        f.app.observer.delivery.clear("aws_kinesis");
        assert_eq!(call(&f, get("/delivery")).await.0, StatusCode::OK);
        // The buffer refusing batches is a readiness problem.
        f.state
            .health
            .set_problem("buffer", "the buffer's disk is full".into());
        let (status, _, body) = call(&f, get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.starts_with("not ready: buffer: the buffer's disk is full\n"),
            "{body}"
        );
        f.state.health.clear("buffer");
        assert_eq!(call(&f, get("/readyz")).await.0, StatusCode::OK);
        // Draining: not ready, and batches are refused with a time to come back.
        f.state.health.start_draining();
        let (status, _, body) = call(&f, get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.starts_with("not ready: draining\n"), "{body}");
        let (status, headers, body) = call(&f, post(()).body(Body::from("x")).expect("req")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.starts_with("draining"), "{body}");
        assert!(headers.contains_key(header::RETRY_AFTER));
        f.state.health.start_shutdown();
        let (status, _, body) = call(&f, get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting down"));
        let (status, _, body) = call(&f, post(()).body(Body::from("x")).expect("req")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("shutting down"));
        assert_eq!(
            call(&f, get("/metrics")).await.0,
            StatusCode::NOT_FOUND,
            "no admin routes on the listener facing Fastly without a token"
        );
        let resp = crate::http::routes::admin_router(&f.app)
            .oneshot(get("/metrics"))
            .await
            .expect("response");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ct")
            .starts_with("application/openmetrics-text"));
        assert!(
            body.contains("edgelog_ingest_rejections_total{reason=\"shutting_down\"} 1"),
            "{body}"
        );
    }
}
