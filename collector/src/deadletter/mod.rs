//! The dead-letter file: lines the collector accepted but cannot deliver, each with its reason.
//!
//! Invariant: a line is acknowledged to the buffer (or answered 2xx, for lines refused at ingest)
//! only after its dead-letter record is written and synced, so "never dropped without a trace"
//! holds across crashes. One NDJSON record per line: `time`, `reason`, `error_code`, `detail`,
//! `bytes`, and `line` (UTF-8) or `line_base64` (anything else).
//!
//! Rotation: a write that would take the file past `max_bytes` first renames it to `<path>.1`
//! (the older ones move up one number; the one past `keep` is deleted), so the files hold at most
//! about `(keep + 1) * max_bytes`. A record is never split across files.

pub(crate) mod replay;

use crate::config::DeadLetterConfig;
use crate::logging::ratelimit::Every;
use crate::metrics::Metrics;
use bytes::Bytes;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a write that failed waits before it is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// One line that could not be delivered.
#[derive(Debug, Clone)]
pub struct DeadLine {
    pub line: Bytes,
    /// Why: `line_too_long`, `record_too_large`, `retries_exhausted`, ...
    pub reason: &'static str,
    /// The Kinesis error code, when Kinesis refused it.
    pub error_code: Option<String>,
    pub detail: Option<String>,
}

#[derive(Serialize)]
struct Record<'a> {
    time: String,
    reason: &'a str,
    error_code: Option<&'a str>,
    detail: Option<&'a str>,
    bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line_base64: Option<String>,
}

pub struct DeadLetter {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    /// The open file and its size.
    file: Mutex<Option<(std::fs::File, u64)>>,
    metrics: Arc<Metrics>,
    /// Failed writes, logged at most once per interval.
    warnings: Every,
}

impl DeadLetter {
    pub fn new(cfg: &DeadLetterConfig, metrics: Arc<Metrics>) -> Self {
        DeadLetter {
            path: cfg.path.clone(),
            max_bytes: cfg.max_bytes,
            keep: cfg.keep,
            file: Mutex::new(None),
            metrics,
            warnings: Every::default(),
        }
    }

    /// The `n`th rotated file (`n >= 1`).
    pub fn rotated(path: &Path, n: usize) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Moves the current file to `.1` (and each older one up a number), deleting what passes
    /// `keep`.
    fn rotate(&self) -> std::io::Result<()> {
        if self.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        match std::fs::remove_file(Self::rotated(&self.path, self.keep)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..self.keep).rev() {
            match std::fs::rename(
                Self::rotated(&self.path, n),
                Self::rotated(&self.path, n + 1),
            ) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, Self::rotated(&self.path, 1))?;
        self.metrics.dead_letter_rotations.inc();
        Ok(())
    }

