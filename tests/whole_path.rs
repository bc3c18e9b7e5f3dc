//! The whole path on one machine, as `scripts/demo` runs it: requests through the edge app under
//! Viceroy, its named-endpoint lines piped into the Fastly stand-in, delivered to the collector,
//! put to a Kinesis emulator, read back. N requests must give exactly N records. Also `collector
//! tail` on that collector, and `scripts/demo --s3` itself, run as users run it.

use edgelog_testkit::collector::{collector_bin, post_lines};
use edgelog_testkit::config_yaml::{ConfigYaml, KinesisYaml};
use edgelog_testkit::delivery;
use edgelog_testkit::paths::{repo_root, target_dir};
use edgelog_testkit::procs::{in_process_group, until};
use edgelog_testkit::{
    spawn_collector, spawn_origin, spawn_viceroy_with_standin, testkit_bin, EdgeSetup,
};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const TOKEN: &str = "e2e-token";
const TAIL_TOKEN: &str = "e2e-tail-token";
const SERVICE: &str = "edgelog-e2e-service";

/// The collector as the demo runs it: one service, a token, the tail open to its own token, a
/// disk buffer, Kinesis.
fn collector_yaml(kinesis: &str, stream: &str) -> String {
    ConfigYaml::new()
        .set(&format!("fastly: {{service_ids: [\"{SERVICE}\"]}}"))
        .set(&format!(
            "ingest: {{auth: {{header: X-Edgelog-Token, token: {TOKEN}}}}}"
        ))
        .set(&format!("tail: {{token: {TAIL_TOKEN}}}"))
        .set("buffer: {type: disk, dir: \"{dir}/buffer\"}")
        .kinesis(&KinesisYaml::new(kinesis, stream))
        .text()
}

fn standin_args(collector_url: &str, json_format: &str) -> Vec<String> {
    edgelog_testkit::standin::args(collector_url, SERVICE, TOKEN, json_format, "0.2")
}

async fn send_requests(edge_url: &str, paths: &[String]) -> HashMap<String, Instant> {
    let client = reqwest::Client::new();
    let mut sent = HashMap::new();
    for chunk in paths.chunks(10) {
        let mut tasks = Vec::new();
        for p in chunk {
            let url = format!("{edge_url}{p}");
            let c = client.clone();
            tasks.push(tokio::spawn(async move {
                c.get(url)
                    .header("user-agent", "edgelog-e2e")
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }));
        }
        for (p, t) in chunk.iter().zip(tasks) {
            let status = t.await.expect("join").expect("request through the edge");
            assert_eq!(status, 200, "{p}");
            sent.insert(p.clone(), Instant::now());
        }
    }
    sent
}

