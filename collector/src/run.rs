//! Starting and stopping a collector, in named phases: open the buffer, start the outputs, start
//! the background work, serve until a signal (or a drain), then flush what the buffer holds to
//! the outputs and stop.
//!
//! Two ways to stop: a signal (SIGTERM) flushes for `shutdown_timeout` and leaves the rest in a
//! disk buffer for the next start; a drain (`POST /drain`) refuses new batches, delivers
//! everything buffered, however long that takes, and only then stops, its buffer empty.
//!
//! Invariants: every task started here is tracked by one [`Background`] and stopped by its one
//! cancellation token, so nothing outlives `run`; the outputs are stopped only after the
//! listeners, so every batch answered 2xx is in the buffer before its readers stop; a drain
//! closes the buffer only once no request is on its way into it.

use crate::admin::drain::Drain;
use crate::admin::status::Observer;
use crate::admin::tail::Tail;
use crate::buffer::{Buffer, Lane, OpenError};
use crate::config::{BufferKind, Config, OutputConfig};
use crate::deadletter::DeadLetter;
use crate::health::{Delivery, Health};
use crate::http::{auth, conn, routes, server, tls};
use crate::ingest::IngestState;
use crate::logging::ratelimit;
use crate::metrics::Metrics;
use crate::output::acks::Acks;
use crate::output::error::OutputError;
use crate::output::start::{self, Shared};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most bytes of a disk buffer read ahead of the output's acknowledgements.
const DISK_READ_AHEAD_BYTES: usize = 64 * 1024 * 1024;
/// The name the buffer's state has in `/readyz`.
const BUFFER_NAME: &str = "buffer";
/// How long the admin listener may take to finish its answers once the collector stops (a live
/// tail is cut then).
const ADMIN_CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a drain checks that no request is still on its way into the buffer.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Why a collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("buffer: {0}")]
    Buffer(#[from] OpenError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("admin.listen: cannot bind {0}: {1}")]
    AdminListen(String, #[source] std::io::Error),
}

/// A running collector's shared parts, for tests that look inside.
#[derive(Clone)]
pub struct Handles {
    pub metrics: Arc<Metrics>,
    /// Where the admin listener listens, when it is on.
    pub admin: Option<std::net::SocketAddr>,
}

/// Runs the collector on `listener` until `shutdown` completes, then stops accepting, finishes the
/// requests in flight, and flushes the buffer to the outputs until `shutdown_timeout` has passed;
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
    for w in &config.warnings {
        tracing::warn!("config: {w}");
    }
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::new(metrics.clone()));
    let delivery = Arc::new(Delivery::new(config.delivery_alert_after, metrics.clone()));
    let background = Background::default();
    let limits = limits(&config);

    let tls = load_tls(&config, &metrics, &background)?;
    let buffer = open_buffer(&config, &metrics)?;
    let core = Core {
        config,
        metrics,
        health,
        delivery,
        buffer,
    };
    let admin_listener = bind_admin(&core.config).await?;
    let outputs = start_outputs(&core).await?;
    let app = start_background(&core, &outputs, &background);
    let admin = serve_admin(admin_listener, &app, &background);
    inspect(Handles {
        metrics: core.metrics.clone(),
        admin: admin.as_ref().map(|a| a.addr),
    });

    let drained = drain_when_asked(&core, app.drain.clone(), app.ingest.clone(), &outputs);
    let deadline = serve(&core, listener, limits, tls, app, shutdown, drained).await;
    flush(&core, outputs, deadline).await;
    background.stop().await;
    if let Some(a) = admin {
        a.close().await;
    }
    if let Err(e) = core.buffer.persist_acks().await {
        tracing::error!(error = %e, "buffer: cannot save the acknowledgement watermark");
    }
    Ok(())
}

/// What every phase reads: the configuration and the parts shared by the pipeline.
struct Core {
    config: Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    delivery: Arc<Delivery>,
    buffer: Arc<Buffer>,
}

/// The tasks that run beside serving and delivery (saving the ack position, sampling the status,
/// watching the TLS files, the admin listener), stopped together.
#[derive(Default)]
struct Background {
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    /// Runs `task` until it ends or the background is stopped.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    async fn stop(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for Background {
    /// A start that fails half-way leaves nothing running.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The outputs started on the buffer: each one's name, accounting and driver task.
struct Outputs {
    accounting: Vec<(String, Arc<Acks>)>,
    drivers: Vec<JoinHandle<()>>,
    /// Done once every driver has delivered what the (closed) buffer held.
    done: TaskTracker,
}

/// Reads the certificate, key and client CA, and watches them for changes; SIGHUP reloads them
/// (and, without TLS, is logged and ignored: it never ends the collector).
fn load_tls(
    config: &Config,
    metrics: &Arc<Metrics>,
    background: &Background,
) -> Result<Option<Arc<tls::Tls>>, RunError> {
    let tls = match &config.tls {
        Some(c) => Some(tls::Tls::load(c, metrics.clone())?),
        None => None,
    };
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hup) => background.spawn(hangups(hup, tls.clone())),
        Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP"),
    }
    if let Some(t) = &tls {
        background.spawn(t.clone().watch());
    }
    Ok(tls)
}

