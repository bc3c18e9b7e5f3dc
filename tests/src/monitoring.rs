//! The monitoring kit as shipped, read: the Prometheus alert rules and their unit tests, the
//! Grafana dashboard and `docs/monitoring.md` (its sections, tables and code blocks), and the check
//! that a query names only metrics and labels a collector serves.

use crate::paths::repo_root;
use crate::promql::{promql_names, Exposition};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The alert rules, as Prometheus loads them.
pub const RULES: &str = "deploy/prometheus/edgelog-rules.yml";
/// The rules' unit tests, as `promtool test rules` runs them.
pub const RULE_TESTS: &str = "deploy/prometheus/edgelog-rules.test.yml";
/// The Grafana dashboard.
pub const DASHBOARD: &str = "deploy/grafana/edgelog.json";
/// The monitoring page.
pub const DOC: &str = "docs/monitoring.md";
/// The page listing every metric.
pub const METRICS_DOC: &str = "docs/metrics.md";
/// Where every alert's `runbook_url` points, before `#<the anchor of the alert's heading>`.
pub const RUNBOOK_BASE: &str = "https://github.com/edgelog/edgelog/blob/main/docs/monitoring.md";

/// Labels Prometheus gives every series it scrapes.
pub const TARGET_LABELS: &[&str] = &["job", "instance"];

/// A file of the repository (`rel` from its root); panics naming it if it cannot be read.
pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// YAML text, parsed; panics naming `what` if it is not YAML.
pub fn parse_yaml(text: &str, what: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{what} is not YAML: {e}\n{text}"))
}

/// Fails listing every problem found, one a line.
pub fn fail_on(problems: &[String], what: &str) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

/// An alert rule.
pub struct Rule {
    pub alert: String,
    pub expr: String,
    pub severity: String,
    pub annotations: BTreeMap<String, String>,
}

