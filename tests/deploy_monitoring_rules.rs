//! The alert rules as shipped (`deploy/prometheus/edgelog-rules.yml`): promtool checks them and
//! runs their unit tests, and every alert carries a severity, a summary, a description, a runbook
//! link, and a unit test where it fires and one where it stays quiet.

use edgelog_testkit::monitoring::{
    alert_names, anchor, fail_on, parse_yaml, read, rules, RULES, RULE_TESTS, RUNBOOK_BASE,
};
use edgelog_testkit::paths::repo_root;
use edgelog_testkit::prometheus::run_promtool;
use std::collections::BTreeSet;

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
    let tests = parse_yaml(&read(RULE_TESTS), RULE_TESTS);
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
