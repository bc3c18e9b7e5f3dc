//! Numbered lines (`{"n":<k>,"pad":"…"}`) posted continuously to a collector, remembering which
//! numbers got a 2xx, and read back from the stream: the check that no accepted line is lost.
//! Posted once each, or sent again after a failure the way the Fastly stand-in does.

use crate::collector::CollectorProcess;
use crate::standin::{send_with_retries, Retries};
use crate::KinesisClient;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Posts numbered lines continuously; remembers which numbers got a 2xx.
pub struct Loader {
    state: Arc<State>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What a [`Loader`]'s posters share.
#[derive(Default)]
struct State {
    /// Where to post; updated when the collector restarts on another port.
    url: Mutex<String>,
    stop: AtomicBool,
    paused: AtomicBool,
    acked: Mutex<Vec<u64>>,
    statuses: Mutex<HashMap<u16, u64>>,
    /// Lines of batches given up after the last retry.
    dropped: AtomicU64,
    next: AtomicU64,
}

/// One posting task of a [`Loader`].
struct Poster {
    state: Arc<State>,
    options: LoaderOptions,
}

impl Poster {
    async fn run(self) {
        let o = &self.options;
        let pad = "p".repeat(o.pad);
        while !self.state.stop.load(Ordering::Relaxed) {
            if self.state.paused.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let first = self
                .state
                .next
                .fetch_add(o.lines_per_post, Ordering::Relaxed);
            let nums: Vec<u64> = (first..first + o.lines_per_post).collect();
            let body: String = nums
                .iter()
                .map(|k| format!("{{\"n\":{k},\"pad\":\"{pad}\"}}\n"))
                .collect();
            let target = format!("{}/logs", self.state.url.lock().expect("url"));
            let make = || o.client.post(&target).body(body.clone());
            // Each answer is counted as it comes, so a test sees failed attempts while the
            // batch is still being retried.
            let count = |status: u16| {
                *self
                    .state
                    .statuses
                    .lock()
                    .expect("statuses")
                    .entry(status)
                    .or_default() += 1;
            };
            let (delivered, last) = match &o.retries {
                Some((retries, timeout)) => {
                    let a = send_with_retries(retries, *timeout, make, |s, _, _| count(s)).await;
                    (
                        a.delivered,
                        a.statuses.last().copied().filter(|_| a.delivered),
                    )
                }
                None => {
                    let status = match make().send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    (status == 204, Some(status))
                }
            };
            if let Some(status) = last {
                count(status);
            }
            if delivered {
                self.state.acked.lock().expect("acked").extend(nums);
            } else if o.retries.is_some() {
                self.state
                    .dropped
                    .fetch_add(o.lines_per_post, Ordering::Relaxed);
            }
            if !delivered {
                tokio::time::sleep(Duration::from_millis(20)).await;
            } else if !o.pace.is_zero() {
                tokio::time::sleep(o.pace).await;
            }
        }
    }
}

/// How a [`Loader`] posts.
#[derive(Clone)]
pub struct LoaderOptions {
    pub lines_per_post: u64,
    /// Bytes of padding in each line.
    pub pad: usize,
    pub client: reqwest::Client,
    /// Posters at once, each a batch at a time (as several Fastly aggregation points).
    pub posters: usize,
    /// `None`: a batch is posted once, whatever the answer. `Some`: a batch that fails is sent
    /// again as the Fastly stand-in sends it (waits doubling, each attempt limited to
    /// `request_timeout`), so a timed-out attempt the collector took can be delivered twice.
    pub retries: Option<(Retries, Duration)>,
    /// How long each poster waits between two batches (none: as fast as answered).
    pub pace: Duration,
}

impl LoaderOptions {
    /// One poster, `lines_per_post` lines of 180 bytes of padding, posted once each.
    pub fn new(lines_per_post: u64) -> LoaderOptions {
        LoaderOptions {
            lines_per_post,
            pad: 180,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
            posters: 1,
            retries: None,
            pace: Duration::ZERO,
        }
    }
}

impl Loader {
    pub fn start(first_url: String, lines_per_post: u64) -> Loader {
        Loader::start_padded(first_url, lines_per_post, 180)
    }

