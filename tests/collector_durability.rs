//! At-least-once from the 2xx on, tested with real processes: the collector binary with its disk
//! buffer is killed with SIGKILL mid-load and restarted, the Kinesis emulator is stopped and
//! brought back, the buffer fills to its limit, a segment gets a torn tail; then every line that
//! got a 2xx must be in the stream. Graceful shutdown (SIGTERM) is tested the same way.

use edgelog_testkit::collector::{spawn_collector_process, CollectorProcess};
use edgelog_testkit::numbered::{stream_numbers, Loader};
use edgelog_testkit::{
    spawn_kinesalite, spawn_kinesis_front, DurableKinesalite, Faults, KinesisClient,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(dir: &Path, endpoint: &str, stream: &str, extra: &str) -> PathBuf {
    let path = dir.join("collector.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: \"127.0.0.1:0\"\nlog_format: json\nfastly: {{service_ids: [\"*\"]}}\n\
             ingest: {{max_body_bytes: 1048576, max_in_flight_bytes: 8388608}}\n\
             buffer: {{type: disk, dir: \"{d}/buffer\", fsync: interval, max_bytes: 4194304, segment_bytes: 262144}}\n\
             dead_letter: {{path: \"{d}/dead.ndjson\"}}\n\
             output:\n  aws_kinesis:\n    stream_name: {stream}\n    region: us-east-1\n    endpoint_url: \"{endpoint}\"\n\
             \x20   credentials: {{access_key_id: AKIDTEST, secret_access_key: secret}}\n\
             \x20   batch: {{duration: 50ms}}\n    health_check_interval: 200ms\n    shard_refresh: 1s\n\
             \x20 retry: {{max_retries: 5, initial_wait: 20ms, max_wait: 300ms}}\n{extra}",
            d = dir.display()
        ),
    )
    .expect("write config");
    path
}

/// Appends a torn entry (a header promising more bytes than follow) to the newest segment, as a
/// crash in the middle of a write leaves it.
fn tear_newest_segment(buffer_dir: &Path) {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(buffer_dir)
        .expect("buffer dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let newest = segs.last().expect("a segment");
    let mut torn = Vec::new();
    torn.extend_from_slice(&0xED6E_1060u32.to_le_bytes());
    torn.extend_from_slice(&1000u32.to_le_bytes());
    torn.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    torn.extend_from_slice(&0u64.to_le_bytes());
    torn.extend_from_slice(b"{\"n\":-1,\"partial");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(newest)
        .expect("open segment");
    std::io::Write::write_all(&mut f, &torn).expect("append torn entry");
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
    let full_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while loader.status_count(503) == 0 {
        assert!(
            tokio::time::Instant::now() < full_deadline,
            "the buffer never filled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (numbers, missing) = loop {
        let numbers = stream_numbers(&kc, "durable").await;
        let present: std::collections::HashSet<i64> = numbers.iter().copied().collect();
        let missing: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|n| !present.contains(&(*n as i64)))
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break (numbers, missing);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for n in &numbers {
        *counts.entry(*n).or_default() += 1;
    }
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    let acked_set: std::collections::HashSet<i64> = acked.iter().map(|n| *n as i64).collect();
    let extra = counts.keys().filter(|n| !acked_set.contains(n)).count();
    eprintln!(
        "durability: acknowledged {} lines, stream holds {} ({} distinct): lost {}, duplicates {}, unacknowledged but delivered {}; answers {statuses:?}",
        acked.len(),
        numbers.len(),
        counts.len(),
        missing.len(),
        duplicates,
        extra
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged lines lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        !counts.contains_key(&-1),
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
    let k = spawn_kinesalite().await;
    let kc = KinesisClient::new(&k.endpoint).await;
    kc.create_stream("graceful", 1).await;
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
    let k = spawn_kinesalite().await;
    let kc = KinesisClient::new(&k.endpoint).await;
    kc.create_stream("later", 1).await;
    let front = spawn_kinesis_front(&k.endpoint).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        dir.path(),
        &front.endpoint,
        "later",
        "shutdown_timeout: 2s\n",
    );
    let proc = spawn_collector_process(&cfg).await;
    front.set(Faults {
        every_request: Some((503, "ServiceUnavailable".into())),
        ..Faults::default()
    });
    let lines: Vec<String> = (0..300).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(
        edgelog_testkit::collector::post_lines(&proc.url, None, &lines).await,
        204
    );
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stream_numbers(&kc, "later").await.len() < 300 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not resent after restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(proc
        .stderr
        .snapshot()
        .iter()
        .any(|l| l.contains("resending what a previous run left")));
    assert_eq!(proc.terminate().await, Some(0));
}
