//! The S3 archive beside Kinesis, with real processes: the collector binary with its disk
//! buffer, kinesalite and an S3-compatible store (s3s-fs). Every line posted is read back from
//! both, decompressed; kill -9 during uploads loses and duplicates nothing in the archive; one
//! destination down never holds the other back; an output added later starts from the oldest
//! buffered line; every bad configuration stops the collector with
//! a message naming what to fix.

use edgelog_testkit::buffer::ack_files;
use edgelog_testkit::collector::{
    metric, readyz, refused_at_start, spawn_collector_process, CollectorProcess,
};
use edgelog_testkit::config_yaml::{ConfigYaml, KinesisYaml, FEW_RETRIES};
use edgelog_testkit::delivery::{lines, post_all, stream, stream_behind_front};
use edgelog_testkit::numbered::{stream_numbers, Loader};
use edgelog_testkit::procs::until;
use edgelog_testkit::s3::{self, spawn_s3, S3Store, ACCESS_KEY};
use edgelog_testkit::s3_front::spawn_s3_front;
use edgelog_testkit::s3_stub::spawn_s3_stub;
use edgelog_testkit::{DurableKinesalite, Faults, KinesisClient};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BUCKET: &str = "edgelog-archive";

/// A collector in its own process with a large disk buffer in 1 MiB segments and these outputs
/// (their lines under `output:`).
fn archive_config(outputs: &str) -> ConfigYaml {
    ConfigYaml::new()
        .process()
        .set("ingest: {max_body_bytes: 1048576, max_in_flight_bytes: 16777216}")
        .set("buffer: {type: disk, dir: \"{dir}/buffer\", fsync: interval, max_bytes: 268435456, segment_bytes: 1048576}")
        .output(outputs)
        .retry(FEW_RETRIES)
}

/// [`archive_config`], written in `dir`.
fn config(dir: &Path, outputs: &str) -> PathBuf {
    archive_config(outputs).write(dir)
}

/// The Kinesis output block for `stream` at `endpoint`.
fn kinesis_yaml(endpoint: &str, stream: &str) -> String {
    KinesisYaml::new(endpoint, stream).watchful().block()
}

/// How many times each number appears in the lines.
fn numbers(lines: &[String]) -> HashMap<u64, usize> {
    let mut seen = HashMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        *seen.entry(v["n"].as_u64().expect("n")).or_default() += 1;
    }
    seen
}

async fn lag(c: &CollectorProcess, output: &str) -> u64 {
    let name = format!("edgelog_output_lag_entries{{output=\"{output}\"}}");
    metric(&c.admin_url, &name).await
}

#[tokio::test]
async fn every_line_lands_once_in_the_bucket_and_in_the_stream() {
    let dir = tempfile::tempdir().expect("tmp");
    let (kinesalite, kinesis) = stream("both", 2).await;
    let s3 = spawn_s3(&[BUCKET]).await;
    let outputs = format!(
        "{}{}",
        kinesis_yaml(&kinesalite.endpoint, "both"),
        s3.output_yaml(
            BUCKET,
            "    prefix: fastly\n    compression: zstd\n    max_object_age: 500ms\n"
        )
    );
    let c = spawn_collector_process(&config(dir.path(), &outputs)).await;
    let all = lines("both", 6000);
    post_all(&c.url, &all, 500).await;

    let client = s3.client().await;
    until(Duration::from_secs(60), "every line archived", async || {
        client.lines(BUCKET).await.len() >= all.len()
    })
    .await;
    let objects = client.objects(BUCKET).await;
    let archived: Vec<String> = objects.iter().flat_map(|o| o.lines.clone()).collect();
    let mut sorted = archived.clone();
    sorted.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(sorted, want, "exactly the lines posted, once each");
    for o in &objects {
        assert!(
            o.key.starts_with("fastly/dt=")
                && o.key.contains("/hour=")
                && o.key.ends_with(".log.zst"),
            "Hive-style key under the prefix: {}",
            o.key
        );
        assert_eq!(o.content_type.as_deref(), Some("application/zstd"));
    }
    let records = kinesis.read_all("both").await;
    assert_eq!(records.len(), all.len(), "and every line in the stream");
    assert_eq!(
        metric(&c.admin_url, "edgelog_s3_lines_total").await,
        all.len() as u64
    );
    assert!(metric(&c.admin_url, "edgelog_s3_objects_total").await >= 1);
    until(Duration::from_secs(10), "no lag left", async || {
        lag(&c, "s3").await == 0 && lag(&c, "aws_kinesis").await == 0
    })
    .await;
    let (_, ready) = readyz(&c.url).await;
    assert!(ready.contains("output.s3.lag_entries: 0"), "{ready}");
    assert!(ready.contains("output.aws_kinesis.lag_bytes: 0"), "{ready}");
    c.terminate().await;
}

