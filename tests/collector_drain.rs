//! Drain (`collector drain`, `POST /drain`) against the real binary when things go wrong: with
//! Kinesis down it waits, its progress shows the lines left, and nothing is dropped or
//! dead-lettered; `--timeout` exits non-zero while the collector goes on draining (ingest and
//! `/readyz` answer 503 `draining`); a drain cut short by kill -9 leaves an ordinary start
//! behind; `/drain` on the main listener without the tail token is 401.

use edgelog_testkit::collector::{
    collector_bin, drain_progress, post_lines, readyz, spawn_collector_process, CollectorCommand,
};
use edgelog_testkit::config_yaml::ConfigYaml;
use edgelog_testkit::delivery::{process_kinesis_config, stream_behind_front};
use edgelog_testkit::numbered::stream_numbers;
use edgelog_testkit::paths::free_port;
use edgelog_testkit::procs::until;
use edgelog_testkit::Faults;
use std::path::Path;
use std::time::Duration;

const TOKEN: &str = "drain-test-token";

/// A collector in its own process delivering to `stream` at `endpoint`: a disk buffer, the
/// admin listener on a fixed port (so `collector drain --config` finds it), the tail token on
/// the main listener.
fn config(dir: &Path, endpoint: &str, stream: &str) -> std::path::PathBuf {
    let c: ConfigYaml = process_kinesis_config(endpoint, stream)
        .set(&format!("admin: {{listen: \"127.0.0.1:{}\"}}", free_port()))
        .set(&format!("tail: {{token: \"{TOKEN}\"}}"))
        .set("buffer: {type: disk, dir: \"{dir}/buffer\", fsync: interval}");
    c.write(dir)
}

fn numbered(from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("{{\"n\":{i}}}")).collect()
}

fn drain_args(cfg: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "drain".to_string(),
        "--config".into(),
        cfg.display().to_string(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// Each number in `0..n` exactly once in the stream.
async fn exactly(kc: &edgelog_testkit::KinesisClient, stream: &str, n: usize) {
    let mut got = stream_numbers(kc, stream).await;
    got.sort_unstable();
    let want: Vec<i64> = (0..n as i64).collect();
    assert_eq!(got, want, "each line once");
}

#[tokio::test]
async fn a_drain_with_kinesis_down_waits_shows_the_lines_left_and_drops_nothing() {
    let (_k, kc, front) = stream_behind_front("drain-down", 1).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), &front.endpoint, "drain-down");
    let proc = spawn_collector_process(&cfg).await;
    front.set(Faults::every_request_fails(503, "ServiceUnavailable"));
    assert_eq!(post_lines(&proc.url, None, &numbered(0, 500)).await, 204);

    // /drain on the main listener needs the tail token.
    let client = reqwest::Client::new();
    for token in [None, Some("wrong")] {
        let mut req = client.post(format!("{}/drain", proc.url));
        if let Some(t) = token {
            req = req.header("x-edgelog-tail-token", t);
        }
        let r = req.send().await.expect("POST /drain");
        assert_eq!(r.status(), 401, "token {token:?}");
    }
    assert_eq!(
        readyz(&proc.url).await.0,
        200,
        "a refused drain changes nothing"
    );

    // --timeout: the command gives up and says so; the collector goes on draining.
    let mut timed =
        CollectorCommand::start(&collector_bin(), &drain_args(&cfg, &["--timeout", "5s"]));
    let code = timed.exit_code(Duration::from_secs(60)).await;
    assert_eq!(code, Some(1), "{:?}", timed.stdout.snapshot());
    let err = timed.stderr.snapshot().join("\n");
    assert!(err.contains("goes on draining"), "{err}");
    let left = drain_progress(&timed.stdout.snapshot());
    assert!(
        left.contains(&500),
        "the progress shows the 500 lines left: {:?}",
        timed.stdout.snapshot()
    );
    let (code, body) = readyz(&proc.url).await;
    assert_eq!((code, body.contains("draining")), (503, true), "{body}");
    let refused = client
        .post(format!("{}/logs", proc.url))
        .body("{\"n\":-1}\n")
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));

    // The drain as users run it: it waits for Kinesis however long, dropping nothing.
    let mut drain = CollectorCommand::start(&collector_bin(), &drain_args(&cfg, &[]));
    until(
        Duration::from_secs(30),
        "two progress lines with 500 lines left",
        async || {
            drain_progress(&drain.stdout.snapshot())
                .iter()
                .filter(|&&n| n == 500)
                .count()
                >= 2
        },
    )
    .await;
    assert!(drain.running(), "still waiting");
    assert!(stream_numbers(&kc, "drain-down").await.is_empty());
    assert!(
        !dir.path().join("dead.ndjson").exists(),
        "nothing dead-lettered"
    );

    front.set(Faults::default());
    let code = drain.exit_code(Duration::from_secs(60)).await;
    let out = drain.stdout.snapshot();
    assert_eq!(code, Some(0), "{out:?}\n{:?}", drain.stderr.snapshot());
    assert!(out.iter().any(|l| l.starts_with("drained:")), "{out:?}");
    assert_eq!(proc.exited(Duration::from_secs(30)).await, Some(0));
    exactly(&kc, "drain-down", 500).await;
    eprintln!(
        "drain with Kinesis down: progress {:?}",
        drain_progress(&out)
    );
}

#[tokio::test]
async fn a_drain_cut_short_by_kill_9_leaves_an_ordinary_start() {
    let (_k, kc, front) = stream_behind_front("drain-killed", 1).await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), &front.endpoint, "drain-killed");
    let proc = spawn_collector_process(&cfg).await;
    front.set(Faults::every_request_fails(503, "ServiceUnavailable"));
    assert_eq!(post_lines(&proc.url, None, &numbered(0, 300)).await, 204);

    // Drained through the main listener with the token, then killed mid-drain.
    let args = vec![
        "drain".to_string(),
        "--url".into(),
        proc.url.clone(),
        "--token".into(),
        TOKEN.into(),
    ];
    let mut drain = CollectorCommand::start(&collector_bin(), &args);
    until(Duration::from_secs(30), "the drain under way", async || {
        !drain_progress(&drain.stdout.snapshot()).is_empty()
    })
    .await;
    proc.kill9().await;
    let code = drain.exit_code(Duration::from_secs(30)).await;
    assert_ne!(code, Some(0), "the collector died undrained");

    // The next start is an ordinary one: it takes batches and resends what the buffer holds.
    let proc = spawn_collector_process(&cfg).await;
    assert_eq!(readyz(&proc.url).await.0, 200);
    assert!(proc
        .stderr
        .snapshot()
        .iter()
        .any(|l| l.contains("resending what a previous run left")));
    assert_eq!(post_lines(&proc.url, None, &numbered(300, 200)).await, 204);
    front.set(Faults::default());
    until(Duration::from_secs(60), "all 500 delivered", async || {
        stream_numbers(&kc, "drain-killed").await.len() >= 500
    })
    .await;
    exactly(&kc, "drain-killed", 500).await;
    assert_eq!(proc.terminate().await, Some(0));
}
