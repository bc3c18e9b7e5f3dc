//! The disk buffer's writer thread: appends entries to the active segment, groups them, syncs
//! them as `fsync` says and only then answers each append; rolls segments at `segment_bytes`.
//!
//! Invariant: an append is answered only once its bytes are written (and synced, unless
//! `fsync: never`), and its position is published to readers only then.

use super::segment::HEADER_LEN;
use crate::config::FsyncPolicy;
use crate::lines::LineBatch;
use crate::metrics::Metrics;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// A position in the buffer: segment number and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub seg: u64,
    pub offset: u64,
}

/// The writer's published progress.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct WritePos {
    pub(super) pos: Pos,
    /// The writer has stopped; nothing more will come.
    pub(super) done: bool,
}

pub(super) struct Append {
    pub(super) header: [u8; HEADER_LEN],
    pub(super) batch: LineBatch,
    pub(super) arrived_ms: u64,
    pub(super) reply: oneshot::Sender<Result<(), WriteError>>,
}

/// Entries just written, kept in memory for a reader that is caught up, so that it does not read
/// back from disk what it was just handed: `(start, next offset, batch, arrival)`, in write order.
#[derive(Default)]
pub(super) struct Recent {
    pub(super) entries: VecDeque<(Pos, u64, LineBatch, u64)>,
    pub(super) bytes: usize,
}

/// Most payload bytes [`Recent`] holds; a reader further behind reads from disk.
pub(super) const RECENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug)]
pub(super) enum WriteError {
    /// Nothing usable reached the file.
    NotWritten(String),
    /// Written, but the sync failed: it may or may not survive a crash.
    NotSynced(String),
}

pub(super) fn seg_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:016}.seg"))
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn create_segment(dir: &Path, seg: u64, sync_dir: bool) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(seg_path(dir, seg))?;
    if sync_dir {
        File::open(dir)?.sync_all()?;
    }
    Ok(f)
}

/// The writer thread: appends, groups and syncs.
pub(super) struct SegmentWriter {
    pub(super) dir: PathBuf,
    pub(super) seg: u64,
    pub(super) file: File,
    pub(super) offset: u64,
    pub(super) segment_bytes: u64,
    pub(super) fsync: FsyncPolicy,
    pub(super) interval: Duration,
    /// `interval` syncs early once this many bytes are unsynced.
    pub(super) sync_bytes: u64,
    pub(super) unsynced: u64,
    pub(super) syncs: Arc<Metrics>,
    pub(super) published: watch::Sender<WritePos>,
    pub(super) segments: Arc<Mutex<BTreeMap<u64, u64>>>,
    pub(super) recent: Arc<Mutex<Recent>>,
}

pub(super) type Reply = oneshot::Sender<Result<(), WriteError>>;

impl SegmentWriter {
    pub(super) fn run(mut self, rx: mpsc::Receiver<Append>) {
        let mut waiting: Vec<Reply> = Vec::new();
        let mut last_sync = Instant::now();
        loop {
            let first = if waiting.is_empty() {
                match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                }
            } else {
                match rx.recv_timeout(self.interval.saturating_sub(last_sync.elapsed())) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            };
            let mut group: Vec<Append> = first.into_iter().collect();
            while group.len() < 1024 {
                match rx.try_recv() {
                    Ok(m) => group.push(m),
                    Err(_) => break,
                }
            }
            for m in group {
                match self.write(&m) {
                    Ok(()) => waiting.push(m.reply),
                    Err(e) => {
                        let _ = m.reply.send(Err(e));
                    }
                }
            }
            self.publish(false);
            let due = match self.fsync {
                FsyncPolicy::Never | FsyncPolicy::Always => true,
                FsyncPolicy::Interval => {
                    self.unsynced >= self.sync_bytes || last_sync.elapsed() >= self.interval
                }
            };
            if due && !waiting.is_empty() {
                let synced = self.sync();
                last_sync = Instant::now();
                for r in waiting.drain(..) {
                    let _ = r.send(synced.clone().map_err(WriteError::NotSynced));
                }
            }
        }
        let synced = self.sync();
        for r in waiting.drain(..) {
            let _ = r.send(synced.clone().map_err(WriteError::NotSynced));
        }
        self.publish(true);
    }

    pub(super) fn write(&mut self, m: &Append) -> Result<(), WriteError> {
        let payload = m.batch.joined();
        let len = (HEADER_LEN + payload.len()) as u64;
        if self.offset > 0 && self.offset + len > self.segment_bytes {
            self.roll()
                .map_err(|e| WriteError::NotWritten(e.to_string()))?;
        }
        let res = self
            .file
            .write_all(&m.header)
            .and_then(|_| self.file.write_all(payload));
        match res {
            Ok(()) => {
                let start = Pos {
                    seg: self.seg,
                    offset: self.offset,
                };
                self.offset += len;
                self.unsynced += len;
                *lock(&self.segments).entry(self.seg).or_insert(0) += len;
                // Before the position is published, so a caught-up reader always finds it.
                let mut recent = lock(&self.recent);
                while recent.bytes + payload.len() > RECENT_BYTES {
                    match recent.entries.pop_front() {
                        Some(old) => recent.bytes -= old.2.joined().len(),
                        None => break,
                    }
                }
                if payload.len() <= RECENT_BYTES {
                    recent.bytes += payload.len();
                    recent
                        .entries
                        .push_back((start, self.offset, m.batch.clone(), m.arrived_ms));
                }
                Ok(())
            }
            Err(e) => {
                // Never append after a partial entry: continue in a fresh segment.
                let _ = self.roll();
                Err(WriteError::NotWritten(e.to_string()))
            }
        }
    }

    pub(super) fn roll(&mut self) -> std::io::Result<()> {
        if self.fsync != FsyncPolicy::Never {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        let next = self.seg + 1;
        let file = create_segment(&self.dir, next, self.fsync != FsyncPolicy::Never)?;
        lock(&self.segments).insert(next, 0);
        self.file = file;
        self.seg = next;
        self.offset = 0;
        self.publish(false);
        Ok(())
    }

    pub(super) fn sync(&mut self) -> Result<(), String> {
        if self.fsync == FsyncPolicy::Never {
            return Ok(());
        }
        self.unsynced = 0;
        self.syncs.buffer_syncs.inc();
        self.file.sync_data().map_err(|e| e.to_string())
    }

    pub(super) fn publish(&self, done: bool) {
        self.published.send_replace(WritePos {
            pos: Pos {
                seg: self.seg,
                offset: self.offset,
            },
            done,
        });
    }
}