/// An output added to the configuration starts from the oldest line still in the buffer: lines
/// taken while Kinesis was away, before the archive existed, all land in the archive too.
#[tokio::test]
async fn an_output_added_later_starts_from_the_oldest_line_in_the_buffer() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_k, kc, front) = stream_behind_front("added", 1).await;
    let s3 = spawn_s3(&[BUCKET]).await;
    let cfg = config(dir.path(), &kinesis_yaml(&front.endpoint, "added"));
    let c = spawn_collector_process(&cfg).await;
    front.set(Faults::every_request_fails(503, "ServiceUnavailable"));
    let all = lines("added", 2000);
    post_all(&c.url, &all, 200).await;
    c.kill9().await;
    // The same buffer, now with the archive beside Kinesis, and Kinesis back.
    let both = format!(
        "{}{}",
        kinesis_yaml(&front.endpoint, "added"),
        s3.output_yaml(BUCKET, "    max_object_age: 500ms\n")
    );
    assert_eq!(config(dir.path(), &both), cfg, "the same file, rewritten");
    front.set(Faults::default());
    let c = spawn_collector_process(&cfg).await;
    let client = s3.client().await;
    until(
        Duration::from_secs(60),
        "every buffered line archived",
        async || client.lines(BUCKET).await.len() >= all.len(),
    )
    .await;
    let mut archived = client.lines(BUCKET).await;
    archived.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(
        archived, want,
        "every line taken before the archive was added, once"
    );
    until(
        Duration::from_secs(30),
        "and every line in the stream",
        async || stream_numbers(&kc, "added").await.len() >= all.len(),
    )
    .await;
    c.terminate().await;
}

#[tokio::test]
async fn throttling_on_both_sides_all_the_time_leaves_both_exact() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_k, kinesis, front) = stream_behind_front("pushback", 2).await;
    front.set(Faults::throttle_entries(0.03));
    let s3 = spawn_s3(&[BUCKET]).await;
    // The store pushes back too: one request in 4 answered 503 SlowDown.
    let s3_front = spawn_s3_front(&s3.endpoint, 4).await;
    let outputs = format!(
        "{}{}",
        kinesis_yaml(&front.endpoint, "pushback"),
        s3.output_yaml(BUCKET, "    max_object_age: 300ms\n")
            .replace(&s3.endpoint, &s3_front.endpoint)
    );
    let c = spawn_collector_process(&config(dir.path(), &outputs)).await;
    let all = lines("pushback", 5000);
    for chunk in all.chunks(1000) {
        post_all(&c.url, chunk, 100).await;
        // Objects close by age between the chunks: many requests to the store.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    until(
        Duration::from_secs(90),
        "both outputs delivered everything",
        async || {
            lag(&c, "aws_kinesis").await == 0
                && lag(&c, "s3").await == 0
                && metric(&c.admin_url, "edgelog_s3_lines_total").await >= all.len() as u64
        },
    )
    .await;
    assert!(
        metric(&c.admin_url, "edgelog_output_throttles_total").await > 0,
        "Kinesis pushed back"
    );
    assert!(s3_front.slowed.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(
        metric(
            &c.admin_url,
            "edgelog_s3_upload_errors_total{error=\"SlowDown\"}"
        )
        .await
            > 0,
        "the store pushed back, counted by its code"
    );
    let seen = numbers(&s3.client().await.lines(BUCKET).await);
    assert_eq!(seen.len(), all.len());
    assert!(
        seen.values().all(|&k| k == 1),
        "the archive holds each line once"
    );
    let in_stream: std::collections::HashSet<i64> = stream_numbers(&kinesis, "pushback")
        .await
        .into_iter()
        .collect();
    assert_eq!(in_stream.len(), all.len(), "and the stream every line");
    c.terminate().await;
}

