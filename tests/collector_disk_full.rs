//! The disk buffer on a full disk, with the real collector binary and a small tmpfs of its own
//! (mounting it needs root): the buffer fills the disk itself, or another file takes every byte
//! left; the collector answers 503 (never 500), says why in `/readyz`, survives a restart while
//! the disk is full, frees delivered segments and accepts again by itself once Kinesis
//! (kinesalite behind the fault-injecting front) is back. Every accepted line is read back from
//! the stream.

use edgelog_testkit::buffer::segment_count;
use edgelog_testkit::collector::{metric, readyz, spawn_collector_process};
use edgelog_testkit::delivery::{process_kinesis_config, stream_behind_front};
use edgelog_testkit::disk::SmallDisk;
use edgelog_testkit::numbered::{all_delivered, Loader};
use edgelog_testkit::procs::until;
use edgelog_testkit::Faults;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A collector in its own process delivering to `stream` at `endpoint`, its disk buffer in
/// `buffer_dir` with `buffer` keys added (`, max_bytes: ...`); the configuration is written in
/// `dir`.
fn config(dir: &Path, buffer_dir: &Path, endpoint: &str, stream: &str, buffer: &str) -> PathBuf {
    process_kinesis_config(endpoint, stream)
        .set("ingest: {max_body_bytes: 2097152}")
        .set(&format!(
            "buffer: {{type: disk, dir: \"{}\", fsync: interval{buffer}}}",
            buffer_dir.display()
        ))
        .write(dir)
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

#[tokio::test]
async fn a_buffer_that_fills_its_disk_answers_503_and_recovers_by_itself_even_across_a_restart() {
    let disk = SmallDisk::mount(16 << 20);
    let buffer_dir = disk.path.join("buffer");
    let (_k, kc, front) = stream_behind_front("diskfull", 4).await;
    let dir = tempfile::tempdir().expect("tmp");
    // The default max_bytes (1 GiB) is far more than the disk holds.
    let cfg = config(dir.path(), &buffer_dir, &front.endpoint, "diskfull", "");
    let proc = spawn_collector_process(&cfg).await;
    front.set(Faults::every_request_fails(500, "InternalFailure"));
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
    let (count, empty) = segment_count(&buffer_dir);
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
    let stored = all_delivered(&kc, "diskfull", &acked, Duration::from_secs(180)).await;
    let (distinct, dups) = (stored.distinct(), stored.duplicates());
    let (count, empty) = segment_count(&buffer_dir);
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
    front.set(Faults::every_request_fails(500, "InternalFailure"));
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
    let stored = all_delivered(&kc, "shared", &acked, Duration::from_secs(180)).await;
    let (distinct, dups) = (stored.distinct(), stored.duplicates());
    eprintln!(
        "shared disk: another file took {filler} bytes; {held} buffered bytes halved {freed:?} after Kinesis came back, accepting again after {recovered:?}; {} accepted lines all delivered ({distinct} distinct, {dups} twice); answers {statuses:?}",
        acked.len()
    );
    assert_eq!(statuses.get(&500), None, "never a 500");
}
