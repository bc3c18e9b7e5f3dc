//! The S3 output: fills one object at a time, uploads it in parts as it grows, closes it by size,
//! by age or where it ended before a restart, and acknowledges its entries once it is stored.
//!
//! Memory is bounded whatever the object size: the object being filled holds about one part of
//! compressed bytes, at most `S3_PARTS_IN_FLIGHT` parts are being uploaded, and at most
//! `COMPLETING` objects are being finished; when those are spent the output stops reading the
//! buffer (its lane), which leaves every other output's pace alone.

use super::client::S3Client;
use super::cuts::Cuts;
use super::error::S3StartError;
use super::object::{ObjectBuilder, Sealed};
use crate::buffer::{Buffer, Entry, Pos};
use crate::config::keytemplate::KeyValues;
use crate::config::{S3Config, S3_PARTS_IN_FLIGHT, S3_PART_BYTES};
use crate::metrics::Metrics;
use crate::output::acks::Acks;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

/// Objects being finished (last part, completion) at once.
const COMPLETING: usize = 2;
/// How often the age of the open object is checked.
const TICK: Duration = Duration::from_secs(1);

struct Open {
    builder: ObjectBuilder,
    key: String,
    /// Where this object ended before a restart: it ends there again.
    target_end: Option<Pos>,
    upload: Option<Multipart>,
}

struct Multipart {
    id: String,
    parts: Vec<JoinHandle<String>>,
}

pub struct S3Output {
    cfg: Arc<S3Config>,
    client: Arc<S3Client>,
    acks: Arc<Acks>,
    buffer: Arc<Buffer>,
    instance: String,
    cuts: Cuts,
    current: Option<Open>,
    parts: Arc<Semaphore>,
    completing: JoinSet<()>,
    /// Raw bytes an object may cover before it is closed, so that it never holds more of the
    /// buffer than the buffer can spare.
    hold_limit: u64,
    metrics: Arc<Metrics>,
}

