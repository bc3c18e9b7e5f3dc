//! The disk buffer's writer thread: appends entries to the active segment, groups them, syncs
//! them as `fsync` says and only then answers each append; rolls segments at `segment_bytes`.
//!
//! Invariant: an append is answered only once its bytes are written (and synced, unless
//! `fsync: never`), and its position is published to readers only then.

use super::room::is_no_room;
use super::segment::{Pending, HEADER_LEN};
use crate::buffer::entry::Pos;
use crate::buffer::ledger::Ledger;
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

/// The writer's published progress.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct WritePos {
    pub(super) pos: Pos,
    /// The writer has stopped; nothing more will come.
    pub(super) done: bool,
}

pub(super) struct Append {
    pub(super) header: Pending,
    pub(super) batch: LineBatch,
    pub(super) arrived_ms: u64,
    pub(super) reply: oneshot::Sender<Result<(), WriteError>>,
}

/// Entries just written, kept in memory for a reader that is caught up, so that it does not read
/// back from disk what it was just handed, in write order.
#[derive(Default)]
pub(super) struct Recent {
    pub(super) entries: VecDeque<RecentEntry>,
    pub(super) bytes: usize,
}

/// Most payload bytes [`Recent`] holds; a reader further behind reads from disk.
pub(super) const RECENT_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub(super) struct RecentEntry {
    pub(super) start: Pos,
    /// Where the next entry starts.
    pub(super) next: u64,
    pub(super) batch: LineBatch,
    pub(super) arrived_ms: u64,
    pub(super) seq: u64,
}

#[derive(Debug, Clone)]
pub(super) enum WriteError {
    /// The file system has no room for the entry; nothing of it stays in the file.
    NoRoom(Arc<std::io::Error>),
    /// Nothing usable reached the file.
    NotWritten(Arc<std::io::Error>),
    /// Written, but the sync failed: it may or may not survive a crash (and it will be read
    /// and delivered). `no_room` when the file system said it has no room.
    NotSynced {
        error: Arc<std::io::Error>,
        no_room: bool,
    },
}

/// The write error for an I/O error.
fn fault(e: std::io::Error) -> WriteError {
    if is_no_room(&e) {
        WriteError::NoRoom(Arc::new(e))
    } else {
        WriteError::NotWritten(Arc::new(e))
    }
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
    /// Counts each entry's lines as received once written: before any reader can see it.
    pub(super) ledger: Arc<Ledger>,
    /// The next entry's sequence number.
    pub(super) next_seq: u64,
    /// The next entry goes to a new segment: this one ended in a failed write, and a full
    /// segment must stop being the active one so that it can be freed once delivered.
    pub(super) roll_next: bool,
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
                    let _ = r.send(synced.clone());
                }
            }
        }
        let synced = self.sync();
        for r in waiting.drain(..) {
            let _ = r.send(synced.clone());
        }
        self.publish(true);
    }

    pub(super) fn write(&mut self, m: &Append) -> Result<(), WriteError> {
        let payload = m.batch.joined();
        let len = (HEADER_LEN + payload.len()) as u64;
        let full = self.offset > 0 && self.offset + len > self.segment_bytes;
        if (self.roll_next || full) && self.offset > 0 {
            self.roll().map_err(fault)?;
        }
        self.roll_next = false;
        let seq = self.next_seq;
        let header = m.header.finish(seq);
        let res = self
            .file
            .write_all(&header)
            .and_then(|_| self.file.write_all(payload));
        match res {
            Ok(()) => {
                let start = Pos {
                    seg: self.seg,
                    offset: self.offset,
                };
                self.next_seq += 1;
                self.offset += len;
                self.ledger.received(m.batch.len() as u64);
                self.unsynced += len;
                *lock(&self.segments).entry(self.seg).or_insert(0) += len;
                // Before the position is published, so a caught-up reader always finds it.
                let mut recent = lock(&self.recent);
                while recent.bytes + payload.len() > RECENT_BYTES {
                    match recent.entries.pop_front() {
                        Some(old) => recent.bytes -= old.batch.joined().len(),
                        None => break,
                    }
                }
                if payload.len() <= RECENT_BYTES {
                    recent.bytes += payload.len();
                    recent.entries.push_back(RecentEntry {
                        start,
                        next: self.offset,
                        batch: m.batch.clone(),
                        arrived_ms: m.arrived_ms,
                        seq,
                    });
                }
                Ok(())
            }
            Err(e) => {
                // Never append after a partial entry: cut it off. A segment that ended in a
                // failure is not written to again; it may be full, and only a segment that is not
                // the active one can be freed once delivered. An empty one is kept, so a full
                // disk never fills the directory with empty segments.
                let cut = self.file.set_len(self.offset);
                if self.offset > 0 || cut.is_err() {
                    self.roll_next = true;
                    if self.roll().is_ok() {
                        self.roll_next = false;
                    }
                }
                Err(fault(e))
            }
        }
    }

    /// Starts the next segment; the current one is synced first (unless `fsync: never`).
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

    pub(super) fn sync(&mut self) -> Result<(), WriteError> {
        if self.fsync == FsyncPolicy::Never {
            return Ok(());
        }
        self.unsynced = 0;
        self.syncs.buffer_syncs.inc();
        self.file.sync_data().map_err(|e| WriteError::NotSynced {
            no_room: is_no_room(&e),
            error: Arc::new(e),
        })
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
