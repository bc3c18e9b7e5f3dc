//! The monitoring kit against a running collector: it serves every metric and label the rules,
//! the dashboard, the rules' unit tests and the page name (and the page's metric table is exactly
//! what it serves), and a real Prometheus configured as the page says scrapes it and evaluates
//! every rule on its series.

use edgelog_testkit::certs::TestCa;
use edgelog_testkit::collector::{
    metric, metrics_text, post_in_batches, post_lines, spawn_collector_process, CollectorProcess,
};
use edgelog_testkit::config_yaml::{ConfigYaml, KinesisYaml};
use edgelog_testkit::delivery::{lines, stream_behind_front};
use edgelog_testkit::kinesis_front::Faults;
use edgelog_testkit::monitoring::{
    check_query, dashboard, dashboard_queries, documented_metrics, documented_prometheus_configs,
    fail_on, parse_yaml, read, rules, variables, with_pods_from_a_file, write_yaml, DASHBOARD, DOC,
    METRICS_DOC, RULES, RULE_TESTS,
};
use edgelog_testkit::paths::{free_port, repo_root};
use edgelog_testkit::procs::until;
use edgelog_testkit::prometheus::{spawn_prometheus, Prometheus};
use edgelog_testkit::promql::Exposition;
use edgelog_testkit::s3::{self, ACCESS_KEY, SECRET_KEY};
use edgelog_testkit::s3_front::spawn_s3_front;
use edgelog_testkit::s3_stub::spawn_s3_stub;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// A collector with a memory buffer and a file output.
async fn plain_collector(dir: &Path) -> CollectorProcess {
    spawn_collector_process(&memory_to_file().write(dir)).await
}

/// A collector in its own process with a memory buffer and a file output (`{dir}/out.log`).
fn memory_to_file() -> ConfigYaml {
    ConfigYaml::new()
        .process()
        .set("buffer: {type: memory}")
        .file_output("{dir}/out.log")
}

/// A collector whose TLS reload has failed once (`edgelog_tls_reloads_total{result}`).
async fn collector_with_a_refused_certificate(dir: &Path) -> CollectorProcess {
    let (first, second) = (TestCa::new("first"), TestCa::new("second"));
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let pair = first.server();
    std::fs::write(&key, &pair.key_pem).expect("key");
    std::fs::write(&cert, &pair.cert_pem).expect("cert");
    let c = spawn_collector_process(
        &memory_to_file()
            .set(&format!(
                "tls: {{cert: \"{}\", key: \"{}\"}}",
                cert.display(),
                key.display()
            ))
            .write(dir),
    )
    .await;
    // A key of another certificate: the reload the file change starts is refused.
    std::fs::write(&key, second.server().key_pem).expect("key");
    let admin = c.admin_url.clone();
    until(
        Duration::from_secs(30),
        "a refused TLS reload",
        async || metric(&admin, "edgelog_tls_reloads_total{result=\"failed\"}").await >= 1,
    )
    .await;
    c
}

