//! Connections against the real binary: idle ones are closed (HTTP/1 and HTTP/2), active ones
//! (a slow upload, a quiet tail) are not, the cap answers 503, the descriptor limit is raised
//! to the hard limit at start, a flood of idle connections under the common 1,024-descriptor
//! limit stops neither new connections nor open ones, and slow bodies declaring a large length
//! reserve nothing (the process lives under an address-space limit); a tail client that reads
//! nothing never holds ingest back.

use edgelog_testkit::collector::{collector_bin, metric, post_lines, spawn_collector_process_with};
use edgelog_testkit::config_yaml::ConfigYaml;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts the collector (file output) under `prlimit --nofile=200:400`, with `ingest` keys.
async fn start(
    dir: &std::path::Path,
    ingest: &str,
    extra: &str,
) -> edgelog_testkit::collector::CollectorProcess {
    start_limited(dir, ingest, extra, "--nofile=200:400").await
}

/// Like [`start`], under these `prlimit` limits.
async fn start_limited(
    dir: &std::path::Path,
    ingest: &str,
    extra: &str,
    limits: &str,
) -> edgelog_testkit::collector::CollectorProcess {
    let config = ConfigYaml::new()
        .process()
        .set(&format!("ingest: {{{ingest}}}"))
        .set("buffer: {type: memory, max_bytes: 268435456}")
        .file_output("{dir}/out.ndjson")
        .set_all(extra)
        .write(dir);
    // The binary, wrapped so that it starts under the limits.
    let wrapper = dir.join("collector-limited");
    let mut f = std::fs::File::create(&wrapper).expect("wrapper");
    writeln!(
        f,
        "#!/bin/sh\nexec prlimit {limits} -- \"{}\" \"$@\"",
        collector_bin().display()
    )
    .expect("write");
    drop(f);
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    spawn_collector_process_with(&wrapper, &config, &[]).await
}

fn port(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Waits until the server closes `s` (a read gives EOF or an error); returns what it sent.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn idle_connections_are_closed_and_beyond_the_cap_new_ones_get_503() {
    let dir = tempfile::tempdir().expect("tmp");
    let proc = start(dir.path(), "idle_timeout: 1s, max_connections: 20", "").await;
    // The descriptor limit was raised from the soft to the hard limit, and said so.
    let log = proc.stderr.snapshot().join("\n");
    assert!(
        log.contains("\"descriptor_limit_before\":200") && log.contains("\"descriptor_limit\":400"),
        "{log}"
    );
    let addr = port(&proc.url);
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One more: a clear answer, then closed.
    let mut extra = TcpStream::connect(&addr).await.expect("connect");
    let answer = closed_by_server(&mut extra, Duration::from_secs(5))
        .await
        .expect("closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1"), "{answer}");
    // The idle ones are closed by the server after idle_timeout, without a request.
    let t0 = Instant::now();
    for s in &mut idle {
        let got = closed_by_server(s, Duration::from_secs(10))
            .await
            .expect("an idle connection was never closed");
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }
    eprintln!(
        "20 idle connections closed {:?} after the check started",
        t0.elapsed()
    );
    // Room again: a batch is accepted.
    assert_eq!(
        post_lines(&proc.url, None, &["after".to_string()]).await,
        204
    );
    assert!(metric(&proc.admin_url, "edgelog_connections_idle_closed_total").await >= 20);
    assert!(metric(&proc.admin_url, "edgelog_connections_refused_total").await >= 1);
}

#[tokio::test]
async fn an_http2_connection_that_only_sends_its_preface_is_closed_when_idle() {
    let dir = tempfile::tempdir().expect("tmp");
    let proc = start(dir.path(), "idle_timeout: 1s", "").await;
    let mut s = TcpStream::connect(port(&proc.url)).await.expect("connect");
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    assert!(
        closed_by_server(&mut s, Duration::from_secs(10))
            .await
            .is_some(),
        "the HTTP/2 connection stayed open"
    );
}

