//! Assumed roles end to end, against moto's STS with its IAM checks on: every Kinesis call is
//! signed with the role's credentials (assumed with the SDK chain's, given in the environment),
//! the session is renewed before it ends, and a role that cannot be assumed, credentials STS
//! refuses or an STS that cannot be reached stop the start with an error naming the key.

use collector::config::CREDENTIALS_REFRESH_BEFORE;
use edgelog_testkit::collector::{config_in, post_lines, spawn_collector_process};
use edgelog_testkit::delivery::{exactly_once, lines, stream_behind_front};
use edgelog_testkit::paths::{free_port, readme_block};
use edgelog_testkit::sts::{
    spawn_sts, spawn_sts_front, spawn_sts_with, Extra, OTHER_ROLE, USER_ARN, WRITER_ROLE,
};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

const EXTERNAL_ID: &str = "edgelog-e2e-7c1f";
const SESSION: &str = "edgelog-e2e";

/// A collector configuration for `stream` at `kinesis`, with `credentials` (a YAML flow map).
fn yaml(kinesis: &str, stream: &str, credentials: &str) -> String {
    format!(
        "listen: \"127.0.0.1:0\"\nfastly: {{service_ids: [\"*\"]}}\nbuffer: {{type: memory}}\n\
         dead_letter: {{path: \"{{dir}}/dead.ndjson\"}}\n\
         output:\n  aws_kinesis:\n    stream_name: {stream}\n    region: us-east-1\n    endpoint_url: \"{kinesis}\"\n\
         \x20   credentials: {credentials}\n    batch: {{duration: 50ms}}\n\
         \x20 retry: {{max_retries: 20, initial_wait: 10ms, max_wait: 100ms}}\n"
    )
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
    let path = dir.path().join("collector.yaml");
    // No keys in the file: the role is assumed with the SDK chain's credentials.
    let credentials = format!(
        "{{role_arn: \"{WRITER_ROLE}\", external_id: {EXTERNAL_ID}, session_name: {SESSION}, \
         session_duration: 15m, sts_region: us-east-1, sts_endpoint_url: \"{}\"}}",
        front.endpoint
    );
    std::fs::write(
        &path,
        yaml(&kinesis.endpoint, "assumed", &credentials)
            .replace("{dir}", &dir.path().display().to_string()),
    )
    .expect("write config");
    let proc = edgelog_testkit::collector::spawn_collector_process_with(
        &edgelog_testkit::collector::collector_bin(),
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

/// Starts the collector in-process with `credentials`; returns its start error.
async fn start_error(credentials: &str, output: &str) -> String {
    let dir = tempfile::tempdir().expect("tmp");
    let yaml = match output {
        "aws_kinesis" => yaml("http://127.0.0.1:9", "never", credentials),
        _ => format!(
            "listen: \"127.0.0.1:0\"\nfastly: {{service_ids: [\"*\"]}}\nbuffer: {{type: memory}}\n\
             dead_letter: {{path: \"{{dir}}/dead.ndjson\"}}\n\
             output:\n  s3:\n    bucket: archive\n    region: us-east-1\n    endpoint_url: \"http://127.0.0.1:9\"\n\
             \x20   credentials: {credentials}\n"
        ),
    };
    let cfg = config_in(&yaml, dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let run = collector::run(cfg, listener, std::future::pending());
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Ok(Err(e)) => e.to_string(),
        Ok(Ok(())) => panic!("the collector started and stopped"),
        Err(_) => panic!("the collector started with {credentials}"),
    }
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
    let e = start_error(
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
    let e = start_error(
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
    let e = start_error(
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
    let e = start_error(
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
    let path = dir.path().join("collector.yaml");
    std::fs::write(
        &path,
        yaml(&kinesis.endpoint, "rolekeys", &credentials)
            .replace("{dir}", &dir.path().display().to_string()),
    )
    .expect("write config");
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
/// resources, so the README's ARNs (of another account) stand for its stream and bucket.
fn any_resource(policy: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(policy).expect("the policy is JSON");
    for s in v["Statement"].as_array_mut().expect("statements") {
        s["Resource"] = "*".into();
    }
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_policies_let_the_role_deliver_to_kinesis_and_the_archive() {
    let permissions = readme_block("The role's **permissions policy**");
    // The README's trust policy, for moto's user instead of the README's host role.
    let mut trust: serde_json::Value =
        serde_json::from_str(&readme_block("Its **trust policy**")).expect("JSON");
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
    let e = start_error(&with_id("not-the-id"), "aws_kinesis").await;
    assert!(
        e.contains(&format!("output.aws_kinesis.credentials.role_arn: STS refused to assume {WRITER_ROLE}: AccessDenied")),
        "{e}"
    );

    let credentials = with_id(&external_id);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("collector.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: \"127.0.0.1:0\"\nfastly: {{service_ids: [\"*\"]}}\n\
             buffer: {{type: disk, dir: \"{d}/buffer\", fsync: never}}\n\
             dead_letter: {{path: \"{d}/dead.ndjson\"}}\n\
             output:\n  aws_kinesis:\n    stream_name: logs\n    region: us-east-1\n    endpoint_url: \"{m}\"\n\
             \x20   credentials: {credentials}\n    batch: {{duration: 50ms}}\n\
             \x20 s3:\n    bucket: logs-archive\n    region: us-east-1\n    endpoint_url: \"{m}\"\n    force_path_style: true\n\
             \x20   credentials: {credentials}\n    max_object_age: 1s\n\
             \x20 retry: {{max_retries: 20, initial_wait: 10ms, max_wait: 100ms}}\n",
            d = dir.path().display(),
            m = sts.endpoint
        ),
    )
    .expect("write config");
    let proc = spawn_collector_process(&path).await;
    let sent = lines("policy", 300);
    for chunk in sent.chunks(100) {
        assert_eq!(post_lines(&proc.url, None, chunk).await, 204);
    }
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
            "not delivered with the README's policy: {s}\n{}",
            proc.stderr.snapshot().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sessions = sts.sessions().await;
    assert!(!sessions.is_empty() && sessions.iter().all(|s| s.role_arn == WRITER_ROLE));
    drop(proc);
}
