//! PromQL and the Prometheus text format, as far as the monitoring checks need them: the metric
//! and label names a query uses, and the families, types and label names a `/metrics` page
//! serves.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug)]
pub struct Selector {
    pub metric: String,
    /// (label, operator, value)
    pub matchers: Vec<(String, String, String)>,
}

#[derive(Debug, Default)]
pub struct Used {
    pub selectors: Vec<Selector>,
    /// Labels named in `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    pub grouping: Vec<String>,
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

pub fn promql_names(expr: &str) -> Used {
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

#[derive(Default)]
pub struct Exposition {
    /// Family -> type, from `# TYPE`.
    pub types: BTreeMap<String, String>,
    /// Sample name -> the label names its series carry.
    pub samples: BTreeMap<String, BTreeSet<String>>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        e.add(text);
        e
    }

    /// Adds another collector's exposition.
    pub fn add(&mut self, text: &str) {
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
    pub fn resolve(&self, name: &str) -> Option<(String, String)> {
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
    pub fn documented_names(&self) -> BTreeMap<String, String> {
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
    pub fn documented_labels(&self, name: &str, kind: &str) -> Option<BTreeSet<String>> {
        let sample = if kind == "histogram" {
            format!("{name}_count")
        } else {
            name.to_string()
        };
        self.samples.get(&sample).cloned()
    }
}
