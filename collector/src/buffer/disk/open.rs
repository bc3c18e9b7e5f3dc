//! Opening the disk buffer: the lock, the ack files (the common one and, with several outputs,
//! each output's), recovery of what a previous run left, the writer thread and each output's
//! read position.

use super::*;
use crate::buffer::entry::{Lane, OpenError};

impl DiskBuffer {
    /// Opens (or creates) the buffer directory for one output and recovers what a previous run
    /// left.
    #[cfg(test)]
    pub fn open(cfg: &BufferConfig, metrics: Arc<Metrics>) -> Result<DiskBuffer, OpenError> {
        Self::open_lanes(cfg, &[Lane::from("output")], metrics)
    }

    /// Opens (or creates) the buffer directory with one read position per output (`lanes`, in
    /// order) and recovers what a previous run left.
    pub fn open_lanes(
        cfg: &BufferConfig,
        lanes: &[Lane],
        metrics: Arc<Metrics>,
    ) -> Result<DiskBuffer, OpenError> {
        let dir = cfg.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| OpenError::CreateDir {
            dir: dir.clone(),
            source,
        })?;
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(|source| OpenError::Lock {
                dir: dir.clone(),
                source,
            })?;
        if lock_file.try_lock().is_err() {
            return Err(OpenError::InUse { dir });
        }

        let id = buffer_id(&dir).map_err(|source| OpenError::Id {
            dir: dir.clone(),
            source,
        })?;
        let ack_file = AckFile::open(&dir).map_err(|source| OpenError::AckFile {
            dir: dir.clone(),
            source,
        })?;
        let lane_files = if lanes.len() > 1 {
            lanes
                .iter()
                .map(|l| AckFile::open_lane(&dir, l).map(|f| Some(Arc::new(f))))
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|source| OpenError::LaneAckFile {
                    dir: dir.clone(),
                    source,
                })?
        } else {
            vec![None]
        };
        // Each output's tally, saved with its position (with one output, in the common file).
        let tallies: Vec<Tally> = lane_files
            .iter()
            .map(|f| {
                f.as_ref()
                    .map_or(ack_file.found_tally(), |f| f.found_tally())
            })
            .collect();
        let lane_found: Vec<Found> = lane_files
            .iter()
            .map(|f| f.as_ref().map_or(Found::Nothing, |f| f.found()))
            .collect();
        let found =
            recover(&dir, ack_file.found(), &lane_found).map_err(|source| OpenError::Recover {
                dir: dir.clone(),
                source,
            })?;
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
        let empty = found.segments.is_empty();
        let reader_start = if empty {
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
        let file =
            create_segment(&dir, active, cfg.fsync != FsyncPolicy::Never).map_err(|source| {
                OpenError::Start {
                    dir: dir.clone(),
                    source,
                }
            })?;
        sizes.insert(active, 0);
        let segments = Arc::new(Mutex::new(sizes));
        let recent = Arc::new(Mutex::new(Recent::default()));
        let ledger = Arc::new(Ledger::new(
            tallies
                .iter()
                .zip(&found.lanes)
                .map(|(t, start)| (*t, start.lines)),
        ));
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
            ledger: ledger.clone(),
            next_seq: found.next_seq,
            roll_next: false,
        };
        std::thread::Builder::new()
            .name("edgelog-buffer-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| OpenError::Start {
                dir: dir.clone(),
                source,
            })?;

        let lanes = lanes
            .iter()
            .zip(lane_files)
            .zip(&found.lanes)
            .enumerate()
            .map(|(i, ((name, file), start))| {
                if let Some(why) = &start.rejected {
                    tracing::error!(
                        output = %name,
                        reason = %why,
                        "buffer: the output's saved position does not fit the segments; it resumes where every output does"
                    );
                }
                let pos = if empty {
                    reader_start
                } else {
                    start.pos
                };
                LaneState {
                    reader: tokio::sync::Mutex::new(Reader {
                        pos,
                        next_id: 0,
                        published: pub_rx.clone(),
                        file: None,
                        scanned_up_to,
                        damage: Damage::default(),
                        counts_damage: i == 0,
                        failures: 0,
                    }),
                    acks: Mutex::new(Acks {
                        reader_pos: pos,
                        below: tallies[i],
                        ..Acks::default()
                    }),
                    ack_file: file,
                    entries: AtomicI64::new(start.entries as i64),
                }
            })
            .collect();
        Ok(DiskBuffer {
            id,
            sync_ack: cfg.fsync != FsyncPolicy::Never,
            ack_synced: Mutex::new(None),
            ack_file: Arc::new(ack_file),
            room: Room::default(),
            ledger,
            dir,
            capacity,
            writer: Mutex::new(Some(tx)),
            lanes,
            segments,
            recent,
            persisted: Mutex::new(None),
            closed: AtomicBool::new(false),
            recovery,
            metrics,
            _lock: lock_file,
        })
    }
}

/// The file in the buffer's directory holding its id.
const ID_FILE: &str = "instance";

/// The buffer's id: read from its directory, or made (16 hex digits) and kept there.
fn buffer_id(dir: &std::path::Path) -> std::io::Result<String> {
    let path = dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() == 16 && s.trim().chars().all(|c| c.is_ascii_hexdigit()) => {
            return Ok(s.trim().to_string());
        }
        Ok(_) => {
            tracing::warn!(file = %path.display(), "buffer: the id file holds no id; making a new one")
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let id = crate::buffer::entry::new_buffer_id();
    let tmp = dir.join(format!("{ID_FILE}.tmp"));
    std::fs::write(&tmp, format!("{id}\n"))?;
    File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(id)
}
