//! `docs/configuration.md` against the schema, both ways: every key the schema declares is in the
//! page's tables and every key there is in the schema; each documented default is what takes
//! effect when the key is left out; each documented bound is enforced, and a key the collector
//! bounds documents it; the values an enum takes are the ones listed.
//!
//! The schema's keys come from the types themselves: a deserializer that walks [`RawConfig`],
//! asked by serde's derived code for every field of every struct, records each key and what kind
//! of value it takes. Nothing is listed by hand, so a new key appears here without anyone
//! remembering it.

mod walk;

use super::{Config, ConfigError};
use std::collections::{BTreeMap, BTreeSet};
use walk::{schema_keys, Kind};

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");

/// One row of the page's key tables.
#[derive(Debug, Clone)]
struct Row {
    key: String,
    kind_text: String,
    default: Documented,
    bounds: Vec<Bound>,
}

#[derive(Debug, Clone, PartialEq)]
enum Documented {
    Required,
    None,
    Value(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Bound {
    /// `> X`.
    Above(String),
    /// `>= X`.
    AtLeast(String),
    /// `<= X`.
    AtMost(String),
    /// `capped at X`: more is taken as X, with a warning.
    Capped(String),
}

/// The code spans of a table cell.
fn spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// `a.{b,c.d}.e` -> `a.b.e`, `a.c.d.e`.
fn expand(key: &str) -> Vec<String> {
    match (key.find('{'), key.find('}')) {
        (Some(open), Some(close)) if open < close => key[open + 1..close]
            .split(',')
            .flat_map(|alt| expand(&format!("{}{alt}{}", &key[..open], &key[close + 1..])))
            .collect(),
        _ => vec![key.to_string()],
    }
}

/// The rows of every table whose header is `| key | type | default | limits | meaning |`.
fn documented() -> Vec<Row> {
    let text = std::fs::read_to_string(DOC).expect("docs/configuration.md");
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells == ["key", "type", "default", "limits", "meaning"] {
            in_table = true;
            continue;
        }
        if !in_table
            || cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ' '))
        {
            continue;
        }
        assert_eq!(cells.len(), 5, "a key row has 5 cells: {line}");
        let key = spans(cells[0]);
        assert_eq!(key.len(), 1, "one key per row: {line}");
        let default =
            if cells[2].starts_with("required") {
                Documented::Required
            } else if cells[2].starts_with("none") {
                Documented::None
            } else {
                Documented::Value(spans(cells[2]).into_iter().next().unwrap_or_else(|| {
                    panic!("a default in backticks, `none` or `required`: {line}")
                }))
            };
        let bounds: Vec<Bound> = spans(cells[3])
            .into_iter()
            .filter_map(|s| {
                if let Some(v) = s.strip_prefix(">= ") {
                    Some(Bound::AtLeast(v.into()))
                } else if let Some(v) = s.strip_prefix("> ") {
                    Some(Bound::Above(v.into()))
                } else if let Some(v) = s.strip_prefix("<= ") {
                    Some(Bound::AtMost(v.into()))
                } else {
                    s.strip_prefix("capped at ")
                        .map(|v| Bound::Capped(v.into()))
                }
            })
            .collect();
        for key in expand(&key[0]) {
            rows.push(Row {
                key,
                kind_text: cells[1].to_string(),
                default: default.clone(),
                bounds: bounds.clone(),
            });
        }
    }
    rows
}

/// Sets `key` (dotted) to `value` in a YAML mapping, making the blocks on the way.
fn set(root: &mut serde_norway::Value, key: &str, value: serde_norway::Value) {
    let mut at = root;
    let parts: Vec<&str> = key.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        let map = at.as_mapping_mut().expect("a block");
        at = map
            .entry(serde_norway::Value::from(*part))
            .or_insert_with(|| serde_norway::Value::Mapping(serde_norway::Mapping::new()));
    }
    at.as_mapping_mut()
        .expect("a block")
        .insert(parts[parts.len() - 1].into(), value);
}

fn lookup<'v>(root: &'v serde_norway::Value, key: &str) -> Option<&'v serde_norway::Value> {
    key.split('.').try_fold(root, |at, part| at.get(part))
}

fn remove(root: &mut serde_norway::Value, key: &str) {
    let mut at = root;
    let parts: Vec<&str> = key.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        at = at.get_mut(*part).expect("the block is there");
    }
    at.as_mapping_mut()
        .expect("a block")
        .remove(parts[parts.len() - 1]);
}

