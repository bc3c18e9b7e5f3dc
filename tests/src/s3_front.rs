//! A fault-injecting front for the S3-compatible store: forwards every request unchanged (the
//! Host header too, so the signature still holds) and answers a share of them `503 SlowDown` as
//! S3 does when a prefix gets more requests than it takes. The store itself cannot push back.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct S3Front {
    pub endpoint: String,
    /// Requests answered SlowDown, and forwarded.
    pub slowed: Arc<AtomicU64>,
    pub forwarded: Arc<AtomicU64>,
    _task: crate::procs::AbortOnDrop,
}

#[derive(Clone)]
struct FrontState {
    upstream: String,
    http: reqwest::Client,
    /// One request in `every` is answered SlowDown.
    every: u64,
    seen: Arc<AtomicU64>,
    slowed: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
}

/// Starts the front on a free port before `upstream`; one request in `every` gets SlowDown.
pub async fn spawn_s3_front(upstream: &str, every: u64) -> S3Front {
    let state = FrontState {
        upstream: upstream.to_string(),
        http: reqwest::Client::new(),
        every: every.max(1),
        seen: Arc::default(),
        slowed: Arc::default(),
        forwarded: Arc::default(),
    };
    let (slowed, forwarded) = (state.slowed.clone(), state.forwarded.clone());
    let app = Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state);
    let (addr, task) = crate::procs::serve_on_loopback(app).await;
    S3Front {
        endpoint: format!("http://{addr}"),
        slowed,
        forwarded,
        _task: crate::procs::AbortOnDrop(task),
    }
}

async fn handle(State(st): State<FrontState>, req: Request) -> Response {
    let n = st.seen.fetch_add(1, Ordering::Relaxed) + 1;
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    // The start-up check (the first two requests) goes through; then one in `every` is slowed.
    if n > 3 && n % st.every == 0 {
        st.slowed.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>1</RequestId></Error>",
        )
            .into_response();
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut fwd = st
        .http
        .request(parts.method.clone(), format!("{}{path}", st.upstream))
        .body(body);
    for (k, v) in &parts.headers {
        fwd = fwd.header(k, v);
    }
    let Ok(resp) = fwd.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    st.forwarded.fetch_add(1, Ordering::Relaxed);
    let mut out = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
            out = out.header(k.as_str(), v);
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    out.body(Body::from(bytes)).unwrap_or_default()
}
