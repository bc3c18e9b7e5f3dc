//! What any format string must give, checked on a hostile request: the fuzz target's check, and
//! the replay of its inputs.

use super::template::Template;
use crate::escape::MAX_LINE_BYTES;
use crate::facts::Facts;

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

/// The fuzz target's seeds and every input it ever found a crash with (on the host: the inputs
/// are files).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

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
}
