//! The disk buffer: tests.

use super::segment;
use super::*;
use crate::buffer::entry::Lane;
use crate::config::BufferKind;
use std::path::Path;

fn cfg(dir: &Path, fsync: FsyncPolicy, segment_bytes: u64) -> BufferConfig {
    BufferConfig {
        kind: BufferKind::Disk,
        dir: dir.to_path_buf(),
        fsync,
        segment_bytes,
        ..BufferConfig::for_tests(1 << 30)
    }
}

fn batch(i: usize) -> LineBatch {
    LineBatch::from_lines([format!("line {i:03} a"), format!("line {i:03} b")])
}

async fn drain(b: &DiskBuffer, n: usize) -> Vec<Entry> {
    let mut out = Vec::new();
    for _ in 0..n {
        let e = tokio::time::timeout(Duration::from_secs(5), b.next(0))
            .await
            .expect("entry in time")
            .expect("entry");
        out.push(e);
    }
    out
}

#[tokio::test]
async fn append_read_ack_restart_across_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval,
        FsyncPolicy::Never,
    ] {
        let d = dir.path().join(format!("{policy:?}"));
        let m = Arc::new(Metrics::default());
        let b = DiskBuffer::open(&cfg(&d, policy, 100), m.clone()).expect("open");
        for i in 0..10 {
            b.append(batch(i)).await.expect("append");
        }
        let entries = drain(&b, 10).await;
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.batch, batch(i));
        }
        // Ack the first 4 and the 6th: the watermark stops at the 5th.
        for e in entries.iter().take(4) {
            b.ack(0, e.id, Tally::default());
        }
        b.ack(0, entries[5].id, Tally::default());
        b.persist_acks().await.expect("persist");
        let segs_before = std::fs::read_dir(&d).expect("dir").count();
        b.close();
        drop(b);
        let b = DiskBuffer::open(&cfg(&d, policy, 100), m).expect("reopen");
        assert_eq!(
            b.recovery().entries,
            6,
            "{policy:?}: entries 4..10 come again"
        );
        assert_eq!(b.recovery().corrupt_entries, 0);
        let again = drain(&b, 6).await;
        for (k, e) in again.iter().enumerate() {
            assert_eq!(e.batch, batch(k + 4), "{policy:?}");
        }
        for e in &again {
            b.ack(0, e.id, Tally::default());
        }
        b.persist_acks().await.expect("persist");
        let segs_after = std::fs::read_dir(&d).expect("dir").count();
        assert!(
            segs_after < segs_before,
            "{policy:?}: acked segments deleted"
        );
    }
}

#[tokio::test]
async fn torn_and_damaged_entries_are_skipped_counted_and_reported() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = Arc::new(Metrics::default());
    let b =
        DiskBuffer::open(&cfg(dir.path(), FsyncPolicy::Always, 1 << 20), m.clone()).expect("open");
    for i in 0..5 {
        b.append(batch(i)).await.expect("append");
    }
    b.close();
    drop(b);
    let seg = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "seg")
                && std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false)
        })
        .expect("segment");
    let mut data = std::fs::read(&seg).expect("read");
    let one = segment::encode(&batch(0), 0, 0).len();
    data[one + HEADER_LEN + 1] ^= 0xff; // damage entry 1
    data.truncate(data.len() - 3); // tear entry 4
    std::fs::write(&seg, &data).expect("write");

    let b = DiskBuffer::open(&cfg(dir.path(), FsyncPolicy::Always, 1 << 20), m.clone())
        .expect("reopen");
    assert_eq!(b.recovery().entries, 3);
    assert_eq!(b.recovery().corrupt_entries, 2);
    assert_eq!(m.buffer_corrupt_entries.get(), 2);
    b.append(batch(99)).await.expect("append after recovery");
    let got = drain(&b, 4).await;
    let lines: Vec<LineBatch> = got.into_iter().map(|e| e.batch).collect();
    assert_eq!(lines, vec![batch(0), batch(2), batch(3), batch(99)]);
    assert_eq!(m.buffer_corrupt_entries.get(), 2, "not counted twice");
}

