//! The format-string engine: the placeholders of Fastly's VCL log `format`, for Compute.
//!
//! A format string is parsed once into [`Template`] pieces; rendering a request is then a walk
//! over the pieces with no parsing. Invariants: a template renders to exactly one line (literals
//! lose their line breaks at parse time, request text is escaped at render time), and a bad format
//! string is an error that names the placeholder and its position, never a panic.

use crate::escape::{cut_line, push_apache_escaped, single_line, MAX_LINE_BYTES};
use crate::facts::Facts;
use crate::timefmt::{clf, TimeFormat};
use crate::vcl::Expr;
use std::fmt::{self, Write};

/// The Common Log Format, as Fastly writes it for Apache compatibility.
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
    /// `%{name}n`: one of the app's own fields.
    Field(String),
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
    /// `%{...}V`: a VCL expression.
    Expr(Expr),
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
                // Braces inside an expression's strings ("..." and {"..."}) do not count.
                let at = |k: usize| chars.get(k).map(|&(_, c)| c);
                let mut depth = 1;
                let mut j = i + 1;
                let mut text = String::new();
                let mut string: Option<bool> = None; // Some(long)
                while j < chars.len() {
                    let c = chars[j].1;
                    let close = match string {
                        Some(false) => usize::from(c == '"'),
                        Some(true) => match (c, at(j + 1), at(j + 2)) {
                            ('"', Some('}'), _) => 2,
                            ('"', Some('\\'), Some('}')) => 3,
                            _ => 0,
                        },
                        None => 0,
                    };
                    if close > 0 {
                        text.extend(chars[j..j + close].iter().map(|&(_, c)| c));
                        j += close;
                        string = None;
                        continue;
                    }
                    if string.is_none() {
                        match (c, at(j + 1)) {
                            ('"', _) => string = Some(false),
                            ('{', Some('"')) => {
                                text.push_str("{\"");
                                j += 2;
                                string = Some(true);
                                continue;
                            }
                            ('{', _) => depth += 1,
                            ('}', _) => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                    }
                    text.push(c);
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
                // The format's own text is written as it is: no line break or NUL may pass.
                ('t', Some(fmt)) => {
                    Piece::Time(TimeFormat::parse(&fold_lines(&fmt)).map_err(|e| err(&e))?)
                }
                ('T', None) => Piece::ElapsedSec,
                ('v' | 'V', None) => Piece::Host,
                ('V', Some(text)) => Piece::Expr(Expr::parse(&text).map_err(|e| FormatError {
                    placeholder: placeholder.clone(),
                    // The expression starts after `%{`.
                    position: position + 2 + e.offset,
                    reason: e.reason,
                })?),
                ('n', Some(name)) => Piece::Field(name),
                ('e', Some(_)) | ('l' | 'P' | 'R' | 'u', None) | ('P', Some(_)) => {
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
                pieces.push(Piece::Literal(fold_lines(&std::mem::take(&mut literal))));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(fold_lines(&literal)));
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

/// Parses `spec` and, when it parses, renders it for a request full of hostile text (quotes,
/// line breaks, NUL, invalid UTF-8, a header past the line limit), panicking if the line is not
/// one line within [`MAX_LINE_BYTES`]. What the fuzz target and the replay of its inputs check.
#[doc(hidden)]
pub fn check_invariants(spec: &str) {
    let Ok(t) = Template::parse(spec) else {
        return;
    };
    let hostile = b"\"quote\" \\ back\nline\r\0nul \xff\xfe %22 {\"}".to_vec();
    let f = Facts {
        start: crate::timefmt::Micros(971_186_136_123_456),
        end: crate::timefmt::Micros(971_186_136_125_789),
        elapsed_us: 2_333,
        client_ip: None,
        server_ip: Some(std::net::Ipv6Addr::LOCALHOST.into()),
        geo: None,
        pop: "SJC\n".into(),
        cache_host: "cache\"x".into(),
        service_id: "".into(),
        service_version: "7".into(),
        trace_id: "t".into(),
        method: "GE\nT".into(),
        path: "/\"a\"\n\r\0".into(),
        query: Some("q=\n".into()),
        protocol: "HTTP/2".into(),
        tls_protocol: None,
        tls_cipher: Some("\n".into()),
        tls_servername: Some("a\"b\r".into()),
        server_region: "\0".into(),
        request_headers: vec![
            ("user-agent", hostile.clone()),
            ("host", hostile.clone()),
            ("cookie", b"a=\"\n\"; b=\xff".to_vec()),
            ("fastly-ff", b", ,a,".to_vec()),
            ("x-big", vec![b'\n'; 2 * MAX_LINE_BYTES]),
        ]
        .into(),
        request_header_bytes: u64::MAX / 2,
        request_body_bytes: u64::MAX / 2,
        status: 999,
        response_headers: vec![("x-cache", hostile)].into(),
        response_header_bytes: 0,
        response_body_bytes: 0,
        outcome: crate::facts::Outcome::Failed("e\n\"".into()),
        cache_age_secs: Some(u64::MAX),
        cache_ttl_secs: None,
        fields: vec![("note".into(), serde_json::Value::String("a\nb\"c".into()))],
    };
    let line = t.render(&f);
    assert!(
        !line.contains(['\n', '\r', '\0']),
        "{spec:?} rendered more than one line: {line:?}"
    );
    assert!(
        line.len() <= MAX_LINE_BYTES,
        "{spec:?}: {} bytes",
        line.len()
    );
}

/// The format string's own text: a line break the operator wrote (a format written over several
/// lines, as documented examples are) becomes a space, so the line means the same and stays one
/// line; a NUL is escaped.
fn fold_lines(text: &str) -> String {
    single_line(&text.replace("\r\n", " ").replace(['\n', '\r'], " "))
}

fn snippet(chars: &[(usize, char)], from: usize, to: usize) -> String {
    chars[from..to.min(chars.len())]
        .iter()
        .map(|(_, c)| c)
        .collect()
}

/// Request text, escaped; `-` when there is none.
fn push_text(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => push_apache_escaped(out, v),
        None => out.push('-'),
    }
}

fn push_num(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
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
        Piece::Cookie(name) => push_text(out, f.cookie(name).as_deref()),
        Piece::Field(name) => match f.field(name) {
            Some(serde_json::Value::String(s)) => push_apache_escaped(out, s),
            Some(v) => push_apache_escaped(out, &v.to_string()),
            None => out.push('-'),
        },
        Piece::ElapsedUs => push_num(out, f.elapsed_us),
        Piece::Path => push_apache_escaped(out, &f.path),
        Piece::Protocol => push_apache_escaped(out, &f.protocol),
        Piece::ReqHeader(name) => push_text(out, f.request_header(name).as_deref()),
        Piece::BytesIn => push_num(out, f.request_header_bytes + f.request_body_bytes),
        Piece::Method => push_apache_escaped(out, &f.method),
        Piece::RespHeader(name) => push_text(out, f.response_header(name).as_deref()),
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
        Piece::Expr(e) => e.render(out, f),
    }
}

