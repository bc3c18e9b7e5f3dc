//! Numbered lines (`{"n":<k>,"pad":"…"}`) posted continuously to a collector, remembering which
//! numbers got a 2xx, and read back from the stream: the check that no accepted line is lost.

use crate::collector::CollectorProcess;
use crate::KinesisClient;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Posts numbered lines continuously; remembers which numbers got a 2xx.
pub struct Loader {
    /// Where to post; updated when the collector restarts on another port.
    url: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    statuses: Arc<Mutex<HashMap<u16, u64>>>,
    next: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Loader {
    pub fn start(first_url: String, lines_per_post: u64) -> Loader {
        Loader::start_padded(first_url, lines_per_post, 180)
    }

    /// Like [`Loader::start`], each line padded with `pad` bytes.
    pub fn start_padded(first_url: String, lines_per_post: u64, pad: usize) -> Loader {
        let url = Arc::new(Mutex::new(first_url));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let p = paused.clone();
        let acked = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(HashMap::new()));
        let next = Arc::new(AtomicU64::new(0));
        let (s, a, st, n, u) = (
            stop.clone(),
            acked.clone(),
            statuses.clone(),
            next.clone(),
            url.clone(),
        );
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            let pad = "p".repeat(pad);
            while !s.load(Ordering::Relaxed) {
                if p.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let first = n.fetch_add(lines_per_post, Ordering::Relaxed);
                let nums: Vec<u64> = (first..first + lines_per_post).collect();
                let body: String = nums
                    .iter()
                    .map(|k| format!("{{\"n\":{k},\"pad\":\"{pad}\"}}\n"))
                    .collect();
                let target = format!("{}/logs", u.lock().expect("url"));
                let status = match client.post(target).body(body).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                if status == 204 {
                    a.lock().expect("acked").extend(nums);
                }
                *st.lock().expect("statuses").entry(status).or_default() += 1;
                if status != 204 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        Loader {
            url,
            stop,
            paused,
            acked,
            statuses,
            next,
            task,
        }
    }

    /// Posts to this collector from now on (after a restart on another port).
    pub fn follow(&self, proc: &CollectorProcess) {
        *self.url.lock().expect("url") = proc.url.clone();
    }

    /// Stops posting; returns the numbers that got a 2xx and how many answers had each status.
    pub async fn finish(self) -> (Vec<u64>, HashMap<u16, u64>) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let _ = self.next;
        let acked = self.acked.lock().expect("acked").clone();
        let statuses = self.statuses.lock().expect("statuses").clone();
        (acked, statuses)
    }

    /// Stops posting until [`Loader::resume`] (a post under way finishes).
    pub fn pause(&self) {
        self.paused.store(true, Ordering::Relaxed);
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::Relaxed);
    }

    /// How many lines got a 2xx so far.
    pub fn acked_len(&self) -> usize {
        self.acked.lock().expect("acked").len()
    }

    pub fn status_count(&self, code: u16) -> u64 {
        self.statuses
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