#[tokio::test]
async fn a_second_collector_cannot_share_the_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = Arc::new(Metrics::default());
    let _a =
        DiskBuffer::open(&cfg(dir.path(), FsyncPolicy::Never, 1 << 20), m.clone()).expect("open");
    let err = DiskBuffer::open(&cfg(dir.path(), FsyncPolicy::Never, 1 << 20), m)
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("in use by another collector"),
        "{err}"
    );
}

#[tokio::test]
async fn full_disk_buffer_rejects_until_acks_delete_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut c = cfg(dir.path(), FsyncPolicy::Never, 64);
    c.max_bytes = 200;
    let b = DiskBuffer::open(&c, Arc::new(Metrics::default())).expect("open");
    let mut n = 0;
    while b.append(batch(n)).await.is_ok() {
        n += 1;
    }
    assert!(n >= 3, "{n}");
    assert_eq!(b.append(batch(0)).await, Err(BufferError::Full));
    for e in drain(&b, n).await {
        b.ack(0, e.id, Tally::default());
    }
    b.persist_acks().await.expect("persist");
    b.append(batch(0)).await.expect("space again");
}

/// `interval` answers at the end of the period or as soon as `fsync_bytes` wait, whichever
/// comes first; a sync starts the count again.
#[tokio::test]
async fn interval_syncs_early_once_enough_bytes_wait() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = Arc::new(Metrics::default());
    let mut c = cfg(dir.path(), FsyncPolicy::Interval, 1 << 20);
    c.fsync_interval = Duration::from_secs(3600);
    c.fsync_bytes = 4096;
    let b = DiskBuffer::open(&c, m.clone()).expect("open");
    let sized = |n: usize| LineBatch::from_lines(["x".repeat(n)]);
    let answered = Duration::from_secs(10);
    let still_waiting = Duration::from_millis(100);

    let mut small = Box::pin(b.append(sized(10)));
    assert!(
        tokio::time::timeout(still_waiting, &mut small)
            .await
            .is_err(),
        "a small batch waits for the period"
    );
    assert_eq!(m.buffer_syncs.get(), 0);
    let big = tokio::time::timeout(answered, b.append(sized(5000)))
        .await
        .expect("enough bytes sync at once");
    assert_eq!(big, Ok(()));
    let small = tokio::time::timeout(answered, small)
        .await
        .expect("the same sync answers the earlier batch");
    assert_eq!(small, Ok(()));
    assert_eq!(m.buffer_syncs.get(), 1);

    let mut below = Box::pin(b.append(sized(3000)));
    assert!(
        tokio::time::timeout(still_waiting, &mut below)
            .await
            .is_err(),
        "the sync reset the count"
    );
    let over = tokio::time::timeout(answered, b.append(sized(2000)))
        .await
        .expect("the count passes the limit again");
    assert_eq!(over, Ok(()));
    assert_eq!(
        tokio::time::timeout(answered, below)
            .await
            .expect("answered"),
        Ok(())
    );
    assert_eq!(m.buffer_syncs.get(), 2);
}

#[tokio::test]
async fn the_ack_position_is_synced_with_its_directory_unless_fsync_is_never() {
    for (policy, synced) in [(FsyncPolicy::Always, true), (FsyncPolicy::Never, false)] {
        let dir = tempfile::tempdir().expect("tmp");
        let m = Arc::new(Metrics::default());
        let b = DiskBuffer::open(&cfg(dir.path(), policy, 1 << 20), m.clone()).expect("open");
        b.append(LineBatch::from_lines(["a"]))
            .await
            .expect("append");
        let e = b.next(0).await.expect("entry");
        b.ack(0, e.id, Tally::default());
        b.persist_acks().await.expect("persist");
        assert_eq!(m.buffer_ack_syncs.get(), u64::from(synced), "{policy:?}");
        assert!(dir.path().join("ack").exists());
    }
}

