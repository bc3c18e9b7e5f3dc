//! `collector dead-letter replay`: puts dead-lettered lines back on their way.
//!
//! The lines of the dead-letter files (the rotated ones, oldest first, then the current one) are
//! sent through the same output code the collector runs (its batching, partitioning, retries),
//! started in this process on a memory buffer of its own. Lines that fail again are dead-lettered
//! again, as new records. Lines set aside for a reason that replaying cannot change
//! (`line_too_long`, `record_too_large`) are skipped unless asked for, and counted.
//!
//! Invariant: a record is replayed once. The journal `<dead_letter.path>.replayed` keeps, per file
//! (known by a digest of its first record, which rotation does not change), how far it was
//! replayed, and is saved (synced, then renamed into place) only once every line read was
//! delivered or dead-lettered again; a replay cut short sends its lines again next time, never
//! skips one. The journal also keeps the totals the collector's `/status` shows beside the ledger.

use crate::buffer::Buffer;
use crate::config::{BufferConfig, BufferKind, Config, FsyncPolicy, OutputConfig, WhenFull};
use crate::deadletter::DeadLetter;
use crate::health::Delivery;
use crate::lines::LineBatch;
use crate::metrics::Metrics;
use crate::output::error::OutputError;
use crate::output::start::{start, Shared};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Reasons replaying cannot change: skipped unless `all`.
const PERMANENT_REASONS: [&str; 2] = ["line_too_long", "record_too_large"];
/// Lines per batch put into the replay's buffer.
const REPLAY_BATCH_LINES: usize = 500;
/// The replay's own memory buffer.
const REPLAY_BUFFER_BYTES: u64 = 64 << 20;

/// What the journal keeps.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Journal {
    /// Per file (digest of its first record): bytes replayed from its start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, u64>,
    /// Lines sent again, in every replay so far.
    pub replayed_lines: u64,
    /// Of those, delivered; the rest were dead-lettered again.
    pub delivered: u64,
    pub dead_lettered_again: u64,
    /// Lines left in the files for a reason replaying cannot change.
    pub skipped: BTreeMap<String, u64>,
}

