//! What the collector accepts and refuses, over real HTTP on loopback: batches built the way
//! Fastly builds them (every json_format, codec and prefix), what the output received line for
//! line, every kind of bad input, who may send (the token, client certificates), and the
//! configuration checked on the command line (`check-config`, `challenge`).

use edgelog_testkit::certs::TestCa;
use edgelog_testkit::collector::{
    batch_request, collector_bin, metrics_text, output_file_lines, post_batch,
    spawn_collector_process,
};
use edgelog_testkit::config_yaml::{ConfigYaml, DISK_BUFFER};
use edgelog_testkit::fastly::{Batch, BatchFormat, Codec, JsonFormat};
use edgelog_testkit::http::{client, tls_client_builder};
use edgelog_testkit::{spawn_collector, RunningCollector};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "t0ken-for-tests";

fn yaml(extra: &str) -> String {
    ConfigYaml::new()
        .set("fastly: {service_ids: [\"SVC1\"]}")
        .set(DISK_BUFFER)
        .file_output("{dir}/out.log")
        .set(&format!(
            "ingest:\n  auth: {{header: X-Edgelog-Token, token: \"{TOKEN}\"}}\n  strip_prefix: true\n{extra}"
        ))
        .text()
}

async fn post(c: &reqwest::Client, url: &str, batch: &Batch) -> reqwest::Response {
    post_batch(c, url, Some(TOKEN), batch).await
}

/// Waits until the output file holds `n` lines and returns them as bytes.
async fn output_lines(col: &RunningCollector, n: usize) -> Vec<Vec<u8>> {
    output_file_lines(&col.path("out.log"), n).await
}

#[tokio::test]
async fn every_fastly_batch_shape_arrives_line_for_line() {
    let col = spawn_collector(&yaml("")).await;
    let c = client();
    let mut expected: Vec<Vec<u8>> = Vec::new();
    let mut n = 0;
    for json_format in [
        JsonFormat::None,
        JsonFormat::Array,
        JsonFormat::NewlineDelimited,
    ] {
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Zstd,
            Codec::Snappy,
            Codec::SnappyRaw,
        ] {
            for header in [true, false] {
                if !header && codec == Codec::SnappyRaw {
                    continue; // raw snappy has no magic bytes to sniff
                }
                for prefix in [false, true] {
                    n += 1;
                    let lines: Vec<Vec<u8>> = match json_format {
                        JsonFormat::None => vec![
                            format!("127.0.0.1 - - [21/Nov/2026:08:00:00 +0000] \"GET /{n}?a=\\\"b\\\" HTTP/1.1\" 200 12").into_bytes(),
                            format!("plain text {n} with \"quotes\" and \\ backslash").into_bytes(),
                        ],
                        _ => vec![
                            format!("{{\"n\":{n},\"url\":\"/a?b=c\",\"ua\":\"x \\\"y\\\"\",\"geo\":{{\"cc\":\"US\"}}}}").into_bytes(),
                            format!("{{\"n\":{n},\"empty\":\"\",\"list\":[1,2,3]}}").into_bytes(),
                        ],
                    };
                    let format = BatchFormat {
                        json_format,
                        codec,
                        content_encoding_header: header,
                        classic_prefix: prefix,
                        ..BatchFormat::default()
                    };
                    let resp = post(&c, &col.url, &format.build(&lines)).await;
                    assert_eq!(
                        resp.status().as_u16(),
                        204,
                        "{format:?}: {:?}",
                        resp.text().await
                    );
                    expected.extend(lines);
                }
            }
        }
    }
    let got = output_lines(&col, expected.len()).await;
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(e),
            "line {i}"
        );
    }
    let m = &col.handles.metrics;
    assert_eq!(m.ingest_lines.get(), expected.len() as u64);
    assert_eq!(m.ingest_batches.get(), n);
}

#[tokio::test]
async fn non_utf8_lines_pass_through_as_bytes() {
    let col = spawn_collector(&yaml("")).await;
    let lines: Vec<Vec<u8>> = vec![
        b"\xff\xfe\x00binary\x01".to_vec(),
        b"latin1 caf\xe9".to_vec(),
    ];
    for codec in [Codec::None, Codec::Gzip] {
        let batch = BatchFormat {
            codec,
            ..BatchFormat::default()
        }
        .build(&lines);
        assert_eq!(
            post(&client(), &col.url, &batch).await.status().as_u16(),
            204
        );
    }
    let got = output_lines(&col, 4).await;
    assert_eq!(got, [lines.clone(), lines].concat());
}

