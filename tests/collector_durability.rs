//! At-least-once from the 2xx on, with the real collector binary and its disk buffer: killed
//! with SIGKILL mid-load and restarted, Kinesis (kinesalite) stopped and brought back, the buffer
//! filled to its limit, a segment with a torn tail, an ack position past the last segment, and
//! damaged and unreadable segments; then every line that got a 2xx must be in the stream (or,
//! for damage, counted and named). Graceful shutdown (SIGTERM) finishes requests in flight and
//! flushes, or leaves the rest for the next start.

use edgelog_testkit::buffer::{segment_files, tear_newest_segment};
use edgelog_testkit::collector::{metric, post_lines, spawn_collector_process, CollectorProcess};
use edgelog_testkit::delivery::{process_kinesis_config, stream, stream_behind_front};
use edgelog_testkit::numbered::{all_delivered, stream_numbers, Loader};
use edgelog_testkit::procs::until;
use edgelog_testkit::{DurableKinesalite, Faults, KinesisClient, KinesisFront};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A collector in its own process delivering to `stream` at `endpoint`, with a 4 MiB disk
/// buffer in 256 KiB segments (so that it fills) and `top` top-level keys; the configuration is
/// written in `dir`.
fn config(dir: &Path, endpoint: &str, stream: &str, top: &str) -> PathBuf {
    process_kinesis_config(endpoint, stream)
        .set("ingest: {max_body_bytes: 1048576, max_in_flight_bytes: 8388608}")
        .set("buffer: {type: disk, dir: \"{dir}/buffer\", fsync: interval, max_bytes: 4194304, segment_bytes: 262144}")
        .set_all(top)
        .write(dir)
}

#[tokio::test]
async fn kill_9_outages_a_full_buffer_and_a_torn_segment_lose_no_acknowledged_line() {
    let mut kinesis = DurableKinesalite::start().await;
    let kc = KinesisClient::new(&kinesis.endpoint).await;
    kc.create_stream("durable", 2).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        dir.path(),
        &kinesis.endpoint,
        "durable",
        "shutdown_timeout: 5s\n",
    );
    let mut proc: CollectorProcess = spawn_collector_process(&cfg).await;
    let loader = Loader::start(proc.url.clone(), 100);

    // SIGKILL mid-load, three times.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        proc.kill9().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        proc = spawn_collector_process(&cfg).await;
        loader.follow(&proc);
    }
    // Kinesis goes away; the buffer fills to its limit (4 MiB) and ingest answers 503; a
    // SIGKILL and a restart while Kinesis is still away.
    tokio::time::sleep(Duration::from_millis(500)).await;
    kinesis.stop().await;
    until(Duration::from_secs(30), "the buffer filled", async || {
        loader.status_count(503) > 0
    })
    .await;
    proc.kill9().await;
    proc = spawn_collector_process(&cfg).await;
    loader.follow(&proc);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    kinesis.resume().await;
    tokio::time::sleep(Duration::from_millis(2000)).await;

    // A torn tail, as a crash mid-write leaves it: found, skipped, counted and reported.
    proc.kill9().await;
    tear_newest_segment(&dir.path().join("buffer"));
    proc = spawn_collector_process(&cfg).await;
    loader.follow(&proc);
    let report = proc
        .stderr
        .wait_for("the corruption report", Duration::from_secs(10), |l| {
            l.iter()
                .any(|x| x.contains("corrupt_entries") && x.contains("entries lost to damage"))
        })
        .await;
    assert!(
        report.iter().any(|l| l.contains("\"corrupt_entries\":1")),
        "{report:?}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let (acked, statuses) = loader.finish().await;
    assert!(
        acked.len() > 5000,
        "{} lines acknowledged; statuses {statuses:?}",
        acked.len()
    );
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "{statuses:?}");

    // Everything acknowledged reaches the stream.
    let stored = all_delivered(&kc, "durable", &acked, Duration::from_secs(120)).await;
    let acked_set: HashSet<i64> = acked.iter().map(|n| *n as i64).collect();
    let extra = stored
        .counts
        .keys()
        .filter(|n| !acked_set.contains(n))
        .count();
    eprintln!(
        "durability: acknowledged {} lines, stream holds {} ({} distinct): lost 0, duplicates {}, unacknowledged but delivered {}; answers {statuses:?}",
        acked.len(),
        stored.total,
        stored.distinct(),
        stored.duplicates(),
        extra
    );
    assert!(
        !stored.counts.contains_key(&-1),
        "the torn entry must not be delivered"
    );
    assert!(
        !dir.path().join("dead.ndjson").exists(),
        "nothing dead-lettered"
    );
    assert_eq!(proc.terminate().await, Some(0));
}