#[tokio::test]
async fn large_objects_go_up_in_parts_and_hold_every_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let s3 = spawn_s3(&[BUCKET]).await;
    // Objects close by size only (the age is out of reach); the shutdown stores the last one.
    let outputs = s3.output_yaml(
        BUCKET,
        "    compression: none\n    max_object_bytes: 12582912\n    max_object_age: 10m\n",
    );
    let c = spawn_collector_process(&config(dir.path(), &outputs)).await;
    // About 30 MB: two objects closed by size, each uploaded in 8 MiB parts, and the rest.
    let pad = "x".repeat(900);
    let all: Vec<String> = (0..32_000)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{pad}\"}}"))
        .collect();
    post_all(&c.url, &all, 1000).await;
    until(
        Duration::from_secs(90),
        "two objects stored in parts",
        async || {
            metric(&c.admin_url, "edgelog_s3_objects_total").await >= 2
                && metric(&c.admin_url, "edgelog_s3_parts_total").await >= 4
        },
    )
    .await;
    assert_eq!(c.terminate().await, Some(0), "a graceful stop");
    let objects = s3.client().await.objects(BUCKET).await;
    let seen = numbers(
        &objects
            .iter()
            .flat_map(|o| o.lines.clone())
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        seen.len(),
        all.len(),
        "every line, the last object stored at shutdown"
    );
    assert!(seen.values().all(|&n| n == 1), "no line twice");
    let sizes: Vec<i64> = objects.iter().map(|o| o.size).collect();
    assert_eq!(
        sizes.iter().filter(|&&s| s >= 12_582_912).count(),
        2,
        "objects closed at max_object_bytes: {sizes:?}"
    );
    assert_eq!(objects.len(), 3, "and the rest: {sizes:?}");
}

#[tokio::test]
async fn kill_9_during_uploads_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().expect("tmp");
    let (kinesalite, kinesis) = stream("crash", 2).await;
    let s3 = spawn_s3(&[BUCKET]).await;
    let outputs = format!(
        "{}{}",
        kinesis_yaml(&kinesalite.endpoint, "crash"),
        s3.output_yaml(BUCKET, "    max_object_age: 200ms\n")
    );
    let cfg = config(dir.path(), &outputs);
    let mut c = spawn_collector_process(&cfg).await;
    let loader = Loader::start(c.url.clone(), 100);
    for round in 0..4 {
        let before = metric(&c.admin_url, "edgelog_s3_objects_total").await;
        until(
            Duration::from_secs(30),
            "objects stored before the kill",
            async || metric(&c.admin_url, "edgelog_s3_objects_total").await >= before + 3,
        )
        .await;
        // Kill while parts and objects are on their way (the age limit closes one every 200 ms).
        tokio::time::sleep(Duration::from_millis(50 + 70 * round)).await;
        loader.pause();
        c.kill9().await;
        c = spawn_collector_process(&cfg).await;
        loader.follow(&c);
        loader.resume();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (acked, _) = loader.finish().await;
    assert!(acked.len() > 2000, "load went through: {}", acked.len());
    let client = s3.client().await;
    until(
        Duration::from_secs(60),
        "the archive caught up",
        async || {
            let seen = numbers(&client.lines(BUCKET).await);
            acked.iter().all(|n| seen.contains_key(n))
        },
    )
    .await;
    let seen = numbers(&client.lines(BUCKET).await);
    let twice: Vec<_> = seen.iter().filter(|(_, &k)| k > 1).collect();
    assert!(
        twice.is_empty(),
        "lines stored twice after kill -9: {twice:?}"
    );
    let in_stream: std::collections::HashSet<i64> = stream_numbers(&kinesis, "crash")
        .await
        .into_iter()
        .collect();
    let lost: Vec<_> = acked
        .iter()
        .filter(|&&n| !in_stream.contains(&(n as i64)))
        .collect();
    assert!(
        lost.is_empty(),
        "lines missing from the stream: {}",
        lost.len()
    );
    c.terminate().await;
}