#[tokio::test]
async fn concurrent_posts_from_several_aggregation_points_arrive_exactly_once() {
    let col = spawn_collector(&yaml("")).await;
    let mut tasks = Vec::new();
    for sender in 0..8 {
        let url = col.url.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            for batch in 0..25 {
                let lines: Vec<String> = (0..100)
                    .map(|i| format!("{{\"s\":{sender},\"b\":{batch},\"i\":{i}}}"))
                    .collect();
                let b = BatchFormat {
                    codec: if batch % 2 == 0 {
                        Codec::Gzip
                    } else {
                        Codec::None
                    },
                    ..BatchFormat::default()
                }
                .build(&lines);
                assert_eq!(post(&c, &url, &b).await.status().as_u16(), 204);
            }
        }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
    let got = output_lines(&col, 20_000).await;
    let mut seen = std::collections::HashSet::new();
    for l in &got {
        assert!(
            seen.insert(l.clone()),
            "duplicate {}",
            String::from_utf8_lossy(l)
        );
    }
    assert_eq!(seen.len(), 20_000);
}

#[tokio::test]
async fn size_limits_answer_413_and_a_gzip_bomb_is_not_inflated() {
    let col = spawn_collector(&yaml(
        "  max_body_bytes: 100000\n  max_in_flight_bytes: 200000\n",
    ))
    .await;
    let c = client();
    // Declared too large.
    let big = Batch {
        headers: vec![],
        body: vec![b'x'; 100_001].into(),
    };
    let resp = post(&c, &col.url, &big).await;
    assert_eq!(resp.status().as_u16(), 413);
    // Chunked (no Content-Length), too large once received.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b'y'; 10_000])).collect();
    let resp = c
        .post(format!("{}/logs", col.url))
        .header("x-edgelog-token", TOKEN)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("chunked");
    assert_eq!(resp.status().as_u16(), 413);
    // A gzip bomb: 50 MiB of zeros in ~50 KiB.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut e, &vec![b'0'; 50 << 20]).expect("gzip");
    let bomb = Batch {
        headers: vec![("content-encoding".into(), "gzip".into())],
        body: e.finish().expect("gzip").into(),
    };
    assert!(bomb.body.len() < 100_000, "{}", bomb.body.len());
    let resp = post(&c, &col.url, &bomb).await;
    assert_eq!(resp.status().as_u16(), 413);
    assert!(resp
        .text()
        .await
        .expect("text")
        .contains("after decompression"));
    // The collector is fine afterwards, and counted each refusal.
    let ok = BatchFormat::default().build(&["after"]);
    assert_eq!(post(&c, &col.url, &ok).await.status().as_u16(), 204);
    assert_eq!(col.handles.metrics.ingest_rejections.get("too_large"), 3);
    assert_eq!(output_lines(&col, 1).await, vec![b"after".to_vec()]);
}

#[tokio::test]
async fn a_line_over_the_limit_is_dead_lettered_and_the_rest_accepted() {
    let col = spawn_collector(&yaml("  max_line_bytes: 100\n")).await;
    let long = "x".repeat(101);
    let batch = BatchFormat::default().build(&["first", long.as_str(), "third"]);
    assert_eq!(
        post(&client(), &col.url, &batch).await.status().as_u16(),
        204
    );
    assert_eq!(
        output_lines(&col, 2).await,
        vec![b"first".to_vec(), b"third".to_vec()]
    );
    let dead = std::fs::read_to_string(col.path("dead.ndjson")).expect("dead letter");
    let rec: serde_json::Value = serde_json::from_str(dead.trim()).expect("json");
    assert_eq!(rec["reason"], "line_too_long");
    assert_eq!(rec["line"], long);
    assert_eq!(rec["bytes"], 101);
    assert_eq!(col.handles.metrics.dead_lettered.get("line_too_long"), 1);
    assert_eq!(col.handles.metrics.ingest_long_lines.get(), 1);
    assert_eq!(
        col.handles.metrics.ingest_rejections.total(),
        0,
        "accepted, not refused"
    );
}