fn push_ip(out: &mut String, ip: Option<std::net::IpAddr>) {
    match ip {
        // Writing to a String cannot fail.
        Some(ip) => {
            let _ = write!(out, "{ip}");
        }
        None => out.push('-'),
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
    fn every_placeholder_of_the_vcl_format() {
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
        for (name, _) in crate::vars::VAR_NAMES {
            Template::parse(&format!("%{{{name}}}V")).expect(name);
        }
    }

    #[test]
    fn a_json_style_format() {
        let spec = r#"{"client_ip":"%{req.http.Fastly-Client-IP}V","url":"%{json.escape(req.url)}V","ua":"%{json.escape(req.http.User-Agent)}V","status":%{resp.status}V}"#;
        let mut f = sample();
        f.request_headers
            .push(("user-agent", b"evil\"\n\x01".to_vec()));
        let line = Template::parse(spec).expect("parse").render(&f);
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["status"], 200);
        assert_eq!(v["ua"], "curl/8.5.0, evil\"\n\u{1}");
    }

    /// The README's example: Fastly's JSON log format for VCL services, as documented.
    fn vcl_json_example() -> String {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        let after = readme
            .split_once("Fastly's own JSON log format for VCL services works as it is")
            .expect("the example")
            .1;
        let block = after.split_once("```text\n").expect("a text block").1;
        block
            .split_once("```")
            .expect("its end")
            .0
            .trim_end()
            .to_string()
    }

    #[test]
    fn the_vcl_json_example_gives_valid_json_with_every_field() {
        let example = vcl_json_example();
        let line = render(&example);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect(&line);
        let want = serde_json::json!({
            "timestamp": "2000-10-10T13:55:36+0000",
            "client_ip": "203.0.113.77",
            "geo_country": "United States of America",
            "url": "/apache_pb.gif?a=1&token=s3cr3t",
            "request_referer": "https://ref.example/?token=abc&x=2",
            "request_user_agent": "curl/8.5.0",
            "fastly_is_edge": true,
            "response_state": "PASS",
            "response_status": 200,
            "response_reason": "OK",
            "response_body_size": 2326,
            "request_method": "GET",
            "request_protocol": "HTTP/1.1",
            "fastly_server": "cache-sjc3128",
            "host": "www.example.com"
        });
        assert_eq!(v, want);
        // A status without a reason phrase, a shielded request, hostile text.
        let mut f = sample();
        f.status = 599;
        f.request_headers
            .push(("fastly-ff", b"cache-sjc1-SJC".to_vec()));
        f.request_headers
            .push(("fastly-orig-host", b"orig.example".to_vec()));
        f.path = "/\"}\n".into();
        let line = Template::parse(&example).expect("parse").render(&f);
        let v: serde_json::Value = serde_json::from_str(&line).expect(&line);
        assert_eq!(v["response_reason"], serde_json::Value::Null);
        assert_eq!(v["fastly_is_edge"], false);
        assert_eq!(v["host"], "orig.example");
        assert_eq!(v["url"], "/\"}\n?a=1&token=s3cr3t");
    }

    /// The fuzz target's seeds and every input it ever found a crash with (on the host: the
    /// inputs are files).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn fuzz_inputs_replay() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut n = 0;
        for dir in ["seeds", "regressions"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("fuzz inputs") {
                let data = std::fs::read(entry.expect("entry").path()).expect("input");
                check_invariants(&String::from_utf8_lossy(&data));
                n += 1;
            }
        }
        assert!(n >= 5, "only {n} inputs");
    }

    #[test]
    fn expression_errors_name_their_position() {
        // The README's example.
        let e = Template::parse(r#"%{if(req.url "a", "b")}V"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"placeholder %{if(req.url "a", "b")}V at position 14: expected "," or ")" after an argument"#
        );
        let e = Template::parse(r#"x %{"}" + nope}V"#).unwrap_err();
        assert_eq!(e.position, 11);
        assert!(e.reason.contains("unknown variable \"nope\""), "{e}");
        let e = Template::parse(r#"%{{"never closed}V"#).unwrap_err();
        assert_eq!(e.reason, "unterminated {");
    }

    #[test]
    fn request_text_is_escaped_and_literals_stay_on_one_line() {
        let mut f = sample();
        f.path = "/a\"b\nc".into();
        f.request_headers.push(("x-evil", b"\r\n\0\xff".to_vec()));
        let line = Template::parse("%U %{X-Evil}i lit\nline")
            .expect("parse")
            .render(&f);
        assert_eq!(line, "/a\\\"b\\nc \\r\\n\\x00\u{fffd} lit line");
    }

    #[test]
    fn long_lines_are_cut_with_a_marker() {
        let mut f = sample();
        f.request_headers
            .push(("x-big", vec![b'x'; 2 * MAX_LINE_BYTES]));
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
        assert_eq!((e.placeholder.as_str(), e.position), ("%{nope.var}V", 5));
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
