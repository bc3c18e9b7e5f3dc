//! The route table: Fastly's challenge, the ingest path, health, readiness, metrics and the
//! live tail, with every answer counted by status.
//!
//! `/readyz` answers 200 `ready` or 503 `not ready: <reason>` (one line per output with a
//! problem), followed in both cases by the delivery lag: in total, lines and entries read from the
//! buffer and not yet delivered and the age of the oldest one; then per output
//! (`output.<name>.lag_entries`, `lag_bytes`, `oldest_seconds`), what it has not yet delivered.

use crate::health::Health;
use crate::ingest::{self, challenge, IngestState};
use crate::metrics::Metrics;
use crate::output::acks::Acks;
use crate::tail::{self, Tail};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::fmt::Write;
use std::sync::Arc;

/// What the routes serve.
#[derive(Clone)]
pub struct App {
    pub ingest: Arc<IngestState>,
    pub tail: Arc<Tail>,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    /// Each output's delivery accounting, for the lag `/readyz` and `/metrics` report.
    pub outputs: Vec<(String, Arc<Acks>)>,
}

/// The collector's routes.
pub fn router(app: App) -> Router {
    let ingest_routes = Router::new()
        .route(challenge::PATH, get(ingest::challenge))
        .route(&app.ingest.path, post(ingest::handler).put(ingest::handler))
        .with_state(app.ingest.clone());
    let mut r = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app.clone())
        .merge(ingest_routes);
    if app.tail.enabled() {
        r = r.merge(
            Router::new()
                .route(tail::PATH, get(tail::handler))
                .with_state(app.tail.clone()),
        );
    }
    r.fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(middleware::from_fn_with_state(
            app.metrics.clone(),
            count_status,
        ))
}

async fn count_status(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    m.http_requests.inc(resp.status().as_str());
    resp
}

async fn readyz(State(app): State<App>) -> Response {
    let (status, mut body) = match app.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", reasons.replace('\n', "\nnot ready: ")),
        ),
    };
    if !app.outputs.is_empty() {
        let lags: Vec<_> = app.outputs.iter().map(|(_, a)| a.lag()).collect();
        let _ = writeln!(
            body,
            "buffered_entries: {}\nbuffered_bytes: {}\npending_lines: {}\npending_entries: {}\noldest_pending_seconds: {:.3}",
            app.metrics.buffer_entries.get(),
            app.metrics.buffer_bytes.get(),
            lags.iter().map(|l| l.lines).sum::<usize>(),
            lags.iter().map(|l| l.entries).sum::<usize>(),
            lags.iter().map(|l| l.oldest_age).max().unwrap_or_default().as_secs_f64()
        );
        for ((name, acks), lag) in app.outputs.iter().zip(&lags) {
            let (entries, bytes) = acks.buffer_lag();
            let _ = writeln!(
                body,
                "output.{name}.lag_entries: {entries}\noutput.{name}.lag_bytes: {bytes}\noutput.{name}.oldest_seconds: {:.3}",
                lag.oldest_age.as_secs_f64()
            );
        }
    }
    (status, body).into_response()
}

async fn metrics(State(app): State<App>) -> Response {
    let mut oldest = std::time::Duration::ZERO;
    for (name, acks) in &app.outputs {
        let age = acks.lag().oldest_age;
        oldest = oldest.max(age);
        let (entries, bytes) = acks.buffer_lag();
        let m = &app.metrics;
        m.output_lag_entries.set(name, entries as i64);
        m.output_lag_bytes.set(name, bytes as i64);
        m.output_lag_oldest_ms.set(name, age.as_millis() as i64);
    }
    if !app.outputs.is_empty() {
        app.metrics
            .output_oldest_pending_ms
            .set(oldest.as_millis() as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}