/// What one replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub files: usize,
    pub lines: u64,
    pub delivered: u64,
    pub dead_lettered_again: u64,
    pub skipped: BTreeMap<String, u64>,
    /// Records that could not be read (not JSON, no line): left where they are, counted.
    pub unreadable: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("dead_letter.path: cannot read {0}: {1}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("cannot save the replay journal {0}: {1}")]
    Journal(PathBuf, #[source] std::io::Error),
    #[error("no output named {0:?} in the configuration (outputs: {1})")]
    NoOutput(String, String),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("replay buffer: {0}")]
    Buffer(#[from] crate::buffer::BufferError),
    #[error("replay buffer: {0}")]
    OpenBuffer(#[from] crate::buffer::OpenError),
}

/// The journal beside the dead-letter file `path`.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".replayed");
    PathBuf::from(name)
}

/// The journal, or an empty one when there is none (or it cannot be read).
pub fn read_journal(path: &Path) -> Journal {
    std::fs::read(journal_path(path))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_journal(path: &Path, j: &Journal) -> std::io::Result<()> {
    let target = journal_path(path);
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(j).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The dead-letter files, oldest first: `.keep` ... `.1`, then the current one.
fn files(path: &Path, keep: usize) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..=keep.max(1))
        .rev()
        .map(|n| DeadLetter::rotated(path, n))
        .filter(|p| p.exists())
        .collect();
    if path.exists() {
        out.push(path.to_path_buf());
    }
    out
}

/// The line a record carries.
fn record_line(v: &serde_json::Value) -> Option<Vec<u8>> {
    if let Some(l) = v["line"].as_str() {
        return Some(l.as_bytes().to_vec());
    }
    v["line_base64"]
        .as_str()
        .and_then(|b| base64_simd::STANDARD.decode_to_vec(b).ok())
}

/// Replays the dead-letter files of `config` through the output named `output`; with `all`,
/// lines set aside for a permanent reason too.
pub async fn replay(config: &Config, output: &str, all: bool) -> Result<Report, ReplayError> {
    let dl = &config.dead_letter;
    let out = config
        .outputs
        .iter()
        .find(|o| o.name() == output)
        .ok_or_else(|| {
            ReplayError::NoOutput(
                output.to_string(),
                config
                    .outputs
                    .iter()
                    .map(OutputConfig::name)
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })?;
    let mut journal = read_journal(&dl.path);
    let mut report = Report::default();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut progress: Vec<(String, u64)> = Vec::new();
    for file in files(&dl.path, dl.keep) {
        let bytes = std::fs::read(&file).map_err(|e| ReplayError::Read(file.clone(), e))?;
        // Whole records only: one being written is left for the next replay.
        let end = memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1);
        let Some(first) = bytes[..end].split(|&b| b == b'\n').next() else {
            continue;
        };
        if first.is_empty() {
            continue;
        }
        let key = format!("{:x}", Sha256::digest(first));
        let from = journal.files.get(&key).copied().unwrap_or(0) as usize;
        if from >= end {
            continue;
        }
        report.files += 1;
        for rec in bytes[from.min(end)..end]
            .split(|&b| b == b'\n')
            .filter(|r| !r.is_empty())
        {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(rec) else {
                report.unreadable += 1;
                continue;
            };
            let reason = v["reason"].as_str().unwrap_or("other");
            if !all && PERMANENT_REASONS.contains(&reason) {
                *report.skipped.entry(reason.to_string()).or_default() += 1;
                continue;
            }
            match record_line(&v) {
                Some(l) if !l.is_empty() => lines.push(l),
                _ => report.unreadable += 1,
            }
        }
        progress.push((key, end as u64));
    }
    if progress.is_empty() {
        return Ok(report);
    }

    let metrics = Arc::new(Metrics::default());
    let buffer_cfg = BufferConfig {
        kind: BufferKind::Memory,
        dir: PathBuf::new(),
        max_bytes: REPLAY_BUFFER_BYTES,
        fsync: FsyncPolicy::Never,
        fsync_interval: Duration::from_millis(100),
        fsync_bytes: 0,
        when_full: WhenFull::Block,
        block_timeout: Duration::from_secs(24 * 3600),
        segment_bytes: 0,
        ack_save_interval: config.buffer.ack_save_interval,
    };
    let buffer = Arc::new(Buffer::open_lanes(
        &buffer_cfg,
        &[output.to_string()],
        metrics.clone(),
    )?);
    let shared = Shared {
        buffer: buffer.clone(),
        dead: Arc::new(DeadLetter::new(dl, metrics.clone())),
        delivery: Arc::new(Delivery::new(config.delivery_alert_after, metrics.clone())),
        metrics: metrics.clone(),
        retry: config.retry,
        max_line_bytes: config.ingest.max_line_bytes,
        buffer_max_bytes: REPLAY_BUFFER_BYTES,
    };
    let (driver, out) = start(out, 0, None, &shared).await?;
    let task = tokio::spawn(driver.drive(out));
    for chunk in lines.chunks(REPLAY_BATCH_LINES) {
        buffer.append(LineBatch::from_lines(chunk)).await?;
    }
    buffer.close();
    let _ = task.await;
    let c = buffer.ledger().counts(0);
    report.lines = c.received;
    report.delivered = c.settled.delivered;
    report.dead_lettered_again = c.settled.dead_lettered();

    for (key, end) in progress {
        journal.files.insert(key, end);
    }
    journal.replayed_lines += report.lines;
    journal.delivered += report.delivered;
    journal.dead_lettered_again += report.dead_lettered_again;
    for (reason, n) in &report.skipped {
        *journal.skipped.entry(reason.clone()).or_default() += n;
    }
    save_journal(&dl.path, &journal)
        .map_err(|e| ReplayError::Journal(journal_path(&dl.path), e))?;
    Ok(report)
}
