//! The format-string engine: Fastly's VCL log `format` placeholders (seed 001), for Compute.
//!
//! A format string is parsed once into [`Template`] pieces; rendering a request is then a walk
//! over the pieces with no parsing. Invariants: a template renders to exactly one line (literals
//! lose their line breaks at parse time, request text is escaped at render time), and a bad format
//! string is an error that names the placeholder and its position, never a panic.

use crate::escape::{
    cut_line, push_apache_escaped, push_json_escaped, single_line, MAX_LINE_BYTES,
};
use crate::facts::{Facts, Outcome};
use crate::timefmt::{clf, iso8601, TimeFormat};
use std::fmt::{self, Write};

/// The Common Log Format, as seed 001 writes it for Apache compatibility.
pub const CLF: &str = "%h - - %t \"%r\" %>s %b";

/// A format-string error: which placeholder, where (1-based character column), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    pub placeholder: String,
    pub position: usize,
    pub reason: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "placeholder {} at position {}: {}",
            self.placeholder, self.position, self.reason
        )
    }
}

impl std::error::Error for FormatError {}

/// How a text value is escaped into the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Apache mod_log_config style: `\"`, `\\`, `\n`, `\xhh`.
    Apache,
    /// For the inside of a JSON string: `json.escape(...)` in a `%{...}V`.
    Json,
}

/// A Compute variable that `%{name}V` can log; the documented set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    ReqHeader(String),
    RespHeader(String),
    ClientIp,
    GeoCountryCode,
    GeoCity,
    GeoLatitude,
    GeoLongitude,
    GeoConnType,
    ServerDatacenter,
    ServerHostname,
    ServerIp,
    ServiceId,
    ServiceVersion,
    TraceId,
    Method,
    Url,
    UrlPath,
    UrlQs,
    Proto,
    TlsProtocol,
    ReqHeaderBytes,
    ReqBodyBytes,
    ReqBytes,
    RespStatus,
    RespBodyBytes,
    RespHeaderBytes,
    RespBytes,
    TimeStart,
    TimeStartSec,
    TimeStartMsec,
    TimeStartUsec,
    TimeEnd,
    TimeEndSec,
    TimeEndMsec,
    TimeEndUsec,
    ElapsedUsec,
    ElapsedMsec,
    ElapsedSec,
    Outcome,
    Error,
}