    /// Like [`Loader::start`], each line padded with `pad` bytes.
    pub fn start_padded(first_url: String, lines_per_post: u64, pad: usize) -> Loader {
        Loader::start_with(
            first_url,
            LoaderOptions {
                pad,
                ..LoaderOptions::new(lines_per_post)
            },
        )
    }

    /// Posts to `first_url` as `options` say.
    pub fn start_with(first_url: String, options: LoaderOptions) -> Loader {
        let state = Arc::new(State {
            url: Mutex::new(first_url),
            ..State::default()
        });
        let tasks = (0..options.posters.max(1))
            .map(|_| {
                let poster = Poster {
                    state: state.clone(),
                    options: options.clone(),
                };
                tokio::spawn(poster.run())
            })
            .collect();
        Loader { state, tasks }
    }

    /// Posts to this collector from now on (after a restart on another port).
    pub fn follow(&self, proc: &CollectorProcess) {
        *self.state.url.lock().expect("url") = proc.url.clone();
    }

    /// Stops posting; returns the numbers that got a 2xx and how many answers had each status.
    pub async fn finish(self) -> (Vec<u64>, HashMap<u16, u64>) {
        self.state.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let acked = self.state.acked.lock().expect("acked").clone();
        let statuses = self.state.statuses.lock().expect("statuses").clone();
        (acked, statuses)
    }

    /// Stops posting until [`Loader::resume`] (a post under way finishes).
    pub fn pause(&self) {
        self.state.paused.store(true, Ordering::Relaxed);
    }

    pub fn resume(&self) {
        self.state.paused.store(false, Ordering::Relaxed);
    }

    /// The numbers that got a 2xx so far.
    pub fn acked_snapshot(&self) -> Vec<u64> {
        self.state.acked.lock().expect("acked").clone()
    }

    /// How many lines got a 2xx so far.
    pub fn acked_len(&self) -> usize {
        self.state.acked.lock().expect("acked").len()
    }

    /// Lines posted so far (numbers given out), answered or not.
    pub fn lines_posted(&self) -> u64 {
        self.state.next.load(Ordering::Relaxed)
    }

    /// Lines of batches given up after the last retry (retrying loaders only).
    pub fn lines_dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// Every answer so far, by status (0: no answer).
    pub fn statuses(&self) -> HashMap<u16, u64> {
        self.state.statuses.lock().expect("statuses").clone()
    }

    pub fn status_count(&self, code: u16) -> u64 {
        self.state
            .statuses
            .lock()
            .expect("statuses")
            .get(&code)
            .copied()
            .unwrap_or(0)
    }
}

/// The `n` of every line in the stream, with duplicates.
pub async fn stream_numbers(kc: &KinesisClient, stream: &str) -> Vec<i64> {
    kc.read_all(stream)
        .await
        .iter()
        .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.data).ok())
        .filter_map(|v| v["n"].as_i64())
        .collect()
}

/// What a stream holds of the numbered lines.
pub struct InStream {
    /// How many times each number is in the stream.
    pub counts: HashMap<i64, usize>,
    /// Lines in the stream, duplicates included.
    pub total: usize,
}

impl InStream {
    /// Numbers in the stream.
    pub fn distinct(&self) -> usize {
        self.counts.len()
    }

    /// Lines in the stream more than once (each extra copy counted).
    pub fn duplicates(&self) -> usize {
        self.counts.values().map(|c| c - 1).sum()
    }
}

/// Waits until every number in `acked` is in the stream, or panics after `timeout` saying how
/// many are missing (and which, for the first ten).
pub async fn all_delivered(
    kc: &KinesisClient,
    stream: &str,
    acked: &[u64],
    timeout: Duration,
) -> InStream {
    let want: HashSet<i64> = acked.iter().map(|&n| n as i64).collect();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got = stream_numbers(kc, stream).await;
        let mut counts: HashMap<i64, usize> = HashMap::new();
        for n in &got {
            *counts.entry(*n).or_default() += 1;
        }
        let mut missing: Vec<i64> = want
            .iter()
            .filter(|n| !counts.contains_key(n))
            .copied()
            .collect();
        if missing.is_empty() {
            return InStream {
                counts,
                total: got.len(),
            };
        }
        if tokio::time::Instant::now() > deadline {
            missing.sort_unstable();
            panic!(
                "{} of {} accepted lines never reached the stream, e.g. {:?}",
                missing.len(),
                want.len(),
                &missing[..missing.len().min(10)]
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
