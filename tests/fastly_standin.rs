//! The Fastly stand-in against a recording HTTP receiver: challenge first, batching by entries,
//! bytes and period, every delivery option, retries (a batch answered 503 or not answered in time
//! is sent again, waits doubling, up to the limit), and the command's flags as
//! docs/fastly-standin.md lists them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::Router;
use edgelog_testkit::fastly::{Codec, JsonFormat};
use edgelog_testkit::procs::serve_on_loopback;
use edgelog_testkit::standin::{hex_sha256, run, Retries, StandinConfig, StandinError};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

#[derive(Clone, Default)]
struct Receiver {
    challenge: Arc<Mutex<String>>,
    requests: Arc<Mutex<Vec<(Method, HeaderMap, Bytes)>>>,
    fail_first: Arc<Mutex<u32>>,
    /// The next this-many requests are taken (recorded) but answered only after `slow_answer`.
    slow_first: Arc<Mutex<u32>>,
    slow_answer: Arc<Mutex<Duration>>,
    /// When each request to /logs arrived.
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

async fn spawn_receiver(challenge: &str) -> (String, Receiver) {
    let r = Receiver::default();
    *r.challenge.lock().expect("lock") = challenge.to_string();
    let app = Router::new()
        .route(
            "/.well-known/fastly/logging/challenge",
            get(|State(r): State<Receiver>| async move { r.challenge.lock().expect("lock").clone() }),
        )
        .route(
            "/logs",
            any(|State(r): State<Receiver>, method: Method, headers: HeaderMap, body: Bytes| async move {
                r.arrivals.lock().expect("lock").push(Instant::now());
                {
                    let mut fail = r.fail_first.lock().expect("lock");
                    if *fail > 0 {
                        *fail -= 1;
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                }
                r.requests.lock().expect("lock").push((method, headers, body));
                let slow = {
                    let mut slow = r.slow_first.lock().expect("lock");
                    let now = *slow > 0;
                    *slow = slow.saturating_sub(1);
                    now
                };
                if slow {
                    let wait = *r.slow_answer.lock().expect("lock");
                    tokio::time::sleep(wait).await;
                }
                StatusCode::NO_CONTENT.into_response()
            }),
        )
        .with_state(r.clone());
    // Serves until the test's runtime ends.
    let (addr, _task) = serve_on_loopback(app).await;
    (format!("http://{addr}/logs"), r)
}

/// A stand-in without the line prefix (these tests look at batching), batches by size only.
fn cfg(url: &str) -> StandinConfig {
    let mut c = StandinConfig {
        url: url.to_string(),
        service_id: "SVC".into(),
        period: Duration::from_secs(3600),
        retries: Retries {
            max_retries: 5,
            first_wait: Duration::from_millis(10),
            max_wait: Duration::from_millis(40),
        },
        ..StandinConfig::default()
    };
    c.format.classic_prefix = false;
    c
}

fn input(lines: &[String]) -> tokio::io::BufReader<std::io::Cursor<Vec<u8>>> {
    let mut data = lines.join("\n").into_bytes();
    data.push(b'\n');
    tokio::io::BufReader::new(std::io::Cursor::new(data))
}

fn bodies(r: &Receiver) -> Vec<String> {
    r.requests
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, h, b)| {
            if h.get("content-encoding").is_some_and(|v| v == "gzip") {
                let mut s = String::new();
                flate2::read::MultiGzDecoder::new(&b[..])
                    .read_to_string(&mut s)
                    .expect("gunzip");
                s
            } else {
                String::from_utf8_lossy(b).into_owned()
            }
        })
        .collect()
}

#[test]
fn zero_limits_mean_fastlys_defaults() {
    use edgelog_testkit::standin::fastly_limits;
    assert_eq!(
        fastly_limits(0.0, 0, 0),
        (Duration::from_secs(5), 10_000, 100_000_000)
    );
    assert_eq!(
        fastly_limits(0.2, 7, 1000),
        (Duration::from_millis(200), 7, 1000)
    );
}

#[tokio::test]
async fn nothing_is_sent_unless_the_challenge_lists_the_service() {
    let (url, r) = spawn_receiver(&format!("{}\n", hex_sha256("OTHER"))).await;
    let err = run(
        cfg(&url),
        input(&["collector :: x".into()]),
        tokio::io::sink(),
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(err, StandinError::Challenge(ref m) if m.contains("refusing")),
        "{err}"
    );
    assert!(r.requests.lock().expect("lock").is_empty());
    for ok in [format!("junk\n{}\n", hex_sha256("SVC")), "*\n".to_string()] {
        let (url, r) = spawn_receiver(&ok).await;
        let report = run(
            cfg(&url),
            input(&["collector :: x".into()]),
            tokio::io::sink(),
        )
        .await
        .expect("sent");
        assert_eq!(report.lines_sent, 1);
        assert_eq!(r.requests.lock().expect("lock").len(), 1);
    }
}

