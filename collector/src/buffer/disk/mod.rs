//! The durable disk buffer: append-only segment files, a checksum per entry, group commit, and an
//! acknowledgement watermark.
//!
//! Layout of `dir`: `LOCK` (held while a collector uses the directory, so two never share it),
//! `instance` (the buffer's id), `NNNNNNNNNNNNNNNN.seg` segment files, `ack` (the position of the
//! first entry not yet fully delivered by every output, overwritten in place: see `ackfile`) and,
//! with several outputs, `ack.<output>` (each output's own). One writer thread appends entries, groups
//! them, syncs them as `fsync` says and only then lets `append` return (so the 2xx follows the
//! sync). On start (`recover`), every entry from the watermark on is sent again; segments entirely
//! below it are deleted; damaged or torn entries are skipped, counted and reported.
//!
//! Invariants: a restart always writes to a new segment, so the watermark of an old segment never
//! covers new data; the reader never passes the writer's published position; a segment is deleted
//! only once the watermark has passed it; a segment that cannot be read is set aside after
//! `READ_ATTEMPTS` tries and the reader goes on with the next.

mod ackfile;
mod read;
mod recover;
mod room;
mod segment;
mod writer;

use self::ackfile::{AckFile, Found};
use self::read::{read_at, Read};
use self::recover::{recover, set_aside, READ_ATTEMPTS};
use self::room::Room;
use self::segment::{Damage, Pending, HEADER_LEN};
use self::writer::{
    create_segment, lock, seg_path, Append, Recent, RecentEntry, SegmentWriter, WriteError,
    WritePos,
};
use super::capacity::Capacity;
use super::entry::{now_ms, BufferError, Entry, EntryId, Pos, Recovery};
use crate::buffer::ledger::{Ledger, Tally};
use crate::config::{BufferConfig, FsyncPolicy};
use crate::lines::LineBatch;
use crate::metrics::Metrics;
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest the saved ack position goes without a sync (it is also synced before any
/// segment it frees is deleted).
const ACK_SYNC_EVERY: Duration = Duration::from_secs(1);
use tokio::sync::{oneshot, watch};

/// One output's acknowledgement bookkeeping, shared by its reader and whoever acks.
#[derive(Default)]
struct Acks {
    /// Entries read and not yet acknowledged, in read order: id, start, and once acknowledged,
    /// how its lines went.
    inflight: VecDeque<(EntryId, Pos, Option<Tally>)>,
    /// Just past the last entry read or skipped.
    reader_pos: Pos,
    /// How the lines before the watermark went (saved with it).
    below: Tally,
    persisted: Option<Pos>,
}

impl Acks {
    fn watermark(&self) -> Pos {
        self.inflight
            .front()
            .map(|(_, start, _)| *start)
            .unwrap_or(self.reader_pos)
    }
}

/// One output's read position, its acknowledgements and (with several outputs) its ack file.
struct LaneState {
    reader: tokio::sync::Mutex<Reader>,
    acks: Mutex<Acks>,
    /// `None` with a single output: the common ack file is its own.
    ack_file: Option<Arc<AckFile>>,
    /// Entries this output has not acknowledged.
    entries: AtomicI64,
}

struct Reader {
    pos: Pos,
    next_id: EntryId,
    published: watch::Receiver<WritePos>,
    file: Option<(u64, Arc<File>)>,
    /// Segments up to this one were scanned (and their damage counted) at start.
    scanned_up_to: u64,
    /// Damage met in segments written by this run (counted by the first output's reader only).
    damage: Damage,
    counts_damage: bool,
    /// Failed attempts at reading the current segment.
    failures: u32,
}

pub struct DiskBuffer {
    /// The buffer's id, kept in `dir/instance`.
    id: String,
    dir: PathBuf,
    capacity: Arc<Capacity>,
    /// Dropping the sender tells the writer thread to sync what it has and stop.
    writer: Mutex<Option<mpsc::Sender<Append>>>,
    lanes: Vec<LaneState>,
    /// Bytes on disk per segment, released from the capacity when the segment is deleted.
    segments: Arc<Mutex<BTreeMap<u64, u64>>>,
    recent: Arc<Mutex<Recent>>,
    /// The common position last saved.
    persisted: Mutex<Option<Pos>>,
    closed: AtomicBool,
    recovery: Recovery,
    metrics: Arc<Metrics>,
    /// Whether the ack file is synced, with its directory (not with `fsync: never`).
    sync_ack: bool,
    /// When the ack file was last synced.
    ack_synced: Mutex<Option<Instant>>,
    ack_file: Arc<AckFile>,
    room: Room,
    /// Shared with the writer, which counts lines as received.
    ledger: Arc<Ledger>,
    _lock: File,
}

impl DiskBuffer {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    pub fn recovery(&self) -> Recovery {
        self.recovery.clone()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Why the buffer cannot take entries or free delivered ones, while that lasts.
    pub fn problem(&self) -> Option<String> {
        self.room.problem(&self.dir)
    }

    pub async fn append(&self, batch: LineBatch) -> Result<(), BufferError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BufferError::Closed);
        }
        let arrived_ms = now_ms();
        let header = Pending::new(batch.joined(), arrived_ms);
        let size = (HEADER_LEN + batch.joined().len()) as u64;

        self.capacity.reserve(size).await?;
        let (reply, wait) = oneshot::channel();
        let sent = lock(&self.writer)
            .as_ref()
            .map(|w| {
                w.send(Append {
                    header,
                    batch,
                    arrived_ms,
                    reply,
                })
                .is_ok()
            })
            .unwrap_or(false);
        if !sent {
            self.capacity.release(size);
            return Err(BufferError::Closed);
        }
        match wait.await {
            Ok(Ok(())) => {
                self.room.appended();
                self.stored();
                Ok(())
            }
            Ok(Err(WriteError::NoRoom(e))) => {
                self.capacity.release(size);
                self.room.no_room(size);
                Err(BufferError::NoRoom(e))
            }
            Ok(Err(WriteError::NotWritten(e))) => {
                self.capacity.release(size);
                Err(BufferError::Io(e))
            }
            // Written and published (it will be delivered), so its room stays taken.
            Ok(Err(WriteError::NotSynced {
                error,
                no_room: true,
            })) => {
                self.stored();
                self.room.no_room(size);
                Err(BufferError::NoRoom(error))
            }
            Ok(Err(WriteError::NotSynced { error, .. })) => {
                self.stored();
                Err(BufferError::Io(error))
            }
            Err(_) => {
                self.capacity.release(size);
                Err(BufferError::Closed)
            }
        }
    }

    /// An entry was written and published: every output will read it (the writer counted its
    /// lines in the ledger).
    fn stored(&self) {
        for l in &self.lanes {
            l.entries.fetch_add(1, Ordering::AcqRel);
        }
        self.metrics.buffer_entries.set(self.held_entries());
    }

    /// The next entry for output `lane`, in order; `None` once closed and fully read.
    pub async fn next(&self, lane: usize) -> Option<Entry> {
        let l = self.lanes.get(lane)?;
        let mut r = l.reader.lock().await;
        loop {
            let wp = *r.published.borrow_and_update();
            if r.pos >= wp.pos {
                if wp.done {
                    return None;
                }
                if r.published.changed().await.is_err() {
                    // The writer is gone; whatever it published last is all there is.
                    let wp = *r.published.borrow();
                    if r.pos >= wp.pos {
                        return None;
                    }
                }
                continue;
            }
            if let Some(e) = self.take_recent(r.pos) {
                return Some(self.hand_out(l, &mut r, e.batch, e.arrived_ms, Some(e.seq), e.next));
            }
            let seg = r.pos.seg;
            let closed = seg < wp.pos.seg;
            let file = match &r.file {
                Some((s, f)) if *s == seg => Ok(f.clone()),
                _ => File::open(seg_path(&self.dir, seg)).map(Arc::new),
            };
            let file = match file {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && closed => {
                    self.advance_segment(l, &mut r, wp.pos.seg);
                    continue;
                }
                Err(e) => {
                    self.read_failed(l, &mut r, closed, wp.pos.seg, e).await;
                    continue;
                }
            };
            r.file = Some((seg, file.clone()));
            let limit = if seg == wp.pos.seg {
                Some(wp.pos.offset)
            } else {
                None
            };
            let offset = r.pos.offset;
            let read = tokio::task::spawn_blocking(move || read_at(&file, offset, limit))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            let read = match read {
                Ok(read) => read,
                Err(e) => {
                    self.read_failed(l, &mut r, closed, wp.pos.seg, e).await;
                    continue;
                }
            };
            r.failures = 0;
            match read {
                Read::Entry {
                    batch,
                    arrived_ms,
                    seq,
                    next,
                } => {
                    return Some(self.hand_out(l, &mut r, batch, arrived_ms, seq, next));
                }
                Read::Corrupt { resume } => {
                    if seg > r.scanned_up_to && r.counts_damage {
                        r.damage.region();
                    }
                    tracing::warn!(
                        segment = seg,
                        offset,
                        resume,
                        "skipped a damaged buffer entry"
                    );
                    r.pos.offset = resume;
                    lock(&l.acks).reader_pos = r.pos;
                }
                Read::End { torn } => {
                    if closed {
                        if torn && seg > r.scanned_up_to && r.counts_damage {
                            r.damage.region();
                        }
                        self.advance_segment(l, &mut r, wp.pos.seg);
                    }
                }
            }
        }
    }

    /// A segment could not be opened or read: tried again after a pause; a closed segment that
    /// fails `READ_ATTEMPTS` times is set aside (named in the log, kept on disk, its bytes
    /// released) and the reader goes on with the next one.
    async fn read_failed(
        &self,
        l: &LaneState,
        r: &mut Reader,
        closed: bool,
        active: u64,
        e: std::io::Error,
    ) {
        r.file = None;
        r.failures += 1;
        let seg = r.pos.seg;
        if closed && r.failures >= READ_ATTEMPTS {
            r.failures = 0;
            set_aside(&self.dir, seg, &e);
            // The numbers either side count the entries it held.
            r.damage.region();
            self.metrics.buffer_unreadable_segments.inc();
            if let Some(size) = lock(&self.segments).remove(&seg) {
                self.capacity.release(size);
            }
            self.advance_segment(l, r, active);
            return;
        }
        tracing::error!(
            segment = %seg_path(&self.dir, seg).display(),
            attempt = r.failures,
            error = %e,
            "buffer: cannot read a segment; trying again"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// The entry at `pos` if the writer still holds it in memory; drops the ones every output
    /// has read.
    fn take_recent(&self, pos: Pos) -> Option<RecentEntry> {
        let shared = self.lanes.len() > 1;
        let slowest = if shared {
            self.lanes
                .iter()
                .map(|l| lock(&l.acks).reader_pos)
                .min()
                .unwrap_or(pos)
                .min(pos)
        } else {
            pos
        };
        let mut recent = lock(&self.recent);
        while let Some(front) = recent.entries.front() {
            if front.start < slowest {
                let old = recent.entries.pop_front()?;
                recent.bytes -= old.batch.joined().len();
            } else {
                break;
            }
        }
        if shared {
            return recent.entries.iter().find(|e| e.start == pos).cloned();
        }
        if recent.entries.front().is_some_and(|e| e.start == pos) {
            let e = recent.entries.pop_front()?;
            recent.bytes -= e.batch.joined().len();
            return Some(e);
        }
        None
    }

    /// Records an entry as read and hands it to the output.
    fn hand_out(
        &self,
        l: &LaneState,
        r: &mut Reader,
        batch: LineBatch,
        arrived_ms: u64,
        seq: Option<u64>,
        next: u64,
    ) -> Entry {
        if r.counts_damage {
            let lost = r.damage.entry(seq);
            self.metrics.buffer_corrupt_entries.add(lost);
        }
        let id = r.next_id;
        r.next_id += 1;
        let start = r.pos;
        r.pos.offset = next;
        let mut a = lock(&l.acks);
        a.inflight.push_back((id, start, None));
        a.reader_pos = r.pos;
        Entry {
            id,
            batch,
            arrived_ms,
            start,
            end: r.pos,
        }
    }

    fn advance_segment(&self, l: &LaneState, r: &mut Reader, active: u64) {
        let next = lock(&self.segments)
            .range(r.pos.seg + 1..)
            .next()
            .map(|(s, _)| *s)
            .unwrap_or(active);
        r.pos = Pos {
            seg: next,
            offset: 0,
        };
        r.file = None;
        lock(&l.acks).reader_pos = r.pos;
    }

    /// Output `lane` has delivered or dead-lettered every line of entry `id`, as `tally` says.
    pub fn ack(&self, lane: usize, id: EntryId, tally: Tally) {
        let Some(l) = self.lanes.get(lane) else {
            return;
        };
        let mut a = lock(&l.acks);
        let Some(&(first, _, _)) = a.inflight.front() else {
            return;
        };
        let Some(idx) = id.checked_sub(first) else {
            return;
        };
        if let Some(slot) = a.inflight.get_mut(idx as usize) {
            if slot.0 == id && slot.2.is_none() {
                slot.2 = Some(tally);
                l.entries.fetch_sub(1, Ordering::AcqRel);
                self.ledger.settled(lane, &tally);
                self.metrics.buffer_entries.set(self.held_entries());
            }
        }
        while let Some((_, _, Some(t))) = a.inflight.front() {
            let t = *t;
            a.below.add(&t);
            a.inflight.pop_front();
        }
    }

    /// Entries some output has not acknowledged.
    fn held_entries(&self) -> i64 {
        self.lanes
            .iter()
            .map(|l| l.entries.load(Ordering::Acquire))
            .max()
            .unwrap_or(0)
            .max(0)
    }

    /// How far output `lane` is behind the writer: entries and bytes it has not acknowledged.
    pub fn lag(&self, lane: usize) -> (u64, u64) {
        let Some(l) = self.lanes.get(lane) else {
            return (0, 0);
        };
        let wm = lock(&l.acks).watermark();
        let bytes: u64 = lock(&self.segments)
            .range(wm.seg..)
            .map(|(_, size)| *size)
            .sum();
        (
            l.entries.load(Ordering::Acquire).max(0) as u64,
            bytes.saturating_sub(wm.offset),
        )
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // The writer syncs what it was sent, publishes `done` and exits.
        lock(&self.writer).take();
    }

    /// Saves each output's position and the one they have all passed, and deletes the segments
    /// below the latter.
    pub async fn persist_acks(&self) -> Result<(), BufferError> {
        let marked: Vec<(Pos, Tally)> = self
            .lanes
            .iter()
            .map(|l| {
                let a = lock(&l.acks);
                (a.watermark(), a.below)
            })
            .collect();
        let marks: Vec<Pos> = marked.iter().map(|(p, _)| *p).collect();
        let Some(wm) = marks.iter().min().copied() else {
            return Ok(());
        };
        let lanes_moved = self
            .lanes
            .iter()
            .zip(&marks)
            .any(|(l, m)| l.ack_file.is_some() && lock(&l.acks).persisted != Some(*m));
        if !lanes_moved && *lock(&self.persisted) == Some(wm) {
            return Ok(());
        }
        let dir = self.dir.clone();
        let doomed: Vec<(u64, u64)> = {
            let mut segs = lock(&self.segments);
            let below: Vec<u64> = segs.range(..wm.seg).map(|(s, _)| *s).collect();
            below
                .into_iter()
                .filter_map(|s| segs.remove(&s).map(|size| (s, size)))
                .collect()
        };
        let removed = doomed.clone();
        // Synced before segments are deleted, and at least every ACK_SYNC_EVERY otherwise.
        let sync = self.sync_ack && {
            let last = *lock(&self.ack_synced);
            !doomed.is_empty() || last.is_none_or(|t| t.elapsed() >= ACK_SYNC_EVERY)
        };
        let metrics = self.metrics.clone();
        let ack_file = self.ack_file.clone();
        let lane_files: Vec<(Arc<AckFile>, Pos, Tally)> = self
            .lanes
            .iter()
            .zip(&marked)
            .filter_map(|(l, (m, t))| l.ack_file.clone().map(|f| (f, *m, *t)))
            .collect();
        // With one output, the common file is its own and carries its tally.
        let common_tally = match marked.as_slice() {
            [(_, t)] => *t,
            _ => Tally::default(),
        };
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            // Each output's own position first: the common one never passes a saved one.
            for (f, m, t) in &lane_files {
                f.save(*m, t, sync)?;
            }
            ack_file.save(wm, &common_tally, sync)?;
            if sync {
                metrics.buffer_ack_syncs.inc();
            }
            for (s, _) in &removed {
                match std::fs::remove_file(seg_path(&dir, *s)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| BufferError::Io(Arc::new(std::io::Error::other(e))))
        .and_then(|r| r.map_err(BufferError::from));
        if let Err(e) = written {
            // Not saved: the segments stay (on disk and in the map), and the next save deletes
            // them; nothing leaks until a restart.
            let mut segs = lock(&self.segments);
            for (s, size) in doomed {
                if seg_path(&self.dir, s).exists() {
                    segs.insert(s, size);
                } else {
                    self.capacity.release(size);
                }
            }
            self.metrics.buffer_ack_save_errors.inc();
            self.room.ack_failed(e.to_string());
            return Err(e);
        }
        self.room.ack_saved();
        if sync {
            *lock(&self.ack_synced) = Some(Instant::now());
        }
        for (_, size) in doomed {
            self.capacity.release(size);
        }
        for (l, m) in self.lanes.iter().zip(marks) {
            lock(&l.acks).persisted = Some(m);
        }
        *lock(&self.persisted) = Some(wm);
        Ok(())
    }

    /// The position of output `lane` last saved.
    pub fn saved_position(&self, lane: usize) -> Option<Pos> {
        self.lanes.get(lane).and_then(|l| lock(&l.acks).persisted)
    }
}

impl Drop for DiskBuffer {
    fn drop(&mut self) {
        lock(&self.writer).take();
    }
}

mod open;
#[cfg(test)]
mod tests;
