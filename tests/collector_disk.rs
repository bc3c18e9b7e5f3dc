//! The disk buffer against what disks and operators do: a file system filled by the buffer
//! itself or by another file, a restart while the disk is full, an ack file that was tampered
//! with, a damaged segment and one that cannot be read. The real collector binary, a small tmpfs
//! of its own, Kinesis (kinesalite behind the fault-injecting front) going away and coming back.
//! The collector recovers without a restart, and every accepted line is read back from the
//! stream.

use edgelog_testkit::collector::{metric, spawn_collector_process};
use edgelog_testkit::delivery::stream_behind_front;
use edgelog_testkit::disk::SmallDisk;
use edgelog_testkit::numbered::{stream_numbers, Loader};
use edgelog_testkit::{Faults, KinesisClient, KinesisFront};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn config(dir: &Path, buffer_dir: &Path, endpoint: &str, stream: &str, buffer: &str) -> PathBuf {
    let path = dir.join("collector.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: \"127.0.0.1:0\"\nlog_format: json\nfastly: {{service_ids: [\"*\"]}}\n\
             ingest: {{max_body_bytes: 2097152}}\n\
             buffer: {{type: disk, dir: \"{b}\", fsync: interval{buffer}}}\n\
             dead_letter: {{path: \"{d}/dead.ndjson\"}}\n\
             output:\n  aws_kinesis:\n    stream_name: {stream}\n    region: us-east-1\n    endpoint_url: \"{endpoint}\"\n\
             \x20   credentials: {{access_key_id: AKIDTEST, secret_access_key: secret}}\n\
             \x20   batch: {{duration: 50ms}}\n    health_check_interval: 200ms\n    shard_refresh: 1s\n\
             \x20 retry: {{max_retries: 5, initial_wait: 20ms, max_wait: 300ms}}\n",
            b = buffer_dir.display(),
            d = dir.display()
        ),
    )
    .expect("write config");
    path
}

fn kinesis_down(front: &KinesisFront) {
    front.set(Faults {
        every_request: Some((500, "InternalFailure".into())),
        ..Faults::default()
    });
}

async fn readyz(url: &str) -> (u16, String) {
    match reqwest::get(format!("{url}/readyz")).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `limit`.
async fn until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// Segment files in `dir` with their sizes, in order.
fn segment_sizes(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut segs: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                .filter_map(|e| Some((e.path(), e.metadata().ok()?.len())))
                .collect()
        })
        .unwrap_or_default();
    segs.sort();
    segs
}

/// Segment files in `dir`, and how many of them are empty.
fn segments(dir: &Path) -> (usize, usize) {
    let segs = segment_sizes(dir);
    (segs.len(), segs.iter().filter(|(_, l)| *l == 0).count())
}

/// One 1 MiB POST: its status, Retry-After and body.
async fn post_once(url: &str) -> (u16, Option<String>, String) {
    let r = reqwest::Client::new()
        .post(format!("{url}/logs"))
        .body(format!(
            "{{\"n\":-5,\"pad\":\"{}\"}}\n",
            "q".repeat(1 << 20)
        ))
        .send()
        .await
        .expect("post");
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        r.status().as_u16(),
        retry,
        r.text().await.unwrap_or_default(),
    )
}