/// What SIGHUP does: reloads the TLS files when there are some; otherwise nothing, said so.
async fn hangups(mut hup: tokio::signal::unix::Signal, tls: Option<Arc<tls::Tls>>) {
    while hup.recv().await.is_some() {
        match &tls {
            Some(t) => {
                let _ = t.reload("SIGHUP");
            }
            None => tracing::info!(
                "SIGHUP: nothing to reload without a tls block; ignored (SIGTERM stops the collector)"
            ),
        }
    }
}

/// Opens the buffer with one lane per output; a disk buffer recovers what a previous run left.
fn open_buffer(config: &Config, metrics: &Arc<Metrics>) -> Result<Arc<Buffer>, RunError> {
    let lanes: Vec<Lane> = config.outputs.iter().map(|o| o.name().into()).collect();
    let buffer = Arc::new(Buffer::open_lanes(&config.buffer, &lanes, metrics.clone())?);
    metrics
        .buffer_max_bytes
        .set(i64::try_from(config.buffer.max_bytes).unwrap_or(i64::MAX));
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
    Ok(buffer)
}

async fn bind_admin(config: &Config) -> Result<Option<TcpListener>, RunError> {
    match &config.admin_listen {
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| RunError::AdminListen(addr.clone(), e)),
        None => Ok(None),
    }
}

/// Starts each configured output on its lane, its driver reading the buffer.
async fn start_outputs(core: &Core) -> Result<Outputs, RunError> {
    let Core {
        config,
        metrics,
        delivery,
        buffer,
        ..
    } = core;
    let shared = Shared {
        buffer: buffer.clone(),
        dead: Arc::new(DeadLetter::new(&config.dead_letter, metrics.clone())),
        delivery: delivery.clone(),
        metrics: metrics.clone(),
        retry: config.retry,
        max_line_bytes: config.ingest.max_line_bytes,
        buffer_max_bytes: config.buffer.max_bytes,
    };
    let mut outputs = Outputs {
        accounting: Vec::new(),
        drivers: Vec::new(),
        done: TaskTracker::new(),
    };
    for (lane, out) in config.outputs.iter().enumerate() {
        let read_ahead = match (config.buffer.kind, out) {
            // The archive holds no entry in memory once compressed.
            (BufferKind::Disk, OutputConfig::S3(_)) | (BufferKind::Memory, _) => None,
            (BufferKind::Disk, _) => Some(DISK_READ_AHEAD_BYTES),
        };
        let (driver, output) = start::start(out, lane, read_ahead, &shared).await?;
        outputs
            .accounting
            .push((out.name().to_string(), driver.acks.clone()));
        outputs
            .drivers
            .push(outputs.done.spawn(driver.drive(output)));
    }
    outputs.done.close();
    Ok(outputs)
}

/// Starts saving the ack position and sampling the status; returns what the routes serve.
fn start_background(core: &Core, outputs: &Outputs, background: &Background) -> routes::App {
    let Core {
        config,
        metrics,
        health,
        delivery,
        buffer,
    } = core;
    background.spawn(persist_acks(
        buffer.clone(),
        health.clone(),
        config.buffer.ack_save_interval,
    ));
    let tail = Arc::new(Tail::new(metrics.clone()));
    let observer = Arc::new(Observer::new(
        metrics.clone(),
        health.clone(),
        delivery.clone(),
        buffer.clone(),
        outputs.accounting.clone(),
        config.dead_letter.path.clone(),
    ));
    background.spawn(observer.clone().run_sampler());
    let ingest = Arc::new(IngestState::new(
        config,
        buffer.clone(),
        metrics.clone(),
        health.clone(),
        tail.clone(),
    ));
    routes::App {
        ingest,
        tail,
        observer,
        drain: Arc::new(Drain::default()),
        admin_token: config.tail.as_ref().and_then(|t| {
            t.header
                .parse()
                .ok()
                .map(|h| auth::TokenCheck::new(h, t.token.expose()))
        }),
    }
}