/// The names `%{name}V` accepts besides `req.http.*` and `resp.http.*`; listed in the README.
pub const VAR_NAMES: &[(&str, Var)] = &[
    ("client.ip", Var::ClientIp),
    ("client.geo.country_code", Var::GeoCountryCode),
    ("client.geo.city", Var::GeoCity),
    ("client.geo.latitude", Var::GeoLatitude),
    ("client.geo.longitude", Var::GeoLongitude),
    ("client.geo.conn_type", Var::GeoConnType),
    ("server.datacenter", Var::ServerDatacenter),
    ("server.hostname", Var::ServerHostname),
    ("server.ip", Var::ServerIp),
    ("req.service_id", Var::ServiceId),
    ("req.vcl.version", Var::ServiceVersion),
    ("req.xid", Var::TraceId),
    ("req.method", Var::Method),
    ("req.url", Var::Url),
    ("req.url.path", Var::UrlPath),
    ("req.url.qs", Var::UrlQs),
    ("req.proto", Var::Proto),
    ("tls.client.protocol", Var::TlsProtocol),
    ("req.header_bytes_read", Var::ReqHeaderBytes),
    ("req.body_bytes_read", Var::ReqBodyBytes),
    ("req.bytes_read", Var::ReqBytes),
    ("resp.status", Var::RespStatus),
    ("resp.body_bytes_written", Var::RespBodyBytes),
    ("resp.header_bytes_written", Var::RespHeaderBytes),
    ("resp.bytes_written", Var::RespBytes),
    ("time.start", Var::TimeStart),
    ("time.start.sec", Var::TimeStartSec),
    ("time.start.msec", Var::TimeStartMsec),
    ("time.start.usec", Var::TimeStartUsec),
    ("time.end", Var::TimeEnd),
    ("time.end.sec", Var::TimeEndSec),
    ("time.end.msec", Var::TimeEndMsec),
    ("time.end.usec", Var::TimeEndUsec),
    ("time.elapsed.usec", Var::ElapsedUsec),
    ("time.elapsed.msec", Var::ElapsedMsec),
    ("time.elapsed.sec", Var::ElapsedSec),
    ("edgelog.outcome", Var::Outcome),
    ("edgelog.error", Var::Error),
];

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    ClientIp,
    ServerIp,
    /// `%B` (0 as 0) and `%b` (0 as `-`).
    BodyBytes {
        dash_for_zero: bool,
    },
    Cookie(String),
    ElapsedUs,
    Path,
    Protocol,
    ReqHeader(String),
    BytesIn,
    Method,
    RespHeader(String),
    BytesOut,
    Port {
        remote: bool,
    },
    Query,
    RequestLine,
    Status,
    ClfTime,
    Time(TimeFormat),
    ElapsedSec,
    Host,
    Const(&'static str),
    Var(Var, Escape),
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parses a format string; the error names the first bad placeholder and its position.
    pub fn parse(spec: &str) -> Result<Template, FormatError> {
        let chars: Vec<(usize, char)> = spec.char_indices().collect();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            let (_, c) = chars[i];
            if c != '%' {
                literal.push(c);
                i += 1;
                continue;
            }
            let start = i;
            let position = start + 1;
            i += 1;
            let mut arg: Option<String> = None;
            if i < chars.len() && chars[i].1 == '{' {
                let mut depth = 1;
                let mut j = i + 1;
                let mut text = String::new();
                while j < chars.len() {
                    match chars[j].1 {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    text.push(chars[j].1);
                    j += 1;
                }
                if j >= chars.len() {
                    return Err(FormatError {
                        placeholder: snippet(&chars, start, chars.len()),
                        position,
                        reason: "unterminated {".into(),
                    });
                }
                arg = Some(text);
                i = j + 1;
            }
            // Apache's `%>s` / `%<s`: final or original status; both are the same here.
            if i < chars.len() && (chars[i].1 == '>' || chars[i].1 == '<') {
                i += 1;
            }
            let Some(&(_, letter)) = chars.get(i) else {
                return Err(FormatError {
                    placeholder: snippet(&chars, start, chars.len()),
                    position,
                    reason: "format string ends inside a placeholder".into(),
                });
            };
            i += 1;
            let placeholder = snippet(&chars, start, i);
            let err = |reason: &str| FormatError {
                placeholder: placeholder.clone(),
                position,
                reason: reason.to_string(),
            };
            let piece = match (letter, arg) {
                ('%', None) => {
                    literal.push('%');
                    continue;
                }
                ('a' | 'h', None) => Piece::ClientIp,
                ('A', None) => Piece::ServerIp,
                ('B', None) => Piece::BodyBytes {
                    dash_for_zero: false,
                },
                ('b', None) => Piece::BodyBytes {
                    dash_for_zero: true,
                },
                ('C', Some(name)) => Piece::Cookie(name),
                ('D', None) => Piece::ElapsedUs,
                ('f' | 'U', None) => Piece::Path,
                ('H', None) => Piece::Protocol,
                ('i', Some(name)) => Piece::ReqHeader(name),
                ('I', None) => Piece::BytesIn,
                ('m', None) => Piece::Method,
                ('o', Some(name)) => Piece::RespHeader(name),
                ('O', None) => Piece::BytesOut,
                ('p', None) => Piece::Port { remote: false },
                ('p', Some(kind)) => match kind.as_str() {
                    "canonical" | "local" => Piece::Port { remote: false },
                    "remote" => Piece::Port { remote: true },
                    _ => return Err(err("port format must be canonical, local or remote")),
                },
                ('q', None) => Piece::Query,
                ('r', None) => Piece::RequestLine,
                ('s', None) => Piece::Status,
                ('t', None) => Piece::ClfTime,
                ('t', Some(fmt)) => Piece::Time(TimeFormat::parse(&fmt).map_err(|e| err(&e))?),
                ('T', None) => Piece::ElapsedSec,
                ('v' | 'V', None) => Piece::Host,
                ('V', Some(name)) => {
                    let (var, escape) = parse_var(&name).map_err(|e| err(&e))?;
                    Piece::Var(var, escape)
                }
                ('e' | 'n', Some(_)) | ('l' | 'P' | 'R' | 'u', None) | ('P', Some(_)) => {
                    Piece::Const("-")
                }
                ('k', None) => Piece::Const("0"),
                ('X', None) => Piece::Const("+"),
                ('C' | 'i' | 'o' | 'e' | 'n', None) => {
                    return Err(err("needs a name in braces, e.g. %{User-Agent}i"))
                }
                (_, Some(_)) => return Err(err("takes no {argument}")),
                (_, None) => return Err(err("unknown placeholder")),
            };
            if !literal.is_empty() {
                pieces.push(Piece::Literal(single_line(&std::mem::take(&mut literal))));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(single_line(&literal)));
        }
        Ok(Template { pieces })
    }

    /// The Common Log Format template.
    pub fn clf() -> Template {
        // CLF is a constant that parses; fall back to an empty template rather than panic.
        Template::parse(CLF).unwrap_or(Template { pieces: Vec::new() })
    }

    /// Renders one line for a request, at most [`MAX_LINE_BYTES`] long.
    pub fn render(&self, f: &Facts) -> String {
        let mut out = String::with_capacity(256);
        for piece in &self.pieces {
            render_piece(&mut out, piece, f);
        }
        cut_line(&mut out, MAX_LINE_BYTES);
        out
    }
}

