//! Pacing per shard: each shard of the map gets its own rate, so a hot shard slows its own
//! records and no one else's.
//!
//! Rules:
//! - `stream_mode: provisioned`: a shard takes at most 1,000 records and 1 MiB a second, so each
//!   known shard starts with a token bucket at exactly that rate (one second of burst);
//! - `stream_mode: on_demand` (and records whose shard is unknown): no rate until Kinesis
//!   throttles;
//! - either way the rate adapts to what Kinesis answers, in epochs of [`EPOCH`]: when more than
//!   [`HEAVY_THROTTLE`] of a shard's answered entries were throttled, its rate becomes what it
//!   accepted in that epoch (never below a floor); each epoch without heavy throttling raises the
//!   rate by half (up to the provisioned limit), and on-demand shards drop their rate after
//!   [`CLEAN_EPOCHS_TO_UNPACED`] clean epochs. A few throttled entries (a busy stream's normal
//!   state) change no rate: those entries are simply sent again.
//!
//! So after throttling ends, a shard is back at full speed within about two seconds.

use crate::config::{StreamMode, KINESIS_SHARD_BYTES_PER_SECOND, KINESIS_SHARD_RECORDS_PER_SECOND};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How often a shard's rate is reconsidered.
pub const EPOCH: Duration = Duration::from_millis(200);
/// Above this fraction of throttled entries in an epoch, a shard's rate is cut to what it took.
pub const HEAVY_THROTTLE: f64 = 0.10;
/// Fewer throttled entries than this in an epoch never cut a rate (too small a sample).
const MIN_THROTTLED_TO_CUT: u64 = 2;
/// Clean epochs after which an on-demand shard is no longer paced.
pub const CLEAN_EPOCHS_TO_UNPACED: u32 = 10;
/// Growth of a shard's rate per clean epoch.
const RECOVERY: f64 = 1.5;
/// The lowest rate a shard is ever paced at.
const FLOOR_RECORDS: f64 = 10.0;
const FLOOR_BYTES: f64 = 10.0 * 1024.0;
/// Seconds of rate a bucket holds (a shard's burst).
const BURST_SECONDS: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    records: f64,
    bytes: f64,
}

const NOMINAL: Rate = Rate {
    records: KINESIS_SHARD_RECORDS_PER_SECOND,
    bytes: KINESIS_SHARD_BYTES_PER_SECOND,
};

struct Pace {
    /// `None`: not paced.
    rate: Option<Rate>,
    /// The largest record (`max_record_bytes`); a bucket always holds at least this many bytes
    /// so it can pass.
    max_record: f64,
    /// Whether the provisioned limits apply (a known shard of a provisioned stream).
    provisioned: bool,
    records: f64,
    bytes: f64,
    refilled: Instant,
    epoch: Instant,
    accepted: u64,
    accepted_bytes: u64,
    throttled: u64,
    clean_epochs: u32,
}

