//! The accept loop: plain HTTP or TLS (optionally requiring a client certificate), HTTP/1.1 and
//! HTTP/2, with timeouts for slow clients and a graceful shutdown.
//!
//! Invariants: a client that does not finish its TLS handshake or its request headers in time is
//! disconnected without holding a request slot; a connection idle for `idle_timeout` (no request
//! in progress, no byte moving; HTTP/1 and HTTP/2 alike) is closed; at most `max_connections`
//! are open, and one more is answered 503 and closed; on shutdown the listener closes at once,
//! requests in flight are finished, and connections still open at the deadline are dropped.

use crate::http::conn::{self, Activity, Tracked};
use crate::http::tls::{Tls, HANDSHAKE_TIMEOUT};
use crate::metrics::Metrics;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// How long connections may take to close once asked to (idle, or shutting down).
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What each connection may hold, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Time to send a request's headers (HTTP/1).
    pub header_timeout: Duration,
    /// No request in progress and no byte moving for this long: the connection is closed.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
}

/// Serves `app` until `shutdown` completes (yielding the drain deadline), then finishes the
/// requests in flight until that deadline.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = tokio::time::Instant>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing_tx, closing_rx) = watch::channel(false);
    let check_every =
        (limits.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    tokio::pin!(shutdown);
    let deadline = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    metrics.connections_refused.inc();
                    tokio::spawn(conn::refuse(stream, tls.is_none()));
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let tls = tls.clone();
                let builder = builder.clone();
                let metrics = metrics.clone();
                let mut closing = closing_rx.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    metrics.connections_open.add(1);
                    let activity = Activity::default();
                    let service = {
                        let activity = activity.clone();
                        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                            let request = activity.request();
                            let call = app.clone().oneshot(req.map(axum::body::Body::new));
                            async move {
                                let resp = call.await?;
                                Ok::<_, std::convert::Infallible>(
                                    resp.map(|b| axum::body::Body::new(conn::Guarded::new(b, request))),
                                )
                            }
                        })
                    };
                    let io: Box<dyn Io> = match tls.map(|t| t.acceptor()) {
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => Box::new(s),
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                    metrics.connections_open.add(-1);
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!("TLS handshake timed out");
                                    metrics.connections_open.add(-1);
                                    return;
                                }
                            }
                        }
                        None => Box::new(stream),
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(Tracked::new(io, activity.clone())), service)
                        .into_owned();
                    tokio::pin!(conn);
                    let mut asked_at: Option<tokio::time::Instant> = None;
                    loop {
                        tokio::select! {
                            _ = conn.as_mut() => break,
                            _ = tokio::time::sleep(check_every), if asked_at.is_none() => {
                                if activity.idle_for(limits.idle_timeout) {
                                    metrics.connections_idle_closed.inc();
                                    conn.as_mut().graceful_shutdown();
                                    asked_at = Some(tokio::time::Instant::now());
                                }
                            }
                            _ = closing.changed(), if asked_at.is_none() => {
                                conn.as_mut().graceful_shutdown();
                                asked_at = Some(tokio::time::Instant::now());
                            }
                            _ = tokio::time::sleep_until(asked_at.map_or_else(tokio::time::Instant::now, |t| t + CLOSE_GRACE)), if asked_at.is_some() => {
                                // Asked to close and still open: drop it.
                                break;
                            }
                        }
                    }
                    metrics.connections_open.add(-1);
                });
            }
            deadline = &mut shutdown => break deadline,
        }
    };
    drop(listener);
    let _ = closing_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout_at(deadline, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open at the deadline were closed");
    }
}

/// A plain or TLS stream.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}