async fn run_path(
    format: &str,
    json_format: &str,
    stream: &str,
) -> (Vec<Vec<u8>>, Vec<String>, Vec<Duration>) {
    let (k, kc) = delivery::stream(stream, 2).await;
    let col = spawn_collector(&collector_yaml(&k.endpoint, stream)).await;
    let origin = spawn_origin().await;
    let edge = spawn_viceroy_with_standin(
        &EdgeSetup::new(&origin.url())
            .set("format", format)
            .set("endpoints", "collector"),
        &testkit_bin("fastly-standin"),
        &standin_args(&col.url, json_format),
    )
    .await;
    let nonce = std::process::id();
    let paths: Vec<String> = (0..100)
        .map(|i| format!("/whole/{i}-{nonce}?q={i}"))
        .collect();
    let sent = send_requests(&edge.url, &paths).await;
    // Collect records as they arrive, noting when each request's line became readable.
    let mut arrived: HashMap<String, Duration> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let recs = kc.read_all(stream).await;
        let now = Instant::now();
        for r in &recs {
            let text = String::from_utf8_lossy(&r.data);
            if let Some(p) = paths.iter().find(|p| text.contains(p.as_str())) {
                arrived
                    .entry(p.clone())
                    .or_insert_with(|| now.duration_since(sent[p]));
            }
        }
        if recs.len() >= paths.len() || Instant::now() > deadline {
            break recs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = if records.len() == paths.len() {
        kc.read_all(stream).await
    } else {
        records
    };
    let _ = edge.viceroy_stderr.snapshot();
    (
        records.into_iter().map(|r| r.data.to_vec()).collect(),
        paths,
        arrived.into_values().collect(),
    )
}

fn report_latency(what: &str, mut lat: Vec<Duration>) {
    lat.sort();
    if lat.is_empty() {
        return;
    }
    let q = |f: f64| lat[((lat.len() - 1) as f64 * f).round() as usize];
    eprintln!("{what}: edge request to record readable in Kinesis: p50 {:?}, p99 {:?} (stand-in period 0.2 s)", q(0.5), q(0.99));
}

#[tokio::test]
async fn n_requests_give_exactly_n_json_records_matched_by_request_id() {
    let (records, paths, latency) = run_path("json", "2", "e2e-json").await;
    assert_eq!(records.len(), paths.len(), "exactly one record per request");
    let mut ids = HashSet::new();
    let mut seen_paths = HashSet::new();
    for r in &records {
        let v: serde_json::Value = serde_json::from_slice(r).expect("JSON record");
        assert_eq!(v["event"], "access");
        assert_eq!(v["status"], 200);
        assert_eq!(v["user_agent"], "edgelog-e2e");
        let id = v["request_id"].as_str().expect("request_id").to_string();
        assert_eq!(id.len(), 32);
        assert!(ids.insert(id), "request ids are unique");
        seen_paths.insert(v["url"].as_str().expect("url").to_string());
    }
    assert_eq!(seen_paths, paths.into_iter().collect::<HashSet<_>>());
    report_latency("json", latency);
}

#[tokio::test]
async fn n_requests_give_exactly_n_common_log_format_records() {
    let (records, paths, _) = run_path("clf", "0", "e2e-clf").await;
    assert_eq!(records.len(), paths.len(), "exactly one record per request");
    for p in &paths {
        let hits = records
            .iter()
            .filter(|r| String::from_utf8_lossy(r).contains(&format!("\"GET {p} HTTP/1.1\" 200 9")))
            .count();
        assert_eq!(hits, 1, "{p}");
    }
    for r in &records {
        let text = String::from_utf8_lossy(r);
        assert!(text.starts_with("127.0.0.1 - - ["), "{text}");
    }
}

#[tokio::test]
async fn collector_tail_streams_live_lines_with_filters() {
    let (k, _kc) = delivery::stream("tail", 1).await;
    let col = spawn_collector(&collector_yaml(&k.endpoint, "tail")).await;
    // Without or with a wrong token: refused.
    for token in ["", "wrong"] {
        let out = tokio::process::Command::new(collector_bin())
            .args(["tail", "--url", &col.url, "--token", token])
            .output()
            .await
            .expect("tail");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("401"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut tail = tokio::process::Command::new(collector_bin())
        .args(["tail", "--url", &col.url, "--filter", "status=503"])
        .env("EDGELOG_TAIL_TOKEN", TAIL_TOKEN)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("tail");
    let out = edgelog_testkit::procs::Lines::collect(tail.stdout.take().expect("stdout"));
    out.wait_for("connected", Duration::from_secs(10), |l| {
        l.iter().any(|x| x.contains("connected"))
    })
    .await;
    let lines: Vec<String> = (0..20)
        .map(|i| {
            format!(
                "{{\"status\":{},\"i\":{i}}}",
                if i % 5 == 0 { 503 } else { 200 }
            )
        })
        .collect();
    assert_eq!(post_lines(&col.url, Some(TOKEN), &lines).await, 204);
    let got = out
        .wait_for("four 503 lines", Duration::from_secs(10), |l| {
            l.iter().filter(|x| x.contains("503")).count() >= 4
        })
        .await;
    let shown: Vec<&String> = got.iter().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(shown.len(), 4, "{shown:?}");
    assert!(shown.iter().all(|l| l.contains("\"status\":503")));
    assert_eq!(col.handles.metrics.tail_clients.get(), 1);
}

/// `scripts/demo --s3` exactly as a user runs it from the checkout: it sets up, builds, shows the
/// records in the stream and the objects in the bucket, ends by itself and leaves nothing running.
#[tokio::test]
async fn scripts_demo_shows_the_lines_in_the_stream_and_the_archive_and_leaves_nothing_running() {
    let child = tokio::process::Command::new(repo_root().join("scripts/demo"))
        .args(["--requests", "30", "--s3"])
        .current_dir(repo_root())
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("run scripts/demo");
    let group = child.id().expect("the demo's pid");
    let out = tokio::time::timeout(Duration::from_secs(900), child.wait_with_output())
        .await
        .expect("the demo finishes")
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("demo: 30 requests sent") && stdout.contains("30 records in the stream"),
        "{stdout}"
    );
    assert!(
        stdout.contains("demo: 30 lines in ")
            && stdout.contains("objects in the bucket \"edgelog-demo\""),
        "{stdout}"
    );
    assert!(
        stderr.contains("object s3://edgelog-demo/fastly-logs/dt="),
        "the objects are shown: {stderr}"
    );
    until(
        Duration::from_secs(10),
        "nothing the demo started still running",
        async || in_process_group(group).is_empty(),
    )
    .await;
}