impl Pace {
    fn new(provisioned: bool, max_record: f64, now: Instant) -> Pace {
        let rate = provisioned.then_some(NOMINAL);
        Pace {
            rate,
            max_record,
            provisioned,
            records: rate.map_or(0.0, |r| r.records * BURST_SECONDS),
            bytes: rate.map_or(0.0, |r| (r.bytes * BURST_SECONDS).max(max_record)),
            refilled: now,
            epoch: now,
            accepted: 0,
            accepted_bytes: 0,
            throttled: 0,
            clean_epochs: 0,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(r) = self.rate {
            let dt = now.saturating_duration_since(self.refilled).as_secs_f64();
            self.records = (self.records + r.records * dt).min(r.records * BURST_SECONDS);
            self.bytes =
                (self.bytes + r.bytes * dt).min((r.bytes * BURST_SECONDS).max(self.max_record));
        }
        self.refilled = now;
    }

    /// Takes one record of `size` bytes, or says when it could go.
    fn take(&mut self, size: usize, now: Instant) -> Result<(), Instant> {
        self.roll(now);
        let Some(r) = self.rate else {
            return Ok(());
        };
        self.refill(now);
        let size = size as f64;
        if self.records >= 1.0 && self.bytes >= size {
            self.records -= 1.0;
            self.bytes -= size;
            return Ok(());
        }
        let wait_records = (1.0 - self.records).max(0.0) / r.records;
        let wait_bytes = (size - self.bytes).max(0.0) / r.bytes;
        let wait = wait_records.max(wait_bytes).clamp(0.001, 10.0);
        Err(now + Duration::from_secs_f64(wait))
    }

    /// Closes the epochs that ended by `now`.
    fn roll(&mut self, now: Instant) {
        let mut rounds = 0;
        while now.saturating_duration_since(self.epoch) >= EPOCH && rounds < 64 {
            self.close_epoch();
            self.epoch += EPOCH;
            rounds += 1;
        }
        if now.saturating_duration_since(self.epoch) >= EPOCH {
            self.epoch = now;
        }
    }

    fn close_epoch(&mut self) {
        let answered = self.accepted + self.throttled;
        let heavy = self.throttled >= MIN_THROTTLED_TO_CUT
            && self.throttled as f64 > HEAVY_THROTTLE * answered as f64;
        if heavy {
            let secs = EPOCH.as_secs_f64();
            let mut took = Rate {
                records: (self.accepted as f64 / secs).max(FLOOR_RECORDS),
                bytes: (self.accepted_bytes as f64 / secs).max(FLOOR_BYTES),
            };
            if self.provisioned {
                took.records = took.records.min(NOMINAL.records);
                took.bytes = took.bytes.min(NOMINAL.bytes);
            }
            self.rate = Some(took);
            self.records = self.records.min(took.records * EPOCH.as_secs_f64());
            self.bytes = self.bytes.min(took.bytes * EPOCH.as_secs_f64());
            self.clean_epochs = 0;
        } else {
            self.clean_epochs = self.clean_epochs.saturating_add(1);
            if let Some(r) = self.rate {
                let mut up = Rate {
                    records: r.records * RECOVERY,
                    bytes: r.bytes * RECOVERY,
                };
                if self.provisioned {
                    up.records = up.records.min(NOMINAL.records);
                    up.bytes = up.bytes.min(NOMINAL.bytes);
                    self.rate = Some(up);
                } else if self.clean_epochs >= CLEAN_EPOCHS_TO_UNPACED {
                    self.rate = None;
                } else {
                    self.rate = Some(up);
                }
            }
        }
        self.accepted = 0;
        self.accepted_bytes = 0;
        self.throttled = 0;
    }
}

/// What happened to one sent record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accepted { bytes: usize },
    Throttled,
}

/// Which records of a batch may go now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Per record: send it in this call.
    pub go: Vec<bool>,
    /// Records to move to another shard (index, new shard) before sending.
    pub moves: Vec<(usize, usize)>,
    /// When the earliest held record could go.
    pub wake: Option<Instant>,
}

impl Split {
    pub fn all_go(&self) -> bool {
        self.go.iter().all(|g| *g)
    }
}

/// One record as the pacer sees it.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    pub shard: Option<usize>,
    pub bytes: usize,
    pub movable: bool,
    pub not_before: Option<Instant>,
}

/// The pacing of every shard of one stream.
pub struct Pacing {
    mode: StreamMode,
    max_record: f64,
    state: Mutex<State>,
    /// Whether any shard has a rate now (read without the lock, for the common case of none).
    paced: std::sync::atomic::AtomicBool,
}

struct State {
    shards: Vec<Pace>,
    /// Records whose shard is unknown (no shard map).
    unknown: Pace,
}

impl Pacing {
    /// `max_record_bytes`: the largest record sent, which a shard's bucket always lets pass.
    pub fn new(mode: StreamMode, max_record_bytes: usize) -> Pacing {
        let now = Instant::now();
        let max_record = max_record_bytes as f64;
        Pacing {
            mode,
            max_record,
            state: Mutex::new(State {
                shards: Vec::new(),
                unknown: Pace::new(false, max_record, now),
            }),
            paced: std::sync::atomic::AtomicBool::new(mode == StreamMode::Provisioned),
        }
    }