#[tokio::test]
async fn sigterm_finishes_requests_in_flight_and_flushes_before_exiting() {
    let (k, kc) = stream("graceful", 1).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        dir.path(),
        &k.endpoint,
        "graceful",
        "shutdown_timeout: 20s\n",
    );
    let proc = spawn_collector_process(&cfg).await;
    let lines: Vec<String> = (0..200).map(|i| format!("{{\"n\":{i}}}")).collect();
    let mut body = lines.join("\n");
    body.push('\n');
    let (first, second) = body.split_at(body.len() / 2);
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", proc.port))
        .await
        .expect("connect");
    conn.write_all(
        format!(
            "POST /logs HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{first}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = proc.pid();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are refused, the request in flight is finished.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", proc.port))
            .await
            .is_err(),
        "still accepting after SIGTERM"
    );
    conn.write_all(second.as_bytes()).await.expect("write rest");
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("answer")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 204"));
    drop(conn);
    assert_eq!(proc.terminate().await, Some(0));
    let stored = stream_numbers(&kc, "graceful").await;
    assert_eq!(stored.len(), 200, "flushed to Kinesis before exiting");
}

#[tokio::test]
async fn sigterm_while_kinesis_is_away_leaves_the_rest_for_the_next_start() {
    let (_k, kc, front) = stream_behind_front("later", 1).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        dir.path(),
        &front.endpoint,
        "later",
        "shutdown_timeout: 2s\n",
    );
    let proc = spawn_collector_process(&cfg).await;
    front.set(Faults::every_request_fails(503, "ServiceUnavailable"));
    let lines: Vec<String> = (0..300).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(post_lines(&proc.url, None, &lines).await, 204);
    let stderr = proc.stderr.clone();
    let started = std::time::Instant::now();
    assert_eq!(proc.terminate().await, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the deadline bounds the shutdown"
    );
    // The child has exited; its last lines may still be on their way through the reader.
    stderr
        .wait_for("the shutdown deadline", Duration::from_secs(5), |l| {
            l.iter().any(|l| l.contains("shutdown deadline reached"))
        })
        .await;
    assert!(stream_numbers(&kc, "later").await.is_empty());
    front.set(Faults::default());
    let proc = spawn_collector_process(&cfg).await;
    until(
        Duration::from_secs(30),
        "resent after restart",
        async || stream_numbers(&kc, "later").await.len() >= 300,
    )
    .await;
    assert!(proc
        .stderr
        .snapshot()
        .iter()
        .any(|l| l.contains("resending what a previous run left")));
    assert_eq!(proc.terminate().await, Some(0));
}

