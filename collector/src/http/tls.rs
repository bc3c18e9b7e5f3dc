//! TLS: the certificate, its key and the client CA, read from PEM files, and read again without
//! a restart on SIGHUP or when one of the files changes.
//!
//! Invariants: every new connection is handshaken with the newest configuration that loaded
//! whole; a connection already established keeps the one it started with; a reload that fails
//! (a file that is not PEM, a key that does not match its certificate, a CA that holds no
//! certificate) changes nothing, is logged naming the key and counted
//! (`edgelog_tls_reloads_total{result="failed"}`). At start the same failures are errors.

use crate::config::TlsConfig;
use crate::metrics::Metrics;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// Time allowed for a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the files are looked at for a change.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
#[error("tls.{key}: {reason}")]
pub struct TlsError {
    key: &'static str,
    reason: String,
}

fn error(key: &'static str, reason: impl std::fmt::Display) -> TlsError {
    TlsError {
        key,
        reason: reason.to_string(),
    }
}

/// Builds the TLS acceptor from PEM files.
pub fn acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| error("cert", e))?
        .collect::<Result<_, _>>()
        .map_err(|e| error("cert", e))?;
    if certs.is_empty() {
        return Err(error(
            "cert",
            format!("no PEM certificate in {}", cfg.cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| error("key", e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| error("cert", e))?;
    let builder = match &cfg.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| error("client_ca", e))? {
                roots
                    .add(c.map_err(|e| error("client_ca", e))?)
                    .map_err(|e| error("client_ca", e))?;
            }
            if roots.is_empty() {
                return Err(error(
                    "client_ca",
                    format!("no PEM certificate in {}", ca.display()),
                ));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| error("client_ca", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| error("key", format!("{e} (does it belong to tls.cert?)")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What identifies a file's content for the watcher: modification time, size, inode.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| {
        (
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            m.len(),
            m.ino(),
        )
    })
}

/// The TLS configuration in use, and what reloads it.
pub struct Tls {
    cfg: TlsConfig,
    current: RwLock<TlsAcceptor>,
    stamps: std::sync::Mutex<Vec<Stamp>>,
    metrics: Arc<Metrics>,
}

impl Tls {
    /// Loads the files; an error names the key whose file is wrong.
    pub fn load(cfg: &TlsConfig, metrics: Arc<Metrics>) -> Result<Arc<Tls>, TlsError> {
        let t = Tls {
            cfg: cfg.clone(),
            current: RwLock::new(acceptor(cfg)?),
            stamps: std::sync::Mutex::new(Vec::new()),
            metrics,
        };
        *t.stamps.lock().unwrap_or_else(|e| e.into_inner()) = t.stamps_now();
        Ok(Arc::new(t))
    }

    fn stamps_now(&self) -> Vec<Stamp> {
        [
            Some(&self.cfg.cert),
            Some(&self.cfg.key),
            self.cfg.client_ca.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|p| stamp(p))
        .collect()
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the files again; on success new connections use them, on failure nothing changes.
    pub fn reload(&self, why: &str) -> Result<(), TlsError> {
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = self.stamps_now();
        match acceptor(&self.cfg) {
            Ok(a) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = a;
                self.metrics.tls_reloads.inc("ok");
                tracing::info!(
                    why,
                    "tls: certificate, key and client CA reloaded; new connections use them"
                );
                Ok(())
            }
            Err(e) => {
                self.metrics.tls_reloads.inc("failed");
                tracing::error!(why, error = %e, "tls: reload refused; the previous certificate stays in use");
                Err(e)
            }
        }
    }

    /// Whether a file changed since it was last read.
    fn changed(&self) -> bool {
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) != self.stamps_now()
    }

    /// Reloads when a file changes, until dropped (aborted); SIGHUP is `run`'s (it calls
    /// [`Tls::reload`]).
    pub async fn watch(self: Arc<Self>) {
        let mut every = tokio::time::interval(WATCH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if self.changed() {
                let _ = self.reload("a file changed");
            }
        }
    }
}