#[tokio::test]
async fn close_drains_then_ends() {
    let dir = tempfile::tempdir().expect("tmp");
    let b = DiskBuffer::open(
        &cfg(dir.path(), FsyncPolicy::Interval, 1 << 20),
        Arc::new(Metrics::default()),
    )
    .expect("open");
    b.append(batch(1)).await.expect("append");
    b.close();
    assert_eq!(b.append(batch(2)).await, Err(BufferError::Closed));
    assert!(b.next(0).await.is_some());
    assert!(b.next(0).await.is_none());
}

/// Writes `n` batches with small segments, nothing delivered; returns the segment paths.
async fn leave_segments(dir: &Path, n: usize, segment_bytes: u64) -> Vec<std::path::PathBuf> {
    let b = DiskBuffer::open(
        &cfg(dir, FsyncPolicy::Always, segment_bytes),
        Arc::new(Metrics::default()),
    )
    .expect("open");
    for i in 0..n {
        b.append(batch(i)).await.expect("append");
    }
    b.close();
    drop(b);
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
        .collect();
    segs.sort();
    segs
}

async fn all_batches(b: &DiskBuffer, n: usize) -> Vec<LineBatch> {
    drain(b, n).await.into_iter().map(|e| e.batch).collect()
}

#[tokio::test]
async fn an_ack_position_outside_the_segments_keeps_them_all() {
    let one = segment::encode(&batch(0), 0, 0).len() as u64;
    for (name, tamper) in [
        ("past the last segment", "past"),
        ("inside an entry", "inside"),
        ("a missing segment between two", "between"),
        ("garbage", "garbage"),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let segs = leave_segments(dir.path(), 12, 4 * one).await;
        assert!(segs.len() >= 3, "{name}: {segs:?}");
        let number = |p: &std::path::PathBuf| -> u64 {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse().ok())
                .expect("segment number")
        };
        let last = number(segs.last().expect("last"));
        let text = match tamper {
            "past" => format!("{} 0\n", last + 5),
            "inside" => format!("{} {}\n", number(&segs[1]), one + 3),
            "between" => {
                std::fs::remove_file(&segs[1]).expect("remove");
                format!("{} 0\n", number(&segs[1]))
            }
            _ => "not a position".into(),
        };
        std::fs::write(dir.path().join("ack"), text).expect("tamper");
        let m = Arc::new(Metrics::default());
        let b = DiskBuffer::open(&cfg(dir.path(), FsyncPolicy::Always, 4 * one), m).expect("open");
        let rec = b.recovery();
        let want = if tamper == "between" { 8 } else { 12 };
        assert_eq!(rec.entries, want, "{name}: every entry is sent again");
        if tamper == "garbage" {
            assert!(rec.ack_rejected.is_some(), "{name}");
        } else {
            let why = rec.ack_rejected.expect("reported");
            assert!(why.contains("segment"), "{name}: {why}");
        }
        let got = all_batches(&b, want as usize).await;
        assert_eq!(got[0], batch(0), "{name}");
        for s in segs
            .iter()
            .filter(|s| tamper != "between" || *s != &segs[1])
        {
            assert!(s.exists(), "{name}: {s:?} kept");
        }
    }
}

#[tokio::test]
async fn a_valid_ack_position_in_the_middle_of_a_segment_is_used() {
    let one = segment::encode(&batch(0), 0, 0).len() as u64;
    let dir = tempfile::tempdir().expect("tmp");
    let segs = leave_segments(dir.path(), 8, 4 * one).await;
    let first: u64 = segs[0]
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("number");
    std::fs::write(dir.path().join("ack"), format!("{first} {}\n", 2 * one)).expect("ack");
    let b = DiskBuffer::open(
        &cfg(dir.path(), FsyncPolicy::Always, 4 * one),
        Arc::new(Metrics::default()),
    )
    .expect("open");
    assert_eq!(b.recovery().ack_rejected, None);
    assert_eq!(b.recovery().entries, 6);
    assert_eq!(all_batches(&b, 6).await[0], batch(2));
}