    /// Writes the records, trying again every [`RETRY_EVERY`] until the file takes them: their
    /// lines are acknowledged only once the records are on disk, so there is no giving up (a
    /// full disk or a bad path holds the output back, logged, until it is fixed).
    pub async fn write_until_written(self: &Arc<Self>, lines: Vec<DeadLine>) {
        while let Err(e) = self.write(lines.clone()).await {
            if self.warnings.allow() {
                tracing::error!(
                    error = %e,
                    path = %self.path.display(),
                    repeats = self.warnings.take_suppressed(),
                    "cannot write the dead-letter file; retrying"
                );
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    /// Appends and syncs the records; counts them by reason.
    pub async fn write(self: &Arc<Self>, lines: Vec<DeadLine>) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_blocking(&lines))
            .await
            .map_err(std::io::Error::other)?
    }

    fn write_blocking(&self, lines: &[DeadLine]) -> std::io::Result<()> {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let mut out = Vec::new();
        for l in lines {
            let text = std::str::from_utf8(&l.line).ok();
            let rec = Record {
                time: now.clone(),
                reason: l.reason,
                error_code: l.error_code.as_deref(),
                detail: l.detail.as_deref(),
                bytes: l.line.len(),
                line: text,
                line_base64: match text {
                    Some(_) => None,
                    None => Some(base64_simd::STANDARD.encode_to_string(&l.line)),
                },
            };
            serde_json::to_writer(&mut out, &rec)?;
            out.push(b'\n');
        }
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, size)) = guard.as_ref() {
            if *size > 0 && size + out.len() as u64 > self.max_bytes {
                *guard = None;
                self.rotate()?;
            }
        }
        if guard.is_none() {
            if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            let size = file.metadata()?.len();
            *guard = Some((file, size));
            if size > 0 && size + out.len() as u64 > self.max_bytes {
                *guard = None;
                self.rotate()?;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                *guard = Some((file, 0));
            }
        }
        let (file, size) = guard
            .as_mut()
            .ok_or_else(|| std::io::Error::other("dead-letter file not open"))?;
        if let Err(e) = file.write_all(&out).and_then(|()| file.sync_data()) {
            // Reopened (and its size read again) on the next write.
            *guard = None;
            return Err(e);
        }
        *size += out.len() as u64;
        for l in lines {
            self.metrics.dead_lettered.inc(l.reason);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_carry_reason_and_bytes() {
        let dir = tempfile::tempdir().expect("tmp");
        let m = Arc::new(Metrics::default());
        let d = Arc::new(DeadLetter::new(
            &DeadLetterConfig {
                path: dir.path().join("sub/dead.ndjson"),
                max_bytes: 1 << 20,
                keep: 1,
            },
            m.clone(),
        ));
        d.write(vec![
            DeadLine {
                line: Bytes::from_static(b"{\"a\":1}"),
                reason: "line_too_long",
                error_code: None,
                detail: Some("7 bytes > 4".into()),
            },
            DeadLine {
                line: Bytes::from_static(b"\xff\x00raw"),
                reason: "retries_exhausted",
                error_code: Some("ProvisionedThroughputExceededException".into()),
                detail: None,
            },
        ])
        .await
        .expect("write");
        let text = std::fs::read_to_string(&d.path).expect("read");
        let recs: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(recs[0]["reason"], "line_too_long");
        assert_eq!(recs[0]["line"], "{\"a\":1}");
        assert_eq!(recs[0]["bytes"], 7);
        assert_eq!(
            recs[1]["error_code"],
            "ProvisionedThroughputExceededException"
        );
        assert_eq!(recs[1]["line_base64"], "/wByYXc=");
        assert_eq!(m.dead_lettered.get("line_too_long"), 1);
        assert_eq!(m.dead_lettered.get("retries_exhausted"), 1);
    }

    fn line(i: usize) -> DeadLine {
        DeadLine {
            line: Bytes::from(format!("{{\"n\":{i:04}}}")),
            reason: "retries_exhausted",
            error_code: None,
            detail: None,
        }
    }

    #[tokio::test]
    async fn files_rotate_by_size_and_only_keep_are_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("dead.ndjson");
        let m = Arc::new(Metrics::default());
        let cfg = DeadLetterConfig {
            path: path.clone(),
            max_bytes: 1000,
            keep: 2,
        };
        let d = Arc::new(DeadLetter::new(&cfg, m.clone()));
        for i in 0..60 {
            d.write(vec![line(i)]).await.expect("write");
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let files = [
            path.clone(),
            DeadLetter::rotated(&path, 1),
            DeadLetter::rotated(&path, 2),
        ];
        for f in &files {
            let len = std::fs::metadata(f).expect("file kept").len();
            assert!(len <= 1000, "{} is {len} bytes", f.display());
        }
        assert!(!DeadLetter::rotated(&path, 3).exists(), "only 2 kept");
        // The newest lines are in the current file, the older ones in .1 then .2, none split.
        let newest: Vec<String> = read(&path).lines().map(str::to_string).collect();
        assert!(newest.last().is_some_and(|l| l.contains("0059")));
        for f in &files {
            for l in read(f).lines() {
                serde_json::from_str::<serde_json::Value>(l).expect("whole records");
            }
        }
        assert!(m.dead_letter_rotations.get() >= 2);
        // A new writer on the same files goes on with the current file's size.
        drop(d);
        let d = Arc::new(DeadLetter::new(&cfg, m.clone()));
        let before = m.dead_letter_rotations.get();
        for i in 60..80 {
            d.write(vec![line(i)]).await.expect("write");
        }
        assert!(m.dead_letter_rotations.get() > before);
        assert!(std::fs::metadata(&path).expect("current").len() <= 1000);

        // keep 0: the full file is deleted, only the current one stays.
        let cfg = DeadLetterConfig {
            path: dir.path().join("none.ndjson"),
            max_bytes: 1000,
            keep: 0,
        };
        let d = Arc::new(DeadLetter::new(&cfg, m.clone()));
        for i in 0..60 {
            d.write(vec![line(i)]).await.expect("write");
        }
        assert!(!DeadLetter::rotated(&cfg.path, 1).exists());
        assert!(read(&cfg.path).contains("0059"));
    }
}
