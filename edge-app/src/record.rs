//! The JSON log line types: one serde struct per kind of line.
//!
//! Invariants: a serialized line is valid JSON on one line (serde_json escapes every control
//! character), and never longer than [`MAX_LINE_BYTES`]: oversized text fields are cut with a
//! visible marker, largest first, and the record says `"truncated":true`.

use crate::escape::{cut_field, CUT_MARKER, MAX_LINE_BYTES};
use crate::facts::{Facts, Outcome};
use crate::timefmt::{iso8601, Micros};
use serde::Serialize;

/// Client geolocation in an access record.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct GeoRecord {
    pub country_code: String,
    pub city: String,
    pub latitude: f64,
    pub longitude: f64,
    pub conn_type: String,
}

/// One line per request.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct AccessRecord {
    /// Always `"access"`, so consumers can tell line types apart.
    pub event: &'static str,
    /// Request start, ISO 8601 with offset.
    pub timestamp: String,
    /// `FASTLY_TRACE_ID`: the id to match a line with the request that produced it.
    pub request_id: String,
    pub trace_id: String,
    pub client_ip: String,
    pub geo: Option<GeoRecord>,
    pub pop: String,
    pub cache_host: String,
    pub service_id: String,
    pub service_version: String,
    pub method: String,
    /// Path and query, as the client sent them (redacted where configured).
    pub url: String,
    pub path: String,
    pub query: Option<String>,
    pub protocol: String,
    pub tls_protocol: Option<String>,
    pub host: String,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    pub accept_language: Option<String>,
    pub request_header_bytes: u64,
    pub request_body_bytes: u64,
    pub status: u16,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub body_bytes_sent: u64,
    pub elapsed_us: u64,
    /// `origin` (the origin answered), `edge` (answered here) or `error` (the request failed).
    pub outcome: &'static str,
    pub error: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub truncated: bool,
}

/// The line written to the panic endpoint when the app panics.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct PanicRecord {
    /// Always `"panic"`.
    pub event: &'static str,
    pub timestamp: String,
    pub request_id: String,
    pub message: String,
    pub location: Option<String>,
}

/// The access line's own keys; the app's fields may not use them.
pub const RECORD_KEYS: &[&str] = &[
    "event",
    "timestamp",
    "request_id",
    "trace_id",
    "client_ip",
    "geo",
    "pop",
    "cache_host",
    "service_id",
    "service_version",
    "method",
    "url",
    "path",
    "query",
    "protocol",
    "tls_protocol",
    "host",
    "user_agent",
    "referer",
    "accept_language",
    "request_header_bytes",
    "request_body_bytes",
    "status",
    "content_type",
    "content_length",
    "body_bytes_sent",
    "elapsed_us",
    "outcome",
    "error",
    "truncated",
];

fn is_false(b: &bool) -> bool {
    !*b
}

impl AccessRecord {
    pub fn from_facts(f: &Facts) -> Self {
        let outcome = f.outcome.name();
        let error = match &f.outcome {
            Outcome::Failed(e) => Some(e.clone()),
            _ => None,
        };
        AccessRecord {
            event: "access",
            timestamp: iso8601(f.start),
            request_id: f.trace_id.to_string(),
            trace_id: f.trace_id.to_string(),
            client_ip: f.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            geo: f.geo.as_ref().map(|g| GeoRecord {
                country_code: g.country_code.clone(),
                city: g.city.clone(),
                latitude: finite(g.latitude),
                longitude: finite(g.longitude),
                conn_type: g.conn_type.clone(),
            }),
            pop: f.pop.to_string(),
            cache_host: f.cache_host.to_string(),
            service_id: f.service_id.to_string(),
            service_version: f.service_version.to_string(),
            method: f.method.clone(),
            url: f.url(),
            path: f.path.clone(),
            query: f.query.clone(),
            protocol: f.protocol.clone(),
            tls_protocol: f.tls_protocol.clone(),
            host: f.host(),
            user_agent: f.request_header("user-agent"),
            referer: f.request_header("referer"),
            accept_language: f.request_header("accept-language"),
            request_header_bytes: f.request_header_bytes,
            request_body_bytes: f.request_body_bytes,
            status: f.status,
            content_type: f.response_header("content-type"),
            content_length: f
                .response_header("content-length")
                .and_then(|v| v.trim().parse().ok()),
            body_bytes_sent: f.response_body_bytes,
            elapsed_us: f.elapsed_us,
            outcome,
            error,
            truncated: false,
        }
    }

