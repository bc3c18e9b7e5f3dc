//! The Grafana dashboard as shipped (`deploy/grafana/edgelog.json`): a valid model whose panels
//! all read the Prometheus data source variable and follow the instance variable, laid out
//! without overlap, every query valid PromQL for promtool once Grafana's variables are put in.

use edgelog_testkit::monitoring::{
    as_prometheus_gets_it, dashboard, dashboard_queries, fail_on, variables, DASHBOARD,
};
use edgelog_testkit::prometheus::run_promtool;
use edgelog_testkit::promql::promql_names;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

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