#[tokio::test]
async fn the_collector_serves_every_metric_the_rules_the_dashboard_and_the_docs_name() {
    // Kinesis behind a front that fails whole calls and throttles entries; an S3 stand-in behind
    // a front that answers SlowDown to one request in two.
    let (_kinesalite, _kinesis, front) = stream_behind_front("monitoring", 1).await;
    let (s3, _stats) = spawn_s3_stub().await;
    let s3_front = spawn_s3_front(&s3, 2).await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = s3::output_yaml(
        &s3_front.endpoint,
        "edgelog-archive",
        &format!("{{access_key_id: {ACCESS_KEY}, secret_access_key: {SECRET_KEY}}}"),
        "    max_object_age: 200ms\n",
    );
    let config = ConfigYaml::new()
        .process()
        .set("ingest: {max_body_bytes: 1048576, max_line_bytes: 2048, auth: {header: X-Edgelog-Token, token: monitoring-token}}")
        .set("buffer: {type: disk, dir: \"{dir}/buffer\", fsync: never, max_bytes: 67108864, segment_bytes: 1048576}")
        .kinesis(&KinesisYaml::new(&front.endpoint, "monitoring").watchful())
        .output(&archive)
        .retry("{max_retries: 3, initial_wait: 20ms, max_wait: 200ms}");
    let c = spawn_collector_process(&config.write(dir.path())).await;
    let tls_dir = tempfile::tempdir().expect("tmp");
    let tls = collector_with_a_refused_certificate(tls_dir.path()).await;

    front.set(Faults {
        fail_next_calls: 2,
        call_error: Some((500, "InternalFailure".into())),
        ..Faults::throttle_entries(0.3)
    });
    let token = Some("monitoring-token");
    let mut batch = lines("monitoring", 200);
    batch.push(format!("{{\"long\":\"{}\"}}", "x".repeat(3000)));
    post_in_batches(&c.url, token, &batch, 50).await;
    assert_eq!(post_lines(&c.url, Some("wrong"), &batch[..1]).await, 401);

    // Every labelled family the page lists has series to check labels against, once the
    // collector has met each situation.
    let documented = documented_metrics();
    let labelled: Vec<String> = documented
        .iter()
        .filter(|(_, (_, labels))| !labels.is_empty())
        .map(|(name, (kind, _))| {
            if kind == "histogram" {
                format!("{name}_count")
            } else {
                name.clone()
            }
        })
        .collect();
    let tls_text = metrics_text(&tls.admin_url).await;
    let (admin, labelled_ref, tls_ref) = (&c.admin_url, &labelled, &tls_text);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let served = loop {
        let mut served = Exposition::parse(&metrics_text(admin).await);
        served.add(tls_ref);
        let missing: Vec<&String> = labelled_ref
            .iter()
            .filter(|n| served.samples.get(*n).is_none_or(|l| l.is_empty()))
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break served;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let mut problems = Vec::new();
    for r in rules() {
        check_query(
            &served,
            &format!("{RULES} {}", r.alert),
            &r.expr,
            &mut problems,
        );
    }
    let d = dashboard();
    for (at, expr) in dashboard_queries(&d) {
        check_query(&served, &format!("{DASHBOARD} {at}"), &expr, &mut problems);
    }
    for (name, v) in variables(&d) {
        if let Some(q) = v["query"]
            .as_str()
            .and_then(|q| q.strip_prefix("label_values("))
        {
            let (metric, label) = q.trim_end_matches(')').split_once(',').unwrap_or((q, ""));
            check_query(
                &served,
                &format!("{DASHBOARD} variable {name}"),
                &format!("sum by ({}) ({})", label.trim(), metric.trim()),
                &mut problems,
            );
        }
    }
    let tests = parse_yaml(&read(RULE_TESTS), RULE_TESTS);
    for group in tests["tests"].as_array().expect("tests") {
        for s in group["input_series"].as_array().into_iter().flatten() {
            let series = s["series"].as_str().unwrap_or("");
            check_query(
                &served,
                &format!("{RULE_TESTS} series {series}"),
                series,
                &mut problems,
            );
        }
    }
    // The page's table: every metric served is there with its type and labels, and nothing else.
    let names = served.documented_names();
    for (name, kind) in &names {
        match documented.get(name) {
            None => problems.push(format!(
                "{METRICS_DOC}: {name} ({kind}) is served and not in the table"
            )),
            Some((doc_kind, doc_labels)) => {
                if doc_kind != kind {
                    problems.push(format!(
                        "{METRICS_DOC}: {name} is a {kind}, the table says {doc_kind}"
                    ));
                }
                match served.documented_labels(name, kind) {
                    Some(labels) if &labels == doc_labels => {}
                    Some(labels) => problems.push(format!(
                        "{METRICS_DOC}: {name} has labels {labels:?}, the table says {doc_labels:?}"
                    )),
                    None => problems.push(format!(
                        "{METRICS_DOC}: {name} has no series to check its labels against"
                    )),
                }
            }
        }
    }
    for name in documented.keys() {
        if !names.contains_key(name) {
            problems.push(format!(
                "{METRICS_DOC}: the table lists {name}, which is not served"
            ));
        }
    }
    // Every metric name the pages' text mentions.
    for page in [DOC, METRICS_DOC] {
        let doc = read(page);
        let mentioned: BTreeSet<&str> = doc
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("edgelog_") && !w.ends_with('_'))
            .collect();
        for m in mentioned {
            if served.resolve(m).is_none() && !names.contains_key(m) {
                problems.push(format!("{page} names {m}, which is not served"));
            }
        }
    }
    problems.sort();
    problems.dedup();
    tls.terminate().await;
    c.terminate().await;
    fail_on(&problems, "names the collector does not serve");
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus, configured as the page says.

/// The page's configuration `config`, for a test: scraped and evaluated every second, its rules
/// beside it in `dir`; returns the file to start Prometheus with.
fn for_a_test(dir: &Path, mut config: Value, name: &str) -> std::path::PathBuf {
    std::fs::copy(repo_root().join(RULES), dir.join("edgelog-rules.yml")).expect("copy rules");
    for key in ["scrape_interval", "scrape_timeout", "evaluation_interval"] {
        config["global"][key] = json!("1s");
    }
    let file = dir.join(name);
    write_yaml(&file, &config);
    file
}

/// The rules Prometheus has loaded, as its API gives them.
async fn loaded_rules(p: &Prometheus) -> Vec<Value> {
    let Ok(data) = p.api("rules", &[]).await else {
        return Vec::new();
    };
    data["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Waits until every rule has been evaluated again since the call (so on what was scraped
/// before it), and returns those whose evaluation failed.
async fn rule_health(p: &Prometheus) -> Vec<String> {
    let evaluated = |r: &Value| r["lastEvaluation"].as_str().unwrap_or("").to_string();
    let before: Vec<String> = loaded_rules(p).await.iter().map(evaluated).collect();
    let mut failed = Vec::new();
    until(
        Duration::from_secs(30),
        "every rule evaluated on the scraped series",
        async || {
            let now = loaded_rules(p).await;
            if now.len() != rules().len()
                || now.len() != before.len()
                || now.iter().zip(&before).any(|(r, b)| evaluated(r) == *b)
            {
                return false;
            }
            failed = now
                .iter()
                .filter(|r| r["health"] != "ok")
                .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
                .collect();
            true
        },
    )
    .await;
    failed
}

#[tokio::test]
async fn prometheus_scrapes_the_collector_as_the_docs_configure_it_and_evaluates_every_rule() {
    let cdir = tempfile::tempdir().expect("tmp");
    let c = plain_collector(cdir.path()).await;
    let live = c.admin_url.trim_start_matches("http://").to_string();
    let live_port = live.rsplit(':').next().expect("port").to_string();
    let dead = format!("127.0.0.1:{}", free_port());
    assert_eq!(post_lines(&c.url, None, &lines("scraped", 10)).await, 204);
    let configs = documented_prometheus_configs();

    // The static configuration: the first target is the collector, the others answer nothing.
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = configs[0].clone();
    let targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
        .as_array_mut()
        .expect("the first configuration of the page has static targets");
    for (i, t) in targets.iter_mut().enumerate() {
        *t = json!(if i == 0 { &live } else { &dead });
    }
    let p = spawn_prometheus(&for_a_test(dir.path(), config, "prometheus.yml")).await;
    let up = format!("up{{job=\"edgelog\", instance=\"{live}\"}} == 1");
    until(
        Duration::from_secs(30),
        "the collector scraped",
        async || p.query(&up).await.is_ok_and(|r| r.len() == 1),
    )
    .await;
    let failed = rule_health(&p).await;
    assert!(
        failed.is_empty(),
        "rules that fail on real series:\n{}",
        failed.join("\n")
    );
    let lines_in = format!("edgelog_ingest_lines_total{{job=\"edgelog\", instance=\"{live}\"}}");
    let r = p.query(&lines_in).await.expect("query");
    assert_eq!(
        r.len(),
        1,
        "the collector's series, by job and instance: {r:?}"
    );
    let pending = format!("ALERTS{{alertname=\"EdgelogCollectorDown\", instance=\"{dead}\"}}");
    until(
        Duration::from_secs(30),
        "EdgelogCollectorDown pending for the target that answers nothing",
        async || p.query(&pending).await.is_ok_and(|r| !r.is_empty()),
    )
    .await;
    let ours = format!("ALERTS{{alertname=\"EdgelogCollectorDown\", instance=\"{live}\"}}");
    assert_eq!(
        p.query(&ours).await.map(|r| r.len()),
        Ok(0),
        "not for the collector that runs"
    );

    // The Kubernetes configuration: three pods, of which only the annotated collector is kept,
    // and scraped at the port and path its annotations give.
    let kdir = tempfile::tempdir().expect("tmp");
    let pods = kdir.path().join("pods.json");
    let pod = |addr: &str, app: &str, scrape: &str, name: &str| {
        json!({"targets": [addr], "labels": {
            "__meta_kubernetes_namespace": "logging",
            "__meta_kubernetes_pod_name": name,
            "__meta_kubernetes_pod_label_app": app,
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape": scrape,
            "__meta_kubernetes_pod_annotation_prometheus_io_port": live_port,
            "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
        }})
    };
    std::fs::write(
        &pods,
        json!([
            pod(
                "127.0.0.1:8080",
                "edgelog-collector",
                "true",
                "edgelog-collector-0"
            ),
            pod("127.0.0.1:8081", "another-app", "true", "another-app-0"),
            pod(
                "127.0.0.1:8082",
                "edgelog-collector",
                "false",
                "edgelog-collector-1"
            ),
        ])
        .to_string(),
    )
    .expect("pods");
    let mut k8s = configs
        .iter()
        .find(|c| c["scrape_configs"][0]["kubernetes_sd_configs"].is_array())
        .expect("the page's Kubernetes configuration")
        .clone();
    assert!(with_pods_from_a_file(&mut k8s, &pods));
    let kp = spawn_prometheus(&for_a_test(kdir.path(), k8s, "prometheus.yml")).await;
    let scraped = format!("http://{live}/metrics");
    until(
        Duration::from_secs(30),
        "the annotated pod scraped",
        async || {
            let Ok(t) = kp.api("targets", &[]).await else {
                return false;
            };
            let active = t["activeTargets"].as_array().cloned().unwrap_or_default();
            active.len() == 1
                && active[0]["scrapeUrl"] == scraped.as_str()
                && active[0]["health"] == "up"
                && active[0]["labels"]["job"] == "edgelog"
                && active[0]["labels"]["pod"] == "edgelog-collector-0"
                && active[0]["labels"]["namespace"] == "logging"
        },
    )
    .await;
    let failed = rule_health(&kp).await;
    assert!(
        failed.is_empty(),
        "rules that fail on real series:\n{}",
        failed.join("\n")
    );
    c.terminate().await;
}