/// The memory buffer keeps nothing across a stop: at SIGTERM it flushes until `shutdown_timeout`
/// and then says how many batches it could not deliver, which are lost.
#[tokio::test]
async fn sigterm_with_the_memory_buffer_says_what_it_could_not_deliver() {
    let (_k, kc, front) = stream_behind_front("memory", 1).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = process_kinesis_config(&front.endpoint, "memory")
        .set("buffer: {type: memory}")
        .set("shutdown_timeout: 1s")
        .write(dir.path());
    let proc = spawn_collector_process(&cfg).await;
    front.set(Faults::every_request_fails(503, "ServiceUnavailable"));
    for b in 0..3 {
        let lines: Vec<String> = (0..100)
            .map(|i| format!("{{\"n\":{}}}", b * 100 + i))
            .collect();
        assert_eq!(post_lines(&proc.url, None, &lines).await, 204);
    }
    let stderr = proc.stderr.clone();
    assert_eq!(proc.terminate().await, Some(0));
    let said = stderr
        .wait_for("the report of what was lost", Duration::from_secs(5), |l| {
            l.iter()
                .any(|l| l.contains("memory buffer: batches not delivered"))
        })
        .await;
    let report = said
        .iter()
        .find(|l| l.contains("memory buffer: batches not delivered"))
        .expect("the report");
    assert!(
        report.contains("entries=3") || report.contains("\"entries\":3"),
        "{report}"
    );
    assert!(stream_numbers(&kc, "memory").await.is_empty());
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
    // The default max_bytes (1 GiB): the buffer takes every post.
    let cfg = process_kinesis_config(&front.endpoint, stream)
        .set("ingest: {max_body_bytes: 2097152}")
        .set(&format!(
            "buffer: {{type: disk, dir: \"{{dir}}/buffer\", fsync: interval, segment_bytes: {segment_bytes}}}"
        ))
        .write(dir.path());
    let proc = spawn_collector_process(&cfg).await;
    front.set(Faults::every_request_fails(500, "InternalFailure"));
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
    let stored = all_delivered(kc, "tampered", acked, Duration::from_secs(180)).await;
    let (distinct, dups) = (stored.distinct(), stored.duplicates());
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

/// Five kill -9s and an 8 s Kinesis outage under continuous load (lines posted once each, so a
/// line in the stream twice was sent twice by the collector), one kill during the outage and one
/// while its backlog goes out: every line answered 2xx arrives, and the lines sent again after
/// the crashes are counted; docs/scaling.md quotes the figure.
#[tokio::test]
async fn five_kill_9s_and_an_outage_under_load_send_few_lines_twice() {
    let (_k, kc, front) = stream_behind_front("crashes", 2).await;
    let dir = tempfile::tempdir().expect("tmp");
    // The default ack_save_interval (10 ms) and buffer size.
    let cfg = process_kinesis_config(&front.endpoint, "crashes")
        .set("buffer: {type: disk, dir: \"{dir}/buffer\", fsync: interval}")
        .write(dir.path());
    let mut proc = spawn_collector_process(&cfg).await;
    let loader = Loader::start(proc.url.clone(), 100);
    let kill_after = |loader: &Loader| loader.acked_len() + 5000;
    for i in 0..4 {
        if i == 2 {
            // Kinesis away for 8 s: the buffer holds on; the third kill comes during the outage.
            front.set(Faults::every_request_fails(503, "ServiceUnavailable"));
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
        let target = kill_after(&loader);
        until(Duration::from_secs(60), "load between kills", async || {
            loader.acked_len() >= target
        })
        .await;
        proc.kill9().await;
        proc = spawn_collector_process(&cfg).await;
        loader.follow(&proc);
        if i == 2 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            front.set(Faults::default());
            // The fourth kill comes while the backlog of the outage is being delivered.
            let puts = front
                .stats
                .entries
                .load(std::sync::atomic::Ordering::Relaxed);
            until(
                Duration::from_secs(30),
                "the backlog going out",
                async || {
                    front
                        .stats
                        .entries
                        .load(std::sync::atomic::Ordering::Relaxed)
                        > puts + 2000
                },
            )
            .await;
            proc.kill9().await;
            proc = spawn_collector_process(&cfg).await;
            loader.follow(&proc);
        }
    }
    let target = kill_after(&loader);
    until(
        Duration::from_secs(60),
        "load after the kills",
        async || loader.acked_len() >= target,
    )
    .await;
    let (acked, statuses) = loader.finish().await;
    let stored = all_delivered(&kc, "crashes", &acked, Duration::from_secs(180)).await;
    let dups = stored.duplicates();
    eprintln!(
        "crashes: 5 kill -9s and an 8 s outage: {} lines answered 2xx, stream holds {} ({} distinct), duplicates {dups} = {:.3}% of lines, {:.0} per kill; answers {statuses:?}",
        acked.len(),
        stored.total,
        stored.distinct(),
        100.0 * dups as f64 / stored.distinct() as f64,
        dups as f64 / 5.0
    );
    // A kill resends at most the calls in flight (max_in_flight, 4, of up to 500 records) and
    // what was delivered since the last save of the ack position (10 ms of it).
    assert!(
        dups <= 5 * (4 * 500 + 100),
        "{dups} lines sent twice: more than the calls in flight at five kills"
    );
    assert_eq!(proc.terminate().await, Some(0));
}
