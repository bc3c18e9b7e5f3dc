//! What the edge knows about one request once it has been served: the raw material every log
//! format is rendered from.
//!
//! Invariant: gathered once per request by the Compute side (`app`), then only read, except for
//! [`Facts::apply_privacy`], which runs before any line is rendered so that no format can see an
//! unredacted URL or a full client address.

use crate::headers::Headers;
use crate::privacy;
use crate::timefmt::Micros;
use std::net::IpAddr;
use std::rc::Rc;

/// Geolocation of the client address, as far as Compute exposes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GeoFacts {
    pub country_code: String,
    pub country_name: String,
    pub city: String,
    pub latitude: f64,
    pub longitude: f64,
    pub conn_type: String,
    /// The client's autonomous system (ISP) number and the name of its organization.
    pub as_number: u32,
    pub as_name: String,
    pub country_code3: String,
    /// `AF`, `AN`, `AS`, `EU`, `NA`, `OC`, `SA`.
    pub continent_code: String,
    /// ISO 3166-2 subdivision (state, province), empty when unknown.
    pub region: String,
    pub postal_code: String,
    pub metro_code: i64,
    pub area_code: u16,
}

/// How the request ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Outcome {
    /// The origin answered; its response was passed on.
    #[default]
    Origin,
    /// Fastly's cache answered (the response had been stored before this request): the origin
    /// was not asked.
    Cache,
    /// The edge answered itself (health check).
    Edge,
    /// The request failed at the edge (origin unreachable, timeout, ...).
    Failed(String),
}

impl Outcome {
    /// As logged: `origin`, `cache`, `edge` or `error`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Origin => "origin",
            Outcome::Cache => "cache",
            Outcome::Edge => "edge",
            Outcome::Failed(_) => "error",
        }
    }
}

/// Everything about one request that a log line may carry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    pub start: Micros,
    pub end: Micros,
    pub elapsed_us: u64,
    pub client_ip: Option<IpAddr>,
    pub server_ip: Option<IpAddr>,
    pub geo: Option<GeoFacts>,
    /// `FASTLY_POP`.
    pub pop: Rc<str>,
    /// `FASTLY_HOSTNAME`, the cache node.
    pub cache_host: Rc<str>,
    pub service_id: Rc<str>,
    pub service_version: Rc<str>,
    /// `FASTLY_TRACE_ID`; also the record's request id.
    pub trace_id: Rc<str>,
    pub method: String,
    /// The URL path as received (percent-encoded).
    pub path: String,
    /// The query string without its `?`, if the URL had one.
    pub query: Option<String>,
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub protocol: String,
    pub tls_protocol: Option<String>,
    /// The TLS cipher (OpenSSL name) and the SNI server name the client sent.
    pub tls_cipher: Option<String>,
    pub tls_servername: Option<String>,
    /// `FASTLY_REGION`: the POP's region of the world (`US-West`, `Europe`, ...).
    pub server_region: Rc<str>,
    /// Request headers, names lower-cased, values as received (possibly not UTF-8).
    pub request_headers: Headers,
    pub request_header_bytes: u64,
    pub request_body_bytes: u64,
    pub status: u16,
    /// Response headers as sent to the client, names lower-cased.
    pub response_headers: Headers,
    pub response_header_bytes: u64,
    pub response_body_bytes: u64,
    pub outcome: Outcome,
    /// For a response from Fastly's cache: its age and the freshness it has left, in seconds.
    pub cache_age_secs: Option<u64>,
    pub cache_ttl_secs: Option<u64>,
    /// The app's own fields, in the order they were added; names are unique and none is one of
    /// the JSON line's own keys.
    pub fields: Vec<(String, serde_json::Value)>,
}

impl Facts {
    /// A request header as text (invalid UTF-8 replaced); repeated headers are joined with `, `.
    pub fn request_header(&self, name: &str) -> Option<String> {
        self.request_headers.get(name)
    }

    /// A response header as text, like [`Facts::request_header`].
    pub fn response_header(&self, name: &str) -> Option<String> {
        self.response_headers.get(name)
    }

    /// The Host header, which Fastly logs as `%v`.
    pub fn host(&self) -> String {
        self.request_header("host").unwrap_or_default()
    }

    /// Path and query as received: `/a/b?x=1`.
    pub fn url(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{}", self.path, q),
            None => self.path.clone(),
        }
    }

    /// A cookie from the request's Cookie headers.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.request_header("cookie")?;
        cookies.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    }

    /// One of the app's own fields.
    pub fn field(&self, name: &str) -> Option<&serde_json::Value> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }

    /// Anonymizes the client address and redacts query parameters everywhere a URL is carried
    /// (request URL and Referer).
    pub fn apply_privacy(&mut self, anonymize_ip: bool, redact: &[String]) {
        if anonymize_ip {
            self.client_ip = self.client_ip.map(privacy::anonymize_ip);
            self.request_headers.rewrite(|name, value| {
                (name.eq_ignore_ascii_case("fastly-client-ip")
                    || name.eq_ignore_ascii_case("x-forwarded-for"))
                .then(|| privacy::anonymize_ip_list(value))
            });
        }
        if redact.is_empty() {
            return;
        }
        if let Some(q) = &self.query {
            self.query = Some(privacy::redact_query(q, redact));
        }
        self.request_headers.rewrite(|name, value| {
            name.eq_ignore_ascii_case("referer").then(|| {
                let text = String::from_utf8_lossy(value);
                privacy::redact_url(&text, redact).into_bytes()
            })
        });
    }
}

