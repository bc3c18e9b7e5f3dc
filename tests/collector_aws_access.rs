//! The collector's access to AWS: an IAM-like allow-list per mode (each asks only for the
//! permissions it needs), the endpoint from the environment, assumed roles against moto's STS
//! with its IAM checks on (every Kinesis call signed with the role's session, the session
//! renewed, the policies of docs/operations.md enough, refusals naming the key), and no key, secret or token
//! in the log whichever way the credentials came in.

use collector::config::CREDENTIALS_REFRESH_BEFORE;
use edgelog_testkit::collector::{
    collector_bin, delivery, post_in_batches, post_lines, readyz, spawn_collector_process,
    spawn_collector_process_with, start_error,
};
use edgelog_testkit::config_yaml::{ConfigYaml, KinesisYaml, DISK_BUFFER, FAST_RETRY};
use edgelog_testkit::delivery::{
    exactly_once, kinesis_config, lines, post_all, stream, stream_behind_front, yaml,
};
use edgelog_testkit::paths::{doc_block, free_port};
use edgelog_testkit::procs::until;
use edgelog_testkit::s3;
use edgelog_testkit::sts::{
    spawn_sts, spawn_sts_front, spawn_sts_with, Extra, OTHER_ROLE, USER_ARN, WRITER_ROLE,
};
use edgelog_testkit::{spawn_collector, Faults};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

const EXTERNAL_ID: &str = "edgelog-e2e-7c1f";
const SESSION: &str = "edgelog-e2e";
/// The page with the policies and the role example.
const OPERATIONS: &str = "docs/operations.md";

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
    let err = start_error(&yaml(&front.endpoint, "iam", "", "")).await;
    assert!(err.contains("kinesis:ListShards"), "{err}");
    // ListShards without PutRecords: delivering until lines come, then not delivering, naming
    // it; the collector still takes batches (ready), its buffer holding them.
    front.set(allow(&["ListShards"]));
    let col = spawn_collector(&yaml(&front.endpoint, "iam", "", "")).await;
    post_all(&col.url, &lines("denied", 10), 10).await;
    until(
        Duration::from_secs(20),
        "/delivery naming the permission",
        async || {
            let (status, body) = delivery(&col.url).await;
            status == 503 && body.contains("kinesis:PutRecords")
        },
    )
    .await;
    assert_eq!(readyz(&col.url).await.0, 200, "still taking batches");
    assert!(
        !col.path("dead.ndjson").exists(),
        "denied lines wait, never dead-lettered"
    );
}

