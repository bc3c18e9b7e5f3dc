//! A real HTTP origin on a free port, with routes that exercise what a proxy must pass through:
//! odd statuses, repeated headers, chunked bodies, large bodies, request echo.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A running origin; stops when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    /// Requests the origin has answered.
    pub hits: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body `/big/{n}` returns: deterministic, so tests can compare it byte for byte.
pub fn big_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"0123456789abcdef"[i % 16]).collect()
}

/// Starts the origin on 127.0.0.1 and a free port.
pub async fn spawn_origin() -> Origin {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = hits.clone();
    let app = Router::new()
        .route(
            "/hello",
            get(|| async { ([("x-origin", "yes")], "hello world\n") }),
        )
        .route("/echo", any(echo))
        .route("/status/{code}", get(status))
        .route("/chunked/{n}", get(chunked))
        .route(
            "/big/{n}",
            get(|Path(n): Path<usize>| async move { big_body(n) }),
        )
        .route("/headers", get(headers))
        .fallback(|| async { (StatusCode::OK, "fallback\n") })
        .layer(axum::middleware::from_fn(
            move |req: Request, next: axum::middleware::Next| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    next.run(req).await
                }
            },
        ));
    let (addr, task) = crate::procs::serve_on_loopback(app).await;
    Origin { addr, hits, task }
}

/// Returns the request body, and says in headers how it arrived.
async fn echo(headers: HeaderMap, body: Bytes) -> Response {
    let te = headers
        .get("transfer-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    let query_seen = headers.get("x-echo-tag").cloned();
    let mut resp = (
        StatusCode::OK,
        [
            ("content-type", "application/octet-stream".to_string()),
            ("x-received-bytes", body.len().to_string()),
            ("x-received-transfer-encoding", te),
        ],
        body,
    )
        .into_response();
    if let Some(tag) = query_seen {
        resp.headers_mut().insert("x-echo-tag", tag);
    }
    resp
}

async fn status(Path(code): Path<u16>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [("x-status", code.to_string())],
        format!("status {code}\n"),
    )
        .into_response()
}

/// `n` chunks of 1000 bytes with no Content-Length: the proxy has to stream and count.
async fn chunked(Path(n): Path<usize>) -> Response {
    let stream = futures::stream::iter(
        (0..n).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![b'a' + (i % 26) as u8; 1000]))),
    );
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn headers() -> Response {
    let mut resp = (StatusCode::IM_A_TEAPOT, "teapot\n").into_response();
    let h = resp.headers_mut();
    h.append("set-cookie", HeaderValue::from_static("a=1; Path=/"));
    h.append("set-cookie", HeaderValue::from_static("b=2; Path=/"));
    h.insert(
        "x-custom",
        HeaderValue::from_static("value with \"quotes\" and spaces"),
    );
    h.insert("cache-control", HeaderValue::from_static("max-age=60"));
    resp
}