    /// Whether no record could be held back now: no shard has a rate.
    pub fn nothing_paced(&self) -> bool {
        !self.paced.load(std::sync::atomic::Ordering::Acquire)
    }

    fn publish(&self, st: &State) {
        let any = st.unknown.rate.is_some() || st.shards.iter().any(|p| p.rate.is_some());
        self.paced.store(any, std::sync::atomic::Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Follows the shard map's size (a new map starts every shard afresh).
    fn fit(&self, st: &mut State, shards: usize, now: Instant) {
        if st.shards.len() != shards {
            let provisioned = self.mode == StreamMode::Provisioned;
            st.shards = (0..shards)
                .map(|_| Pace::new(provisioned, self.max_record, now))
                .collect();
        }
    }

    /// Decides which records go now. Per shard, records keep their order: once one waits, the
    /// later ones of that shard wait too. A movable record whose shard must wait moves to a shard
    /// that can take it, if there is one.
    pub fn split(&self, asks: &[Ask], shards: usize, now: Instant) -> Split {
        let mut st = self.lock();
        self.fit(&mut st, shards, now);
        let mut split = Split {
            go: Vec::with_capacity(asks.len()),
            ..Split::default()
        };
        let mut held_unknown = false;
        let mut held: Vec<bool> = vec![false; st.shards.len()];
        let mut next_open = 0usize;
        for (i, a) in asks.iter().enumerate() {
            let slot = a.shard.filter(|s| *s < st.shards.len());
            let waiting = a.not_before.filter(|t| *t > now);
            let blocked = match slot {
                Some(s) => held[s],
                None => held_unknown,
            };
            if blocked && !a.movable {
                split.go.push(false);
                continue;
            }
            let own = match (waiting, slot) {
                (Some(t), _) => Err(t),
                (None, Some(s)) if !held[s] => st.shards[s].take(a.bytes, now),
                (None, Some(_)) => Err(now),
                (None, None) => st.unknown.take(a.bytes, now),
            };
            match own {
                Ok(()) => split.go.push(true),
                Err(t) => {
                    // Another shard, for a record any shard may take (not while it waits out
                    // its own backoff).
                    let mut moved = false;
                    if a.movable && waiting.is_none() && !st.shards.is_empty() {
                        let n = st.shards.len();
                        for k in 0..n {
                            let j = (next_open + k) % n;
                            if Some(j) != slot
                                && !held[j]
                                && st.shards[j].take(a.bytes, now).is_ok()
                            {
                                split.moves.push((i, j));
                                next_open = j + 1;
                                moved = true;
                                break;
                            }
                        }
                    }
                    split.go.push(moved);
                    if !moved {
                        split.wake = Some(split.wake.map_or(t, |w: Instant| w.min(t)));
                        if !a.movable {
                            match slot {
                                Some(s) => held[s] = true,
                                None => held_unknown = true,
                            }
                        }
                    }
                }
            }
        }
        self.publish(&st);
        split
    }

    /// Records what Kinesis answered for sent records (shard, answer).
    pub fn observe(
        &self,
        answers: impl IntoIterator<Item = (Option<usize>, Answer)>,
        shards: usize,
    ) {
        let now = Instant::now();
        let mut st = self.lock();
        self.fit(&mut st, shards, now);
        let len = st.shards.len();
        for (shard, answer) in answers {
            let p = match shard.filter(|s| *s < len) {
                Some(s) => &mut st.shards[s],
                None => &mut st.unknown,
            };
            p.roll(now);
            match answer {
                Answer::Accepted { bytes } => {
                    p.accepted += 1;
                    p.accepted_bytes += bytes as u64;
                }
                Answer::Throttled => p.throttled += 1,
            }
        }
    }

    /// Records per second shard `s` is paced at (`None`: not paced), for metrics and tests.
    #[cfg(test)]
    pub fn rate(&self, s: Option<usize>) -> Option<f64> {
        let now = Instant::now();
        let mut st = self.lock();
        let p = match s {
            Some(s) => st.shards.get_mut(s)?,
            None => &mut st.unknown,
        };
        p.roll(now);
        p.rate.map(|r| r.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(shard: usize) -> Ask {
        Ask {
            shard: Some(shard),
            bytes: 100,
            movable: false,
            not_before: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_provisioned_shard_takes_1000_records_a_second_and_others_are_untouched() {
        let p = Pacing::new(
            StreamMode::Provisioned,
            crate::config::DEFAULT_KINESIS_MAX_RECORD_BYTES,
        );
        let asks: Vec<Ask> = (0..1500)
            .map(|_| ask(0))
            .chain((0..500).map(|_| ask(1)))
            .collect();
        let s = p.split(&asks, 2, Instant::now());
        assert_eq!(
            s.go[..1500].iter().filter(|g| **g).count(),
            1000,
            "one second of burst"
        );
        assert!(
            s.go[1500..].iter().all(|g| *g),
            "shard 1 is not slowed by shard 0"
        );
        assert!(s.wake.is_some());
        // Once a record of shard 0 waits, the later ones wait too (order per shard).
        assert!(s.go[..1000].iter().all(|g| *g) && s.go[1000..1500].iter().all(|g| !*g));
        tokio::time::advance(Duration::from_millis(500)).await;
        let s = p.split(&asks[..1000], 2, Instant::now());
        assert_eq!(
            s.go.iter().filter(|g| **g).count(),
            500,
            "refilled at 1,000/s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn heavy_throttling_cuts_a_shards_rate_and_it_recovers_within_two_seconds() {
        let p = Pacing::new(
            StreamMode::OnDemand,
            crate::config::DEFAULT_KINESIS_MAX_RECORD_BYTES,
        );
        assert_eq!(p.rate(Some(0)), None);
        p.split(&[ask(0)], 4, Instant::now());
        // In one epoch shard 2 accepts 100 and is throttled on 300; shard 1 sees 1% throttling.
        let answers = (0..100)
            .map(|_| (Some(2), Answer::Accepted { bytes: 500 }))
            .chain((0..300).map(|_| (Some(2), Answer::Throttled)))
            .chain((0..990).map(|_| (Some(1), Answer::Accepted { bytes: 500 })))
            .chain((0..10).map(|_| (Some(1), Answer::Throttled)));
        p.observe(answers, 4);
        tokio::time::advance(EPOCH).await;
        p.observe([], 4);
        assert_eq!(p.rate(Some(2)), Some(500.0), "what it took: 100 in 200 ms");
        assert_eq!(
            p.rate(Some(1)),
            None,
            "a few throttled entries change nothing"
        );
        assert_eq!(p.rate(Some(0)), None);
        tokio::time::advance(EPOCH * CLEAN_EPOCHS_TO_UNPACED).await;
        p.observe([], 4);
        assert_eq!(p.rate(Some(2)), None, "back to unpaced");
    }

    #[tokio::test(start_paused = true)]
    async fn a_movable_record_leaves_a_hot_shard() {
        let p = Pacing::new(
            StreamMode::Provisioned,
            crate::config::DEFAULT_KINESIS_MAX_RECORD_BYTES,
        );
        let mut asks: Vec<Ask> = (0..1000).map(|_| ask(0)).collect();
        asks.push(Ask {
            movable: true,
            ..ask(0)
        });
        let s = p.split(&asks, 3, Instant::now());
        assert!(s.go[1000], "moved, so it goes now");
        assert_eq!(s.moves, vec![(1000, 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_waits_out_its_backoff() {
        let p = Pacing::new(
            StreamMode::OnDemand,
            crate::config::DEFAULT_KINESIS_MAX_RECORD_BYTES,
        );
        let now = Instant::now();
        let later = now + Duration::from_millis(30);
        let asks = [
            Ask {
                not_before: Some(later),
                ..ask(0)
            },
            ask(0),
            ask(1),
        ];
        let s = p.split(&asks, 2, now);
        assert_eq!(s.go, vec![false, false, true]);
        assert_eq!(s.wake, Some(later));
    }
}
