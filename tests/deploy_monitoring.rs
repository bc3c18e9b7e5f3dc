//! The monitoring kit as shipped: the Prometheus alert rules (checked and unit-tested by
//! promtool), the Grafana dashboard and docs/monitoring.md, held against a real collector's
//! `/metrics` and a real Prometheus scraping it with the configurations the page documents.

use edgelog_testkit::certs::TestCa;
use edgelog_testkit::collector::{metric, post_lines, spawn_collector_process, CollectorProcess};
use edgelog_testkit::delivery::{lines, stream_behind_front};
use edgelog_testkit::kinesis_front::Faults;
use edgelog_testkit::paths::{free_port, repo_root};
use edgelog_testkit::procs::until;
use edgelog_testkit::prometheus::{run_promtool, spawn_prometheus, Prometheus};
use edgelog_testkit::s3_front::spawn_s3_front;
use edgelog_testkit::s3_stub::spawn_s3_stub;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const RULES: &str = "deploy/prometheus/edgelog-rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/edgelog-rules.test.yml";
const DASHBOARD: &str = "deploy/grafana/edgelog.json";
const DOC: &str = "docs/monitoring.md";
/// Where every alert's `runbook_url` points, before `#<the anchor of the alert's heading>`.
const RUNBOOK_BASE: &str = "https://github.com/edgelog/edgelog/blob/main/docs/monitoring.md";

/// Metrics the rules, the dashboard and the docs use that the collector does not serve yet, as
/// served (name and type). `metrics_the_collector_must_add_are_served` fails until the collector
/// serves every one; the other checks pass over them meanwhile. Remove an entry once it is served.
const METRICS_THE_COLLECTOR_MUST_ADD: &[(&str, &str)] = &[
    // The buffer's limit, `buffer.max_bytes`, no labels (EdgelogBufferFillingUp, buffer panels).
    ("edgelog_buffer_max_bytes", "gauge"),
    // Saves of the disk buffer's ack position that failed, no labels (EdgelogAckSaveFailing).
    ("edgelog_buffer_ack_save_errors_total", "counter"),
];

/// Labels Prometheus gives every series it scrapes.
const TARGET_LABELS: &[&str] = &["job", "instance"];

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(text: &str, what: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("{what} is not YAML: {e}\n{text}"))
}

fn must_add(name: &str) -> bool {
    METRICS_THE_COLLECTOR_MUST_ADD
        .iter()
        .any(|(n, _)| *n == name)
}

fn fail_on(problems: &[String], what: &str) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

// ---------------------------------------------------------------------------------------------
// The rules file, the dashboard and the page, read.

struct Rule {
    alert: String,
    expr: String,
    severity: String,
    annotations: BTreeMap<String, String>,
}

fn rules() -> Vec<Rule> {
    let v = yaml(&read(RULES), RULES);
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

fn alert_names() -> BTreeSet<String> {
    rules().into_iter().map(|r| r.alert).collect()
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

/// Every query of the dashboard: (where, PromQL as Grafana holds it).
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
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
fn variables(d: &Value) -> BTreeMap<String, Value> {
    d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?.to_string(), v.clone())))
        .collect()
}

/// A Grafana query as Prometheus gets it: the variables replaced.
fn as_prometheus_gets_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$instance", ".*")
}

/// The body of `## title` in the page, up to the next `## `.
fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let head = format!("\n## {title}\n");
    let start = doc
        .find(&head)
        .unwrap_or_else(|| panic!("{DOC} has no `## {title}`"));
    let body = &doc[start + head.len()..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}

/// The `### ` headings of a section, with their text.
fn subsections(sec: &str) -> Vec<(String, String)> {
    sec.split("\n### ")
        .skip(1)
        .map(|part| {
            let (head, body) = part.split_once('\n').unwrap_or((part, ""));
            (head.trim().to_string(), body.to_string())
        })
        .collect()
}