fn snippet(chars: &[(usize, char)], from: usize, to: usize) -> String {
    chars[from..to.min(chars.len())]
        .iter()
        .map(|(_, c)| c)
        .collect()
}

fn parse_var(name: &str) -> Result<(Var, Escape), String> {
    let (inner, escape) = match name
        .strip_prefix("json.escape(")
        .and_then(|r| r.strip_suffix(')'))
    {
        Some(inner) => (inner.trim(), Escape::Json),
        None => (name.trim(), Escape::Apache),
    };
    let lower = inner.to_ascii_lowercase();
    if let Some(h) = lower.strip_prefix("req.http.") {
        if h == "fastly-client-ip" {
            return Ok((Var::ClientIp, escape));
        }
        return Ok((Var::ReqHeader(h.to_string()), escape));
    }
    if let Some(h) = lower.strip_prefix("resp.http.") {
        return Ok((Var::RespHeader(h.to_string()), escape));
    }
    VAR_NAMES
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, v)| (v.clone(), escape))
        .ok_or_else(|| format!("unknown variable {inner:?} (see the README for the supported set)"))
}

fn push_text(out: &mut String, value: Option<&str>, escape: Escape) {
    match (value, escape) {
        (Some(v), Escape::Apache) => push_apache_escaped(out, v),
        (Some(v), Escape::Json) => push_json_escaped(out, v),
        (None, Escape::Apache) => out.push('-'),
        (None, Escape::Json) => {}
    }
}

fn push_num(out: &mut String, n: impl fmt::Display) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{n}");
}

