//! Receiving a request body: within the size limit and the shared memory budget, growing as
//! bytes arrive. Nothing is reserved for an idle client: only once a second piece of the body
//! arrives is the buffer sized to the declared Content-Length, and only up to
//! [`PRESIZE_MAX_BYTES`] (when the budget has room for it), so a typical batch is copied once
//! instead of being moved at every doubling, and a client declaring a huge body and then stalling
//! holds no more than that.
//!
//! Invariant: every byte received for a body, and the room set aside for the rest of a declared
//! length, is covered by the budget; a body over the limit or the budget is refused as soon as
//! the first byte too many arrives.

use super::error::IngestError;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The memory budget counts in KiB so `u32` permits cover gigabytes.
pub const KIB: usize = 1024;
/// A declared Content-Length sizes the buffer up to this much; beyond it the buffer grows as the
/// bytes arrive.
pub const PRESIZE_MAX_BYTES: usize = 1024 * 1024;

/// Memory reserved from the shared budget for one request; returned when dropped.
pub struct Budget {
    sem: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    bytes: usize,
}

impl Budget {
    pub fn new(sem: Arc<Semaphore>) -> Self {
        Budget {
            sem,
            held: None,
            bytes: 0,
        }
    }

    /// Reserves `n` more bytes; false when the budget is spent.
    pub fn grow_by(&mut self, n: usize) -> bool {
        let before = self.bytes.div_ceil(KIB);
        let after = (self.bytes + n).div_ceil(KIB);
        let want = (after - before) as u32;
        if want > 0 {
            match self.sem.clone().try_acquire_many_owned(want) {
                Ok(p) => match &mut self.held {
                    Some(h) => h.merge(p),
                    None => self.held = Some(p),
                },
                Err(_) => return false,
            }
        }
        self.bytes += n;
        true
    }

    /// Makes sure at least `n` bytes in all are reserved; false when the budget is spent.
    fn cover(&mut self, n: usize) -> bool {
        n <= self.bytes || self.grow_by(n - self.bytes)
    }
}

/// Reads the whole body. `declared`: the request's Content-Length, if any (a hint for sizing the
/// buffer, never trusted for the limit).
pub async fn read_body(
    mut body: Body,
    limit: usize,
    declared: Option<usize>,
    budget: &mut Budget,
) -> Result<Bytes, IngestError> {
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| IngestError::BodyRead)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        total += data.len();
        if total > limit {
            return Err(IngestError::TooLarge { limit });
        }
        if !budget.cover(total) {
            return Err(IngestError::OverBudget);
        }
        match (&mut first, &mut buf) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let size = declared
                    .map(|n| n.min(PRESIZE_MAX_BYTES).min(limit))
                    .filter(|&n| n >= total && budget.cover(n))
                    .unwrap_or(total);
                let mut b = BytesMut::with_capacity(size);
                b.extend_from_slice(f);
                b.extend_from_slice(&data);
                buf = Some(b);
            }
            (Some(_), Some(b)) => b.extend_from_slice(&data),
        }
    }
    Ok(match (first, buf) {
        (_, Some(b)) => b.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}
