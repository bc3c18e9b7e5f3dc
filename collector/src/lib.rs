//! edgelog's collector: receives Fastly HTTPS log streaming batches and forwards every line to
//! Amazon Kinesis Data Streams and an S3-compatible archive.
//!
//! Data path: `ingest` (HTTP, challenge, auth, decoding) -> `buffer` (durable, bounded) ->
//! `output` (one driver per output, each reading the buffer at its own pace: batching,
//! partitioning, pacing, retries) -> Kinesis, S3, stdout or a file. `deadletter` keeps what cannot
//! be delivered (`replay` sends it again), `ledger` says where every line is (kept by the
//! buffer), `metrics` counts everything, `health` answers readiness, `status` puts it together
//! for `/status` and the page (`admin`, `status_table`), `tail` streams lines live, `routes` is
//! the route table and `server` the listener. [`run`] wires them and is what both `main` and the
//! tests start, on a listener they bind (the admin listener it binds itself, from the
//! configuration).

pub mod admin;
pub mod auth;
pub mod buffer;
pub mod config;
pub mod conn;
pub mod deadletter;
pub mod fastly_setup;
pub mod health;
pub mod ingest;
pub mod ledger;
pub mod lines;
pub mod metrics;
pub mod output;
pub mod ratelimit;
pub mod redact;
pub mod replay;
pub mod routes;
pub mod server;
pub mod status;
pub mod status_table;
pub mod tail;
pub mod tls;

use buffer::{Buffer, BufferError};
use config::{BufferKind, Config, OutputConfig};
use deadletter::DeadLetter;
use health::Health;
use ingest::IngestState;
use metrics::Metrics;
use output::error::OutputError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Most bytes of a disk buffer read ahead of the output's acknowledgements.
const DISK_READ_AHEAD_BYTES: usize = 64 * 1024 * 1024;
/// How often the disk buffer's acknowledgement watermark is saved.
const ACK_PERSIST_EVERY: Duration = Duration::from_millis(100);
/// The name the buffer's state has in `/readyz`.
const BUFFER_NAME: &str = "buffer";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("buffer: {0}")]
    Buffer(#[from] BufferError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("admin.listen: cannot bind {0}: {1}")]
    AdminListen(String, std::io::Error),
}

/// A running collector's shared parts, for tests that look inside.
#[derive(Clone)]
pub struct Handles {
    pub metrics: Arc<Metrics>,
    pub buffer: Arc<Buffer>,
    /// Where the admin listener listens, when it is on.
    pub admin: Option<std::net::SocketAddr>,
}

/// Runs the collector on `listener` until `shutdown` completes, then stops accepting, finishes the
/// requests in flight, and flushes the buffer to the output until `shutdown_timeout` has passed;
/// what is left stays in the (disk) buffer for the next start.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    run_with(config, listener, shutdown, |_| {}).await
}