/// The smallest configuration in which `key` means something: the required keys of every block
/// on its way.
fn context(key: &str) -> serde_norway::Value {
    let y = |s: &str| serde_norway::from_str::<serde_norway::Value>(s).expect("yaml");
    let mut c = y("fastly: {service_ids: [\"*\"]}");
    let needs: &[(&str, &str, &str)] = &[
        ("tls.", "tls", "{cert: cert.pem, key: key.pem}"),
        ("ingest.auth.", "ingest.auth", "{header: X-T, token: t0ken}"),
        ("tail.", "tail", "{token: t0ken}"),
        (
            "output.aws_kinesis.",
            "output.aws_kinesis",
            "{stream_name: logs, region: us-east-1}",
        ),
        ("output.s3.", "output.s3", "{bucket: logs-archive}"),
        ("output.file.", "output.file", "{path: out.log}"),
    ];
    for (prefix, block, value) in needs {
        if key.starts_with(prefix) {
            set(&mut c, block, y(value));
        }
    }
    if key.contains(".credentials.") && !key.ends_with("access_key_id") {
        let block = &key[..key.rfind('.').expect("dotted")];
        // A role, and for the role itself keys too, so that the block stands without it.
        let role = "role_arn: \"arn:aws:iam::111122223333:role/r\"";
        let block_value = if key.ends_with(".role_arn") {
            format!("{{access_key_id: AKIAEXAMPLE, secret_access_key: s3cr3t, {role}}}")
        } else {
            format!("{{{role}}}")
        };
        set(&mut c, block, y(&block_value));
    }
    if c.get("output").is_none() {
        // At least one output, and not the one the key is about.
        if key.starts_with("output.stdout") {
            set(&mut c, "output.file", y("{path: out.log}"));
        } else {
            set(&mut c, "output.stdout", y("{}"));
        }
    }
    c
}

fn load(v: &serde_norway::Value) -> Result<Config, ConfigError> {
    let text = serde_norway::to_string(v).expect("yaml");
    Config::from_yaml(&text, &|_| None)
}

/// The effective configuration, without its warnings.
fn effective(c: &Config) -> serde_norway::Value {
    let mut v = serde_norway::to_value(c).expect("serializes");
    v.as_mapping_mut().expect("a mapping").remove("warnings");
    v
}

/// A value of `kind` from the page's text.
fn value(kind: &Kind, text: &str) -> serde_norway::Value {
    match kind {
        Kind::Str | Kind::Enum(_) => serde_norway::Value::from(text),
        _ => serde_norway::from_str(text).unwrap_or_else(|e| panic!("{text:?}: {e}")),
    }
}

/// Numbers and durations a bound is about, one step either side.
enum Quantity {
    Int(u64),
    Duration(std::time::Duration),
}

impl Quantity {
    fn parse(text: &str) -> Option<Quantity> {
        if let Ok(n) = text.parse::<u64>() {
            return Some(Quantity::Int(n));
        }
        super::model::parse_duration(text)
            .ok()
            .map(Quantity::Duration)
    }
    fn step(&self, up: bool) -> String {
        match self {
            Quantity::Int(n) => (if up { n + 1 } else { n - 1 }).to_string(),
            Quantity::Duration(d) => {
                let ms = std::time::Duration::from_millis(1);
                super::model::format_duration(if up { *d + ms } else { *d - ms })
            }
        }
    }
    fn text(&self) -> String {
        match self {
            Quantity::Int(n) => n.to_string(),
            Quantity::Duration(d) => super::model::format_duration(*d),
        }
    }
    fn is_zero(&self) -> bool {
        match self {
            Quantity::Int(n) => *n == 0,
            Quantity::Duration(d) => d.is_zero(),
        }
    }
}

#[test]
fn every_schema_key_is_documented_and_every_documented_key_exists() {
    let schema = schema_keys();
    // The walk found the whole schema, nested blocks and shared ones included.
    for key in [
        "listen",
        "buffer.ack_save_interval",
        "delivery_alert_after",
        "output.stdout",
        "output.s3.credentials.role_arn",
        "output.s3.retry.backoff",
        "output.aws_kinesis.batch.size",
    ] {
        assert!(
            schema.contains_key(key),
            "the walk missed {key}: {schema:?}"
        );
    }
    let rows = documented();
    let doc: BTreeSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(doc.len(), rows.len(), "a key documented twice");
    let missing: Vec<&String> = schema
        .keys()
        .filter(|k| !doc.contains(k.as_str()))
        .collect();
    let unknown: Vec<&&str> = doc.iter().filter(|k| !schema.contains_key(**k)).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/configuration.md lacks {missing:?}; documents keys the schema does not have: {unknown:?}"
    );
    // Enums: the values the type column lists are the ones the schema takes.
    for row in &rows {
        if let Kind::Enum(variants) = &schema[&row.key] {
            let listed: BTreeSet<String> = spans(&row.kind_text).into_iter().collect();
            let real: BTreeSet<String> = variants.iter().map(|v| v.to_string()).collect();
            assert_eq!(listed, real, "{}: the values it takes", row.key);
        }
    }
}

