//! The admin routes: the status page, `GET /status` (JSON), `/metrics`, the live tail and
//! `POST /drain`.
//!
//! They are served on the admin listener (`admin.listen`, localhost by default) to anyone who
//! can reach it, and, when `tail.token` is set, also on the listener that faces Fastly, to
//! clients presenting that token (its header, or as the password of HTTP Basic authentication so
//! a browser can log in). A wrong or missing token is answered 401 and counted
//! (`edgelog_admin_unauthorized_total`). The page is one file inside the binary (markup, style
//! and script inline, nothing fetched from elsewhere, as its Content-Security-Policy enforces).

pub(crate) mod answers;
pub(crate) mod drain;
pub(crate) mod status;
pub(crate) mod tail;

use self::drain::Drain;
use self::status::Observer;
use self::tail::Tail;
use crate::http::auth::TokenCheck;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The status page.
pub const PAGE_PATH: &str = "/";
pub const STATUS_PATH: &str = "/status";
pub const METRICS_PATH: &str = "/metrics";

const PAGE: &str = include_str!("page.html");

/// What the page may load: only itself and the collector's own endpoints.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The admin routes, open to whoever reaches them.
pub fn router(observer: Arc<Observer>, tail: Arc<Tail>, drain: Arc<Drain>) -> Router {
    Router::new()
        .route(drain::PATH, post(drain::handler))
        .with_state((drain, observer.clone()))
        .merge(
            Router::new()
                .route(PAGE_PATH, get(page))
                .route(STATUS_PATH, get(status))
                .route(METRICS_PATH, get(metrics))
                .with_state(observer),
        )
        .merge(
            Router::new()
                .route(tail::PATH, get(tail::handler))
                .with_state(tail),
        )
}

/// The admin routes, each asking for the token first.
pub fn guarded(
    observer: Arc<Observer>,
    tail: Arc<Tail>,
    drain: Arc<Drain>,
    check: TokenCheck,
) -> Router {
    let metrics = observer.metrics.clone();
    router(observer, tail, drain).layer(middleware::from_fn(move |req: Request, next: Next| {
        let check = check.clone();
        let metrics = metrics.clone();
        async move {
            if check.allows_header_or_basic(req.headers()) {
                return next.run(req).await;
            }
            metrics.admin_unauthorized.inc();
            (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"edgelog\", charset=\"UTF-8\""),
                )],
                "missing or wrong token\n",
            )
                .into_response()
        }
    }))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
        .into_response()
}

async fn status(State(o): State<Arc<Observer>>) -> Response {
    match serde_json::to_vec(&o.status()) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the status");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the status\n",
            )
                .into_response()
        }
    }
}