    /// Serializes to one JSON line of at most [`MAX_LINE_BYTES`].
    pub fn line(&mut self) -> String {
        to_line_within(self, MAX_LINE_BYTES)
    }

    /// Serializes to one JSON line of at most [`MAX_LINE_BYTES`], with the app's `fields` after
    /// the record's own keys. Fields may take up to half the line; past that their largest
    /// values are cut (a nested value becomes its JSON text, cut) and the line says
    /// `"truncated":true`.
    pub fn line_with(&mut self, fields: &[(String, serde_json::Value)]) -> String {
        if fields.is_empty() {
            return self.line();
        }
        let mut extra = fields_json(fields);
        if extra.len() > MAX_LINE_BYTES / 2 {
            self.truncated = true;
            let mut cut: Vec<(String, serde_json::Value)> = fields.to_vec();
            while extra.len() > MAX_LINE_BYTES / 2 {
                let Some((_, largest)) = cut.iter_mut().max_by_key(|(_, v)| json_len(v)) else {
                    break;
                };
                let mut text = match &mut *largest {
                    serde_json::Value::String(s) => std::mem::take(s),
                    other => other.to_string(),
                };
                let half = text.len() / 2;
                if half <= CUT_MARKER.len() {
                    break; // every value is already tiny; cannot happen within half a line
                }
                cut_field(&mut text, half);
                *largest = serde_json::Value::String(text);
                extra = fields_json(&cut);
            }
        }
        let mut line = to_line_within(self, MAX_LINE_BYTES - extra.len());
        if line.ends_with('}') {
            line.pop();
            line.push_str(&extra);
            line.push('}');
        }
        line
    }

    /// The text fields that can grow with the input, for cutting.
    fn text_fields(&mut self) -> Vec<&mut String> {
        let mut v: Vec<&mut String> = vec![
            &mut self.url,
            &mut self.path,
            &mut self.host,
            &mut self.method,
            &mut self.protocol,
        ];
        for s in [
            &mut self.query,
            &mut self.user_agent,
            &mut self.referer,
            &mut self.accept_language,
            &mut self.content_type,
            &mut self.error,
            &mut self.tls_protocol,
        ]
        .into_iter()
        .flatten()
        {
            v.push(s);
        }
        if let Some(g) = &mut self.geo {
            v.push(&mut g.city);
        }
        v
    }
}

/// Cuts the largest text fields until the JSON line fits in `max` bytes.
fn to_line_within(rec: &mut AccessRecord, max: usize) -> String {
    let mut line = serialize(rec);
    while line.len() > max {
        rec.truncated = true;
        let excess = line.len() - max;
        let mut fields = rec.text_fields();
        fields.sort_by_key(|f| std::cmp::Reverse(f.len()));
        let Some(largest) = fields.into_iter().next() else {
            break;
        };
        if largest.len() <= CUT_MARKER.len() {
            break; // nothing left to cut; cannot happen with the fields above
        }
        // JSON escaping can make a byte cost up to 6; cut at least that much more.
        let target = largest
            .len()
            .saturating_sub(excess + 16)
            .max(CUT_MARKER.len());
        let target = if target >= largest.len() {
            largest.len() / 2
        } else {
            target
        };
        cut_field(largest, target);
        line = serialize(rec);
    }
    line
}

/// `,"name":value` for each field.
fn fields_json(fields: &[(String, serde_json::Value)]) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        out.push(',');
        out.push_str(&serialize(name));
        out.push(':');
        out.push_str(&serialize(value));
    }
    out
}