/// Every rule of [`RULES`]; panics on a rule that is not an alert.
pub fn rules() -> Vec<Rule> {
    let v = parse_yaml(&read(RULES), RULES);
    let mut out = Vec::new();
    for g in v["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let alert = r["alert"]
                .as_str()
                .unwrap_or_else(|| panic!("{RULES}: a rule that is not an alert: {r}"));
            out.push(Rule {
                alert: alert.to_string(),
                expr: r["expr"].as_str().expect("expr").to_string(),
                severity: r["labels"]["severity"].as_str().unwrap_or("").to_string(),
                annotations: r["annotations"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// The alerts' names.
pub fn alert_names() -> BTreeSet<String> {
    rules().into_iter().map(|r| r.alert).collect()
}

/// The dashboard, parsed.
pub fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// Every query of the dashboard: (where, PromQL as Grafana holds it).
pub fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("panel {} {:?} target {}", p["id"], p["title"], t["refId"]),
                t["expr"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

/// The dashboard's variables, by name.
pub fn variables(d: &Value) -> BTreeMap<String, Value> {
    d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?.to_string(), v.clone())))
        .collect()
}

/// A Grafana query as Prometheus gets it: the variables replaced.
pub fn as_prometheus_gets_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$instance", ".*")
}

/// The body of `## title` in the page, up to the next `## `.
pub fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let head = format!("\n## {title}\n");
    let start = doc
        .find(&head)
        .unwrap_or_else(|| panic!("{DOC} has no `## {title}`"));
    let body = &doc[start + head.len()..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}

/// The `### ` headings of a section, with their text.
pub fn subsections(sec: &str) -> Vec<(String, String)> {
    sec.split("\n### ")
        .skip(1)
        .map(|part| {
            let (head, body) = part.split_once('\n').unwrap_or((part, ""));
            (head.trim().to_string(), body.to_string())
        })
        .collect()
}

/// The anchor GitHub gives a heading.
pub fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The fenced code blocks of a Markdown text: (language, text).
pub fn code_blocks(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find("```") {
        let (lang, body) = rest[i + 3..]
            .split_once('\n')
            .expect("a fence ends its line");
        let end = body.find("```").expect("every fence is closed");
        out.push((lang.trim().to_string(), body[..end].to_string()));
        rest = &body[end + 3..];
    }
    out
}

/// The rows of the Markdown table in `text` (header and separator left out), cells trimmed and
/// without their backticks.
pub fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

/// The metric table of [`METRICS_DOC`]: name -> (type, labels).
pub fn documented_metrics() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let doc = read(METRICS_DOC);
    table_rows(section(&doc, "Every metric"))
        .into_iter()
        .map(|row| {
            assert_eq!(
                row.len(),
                4,
                "{METRICS_DOC}: a metric row of 4 cells: {row:?}"
            );
            let labels = row[2]
                .split(',')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            (row[0].clone(), (row[1].clone(), labels))
        })
        .collect()
}

/// Checks that every metric `expr` names is served, with the labels it uses.
pub fn check_query(served: &Exposition, at: &str, expr: &str, problems: &mut Vec<String>) {
    let used = promql_names(expr);
    let mut known: BTreeSet<String> = TARGET_LABELS.iter().map(|s| s.to_string()).collect();
    for sel in &used.selectors {
        if sel.metric.is_empty() {
            problems.push(format!("{at}: a selector without a metric name"));
            continue;
        }
        if sel.metric == "up" {
            for (l, _, _) in &sel.matchers {
                if !TARGET_LABELS.contains(&l.as_str()) {
                    problems.push(format!("{at}: up has no label {l}"));
                }
            }
            continue;
        }
        if served.resolve(&sel.metric).is_none() {
            problems.push(format!(
                "{at}: {} is not a name the collector serves",
                sel.metric
            ));
            continue;
        }
        let labels = served.samples.get(&sel.metric);
        if let Some(ls) = labels {
            known.extend(ls.iter().cloned());
        }
        for (l, _, _) in &sel.matchers {
            if TARGET_LABELS.contains(&l.as_str()) {
                continue;
            }
            match labels {
                Some(ls) if ls.contains(l) => {}
                Some(ls) => problems.push(format!(
                    "{at}: {} has no label {l} (it has {ls:?})",
                    sel.metric
                )),
                None => problems.push(format!(
                    "{at}: {} has no series to check its label {l} against (make the test's collector produce one)",
                    sel.metric
                )),
            }
        }
    }
    for g in &used.grouping {
        if !known.contains(g) {
            problems.push(format!(
                "{at}: groups or matches on {g}, a label none of its metrics has"
            ));
        }
    }
}

/// The page's Prometheus configurations (its YAML blocks with `scrape_configs`).
pub fn documented_prometheus_configs() -> Vec<Value> {
    code_blocks(&read(DOC))
        .into_iter()
        .filter(|(lang, text)| lang == "yaml" && text.contains("scrape_configs:"))
        .map(|(_, text)| parse_yaml(&text, "a Prometheus configuration in the page"))
        .collect()
}

/// Debian's Prometheus and promtool are built without Kubernetes discovery: a job's
/// `kubernetes_sd_configs` (pods) becomes file discovery from `pods_file`, which holds targets
/// with the `__meta_kubernetes_*` labels Kubernetes discovery gives. The rest stays as written.
pub fn with_pods_from_a_file(config: &mut Value, pods_file: &Path) -> bool {
    let mut replaced = false;
    for job in config["scrape_configs"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let Some(obj) = job.as_object_mut() else {
            continue;
        };
        if let Some(sd) = obj.remove("kubernetes_sd_configs") {
            assert_eq!(
                sd,
                json!([{"role": "pod"}]),
                "pod discovery, as the page has it"
            );
            obj.insert(
                "file_sd_configs".to_string(),
                json!([{"files": [pods_file.display().to_string()]}]),
            );
            replaced = true;
        }
    }
    replaced
}

pub fn write_yaml(path: &Path, v: &Value) {
    std::fs::write(path, serde_norway::to_string(v).expect("yaml")).expect("write");
}

/// The page's collector configuration fragment (`admin:`), checked by the collector's own
/// configuration parser as part of the example configuration; returns the admin address.
pub fn documented_admin_listen(fragment: &str) -> String {
    let example = std::fs::read_to_string(repo_root().join("collector/collector.example.yaml"))
        .expect("collector.example.yaml");
    let text = format!("{}\n{fragment}", example.trim_end());
    let config = collector::config::Config::from_yaml(&text, &|_| Some("x".to_string()))
        .unwrap_or_else(|e| panic!("the page's collector configuration is refused: {e}\n{text}"));
    config.admin_listen.expect("the fragment sets admin.listen")
}