fn render_piece(out: &mut String, piece: &Piece, f: &Facts) {
    match piece {
        Piece::Literal(s) => out.push_str(s),
        Piece::ClientIp => push_ip(out, f.client_ip),
        Piece::ServerIp => push_ip(out, f.server_ip),
        Piece::BodyBytes { dash_for_zero } => {
            if *dash_for_zero && f.response_body_bytes == 0 {
                out.push('-')
            } else {
                push_num(out, f.response_body_bytes)
            }
        }
        Piece::Cookie(name) => push_text(out, f.cookie(name).as_deref(), Escape::Apache),
        Piece::ElapsedUs => push_num(out, f.elapsed_us),
        Piece::Path => push_apache_escaped(out, &f.path),
        Piece::Protocol => push_apache_escaped(out, &f.protocol),
        Piece::ReqHeader(name) => push_text(out, f.request_header(name).as_deref(), Escape::Apache),
        Piece::BytesIn => push_num(out, f.request_header_bytes + f.request_body_bytes),
        Piece::Method => push_apache_escaped(out, &f.method),
        Piece::RespHeader(name) => {
            push_text(out, f.response_header(name).as_deref(), Escape::Apache)
        }
        Piece::BytesOut => push_num(out, f.response_header_bytes + f.response_body_bytes),
        Piece::Port { remote } => out.push_str(if *remote { "-" } else { "80" }),
        Piece::Query => {
            if let Some(q) = &f.query {
                out.push('?');
                push_apache_escaped(out, q);
            }
        }
        Piece::RequestLine => {
            push_apache_escaped(out, &f.method);
            out.push(' ');
            push_apache_escaped(out, &f.url());
            out.push(' ');
            push_apache_escaped(out, &f.protocol);
        }
        Piece::Status => push_num(out, f.status),
        Piece::ClfTime => out.push_str(&clf(f.start)),
        Piece::Time(tf) => tf.render(out, if tf.at_end { f.end } else { f.start }),
        Piece::ElapsedSec => push_num(out, f.elapsed_us / 1_000_000),
        Piece::Host => push_apache_escaped(out, &f.host()),
        Piece::Const(c) => out.push_str(c),
        Piece::Var(var, escape) => render_var(out, var, *escape, f),
    }
}

fn push_ip(out: &mut String, ip: Option<std::net::IpAddr>) {
    match ip {
        Some(ip) => push_num(out, ip),
        None => out.push('-'),
    }
}