fn json_len(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::String(s) => s.len(),
        other => other.to_string().len(),
    }
}

fn serialize<T: Serialize>(value: &T) -> String {
    // Serializing these structs cannot fail: no maps with non-string keys, no non-finite floats.
    serde_json::to_string(value)
        .unwrap_or_else(|e| format!("{{\"event\":\"error\",\"error\":\"serialize failed: {e}\"}}"))
}

/// serde_json writes NaN and infinities as `null`; keep coordinates as numbers instead.
fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

impl PanicRecord {
    pub fn new(at: Micros, request_id: &str, message: &str, location: Option<String>) -> Self {
        PanicRecord {
            event: "panic",
            timestamp: iso8601(at),
            request_id: request_id.to_string(),
            message: message.to_string(),
            location,
        }
    }

    pub fn line(&mut self) -> String {
        let mut line = serialize(self);
        if line.len() > MAX_LINE_BYTES {
            cut_field(&mut self.message, MAX_LINE_BYTES / 2);
            line = serialize(self);
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::tests::sample;
    use serde_json::Value;

    #[test]
    fn record_has_the_documented_fields() {
        let line = AccessRecord::from_facts(&sample()).line();
        let v: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["event"], "access");
        assert_eq!(v["timestamp"], "2000-10-10T13:55:36.123456+00:00");
        assert_eq!(v["request_id"], "0123456789abcdef0123456789abcdef");
        assert_eq!(v["trace_id"], v["request_id"]);
        assert_eq!(v["client_ip"], "203.0.113.77");
        assert_eq!(v["geo"]["country_code"], "US");
        assert_eq!(v["geo"]["city"], "San Francisco");
        assert_eq!(v["geo"]["latitude"], 37.77869);
        assert_eq!(v["geo"]["longitude"], -122.39557);
        assert_eq!(v["geo"]["conn_type"], "wired");
        assert_eq!(v["pop"], "SJC");
        assert_eq!(v["cache_host"], "cache-sjc3128");
        assert_eq!(v["service_id"], "SU1Z0isxPaozGVKXdv0eY");
        assert_eq!(v["service_version"], "7");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["url"], "/apache_pb.gif?a=1&token=s3cr3t");
        assert_eq!(v["path"], "/apache_pb.gif");
        assert_eq!(v["query"], "a=1&token=s3cr3t");
        assert_eq!(v["protocol"], "HTTP/1.1");
        assert_eq!(v["tls_protocol"], "TLSv1.3");
        assert_eq!(v["host"], "www.example.com");
        assert_eq!(v["user_agent"], "curl/8.5.0");
        assert_eq!(v["referer"], "https://ref.example/?token=abc&x=2");
        assert_eq!(v["accept_language"], "en-US,en;q=0.9");
        assert_eq!(v["request_header_bytes"], 180);
        assert_eq!(v["request_body_bytes"], 0);
        assert_eq!(v["status"], 200);
        assert_eq!(v["content_type"], "image/gif");
        assert_eq!(v["content_length"], 2326);
        assert_eq!(v["body_bytes_sent"], 2326);
        assert_eq!(v["elapsed_us"], 2333);
        assert_eq!(v["outcome"], "origin");
        assert_eq!(v["error"], Value::Null);
        assert!(v.get("truncated").is_none());
    }

    #[test]
    fn record_keys_are_the_serialized_keys() {
        let mut f = sample();
        f.outcome = Outcome::Failed("x".into());
        let mut rec = AccessRecord::from_facts(&f);
        rec.truncated = true;
        let v: Value = serde_json::from_str(&rec.line()).expect("json");
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut sorted_keys = keys.clone();
        sorted_keys.sort_unstable();
        let mut listed = RECORD_KEYS.to_vec();
        listed.sort_unstable();
        assert_eq!(sorted_keys, listed);
    }