#[tokio::test]
async fn an_unreadable_segment_is_named_set_aside_and_its_entries_counted() {
    let one = segment::encode(&batch(0), 0, 0).len() as u64;
    let dir = tempfile::tempdir().expect("tmp");
    let segs = leave_segments(dir.path(), 12, 4 * one).await;
    assert_eq!(segs.len(), 3);
    // A path that exists but cannot be read as a file, even by root.
    std::fs::remove_file(&segs[1]).expect("remove");
    std::fs::create_dir(&segs[1]).expect("dir in its place");
    let m = Arc::new(Metrics::default());
    let b = DiskBuffer::open(&cfg(dir.path(), FsyncPolicy::Always, 4 * one), m.clone())
        .expect("start is not blocked");
    let rec = b.recovery();
    assert_eq!(rec.unreadable_segments, vec![segs[1].clone()]);
    assert_eq!(rec.entries, 8);
    assert_eq!(
        rec.corrupt_entries, 4,
        "the 4 entries it held, from the numbers either side"
    );
    assert_eq!(m.buffer_unreadable_segments.get(), 1);
    let mut aside = segs[1].clone().into_os_string();
    aside.push(".unreadable");
    assert!(std::path::Path::new(&aside).exists());
    let got = all_batches(&b, 8).await;
    let want: Vec<LineBatch> = (0..4).chain(8..12).map(batch).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn damage_spanning_several_entries_counts_each_of_them() {
    let one = segment::encode(&batch(0), 0, 0).len();
    let dir = tempfile::tempdir().expect("tmp");
    let segs = leave_segments(dir.path(), 30, 1 << 20).await;
    let mut data = std::fs::read(&segs[0]).expect("read");
    data[2 * one..9 * one].fill(0); // entries 2..9: no magic left
    data[15 * one..17 * one + 3].fill(0xAB); // entries 15, 16 and the start of 17
    std::fs::write(&segs[0], &data).expect("write");
    let m = Arc::new(Metrics::default());
    let b =
        DiskBuffer::open(&cfg(dir.path(), FsyncPolicy::Always, 1 << 20), m.clone()).expect("open");
    assert_eq!(b.recovery().corrupt_entries, 7 + 3);
    assert_eq!(b.recovery().damaged_regions, 2);
    assert_eq!(m.buffer_corrupt_entries.get(), 10);
    assert_eq!(b.recovery().entries, 20);
}

#[tokio::test]
async fn a_segment_that_becomes_unreadable_while_running_is_skipped() {
    let one = segment::encode(&batch(0), 0, 0).len() as u64;
    let dir = tempfile::tempdir().expect("tmp");
    let m = Arc::new(Metrics::default());
    let b =
        DiskBuffer::open(&cfg(dir.path(), FsyncPolicy::Always, 4 * one), m.clone()).expect("open");
    for i in 0..12 {
        b.append(batch(i)).await.expect("append");
    }
    // Segments 1 and 2 are closed; make the second one unreadable before the reader gets there.
    let second = seg_path(dir.path(), 2);
    std::fs::remove_file(&second).expect("remove");
    std::fs::create_dir(&second).expect("dir");
    {
        // The writer's in-memory copies would hide the damage: drop them.
        let mut recent = lock(&b.recent);
        recent.entries.clear();
        recent.bytes = 0;
    }
    let got = tokio::time::timeout(Duration::from_secs(30), all_batches(&b, 8))
        .await
        .expect("the reader went on");
    let want: Vec<LineBatch> = (0..4).chain(8..12).map(batch).collect();
    assert_eq!(got, want);
    assert_eq!(m.buffer_unreadable_segments.get(), 1);
    assert_eq!(m.buffer_corrupt_entries.get(), 4);
}

#[tokio::test]
async fn each_output_keeps_its_own_position_across_restarts() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = cfg(dir.path(), FsyncPolicy::Always, 100);
    let lanes = [Lane::from("fast"), Lane::from("slow")];
    let m = Arc::new(Metrics::default());
    let b = DiskBuffer::open_lanes(&c, &lanes, m.clone()).expect("open");
    for i in 0..10 {
        b.append(batch(i)).await.expect("append");
    }
    // Both outputs read every entry; the fast one acknowledges all, the slow one 3.
    for lane in 0..2 {
        for i in 0..10 {
            let got = b.next(lane).await.expect("entry");
            assert_eq!(got.batch, batch(i), "lane {lane}");
            if lane == 0 || i < 3 {
                b.ack(lane, got.id, Tally::default());
            }
        }
    }
    assert_eq!(b.lag(0).0, 0);
    assert_eq!(b.lag(1).0, 7);
    assert!(b.lag(1).1 > 0);
    assert_eq!(m.buffer_entries.get(), 7, "held for the slowest output");
    b.persist_acks().await.expect("persist");
    let slow_at = b.saved_position(1).expect("saved");
    assert!(b.saved_position(0).expect("saved") > slow_at);
    b.close();
    drop(b);
    for name in ["ack", "ack.fast", "ack.slow"] {
        assert!(dir.path().join(name).exists(), "{name}");
    }

    let b = DiskBuffer::open_lanes(&c, &lanes, m).expect("reopen");
    assert_eq!(
        b.recovery().entries,
        7,
        "what the slow output lacks is kept"
    );
    b.append(batch(10)).await.expect("append");
    let fast = tokio::time::timeout(Duration::from_secs(5), b.next(0))
        .await
        .expect("in time")
        .expect("entry");
    assert_eq!(
        fast.batch,
        batch(10),
        "the fast output resumes after what it had"
    );
    for i in 3..=10 {
        let e = b.next(1).await.expect("entry");
        assert_eq!(
            e.batch,
            batch(i),
            "the slow output resumes at its own position"
        );
        assert!(e.start >= slow_at);
    }
    b.close();
    drop(b);

    // Back to one output: it resumes where every output had got to (nothing skipped).
    let b = DiskBuffer::open(&c, Arc::new(Metrics::default())).expect("reopen");
    assert_eq!(b.next(0).await.expect("entry").batch, batch(3));
}

