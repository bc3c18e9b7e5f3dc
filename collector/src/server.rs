//! The accept loop: plain HTTP or TLS (optionally requiring a client certificate), HTTP/1.1 and
//! HTTP/2, with timeouts for slow clients and a graceful shutdown.
//!
//! Invariants: a client that does not finish its TLS handshake or its request headers in time is
//! disconnected without holding a request slot; on shutdown the listener closes at once, requests
//! in flight are finished, and connections still open at the deadline are dropped.

use crate::config::TlsConfig;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Time allowed for a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("tls.{key}: {reason}")]
pub struct TlsError {
    key: &'static str,
    reason: String,
}

/// Builds the TLS acceptor from PEM files.
pub fn tls_acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let err = |key: &'static str| {
        move |e: &dyn std::fmt::Display| TlsError {
            key,
            reason: e.to_string(),
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| err("cert")(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| err("cert")(&e))?;
    if certs.is_empty() {
        return Err(TlsError {
            key: "cert",
            reason: format!("no certificate in {}", cfg.cert.display()),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| err("key")(&e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("cert")(&e))?;
    let builder = match &cfg.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| err("client_ca")(&e))? {
                roots
                    .add(c.map_err(|e| err("client_ca")(&e))?)
                    .map_err(|e| err("client_ca")(&e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| err("client_ca")(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| err("key")(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` until `shutdown` completes (yielding the drain deadline), then finishes the
/// requests in flight until that deadline. `header_timeout` bounds the time to send the headers.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = tokio::time::Instant>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
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
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let tls = tls.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        app.clone().oneshot(req.map(axum::body::Body::new))
                    });
                    match tls {
                        Some(acceptor) => {
                            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!("TLS handshake timed out");
                                    return;
                                }
                            };
                            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                            let _ = watcher.watch(conn).await;
                        }
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                            let _ = watcher.watch(conn).await;
                        }
                    }
                });
            }
            deadline = &mut shutdown => break deadline,
        }
    };
    drop(listener);
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open at the deadline were closed");
    }
}