    #[test]
    fn app_fields_follow_the_record_keys() {
        let fields = vec![
            ("tier".to_string(), Value::from("gold")),
            ("items".to_string(), Value::from(3)),
            ("ratio".to_string(), Value::from(0.5)),
            ("beta".to_string(), Value::from(true)),
            (
                "cart".to_string(),
                serde_json::json!({"sku": ["a", "b"], "n": null}),
            ),
            ("quote\"\n".to_string(), Value::from("line\nbreak")),
        ];
        let line = AccessRecord::from_facts(&sample()).line_with(&fields);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["status"], 200);
        assert_eq!(v["tier"], "gold");
        assert_eq!(v["items"], 3);
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["beta"], true);
        assert_eq!(v["cart"]["sku"][1], "b");
        assert_eq!(v["quote\"\n"], "line\nbreak");
        assert!(line.ends_with(r#""quote\"\n":"line\nbreak"}"#), "{line}");
        assert!(v.get("truncated").is_none());
    }

    #[test]
    fn huge_app_fields_are_cut_to_half_the_line() {
        let fields = vec![
            ("big".to_string(), Value::from("b".repeat(200_000))),
            (
                "nested".to_string(),
                serde_json::json!({"x": "n".repeat(100_000)}),
            ),
            ("small".to_string(), Value::from(7)),
        ];
        let mut f = sample();
        f.path = format!("/{}", "p".repeat(70_000));
        let line = AccessRecord::from_facts(&f).line_with(&fields);
        assert!(line.len() <= MAX_LINE_BYTES, "{}", line.len());
        let v: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["truncated"], true);
        assert_eq!(v["small"], 7);
        assert!(v["big"].as_str().expect("cut text").ends_with(CUT_MARKER));
        assert!(v["nested"]
            .as_str()
            .expect("cut json text")
            .starts_with("{\"x\":\"nnn"));
        assert_eq!(v["status"], 200);
    }

    #[test]
    fn failed_requests_carry_the_error() {
        let mut f = sample();
        f.status = 502;
        f.outcome = Outcome::Failed("connection refused".into());
        let v: Value = serde_json::from_str(&AccessRecord::from_facts(&f).line()).expect("json");
        assert_eq!(v["outcome"], "error");
        assert_eq!(v["error"], "connection refused");
        assert_eq!(v["status"], 502);
    }

    #[test]
    fn hostile_input_stays_one_valid_json_line() {
        let mut f = sample();
        f.path = "/\"quote\"\\\n\r\0\x01".into();
        f.request_headers
            .push(("user-agent", b"\xff\xfe bad \"utf8\"\n".to_vec()));
        f.geo = Some(crate::facts::GeoFacts {
            latitude: f64::NAN,
            ..Default::default()
        });
        let line = AccessRecord::from_facts(&f).line();
        assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\0'));
        let v: Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["path"], "/\"quote\"\\\n\r\0\x01");
        assert!(v["user_agent"]
            .as_str()
            .expect("ua")
            .starts_with("curl/8.5.0, \u{fffd}\u{fffd} bad"));
        assert_eq!(v["geo"]["latitude"], 0.0);
    }

    #[test]
    fn huge_fields_are_cut_to_the_limit_and_flagged() {
        let mut f = sample();
        f.request_headers.push(("user-agent", vec![b'u'; 200_000]));
        f.request_headers
            .push(("referer", "\u{1}".repeat(50_000).into_bytes()));
        f.path = format!("/{}", "p".repeat(70_000));
        let line = AccessRecord::from_facts(&f).line();
        assert!(line.len() <= MAX_LINE_BYTES, "{}", line.len());
        let v: Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["truncated"], true);
        assert!(v["user_agent"].as_str().expect("ua").ends_with(CUT_MARKER));
        assert_eq!(v["status"], 200, "small fields survive");
        assert_eq!(v["request_id"], "0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn panic_record_is_one_json_line() {
        let line = PanicRecord::new(
            Micros(0),
            "abc",
            "boom\nline two",
            Some("src/x.rs:1:2".into()),
        )
        .line();
        let v: Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["event"], "panic");
        assert_eq!(v["message"], "boom\nline two");
        assert!(!line.contains('\n'));
    }
}