#[tokio::test]
async fn the_buffer_keeps_its_id_across_restarts_and_another_has_its_own() {
    let dir = tempfile::tempdir().expect("tmp");
    let open = |d: &Path| {
        DiskBuffer::open(
            &cfg(d, FsyncPolicy::Never, 1 << 20),
            Arc::new(Metrics::default()),
        )
        .expect("open")
    };
    let first = open(&dir.path().join("a")).id().to_string();
    assert_eq!(first.len(), 16);
    assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        open(&dir.path().join("a")).id(),
        first,
        "kept in its directory"
    );
    assert_ne!(open(&dir.path().join("b")).id(), first);
    // A damaged id file gets a new id rather than stopping the buffer.
    std::fs::write(dir.path().join("a/instance"), "not an id").expect("write");
    let again = open(&dir.path().join("a")).id().to_string();
    assert!(again != first && again.len() == 16);
}

/// Each output's ledger resumes where its saved position does: lines acknowledged after the last
/// save are buffered again (and sent again), never counted twice or lost from the equation.
#[tokio::test]
async fn the_ledger_resumes_with_each_outputs_saved_position() {
    let dir = tempfile::tempdir().expect("tmp");
    let lanes = [Lane::from("kinesis"), Lane::from("s3")];
    let c = cfg(dir.path(), FsyncPolicy::Always, 150);
    let tally = |delivered, dead: u64| {
        let mut t = Tally {
            delivered,
            ..Tally::default()
        };
        t.dead[Tally::reason_index("retries_exhausted")] = dead;
        t
    };
    let m = Arc::new(Metrics::default());
    let b = DiskBuffer::open_lanes(&c, &lanes, m.clone()).expect("open");
    for i in 0..6 {
        b.append(batch(i)).await.expect("append");
    }
    let entries = drain(&b, 6).await;
    // kinesis: entries 0..3 saved (one line of entry 1 dead-lettered), entry 4 acked after the
    // save; s3: entry 0 saved.
    b.ack(0, entries[0].id, tally(2, 0));
    b.ack(0, entries[1].id, tally(1, 1));
    b.ack(0, entries[2].id, tally(2, 0));
    b.ack(1, b.next(1).await.expect("s3 entry").id, tally(2, 0));
    b.persist_acks().await.expect("persist");
    b.ack(0, entries[4].id, tally(2, 0));
    let k = b.ledger().counts(0);
    assert_eq!((k.received, k.settled.delivered, k.buffered), (12, 7, 4));
    assert!(k.balances());
    // A crash: nothing saved after this point.
    drop(b);
    let b = DiskBuffer::open_lanes(&c, &lanes, m).expect("reopen");
    let k = b.ledger().counts(0);
    assert_eq!(
        (
            k.received,
            k.settled.delivered,
            k.settled.dead[2],
            k.buffered
        ),
        (12, 5, 1, 6),
        "entry 4 is buffered again, entries 3..6 wait"
    );
    let s = b.ledger().counts(1);
    assert_eq!((s.received, s.settled.delivered, s.buffered), (12, 2, 10));
    b.append(batch(9)).await.expect("append");
    assert_eq!(b.ledger().counts(0).received, 14);
    assert!(b.ledger().counts(0).balances() && b.ledger().counts(1).balances());

    // One output: the common ack file carries its tally.
    let one = dir.path().join("one");
    let c = cfg(&one, FsyncPolicy::Always, 150);
    let b = DiskBuffer::open(&c, Arc::new(Metrics::default())).expect("open");
    b.append(batch(0)).await.expect("append");
    b.append(batch(1)).await.expect("append");
    let e = drain(&b, 1).await;
    b.ack(0, e[0].id, tally(0, 2));
    b.persist_acks().await.expect("persist");
    drop(b);
    let b = DiskBuffer::open(&c, Arc::new(Metrics::default())).expect("reopen");
    let k = b.ledger().counts(0);
    assert_eq!((k.received, k.settled.dead[2], k.buffered), (4, 2, 2));
}