#[tokio::test]
async fn a_slow_upload_and_a_quiet_tail_are_not_idle() {
    let dir = tempfile::tempdir().expect("tmp");
    let proc = start(dir.path(), "idle_timeout: 1s", "tail: {token: tailtoken}\n").await;
    let addr = port(&proc.url);
    // A tail that hears nothing for 3 s stays connected, then gets the line.
    let mut tail = TcpStream::connect(&addr).await.expect("connect");
    tail.write_all(b"GET /tail HTTP/1.1\r\nHost: x\r\nX-Edgelog-Tail-Token: tailtoken\r\n\r\n")
        .await
        .expect("tail request");
    // A body sent in pieces, 400 ms apart, for 3 s.
    let mut up = TcpStream::connect(&addr).await.expect("connect");
    let lines: Vec<String> = (0..8).map(|i| format!("{{\"slow\":{i}}}\n")).collect();
    let total: usize = lines.iter().map(String::len).sum();
    up.write_all(
        format!("POST /logs HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n").as_bytes(),
    )
    .await
    .expect("head");
    for l in &lines {
        tokio::time::sleep(Duration::from_millis(400)).await;
        up.write_all(l.as_bytes()).await.expect("piece");
    }
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(5), up.read(&mut answer))
        .await
        .expect("answer in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    // The tail got the slow batch's lines: it was never cut.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("{\"slow\":7}") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tail.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            other => panic!(
                "tail ended or stalled ({other:?}): {}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
}

/// A tail client that reads nothing, its socket buffers full, while batches keep coming: every
/// batch is still answered 204 and delivered, the client is told how many batches it missed, and
/// the missed batches are counted. Tailing never slows ingest.
#[tokio::test]
async fn a_tail_client_that_never_reads_does_not_hold_ingest_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let proc = start(dir.path(), "", "tail: {token: tailtoken}\n").await;
    let addr: std::net::SocketAddr = port(&proc.url).parse().expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut tail = socket.connect(addr).await.expect("connect");
    tail.write_all(b"GET /tail HTTP/1.1\r\nHost: x\r\nX-Edgelog-Tail-Token: tailtoken\r\n\r\n")
        .await
        .expect("tail request");
    edgelog_testkit::procs::until(Duration::from_secs(10), "the tail connected", async || {
        metric(&proc.admin_url, "edgelog_tail_clients").await == 1
    })
    .await;
    // 1,000 batches of 40 lines of ~500 bytes: 20 MB through a tail that reads nothing.
    let pad = "x".repeat(480);
    let mut posted = 0u64;
    for b in 0..1000u64 {
        let lines: Vec<String> = (0..40)
            .map(|i| format!("{{\"n\":{},\"pad\":\"{pad}\"}}", b * 40 + i))
            .collect();
        assert_eq!(post_lines(&proc.url, None, &lines).await, 204, "batch {b}");
        posted += 40;
    }
    let out = dir.path().join("out.ndjson");
    edgelog_testkit::procs::until(
        Duration::from_secs(60),
        "every line delivered",
        async || {
            std::fs::read(&out)
                .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64 >= posted)
                .unwrap_or(false)
        },
    )
    .await;
    assert_eq!(metric(&proc.admin_url, "edgelog_tail_clients").await, 1);
    // The client reads at last: after what fitted in the buffers, the count of what it missed.
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("# edgelog tail: skipped ") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tail.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            other => panic!("tail ended or stalled before saying what it missed ({other:?})"),
        }
    }
    // Noticed once the client reads again, and counted.
    assert!(
        metric(&proc.admin_url, "edgelog_tail_dropped_batches_total").await > 0,
        "the slow tail missed batches and they are counted"
    );
}