#[tokio::test]
async fn the_endpoint_can_come_from_the_environment() {
    let (k, kc) = stream("env", 1).await;
    let dir = tempfile::tempdir().expect("tmp");
    let config = kinesis_config(&KinesisYaml::new("unused", "env").without_endpoint());
    assert!(!config.text().contains("endpoint_url"));
    let path = config.write(dir.path());
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
        let creds = in_config.then_some(
            "{access_key_id: \"${KEY}\", secret_access_key: \"${SECRET}\", session_token: \"${SESSION}\"}",
        );
        let path = kinesis_config(&KinesisYaml::new(&k.endpoint, "secrets").credentials(creds))
            .set(&format!(
                "ingest: {{auth: {{header: X-Edgelog-Token, token: \"{token}\"}}}}"
            ))
            .write(dir.path());
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
        post_in_batches(&proc.url, Some(token), &all, 10).await;
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

/// A collector (memory buffer) for `stream` at `kinesis`, with `credentials` (a YAML flow map).
fn role_config(kinesis: &str, stream: &str, credentials: &str) -> ConfigYaml {
    ConfigYaml::new()
        .set("listen: \"127.0.0.1:0\"")
        .set("buffer: {type: memory}")
        .kinesis(
            &KinesisYaml::new(kinesis, stream)
                .credentials(Some(credentials))
                .batch("{duration: 50ms}"),
        )
        .retry(FAST_RETRY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_calls_carry_the_assumed_role_and_the_session_is_renewed() {
    let sts = spawn_sts().await;
    // Sessions end 25 s after they are handed out, counting the renewal margin: the collector
    // must renew the first one while it keeps sending.
    let front = spawn_sts_front(
        &sts.endpoint,
        Some(CREDENTIALS_REFRESH_BEFORE + Duration::from_secs(25)),
    )
    .await;
    let (_k, kc, kinesis) = stream_behind_front("assumed", 2).await;
    let dir = tempfile::tempdir().expect("tmp");
    // No keys in the file: the role is assumed with the SDK chain's credentials.
    let credentials = format!(
        "{{role_arn: \"{WRITER_ROLE}\", external_id: {EXTERNAL_ID}, session_name: {SESSION}, \
         session_duration: 15m, sts_region: us-east-1, sts_endpoint_url: \"{}\"}}",
        front.endpoint
    );
    let path = role_config(&kinesis.endpoint, "assumed", &credentials).write(dir.path());
    let proc = spawn_collector_process_with(
        &collector_bin(),
        &path,
        &[
            ("AWS_ACCESS_KEY_ID", sts.access_key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", sts.secret_access_key.as_str()),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
        ],
    )
    .await;

    // Keep sending until PutRecords calls were signed with two sessions' keys.
    let mut sent = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut batch = 0;
    loop {
        let chunk = lines(&format!("b{batch}"), 20);
        assert_eq!(post_lines(&proc.url, None, &chunk).await, 204);
        sent.extend(chunk);
        batch += 1;
        let put_keys: HashSet<String> = kinesis
            .stats
            .signed_by
            .lock()
            .expect("signers")
            .iter()
            .filter(|(action, _)| action == "PutRecords")
            .map(|(_, key)| key.clone())
            .collect();
        if put_keys.len() >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session was not renewed: PutRecords keys {put_keys:?}, {} AssumeRole calls",
            front.assume_calls.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    kc.wait_for_lines("assumed", sent.len(), Duration::from_secs(30))
        .await;
    exactly_once(&kc.read_all("assumed").await, &sent);

    let sessions = sts.sessions().await;
    assert!(sessions.len() >= 2, "{sessions:?}");
    for s in &sessions {
        assert_eq!(s.role_arn, WRITER_ROLE);
        assert_eq!(s.session_name, SESSION);
        assert_eq!(s.external_id.as_deref(), Some(EXTERNAL_ID));
    }
    let session_keys: HashSet<&str> = sessions.iter().map(|s| s.access_key_id.as_str()).collect();
    let signed = kinesis.stats.signed_by.lock().expect("signers").clone();
    assert!(signed.iter().any(|(a, _)| a == "ListShards"), "{signed:?}");
    for (action, key) in &signed {
        assert!(
            session_keys.contains(key.as_str()),
            "{action} was signed with {key:?}, not a role session's key ({session_keys:?})"
        );
    }
    assert!(!signed.iter().any(|(_, k)| *k == sts.access_key_id));
    assert_eq!(
        front.assume_calls.load(Ordering::Relaxed) as usize,
        sessions.len(),
        "every AssumeRole went through the front"
    );
    drop(proc);
}

/// Starts the collector in-process with `credentials` for `output` (`aws_kinesis` or `s3`);
/// returns its start error.
async fn role_start_error(credentials: &str, output: &str) -> String {
    let yaml = match output {
        "aws_kinesis" => role_config("http://127.0.0.1:9", "never", credentials).text(),
        _ => ConfigYaml::new()
            .set("listen: \"127.0.0.1:0\"")
            .set("buffer: {type: memory}")
            .output(&s3::output_yaml(
                "http://127.0.0.1:9",
                "archive",
                credentials,
                "",
            ))
            .text(),
    };
    start_error(&yaml).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_be_assumed_is_a_start_error_naming_the_key() {
    let sts = spawn_sts().await;
    let keys = format!(
        "access_key_id: {}, secret_access_key: \"{}\"",
        sts.access_key_id, sts.secret_access_key
    );
    let front = spawn_sts_front(&sts.endpoint, None).await;
    let at = format!("sts_endpoint_url: \"{}\"", front.endpoint);

    // The user's policy does not allow this role.
    let e = role_start_error(
        &format!("{{{keys}, role_arn: \"{OTHER_ROLE}\", external_id: x-1, {at}}}"),
        "aws_kinesis",
    )
    .await;
    assert!(
        e.starts_with(&format!(
            "output failed to start: output.aws_kinesis.credentials.role_arn: STS refused to assume {OTHER_ROLE}: AccessDenied: User: arn:aws:iam::123456789012:user/edgelog is not authorized to perform: sts:AssumeRole"
        )),
        "{e}"
    );
    assert!(e.contains("with this external_id"), "{e}");

    // The same for the archive.
    let e = role_start_error(
        &format!("{{{keys}, role_arn: \"{OTHER_ROLE}\", {at}}}"),
        "s3",
    )
    .await;
    assert!(
        e.contains("output.s3.credentials.role_arn: STS refused to assume")
            && e.contains("AccessDenied"),
        "{e}"
    );

    // A wrong secret: STS refuses the signature.
    let e = role_start_error(
        &format!(
            "{{access_key_id: {}, secret_access_key: wrong, role_arn: \"{WRITER_ROLE}\", {at}}}",
            sts.access_key_id
        ),
        "aws_kinesis",
    )
    .await;
    assert!(
        e.contains("output.aws_kinesis.credentials.role_arn: STS refused to assume")
            && e.contains("SignatureDoesNotMatch")
            && e.contains("the credentials that assume the role were refused"),
        "{e}"
    );

    // STS down.
    let down = format!("http://127.0.0.1:{}", free_port());
    let e = role_start_error(
        &format!("{{{keys}, role_arn: \"{WRITER_ROLE}\", sts_endpoint_url: \"{down}\"}}"),
        "aws_kinesis",
    )
    .await;
    assert!(
        e.contains(&format!(
            "output.aws_kinesis.credentials.sts_endpoint_url: cannot reach STS at {down} to assume {WRITER_ROLE}: "
        )),
        "{e}"
    );
    assert!(!e.contains(&sts.secret_access_key), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assumed_role_works_with_keys_from_the_file() {
    let sts = spawn_sts().await;
    let (_k, kc, kinesis) = stream_behind_front("rolekeys", 1).await;
    let dir = tempfile::tempdir().expect("tmp");
    let credentials = format!(
        "{{access_key_id: {}, secret_access_key: \"{}\", role_arn: \"{WRITER_ROLE}\", sts_endpoint_url: \"{}\"}}",
        sts.access_key_id, sts.secret_access_key, sts.endpoint
    );
    let path = role_config(&kinesis.endpoint, "rolekeys", &credentials).write(dir.path());
    let proc = spawn_collector_process(&path).await;
    let sent = lines("k", 50);
    assert_eq!(post_lines(&proc.url, None, &sent).await, 204);
    kc.wait_for_lines("rolekeys", sent.len(), Duration::from_secs(30))
        .await;
    exactly_once(&kc.read_all("rolekeys").await, &sent);
    let sessions = sts.sessions().await;
    assert_eq!(sessions.len(), 1, "one session, reused: {sessions:?}");
    assert_eq!(sessions[0].session_name, "edgelog-collector");
    assert_eq!(sessions[0].external_id, None);
    let signed = kinesis.stats.signed_by.lock().expect("signers").clone();
    assert!(
        signed.iter().all(|(_, k)| *k == sessions[0].access_key_id),
        "{signed:?}"
    );
    drop(proc);
}

/// Every `"Resource"` of a policy set to `*`: moto checks the actions a role is allowed, not the
/// resources, so the page's ARNs (of another account) stand for its stream and bucket.
fn any_resource(policy: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(policy).expect("the policy is JSON");
    for s in v["Statement"].as_array_mut().expect("statements") {
        s["Resource"] = "*".into();
    }
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_policies_let_the_role_deliver_to_kinesis_and_the_archive() {
    let permissions = doc_block(OPERATIONS, "The role's **permissions policy**");
    // The page's trust policy, for moto's user instead of the page's host role.
    let mut trust: serde_json::Value =
        serde_json::from_str(&doc_block(OPERATIONS, "Its **trust policy**")).expect("JSON");
    let statement = &mut trust["Statement"][0];
    statement["Principal"]["AWS"] = USER_ARN.into();
    let external_id = statement["Condition"]["StringEquals"]["sts:ExternalId"]
        .as_str()
        .expect("the trust policy asks for an external id")
        .to_string();
    let sts = spawn_sts_with(Extra {
        trust_policy: Some(trust.to_string()),
        permissions_policy: Some(any_resource(&permissions)),
        stream: Some("logs".into()),
        bucket: Some("logs-archive".into()),
    })
    .await;
    let front = spawn_sts_front(&sts.endpoint, None).await;
    let with_id = |id: &str| {
        format!(
            "{{access_key_id: {}, secret_access_key: \"{}\", role_arn: \"{WRITER_ROLE}\", external_id: {id}, sts_endpoint_url: \"{}\"}}",
            sts.access_key_id, sts.secret_access_key, front.endpoint
        )
    };
    // The trust policy's condition: another external id is refused.
    let e = role_start_error(&with_id("not-the-id"), "aws_kinesis").await;
    assert!(
        e.contains(&format!("output.aws_kinesis.credentials.role_arn: STS refused to assume {WRITER_ROLE}: AccessDenied")),
        "{e}"
    );

    let credentials = with_id(&external_id);
    let dir = tempfile::tempdir().expect("tmp");
    let path = ConfigYaml::new()
        .set("listen: \"127.0.0.1:0\"")
        .set(DISK_BUFFER)
        .kinesis(
            &KinesisYaml::new(&sts.endpoint, "logs")
                .credentials(Some(&credentials))
                .batch("{duration: 50ms}"),
        )
        .output(&s3::output_yaml(
            &sts.endpoint,
            "logs-archive",
            &credentials,
            "    max_object_age: 1s\n",
        ))
        .retry(FAST_RETRY)
        .write(dir.path());
    let proc = spawn_collector_process(&path).await;
    let sent = lines("policy", 300);
    post_all(&proc.url, &sent, 100).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = edgelog_testkit::collector::status(&proc.admin_url).await;
        let output = |name: &str| {
            s["outputs"]
                .as_array()
                .and_then(|a| a.iter().find(|o| o["name"] == name))
                .cloned()
                .unwrap_or_default()
        };
        let (kinesis, archive) = (output("aws_kinesis"), output("s3"));
        assert_eq!(kinesis["dead_lettered_total"], 0, "{s}");
        if kinesis["delivered"] == 300 && archive["delivered"] == 300 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered with the policy of {OPERATIONS}: {s}\n{}",
            proc.stderr.snapshot().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sessions = sts.sessions().await;
    assert!(!sessions.is_empty() && sessions.iter().all(|s| s.role_arn == WRITER_ROLE));
    drop(proc);
}
