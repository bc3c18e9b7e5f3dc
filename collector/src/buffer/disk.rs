//! The durable disk buffer: append-only segment files, a checksum per entry, group commit, and an
//! acknowledgement watermark.
//!
//! Layout of `dir`: `LOCK` (held while a collector uses the directory, so two never share it),
//! `NNNNNNNNNNNNNNNN.seg` segment files, and `ack` (the position of the first entry not yet fully
//! delivered, overwritten in place: see `ackfile`). One writer thread appends entries, groups
//! them, syncs them as `fsync` says and only then lets `append` return (so the 2xx follows the
//! sync). On start (`recover`), every entry from the watermark on is sent again; segments entirely
//! below it are deleted; damaged or torn entries are skipped, counted and reported.
//!
//! Invariants: a restart always writes to a new segment, so the watermark of an old segment never
//! covers new data; the reader never passes the writer's published position; a segment is deleted
//! only once the watermark has passed it; a segment that cannot be read is set aside after
//! `READ_ATTEMPTS` tries and the reader goes on with the next.

use super::ackfile::AckFile;
use super::capacity::Capacity;
use super::entry::{now_ms, BufferError, Entry, EntryId, Recovery};
use super::read::{read_at, Read};
use super::recover::{recover, set_aside, READ_ATTEMPTS};
use super::room::Room;
use super::segment::{Damage, Pending, HEADER_LEN};
use super::writer::{
    create_segment, lock, seg_path, Append, Pos, Recent, RecentEntry, SegmentWriter, WriteError,
    WritePos,
};
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