/// Waits until every acknowledged number is in the stream; returns (distinct, duplicates).
async fn all_delivered(kc: &KinesisClient, stream: &str, acked: &[u64]) -> (usize, usize) {
    let want: HashSet<i64> = acked.iter().map(|&n| n as i64).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let got = stream_numbers(kc, stream).await;
        let mut counts: HashMap<i64, usize> = HashMap::new();
        for n in &got {
            *counts.entry(*n).or_default() += 1;
        }
        let missing = want.iter().filter(|n| !counts.contains_key(n)).count();
        if missing == 0 {
            let dups = counts.values().map(|c| c - 1).sum();
            return (counts.len(), dups);
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} accepted lines never reached the stream",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn a_buffer_that_fills_its_disk_answers_503_and_recovers_by_itself_even_across_a_restart() {
    let disk = SmallDisk::mount(16 << 20);
    let buffer_dir = disk.path.join("buffer");
    let (_k, kc, front) = stream_behind_front("diskfull", 4).await;
    let dir = tempfile::tempdir().expect("tmp");
    // The default max_bytes (1 GiB) is far more than the disk holds.
    let cfg = config(dir.path(), &buffer_dir, &front.endpoint, "diskfull", "");
    let proc = spawn_collector_process(&cfg).await;
    kinesis_down(&front);
    let loader = Loader::start_padded(proc.url.clone(), 40, 900);
    until(Duration::from_secs(120), "the disk fills", || async {
        metric(
            &proc.admin_url,
            "edgelog_ingest_rejections_total{reason=\"disk_full\"}",
        )
        .await
            > 5
    })
    .await;
    let (status, retry, body) = post_once(&proc.url).await;
    assert_eq!(
        (status, retry.as_deref()),
        (503, Some("5")),
        "disk full: {body}"
    );
    assert!(body.contains("disk is full"), "{body}");
    assert!(!body.contains(&disk.path.display().to_string()), "{body}");
    assert_eq!(loader.status_count(500), 0, "never a 500");
    let (code, why) = readyz(&proc.url).await;
    assert_eq!(code, 503, "{why}");
    assert!(why.contains("buffer: disk full since"), "{why}");
    // Refusals do not leave empty segments behind.
    for _ in 0..20 {
        post_once(&proc.url).await;
    }
    let (count, empty) = segments(&buffer_dir);
    assert!(empty <= 1, "{empty} empty segments of {count}");
    eprintln!(
        "disk full after {} accepted lines; {count} segments, {} bytes free",
        loader.acked_len(),
        disk.free()
    );

    // A restart while the disk is still full: it starts, and refuses the same way.
    proc.kill9().await;
    let proc = spawn_collector_process(&cfg).await;
    loader.follow(&proc);
    until(
        Duration::from_secs(60),
        "refusing after the restart",
        || async {
            metric(
                &proc.admin_url,
                "edgelog_ingest_rejections_total{reason=\"disk_full\"}",
            )
            .await
                > 0
        },
    )
    .await;
    assert_eq!(readyz(&proc.url).await.0, 503);

    // Kinesis comes back while no batch arrives: delivered segments are freed and the collector
    // is ready again by itself; then batches are accepted again.
    loader.pause();
    tokio::time::sleep(Duration::from_secs(6)).await; // posts under way finish (5 s timeout)
    front.set(Faults::default());
    let ready = until(Duration::from_secs(120), "ready again", || async {
        readyz(&proc.url).await.0 == 200
    })
    .await;
    let accepted_before = loader.acked_len();
    loader.resume();
    let recovered = until(Duration::from_secs(60), "accepting again", || async {
        loader.acked_len() > accepted_before + 400
    })
    .await;
    let pid = proc.pid();
    let (acked, statuses) = loader.finish().await;
    let (distinct, dups) = all_delivered(&kc, "diskfull", &acked).await;
    let (count, empty) = segments(&buffer_dir);
    eprintln!(
        "disk full: ready {ready:?} after Kinesis came back (no request meanwhile), then accepting again within {recovered:?}; {} accepted lines all delivered ({distinct} distinct, {dups} sent twice); answers {statuses:?}; {count} segments left ({empty} empty)",
        acked.len()
    );
    assert!(empty <= 1);
    assert_eq!(proc.pid(), pid, "no restart");
    assert_eq!(statuses.get(&500), None, "never a 500");
}

#[tokio::test]
async fn a_disk_filled_by_another_file_still_frees_delivered_segments() {
    let disk = SmallDisk::mount(16 << 20);
    let buffer_dir = disk.path.join("buffer");
    let (_k, kc, front) = stream_behind_front("shared", 4).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        dir.path(),
        &buffer_dir,
        &front.endpoint,
        "shared",
        ", max_bytes: 12582912, segment_bytes: 1048576",
    );
    let proc = spawn_collector_process(&cfg).await;
    kinesis_down(&front);
    let loader = Loader::start_padded(proc.url.clone(), 40, 900);
    until(Duration::from_secs(120), "the buffer fills", || async {
        loader.status_count(503) > 5
    })
    .await;
    // Another file takes every byte left.
    let filler = disk.fill("someone-elses-file");
    assert!(disk.free() < 4096, "{} bytes free", disk.free());
    let accepted_before = loader.acked_len();
    let held = metric(&proc.admin_url, "edgelog_buffer_bytes").await;
    front.set(Faults::default());
    let freed = until(Duration::from_secs(120), "segments freed", || async {
        metric(&proc.admin_url, "edgelog_buffer_bytes").await < held / 2
    })
    .await;
    let recovered = until(Duration::from_secs(120), "accepting again", || async {
        loader.acked_len() > accepted_before + 400
    })
    .await;
    until(Duration::from_secs(60), "ready again", || async {
        readyz(&proc.url).await.0 == 200
    })
    .await;
    let (acked, statuses) = loader.finish().await;
    let (distinct, dups) = all_delivered(&kc, "shared", &acked).await;
    eprintln!(
        "shared disk: another file took {filler} bytes; {held} buffered bytes halved {freed:?} after Kinesis came back, accepting again after {recovered:?}; {} accepted lines all delivered ({distinct} distinct, {dups} twice); answers {statuses:?}",
        acked.len()
    );
    assert_eq!(statuses.get(&500), None, "never a 500");
}

