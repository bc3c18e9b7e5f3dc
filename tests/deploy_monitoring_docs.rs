//! The monitoring page as shipped (`docs/monitoring.md`): it names the same alerts as the rules,
//! each with its runbook and severity, and every snippet in it parses (Prometheus configurations
//! checked by promtool, the collector's fragment by the collector's own parser, shell by bash)
//! and agrees with the others.

use edgelog_testkit::monitoring::{
    alert_names, code_blocks, documented_admin_listen, documented_prometheus_configs, fail_on,
    parse_yaml, read, rules, section, subsections, table_rows, with_pods_from_a_file, write_yaml,
    DOC, RULES,
};
use edgelog_testkit::paths::repo_root;
use edgelog_testkit::prometheus::run_promtool;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn the_docs_and_the_rules_name_the_same_alerts() {
    let doc = read(DOC);
    let alerts = section(&doc, "Alerts");
    let sections = subsections(alerts);
    let mut problems = Vec::new();
    let documented: BTreeSet<String> = sections.iter().map(|(h, _)| h.clone()).collect();
    if documented.len() != sections.len() {
        problems.push("an alert has two runbook sections".to_string());
    }
    let rules = rules();
    let names = alert_names();
    for a in names.difference(&documented) {
        problems.push(format!(
            "{a}: in the rules, no `### {a}` runbook section in {DOC}"
        ));
    }
    for a in documented.difference(&names) {
        problems.push(format!(
            "{a}: a runbook section in {DOC}, no such alert in {RULES}"
        ));
    }
    for (head, body) in &sections {
        let Some(rule) = rules.iter().find(|r| &r.alert == head) else {
            continue;
        };
        let summary = body
            .lines()
            .find_map(|l| l.strip_prefix("Summary: "))
            .map(|s| s.trim().trim_matches('`'));
        if summary != rule.annotations.get("summary").map(String::as_str) {
            problems.push(format!(
                "{head}: the page's summary {summary:?} is not the rule's {:?}",
                rule.annotations.get("summary")
            ));
        }
        for part in ["It means", "Check"] {
            if !body.contains(part) {
                problems.push(format!("{head}: no paragraph starting {part:?}"));
            }
        }
    }
    // The table of alerts: every alert once, with the severities its rules carry.
    let table_part = &alerts[..alerts.find("\n### ").unwrap_or(alerts.len())];
    let table: BTreeMap<String, String> = table_rows(table_part)
        .into_iter()
        .map(|r| (r[0].clone(), r.get(1).cloned().unwrap_or_default()))
        .collect();
    if table.keys().cloned().collect::<BTreeSet<_>>() != names {
        problems.push(format!(
            "the table of alerts lists {:?}, the rules have {names:?}",
            table.keys().collect::<Vec<_>>()
        ));
    }
    for r in &rules {
        if !table.get(&r.alert).is_some_and(|s| s.contains(&r.severity)) {
            problems.push(format!(
                "{}: the table of alerts does not give its severity {}",
                r.alert, r.severity
            ));
        }
    }
    fail_on(&problems, "the page and the rules disagree");
}