#[tokio::test]
async fn objects_stored_after_the_saved_position_are_stored_again_under_the_same_names() {
    // A crash between storing objects and saving the position past them, widened to many
    // objects: the ack files are put back to an earlier copy before the restart.
    let dir = tempfile::tempdir().expect("tmp");
    let s3 = spawn_s3(&[BUCKET]).await;
    let outputs = format!(
        "{}  stdout: {{}}\n",
        s3.output_yaml(BUCKET, "    max_object_age: 200ms\n")
    );
    // One segment holds the whole run, so the earlier position still has its entries.
    let cfg = archive_config(&outputs)
        .set("buffer: {type: disk, dir: \"{dir}/buffer\", fsync: interval, max_bytes: 268435456, segment_bytes: 268435456}")
        .write(dir.path());
    let buffer = dir.path().join("buffer");
    let c = spawn_collector_process(&cfg).await;
    let loader = Loader::start(c.url.clone(), 100);
    until(Duration::from_secs(30), "some objects stored", async || {
        metric(&c.admin_url, "edgelog_s3_objects_total").await >= 3
    })
    .await;
    let earlier: Vec<(PathBuf, Vec<u8>)> = ack_files(&buffer)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("ack file");
            (p, bytes)
        })
        .collect();
    assert_eq!(earlier.len(), 3, "ack, ack.s3, ack.stdout");
    let at_copy = metric(&c.admin_url, "edgelog_s3_objects_total").await;
    until(Duration::from_secs(30), "more objects stored", async || {
        metric(&c.admin_url, "edgelog_s3_objects_total").await >= at_copy + 8
    })
    .await;
    let (acked, _) = loader.finish().await;
    c.kill9().await;
    for (p, bytes) in &earlier {
        std::fs::write(p, bytes).expect("put the ack file back");
    }
    let client = s3.client().await;
    let c = spawn_collector_process(&cfg).await;
    until(
        Duration::from_secs(60),
        "the archive caught up again",
        async || {
            metric(&c.admin_url, "edgelog_s3_objects_total").await >= 1 && lag(&c, "s3").await == 0
        },
    )
    .await;
    let seen = numbers(&client.lines(BUCKET).await);
    let twice = seen.values().filter(|&&k| k > 1).count();
    assert_eq!(twice, 0, "lines stored twice after sending objects again");
    assert!(
        acked.iter().all(|n| seen.contains_key(n)),
        "every line archived"
    );
    let stored_again = metric(&c.admin_url, "edgelog_s3_objects_total").await;
    assert!(
        stored_again >= 8,
        "objects were stored again: {stored_again}"
    );
    c.terminate().await;
}