#[tokio::test]
async fn corrupt_bodies_get_400_naming_the_codec_and_nothing_is_kept() {
    let col = spawn_collector(&yaml("")).await;
    let c = client();
    let good = BatchFormat {
        codec: Codec::Gzip,
        ..BatchFormat::default()
    }
    .build(&["a line that will be damaged"]);
    let mut damaged = good.body.to_vec();
    let n = damaged.len();
    damaged[n - 6] ^= 0xff; // CRC / size trailer
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("gzip", damaged, "gzip"),
        ("gzip", b"\x1f\x8b\x08\x00garbage".to_vec(), "gzip"),
        ("zstd", b"\x28\xb5\x2f\xfd\x00\x00garbage".to_vec(), "zstd"),
        (
            "snappy",
            b"\xff\x06\x00\x00sNaPpY\x00\x05\x00\x00garbage".to_vec(),
            "snappy",
        ),
    ];
    for (enc, body, codec) in cases {
        let resp = c
            .post(format!("{}/logs", col.url))
            .header("x-edgelog-token", TOKEN)
            .header("content-encoding", enc)
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(resp.status().as_u16(), 400, "{codec}");
        assert!(resp.text().await.expect("text").contains(codec));
    }
    let resp = c
        .post(format!("{}/logs", col.url))
        .header("x-edgelog-token", TOKEN)
        .header("content-type", "application/json")
        .body("[{\"a\":1},{\"b\":")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp
        .text()
        .await
        .expect("text")
        .contains("not a valid JSON array"));
    assert_eq!(col.handles.metrics.ingest_rejections.get("corrupt_body"), 4);
    assert_eq!(col.handles.metrics.ingest_rejections.get("invalid_json"), 1);
    assert_eq!(
        col.handles.metrics.ingest_lines.get(),
        0,
        "nothing from a refused batch is kept"
    );
}

#[tokio::test]
async fn methods_paths_and_the_challenge() {
    let col = spawn_collector(&yaml("")).await;
    let c = client();
    for method in [
        reqwest::Method::GET,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let resp = c
            .request(method.clone(), format!("{}/logs", col.url))
            .header("x-edgelog-token", TOKEN)
            .send()
            .await
            .expect("req");
        assert_eq!(resp.status().as_u16(), 405, "{method}");
    }
    let resp = c
        .get(format!("{}/elsewhere", col.url))
        .send()
        .await
        .expect("req");
    assert_eq!(resp.status().as_u16(), 404);
    let resp = c
        .get(format!("{}/.well-known/fastly/logging/challenge", col.url))
        .send()
        .await
        .expect("challenge");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    // sha256("SVC1"), as `echo -n SVC1 | sha256sum` prints it.
    assert_eq!(
        resp.text().await.expect("body"),
        "1ee2d94dd1b21a62213e4e9ddcb72231c530113926c0312fcf5b548f7530fc4c\n"
    );
    // Facing Fastly without a tail token: health and readiness only.
    for (path, status) in [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/metrics", 404),
        ("/status", 404),
        ("/", 404),
        ("/tail", 404),
    ] {
        let resp = c
            .get(format!("{}{path}", col.url))
            .send()
            .await
            .expect("req");
        assert_eq!(resp.status().as_u16(), status, "{path}");
    }
    for path in ["/healthz", "/readyz", "/metrics", "/status", "/"] {
        let resp = c
            .get(format!("{}{path}", col.admin_url))
            .send()
            .await
            .expect("req");
        assert_eq!(resp.status().as_u16(), 200, "admin {path}");
    }
}

#[tokio::test]
async fn too_many_requests_in_flight_get_503_with_retry_after() {
    let col = spawn_collector(&yaml("  max_in_flight: 1\n")).await;
    // Hold the only slot: headers and half a body, then nothing.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", col.port))
        .await
        .expect("connect");
    slow.write_all(
        format!("POST /logs HTTP/1.1\r\nhost: x\r\nx-edgelog-token: {TOKEN}\r\ncontent-length: 100\r\n\r\nhalf").as_bytes(),
    )
    .await
    .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = post(&client(), &col.url, &BatchFormat::default().build(&["x"])).await;
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        col.handles
            .metrics
            .ingest_rejections
            .get("too_many_in_flight"),
        1
    );
    drop(slow);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = post(&client(), &col.url, &BatchFormat::default().build(&["x"])).await;
    assert_eq!(resp.status().as_u16(), 204, "the slot is free again");
}