/// Raises this test process's descriptor limit so that it can hold `n` connections.
fn allow_descriptors(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid rlimit pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < n {
            assert!(lim.rlim_max >= n, "the hard descriptor limit is below {n}");
            lim.rlim_cur = n;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// A field of /proc/<pid>/status, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn under_1024_descriptors_an_idle_flood_stops_neither_new_nor_open_connections() {
    allow_descriptors(4096);
    let dir = tempfile::tempdir().expect("tmp");
    let proc = start_limited(dir.path(), "idle_timeout: 8s", "", "--nofile=1024:1024").await;
    let addr = port(&proc.url);
    // One client keeps posting on its own keep-alive connection throughout.
    let url = proc.url.clone();
    let steady = tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let mut answers = std::collections::HashMap::<u16, u32>::new();
        for i in 0..150 {
            let status = client
                .post(format!("{url}/logs"))
                .body(format!("{{\"steady\":{i}}}\n"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            *answers.entry(status).or_default() += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        answers
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 1,100 connections that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => idle.push(s),
            other => panic!("connect {} failed: {other:?}", idle.len()),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let descriptors = std::fs::read_dir(format!("/proc/{}/fd", proc.pid()))
        .map(|d| d.count())
        .unwrap_or(0);
    // New connections are answered at once: over the cap with 503, and a batch goes through
    // as soon as the idle ones are closed.
    let t0 = Instant::now();
    let mut accepted = false;
    while t0.elapsed() < Duration::from_secs(30) {
        let line = ["new".to_string()];
        let post = post_lines(&proc.url, None, &line);
        if tokio::time::timeout(Duration::from_secs(2), post).await == Ok(204) {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = t0.elapsed();
    assert!(accepted, "no new connection got through in 30 s");
    let answers = steady.await.expect("steady client");
    let refused = metric(&proc.admin_url, "edgelog_connections_refused_total").await;
    let closed = metric(&proc.admin_url, "edgelog_connections_idle_closed_total").await;
    eprintln!(
        "1,100 idle connections under 1,024 descriptors: {descriptors} descriptors held at the peak, {refused} connections refused with 503, {closed} closed as idle, a new batch accepted after {waited:?}; the keep-alive client's answers {answers:?}"
    );
    assert!(descriptors < 1024, "{descriptors} descriptors");
    assert!(refused > 0, "the cap answered the connections beyond it");
    assert_eq!(
        answers.get(&204).copied().unwrap_or(0),
        150,
        "every batch on the open connection accepted: {answers:?}"
    );
    drop(idle);
}

#[tokio::test]
async fn slow_bodies_declaring_100_mib_reserve_nothing_under_an_address_space_limit() {
    let dir = tempfile::tempdir().expect("tmp");
    let limit_bytes: u64 = 1 << 30;
    let proc = start_limited(
        dir.path(),
        "auth: {header: X-Edgelog-Token, token: slowtoken}, request_timeout: 60s",
        "",
        &format!("--nofile=1024:1024 --as={limit_bytes}"),
    )
    .await;
    let pid = proc.pid();
    let before = status_kb(pid, "VmSize:");
    let addr = port(&proc.url);
    // 30 authenticated clients each declare 100 MiB, send 64 KiB, and stall.
    let piece =
        "{\"slow\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n"
            .repeat(64 * 1024 / 80);
    let mut slow = Vec::new();
    for _ in 0..30 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(
            format!(
                "POST /logs HTTP/1.1\r\nHost: x\r\nX-Edgelog-Token: slowtoken\r\nContent-Length: {}\r\n\r\n",
                100 << 20
            )
            .as_bytes(),
        )
        .await
        .expect("head");
        s.write_all(piece.as_bytes()).await.expect("piece");
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = status_kb(pid, "VmSize:");
    let rss = status_kb(pid, "VmRSS:");
    // The process lives, and a normal batch is accepted.
    let normal = ["{\"normal\":1}".to_string()];
    let status = post_lines(&proc.url, Some("slowtoken"), &normal).await;
    eprintln!(
        "30 slow bodies declaring 100 MiB under a {} MiB address-space limit: address space {} MB before, {} MB during (RSS {} MB); a normal batch got {status}",
        limit_bytes >> 20,
        before / 1024,
        during / 1024,
        rss / 1024
    );
    assert_eq!(status, 204);
    assert!(
        during < before + 100 * 1024,
        "bodies reserved address space: {before} kB -> {during} kB"
    );
    drop(slow);
    assert_eq!(
        post_lines(&proc.url, Some("slowtoken"), &["after".to_string()]).await,
        204
    );
}