/// A collector with `segment_bytes`-byte segments that took `posts` batches of `per_post`
/// numbered lines while Kinesis was away, then was stopped with SIGKILL. Kinesis is back when this
/// returns; the buffer and the configuration are left for the next start.
struct Undelivered {
    kc: KinesisClient,
    _kinesis: (edgelog_testkit::Kinesalite, KinesisFront),
    _dir: tempfile::TempDir,
    buffer_dir: PathBuf,
    cfg: PathBuf,
    acked: Vec<u64>,
}

async fn leave_undelivered(
    stream: &str,
    segment_bytes: u64,
    posts: u64,
    per_post: u64,
) -> Undelivered {
    let (k, kc, front) = stream_behind_front(stream, 2).await;
    let dir = tempfile::tempdir().expect("tmp");
    let buffer_dir = dir.path().join("buffer");
    let cfg = config(
        dir.path(),
        &buffer_dir,
        &front.endpoint,
        stream,
        &format!(", segment_bytes: {segment_bytes}"),
    );
    let proc = spawn_collector_process(&cfg).await;
    kinesis_down(&front);
    let loader = Loader::start(proc.url.clone(), per_post);
    until(Duration::from_secs(120), "posted", || async {
        loader.acked_len() as u64 >= posts * per_post
    })
    .await;
    let (acked, _) = loader.finish().await;
    proc.kill9().await;
    front.set(Faults::default());
    Undelivered {
        kc,
        _kinesis: (k, front),
        _dir: dir,
        buffer_dir,
        cfg,
        acked,
    }
}

/// Segment files in `dir` holding something, in order.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    segment_sizes(dir)
        .into_iter()
        .filter(|(_, l)| *l > 0)
        .map(|(p, _)| p)
        .collect()
}

#[tokio::test]
async fn an_ack_position_past_the_last_segment_is_reported_and_nothing_is_dropped() {
    let u = leave_undelivered("tampered", 1 << 20, 400, 100).await;
    let (kc, buffer_dir, acked) = (&u.kc, &u.buffer_dir, &u.acked);
    let segs = segment_files(buffer_dir);
    assert!(segs.len() > 3, "{segs:?}");
    // An ack position one past the last segment, as a hand edit or a bad restore leaves it.
    let last: u64 = segs
        .last()
        .and_then(|p| p.file_stem())
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("number");
    std::fs::write(buffer_dir.join("ack"), format!("{} 0\n", last + 1)).expect("tamper");
    let proc = spawn_collector_process(&u.cfg).await;
    let (distinct, dups) = all_delivered(kc, "tampered", acked).await;
    let log = proc.stderr.snapshot();
    assert!(
        log.iter()
            .any(|l| l.contains("does not fit the segments") && l.contains("ack")),
        "reported"
    );
    eprintln!(
        "tampered ack: {} accepted lines all delivered ({distinct} distinct, {dups} twice)",
        acked.len()
    );
}

#[tokio::test]
async fn damaged_and_unreadable_segments_are_named_counted_in_entries_and_skipped() {
    let per_post = 20;
    let u = leave_undelivered("damaged", 65536, 120, per_post).await;
    let (kc, buffer_dir, acked) = (&u.kc, &u.buffer_dir, &u.acked);
    let segs = segment_files(buffer_dir);
    assert!(segs.len() >= 6, "{segs:?}");
    // One segment becomes a directory (unreadable even by root); another is zeroed across
    // several entries.
    std::fs::remove_file(&segs[2]).expect("remove");
    std::fs::create_dir(&segs[2]).expect("dir in its place");
    let mut data = std::fs::read(&segs[4]).expect("read");
    data[10_000..30_000].fill(0);
    std::fs::write(&segs[4], &data).expect("damage");
    let proc = spawn_collector_process(&u.cfg).await;
    until(Duration::from_secs(120), "delivered", || async {
        metric(&proc.admin_url, "edgelog_buffer_entries").await == 0
            && metric(&proc.admin_url, "edgelog_output_lines_total").await > 0
    })
    .await;
    let got: HashSet<i64> = stream_numbers(kc, "damaged").await.into_iter().collect();
    let missing = acked
        .iter()
        .filter(|&&n| !got.contains(&(n as i64)))
        .count() as u64;
    let lost_entries = metric(&proc.admin_url, "edgelog_buffer_corrupt_entries_total").await;
    assert!(missing > 0);
    assert_eq!(
        lost_entries * per_post,
        missing,
        "the count is in entries: {lost_entries} entries of {per_post} lines"
    );
    assert_eq!(
        metric(&proc.admin_url, "edgelog_buffer_unreadable_segments_total").await,
        1
    );
    let log = proc.stderr.snapshot();
    let named = segs[2].display().to_string();
    assert_eq!(
        log.iter().filter(|l| l.contains(&named)).count(),
        1,
        "the unreadable segment is named, once"
    );
    eprintln!(
        "damage: {lost_entries} entries ({missing} lines) lost in an unreadable segment and a zeroed region; the other {} lines delivered",
        acked.len() as u64 - missing
    );
}