#[test]
fn every_snippet_in_the_monitoring_doc_parses() {
    let doc = read(DOC);
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(
        repo_root().join(RULES),
        dir.path().join("edgelog-rules.yml"),
    )
    .expect("copy rules");
    std::fs::write(dir.path().join("pods.json"), "[]").expect("pods");
    let mut problems = Vec::new();
    let mut prometheus_configs = 0;
    let mut admin_port = None;
    let mut annotations = None;
    for (n, (lang, text)) in code_blocks(&doc).into_iter().enumerate() {
        match lang.as_str() {
            "yaml" => {
                let v = parse_yaml(&text, &format!("block {n} of {DOC}"));
                if text.contains("scrape_configs:") {
                    prometheus_configs += 1;
                    let mut v = v;
                    let file = dir.path().join(format!("prometheus-{n}.yml"));
                    with_pods_from_a_file(&mut v, &dir.path().join("pods.json"));
                    write_yaml(&file, &v);
                    let name = file
                        .file_name()
                        .and_then(|f| f.to_str())
                        .unwrap_or_default()
                        .to_string();
                    let check = run_promtool(dir.path(), &["check", "config", &name]);
                    if !check.ok {
                        problems.push(format!("block {n}:\n{}", check.output));
                    }
                } else if v.get("admin").is_some() {
                    let listen = documented_admin_listen(&text);
                    admin_port = listen.rsplit(':').next().map(str::to_string);
                } else if v["metadata"]["annotations"].is_object() {
                    annotations = Some(v["metadata"].clone());
                } else if v["apiVersion"] == 1 {
                    let p = &v["providers"][0];
                    if p["type"] != "file"
                        || p["options"]["path"].as_str().is_none_or(str::is_empty)
                    {
                        problems.push(format!(
                            "block {n}: a Grafana provider without type file and a path"
                        ));
                    }
                } else {
                    problems.push(format!(
                        "block {n}: a YAML snippet this test does not know:\n{text}"
                    ));
                }
            }
            "sh" => {
                let out = std::process::Command::new("bash")
                    .args(["-n", "-c", &text])
                    .output()
                    .expect("bash");
                if !out.status.success() {
                    problems.push(format!(
                        "block {n}: bash -n: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                for word in text.split_whitespace().filter(|w| w.starts_with("deploy/")) {
                    if !repo_root().join(word).exists() {
                        problems.push(format!("block {n}: {word} is not in the repository"));
                    }
                }
            }
            other => problems.push(format!(
                "block {n}: a snippet in {other:?}, which this test does not check"
            )),
        }
    }
    if prometheus_configs < 3 {
        problems.push(format!(
            "{prometheus_configs} Prometheus configurations in the page, want the static, the Basic-authentication and the Kubernetes ones"
        ));
    }
    // The pieces agree: the admin port is what the static targets and the pod annotation name,
    // and the annotated pods are the ones the Kubernetes job keeps.
    let port = admin_port.expect("the page shows the collector's admin configuration");
    let configs = documented_prometheus_configs();
    let targets = &configs[0]["scrape_configs"][0]["static_configs"][0]["targets"];
    if !targets.as_array().is_some_and(|t| {
        !t.is_empty()
            && t.iter()
                .all(|t| t.as_str().is_some_and(|t| t.ends_with(&format!(":{port}"))))
    }) {
        problems.push(format!(
            "the static targets {targets} are not on the admin port {port}"
        ));
    }
    let meta = annotations.expect("the page shows the pod annotations");
    let a = &meta["annotations"];
    if a["prometheus.io/scrape"] != "true"
        || a["prometheus.io/port"] != port.as_str()
        || a["prometheus.io/path"] != "/metrics"
    {
        problems.push(format!(
            "pod annotations {a} are not scrape \"true\", port {port:?}, path /metrics"
        ));
    }
    let k8s = configs
        .iter()
        .find(|c| c["scrape_configs"][0]["kubernetes_sd_configs"].is_array())
        .expect("a Kubernetes scrape configuration");
    let keep_app = k8s["scrape_configs"][0]["relabel_configs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["source_labels"] == json!(["__meta_kubernetes_pod_label_app"]))
        .map(|r| r["regex"].clone());
    if keep_app != Some(meta["labels"]["app"].clone()) {
        problems.push(format!(
            "the Kubernetes job keeps app {keep_app:?}, the pods are labelled {}",
            meta["labels"]["app"]
        ));
    }
    for c in &configs {
        for job in c["scrape_configs"].as_array().into_iter().flatten() {
            if job["job_name"] != "edgelog" {
                problems.push(format!(
                    "a scrape job named {}, the rules select job=\"edgelog\"",
                    job["job_name"]
                ));
            }
        }
        if c["rule_files"] != json!(["edgelog-rules.yml"]) {
            problems.push(format!(
                "rule_files {} does not load edgelog-rules.yml",
                c["rule_files"]
            ));
        }
    }
    fail_on(&problems, DOC);
}
