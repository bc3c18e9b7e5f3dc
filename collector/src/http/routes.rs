//! The route tables of the two listeners, with every answer counted by status. The listener
//! that faces Fastly serves the challenge, the ingest path, `/healthz` and `/readyz` to anyone,
//! and the admin routes (`admin`) only behind the tail token; the admin listener serves health,
//! readiness and the admin routes.
//!
//! `/readyz` answers 200 `ready` or 503 `not ready: <reason>` (one line per reason the collector
//! would refuse a batch: starting, draining, shutting down, the buffer full, its disk full, its
//! ack position not saved); `/delivery` answers 200 `delivering` or 503 `not delivering:
//! <output>: <reason>`. Both are followed by the delivery lag: in total, lines and entries read
//! from the buffer and not yet delivered and the age of the oldest one; then per output
//! (`output.<name>.lag_entries`, `lag_bytes`, `oldest_seconds`), what it has not yet delivered.

use crate::admin;
use crate::admin::drain::Drain;
use crate::admin::status::Observer;
use crate::admin::tail::Tail;
use crate::http::auth::TokenCheck;
use crate::ingest::{self, challenge, IngestState};
use crate::metrics::Metrics;
use axum::extract::{Request, State};
use axum::http::StatusCode;
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
    pub observer: Arc<Observer>,
    pub drain: Arc<Drain>,
    /// The token that opens the admin routes on the listener facing Fastly; `None`: they are
    /// only on the admin listener.
    pub admin_token: Option<TokenCheck>,
}

/// The routes of the listener that faces Fastly: the challenge, ingest, health and readiness
/// open; the admin routes only behind the token.
pub fn router(app: App) -> Router {
    let ingest_routes = Router::new()
        .route(challenge::PATH, get(ingest::challenge))
        .route(&app.ingest.path, post(ingest::handler).put(ingest::handler))
        .with_state(app.ingest.clone());
    let mut r = health_routes(&app.observer).merge(ingest_routes);
    if let Some(check) = app.admin_token.clone() {
        r = r.merge(admin::guarded(
            app.observer.clone(),
            app.tail.clone(),
            app.drain.clone(),
            check,
        ));
    }
    finish(r, &app.observer.metrics)
}

/// The routes of the admin listener: health, readiness and the admin routes, open.
pub fn admin_router(app: &App) -> Router {
    let r = health_routes(&app.observer).merge(admin::router(
        app.observer.clone(),
        app.tail.clone(),
        app.drain.clone(),
    ));
    finish(r, &app.observer.metrics)
}

fn health_routes(observer: &Arc<Observer>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/delivery", get(delivery))
        .with_state(observer.clone())
}

fn finish(r: Router, metrics: &Arc<Metrics>) -> Router {
    r.fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(middleware::from_fn_with_state(
            metrics.clone(),
            count_status,
        ))
}

async fn count_status(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    m.http_requests.inc(resp.status().as_str());
    resp
}

async fn readyz(State(o): State<Arc<Observer>>) -> Response {
    let (status, mut body) = match o.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", reasons.replace('\n', "\nnot ready: ")),
        ),
    };
    lag_lines(&o, &mut body);
    (status, body).into_response()
}

async fn delivery(State(o): State<Arc<Observer>>) -> Response {
    let (status, mut body) = match o.delivery_verdict() {
        Ok(()) => (StatusCode::OK, "delivering\n".to_string()),
        Err(reasons) => (
            StatusCode::SERVICE_UNAVAILABLE,
            reasons
                .iter()
                .map(|r| format!("not delivering: {r}\n"))
                .collect(),
        ),
    };
    lag_lines(&o, &mut body);
    (status, body).into_response()
}

/// The delivery lag, in total and per output, one `key: value` per line.
fn lag_lines(o: &Observer, body: &mut String) {
    if o.outputs.is_empty() {
        return;
    }
    let lags: Vec<_> = o.outputs.iter().map(|(_, a)| a.lag()).collect();
    let _ = writeln!(
        body,
        "buffered_entries: {}\nbuffered_bytes: {}\npending_lines: {}\npending_entries: {}\noldest_pending_seconds: {:.3}",
        o.metrics.buffer_entries.get(),
        o.metrics.buffer_bytes.get(),
        lags.iter().map(|l| l.lines).sum::<usize>(),
        lags.iter().map(|l| l.entries).sum::<usize>(),
        lags.iter().map(|l| l.oldest_age).max().unwrap_or_default().as_secs_f64()
    );
    for ((name, acks), lag) in o.outputs.iter().zip(&lags) {
        let (entries, bytes) = acks.buffer_lag();
        let _ = writeln!(
            body,
            "output.{name}.lag_entries: {entries}\noutput.{name}.lag_bytes: {bytes}\noutput.{name}.oldest_seconds: {:.3}",
            lag.oldest_age.as_secs_f64()
        );
    }
}
