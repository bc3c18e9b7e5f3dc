//! Connections against the real binary: idle ones are closed (HTTP/1 and HTTP/2), active ones
//! (a slow upload, a quiet tail) are not, the cap answers 503, and the descriptor limit is raised
//! to the hard limit at start.

use edgelog_testkit::collector::{collector_bin, metric, post_lines, spawn_collector_process_with};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts the collector (file output) under `prlimit --nofile=SOFT:HARD`, with `ingest` keys.
async fn start(
    dir: &std::path::Path,
    ingest: &str,
    extra: &str,
) -> edgelog_testkit::collector::CollectorProcess {
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\nlog_format: json\nfastly: {{service_ids: [\"*\"]}}\n\
         ingest: {{{ingest}}}\nbuffer: {{type: memory}}\n\
         dead_letter: {{path: \"{d}/dead.ndjson\"}}\noutput: {{file: {{path: \"{d}/out.ndjson\"}}}}\n{extra}",
        d = dir.display()
    );
    let config = dir.join("collector.yaml");
    std::fs::write(&config, yaml).expect("config");
    // The binary, wrapped so that it starts with a low soft limit and a higher hard one.
    let wrapper = dir.join("collector-limited");
    let mut f = std::fs::File::create(&wrapper).expect("wrapper");
    writeln!(
        f,
        "#!/bin/sh\nexec prlimit --nofile=200:400 -- \"{}\" \"$@\"",
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
    assert!(metric(&proc.url, "edgelog_connections_idle_closed_total").await >= 20);
    assert!(metric(&proc.url, "edgelog_connections_refused_total").await >= 1);
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
