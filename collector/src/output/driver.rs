//! The driver: reads one output's entries from the buffer (its lane), in order, and feeds them
//! to that output. Every output has its own driver.
//!
//! Lines longer than `ingest.max_line_bytes` travel through the buffer with their batch (so a
//! batch is kept whole or not at all) and are set aside here, before the output sees them: they
//! go to the dead-letter file with reason `line_too_long`, and count as accounted for.
//!
//! Invariant: every line of every entry read is handed to the output or dead-lettered, and the
//! entry is registered with [`Acks`] before any of its lines can be acknowledged.

use super::acks::Acks;
use super::kinesis::output::KinesisOutput;
use super::s3::output::S3Output;
use super::stdio::StdioOutput;
use crate::buffer::{Buffer, Entry};
use crate::deadletter::{DeadLetter, DeadLine};
use crate::lines::LineBatchBuilder;
use std::sync::Arc;
use std::time::Duration;

/// The configured output.
pub enum Output {
    Stdio(StdioOutput),
    Kinesis(Box<KinesisOutput>),
    S3(Box<S3Output>),
}

impl Output {
    /// Takes an entry; may wait (backpressure) but never drops it.
    async fn submit(&mut self, entry: Entry, acks: &Arc<Acks>) {
        match self {
            Output::Stdio(o) => o.submit(entry, acks).await,
            Output::Kinesis(o) => o.submit(entry).await,
            Output::S3(o) => o.submit(entry).await,
        }
    }

    /// Sends what has waited long enough (the batch duration).
    async fn tick(&mut self) {
        match self {
            Output::Stdio(_) => {}
            Output::Kinesis(o) => o.flush_due().await,
            Output::S3(o) => o.flush_due().await,
        }
    }

    fn tick_every(&self) -> Duration {
        match self {
            Output::Stdio(_) => Duration::from_secs(3600),
            Output::Kinesis(o) => o.tick_every(),
            Output::S3(o) => o.tick_every(),
        }
    }

    /// Sends everything held and waits until it is delivered.
    async fn finish(&mut self) {
        match self {
            Output::Stdio(o) => o.finish().await,
            Output::Kinesis(o) => o.finish().await,
            Output::S3(o) => o.finish().await,
        }
    }
}

/// What the driver needs besides the output.
pub struct Driver {
    pub buffer: Arc<Buffer>,
    /// The output's lane in the buffer and its accounting.
    pub acks: Arc<Acks>,
    pub dead: Arc<DeadLetter>,
    /// Lines longer than this are dead-lettered before the output sees them; `None` for an
    /// output that takes lines of any length (the archive keeps every line as received).
    pub max_line_bytes: Option<usize>,
}

impl Driver {
    /// Feeds buffered entries to the output until the buffer is closed and drained.
    pub async fn drive(self, mut output: Output) {
        let mut tick = tokio::time::interval(output.tick_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                entry = self.buffer.next(self.acks.lane()) => match entry {
                    Some(e) => {
                        self.acks.register(&e).await;
                        let e = self.set_aside_long_lines(e).await;
                        if !e.batch.is_empty() {
                            output.submit(e, &self.acks).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => output.tick().await,
            }
        }
        output.finish().await;
    }

    /// Dead-letters the entry's over-long lines and returns the entry without them.
    async fn set_aside_long_lines(&self, entry: Entry) -> Entry {
        let Some(max) = self.max_line_bytes else {
            return entry;
        };
        // No line is longer than the batch: the common case costs no look at each line.
        if entry.batch.joined().len() <= max || entry.batch.iter().all(|l| l.len() <= max) {
            return entry;
        }
        let mut kept = LineBatchBuilder::default();
        let mut dead = Vec::new();
        for i in 0..entry.batch.len() {
            let line = entry.batch.line(i);
            if line.len() > max {
                dead.push(DeadLine {
                    detail: Some(format!(
                        "{} bytes > ingest.max_line_bytes {max}",
                        line.len()
                    )),
                    line,
                    reason: "line_too_long",
                    error_code: None,
                });
            } else {
                kept.push(&line);
            }
        }
        let n = dead.len();
        self.dead.write_until_written(dead).await;
        self.acks.dead_lettered([(entry.id, n)], "line_too_long");
        Entry {
            batch: kept.finish(),
            ..entry
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BufferConfig;
    use crate::lines::LineBatch;
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn long_lines_are_dead_lettered_and_the_rest_delivered_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let metrics = Arc::new(Metrics::default());
        let buffer = Arc::new(
            Buffer::open(&BufferConfig::for_tests(1 << 20), metrics.clone()).expect("buffer"),
        );
        let acks = Arc::new(Acks::new(buffer.clone(), 0, None, metrics.clone()));
        let dead = Arc::new(DeadLetter::new(
            &crate::config::DeadLetterConfig::at(dir.path().join("dead.ndjson")),
            metrics.clone(),
        ));
        let long = "L".repeat(20);
        buffer
            .append(LineBatch::from_lines(["a", long.as_str(), "b"]))
            .await
            .expect("append");
        buffer
            .append(LineBatch::from_lines([long.as_str()]))
            .await
            .expect("append");
        buffer.close();
        let out = dir.path().join("out.txt");
        Driver {
            buffer: buffer.clone(),
            acks: acks.clone(),
            dead,
            max_line_bytes: Some(10),
        }
        .drive(Output::Stdio(StdioOutput::file(out.clone())))
        .await;
        assert_eq!(std::fs::read_to_string(&out).expect("out"), "a\nb\n");
        let dead = std::fs::read_to_string(dir.path().join("dead.ndjson")).expect("dead");
        let recs: Vec<serde_json::Value> = dead
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(recs.len(), 2);
        assert!(recs
            .iter()
            .all(|r| r["reason"] == "line_too_long" && r["line"] == long));
        assert_eq!(acks.outstanding(), 0, "every entry acknowledged");
        assert_eq!(metrics.dead_lettered.get("line_too_long"), 2);
    }
}
