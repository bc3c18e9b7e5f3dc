//! A no-op S3 server for benchmarks: answers HeadBucket, PutObject, CreateMultipartUpload,
//! UploadPart, CompleteMultipartUpload and AbortMultipartUpload as S3 does, keeps nothing, and
//! counts requests and bytes. The real store (s3s-fs) writes every object to disk and would be
//! what the benchmark measured.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct S3StubStats {
    pub requests: AtomicU64,
    pub objects: AtomicU64,
    pub parts: AtomicU64,
    pub bytes: AtomicU64,
    /// Each request's method, query and `x-amz-*` / `content-type` headers, for tests.
    pub seen: std::sync::Mutex<Vec<SeenRequest>>,
}

#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Starts the stub on a free loopback port; returns its URL and its counters.
pub async fn spawn_s3_stub() -> (String, Arc<S3StubStats>) {
    let stats = Arc::new(S3StubStats::default());
    let app = Router::new().fallback(handle).with_state(stats.clone());
    let (addr, _task) = crate::procs::serve_on_loopback(app).await;
    (format!("http://{addr}"), stats)
}

async fn handle(State(stats): State<Arc<S3StubStats>>, req: Request) -> Response {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    if let Ok(mut seen) = stats.seen.lock() {
        seen.push(SeenRequest {
            method: method.to_string(),
            path: req.uri().path().to_string(),
            query: query.clone(),
            headers: req
                .headers()
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("x-amz-") || k.as_str() == "content-type")
                .filter(|(k, _)| !matches!(k.as_str(), "x-amz-date" | "x-amz-content-sha256"))
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
        });
        // A benchmark sends many; only the first thousand are kept.
        seen.truncate(1000);
    }
    let mut body = req.into_body().into_data_stream();
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => n += c.len() as u64,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    }
    stats.bytes.fetch_add(n, Ordering::Relaxed);
    let xml = |s: String| {
        Response::builder()
            .header("content-type", "application/xml")
            .body(Body::from(s))
            .unwrap_or_default()
    };
    let has = |k: &str| {
        query
            .split('&')
            .any(|p| p == k || p.starts_with(&format!("{k}=")))
    };
    match method {
        Method::POST if has("uploads") => xml(
            "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>stub-upload</UploadId></InitiateMultipartUploadResult>"
                .into(),
        ),
        Method::POST if has("uploadId") => {
            stats.objects.fetch_add(1, Ordering::Relaxed);
            xml("<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>\"e\"</ETag></CompleteMultipartUploadResult>".into())
        }
        Method::PUT if has("partNumber") => {
            stats.parts.fetch_add(1, Ordering::Relaxed);
            ([("etag", "\"part\"")], "").into_response()
        }
        Method::PUT => {
            stats.objects.fetch_add(1, Ordering::Relaxed);
            ([("etag", "\"object\"")], "").into_response()
        }
        Method::DELETE => StatusCode::NO_CONTENT.into_response(),
        _ => StatusCode::OK.into_response(),
    }
}