#[test]
fn every_documented_default_is_the_one_that_takes_effect() {
    let schema = schema_keys();
    let mut checked = 0;
    for row in documented() {
        let kind = schema
            .get(&row.key)
            .unwrap_or_else(|| panic!("{} is not a key of the schema", row.key));
        let base = context(&row.key);
        match &row.default {
            Documented::Value(text) => {
                let without = load(&base).unwrap_or_else(|e| panic!("{}: context: {e}", row.key));
                let mut with = base.clone();
                set(&mut with, &row.key, value(kind, text));
                let with = load(&with).unwrap_or_else(|e| {
                    panic!("{}: the documented default {text:?}: {e}", row.key)
                });
                assert_eq!(
                    effective(&with),
                    effective(&without),
                    "{}: the documented default {text:?} is not what the collector takes",
                    row.key
                );
                checked += 1;
            }
            Documented::Required => {
                let mut without = base.clone();
                remove(&mut without, &row.key);
                let e = load(&without)
                    .err()
                    .unwrap_or_else(|| panic!("{} is documented as required", row.key));
                assert!(e.to_string().starts_with(&row.key), "{}: {e}", row.key);
            }
            Documented::None => {
                let mut without = base.clone();
                if lookup(&without, &row.key).is_some() {
                    remove(&mut without, &row.key);
                }
                load(&without).unwrap_or_else(|e| {
                    panic!(
                        "{} is documented as optional, and leaving it out is refused: {e}",
                        row.key
                    )
                });
            }
        }
    }
    assert!(checked > 40, "{checked} defaults checked");
}

#[test]
fn every_documented_bound_is_enforced_and_every_bound_is_documented() {
    let schema = schema_keys();
    let rows = documented();
    let defaults: BTreeMap<&str, &str> = rows
        .iter()
        .filter_map(|r| match &r.default {
            Documented::Value(v) => Some((r.key.as_str(), v.as_str())),
            _ => None,
        })
        .collect();
    let mut checked = 0;
    for row in &rows {
        let kind = schema
            .get(&row.key)
            .unwrap_or_else(|| panic!("{} is not a key of the schema", row.key));
        let base = context(&row.key);
        let try_value = |text: &str| {
            let mut c = base.clone();
            set(&mut c, &row.key, value(kind, text));
            load(&c)
        };
        // The error names the key, or the other key of a bound between two.
        let refused = |text: &str, other: Option<&str>| match try_value(text) {
            Ok(_) => panic!("{} = {text} is accepted; the page bounds it", row.key),
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.starts_with(&row.key) || other.is_some_and(|o| e.starts_with(o)),
                    "{}: {e}",
                    row.key
                );
            }
        };
        let accepted = |text: &str| {
            let c = try_value(text).unwrap_or_else(|e| {
                panic!("{} = {text} is refused ({e}); the page allows it", row.key)
            });
            assert!(
                c.warnings.is_empty(),
                "{} = {text}: {:?}",
                row.key,
                c.warnings
            );
        };
        // A bound naming a key is that key's (documented, and checked) default; a bare name is
        // a key of the same block.
        let resolve = |v: &str| -> (Quantity, Option<String>) {
            if let Some(q) = Quantity::parse(v) {
                return (q, None);
            }
            let key = if v.contains('.') {
                v.to_string()
            } else {
                format!(
                    "{}.{v}",
                    &row.key[..row.key.rfind('.').expect("in a block")]
                )
            };
            let q = defaults
                .get(key.as_str())
                .and_then(|d| Quantity::parse(d))
                .unwrap_or_else(|| {
                    panic!("{}: bound {v} is not a value or a key with one", row.key)
                });
            (q, Some(key))
        };
        let mut lower = false;
        let mut upper = false;
        for b in &row.bounds {
            checked += 1;
            match b {
                Bound::Above(v) => {
                    let (q, other) = resolve(v);
                    refused(&q.text(), other.as_deref());
                    lower = true;
                }
                Bound::AtLeast(v) => {
                    let (q, other) = resolve(v);
                    accepted(&q.text());
                    refused(&q.step(false), other.as_deref());
                    lower = !q.is_zero();
                }
                Bound::AtMost(v) => {
                    let (q, other) = resolve(v);
                    accepted(&q.text());
                    refused(&q.step(true), other.as_deref());
                    upper = true;
                }
                Bound::Capped(v) => {
                    let (q, _) = resolve(v);
                    accepted(&q.text());
                    let over = try_value(&q.step(true))
                        .unwrap_or_else(|e| panic!("{}: above the cap: {e}", row.key));
                    assert!(
                        over.warnings.iter().any(|w| w.starts_with(&row.key)),
                        "{}: capping warns: {:?}",
                        row.key,
                        over.warnings
                    );
                    let at = try_value(&q.text()).expect("at the cap");
                    assert_eq!(
                        effective(&over),
                        effective(&at),
                        "{}: capped at {v}",
                        row.key
                    );
                    upper = true;
                }
            }
        }
        // The other way: a number or duration the collector refuses at 0 or far above any
        // sensible value is bounded on the page.
        let (zero, huge) = match (kind, row.kind_text.as_str()) {
            (Kind::Int, _) => ("0", "1099511627776"),
            (Kind::Str, "duration") => ("0s", "100000h"),
            _ => continue,
        };
        let changed = |text: &str| match try_value(text) {
            Err(_) => true,
            Ok(c) => !c.warnings.is_empty(),
        };
        assert!(
            !changed(zero) || lower,
            "{}: 0 is refused, and the page gives no lower bound",
            row.key
        );
        assert!(
            !changed(huge) || upper,
            "{}: {huge} is refused or capped, and the page gives no upper bound",
            row.key
        );
    }
    assert!(checked > 20, "{checked} bounds checked");
}
