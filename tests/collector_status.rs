//! The ledger end to end: after a run with kill -9, a Kinesis outage, a steady share of
//! throttled entries and lines over the limit, every output's `received = delivered +
//! dead-lettered + buffered` holds exactly, and each number is what the stream and the
//! dead-letter file really hold; `collector status` prints the same numbers, `collector
//! dead-letter replay` sends dead letters once, and an admin port in use stops the start.

use edgelog_testkit::collector::{
    collector_bin, post_corrupt_gzip, post_lines, spawn_collector_process, start_error, status,
};
use edgelog_testkit::config_yaml::{ConfigYaml, KinesisYaml, FEW_RETRIES};
use edgelog_testkit::delivery::stream_behind_front;
use edgelog_testkit::numbered::{stream_numbers, Loader};
use edgelog_testkit::paths::free_port;
use edgelog_testkit::Faults;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// A collector in its own process delivering to the stream `ledger` at `endpoint`, its admin
/// listener on a port of its own (so `collector status --config` finds it), lines over 400
/// bytes dead-lettered.
fn ledger_config(endpoint: &str) -> ConfigYaml {
    ConfigYaml::new()
        .process()
        .set(&format!("admin: {{listen: \"127.0.0.1:{}\"}}", free_port()))
        .set("ingest: {max_line_bytes: 400}")
        .set("buffer: {type: disk, dir: \"{dir}/buffer\", fsync: interval}")
        .kinesis(
            &KinesisYaml::new(endpoint, "ledger")
                .batch("{duration: 50ms}")
                .key("health_check_interval: 200ms"),
        )
        .retry(FEW_RETRIES)
}

