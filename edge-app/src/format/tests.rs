//! Format strings from their text to the line: every placeholder, the documented examples,
//! escaping, the line limit, and the errors.

use super::Template;
use crate::escape::MAX_LINE_BYTES;
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

/// The example of `docs/edge-library.md`: Fastly's JSON log format for VCL services, as
/// documented.
fn vcl_json_example() -> String {
    let doc = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/edge-library.md"
    ));
    let after = doc
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

#[test]
fn expression_errors_name_their_position() {
    // The example of docs/edge-library.md.
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