#[tokio::test]
async fn one_destination_down_never_holds_the_other_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut kinesalite = DurableKinesalite::start().await;
    let kinesis = KinesisClient::new(&kinesalite.endpoint).await;
    kinesis.create_stream("apart", 2).await;
    let mut s3 = spawn_s3(&[BUCKET]).await;
    let outputs = format!(
        "{}{}",
        kinesis_yaml(&kinesalite.endpoint, "apart"),
        s3.output_yaml(
            BUCKET,
            "    max_object_age: 300ms\n    request_timeout: 2s\n"
        )
    );
    let c = spawn_collector_process(&config(dir.path(), &outputs)).await;
    let client = s3.client().await;

    // The archive stops for 30 s under load: the stream keeps up the whole time.
    let loader = Loader::start(c.url.clone(), 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
    s3.stop().await;
    let outage = tokio::time::Instant::now();
    while outage.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    loader.pause();
    let acked_in_outage = loader.acked_len();
    until(
        Duration::from_secs(20),
        "the stream has every line while the archive is down",
        async || lag(&c, "aws_kinesis").await == 0,
    )
    .await;
    let in_stream = stream_numbers(&kinesis, "apart").await;
    assert!(
        in_stream.len() >= acked_in_outage,
        "{} < {acked_in_outage}",
        in_stream.len()
    );
    assert!(lag(&c, "s3").await > 0, "the archive is behind while down");
    let (status, body) = readyz(&c.url).await;
    assert_eq!(
        status, 200,
        "a store that is down leaves the collector ready"
    );
    assert!(
        body.contains("output.s3.lag_entries: ") && !body.contains("output.s3.lag_entries: 0\n"),
        "{body}"
    );
    assert!(
        metric(
            &c.admin_url,
            "edgelog_s3_upload_errors_total{error=\"Unreachable\"}"
        )
        .await
            > 0,
        "failed uploads counted by error"
    );
    s3.resume().await;
    until(
        Duration::from_secs(60),
        "the archive catches up",
        async || lag(&c, "s3").await == 0,
    )
    .await;

    // Now the stream stops for 30 s and the archive keeps up.
    kinesalite.stop().await;
    loader.resume();
    let outage = tokio::time::Instant::now();
    while outage.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    loader.pause();
    until(
        Duration::from_secs(20),
        "the archive has every line while the stream is down",
        async || lag(&c, "s3").await == 0,
    )
    .await;
    assert!(
        lag(&c, "aws_kinesis").await > 0,
        "the stream is behind while down"
    );
    kinesalite.resume().await;
    let (acked, _) = loader.finish().await;
    until(
        Duration::from_secs(90),
        "the stream catches up",
        async || lag(&c, "aws_kinesis").await == 0,
    )
    .await;
    let archived = numbers(&client.lines(BUCKET).await);
    let in_stream: std::collections::HashSet<i64> = stream_numbers(&kinesis, "apart")
        .await
        .into_iter()
        .collect();
    for n in &acked {
        assert_eq!(archived.get(n), Some(&1), "line {n} archived once");
        assert!(in_stream.contains(&(*n as i64)), "line {n} in the stream");
    }
    c.terminate().await;
}

/// Runs the collector with `outputs` and expects it to exit at start with `message` on stderr.
async fn refused(dir: &Path, outputs: &str, message: &str) {
    let stderr = refused_at_start(&config(dir, outputs)).await;
    assert!(stderr.contains(message), "want {message:?} in:\n{stderr}");
}

/// A store that refuses every request as S3 does for a missing permission.
async fn spawn_denying_store() -> String {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::FORBIDDEN,
            [("content-type", "application/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>1</RequestId></Error>",
        )
    });
    let (addr, _task) = edgelog_testkit::procs::serve_on_loopback(app).await;
    format!("http://{addr}")
}