/// [`ledger_config`], written in `dir`.
fn config(dir: &Path, endpoint: &str) -> std::path::PathBuf {
    ledger_config(endpoint).write(dir)
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Checks the equation on every output and returns the first output's numbers.
fn balanced(s: &Value) -> &Value {
    for o in s["outputs"].as_array().expect("outputs") {
        let dead: u64 = o["dead_lettered"]
            .as_object()
            .expect("reasons")
            .values()
            .map(n)
            .sum();
        assert_eq!(dead, n(&o["dead_lettered_total"]), "{o}");
        assert_eq!(
            n(&o["received"]),
            n(&o["delivered"]) + dead + n(&o["buffered"]),
            "the equation: {o}"
        );
        assert_eq!(o["balanced"], true);
    }
    &s["outputs"][0]
}

fn long_lines(tag: &str) -> Vec<String> {
    (0..5)
        .map(|i| format!("{{\"long\":\"{tag}-{i}\",\"pad\":\"{}\"}}", "q".repeat(500)))
        .collect()
}

#[tokio::test]
async fn the_ledger_balances_exactly_through_kill_9_an_outage_throttling_and_long_lines() {
    let (_k, kc, front) = stream_behind_front("ledger", 2).await;
    let throttled = Faults::throttle_entries(0.03);
    front.set(throttled.clone());
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), &front.endpoint);
    let proc = spawn_collector_process(&cfg).await;
    let loader = Loader::start(proc.url.clone(), 50);
    assert_eq!(
        post_lines(&proc.url, None, &long_lines("before")).await,
        204
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Kinesis away; lines wait in the buffer; SIGKILL mid-load.
    front.set(Faults::every_request_fails(500, "InternalFailure"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = status(&proc.admin_url).await;
    assert!(n(&balanced(&before)["buffered"]) > 0, "{before}");
    proc.kill9().await;
    let proc = spawn_collector_process(&cfg).await;
    loader.follow(&proc);
    // The counts resume from the disk: nothing accepted is missing from the equation.
    let after = status(&proc.admin_url).await;
    let o = balanced(&after);
    assert!(
        n(&o["received"]) >= n(&before["outputs"][0]["received"]),
        "{after}"
    );
    assert!(n(&o["buffered"]) > 0, "{after}");

    // Kinesis back, throttling a few percent; more long lines and two bodies refused at ingest.
    front.set(throttled);
    assert_eq!(post_lines(&proc.url, None, &long_lines("after")).await, 204);
    for _ in 0..2 {
        assert_eq!(post_corrupt_gzip(&proc.url).await, 400);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (acked, _) = loader.finish().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let end = loop {
        let s = status(&proc.admin_url).await;
        if n(&balanced(&s)["buffered"]) == 0 {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let o = balanced(&end);

    // Each number is what the stream and the dead-letter file hold: every line once, whatever
    // was sent twice around the SIGKILL.
    let in_stream: HashSet<i64> = stream_numbers(&kc, "ledger").await.into_iter().collect();
    for a in &acked {
        assert!(in_stream.contains(&(*a as i64)), "accepted line {a} lost");
    }
    assert_eq!(n(&o["delivered"]), in_stream.len() as u64, "{o}");
    let dead = std::fs::read_to_string(dir.path().join("dead.ndjson")).expect("dead letters");
    let dead: HashSet<String> = dead
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("record")["line"].to_string())
        .collect();
    assert_eq!(dead.len(), 10);
    assert_eq!(n(&o["dead_lettered"]["line_too_long"]), 10, "{o}");
    assert_eq!(n(&o["received"]), in_stream.len() as u64 + 10, "{o}");
    assert!(
        front
            .stats
            .failed_entries
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "entries were throttled"
    );
    // Refusals beside the ledger, not in it.
    assert_eq!(end["ingest"]["refused"]["corrupt_body"], 2, "{end}");

    // `collector status` prints the same numbers.
    let out = tokio::process::Command::new(collector_bin())
        .args(["status", "--config"])
        .arg(&cfg)
        .output()
        .await
        .expect("collector status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("aws_kinesis "))
        .unwrap_or_else(|| panic!("no row for the output:\n{table}"))
        .split_whitespace()
        .collect();
    let want = [
        "aws_kinesis".to_string(),
        o["received"].to_string(),
        o["delivered"].to_string(),
        "10".into(),
        "0".into(),
        "yes".into(),
    ];
    assert_eq!(row[..6], want, "{table}");
    assert!(
        table.contains("refused at ingest (requests, not in the ledger): corrupt_body 2"),
        "{table}"
    );
}

/// Runs `collector dead-letter replay` and returns what it printed.
async fn replay(cfg: &Path) -> String {
    let out = tokio::process::Command::new(collector_bin())
        .args(["dead-letter", "replay", "--config"])
        .arg(cfg)
        .output()
        .await
        .expect("collector dead-letter replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn replay_sends_dead_letters_once_across_rotated_files_and_the_status_counts_them() {
    let (_k, kc, front) = stream_behind_front("ledger", 2).await;
    front.set(Faults {
        poison: Some((b"POISON".to_vec(), "InvalidArgumentException".into())),
        ..Faults::default()
    });
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = ledger_config(&front.endpoint)
        .retry("{max_retries: 1, initial_wait: 20ms, max_wait: 300ms}")
        .set("dead_letter: {max_bytes: 4096, keep: 3, path: \"{dir}/dead.ndjson\"}")
        .write(dir.path());
    let proc = spawn_collector_process(&cfg).await;
    let poisoned: Vec<String> = (0..30)
        .map(|i| {
            format!(
                "{{\"n\":{},\"p\":\"POISON\",\"pad\":\"{}\"}}",
                1000 + i,
                "z".repeat(150)
            )
        })
        .collect();
    let fine: Vec<String> = (0..20).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(post_lines(&proc.url, None, &fine).await, 204);
    for chunk in poisoned.chunks(5) {
        assert_eq!(post_lines(&proc.url, None, chunk).await, 204);
    }
    assert_eq!(
        post_lines(&proc.url, None, &long_lines("long")[..2]).await,
        204
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&proc.admin_url).await;
        let o = balanced(&s);
        if n(&o["buffered"]) == 0 && n(&o["dead_lettered_total"]) == 32 {
            assert_eq!(n(&o["dead_lettered"]["retries_exhausted"]), 30, "{o}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not dead-lettered: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = dir.path().join("dead.ndjson");
    assert!(
        dir.path().join("dead.ndjson.1").exists(),
        "the dead-letter file was rotated"
    );
    assert!(std::fs::metadata(&dead).expect("current").len() <= 4096);

    // The store takes them now: each poisoned line arrives once, the long ones stay aside.
    front.set(Faults::default());
    let said = replay(&cfg).await;
    assert!(said.contains("replayed 30 lines from "), "{said}");
    assert!(
        said.contains("30 delivered, 0 dead-lettered again"),
        "{said}"
    );
    assert!(
        said.contains("skipped 2 lines dead-lettered for line_too_long"),
        "{said}"
    );
    let count = |nums: &[i64]| nums.iter().filter(|&&k| k >= 1000).count();
    assert_eq!(count(&stream_numbers(&kc, "ledger").await), 30);
    let again = replay(&cfg).await;
    assert!(again.contains("replayed 0 lines"), "{again}");
    assert_eq!(
        count(&stream_numbers(&kc, "ledger").await),
        30,
        "a second replay sent nothing"
    );
    let s = status(&proc.admin_url).await;
    assert_eq!(s["replayed"]["replayed_lines"], 30, "{s}");
    assert_eq!(s["replayed"]["delivered"], 30);
    assert_eq!(s["replayed"]["skipped"]["line_too_long"], 2);
    balanced(&s);
}

#[tokio::test]
async fn an_admin_port_in_use_is_a_start_error_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let config = ConfigYaml::new()
        .set("buffer: {type: memory}")
        .output("  stdout: {}\n")
        .set(&format!("admin: {{listen: \"127.0.0.1:{port}\"}}"));
    let e = start_error(&config.text()).await;
    assert!(
        e.starts_with(&format!("admin.listen: cannot bind 127.0.0.1:{port}: ")),
        "{e}"
    );
}
