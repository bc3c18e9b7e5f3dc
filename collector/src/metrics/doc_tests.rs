//! `docs/metrics.md` against the registry, both ways: every metric the collector registers is in
//! the page's table with its type (as served) and labels, and every metric the table lists is
//! registered. The registry's own exposition is the truth: its `# TYPE` lines for names and types,
//! its samples (every labelled metric given one series) for labels.

use super::Metrics;
use std::collections::{BTreeMap, BTreeSet};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md");

type Table = BTreeMap<String, (String, BTreeSet<String>)>;

/// What `/metrics` serves: name as scraped (counters with `_total`) -> (type, labels).
fn registered() -> Table {
    let m = Metrics::default();
    m.touch_all();
    let text = m.render();
    let mut out = Table::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            out.insert(name, (kind.to_string(), BTreeSet::new()));
        }
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = labels.split_once('}').map_or("", |(l, _)| l);
        if let Some((_, have)) = out.get_mut(name) {
            for pair in labels.split(',') {
                if let Some((label, _)) = pair.split_once('=') {
                    have.insert(label.to_string());
                }
            }
        }
    }
    out
}

/// The rows of the table under `## Every metric`: metric | type | labels | meaning.
fn documented() -> Table {
    let text = std::fs::read_to_string(DOC).expect("docs/metrics.md");
    let section = text
        .split_once("\n## Every metric\n")
        .expect("docs/metrics.md has `## Every metric`")
        .1;
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut out = Table::new();
    for line in section.lines().filter(|l| l.starts_with('|')).skip(2) {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().trim_matches('`'))
            .collect();
        assert_eq!(cells.len(), 4, "a metric row of 4 cells: {line}");
        let labels = cells[2]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        assert!(
            out.insert(cells[0].to_string(), (cells[1].to_string(), labels))
                .is_none(),
            "{} listed twice",
            cells[0]
        );
    }
    out
}

#[test]
fn every_registered_metric_is_documented_and_every_documented_metric_is_registered() {
    let real = registered();
    assert!(
        real.len() > 50 && real.contains_key("edgelog_ingest_lines_total"),
        "the registry's exposition was read: {real:?}"
    );
    assert_eq!(
        real["edgelog_ledger_dead_lettered_lines"].1,
        BTreeSet::from(["output".to_string(), "reason".to_string()]),
        "labels are read from the samples"
    );
    let doc = documented();
    let mut problems = Vec::new();
    for (name, (kind, labels)) in &real {
        match doc.get(name) {
            None => problems.push(format!("{name} ({kind}) is registered and not documented")),
            Some((k, l)) if (k, l) != (kind, labels) => problems.push(format!(
                "{name}: registered as {kind} {labels:?}, documented as {k} {l:?}"
            )),
            Some(_) => {}
        }
    }
    for name in doc.keys().filter(|n| !real.contains_key(*n)) {
        problems.push(format!("{name} is documented and not registered"));
    }
    assert!(problems.is_empty(), "docs/metrics.md: {problems:#?}");
}