#[tokio::test]
async fn slow_clients_time_out() {
    let col = spawn_collector(&yaml("  request_timeout: 1s\n  header_timeout: 1s\n")).await;
    // A body that stops coming: 408.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", col.port))
        .await
        .expect("connect");
    s.write_all(
        format!("POST /logs HTTP/1.1\r\nhost: x\r\nx-edgelog-token: {TOKEN}\r\ncontent-length: 100\r\n\r\nsome").as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // Headers that never finish: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", col.port))
        .await
        .expect("connect");
    s.write_all(b"POST /logs HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let start = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(col.handles.metrics.ingest_rejections.get("timeout"), 1);
}

#[tokio::test]
async fn mutual_tls_accepts_only_clients_of_the_configured_ca() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = TestCa::new("edgelog test CA");
    let other = TestCa::new("some other CA");
    let server = ca.server();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let cert = write("server.pem", &server.cert_pem);
    let key = write("server.key", &server.key_pem);
    let ca_pem = write("ca.pem", &ca.pem());
    let tls = format!("tls: {{cert: \"{cert}\", key: \"{key}\", client_ca: \"{ca_pem}\"}}\n");
    let col = spawn_collector(&format!("{tls}{}", yaml(""))).await;
    let url = format!("https://localhost:{}", col.port);
    let with_identity = |pair: Option<edgelog_testkit::certs::CertPair>| {
        let mut b = tls_client_builder(&ca, col.port);
        if let Some(p) = pair {
            let pem = format!("{}{}", p.cert_pem, p.key_pem);
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
        }
        b.build().expect("client")
    };
    let batch = BatchFormat::default().build(&["over mTLS"]);
    let resp = post(&with_identity(Some(ca.client("fastly"))), &url, &batch).await;
    assert_eq!(resp.status().as_u16(), 204);
    for (what, client) in [
        ("no client certificate", with_identity(None)),
        (
            "a certificate from another CA",
            with_identity(Some(other.client("intruder"))),
        ),
    ] {
        let req = batch_request(&client, &url, Some(TOKEN), &batch);
        assert!(req.send().await.is_err(), "{what} must be refused");
    }
    assert_eq!(output_lines(&col, 1).await, vec![b"over mTLS".to_vec()]);
    assert_eq!(col.handles.metrics.ingest_lines.get(), 1);
}

#[tokio::test]
async fn auth_is_required_and_the_token_never_appears_in_the_log() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("collector.yaml");
    std::fs::write(
        &cfg,
        yaml("").replace("{dir}", &dir.path().display().to_string())
            + "listen: \"127.0.0.1:0\"\nlog_format: json\n",
    )
    .expect("config");
    let proc = spawn_collector_process(&cfg).await;
    let c = client();
    let batch = BatchFormat::default().build(&["x"]);
    for token in [None, Some("wrong-token-value"), Some(TOKEN)] {
        let mut req = c
            .post(format!("{}/logs", proc.url))
            .body(batch.body.clone());
        if let Some(t) = token {
            req = req.header("x-edgelog-token", t);
        }
        let status = req.send().await.expect("post").status().as_u16();
        assert_eq!(status, if token == Some(TOKEN) { 204 } else { 401 });
    }
    let metrics = metrics_text(&proc.admin_url).await;
    assert!(metrics.contains("edgelog_ingest_rejections_total{reason=\"unauthorized\"} 2"));
    let stderr = proc.stderr.clone();
    assert_eq!(proc.terminate().await, Some(0));
    // Everything it logged (JSON, debug level for the collector) is free of either token, and
    // the refusals were logged.
    let log = stderr.snapshot().join("\n");
    assert!(log.contains("unauthorized"), "{log}");
    assert!(
        !log.contains(TOKEN) && !log.contains("wrong-token-value"),
        "{log}"
    );
    let out = std::process::Command::new(collector_bin())
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("check-config");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(printed.contains("<hidden>"));
    assert!(!printed.contains(TOKEN));
}

#[tokio::test]
async fn the_command_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let bin = collector_bin();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "fastly: {service_ids: [\"SVC1\"]}\noutput: {stdout: {}}\ningest: {auth: {header: X-T, token: \"${EDGELOG_TEST_TOKEN}\"}}\n",
    )
    .expect("write");
    let out = std::process::Command::new(&bin)
        .args(["check-config", "--config"])
        .arg(&good)
        .env("EDGELOG_TEST_TOKEN", "very-secret")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("token: <hidden>") && !text.contains("very-secret"),
        "{text}"
    );
    assert!(text.contains("path: /logs"), "defaults are shown: {text}");
    // Unset variable and unknown key: exit 1 naming the key.
    let out = std::process::Command::new(&bin)
        .args(["check-config", "--config"])
        .arg(&good)
        .env_remove("EDGELOG_TEST_TOKEN")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ingest.auth.token: environment variable EDGELOG_TEST_TOKEN is not set"),
        "{err}"
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "fastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\nbuffer: {fsync: sometimes}\n",
    )
    .expect("write");
    let out = std::process::Command::new(&bin)
        .args(["check-config", "-c"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("buffer.fsync"));
    // Challenge lines.
    let out = std::process::Command::new(&bin)
        .args(["challenge", "SVC1", "*"])
        .output()
        .expect("run");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1ee2d94dd1b21a62213e4e9ddcb72231c530113926c0312fcf5b548f7530fc4c\n*\n"
    );
}