/// The anchor GitHub gives a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The fenced code blocks of a Markdown text: (language, text).
fn code_blocks(doc: &str) -> Vec<(String, String)> {
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
fn table_rows(text: &str) -> Vec<Vec<String>> {
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

/// The metric table of the page: name -> (type, labels).
fn documented_metrics() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let doc = read(DOC);
    table_rows(section(&doc, "Metrics"))
        .into_iter()
        .map(|row| {
            assert_eq!(row.len(), 4, "{DOC}: a metric row of 4 cells: {row:?}");
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

// ---------------------------------------------------------------------------------------------
// PromQL: the metric names and label names a query uses.

#[derive(Debug)]
struct Selector {
    metric: String,
    /// (label, operator, value)
    matchers: Vec<(String, String, String)>,
}

#[derive(Debug, Default)]
struct Used {
    selectors: Vec<Selector>,
    /// Labels named in `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    grouping: Vec<String>,
}

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The index just past the string literal starting at `i`.
fn skip_string(b: &[u8], i: usize) -> usize {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() && b[j] != quote {
        if b[j] == b'\\' && quote != b'`' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

/// The label matchers of `{...}` starting at `open`, and the index past the `}`.
fn parse_matchers(s: &str, open: usize) -> (Vec<(String, String, String)>, usize) {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = open + 1;
    loop {
        i = skip_ws(b, i);
        if i >= b.len() || b[i] == b'}' {
            return (out, i + 1);
        }
        if b[i] == b',' {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && ident_char(b[i]) {
            i += 1;
        }
        let label = s[start..i].to_string();
        i = skip_ws(b, i);
        let op_start = i;
        while i < b.len() && matches!(b[i], b'=' | b'!' | b'~') {
            i += 1;
        }
        let op = s[op_start..i].to_string();
        i = skip_ws(b, i);
        if label.is_empty() || op.is_empty() || i >= b.len() || !matches!(b[i], b'"' | b'\'') {
            // Not a matcher (a malformed selector): promtool reports it; stop here.
            return (out, b.len());
        }
        let end = skip_string(b, i);
        let value = s[i + 1..end - 1].replace("\\\"", "\"");
        out.push((label, op, value));
        i = end;
    }
}

fn promql_names(expr: &str) -> Used {
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    const OPERATORS: [&str; 5] = ["and", "or", "unless", "offset", "bool"];
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let b = expr.as_bytes();
    let mut used = Used::default();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            i = skip_string(b, i);
        } else if c == b'[' {
            i = expr[i..].find(']').map_or(b.len(), |j| i + j + 1);
        } else if c == b'#' {
            i = expr[i..].find('\n').map_or(b.len(), |j| i + j + 1);
        } else if c == b'$' || c.is_ascii_digit() || c == b'.' {
            // A Grafana variable, a number or a duration.
            i += 1;
            while i < b.len() && (ident_char(b[i]) || b[i] == b'.') {
                i += 1;
            }
        } else if c == b'{' {
            let (matchers, end) = parse_matchers(expr, i);
            used.selectors.push(Selector {
                metric: String::new(),
                matchers,
            });
            i = end;
        } else if ident_start(c) {
            let start = i;
            while i < b.len() && ident_char(b[i]) {
                i += 1;
            }
            let word = &expr[start..i];
            let next = skip_ws(b, i);
            if LABEL_LISTS.contains(&word) {
                if next < b.len() && b[next] == b'(' {
                    let close = expr[next..].find(')').map_or(b.len(), |j| next + j);
                    used.grouping.extend(
                        expr[next + 1..close]
                            .split(',')
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(str::to_string),
                    );
                    i = close + 1;
                }
            } else if OPERATORS.contains(&word)
                || AGGREGATIONS.contains(&word)
                || (next < b.len() && b[next] == b'(')
            {
                // An operator, a function or an aggregation.
            } else {
                let mut sel = Selector {
                    metric: word.to_string(),
                    matchers: Vec::new(),
                };
                if next < b.len() && b[next] == b'{' {
                    let (matchers, end) = parse_matchers(expr, next);
                    sel.matchers = matchers;
                    i = end;
                }
                used.selectors.push(sel);
            }
        } else {
            i += 1;
        }
    }
    used
}

// ---------------------------------------------------------------------------------------------
// What a collector serves.

#[derive(Default)]
struct Exposition {
    /// Family -> type, from `# TYPE`.
    types: BTreeMap<String, String>,
    /// Sample name -> the label names its series carry.
    samples: BTreeMap<String, BTreeSet<String>>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        e.add(text);
        e
    }

    /// Adds another collector's exposition.
    fn add(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(t) = line.strip_prefix("# TYPE ") {
                let mut parts = t.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    self.types.insert(name.to_string(), kind.to_string());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = self.samples.entry(line[..end].to_string()).or_default();
            if line[end..].starts_with('{') {
                for (l, _, _) in parse_matchers(line, end).0 {
                    labels.insert(l);
                }
            }
        }
    }

    /// The family and type of a name a query may use: a gauge's name, a counter's `_total`, a
    /// histogram's `_bucket`, `_sum` or `_count`.
    fn resolve(&self, name: &str) -> Option<(String, String)> {
        let kind = |family: &str, want: &str| {
            self.types
                .get(family)
                .filter(|t| t.as_str() == want)
                .map(|t| (family.to_string(), t.clone()))
        };
        kind(name, "gauge")
            .or_else(|| name.strip_suffix("_total").and_then(|f| kind(f, "counter")))
            .or_else(|| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .and_then(|f| kind(f, "histogram"))
            })
    }

    /// Every name as the page's table writes it: counters with `_total`, histograms bare.
    fn documented_names(&self) -> BTreeMap<String, String> {
        self.types
            .iter()
            .map(|(family, kind)| {
                let name = if kind == "counter" {
                    format!("{family}_total")
                } else {
                    family.clone()
                };
                (name, kind.clone())
            })
            .collect()
    }

    /// The label names of a documented name's series (`le` aside), if it has any series.
    fn documented_labels(&self, name: &str, kind: &str) -> Option<BTreeSet<String>> {
        let sample = if kind == "histogram" {
            format!("{name}_count")
        } else {
            name.to_string()
        };
        self.samples.get(&sample).cloned()
    }
}

/// Checks that every metric `expr` names is served, with the labels it uses.
fn check_query(served: &Exposition, at: &str, expr: &str, problems: &mut Vec<String>) {
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
        if must_add(&sel.metric) {
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

// ---------------------------------------------------------------------------------------------
// The rules.

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let root = repo_root();
    let check = run_promtool(&root, &["check", "rules", RULES]);
    assert!(check.ok, "{}", check.output);
    let tests = run_promtool(&root, &["test", "rules", RULE_TESTS]);
    assert!(tests.ok, "{}", tests.output);
}

#[test]
fn every_alert_has_a_severity_a_summary_a_description_a_runbook_and_a_firing_and_a_quiet_test() {
    let mut problems = Vec::new();
    for r in rules() {
        let a = &r.alert;
        if !matches!(r.severity.as_str(), "critical" | "warning") {
            problems.push(format!(
                "{a}: severity {:?}, not critical or warning",
                r.severity
            ));
        }
        for key in ["summary", "description"] {
            if r.annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
                problems.push(format!("{a}: no {key} annotation"));
            }
        }
        let want = format!("{RUNBOOK_BASE}#{}", anchor(a));
        if r.annotations.get("runbook_url") != Some(&want) {
            problems.push(format!(
                "{a}: runbook_url {:?}, want {want:?}",
                r.annotations.get("runbook_url")
            ));
        }
    }
    // In the unit tests: a group in which the alert fires, and one in which it is evaluated and
    // never fires.
    let tests = yaml(&read(RULE_TESTS), RULE_TESTS);
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for group in tests["tests"].as_array().expect("tests") {
        let mut evaluated = BTreeSet::new();
        let mut fired = BTreeSet::new();
        for t in group["alert_rule_test"].as_array().into_iter().flatten() {
            let name = t["alertname"].as_str().unwrap_or("").to_string();
            if t["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                fired.insert(name.clone());
            }
            evaluated.insert(name);
        }
        quiet.extend(evaluated.difference(&fired).cloned());
        fires.extend(fired);
    }
    for a in alert_names() {
        if !fires.contains(&a) {
            problems.push(format!("{a}: no test case in {RULE_TESTS} where it fires"));
        }
        if !quiet.contains(&a) {
            problems.push(format!(
                "{a}: no test case in {RULE_TESTS} with a healthy series where it stays quiet"
            ));
        }
    }
    fail_on(&problems, "the alert rules");
}

// ---------------------------------------------------------------------------------------------
// The dashboard.

#[test]
fn the_dashboard_is_a_valid_grafana_model() {
    let d = dashboard();
    let mut problems = Vec::new();
    if !d["schemaVersion"].is_u64() {
        problems.push("no schemaVersion".to_string());
    }
    for key in ["title", "uid"] {
        if d[key].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no {key}"));
        }
    }
    let vars = variables(&d);
    match vars.get("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        other => problems.push(format!(
            "no Prometheus data source variable `datasource`: {other:?}"
        )),
    }
    match vars.get("instance") {
        Some(v)
            if v["type"] == "query"
                && v["datasource"]["uid"] == "${datasource}"
                && v["query"]
                    .as_str()
                    .is_some_and(|q| q.starts_with("label_values(") && q.ends_with(", instance)")) => {}
        other => problems.push(format!(
            "no `instance` variable querying label_values(..., instance) on ${{datasource}}: {other:?}"
        )),
    }
    let panels = d["panels"].as_array().cloned().unwrap_or_default();
    if panels.is_empty() {
        problems.push("no panels".to_string());
    }
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for p in &panels {
        let at = format!("panel {} {:?}", p["id"], p["title"]);
        match p["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            Some(_) => problems.push(format!("{at}: its id is not unique")),
            None => problems.push(format!("{at}: no numeric id")),
        }
        if p["type"].as_str().is_none_or(str::is_empty)
            || p["title"].as_str().is_none_or(str::is_empty)
        {
            problems.push(format!("{at}: no type or title"));
        }
        let ds = json!({"type": "prometheus", "uid": "${datasource}"});
        if p["datasource"] != ds {
            problems.push(format!(
                "{at}: datasource {} is not the variable {ds}",
                p["datasource"]
            ));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("{at}: no target"));
        }
        let mut refs = BTreeSet::new();
        for t in &targets {
            if !t["refId"]
                .as_str()
                .is_some_and(|r| refs.insert(r.to_string()))
            {
                problems.push(format!("{at}: a target without a refId of its own"));
            }
            if t["datasource"] != ds {
                problems.push(format!("{at}: a target whose datasource is not {ds}"));
            }
            let expr = t["expr"].as_str().unwrap_or("");
            if expr.trim().is_empty() {
                problems.push(format!("{at}: a target without expr"));
            }
            for s in promql_names(expr).selectors {
                let filtered = s
                    .matchers
                    .iter()
                    .any(|(l, op, v)| l == "instance" && op == "=~" && v == "$instance");
                if !filtered {
                    problems.push(format!(
                        "{at}: {} does not follow the instance variable (instance=~\"$instance\")",
                        s.metric
                    ));
                }
            }
        }
        let g = &p["gridPos"];
        match (
            g["x"].as_u64(),
            g["y"].as_u64(),
            g["w"].as_u64(),
            g["h"].as_u64(),
        ) {
            (Some(x), Some(y), Some(w), Some(h)) if x + w <= 24 && w > 0 && h > 0 => {
                for cx in x..x + w {
                    for cy in y..y + h {
                        if let Some(other) = cells.insert((cx, cy), at.clone()) {
                            problems.push(format!("{at} overlaps {other}"));
                        }
                    }
                }
            }
            _ => problems.push(format!("{at}: gridPos {g} is not within the 24 columns")),
        }
    }
    problems.dedup();
    fail_on(&problems, DASHBOARD);

    // Every query is PromQL Prometheus takes, once Grafana has put in its variables: checked by
    // promtool as recording rules.
    let dir = tempfile::tempdir().expect("tmp");
    let rules: Vec<Value> = dashboard_queries(&d)
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| json!({"record": format!("dashboard:query:{i}"), "expr": as_prometheus_gets_it(expr)}))
        .collect();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(
        &file,
        serde_norway::to_string(&json!({"groups": [{"name": "dashboard", "rules": rules}]}))
            .expect("yaml"),
    )
    .expect("write");
    let check = run_promtool(dir.path(), &["check", "rules", "dashboard-queries.yml"]);
    assert!(
        check.ok,
        "a dashboard query is not valid PromQL:\n{}",
        check.output
    );
}

