//! The collector under what real Kinesis and real Fastly do and emulators do not: throttling
//! that comes and goes, a steady trickle of throttled entries, calls that fail and arrive out of
//! order, an IAM policy with only the permissions a mode needs, endpoints from the environment,
//! and Fastly's default line prefix. Every line posted is read back from kinesalite.

use edgelog_testkit::collector::{collector_bin, spawn_collector_process_with};
use edgelog_testkit::delivery::{exactly_once, lines, post_all, stream, stream_behind_front, yaml};
use edgelog_testkit::{spawn_collector, Faults};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The retry block every test here starts from; some remove it to run with the defaults.
const FAST_RETRY: &str = "  retry: {max_retries: 20, initial_wait: 10ms, max_wait: 100ms}\n";

async fn readyz(url: &str) -> (u16, String) {
    let r = reqwest::get(format!("{url}/readyz")).await.expect("readyz");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn heavy_throttling_is_a_pause_not_bad_data_and_delivery_recovers_by_itself() {
    let (_k, kc, front) = stream_behind_front("hot", 2).await;
    // The default retry policy (max_retries 3): throttled entries must not use it up.
    let col = spawn_collector(&yaml(&front.endpoint, "hot", "", "").replace(FAST_RETRY, "")).await;
    front.set(Faults::throttle_entries(0.85));
    let all = lines("hot", 5000);
    post_all(&col.url, &all, 500).await;
    // While throttled, the lines wait in the buffer and the lag shows.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, body) = readyz(&col.url).await;
    let pending: usize = body
        .lines()
        .find_map(|l| l.strip_prefix("pending_lines: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(pending > 0, "lag not visible in /readyz:\n{body}");
    assert!(col.handles.metrics.output_throttles.get() > 0);
    let ended = Instant::now();
    front.set(Faults::default());
    let recs = kc
        .wait_for_lines("hot", 5000, Duration::from_secs(60))
        .await;
    let recovered = ended.elapsed();
    exactly_once(&recs, &all);
    assert!(
        !col.path("dead.ndjson").exists(),
        "throttled lines were dead-lettered"
    );
    assert_eq!(col.handles.metrics.dead_lettered.total(), 0);
    eprintln!(
        "85% throttled then clear: the last of 5,000 lines read back {recovered:?} after the throttling ended"
    );
}

#[tokio::test]
async fn a_steady_one_percent_of_throttled_entries_does_not_slow_delivery_down() {
    let (_k, kc, front) = stream_behind_front("busy", 4).await;
    front.set(Faults::throttle_entries(0.01));
    let col = spawn_collector(&yaml(&front.endpoint, "busy", "", "").replace(FAST_RETRY, "")).await;
    let all = lines("busy", 20_000);
    let t0 = Instant::now();
    post_all(&col.url, &all, 1000).await;
    let recs = kc
        .wait_for_lines("busy", 20_000, Duration::from_secs(60))
        .await;
    let took = t0.elapsed();
    exactly_once(&recs, &all);
    assert!(!col.path("dead.ndjson").exists());
    assert!(
        front
            .stats
            .failed_entries
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    eprintln!("1% throttled: 20,000 lines posted and read back in {took:?}");
}

#[tokio::test]
async fn each_mode_runs_with_only_the_permissions_it_needs() {
    let (_k, kc, front) = stream_behind_front("iam", 2).await;
    let allow = |actions: &[&str]| Faults {
        allowed_actions: Some(actions.iter().map(|a| a.to_string()).collect()),
        ..Faults::default()
    };
    // Shard-balanced: PutRecords and ListShards, nothing else.
    front.set(allow(&["PutRecords", "ListShards"]));
    let col = spawn_collector(&yaml(&front.endpoint, "iam", "", "")).await;
    assert_eq!(readyz(&col.url).await.0, 200);
    let first = lines("balanced", 300);
    post_all(&col.url, &first, 100).await;
    kc.wait_for_lines("iam", 300, Duration::from_secs(30)).await;
    drop(col);
    // A random key: PutRecords alone.
    front.set(allow(&["PutRecords"]));
    let col = spawn_collector(&yaml(
        &front.endpoint,
        "iam",
        "    partition_key: random\n",
        "",
    ))
    .await;
    assert_eq!(readyz(&col.url).await.0, 200);
    let second = lines("random", 300);
    post_all(&col.url, &second, 100).await;
    let recs = kc.wait_for_lines("iam", 600, Duration::from_secs(30)).await;
    exactly_once(&recs, &[first, second].concat());
    let asked: HashSet<String> = front
        .stats
        .actions
        .lock()
        .expect("actions")
        .iter()
        .cloned()
        .collect();
    assert_eq!(
        asked,
        HashSet::from(["PutRecords".to_string(), "ListShards".to_string()]),
        "no other action is ever asked for"
    );
    drop(col);
    // Shard-balanced without ListShards: a start-up error naming the permission.
    let dir = tempfile::tempdir().expect("tmp");
    let cfg =
        edgelog_testkit::collector::config_in(&yaml(&front.endpoint, "iam", "", ""), dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = collector::run(cfg, listener, std::future::pending())
        .await
        .expect_err("must not start");
    assert!(err.to_string().contains("kinesis:ListShards"), "{err}");
    // ListShards without PutRecords: ready until lines come, then not ready, naming it.
    front.set(allow(&["ListShards"]));
    let col = spawn_collector(&yaml(&front.endpoint, "iam", "", "")).await;
    post_all(&col.url, &lines("denied", 10), 10).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = readyz(&col.url).await;
        if status == 503 && body.contains("kinesis:PutRecords") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never named the permission: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !col.path("dead.ndjson").exists(),
        "denied lines wait, never dead-lettered"
    );
}

#[tokio::test]
async fn order_per_key_holds_between_calls_and_only_a_failed_line_can_move_within_its_call() {
    let (_k, kc, front) = stream_behind_front("ordered", 2).await;
    front.set(Faults {
        entry_failure_rate: 0.05,
        entry_error_code: "InternalFailure".into(),
        max_call_delay: Some(Duration::from_millis(20)),
        ..Faults::default()
    });
    let batch = 50;
    let col = spawn_collector(
        &yaml(&front.endpoint, "ordered", "    partition_key: k\n", "").replace(
            "    batch: {duration: 100ms}\n",
            &format!("    batch: {{size: {batch}, duration: 20ms}}\n"),
        ),
    )
    .await;
    let keys = 5;
    let all: Vec<String> = (0..3000)
        .map(|i| format!("{{\"k\":\"key{}\",\"i\":{i}}}", i % keys))
        .collect();
    post_all(&col.url, &all, 100).await;
    let recs = kc
        .wait_for_lines("ordered", all.len(), Duration::from_secs(60))
        .await;
    exactly_once(&recs, &all);
    let failed: HashSet<Vec<u8>> = front
        .stats
        .failed_data
        .lock()
        .expect("failed")
        .iter()
        .cloned()
        .collect();
    assert!(!failed.is_empty(), "the front failed some entries");
    // Per key, in stream order (one key lives on one shard, read in sequence order).
    let mut per_key: HashMap<String, Vec<(i64, Vec<u8>)>> = HashMap::new();
    for r in &recs {
        let v: serde_json::Value = serde_json::from_slice(&r.data).expect("json");
        let key = v["k"].as_str().expect("k").to_string();
        assert_eq!(r.partition_key, key);
        per_key
            .entry(key)
            .or_default()
            .push((v["i"].as_i64().expect("i"), r.data.to_vec()));
    }
    let mut moved = 0;
    for (key, seq) in &per_key {
        for (pos, (i, data)) in seq.iter().enumerate() {
            // A line that lands after a later line of its key was failed and sent again, and
            // only lines of its own call (at most a batch) went ahead of it.
            let overtaken_by = seq[..pos].iter().filter(|(j, _)| j > i).count();
            if overtaken_by > 0 {
                moved += 1;
                assert!(
                    failed.contains(data),
                    "key {key}: line {i} landed after {overtaken_by} later lines without having failed"
                );
                assert!(
                    overtaken_by < batch,
                    "key {key}: line {i} overtaken by {overtaken_by}"
                );
            }
        }
    }
    eprintln!(
        "{} entries failed on purpose, {moved} lines landed after later lines of their call",
        failed.len()
    );
}

#[tokio::test]
async fn the_endpoint_can_come_from_the_environment() {
    let (k, kc) = stream("env", 1).await;
    let dir = tempfile::tempdir().expect("tmp");
    let text = yaml("unused", "env", "", "")
        .replace("    endpoint_url: \"unused\"\n", "")
        .replace("{dir}", &dir.path().display().to_string());
    assert!(!text.contains("endpoint_url"));
    let path = dir.path().join("collector.yaml");
    std::fs::write(&path, text).expect("config");
    let proc = spawn_collector_process_with(
        &collector_bin(),
        &path,
        &[("AWS_ENDPOINT_URL_KINESIS", k.endpoint.as_str())],
    )
    .await;
    let all = lines("env", 50);
    post_all(&proc.url, &all, 50).await;
    let recs = kc.wait_for_lines("env", 50, Duration::from_secs(30)).await;
    exactly_once(&recs, &all);
}

#[tokio::test]
async fn fastlys_default_line_prefix_is_removed_and_counted() {
    let (k, kc) = stream("prefixed", 2).await;
    let col = spawn_collector(&yaml(&k.endpoint, "prefixed", "    partition_key: k\n", "")).await;
    let plain: Vec<String> = (0..20)
        .map(|i| format!("{{\"k\":\"key{}\",\"i\":{i}}}", i % 3))
        .collect();
    let sent: Vec<String> = plain
        .iter()
        .enumerate()
        .map(|(i, l)| match i % 3 {
            0 => format!("<134>2026-11-21T10:00:00Z cache-xyz My Log Endpoint[4242]: {l}"),
            1 => format!("<134>1 2026-11-21T10:00:00Z cache-xyz collector 4242 - - {l}"),
            _ => l.clone(),
        })
        .collect();
    post_all(&col.url, &sent, 20).await;
    let recs = kc
        .wait_for_lines("prefixed", 20, Duration::from_secs(30))
        .await;
    exactly_once(&recs, &plain);
    for r in &recs {
        let v: serde_json::Value = serde_json::from_slice(&r.data).expect("json, prefix gone");
        assert_eq!(
            r.partition_key,
            v["k"].as_str().expect("k"),
            "the field key applies"
        );
    }
    assert_eq!(col.handles.metrics.ingest_prefix_stripped.get(), 14);
    assert_eq!(col.handles.metrics.output_partition_fallback.get(), 0);
}

/// Secrets never reach the log, at any level: the AWS SDK prints resolved credentials and signed
/// requests at `trace`, whichever way the credentials came in.
#[tokio::test]
async fn no_secret_reaches_the_log_even_at_trace_level() {
    let (k, kc) = stream("secrets", 1).await;
    let key_id = "AKIAEDGELOGLEAKTEST1";
    let secret_key = "wJalrXUtnFEMI/K7MDENG/edgelogLeakTestKey";
    let session = "FwoGZXIvYXdzEdgelogSessionLeakTest";
    let token = "ingest-token-edgelog-leak-test";
    for (round, (how, in_config)) in [("environment", false), ("configuration", true)]
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().expect("tmp");
        let creds = if in_config {
            "    credentials: {access_key_id: \"${KEY}\", secret_access_key: \"${SECRET}\", session_token: \"${SESSION}\"}\n"
        } else {
            ""
        };
        let text = yaml(&k.endpoint, "secrets", "", "")
            .replace(
                "    credentials: {access_key_id: AKIDTEST, secret_access_key: secret}\n",
                creds,
            )
            .replace(
                "fastly:",
                &format!(
                    "ingest: {{auth: {{header: X-Edgelog-Token, token: \"{token}\"}}}}\nfastly:"
                ),
            )
            .replace("{dir}", &dir.path().display().to_string());
        let path = dir.path().join("collector.yaml");
        std::fs::write(&path, text).expect("config");
        let env: Vec<(&str, &str)> = if in_config {
            vec![
                ("KEY", key_id),
                ("SECRET", secret_key),
                ("SESSION", session),
            ]
        } else {
            vec![
                ("AWS_ACCESS_KEY_ID", key_id),
                ("AWS_SECRET_ACCESS_KEY", secret_key),
                ("AWS_SESSION_TOKEN", session),
            ]
        };
        let mut env = env;
        env.push(("EDGELOG_LOG", "trace"));
        let proc = spawn_collector_process_with(&collector_bin(), &path, &env).await;
        let all = lines(how, 20);
        for chunk in all.chunks(10) {
            let status =
                edgelog_testkit::collector::post_lines(&proc.url, Some(token), chunk).await;
            assert_eq!(status, 204, "{how}");
        }
        kc.wait_for_lines("secrets", 20 * (round + 1), Duration::from_secs(30))
            .await;
        let log = proc.stderr.snapshot();
        proc.terminate().await;
        let signed = log
            .iter()
            .filter(|l| l.contains("resolved identity") || l.contains("signing request"))
            .count();
        assert!(
            signed > 0,
            "{how}: the trace log shows how requests are signed ({} lines)",
            log.len()
        );
        for s in [key_id, secret_key, session, token] {
            let leaks: Vec<&String> = log.iter().filter(|l| l.contains(s)).collect();
            assert!(
                leaks.is_empty(),
                "{how}: {s} in {} log lines, first: {}",
                leaks.len(),
                leaks[0]
            );
        }
    }
}