fn render_var(out: &mut String, var: &Var, escape: Escape, f: &Facts) {
    let text = |out: &mut String, s: &str| push_text(out, Some(s), escape);
    let geo = f.geo.as_ref();
    match var {
        Var::ReqHeader(h) => push_text(out, f.request_header(h).as_deref(), escape),
        Var::RespHeader(h) => push_text(out, f.response_header(h).as_deref(), escape),
        Var::ClientIp => match f.client_ip {
            Some(ip) => text(out, &ip.to_string()),
            None => push_text(out, None, escape),
        },
        Var::GeoCountryCode => push_text(out, geo.map(|g| g.country_code.as_str()), escape),
        Var::GeoCity => push_text(out, geo.map(|g| g.city.as_str()), escape),
        Var::GeoLatitude => push_num(out, geo.map_or(0.0, |g| g.latitude)),
        Var::GeoLongitude => push_num(out, geo.map_or(0.0, |g| g.longitude)),
        Var::GeoConnType => push_text(out, geo.map(|g| g.conn_type.as_str()), escape),
        Var::ServerDatacenter => text(out, &f.pop),
        Var::ServerHostname => text(out, &f.cache_host),
        Var::ServerIp => match f.server_ip {
            Some(ip) => text(out, &ip.to_string()),
            None => push_text(out, None, escape),
        },
        Var::ServiceId => text(out, &f.service_id),
        Var::ServiceVersion => text(out, &f.service_version),
        Var::TraceId => text(out, &f.trace_id),
        Var::Method => text(out, &f.method),
        Var::Url => text(out, &f.url()),
        Var::UrlPath => text(out, &f.path),
        Var::UrlQs => text(out, f.query.as_deref().unwrap_or("")),
        Var::Proto => text(out, &f.protocol),
        Var::TlsProtocol => push_text(out, f.tls_protocol.as_deref(), escape),
        Var::ReqHeaderBytes => push_num(out, f.request_header_bytes),
        Var::ReqBodyBytes => push_num(out, f.request_body_bytes),
        Var::ReqBytes => push_num(out, f.request_header_bytes + f.request_body_bytes),
        Var::RespStatus => push_num(out, f.status),
        Var::RespBodyBytes => push_num(out, f.response_body_bytes),
        Var::RespHeaderBytes => push_num(out, f.response_header_bytes),
        Var::RespBytes => push_num(out, f.response_header_bytes + f.response_body_bytes),
        Var::TimeStart => text(out, &iso8601(f.start)),
        Var::TimeStartSec => push_num(out, f.start.secs()),
        Var::TimeStartMsec => push_num(out, f.start.0.div_euclid(1000)),
        Var::TimeStartUsec => push_num(out, f.start.0),
        Var::TimeEnd => text(out, &iso8601(f.end)),
        Var::TimeEndSec => push_num(out, f.end.secs()),
        Var::TimeEndMsec => push_num(out, f.end.0.div_euclid(1000)),
        Var::TimeEndUsec => push_num(out, f.end.0),
        Var::ElapsedUsec => push_num(out, f.elapsed_us),
        Var::ElapsedMsec => push_num(out, f.elapsed_us / 1000),
        Var::ElapsedSec => push_num(out, f.elapsed_us / 1_000_000),
        Var::Outcome => text(
            out,
            match f.outcome {
                Outcome::Origin => "origin",
                Outcome::Edge => "edge",
                Outcome::Failed(_) => "error",
            },
        ),
        Var::Error => match &f.outcome {
            Outcome::Failed(e) => text(out, e),
            _ => push_text(out, None, escape),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::tests::sample;

    fn render(spec: &str) -> String {
        Template::parse(spec).expect(spec).render(&sample())
    }

    #[test]
    fn common_log_format_matches_apache() {
        assert_eq!(
            Template::clf().render(&sample()),
            "203.0.113.77 - - [10/Oct/2000:13:55:36 +0000] \"GET /apache_pb.gif?a=1&token=s3cr3t HTTP/1.1\" 200 2326"
        );
    }

    #[test]
    fn every_placeholder_of_seed_001() {
        let cases: &[(&str, &str)] = &[
            ("%%", "%"),
            ("%a", "203.0.113.77"),
            ("%A", "151.101.1.1"),
            ("%b", "2326"),
            ("%B", "2326"),
            ("%{session}C", "xyz"),
            ("%{nope}C", "-"),
            ("%D", "2333"),
            ("%f", "/apache_pb.gif"),
            ("%h", "203.0.113.77"),
            ("%H", "HTTP/1.1"),
            ("%{User-Agent}i", "curl/8.5.0"),
            ("%{X-Missing}i", "-"),
            ("%I", "180"),
            ("%m", "GET"),
            ("%{Content-Type}o", "image/gif"),
            ("%O", "2446"),
            ("%p", "80"),
            ("%{canonical}p", "80"),
            ("%{local}p", "80"),
            ("%{remote}p", "-"),
            ("%q", "?a=1&token=s3cr3t"),
            ("%r", "GET /apache_pb.gif?a=1&token=s3cr3t HTTP/1.1"),
            ("%s", "200"),
            ("%>s", "200"),
            ("%t", "[10/Oct/2000:13:55:36 +0000]"),
            ("%{%d/%b/%Y}t", "10/Oct/2000"),
            ("%{end:usec_frac}t", "125789"),
            ("%T", "0"),
            ("%U", "/apache_pb.gif"),
            ("%v", "www.example.com"),
            ("%V", "www.example.com"),
            ("%{FOO}e", "-"),
            ("%l", "-"),
            ("%{foo}n", "-"),
            ("%P", "-"),
            ("%{pid}P", "-"),
            ("%R", "-"),
            ("%u", "-"),
            ("%k", "0"),
            ("%X", "+"),
        ];
        for (spec, want) in cases {
            assert_eq!(&render(spec), want, "placeholder {spec}");
        }
    }

    #[test]
    fn compute_variables() {
        let cases: &[(&str, &str)] = &[
            ("%{client.geo.country_code}V", "US"),
            ("%{client.geo.city}V", "San Francisco"),
            ("%{client.geo.latitude}V", "37.77869"),
            ("%{client.geo.longitude}V", "-122.39557"),
            ("%{client.geo.conn_type}V", "wired"),
            ("%{server.datacenter}V", "SJC"),
            ("%{server.hostname}V", "cache-sjc3128"),
            ("%{req.service_id}V", "SU1Z0isxPaozGVKXdv0eY"),
            ("%{req.vcl.version}V", "7"),
            ("%{req.xid}V", "0123456789abcdef0123456789abcdef"),
            ("%{req.http.Fastly-Client-IP}V", "203.0.113.77"),
            ("%{req.http.host}V", "www.example.com"),
            ("%{resp.http.content-length}V", "2326"),
            ("%{tls.client.protocol}V", "TLSv1.3"),
            ("%{req.url.qs}V", "a=1&token=s3cr3t"),
            ("%{resp.bytes_written}V", "2446"),
            ("%{time.start.msec}V", "971186136123"),
            ("%{time.elapsed.usec}V", "2333"),
            ("%{time.start}V", "2000-10-10T13:55:36.123456+00:00"),
            ("%{edgelog.outcome}V", "origin"),
            ("%{edgelog.error}V", "-"),
            ("%{json.escape(req.http.x-missing)}V", ""),
        ];
        for (spec, want) in cases {
            assert_eq!(&render(spec), want, "variable {spec}");
        }
        // Every documented name parses.
        for (name, _) in VAR_NAMES {
            Template::parse(&format!("%{{{name}}}V")).expect(name);
        }
    }

    #[test]
    fn seed_001_json_style_format() {
        let spec = r#"{"client_ip":"%{req.http.Fastly-Client-IP}V","url":"%{json.escape(req.url)}V","ua":"%{json.escape(req.http.User-Agent)}V","status":%{resp.status}V}"#;
        let mut f = sample();
        f.request_headers
            .push(("user-agent".into(), b"evil\"\n\x01".to_vec()));
        let line = Template::parse(spec).expect("parse").render(&f);
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["status"], 200);
        assert_eq!(v["ua"], "curl/8.5.0, evil\"\n\u{1}");
    }

    #[test]
    fn request_text_is_escaped_and_literals_stay_on_one_line() {
        let mut f = sample();
        f.path = "/a\"b\nc".into();
        f.request_headers
            .push(("x-evil".into(), b"\r\n\0\xff".to_vec()));
        let line = Template::parse("%U %{X-Evil}i lit\nline")
            .expect("parse")
            .render(&f);
        assert_eq!(line, "/a\\\"b\\nc \\r\\n\\x00\u{fffd} lit\\nline");
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let mut f = sample();
        f.request_headers
            .push(("x-big".into(), vec![b'x'; 2 * MAX_LINE_BYTES]));
        let line = Template::parse("%{X-Big}i").expect("parse").render(&f);
        assert_eq!(line.len(), MAX_LINE_BYTES);
        assert!(line.ends_with(crate::escape::CUT_MARKER));
    }

    #[test]
    fn bad_format_strings_name_placeholder_and_position() {
        let e = Template::parse("%h %Z").unwrap_err();
        assert_eq!((e.placeholder.as_str(), e.position), ("%Z", 4));
        assert_eq!(
            e.to_string(),
            "placeholder %Z at position 4: unknown placeholder"
        );
        let e = Template::parse("ok %{User-Agent").unwrap_err();
        assert_eq!((e.position, e.reason.as_str()), (4, "unterminated {"));
        let e = Template::parse("x %").unwrap_err();
        assert_eq!(e.position, 3);
        let e = Template::parse("%i").unwrap_err();
        assert!(e.reason.contains("needs a name"));
        let e = Template::parse("é %{nope.var}V").unwrap_err();
        assert_eq!((e.placeholder.as_str(), e.position), ("%{nope.var}V", 3));
        let e = Template::parse("%{%Q}t").unwrap_err();
        assert!(e.reason.contains("%Q"));
        let e = Template::parse("%{weird}p").unwrap_err();
        assert!(e.reason.contains("canonical"));
        let e = Template::parse("%{x}m").unwrap_err();
        assert!(e.reason.contains("no {argument}"));
    }

    #[test]
    fn missing_values_render_as_dash() {
        let mut f = sample();
        f.client_ip = None;
        f.server_ip = None;
        f.query = None;
        f.response_body_bytes = 0;
        f.tls_protocol = None;
        let line = Template::parse("%h|%A|%q|%b|%B|%{tls.client.protocol}V")
            .expect("parse")
            .render(&f);
        assert_eq!(line, "-|-||-|0|-");
    }
}