async fn metrics(State(o): State<Arc<Observer>>) -> Response {
    o.update_metrics();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        o.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::Buffer;
    use crate::config::BufferConfig;
    use crate::health::{Delivery, Health};
    use crate::metrics::Metrics;
    use axum::body::Body;
    use axum::http::{HeaderName, Request as HttpRequest};
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tower::ServiceExt;

    fn routes() -> (Router, Router, Arc<Metrics>) {
        let (guarded, open, metrics, _, _) = parts();
        (guarded, open, metrics)
    }

    fn parts() -> (Router, Router, Arc<Metrics>, Arc<Drain>, Arc<Observer>) {
        let metrics = Arc::new(Metrics::default());
        let buffer = Arc::new(
            Buffer::open(&BufferConfig::for_tests(1 << 20), metrics.clone()).expect("buffer"),
        );
        let acks = Arc::new(crate::output::acks::Acks::new(
            buffer.clone(),
            0,
            None,
            metrics.clone(),
        ));
        let health = Arc::new(Health::new(metrics.clone()));
        health.started();
        let observer = Arc::new(Observer::new(
            metrics.clone(),
            health,
            Arc::new(Delivery::new(Duration::from_secs(300), metrics.clone())),
            buffer,
            vec![("aws_kinesis".into(), acks)],
            std::path::PathBuf::from("dead.ndjson"),
        ));
        let tail = Arc::new(Tail::new(metrics.clone()));
        let drain = Arc::new(Drain::default());
        let check = TokenCheck::new(HeaderName::from_static("x-edgelog-tail-token"), "t0ken");
        (
            guarded(observer.clone(), tail.clone(), drain.clone(), check),
            router(observer.clone(), tail, drain.clone()),
            metrics,
            drain,
            observer,
        )
    }

    async fn call(
        r: &Router,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String, String) {
        let mut req = HttpRequest::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = r
            .clone()
            .oneshot(req.body(Body::empty()).expect("req"))
            .await
            .expect("response");
        let status = resp.status();
        let extra = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .or(resp.headers().get(header::CONTENT_SECURITY_POLICY))
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, extra, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_wrong_or_missing_token_is_401_and_counted_on_every_admin_route() {
        let (guarded, _, metrics) = routes();
        let mut refused = 0;
        for path in ["/", "/status", "/metrics", "/tail"] {
            for headers in [
                vec![],
                vec![("x-edgelog-tail-token", "wrong")],
                vec![("authorization", "Basic YWRtaW46d3Jvbmc=")],
            ] {
                let (status, auth, _) = call(&guarded, path, &headers).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {headers:?}");
                assert!(auth.starts_with("Basic realm="), "{auth}");
                refused += 1;
                assert_eq!(metrics.admin_unauthorized.get(), refused);
            }
        }
        let (status, _, body) =
            call(&guarded, "/status", &[("x-edgelog-tail-token", "t0ken")]).await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["outputs"][0]["name"], "aws_kinesis");
        assert_eq!(v["errors"]["admin"]["unauthorized"], refused);
        // "admin:t0ken", as a browser sends it.
        let (status, csp, body) = call(
            &guarded,
            "/",
            &[("authorization", "Basic YWRtaW46dDBrZW4=")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(body.contains("<title>edgelog collector</title>"));
    }

    #[tokio::test]
    async fn the_admin_listener_needs_no_token_and_bad_tail_filters_are_400() {
        let (_, open, metrics) = routes();
        for path in ["/", "/status", "/metrics"] {
            assert_eq!(call(&open, path, &[]).await.0, StatusCode::OK, "{path}");
        }
        let long = format!(
            "/tail?filter={}",
            "x".repeat(crate::config::MAX_TAIL_FILTER_BYTES + 1)
        );
        for (path, says) in [
            ("/tail?filter=geo..country%3DUS", "empty part"),
            ("/tail?filter=a%0Ab", "control character"),
            (long.as_str(), "over the most"),
            ("/tail?filter=a&filter=b", "give filter once"),
        ] {
            let (status, _, body) = call(&open, path, &[]).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
            assert!(body.contains(says), "{path}: {body}");
        }
        assert_eq!(metrics.tail_filters_refused.get(), 4);
        assert_eq!(metrics.admin_unauthorized.get(), 0);
    }

    /// The first chunk of a `POST` answer, and the rest of it once it ends.
    async fn post(
        r: &Router,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String, axum::body::Body) {
        let mut req = HttpRequest::post(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = r
            .clone()
            .oneshot(req.body(Body::empty()).expect("req"))
            .await
            .expect("response");
        let status = resp.status();
        let mut body = resp.into_body();
        let first = body
            .frame()
            .await
            .and_then(|f| f.ok())
            .and_then(|f| f.into_data().ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        (status, first, body)
    }

    #[tokio::test]
    async fn drain_needs_the_token_on_the_main_listener_and_streams_until_drained() {
        let (guarded, open, metrics, drain, observer) = parts();
        for headers in [vec![], vec![("x-edgelog-tail-token", "wrong")]] {
            let (status, _, _) = post(&guarded, "/drain", &headers).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(metrics.admin_unauthorized.get(), 2);
        assert!(
            !observer.health.draining(),
            "a refused drain changes nothing"
        );
        let (status, first, body) =
            post(&guarded, "/drain", &[("x-edgelog-tail-token", "t0ken")]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            first.starts_with("draining: batches are refused"),
            "{first}"
        );
        assert!(observer.health.draining());
        assert_eq!(observer.health.readiness(), Err("draining".into()));
        let (status, again, _) = post(&open, "/drain", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, "already draining\n");
        drain.finished();
        let rest = body.collect().await.expect("body").to_bytes();
        let rest = String::from_utf8_lossy(&rest);
        assert!(
            rest.ends_with("drained: every line delivered or dead-lettered (aws_kinesis 0 lines); the collector exits\n"),
            "{rest}"
        );
    }
}