/// Acknowledgement bookkeeping shared by the reader and whoever acks.
#[derive(Default)]
struct Acks {
    /// Entries read and not yet acknowledged, in read order: id, start, acked.
    inflight: VecDeque<(EntryId, Pos, bool)>,
    /// Just past the last entry read or skipped.
    reader_pos: Pos,
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

struct Reader {
    pos: Pos,
    next_id: EntryId,
    published: watch::Receiver<WritePos>,
    file: Option<(u64, Arc<File>)>,
    /// Segments up to this one were scanned (and their damage counted) at start.
    scanned_up_to: u64,
    /// Damage met in segments written by this run.
    damage: Damage,
    /// Failed attempts at reading the current segment.
    failures: u32,
}

pub struct DiskBuffer {
    dir: PathBuf,
    capacity: Arc<Capacity>,
    /// Dropping the sender tells the writer thread to sync what it has and stop.
    writer: Mutex<Option<mpsc::Sender<Append>>>,
    reader: tokio::sync::Mutex<Reader>,
    acks: Arc<Mutex<Acks>>,
    /// Bytes on disk per segment, released from the capacity when the segment is deleted.
    segments: Arc<Mutex<BTreeMap<u64, u64>>>,
    recent: Arc<Mutex<Recent>>,
    entries: AtomicI64,
    closed: AtomicBool,
    recovery: Recovery,
    metrics: Arc<Metrics>,
    /// Whether the ack file is synced, with its directory (not with `fsync: never`).
    sync_ack: bool,
    /// When the ack file was last synced.
    ack_synced: Mutex<Option<Instant>>,
    ack_file: Arc<AckFile>,
    room: Room,
    _lock: File,
}

impl DiskBuffer {
    /// Opens (or creates) the buffer directory and recovers what a previous run left.
    pub fn open(cfg: &BufferConfig, metrics: Arc<Metrics>) -> Result<DiskBuffer, BufferError> {
        let dir = cfg.dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| BufferError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        if lock_file.try_lock().is_err() {
            return Err(BufferError::Io(format!(
                "buffer directory {} is in use by another collector",
                dir.display()
            )));
        }

        let ack_file = AckFile::open(&dir).map_err(|e| {
            BufferError::Io(format!(
                "cannot open or make room for the ack file in {}: {e}",
                dir.display()
            ))
        })?;
        let found = recover(&dir, ack_file.found())?;
        if let Some(why) = &found.ack_rejected {
            tracing::error!(
                ack_file = %ack_file.path().display(),
                reason = %why,
                "buffer: the saved ack position does not fit the segments; keeping every segment and sending it all again"
            );
        }
        let capacity = Arc::new(Capacity::new(
            cfg.max_bytes,
            cfg.when_full,
            cfg.block_timeout,
            metrics.clone(),
        ));
        let recovery = Recovery {
            entries: found.entries,
            bytes: found.bytes,
            corrupt_entries: found.damage.entries,
            damaged_regions: found.damage.regions,
            unreadable_segments: found.unreadable.clone(),
            ack_rejected: found.ack_rejected.clone(),
        };
        for size in found.segments.values() {
            capacity.force_reserve(*size);
        }
        metrics.buffer_corrupt_entries.add(recovery.corrupt_entries);
        metrics
            .buffer_unreadable_segments
            .add(recovery.unreadable_segments.len() as u64);
        metrics.buffer_entries.set(recovery.entries as i64);

        let scanned_up_to = found.last_segment;
        let active = found.last_segment + 1;
        let reader_start = if found.segments.is_empty() {
            Pos {
                seg: active,
                offset: 0,
            }
        } else {
            found.start
        };
        let mut sizes = found.segments;

        let (tx, rx) = mpsc::channel::<Append>();
        let (pub_tx, pub_rx) = watch::channel(WritePos {
            pos: Pos {
                seg: active,
                offset: 0,
            },
            done: false,
        });
        let file = create_segment(&dir, active, cfg.fsync != FsyncPolicy::Never)?;
        sizes.insert(active, 0);
        let segments = Arc::new(Mutex::new(sizes));
        let recent = Arc::new(Mutex::new(Recent::default()));
        let writer = SegmentWriter {
            dir: dir.clone(),
            seg: active,
            file,
            offset: 0,
            segment_bytes: cfg.segment_bytes,
            fsync: cfg.fsync,
            interval: cfg.fsync_interval,
            sync_bytes: cfg.fsync_bytes,
            unsynced: 0,
            syncs: metrics.clone(),
            published: pub_tx,
            segments: segments.clone(),
            recent: recent.clone(),
            next_seq: found.next_seq,
            roll_next: false,
        };
        std::thread::Builder::new()
            .name("edgelog-buffer-writer".into())
            .spawn(move || writer.run(rx))?;

        let acks = Acks {
            reader_pos: reader_start,
            ..Acks::default()
        };
        Ok(DiskBuffer {
            sync_ack: cfg.fsync != FsyncPolicy::Never,
            ack_synced: Mutex::new(None),
            ack_file: Arc::new(ack_file),
            room: Room::default(),
            dir,
            capacity,
            writer: Mutex::new(Some(tx)),
            reader: tokio::sync::Mutex::new(Reader {
                pos: reader_start,
                next_id: 0,
                published: pub_rx,
                file: None,
                scanned_up_to,
                damage: Damage::default(),
                failures: 0,
            }),
            acks: Arc::new(Mutex::new(acks)),
            segments,
            recent,
            entries: AtomicI64::new(recovery.entries as i64),
            closed: AtomicBool::new(false),
            recovery,
            metrics,
            _lock: lock_file,
        })
    }

    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    pub fn recovery(&self) -> Recovery {
        self.recovery.clone()
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
                let n = self.entries.fetch_add(1, Ordering::AcqRel) + 1;
                self.metrics.buffer_entries.set(n);
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
                self.room.no_room(size);
                Err(BufferError::NoRoom(error))
            }
            Ok(Err(WriteError::NotSynced { error, .. })) => Err(BufferError::Io(error)),
            Err(_) => {
                self.capacity.release(size);
                Err(BufferError::Closed)
            }
        }
    }

    pub async fn next(&self) -> Option<Entry> {
        let mut r = self.reader.lock().await;
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
                return Some(self.hand_out(&mut r, e.batch, e.arrived_ms, Some(e.seq), e.next));
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
                    self.advance_segment(&mut r, wp.pos.seg);
                    continue;
                }
                Err(e) => {
                    self.read_failed(&mut r, closed, wp.pos.seg, e).await;
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
                    self.read_failed(&mut r, closed, wp.pos.seg, e).await;
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
                    return Some(self.hand_out(&mut r, batch, arrived_ms, seq, next));
                }
                Read::Corrupt { resume } => {
                    if seg > r.scanned_up_to {
                        r.damage.region();
                    }
                    tracing::warn!(
                        segment = seg,
                        offset,
                        resume,
                        "skipped a damaged buffer entry"
                    );
                    r.pos.offset = resume;
                    lock(&self.acks).reader_pos = r.pos;
                }
                Read::End { torn } => {
                    if closed {
                        if torn && seg > r.scanned_up_to {
                            r.damage.region();
                        }
                        self.advance_segment(&mut r, wp.pos.seg);
                    }
                }
            }
        }
    }

    /// A segment could not be opened or read: tried again after a pause; a closed segment that
    /// fails `READ_ATTEMPTS` times is set aside (named in the log, kept on disk, its bytes
    /// released) and the reader goes on with the next one.
    async fn read_failed(&self, r: &mut Reader, closed: bool, active: u64, e: std::io::Error) {
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
            self.advance_segment(r, active);
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

    /// The entry at `pos` if the writer still holds it in memory; drops older ones.
    fn take_recent(&self, pos: Pos) -> Option<RecentEntry> {
        let mut recent = lock(&self.recent);
        while let Some(front) = recent.entries.front() {
            if front.start < pos {
                let old = recent.entries.pop_front()?;
                recent.bytes -= old.batch.joined().len();
            } else {
                break;
            }
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
        r: &mut Reader,
        batch: LineBatch,
        arrived_ms: u64,
        seq: Option<u64>,
        next: u64,
    ) -> Entry {
        let lost = r.damage.entry(seq);
        self.metrics.buffer_corrupt_entries.add(lost);
        let id = r.next_id;
        r.next_id += 1;
        let start = r.pos;
        r.pos.offset = next;
        let mut a = lock(&self.acks);
        a.inflight.push_back((id, start, false));
        a.reader_pos = r.pos;
        Entry {
            id,
            batch,
            arrived_ms,
        }
    }

    fn advance_segment(&self, r: &mut Reader, active: u64) {
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
        lock(&self.acks).reader_pos = r.pos;
    }

    pub fn ack(&self, id: EntryId) {
        let mut a = lock(&self.acks);
        let Some(&(first, _, _)) = a.inflight.front() else {
            return;
        };
        let Some(idx) = id.checked_sub(first) else {
            return;
        };
        if let Some(slot) = a.inflight.get_mut(idx as usize) {
            if slot.0 == id && !slot.2 {
                slot.2 = true;
                let n = self.entries.fetch_sub(1, Ordering::AcqRel) - 1;
                self.metrics.buffer_entries.set(n.max(0));
            }
        }
        while matches!(a.inflight.front(), Some((_, _, true))) {
            a.inflight.pop_front();
        }
    }

    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // The writer syncs what it was sent, publishes `done` and exits.
        lock(&self.writer).take();
    }

    /// Writes the watermark and deletes the segments it has passed.
    pub async fn persist_acks(&self) -> Result<(), BufferError> {
        let wm = {
            let a = lock(&self.acks);
            let wm = a.watermark();
            if a.persisted == Some(wm) {
                return Ok(());
            }
            wm
        };
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
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            ack_file.save(wm, sync)?;
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
        .map_err(|e| BufferError::Io(e.to_string()))
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
        lock(&self.acks).persisted = Some(wm);
        Ok(())
    }
}

impl Drop for DiskBuffer {
    fn drop(&mut self) {
        lock(&self.writer).take();
    }
}

#[cfg(test)]
mod tests;