impl S3Output {
    /// Connects and checks the bucket; an error names the key or permission to fix.
    pub async fn start(
        cfg: Arc<S3Config>,
        acks: Arc<Acks>,
        buffer: Arc<Buffer>,
        buffer_max_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Result<S3Output, S3StartError> {
        let client = S3Client::connect(cfg.clone(), metrics.clone()).await?;
        if let Some(f) = client.check().await? {
            tracing::warn!(bucket = %cfg.bucket, error = %f, "s3: cannot reach the store at start; uploads wait for it");
        }
        let instance = buffer.id().to_string();
        tracing::info!(bucket = %cfg.bucket, prefix = %cfg.prefix, instance = %instance, "s3: archiving every line");
        Ok(S3Output {
            cuts: Cuts::load(buffer.dir()),
            client: Arc::new(client),
            acks,
            buffer,
            instance,
            current: None,
            parts: Arc::new(Semaphore::new(S3_PARTS_IN_FLIGHT)),
            completing: JoinSet::new(),
            hold_limit: (buffer_max_bytes / 4).max(S3_PART_BYTES as u64),
            cfg,
            metrics,
        })
    }

    pub fn tick_every(&self) -> Duration {
        TICK.min(self.cfg.max_object_age)
    }

    /// Adds an entry to the open object; may wait for room to upload (backpressure).
    pub async fn submit(&mut self, entry: Entry) {
        if let Some(t) = self.current.as_ref().and_then(|o| o.target_end) {
            if entry.start >= t {
                self.close().await;
            }
        }
        if self.current.is_none() {
            match self.open(&entry) {
                Ok(o) => self.current = Some(o),
                Err(e) => {
                    // Only a zstd context that cannot be made; nothing to store it in.
                    tracing::error!(error = %e, "s3: cannot start an object");
                    return;
                }
            }
        }
        let Some(open) = self.current.as_mut() else {
            return;
        };
        if let Err(e) = open.builder.push(&entry) {
            tracing::error!(error = %e, "s3: cannot compress lines");
        }
        drop(entry);
        self.upload_full_parts().await;
        let Some(open) = self.current.as_mut() else {
            return;
        };
        let full = match open.target_end {
            Some(t) => open.builder.end >= t,
            None => {
                open.builder.stored_bytes() >= self.cfg.max_object_bytes
                    || open.builder.raw_bytes >= self.hold_limit
            }
        };
        if full {
            self.close().await;
        }
    }

    /// Closes the open object once it is old enough.
    pub async fn flush_due(&mut self) {
        if self
            .current
            .as_ref()
            .is_some_and(|o| o.builder.opened.elapsed() >= self.cfg.max_object_age)
        {
            self.close().await;
        }
        while let Some(done) = self.completing.try_join_next() {
            log_join(done);
        }
    }

    /// Stores everything held and waits until it is stored.
    pub async fn finish(&mut self) {
        self.close().await;
        while let Some(done) = self.completing.join_next().await {
            log_join(done);
        }
    }

    fn open(&self, first: &Entry) -> std::io::Result<Open> {
        let builder = ObjectBuilder::new(self.cfg.compression, first)?;
        let id = format!(
            "{}-{:016x}{:012x}",
            self.instance, first.start.seg, first.start.offset
        );
        let key = self.cfg.key.render(&KeyValues {
            prefix: &self.cfg.prefix,
            time_ms: first.arrived_ms,
            id: &id,
            ext: self.cfg.compression.extension(),
        });
        Ok(Open {
            builder,
            key,
            target_end: self.cuts.end_for(first.start),
            upload: None,
        })
    }

    /// Uploads the open object's compressed bytes once a part's worth is waiting.
    async fn upload_full_parts(&mut self) {
        let Some(open) = self.current.as_mut() else {
            return;
        };
        while let Some(part) = open.builder.take_part(S3_PART_BYTES) {
            if open.upload.is_none() {
                let id = self.client.start_multipart(&open.key).await;
                open.upload = Some(Multipart {
                    id,
                    parts: Vec::new(),
                });
            }
            let Some(up) = open.upload.as_mut() else {
                return;
            };
            let permit = self.parts.clone().acquire_owned().await.ok();
            let client = self.client.clone();
            let (key, id) = (open.key.clone(), up.id.clone());
            let number = up.parts.len() as i32 + 1;
            let metrics = self.metrics.clone();
            up.parts.push(tokio::spawn(async move {
                let _permit = permit;
                let etag = client
                    .upload_part(&key, &id, number, Bytes::from(part))
                    .await;
                metrics.s3_parts.inc();
                etag
            }));
        }
    }

    /// Closes the open object: remembers where it ends, then stores it in the background and
    /// acknowledges its entries once stored.
    async fn close(&mut self) {
        let Some(open) = self.current.take() else {
            return;
        };
        let stored_before = open.builder.taken_bytes;
        let (rest, sealed) = match open.builder.finish() {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "s3: cannot finish compressing an object");
                return;
            }
        };
        let saved = self.buffer.saved_position(self.acks.lane());
        if let Err(e) = self.cuts.record(sealed.first, sealed.end, saved) {
            tracing::error!(error = %e, "s3: cannot remember where an object ends; after a crash its lines may be stored twice");
        }
        while self.completing.len() >= COMPLETING {
            if let Some(done) = self.completing.join_next().await {
                log_join(done);
            }
        }
        let permit = self.parts.clone().acquire_owned().await.ok();
        let client = self.client.clone();
        let acks = self.acks.clone();
        let metrics = self.metrics.clone();
        let key = open.key;
        let size = stored_before + rest.len() as u64;
        let upload = open.upload;
        self.completing.spawn(async move {
            let _permit = permit;
            store(&client, &metrics, &key, upload, rest).await;
            done(&acks, &metrics, &sealed, size);
            tracing::debug!(key = %key, lines = sealed.lines, bytes = size, "s3: object stored");
        });
    }
}

/// Stores an object: its last part and the completion, or the whole of it in one request.
async fn store(
    client: &S3Client,
    metrics: &Metrics,
    key: &str,
    upload: Option<Multipart>,
    rest: Vec<u8>,
) {
    match upload {
        None => client.put(key, Bytes::from(rest)).await,
        Some(up) => {
            let mut etags = Vec::with_capacity(up.parts.len() + 1);
            for part in up.parts {
                match part.await {
                    Ok(tag) => etags.push(tag),
                    // A part task only ends early when the runtime shuts down.
                    Err(e) => {
                        tracing::error!(error = %e, key, "s3: a part upload was stopped");
                        return;
                    }
                }
            }
            if !rest.is_empty() {
                let number = etags.len() as i32 + 1;
                etags.push(
                    client
                        .upload_part(key, &up.id, number, Bytes::from(rest))
                        .await,
                );
                metrics.s3_parts.inc();
            }
            client.complete(key, &up.id, &etags).await;
        }
    }
}

fn done(acks: &Acks, metrics: &Metrics, sealed: &Sealed, size: u64) {
    metrics.s3_objects.inc();
    metrics.s3_lines.add(sealed.lines);
    metrics.s3_bytes.add(size);
    acks.done_many(sealed.entries.iter().copied());
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "s3: an object upload task failed");
    }
}