#[tokio::test]
async fn batches_by_entries_and_bytes_and_passes_other_output_through() {
    let (url, r) = spawn_receiver("*").await;
    let mut lines: Vec<String> = (0..25)
        .map(|i| format!("collector :: line {i:02}"))
        .collect();
    lines.insert(3, "audit :: another endpoint".into());
    lines.insert(9, "plain stdout of the app".into());
    let mut out = Vec::new();
    let report = run(
        StandinConfig {
            request_max_entries: 10,
            ..cfg(&url)
        },
        input(&lines),
        &mut out,
    )
    .await
    .expect("run");
    assert_eq!(report.lines_read, 25);
    let sizes: Vec<usize> = bodies(&r).iter().map(|b| b.lines().count()).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(bodies(&r).concat().lines().next(), Some("line 00"));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "audit :: another endpoint\nplain stdout of the app\n"
    );

    let (url, r) = spawn_receiver("*").await;
    let lines: Vec<String> = (0..6)
        .map(|i| format!("collector :: 0123456789abcdef-{i}"))
        .collect();
    run(
        StandinConfig {
            request_max_bytes: 40,
            ..cfg(&url)
        },
        input(&lines),
        tokio::io::sink(),
    )
    .await
    .expect("run");
    for b in bodies(&r) {
        assert!(b.len() <= 40, "{}", b.len());
    }
    assert_eq!(bodies(&r).len(), 3);
}

#[tokio::test]
async fn batches_go_out_every_period() {
    let (url, r) = spawn_receiver("*").await;
    let (mut w, rd) = tokio::io::duplex(4096);
    let task = tokio::spawn(run(
        StandinConfig {
            period: Duration::from_millis(300),
            ..cfg(&url)
        },
        tokio::io::BufReader::new(rd),
        tokio::io::sink(),
    ));
    w.write_all(b"collector :: a\ncollector :: b\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(bodies(&r), ["a\nb\n"]);
    w.write_all(b"collector :: c\n").await.expect("write");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(bodies(&r), ["a\nb\n", "c\n"]);
    drop(w);
    assert_eq!(task.await.expect("join").expect("run").lines_sent, 3);
}

#[tokio::test]
async fn delivery_options_as_fastly_sends_them() {
    let (url, r) = spawn_receiver("*").await;
    let mut c = cfg(&url);
    c.method = "PUT".into();
    c.header = Some(("X-Edgelog-Token".into(), "tok".into()));
    c.format.json_format = JsonFormat::Array;
    c.format.codec = Codec::Gzip;
    run(
        c,
        input(&[
            "collector :: {\"a\":1}".into(),
            "collector :: {\"b\":2}".into(),
        ]),
        tokio::io::sink(),
    )
    .await
    .expect("run");
    let reqs = r.requests.lock().expect("lock").clone();
    let (method, headers, _) = &reqs[0];
    assert_eq!(method, Method::PUT);
    assert_eq!(headers["x-edgelog-token"], "tok");
    assert_eq!(headers["content-encoding"], "gzip");
    assert!(
        headers.get("content-type").is_none(),
        "no Content-Type unless one is configured"
    );
    assert_eq!(bodies(&r), ["[{\"a\":1},{\"b\":2}]"]);

    let (url, r) = spawn_receiver("*").await;
    let mut c = cfg(&url);
    c.format.content_type = Some("application/x-ndjson".into());
    run(c, input(&["collector :: plain".into()]), tokio::io::sink())
        .await
        .expect("run");
    let reqs = r.requests.lock().expect("lock").clone();
    assert_eq!(reqs[0].1["content-type"], "application/x-ndjson");
    assert_eq!(bodies(&r), ["plain\n"]);

    // message_type classic is the default.
    let (url, r) = spawn_receiver("*").await;
    let mut c = cfg(&url);
    c.format = StandinConfig::default().format;
    run(c, input(&["collector :: hello".into()]), tokio::io::sink())
        .await
        .expect("run");
    let body = &bodies(&r)[0];
    assert!(body.starts_with("<134>"), "{body}");
    assert!(body.contains(" cache-local0001 collector["), "{body}");
    assert!(body.ends_with("]: hello\n"), "{body}");
}

#[tokio::test]
async fn failed_requests_are_retried_and_lines_sent_once() {
    let (url, r) = spawn_receiver("*").await;
    *r.fail_first.lock().expect("lock") = 2;
    let report = run(
        cfg(&url),
        input(&["collector :: once".into()]),
        tokio::io::sink(),
    )
    .await
    .expect("run");
    assert_eq!(report.retries, 2);
    assert_eq!(report.lines_sent, 1);
    assert_eq!(bodies(&r), ["once\n"]);
    let (url, r) = spawn_receiver("*").await;
    *r.fail_first.lock().expect("lock") = 100;
    let report = run(
        StandinConfig {
            retries: Retries {
                max_retries: 2,
                ..cfg(&url).retries
            },
            ..cfg(&url)
        },
        input(&["collector :: lost".into()]),
        tokio::io::sink(),
    )
    .await
    .expect("run");
    assert_eq!(report.lines_dropped, 1, "reported, not silent");
}

#[test]
fn retry_waits_double_from_the_first_up_to_the_longest() {
    let r = Retries {
        max_retries: 10,
        first_wait: Duration::from_millis(100),
        max_wait: Duration::from_millis(700),
    };
    let waits: Vec<u128> = (0..6).map(|i| r.wait(i).as_millis()).collect();
    assert_eq!(waits, [100, 200, 400, 700, 700, 700]);
    assert_eq!(r.wait(u32::MAX), Duration::from_millis(700));
}

#[tokio::test]
async fn a_batch_answered_503_is_sent_again_after_waits_that_double_then_taken_once() {
    let (url, r) = spawn_receiver("*").await;
    *r.fail_first.lock().expect("lock") = 3;
    let retries = Retries {
        max_retries: 5,
        first_wait: Duration::from_millis(100),
        max_wait: Duration::from_secs(1),
    };
    let report = run(
        StandinConfig {
            retries,
            ..cfg(&url)
        },
        input(&["collector :: after three 503s".into()]),
        tokio::io::sink(),
    )
    .await
    .expect("run");
    assert_eq!(
        (report.requests, report.retries, report.lines_sent),
        (4, 3, 1)
    );
    assert_eq!(bodies(&r), ["after three 503s\n"], "taken once");
    // The waits are at least 100, 200 and 400 ms (a lower bound: sleeping never ends early).
    let arrivals = r.arrivals.lock().expect("lock").clone();
    for (i, pair) in arrivals.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        assert!(gap >= retries.wait(i as u32), "wait {i}: {gap:?}");
    }
}

