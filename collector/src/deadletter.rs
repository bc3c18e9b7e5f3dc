//! The dead-letter file: lines the collector accepted but cannot deliver, each with its reason.
//!
//! Invariant: a line is acknowledged to the buffer (or answered 2xx, for lines refused at ingest)
//! only after its dead-letter record is written and synced, so "never dropped without a trace"
//! holds across crashes. One NDJSON record per line: `time`, `reason`, `error_code`, `detail`,
//! `bytes`, and `line` (UTF-8) or `line_base64` (anything else).

use crate::metrics::Metrics;
use bytes::Bytes;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    file: Mutex<Option<std::fs::File>>,
    metrics: Arc<Metrics>,
}

impl DeadLetter {
    pub fn new(path: &Path, metrics: Arc<Metrics>) -> Self {
        DeadLetter {
            path: path.to_path_buf(),
            file: Mutex::new(None),
            metrics,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        if guard.is_none() {
            if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            *guard = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let file = guard
            .as_mut()
            .ok_or_else(|| std::io::Error::other("dead-letter file not open"))?;
        file.write_all(&out)?;
        file.sync_data()?;
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
            &dir.path().join("sub/dead.ndjson"),
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
        let text = std::fs::read_to_string(d.path()).expect("read");
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
}
