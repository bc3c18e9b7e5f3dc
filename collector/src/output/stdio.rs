//! The `stdout` and `file` outputs: each line written as it is, newline-terminated.
//!
//! For trying the collector out and for tests; an entry is acknowledged once its lines are
//! written and flushed. A failed write is retried (with a pause) until it succeeds: the lines
//! stay in the buffer meanwhile, never dropped.

use super::acks::Acks;
use crate::buffer::Entry;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};

pub struct StdioOutput {
    target: Target,
    writer: Option<Box<dyn AsyncWrite + Send + Sync + Unpin>>,
}

enum Target {
    Stdout,
    File(PathBuf),
}

impl StdioOutput {
    pub fn stdout() -> Self {
        StdioOutput {
            target: Target::Stdout,
            writer: None,
        }
    }

    pub fn file(path: PathBuf) -> Self {
        StdioOutput {
            target: Target::File(path),
            writer: None,
        }
    }

    async fn open(&self) -> std::io::Result<Box<dyn AsyncWrite + Send + Sync + Unpin>> {
        Ok(match &self.target {
            Target::Stdout => Box::new(tokio::io::stdout()),
            Target::File(path) => Box::new(
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await?,
            ),
        })
    }

    pub async fn submit(&mut self, entry: Entry, acks: &Arc<Acks>) {
        let mut data = Vec::with_capacity(entry.batch.joined().len() + 1);
        data.extend_from_slice(entry.batch.joined());
        data.push(b'\n');
        loop {
            match self.write(&data).await {
                Ok(()) => break,
                Err(e) => {
                    self.writer = None;
                    tracing::error!(error = %e, "output write failed; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let m = acks.metrics();
        m.output_lines.add(entry.batch.len() as u64);
        m.output_records.add(entry.batch.len() as u64);
        m.output_bytes.add(entry.batch.line_bytes() as u64);
        acks.done(entry.id, entry.batch.len());
    }

    async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.writer.is_none() {
            self.writer = Some(self.open().await?);
        }
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("output not open"))?;
        w.write_all(data).await?;
        w.flush().await
    }

    pub async fn finish(&mut self) {
        if let Some(w) = self.writer.as_mut() {
            let _ = w.flush().await;
        }
    }
}
