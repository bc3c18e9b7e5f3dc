//! The in-flight byte budget (`max_in_flight_bytes`): records in open batches, in lane queues,
//! in calls and waiting for a retry together stay within it, so memory is bounded whatever
//! Kinesis does; when it is spent, the batching stage waits, and the wait reaches the buffer.
//!
//! Invariant: a batch's [`Reservation`] is taken as records join it and given back when the
//! batch is dropped (every record delivered or dead-lettered); while any sent batch holds budget,
//! waiting for budget is safe, because its delivery gives budget back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget counts KiB so its `u32` permits cover gigabytes.
pub const KIB: usize = 1024;
/// A batch takes budget in steps of this many KiB (fewer semaphore operations).
const STEP_KIB: u32 = 256;

pub struct Budget {
    sem: Arc<Semaphore>,
    max_kib: u32,
    /// KiB held by batches handed to the lanes and not yet delivered.
    sent_kib: AtomicU64,
}

/// A batch's share of the budget.
#[derive(Default)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    /// Set once the batch is handed to a lane: its KiB count as sent until it is dropped.
    sent: Option<Arc<Budget>>,
}

impl Reservation {
    /// KiB held.
    pub fn kib(&self) -> u32 {
        self.permit
            .as_ref()
            .map_or(0, |p| u32::try_from(p.num_permits()).unwrap_or(u32::MAX))
    }

    fn merge(&mut self, p: OwnedSemaphorePermit) {
        match &mut self.permit {
            Some(held) => held.merge(p),
            None => self.permit = Some(p),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = self.sent.take() {
            b.sent_kib
                .fetch_sub(u64::from(self.kib()), Ordering::AcqRel);
        }
    }
}

/// What [`Budget::try_cover`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Cover {
    /// The reservation covers the bytes (or already holds the whole budget).
    Covered,
    /// The budget is spent; `nothing_sent` says whether only open batches hold it.
    Spent { nothing_sent: bool },
}

impl Budget {
    pub fn new(max_bytes: usize) -> Arc<Budget> {
        let max_kib = (max_bytes / KIB).clamp(1, u32::MAX as usize) as u32;
        Arc::new(Budget {
            sem: Arc::new(Semaphore::new(max_kib as usize)),
            max_kib,
            sent_kib: AtomicU64::new(0),
        })
    }

    /// Grows `res` to cover `bytes` without waiting.
    pub fn try_cover(&self, res: &mut Reservation, bytes: usize) -> Cover {
        let need = ((bytes / KIB) as u32 + 1).min(self.max_kib);
        let held = res.kib();
        if need <= held {
            return Cover::Covered;
        }
        let take = (need - held).max(STEP_KIB).min(self.max_kib - held);
        if take == 0 {
            return Cover::Covered;
        }
        match self.sem.clone().try_acquire_many_owned(take) {
            Ok(p) => {
                res.merge(p);
                Cover::Covered
            }
            Err(_) => Cover::Spent {
                nothing_sent: self.sent_kib.load(Ordering::Acquire) == 0,
            },
        }
    }

    /// Waits until budget for `bytes` more is free and adds it to `res`.
    pub async fn wait_cover(&self, res: &mut Reservation, bytes: usize) {
        let need = ((bytes / KIB) as u32 + 1).max(STEP_KIB).min(self.max_kib);
        if let Ok(p) = self.sem.clone().acquire_many_owned(need).await {
            res.merge(p);
        }
    }

    /// Marks a batch's reservation as handed to the lanes.
    pub fn mark_sent(self: &Arc<Self>, res: &mut Reservation) {
        if res.sent.is_none() {
            self.sent_kib
                .fetch_add(u64::from(res.kib()), Ordering::AcqRel);
            res.sent = Some(self.clone());
        }
    }

    /// KiB free right now.
    #[cfg(test)]
    fn available_kib(&self) -> usize {
        self.sem.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_come_back_when_dropped_and_sent_ones_are_counted() {
        let b = Budget::new(1024 * KIB);
        let mut r = Reservation::default();
        assert_eq!(b.try_cover(&mut r, 10), Cover::Covered);
        assert_eq!(r.kib(), STEP_KIB, "taken in steps");
        b.mark_sent(&mut r);
        assert_eq!(b.sent_kib.load(Ordering::Acquire), u64::from(STEP_KIB));
        let mut all = Reservation::default();
        assert_eq!(b.try_cover(&mut all, 700 * KIB), Cover::Covered);
        assert_eq!(all.kib(), 701);
        let mut none = Reservation::default();
        assert_eq!(
            b.try_cover(&mut none, 1),
            Cover::Spent {
                nothing_sent: false
            }
        );
        drop(r);
        assert_eq!(b.sent_kib.load(Ordering::Acquire), 0);
        assert_eq!(
            b.available_kib(),
            1024 - 701,
            "the dropped reservation's KiB are free again"
        );
    }
}
