//! The expression language from its text to the line: values, functions, conditions, escaping,
//! and the errors of every kind of mistake.

use super::ast::{Expr, ExprError};
use crate::facts::tests::sample;
use crate::facts::Facts;

fn render_with(text: &str, f: &Facts) -> String {
    let mut out = String::new();
    Expr::parse(text).expect(text).render(&mut out, f);
    out
}

fn render(text: &str) -> String {
    render_with(text, &sample())
}

fn error(text: &str) -> ExprError {
    Expr::parse(text).expect_err(text)
}

#[test]
fn literals_concatenation_and_functions() {
    let cases: &[(&str, &str)] = &[
        (r#""a" + "b""#, "ab"),
        (r#""%22quoted%22""#, "\"quoted\""),
        (r#"{"long "string""}"#, "long \"string\""),
        (r#"\{"escaped braces"\}"#, "escaped braces"),
        ("\"100%\"", "100%"),
        (r#""%zz""#, "%zz"),
        (
            r#"std.toupper(req.method) + " " + std.tolower("ABC")"#,
            "GET abc",
        ),
        (
            r#"json.escape(req.http.user-agent + "%22")"#,
            "curl/8.5.0\\\"",
        ),
        (
            r#"strftime({"%Y-%m-%dT%H:%M:%S%z"}, time.start)"#,
            "2000-10-10T13:55:36+0000",
        ),
        (r#"strftime("%s", time.end)"#, "971186136"),
        ("resp.status", "200"),
        ("resp.status + 1", "2001"),
        ("client.geo.latitude", "37.77869"),
        ("(resp.status)", "200"),
    ];
    for (text, want) in cases {
        assert_eq!(&render(text), want, "{text}");
    }
}

/// What `%` does in a `"..."` string: `%XX` (either case) is the byte it names; a `%` without
/// two hex digits after it stays; bytes that are not UTF-8 become U+FFFD; `+` is a `+`.
#[test]
fn percent_escapes_in_strings() {
    let cases: &[(&str, &str)] = &[
        (r#""%41%4a%4A""#, "AJJ"),
        (r#""%zz %4 %""#, "%zz %4 %"),
        (r#""%%41 %4%41""#, "%A %4A"),
        (r#""%+1 %-1 %+a""#, "%+1 %-1 %+a"),
        (r#""a+b %2B""#, "a+b +"),
        (r#""%C3%A9 %e9 %FF%FE""#, "é \u{fffd} \u{fffd}\u{fffd}"),
        (r#""%é1 é%41""#, "%é1 éA"),
        (r#""%00|%09|%0D""#, "\\x00|\t|\\r"),
        (
            r#"{"%41 stays in long strings"}"#,
            "%41 stays in long strings",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(&render(text), want, "{text}");
    }
}

#[test]
fn conditions_comparisons_and_truthiness() {
    let cases: &[(&str, &str)] = &[
        (r#"if(req.http.host, "set", "unset")"#, "set"),
        (r#"if(req.http.x-missing, "set", "unset")"#, "unset"),
        (r#"if(req.http.x-empty, "set", "unset")"#, "unset"),
        (r#"if(!req.http.x-missing, "y", "n")"#, "y"),
        (r#"if(resp.status == 200, "ok", "no")"#, "ok"),
        (r#"if(resp.status != 200, "ok", "no")"#, "no"),
        (r#"if(resp.status >= 500, "err", "fine")"#, "fine"),
        (
            r#"if(resp.status < 300 && req.method == "GET", "a", "b")"#,
            "a",
        ),
        (
            r#"if(resp.status > 300 || req.method == "GET", "a", "b")"#,
            "a",
        ),
        (
            r#"if(resp.status <= 199 || !(req.method == "GET"), "a", "b")"#,
            "b",
        ),
        (
            r#"if(resp.http.content-length == 2326, "num", "text")"#,
            "num",
        ),
        (
            r#"if("10" < "9", "text order", "number order")"#,
            "text order",
        ),
        (
            r#"if(fastly.ff.visits_this_service == 0, "true", "false")"#,
            "true",
        ),
        (r#"resp.status == 200"#, "1"),
        (
            r#"if(resp.response, "%22" + json.escape(resp.response) + "%22", "null")"#,
            "\"OK\"",
        ),
        (
            r#"if(req.http.Fastly-Orig-Host, req.http.Fastly-Orig-Host, req.http.Host)"#,
            "www.example.com",
        ),
    ];
    let mut f = sample();
    f.request_headers.push(("x-empty", Vec::new()));
    for (text, want) in cases {
        assert_eq!(&render_with(text, &f), want, "{text}");
    }
}

#[test]
fn request_text_is_escaped_and_lines_stay_one_line() {
    let mut f = sample();
    f.request_headers.push(("x-evil", b"a\"b\nc\\".to_vec()));
    assert_eq!(render_with("req.http.x-evil", &f), "a\\\"b\\nc\\\\");
    assert_eq!(
        render_with(r#""<" + req.http.x-evil + ">""#, &f),
        "<a\\\"b\\nc\\\\>"
    );
    assert_eq!(
        render_with("json.escape(req.http.x-evil)", &f),
        "a\\\"b\\nc\\\\"
    );
    assert_eq!(render_with(r#""line%0Abreak""#, &f), "line\\nbreak");
    assert_eq!(
        render_with("std.toupper(req.http.x-evil)", &f),
        "A\\\"B\\nC\\\\"
    );
    assert_eq!(render_with("req.http.x-missing", &f), "-");
    assert_eq!(render_with("json.escape(req.http.x-missing)", &f), "");
}

#[test]
fn every_mistake_names_where_and_what_was_expected() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "expected a value"),
        ("req.method ==", 13, "expected a value"),
        ("if(req.method, \"a\")", 0, "if takes 3 argument(s), got 2"),
        ("json.escape()", 0, "json.escape takes 1 argument(s), got 0"),
        ("nope(req.url)", 0, "unknown function \"nope\""),
        ("req.nope", 0, "unknown variable \"req.nope\""),
        ("\"open", 0, "unterminated \"...\" string"),
        ("{\"open", 0, "unterminated {\"...\"} string"),
        ("(req.url", 8, "expected \")\" to close"),
        ("if(req.url \"a\", \"b\")", 11, "expected \",\" or \")\""),
        (
            "req.url req.method",
            8,
            "expected the end of the expression",
        ),
        ("req.url $", 8, "unexpected '$'"),
        (
            "strftime(req.url, time.start)",
            0,
            "first argument must be a string",
        ),
        ("strftime(\"%Y\", req.url)", 0, "time.start or time.end"),
        ("strftime(\"%Q\", time.start)", 0, "%Q"),
        ("== 1", 0, "expected a value, found \"==\""),
        ("99999999999999999999", 0, "number out of range"),
    ];
    for (text, offset, reason) in cases {
        let e = error(text);
        assert!(
            e.offset == *offset && e.reason.contains(reason),
            "{text}: {e:?}"
        );
    }
}