#[tokio::test]
async fn bad_archive_settings_stop_the_collector_naming_what_to_fix() {
    let dir = tempfile::tempdir().expect("tmp");
    let s3: S3Store = spawn_s3(&[BUCKET]).await;
    refused(
        dir.path(),
        &s3.output_yaml("no-such-bucket", ""),
        "output.s3.bucket: the bucket \"no-such-bucket\" does not exist",
    )
    .await;
    let wrong = s3.output_yaml(BUCKET, "").replace(
        "secret_access_key: s3-test-secret",
        "secret_access_key: wrong",
    );
    refused(
        dir.path(),
        &wrong,
        "output.s3.credentials: refused by the store",
    )
    .await;
    let unknown = s3.output_yaml(BUCKET, "").replace(ACCESS_KEY, "AKIDNOBODY");
    refused(
        dir.path(),
        &unknown,
        "output.s3.credentials: refused by the store",
    )
    .await;
    let denying = spawn_denying_store().await;
    let denied = s3.output_yaml(BUCKET, "").replace(&s3.endpoint, &denying);
    refused(
        dir.path(),
        &denied,
        "output.s3: the credentials lack the permission s3:PutObject on arn:aws:s3:::edgelog-archive/edgelog/",
    )
    .await;
    for (extra, key) in [
        ("    key: \"{prefix}{yyyy}\"\n", "output.s3.key"),
        ("    max_object_bytes: 1024\n", "output.s3.max_object_bytes"),
        ("    compression: brotli\n", "output.s3.compression"),
        ("    sse: rot13\n", "output.s3.sse"),
    ] {
        refused(dir.path(), &s3.output_yaml(BUCKET, extra), key).await;
    }
    // Nothing was left behind by the start-up checks.
    assert!(s3.client().await.keys(BUCKET).await.is_empty());
}

#[tokio::test]
async fn objects_carry_the_configured_storage_class_encryption_and_content_type() {
    // A store that records what each request asked for (s3s-fs keeps no storage class or
    // encryption to read back).
    let dir = tempfile::tempdir().expect("tmp");
    let (endpoint, seen) = spawn_s3_stub().await;
    let outputs = s3::output_yaml(
        &endpoint,
        BUCKET,
        "{access_key_id: AKIDSTUB, secret_access_key: secret}",
        "    compression: none\n    max_object_age: 200ms\n    storage_class: STANDARD_IA\n\
         \x20   sse: aws:kms\n    sse_kms_key_id: alias/logs\n    content_type: application/x-ndjson\n",
    );
    let c = spawn_collector_process(&config(dir.path(), &outputs)).await;
    post_all(&c.url, &lines("sse", 100), 50).await;
    until(Duration::from_secs(30), "the object stored", async || {
        metric(&c.admin_url, "edgelog_s3_objects_total").await >= 1
    })
    .await;
    let requests = seen.seen.lock().expect("seen").clone();
    let puts: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PUT" && !r.query.contains("partNumber"))
        .collect();
    assert!(!puts.is_empty(), "{requests:?}");
    for r in &puts {
        assert!(
            r.path
                .replace("%3D", "=")
                .starts_with(&format!("/{BUCKET}/edgelog/dt=")),
            "{r:?}"
        );
        assert_eq!(
            r.header("x-amz-storage-class"),
            Some("STANDARD_IA"),
            "{r:?}"
        );
        assert_eq!(
            r.header("x-amz-server-side-encryption"),
            Some("aws:kms"),
            "{r:?}"
        );
        assert_eq!(
            r.header("x-amz-server-side-encryption-aws-kms-key-id"),
            Some("alias/logs"),
            "{r:?}"
        );
        assert_eq!(
            r.header("content-type"),
            Some("application/x-ndjson"),
            "{r:?}"
        );
    }
    // The start-up check opened its multipart upload with the same settings, then aborted it.
    let create = requests
        .iter()
        .find(|r| r.method == "POST" && r.query.contains("uploads"))
        .expect("the start-up check");
    assert!(
        create.path.ends_with("/edgelog/.edgelog-permission-check"),
        "{create:?}"
    );
    assert_eq!(
        create.header("x-amz-server-side-encryption"),
        Some("aws:kms")
    );
    assert!(requests
        .iter()
        .any(|r| r.method == "DELETE" && r.query.contains("uploadId")));
    c.terminate().await;
}
