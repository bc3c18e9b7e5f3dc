//! Drain: `POST /drain` (and `collector drain`) makes the collector stop taking batches (ingest
//! and `/readyz` answer 503 `draining`, so Fastly and the load balancer go elsewhere), deliver
//! everything buffered to every output, and exit by itself, its buffer empty. The answer streams
//! the progress: a first line, the lines left per output every [`PROGRESS_EVERY`], and a last
//! line saying how it ended.
//!
//! Invariants: draining twice is the same drain (the second request follows it too); nothing is
//! dropped to finish sooner (an output that is down is waited for, and the progress shows it); a
//! signal to shut down ends the drain the way it ends any run, the rest staying in a disk buffer.

use super::status::Observer;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub const PATH: &str = "/drain";
/// How often the answer says what is left.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Where a drain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not asked for.
    Idle,
    /// Asked for: batches are refused, the outputs deliver what is buffered.
    Draining,
    /// Everything buffered was delivered or dead-lettered; the collector stops.
    Drained,
    /// The collector is shutting down (a signal) before the drain finished.
    Stopped,
}

/// The drain of one running collector.
pub struct Drain {
    phase: watch::Sender<Phase>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            phase: watch::Sender::new(Phase::Idle),
        }
    }
}

impl Drain {
    /// Asks for the drain; false when it was already asked for (or the collector is stopping).
    pub fn request(&self) -> bool {
        self.phase.send_if_modified(|p| {
            let first = *p == Phase::Idle;
            if first {
                *p = Phase::Draining;
            }
            first
        })
    }

    /// Completes once the drain is asked for.
    pub async fn requested(&self) {
        let mut rx = self.phase.subscribe();
        let _ = rx.wait_for(|p| *p != Phase::Idle).await;
    }

    /// Everything buffered is delivered or dead-lettered.
    pub fn finished(&self) {
        self.phase.send_replace(Phase::Drained);
    }

    /// The collector stops (a drain still going ends here).
    pub fn stopped(&self) {
        self.phase.send_if_modified(|p| {
            let going = *p == Phase::Draining;
            if going {
                *p = Phase::Stopped;
            }
            going
        });
    }

    pub fn phase(&self) -> Phase {
        *self.phase.borrow()
    }
}

/// `POST /drain`: starts the drain (or follows the one going) and streams its progress until it
/// ends.
pub async fn handler(State((drain, observer)): State<(Arc<Drain>, Arc<Observer>)>) -> Response {
    if observer.health.shutting_down() && drain.phase() != Phase::Drained {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down: too late to drain; what is left stays in the buffer\n",
        )
            .into_response();
    }
    // The readiness phase moves first, so no batch is taken once the drain is said to start.
    observer.health.start_draining();
    let first = if drain.request() {
        tracing::info!("drain asked for: batches are refused; delivering what is buffered");
        "draining: batches are refused from now on; delivering what is buffered\n"
    } else {
        "already draining\n"
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(4);
    tokio::spawn(async move {
        let line = |text: String| Ok(Bytes::from(text));
        if tx.send(line(first.to_string())).await.is_err() {
            return;
        }
        let mut phase = drain.phase.subscribe();
        let ended = loop {
            let ended = tokio::select! {
                _ = tokio::time::sleep(PROGRESS_EVERY) => None,
                r = phase.wait_for(|p| matches!(p, Phase::Drained | Phase::Stopped)) => {
                    Some(r.map(|p| *p).unwrap_or(Phase::Stopped))
                }
            };
            if let Some(p) = ended {
                break p;
            }
            let left = format!("left: {}\n", observer.lines_left().1);
            if tx.send(line(left)).await.is_err() {
                return; // the client went away; the drain goes on
            }
        };
        let last = if ended == Phase::Drained {
            format!(
                "drained: every line delivered or dead-lettered ({}); the collector exits\n",
                observer.lines_left().1
            )
        } else {
            format!(
                "stopped before the drain finished: the collector is shutting down; left: {}\n",
                observer.lines_left().1
            )
        };
        let _ = tx.send(line(last)).await;
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response()
}