#[tokio::test]
async fn a_batch_not_answered_in_time_is_sent_again_and_can_arrive_twice() {
    let (url, r) = spawn_receiver("*").await;
    *r.slow_first.lock().expect("lock") = 1;
    *r.slow_answer.lock().expect("lock") = Duration::from_secs(3);
    let report = run(
        StandinConfig {
            request_timeout: Duration::from_millis(300),
            ..cfg(&url)
        },
        input(&["collector :: slow".into()]),
        tokio::io::sink(),
    )
    .await
    .expect("run");
    assert_eq!(
        (report.requests, report.retries, report.lines_sent),
        (2, 1, 1)
    );
    assert_eq!(
        bodies(&r),
        ["slow\n", "slow\n"],
        "the receiver took the batch the stand-in gave up waiting for: a duplicate"
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_in_time_costs_the_batch_after_the_retry_limit() {
    let (url, r) = spawn_receiver("*").await;
    *r.slow_first.lock().expect("lock") = u32::MAX;
    *r.slow_answer.lock().expect("lock") = Duration::from_secs(3600);
    let report = run(
        StandinConfig {
            request_timeout: Duration::from_millis(200),
            retries: Retries {
                max_retries: 2,
                ..cfg(&url).retries
            },
            ..cfg(&url)
        },
        input(&["collector :: never answered".into()]),
        tokio::io::sink(),
    )
    .await
    .expect("run");
    assert_eq!(
        (
            report.requests,
            report.retries,
            report.lines_sent,
            report.lines_dropped
        ),
        (3, 2, 0, 1),
        "three attempts, then dropped and counted"
    );
    assert_eq!(r.arrivals.lock().expect("lock").len(), 3);
}

/// The flags in the table of docs/fastly-standin.md (`| `--flag` | ...`).
fn documented_flags() -> std::collections::BTreeSet<String> {
    let doc =
        std::fs::read_to_string(edgelog_testkit::paths::repo_root().join("docs/fastly-standin.md"))
            .expect("docs/fastly-standin.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `--"))
        .filter_map(|l| l.split_once('`'))
        .map(|(f, _)| format!("--{}", f.split_whitespace().next().unwrap_or(f)))
        .collect()
}

#[test]
fn the_commands_flags_and_defaults_are_the_documented_ones() {
    let out = std::process::Command::new(edgelog_testkit::testkit_bin("fastly-standin"))
        .arg("--help")
        .output()
        .expect("run fastly-standin --help");
    let help = String::from_utf8_lossy(&out.stdout);
    let in_help: std::collections::BTreeSet<String> = help
        .lines()
        .filter_map(|l| l.trim_start().split_once("--"))
        .map(|(_, rest)| format!("--{}", rest.split([' ', ',', '=']).next().unwrap_or("")))
        .filter(|f| !["--help", "--version"].contains(&f.as_str()))
        .collect();
    assert_eq!(
        in_help,
        documented_flags(),
        "fastly-standin --help and the doc's table"
    );
    for (flag, default) in [
        ("--max-retries", "[default: 5]"),
        ("--retry-wait", "[default: 1s]"),
        ("--max-retry-wait", "[default: 30s]"),
        ("--request-timeout", "[default: 30s]"),
    ] {
        let line = help
            .lines()
            .skip_while(|l| !l.contains(flag))
            .find(|l| l.contains("[default"))
            .unwrap_or_default();
        assert!(line.contains(default), "{flag}: {line}");
    }
}