/// Whether a request's body must be streamed to the origin and counted as it goes: a body
/// without a Content-Length (HTTP/1.1 chunked, or an HTTP/2 or HTTP/3 upload, which has no
/// Transfer-Encoding). A body with a Content-Length passes through uncopied and is counted by it.
pub fn body_is_streamed(
    method: &str,
    version: http::Version,
    content_length: bool,
    transfer_encoding: bool,
) -> bool {
    if content_length {
        return false;
    }
    let framed_by_streams = matches!(version, http::Version::HTTP_2 | http::Version::HTTP_3);
    transfer_encoding
        || (framed_by_streams && !matches!(method, "GET" | "HEAD" | "OPTIONS" | "DELETE" | "TRACE"))
}

/// The protocol as Fastly logs it: `HTTP/1.1`, `HTTP/2`, `HTTP/3` (not `HTTP/2.0`).
pub fn protocol_name(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A realistic request, used by the tests of every renderer.
    pub fn sample() -> Facts {
        Facts {
            start: Micros(971_186_136_123_456),
            end: Micros(971_186_136_125_789),
            elapsed_us: 2_333,
            client_ip: Some("203.0.113.77".parse().expect("ip")),
            server_ip: Some("151.101.1.1".parse().expect("ip")),
            geo: Some(GeoFacts {
                country_code: "US".into(),
                country_name: "United States of America".into(),
                city: "San Francisco".into(),
                latitude: 37.77869,
                longitude: -122.39557,
                conn_type: "wired".into(),
                as_number: 54113,
                as_name: "Fastly, Inc".into(),
                country_code3: "USA".into(),
                continent_code: "NA".into(),
                region: "CA".into(),
                postal_code: "94107".into(),
                metro_code: 807,
                area_code: 415,
            }),
            pop: "SJC".into(),
            cache_host: "cache-sjc3128".into(),
            service_id: "SU1Z0isxPaozGVKXdv0eY".into(),
            service_version: "7".into(),
            trace_id: "0123456789abcdef0123456789abcdef".into(),
            method: "GET".into(),
            path: "/apache_pb.gif".into(),
            query: Some("a=1&token=s3cr3t".into()),
            protocol: "HTTP/1.1".into(),
            tls_protocol: Some("TLSv1.3".into()),
            tls_cipher: Some("TLS_AES_128_GCM_SHA256".into()),
            tls_servername: Some("www.example.com".into()),
            server_region: "US-West".into(),
            request_headers: vec![
                ("host", b"www.example.com".to_vec()),
                ("user-agent", b"curl/8.5.0".to_vec()),
                ("referer", b"https://ref.example/?token=abc&x=2".to_vec()),
                ("accept-language", b"en-US,en;q=0.9".to_vec()),
                ("cookie", b"session=xyz; theme=dark".to_vec()),
            ]
            .into(),
            request_header_bytes: 180,
            request_body_bytes: 0,
            status: 200,
            response_headers: vec![
                ("content-type", b"image/gif".to_vec()),
                ("content-length", b"2326".to_vec()),
            ]
            .into(),
            response_header_bytes: 120,
            response_body_bytes: 2326,
            outcome: Outcome::Origin,
            cache_age_secs: None,
            cache_ttl_secs: None,
            fields: Vec::new(),
        }
    }

    #[test]
    fn headers_are_case_insensitive_and_joined() {
        let mut f = sample();
        f.request_headers.push(("x-multi", b"a".to_vec()));
        f.request_headers.push(("x-multi", b"b\xff".to_vec()));
        assert_eq!(f.request_header("X-Multi").as_deref(), Some("a, b\u{fffd}"));
        assert_eq!(f.request_header("missing"), None);
        assert_eq!(f.cookie("theme").as_deref(), Some("dark"));
        assert_eq!(f.cookie("nope"), None);
        assert_eq!(f.url(), "/apache_pb.gif?a=1&token=s3cr3t");
    }

    #[test]
    fn uploads_without_a_length_are_streamed_and_counted() {
        use http::Version;
        // HTTP/1.1: chunked only.
        assert!(body_is_streamed("POST", Version::HTTP_11, false, true));
        assert!(!body_is_streamed("POST", Version::HTTP_11, true, false));
        assert!(!body_is_streamed("GET", Version::HTTP_11, false, false));
        // HTTP/2 and HTTP/3 have no Transfer-Encoding: an upload without a length is streamed.
        for v in [Version::HTTP_2, Version::HTTP_3] {
            assert!(body_is_streamed("POST", v, false, false));
            assert!(body_is_streamed("PUT", v, false, false));
            assert!(!body_is_streamed("POST", v, true, false));
            assert!(!body_is_streamed("GET", v, false, false));
        }
    }

    #[test]
    fn outcomes_are_named() {
        let names: Vec<&str> = [
            Outcome::Origin,
            Outcome::Cache,
            Outcome::Edge,
            Outcome::Failed("x".into()),
        ]
        .iter()
        .map(Outcome::name)
        .collect();
        assert_eq!(names, ["origin", "cache", "edge", "error"]);
    }

    #[test]
    fn protocols_are_named_as_fastly_logs_them() {
        use http::Version;
        let names: Vec<&str> = [
            Version::HTTP_09,
            Version::HTTP_10,
            Version::HTTP_11,
            Version::HTTP_2,
            Version::HTTP_3,
        ]
        .into_iter()
        .map(protocol_name)
        .collect();
        assert_eq!(
            names,
            ["HTTP/0.9", "HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3"]
        );
    }

    #[test]
    fn privacy_applies_to_every_url_carrier() {
        let mut f = sample();
        f.apply_privacy(true, &["token".to_string()]);
        assert_eq!(f.client_ip, Some("203.0.113.0".parse().expect("ip")));
        assert_eq!(f.query.as_deref(), Some("a=1&token=REDACTED"));
        assert_eq!(
            f.request_header("referer").as_deref(),
            Some("https://ref.example/?token=REDACTED&x=2")
        );
    }
}