/// [`run`], handing the shared parts to `inspect` once started.
pub async fn run_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    inspect: impl FnOnce(Handles),
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    for w in &config.warnings {
        tracing::warn!("config: {w}");
    }
    let limits = server::Limits {
        header_timeout: config.ingest.header_timeout,
        idle_timeout: config.ingest.idle_timeout,
        max_connections: match conn::raise_descriptor_limit() {
            Ok((before, after)) => {
                let cap = conn::connection_cap(config.ingest.max_connections, after);
                tracing::info!(
                    descriptor_limit_before = before,
                    descriptor_limit = after,
                    max_connections = cap,
                    "descriptor limit raised to the hard limit; connections capped under it"
                );
                cap
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the descriptor limit");
                config.ingest.max_connections
            }
        },
    };
    let tls = config
        .tls
        .as_ref()
        .map(|c| tls::Tls::load(c, metrics.clone()))
        .transpose()?;
    let tls_watcher = tls.clone().map(|t| tokio::spawn(t.watch()));
    let lanes: Vec<buffer::Lane> = config.outputs.iter().map(|o| o.name().into()).collect();
    let buffer = Arc::new(Buffer::open_lanes(&config.buffer, &lanes, metrics.clone())?);
    let rec = buffer.recovery();
    if rec.entries > 0 || rec.corrupt_entries > 0 {
        tracing::info!(
            entries = rec.entries,
            bytes = rec.bytes,
            corrupt_entries = rec.corrupt_entries,
            "buffer: resending what a previous run left undelivered"
        );
    }
    if rec.corrupt_entries > 0 {
        tracing::warn!(
            corrupt_entries = rec.corrupt_entries,
            damaged_regions = rec.damaged_regions,
            unreadable_segments = rec.unreadable_segments.len(),
            "buffer: entries lost to damage (torn, failing their checksum, or in a segment that could not be read)"
        );
    }
    let dead = Arc::new(DeadLetter::new(&config.dead_letter, metrics.clone()));
    let admin_listener = match &config.admin_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| RunError::AdminListen(addr.clone(), e))?,
        ),
        None => None,
    };
    let health = Arc::new(Health::new(metrics.clone()));
    let shared = output::start::Shared {
        buffer: buffer.clone(),
        dead: dead.clone(),
        health: health.clone(),
        metrics: metrics.clone(),
        retry: config.retry,
        max_line_bytes: config.ingest.max_line_bytes,
        buffer_max_bytes: config.buffer.max_bytes,
    };
    let mut drivers = Vec::new();
    let mut outputs = Vec::new();
    for (lane, out) in config.outputs.iter().enumerate() {
        let read_ahead = match (config.buffer.kind, out) {
            // The archive holds no entry in memory once compressed.
            (BufferKind::Disk, OutputConfig::S3(_)) | (BufferKind::Memory, _) => None,
            (BufferKind::Disk, _) => Some(DISK_READ_AHEAD_BYTES),
        };
        let (driver, output) = output::start::start(out, lane, read_ahead, &shared).await?;
        outputs.push((out.name().to_string(), driver.acks.clone()));
        drivers.push(tokio::spawn(driver.drive(output)));
    }
    let persister = {
        let buffer = buffer.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let warnings = ratelimit::Every::default();
            loop {
                tokio::time::sleep(ACK_PERSIST_EVERY).await;
                if let Err(e) = buffer.persist_acks().await {
                    if warnings.allow() {
                        tracing::error!(error = %e, repeats = warnings.take_suppressed(), "buffer: cannot save the acknowledgement watermark");
                    }
                }
                match buffer.problem() {
                    Some(why) => health.set_not_ready(BUFFER_NAME, why),
                    None => health.set_ready(BUFFER_NAME),
                }
            }
        })
    };
    let tail = Arc::new(tail::Tail::new(metrics.clone()));
    let observer = Arc::new(status::Observer::new(
        metrics.clone(),
        health.clone(),
        buffer.clone(),
        outputs.clone(),
        match config.buffer.kind {
            BufferKind::Memory => "memory",
            BufferKind::Disk => "disk",
        },
        config.buffer.max_bytes,
        config.dead_letter.path.clone(),
    ));
    let sampler = tokio::spawn(observer.clone().run_sampler());
    let state = Arc::new(IngestState::new(
        &config,
        buffer.clone(),
        metrics.clone(),
        health.clone(),
        tail.clone(),
    ));
    let app = routes::App {
        ingest: state,
        tail,
        observer,
        admin_token: config.tail.as_ref().and_then(|t| {
            t.header
                .parse()
                .ok()
                .map(|h| auth::TokenCheck::new(h, t.token.expose()))
        }),
    };
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
    let admin_server = admin_listener.map(|l| {
        let router = routes::admin_router(&app);
        tracing::info!(listen = %admin_addr.map(|a| a.to_string()).unwrap_or_default(), "admin listening");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(l, router).await {
                tracing::error!(error = %e, "admin listener failed");
            }
        })
    });
    inspect(Handles {
        metrics: metrics.clone(),
        buffer: buffer.clone(),
        admin: admin_addr,
    });
    let app = routes::router(app);
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        listen = %addr,
        tls = tls.is_some(),
        path = %config.ingest.path,
        "collector listening"
    );

    let shutdown_timeout = config.shutdown_timeout;
    let health_for_signal = health.clone();
    let signalled = async move {
        shutdown.await;
        health_for_signal.start_shutdown();
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        tokio::time::Instant::now() + shutdown_timeout
    };
    let (deadline_tx, deadline_rx) = tokio::sync::oneshot::channel();
    let signalled = async move {
        let d = signalled.await;
        let _ = deadline_tx.send(d);
        d
    };
    server::serve(listener, tls, app, limits, metrics.clone(), signalled).await;
    let deadline = deadline_rx
        .await
        .unwrap_or_else(|_| tokio::time::Instant::now() + shutdown_timeout);

    buffer.close();
    let all_drivers = futures::future::join_all(drivers.iter_mut());
    match tokio::time::timeout_at(deadline, all_drivers).await {
        Ok(_) => tracing::info!("shutdown: buffer flushed to the outputs"),
        Err(_) => {
            for d in &drivers {
                d.abort();
            }
            tracing::warn!(
                left_bytes = buffer.used_bytes(),
                "shutdown deadline reached; the rest stays in the buffer for the next start"
            );
        }
    }
    persister.abort();
    sampler.abort();
    if let Some(w) = tls_watcher {
        w.abort();
    }
    if let Some(a) = admin_server {
        a.abort();
    }
    if let Err(e) = buffer.persist_acks().await {
        tracing::error!(error = %e, "buffer: cannot save the acknowledgement watermark");
    }
    let outstanding: usize = outputs
        .iter()
        .map(|(_, a)| a.outstanding())
        .max()
        .unwrap_or(0);
    if config.buffer.kind == BufferKind::Memory && outstanding > 0 {
        tracing::error!(
            entries = outstanding,
            "memory buffer: batches not delivered before the deadline are lost"
        );
    }
    Ok(())
}