// ---------------------------------------------------------------------------------------------
// The page.

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

/// The page's Prometheus configurations (its YAML blocks with `scrape_configs`).
fn documented_prometheus_configs() -> Vec<Value> {
    code_blocks(&read(DOC))
        .into_iter()
        .filter(|(lang, text)| lang == "yaml" && text.contains("scrape_configs:"))
        .map(|(_, text)| yaml(&text, "a Prometheus configuration in the page"))
        .collect()
}

/// Debian's Prometheus and promtool are built without Kubernetes discovery: a job's
/// `kubernetes_sd_configs` (pods) becomes file discovery from `pods_file`, which holds targets
/// with the `__meta_kubernetes_*` labels Kubernetes discovery gives. The rest stays as written.
fn with_pods_from_a_file(config: &mut Value, pods_file: &Path) -> bool {
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

fn write_yaml(path: &Path, v: &Value) {
    std::fs::write(path, serde_norway::to_string(v).expect("yaml")).expect("write");
}

/// The page's collector configuration fragment (`admin:`), checked by the collector's own
/// configuration parser as part of the example configuration; returns the admin address.
fn documented_admin_listen(fragment: &str) -> String {
    let example = std::fs::read_to_string(repo_root().join("collector/collector.example.yaml"))
        .expect("collector.example.yaml");
    let text = format!("{}\n{fragment}", example.trim_end());
    let config = collector::config::Config::from_yaml(&text, &|_| Some("x".to_string()))
        .unwrap_or_else(|e| panic!("the page's collector configuration is refused: {e}\n{text}"));
    config.admin_listen.expect("the fragment sets admin.listen")
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
                let v = yaml(&text, &format!("block {n} of {DOC}"));
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

// ---------------------------------------------------------------------------------------------
// A real collector's /metrics.

async fn exposition(admin_url: &str) -> String {
    reqwest::get(format!("{admin_url}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body")
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("collector.yaml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// A collector with a memory buffer and a file output.
async fn plain_collector(dir: &Path) -> CollectorProcess {
    spawn_collector_process(&write_config(
        dir,
        &format!(
            "listen: \"127.0.0.1:0\"\nlog_format: json\nfastly: {{service_ids: [\"*\"]}}\n\
             buffer: {{type: memory}}\ndead_letter: {{path: \"{d}/dead.ndjson\"}}\n\
             output: {{file: {{path: \"{d}/out.log\"}}}}\n",
            d = dir.display()
        ),
    ))
    .await
}

/// A collector whose TLS reload has failed once (`edgelog_tls_reloads_total{result}`).
async fn collector_with_a_refused_certificate(dir: &Path) -> CollectorProcess {
    let (first, second) = (TestCa::new("first"), TestCa::new("second"));
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    let pair = first.server();
    std::fs::write(&key, &pair.key_pem).expect("key");
    std::fs::write(&cert, &pair.cert_pem).expect("cert");
    let c = spawn_collector_process(&write_config(
        dir,
        &format!(
            "listen: \"127.0.0.1:0\"\nlog_format: json\nfastly: {{service_ids: [\"*\"]}}\n\
             tls: {{cert: \"{}\", key: \"{}\"}}\n\
             buffer: {{type: memory}}\ndead_letter: {{path: \"{d}/dead.ndjson\"}}\n\
             output: {{file: {{path: \"{d}/out.log\"}}}}\n",
            cert.display(),
            key.display(),
            d = dir.display()
        ),
    ))
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
    let d = dir.path().display();
    let c = spawn_collector_process(&write_config(
        dir.path(),
        &format!(
            "listen: \"127.0.0.1:0\"\nlog_format: json\nfastly: {{service_ids: [\"*\"]}}\n\
             ingest: {{max_body_bytes: 1048576, max_line_bytes: 2048, auth: {{header: X-Edgelog-Token, token: monitoring-token}}}}\n\
             buffer: {{type: disk, dir: \"{d}/buffer\", fsync: never, max_bytes: 67108864, segment_bytes: 1048576}}\n\
             dead_letter: {{path: \"{d}/dead.ndjson\"}}\n\
             output:\n\
             \x20 aws_kinesis:\n    stream_name: monitoring\n    region: us-east-1\n    endpoint_url: \"{k}\"\n\
             \x20   credentials: {{access_key_id: AKIDTEST, secret_access_key: secret}}\n\
             \x20   batch: {{duration: 50ms}}\n    health_check_interval: 200ms\n    shard_refresh: 1s\n\
             \x20 s3:\n    bucket: edgelog-archive\n    region: us-east-1\n    endpoint_url: \"{s}\"\n    force_path_style: true\n\
             \x20   credentials: {{access_key_id: AKIDS3TEST, secret_access_key: s3-test-secret}}\n\
             \x20   max_object_age: 200ms\n\
             \x20 retry: {{max_retries: 3, initial_wait: 20ms, max_wait: 200ms}}\n",
            k = front.endpoint,
            s = s3_front.endpoint,
        ),
    ))
    .await;
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
    for chunk in batch.chunks(50) {
        assert_eq!(post_lines(&c.url, token, chunk).await, 204);
    }
    assert_eq!(post_lines(&c.url, Some("wrong"), &batch[..1]).await, 401);

    // Every labelled family the page lists has series to check labels against, once the
    // collector has met each situation.
    let documented = documented_metrics();
    let labelled: Vec<String> = documented
        .iter()
        .filter(|(name, (_, labels))| !labels.is_empty() && !must_add(name))
        .map(|(name, (kind, _))| {
            if kind == "histogram" {
                format!("{name}_count")
            } else {
                name.clone()
            }
        })
        .collect();
    let tls_text = exposition(&tls.admin_url).await;
    let (admin, labelled_ref, tls_ref) = (&c.admin_url, &labelled, &tls_text);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let served = loop {
        let mut served = Exposition::parse(&exposition(admin).await);
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
    let tests = yaml(&read(RULE_TESTS), RULE_TESTS);
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
                "{DOC}: {name} ({kind}) is served and not in the table"
            )),
            Some((doc_kind, doc_labels)) => {
                if doc_kind != kind {
                    problems.push(format!(
                        "{DOC}: {name} is a {kind}, the table says {doc_kind}"
                    ));
                }
                match served.documented_labels(name, kind) {
                    Some(labels) if &labels == doc_labels => {}
                    Some(labels) => problems.push(format!(
                        "{DOC}: {name} has labels {labels:?}, the table says {doc_labels:?}"
                    )),
                    None => problems.push(format!(
                        "{DOC}: {name} has no series to check its labels against"
                    )),
                }
            }
        }
    }
    for name in documented.keys() {
        if !names.contains_key(name) && !must_add(name) {
            problems.push(format!(
                "{DOC}: the table lists {name}, which is not served"
            ));
        }
    }
    // Every metric name the page's text mentions.
    let doc = read(DOC);
    let mentioned: BTreeSet<&str> = doc
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("edgelog_") && !w.ends_with('_'))
        .collect();
    for m in mentioned {
        if served.resolve(m).is_none() && !names.contains_key(m) && !must_add(m) {
            problems.push(format!("{DOC} names {m}, which is not served"));
        }
    }
    // The list of metrics to add holds only names something uses and the collector lacks.
    let uses: String = format!("{}{}", read(RULES), read(DASHBOARD));
    for (name, _) in METRICS_THE_COLLECTOR_MUST_ADD {
        if served.resolve(name).is_some() {
            problems.push(format!(
                "{name} is served now: remove it from METRICS_THE_COLLECTOR_MUST_ADD"
            ));
        }
        if !uses.contains(name) {
            problems.push(format!(
                "{name} is in METRICS_THE_COLLECTOR_MUST_ADD but no rule or panel uses it"
            ));
        }
    }
    problems.sort();
    problems.dedup();
    tls.terminate().await;
    c.terminate().await;
    fail_on(&problems, "names the collector does not serve");
}

#[tokio::test]
async fn metrics_the_collector_must_add_are_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = plain_collector(dir.path()).await;
    let served = Exposition::parse(&exposition(&c.admin_url).await);
    c.terminate().await;
    let missing: Vec<String> = METRICS_THE_COLLECTOR_MUST_ADD
        .iter()
        .filter(|(name, kind)| served.resolve(name).is_none_or(|(_, k)| k != *kind))
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect();
    assert!(
        missing.is_empty(),
        "the alert rules and the dashboard read metrics the collector does not serve: {}; \
         add them to collector/src/metrics.rs (see METRICS_THE_COLLECTOR_MUST_ADD in this file)",
        missing.join(", ")
    );
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