#[tokio::test]
async fn a_failed_save_of_the_ack_position_is_counted_named_and_cleared_by_the_next() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = Arc::new(Metrics::default());
    let b = DiskBuffer::open(&cfg(dir.path(), FsyncPolicy::Always, 100), m.clone()).expect("open");
    for i in 0..6 {
        b.append(batch(i)).await.expect("append");
    }
    let entries = drain(&b, 6).await;
    // The first segment, once acknowledged, is deleted by the save: a directory in its place
    // (which no one, root included, can unlink as a file) makes the save fail.
    let first = seg_path(dir.path(), entries[0].start.seg);
    std::fs::remove_file(&first).expect("remove the segment");
    std::fs::create_dir(&first).expect("a directory in its place");
    std::fs::write(first.join("x"), b"x").expect("not empty");
    for e in entries.iter().take(3) {
        b.ack(0, e.id, Tally::default());
    }
    assert!(b.persist_acks().await.is_err(), "the save fails");
    assert_eq!(m.buffer_ack_save_errors.get(), 1);
    let why = b.problem().expect("a problem");
    assert!(why.contains("cannot save the ack position"), "{why}");
    std::fs::remove_dir_all(&first).expect("clear");
    b.persist_acks().await.expect("saved again");
    assert_eq!(b.problem(), None);
    assert_eq!(m.buffer_ack_save_errors.get(), 1);
}
