//! The field lookup: tests.

use super::*;

fn path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}

#[test]
fn field_values_by_dotted_path() {
    let line = br#"{"a":1,"client_ip":"203.0.113.7","geo":{"country_code":"US","lat":37.5,"x":{"deep":true}},"n":null,"e":"","arr":[1,{"client_ip":"no"}]}"#;
    assert_eq!(
        field_value(line, &path("client_ip")).as_deref(),
        Some("203.0.113.7")
    );
    assert_eq!(
        field_value(line, &path("geo.country_code")).as_deref(),
        Some("US")
    );
    assert_eq!(field_value(line, &path("geo.lat")).as_deref(), Some("37.5"));
    assert_eq!(field_value(line, &path("a")).as_deref(), Some("1"));
    assert_eq!(
        field_value(line, &path("geo.x.deep")).as_deref(),
        Some("true")
    );
    assert_eq!(
        field_value(line, &path("geo.x")).as_deref(),
        Some("{\"deep\":true}")
    );
    assert_eq!(
        field_value(line, &path("arr")).as_deref(),
        Some("[1,{\"client_ip\":\"no\"}]")
    );
    for missing in ["nope", "n", "e", "client_ip.sub", "geo.nope", "a.b"] {
        assert_eq!(field_value(line, &path(missing)), None, "{missing}");
    }
    for not_object in [
        &b"not json"[..],
        b"[1,2]",
        b"\"s\"",
        b"",
        b"{\"client_ip\":",
    ] {
        assert_eq!(field_value(not_object, &path("client_ip")), None);
    }
    assert_eq!(
        field_value(br#"{"k":"caf\u00e9 \"q\""}"#, &path("k")).as_deref(),
        Some("caf\u{e9} \"q\"")
    );
}

/// A tiny deterministic generator (no dependency), for the oracle test.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'x>(&mut self, xs: &[&'x str]) -> &'x str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
    fn ws(&mut self) -> &'static str {
        ["", "", " ", "\n  ", "\t"][(self.next() % 5) as usize]
    }
    fn value(&mut self, depth: u32) -> String {
        let kind = self.next() % if depth > 2 { 5 } else { 7 };
        match kind {
            0 => self
                .pick(&[
                    "\"US\"",
                    "\"\"",
                    "\"a\\\"b\"",
                    "\"caf\\u00e9\"",
                    "\"x\\\\y\"",
                    "\"\\u00e9t\\u00e9\"",
                    "\"}]{[,:\"",
                ])
                .to_string(),
            1 => self
                .pick(&[
                    "0",
                    "-12",
                    "3.50",
                    "1e3",
                    "2E-2",
                    "123456789012345678901234",
                ])
                .to_string(),
            2 => self.pick(&["true", "false"]).to_string(),
            3 => "null".to_string(),
            4 => format!("\"s{}\"", self.next() % 100),
            5 => {
                let n = self.next() % 4;
                let items: Vec<String> = (0..n)
                    .map(|_| format!("{}{}{}", self.ws(), self.value(depth + 1), self.ws()))
                    .collect();
                format!("[{}]", items.join(","))
            }
            _ => self.object(depth + 1),
        }
    }
    fn object(&mut self, depth: u32) -> String {
        let n = self.next() % 5;
        let items: Vec<String> = (0..n)
            .map(|_| {
                let k = self.pick(&["a", "b", "geo", "k\\\"q", "\\u0061", "c"]);
                let (w1, w2) = (self.ws(), self.ws());
                format!("{w1}\"{k}\"{w2}:{}{}", self.ws(), self.value(depth))
            })
            .collect();
        format!("{{{}}}", items.join(","))
    }
}

/// The same question answered by serde_json (first occurrence of a key, as the scanner).
fn oracle(doc: &str, path: &[String]) -> Option<serde_json::Value> {
    let mut de = serde_json::Deserializer::from_str(doc);
    let v: serde_json::Value = serde::Deserialize::deserialize(&mut de).ok()?;
    de.end().ok()?;
    let mut cur = &v;
    for p in path {
        cur = cur.as_object()?.get(p)?;
    }
    match cur {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) if s.is_empty() => None,
        other => Some(other.clone()),
    }
}

#[test]
fn the_scanner_agrees_with_a_json_parser() {
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let paths: Vec<Vec<String>> = ["a", "geo", "geo.a", "geo.b", "k\"q", "a.b.c"]
        .iter()
        .map(|p| p.split('.').map(str::to_string).collect())
        .collect();
    let mut compared = 0;
    for _ in 0..20_000 {
        let doc = g.object(0);
        // serde_json keeps the last of duplicate keys; the scanner the first: skip those.
        if doc.matches("\"a\"").count() > 1
            || doc.matches("\"geo\"").count() > 1
            || doc.matches("\"b\"").count() > 1
            || doc.matches(r#""k\"q""#).count() > 1
            || doc.contains("\\u0061")
        {
            continue;
        }
        for path in &paths {
            let ours = field_value(doc.as_bytes(), path);
            let theirs = oracle(&doc, path);
            match (&ours, &theirs) {
                (None, None) => {}
                (Some(o), Some(serde_json::Value::String(t))) => {
                    assert_eq!(o.as_ref(), t, "{doc} {path:?}")
                }
                (Some(o), Some(t)) => {
                    let parsed: serde_json::Value =
                        serde_json::from_str(o).unwrap_or_else(|_| panic!("{o} from {doc}"));
                    assert_eq!(&parsed, t, "{doc} {path:?}");
                }
                _ => panic!("{doc} {path:?}: ours {ours:?}, theirs {theirs:?}"),
            }
            compared += 1;
        }
    }
    assert!(compared > 50_000, "{compared}");
}