/// Saves the acknowledgement position every `buffer.ack_save_interval` (when it moved) and
/// reports the buffer's state to readiness.
async fn persist_acks(buffer: Arc<Buffer>, health: Arc<Health>, every: Duration) {
    let warnings = ratelimit::Every::default();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = buffer.persist_acks().await {
            if warnings.allow() {
                tracing::error!(error = %e, repeats = warnings.take_suppressed(), "buffer: cannot save the acknowledgement watermark");
            }
        }
        match buffer.problem() {
            Some(why) => health.set_problem(BUFFER_NAME, why),
            None => health.clear(BUFFER_NAME),
        }
    }
}

/// The admin listener's server, serving until the background stops.
struct Admin {
    addr: std::net::SocketAddr,
    task: JoinHandle<()>,
}

impl Admin {
    /// Lets the answers in progress finish (a drain's last line) for a moment, then cuts the rest.
    async fn close(mut self) {
        if tokio::time::timeout(ADMIN_CLOSE_TIMEOUT, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

/// Serves the admin routes on their own listener, when there is one.
fn serve_admin(
    listener: Option<TcpListener>,
    app: &routes::App,
    background: &Background,
) -> Option<Admin> {
    let listener = listener?;
    let addr = listener.local_addr().ok()?;
    let router = routes::admin_router(app);
    tracing::info!(listen = %addr, "admin listening");
    let stop = background.stop.clone();
    let task = tokio::spawn(async move {
        let serving = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "admin listener failed");
        }
    });
    Some(Admin { addr, task })
}

/// Completes once a drain asked for is done: no request on its way into the buffer any more, the
/// buffer closed, and every output done delivering what it held.
async fn drain_when_asked(
    core: &Core,
    drain: Arc<Drain>,
    ingest: Arc<IngestState>,
    outputs: &Outputs,
) {
    drain.requested().await;
    core.health.start_draining();
    while !ingest.idle() {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    core.buffer.close();
    outputs.done.wait().await;
    if let Err(e) = core.buffer.persist_acks().await {
        tracing::error!(error = %e, "buffer: cannot save the acknowledgement watermark");
    }
    let left: u64 = outputs
        .accounting
        .iter()
        .map(|(_, a)| a.counts().buffered)
        .sum();
    tracing::info!(
        lines_left = left,
        "drained: every line delivered or dead-lettered; stopping"
    );
    drain.finished();
}

/// The connection limits, the cap under the descriptor limit (raised to its hard limit).
fn limits(config: &Config) -> server::Limits {
    server::Limits {
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
    }
}

/// Serves the listener facing Fastly until `shutdown` (or a drain is done), then finishes the
/// requests in flight; returns the deadline for flushing (`shutdown_timeout` after the signal).
async fn serve(
    core: &Core,
    listener: TcpListener,
    limits: server::Limits,
    tls: Option<Arc<tls::Tls>>,
    app: routes::App,
    shutdown: impl Future<Output = ()> + Send,
    drained: impl Future<Output = ()> + Send,
) -> Instant {
    let Core {
        config,
        metrics,
        health,
        ..
    } = core;
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
    health.started();
    let health = health.clone();
    let drain = app.drain.clone();
    let (deadline_tx, deadline_rx) = tokio::sync::oneshot::channel();
    let signalled = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = drained => {}
        }
        health.start_shutdown();
        drain.stopped();
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let deadline = Instant::now() + shutdown_timeout;
        let _ = deadline_tx.send(deadline);
        deadline
    };
    server::serve(
        listener,
        tls,
        routes::router(app),
        limits,
        metrics.clone(),
        signalled,
    )
    .await;
    deadline_rx
        .await
        .unwrap_or_else(|_| Instant::now() + shutdown_timeout)
}

/// Lets the outputs deliver what the buffer holds until `deadline`; what is left stays in a disk
/// buffer for the next start (a memory buffer's is lost, and said so).
async fn flush(core: &Core, mut outputs: Outputs, deadline: Instant) {
    let Core { config, buffer, .. } = core;
    buffer.close();
    outputs.done.close();
    let all = futures::future::join_all(outputs.drivers.iter_mut());
    match tokio::time::timeout_at(deadline, all).await {
        Ok(_) => tracing::info!("shutdown: buffer flushed to the outputs"),
        Err(_) => {
            for d in &outputs.drivers {
                d.abort();
            }
            tracing::warn!(
                left_bytes = buffer.used_bytes(),
                "shutdown deadline reached; the rest stays in the buffer for the next start"
            );
        }
    }
    let outstanding: usize = outputs
        .accounting
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
}
