//! VCL expressions, as VCL `format` strings write them inside `%{...}V`: variables, string
//! literals (`"..."` with `%XX` escapes, `{"..."}` long strings), `+` concatenation, comparisons,
//! `&&`, `||`, `!`, the truthiness of a variable (set and not empty), and the functions `if`,
//! `strftime`, `json.escape`, `std.tolower`, `std.toupper`.
//!
//! An expression is parsed once; evaluating it for a request allocates only for what it builds.
//! Invariant: request text reaches the line escaped (Apache-style) unless an expression escaped
//! it itself with `json.escape`; literals and function results are written as they are, minus
//! line breaks, so a line stays one line whatever the expression.

use crate::escape::{push_apache_escaped, push_json_escaped, single_line};
use crate::facts::Facts;
use crate::percent;
use crate::timefmt::TimeFormat;
use crate::vars::{lookup, Value, Var};
use std::borrow::Cow;
use std::fmt::Write;

/// A parse error: where in the expression (0-based character offset) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub offset: usize,
    pub reason: String,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A string literal, already decoded.
    Lit(String),
    Int(i64),
    Var(Var),
    Concat(Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Cmp, Box<Expr>, Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    JsonEscape(Box<Expr>),
    Lower(Box<Expr>),
    Upper(Box<Expr>),
    /// `strftime({"format"}, time.start)`: the format, and whether the time is `time.end`.
    Strftime(TimeFormat, bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Int(i64),
    Ident(String),
    Op(&'static str),
}

const OPS: [&str; 13] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "(", ")", ",",
];

/// Splits an expression into tokens, each with its character offset.
fn tokens(text: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let err = |offset: usize, reason: &str| ExprError {
        offset,
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // `{"...."}`, also written `\{"...."\}` (as some documents escape braces).
        let long = match (c, chars.get(i + 1), chars.get(i + 2)) {
            ('{', Some('"'), _) => Some(i + 2),
            ('\\', Some('{'), Some('"')) => Some(i + 3),
            _ => None,
        };
        if let Some(body) = long {
            let mut j = body;
            loop {
                match (chars.get(j), chars.get(j + 1), chars.get(j + 2)) {
                    (Some('"'), Some('}'), _) => {
                        out.push((start, Tok::Str(chars[body..j].iter().collect())));
                        i = j + 2;
                        break;
                    }
                    (Some('"'), Some('\\'), Some('}')) => {
                        out.push((start, Tok::Str(chars[body..j].iter().collect())));
                        i = j + 3;
                        break;
                    }
                    (None, _, _) => return Err(err(start, "unterminated {\"...\"} string")),
                    _ => j += 1,
                }
            }
            continue;
        }
        if c == '"' {
            let Some(len) = chars[i + 1..].iter().position(|&c| c == '"') else {
                return Err(err(start, "unterminated \"...\" string"));
            };
            let raw: String = chars[i + 1..i + 1 + len].iter().collect();
            out.push((start, Tok::Str(percent::decode(&raw))));
            i += len + 2;
            continue;
        }
        if c.is_ascii_digit() {
            let len = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let digits: String = chars[i..i + len].iter().collect();
            let n = digits
                .parse()
                .map_err(|_| err(start, "number out of range"))?;
            out.push((start, Tok::Int(n)));
            i += len;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let len = chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
                .count();
            out.push((start, Tok::Ident(chars[i..i + len].iter().collect())));
            i += len;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                out.push((start, Tok::Op(op)));
                i += op.len();
            }
            None => return Err(err(start, &format!("unexpected {c:?}"))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |(o, _)| *o)
    }

    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError {
            offset: self.offset(),
            reason: reason.into(),
        })
    }

    fn eat(&mut self, op: &str) -> bool {
        let found = matches!(self.peek(), Some(Tok::Op(o)) if *o == op);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, op: &str, what: &str) -> Result<(), ExprError> {
        if self.eat(op) {
            Ok(())
        } else {
            self.fail(format!("expected {op:?} {what}"))
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut left = self.not()?;
        while self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ExprError> {
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ExprError> {
        let left = self.concat()?;
        let op = match self.peek() {
            Some(Tok::Op("==")) => Cmp::Eq,
            Some(Tok::Op("!=")) => Cmp::Ne,
            Some(Tok::Op("<")) => Cmp::Lt,
            Some(Tok::Op(">")) => Cmp::Gt,
            Some(Tok::Op("<=")) => Cmp::Le,
            Some(Tok::Op(">=")) => Cmp::Ge,
            _ => return Ok(left),
        };
        self.at += 1;
        let right = self.concat()?;
        Ok(Expr::Compare(op, Box::new(left), Box::new(right)))
    }

    fn concat(&mut self) -> Result<Expr, ExprError> {
        let first = self.primary()?;
        if self.peek() != Some(&Tok::Op("+")) {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat("+") {
            parts.push(self.primary()?);
        }
        Ok(Expr::Concat(parts))
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let start = self.offset();
        let Some((_, tok)) = self.toks.get(self.at).cloned() else {
            return self.fail("expected a value (a variable, a string, a number or a function)");
        };
        self.at += 1;
        match tok {
            Tok::Str(s) => Ok(Expr::Lit(single_line(&s))),
            Tok::Int(n) => Ok(Expr::Int(n)),
            Tok::Op("(") => {
                let inner = self.or()?;
                self.expect(")", "to close \"(\"")?;
                Ok(inner)
            }
            Tok::Op(op) => {
                self.at -= 1;
                self.fail(format!("expected a value, found {op:?}"))
            }
            Tok::Ident(name) if self.peek() == Some(&Tok::Op("(")) => {
                self.at += 1;
                self.call(&name, start)
            }
            Tok::Ident(name) => match lookup(&name) {
                Some(v) => Ok(Expr::Var(v)),
                None => Err(ExprError {
                    offset: start,
                    reason: format!(
                        "unknown variable {name:?} (see the README for the supported set)"
                    ),
                }),
            },
        }
    }

    /// A function call, after its `(`.
    fn call(&mut self, name: &str, start: usize) -> Result<Expr, ExprError> {
        let mut args = Vec::new();
        if !self.eat(")") {
            loop {
                args.push((self.offset(), self.or()?));
                if self.eat(")") {
                    break;
                }
                self.expect(",", "or \")\" after an argument")?;
            }
        }
        let lower = name.to_ascii_lowercase();
        let want = match lower.as_str() {
            "if" => 3,
            "strftime" => 2,
            "json.escape" | "std.tolower" | "std.toupper" => 1,
            _ => {
                return Err(ExprError {
                    offset: start,
                    reason: format!(
                        "unknown function {name:?} (if, strftime, json.escape, std.tolower, std.toupper)"
                    ),
                })
            }
        };
        if args.len() != want {
            return Err(ExprError {
                offset: start,
                reason: format!("{name} takes {want} argument(s), got {}", args.len()),
            });
        }
        let mut args = args.into_iter();
        let mut next = || args.next().map(|(_, e)| e).unwrap_or(Expr::Int(0));
        Ok(match lower.as_str() {
            "if" => Expr::If(Box::new(next()), Box::new(next()), Box::new(next())),
            "json.escape" => Expr::JsonEscape(Box::new(next())),
            "std.tolower" => Expr::Lower(Box::new(next())),
            "std.toupper" => Expr::Upper(Box::new(next())),
            _ => {
                let fmt = match next() {
                    Expr::Lit(s) => s,
                    _ => {
                        return Err(ExprError {
                            offset: start,
                            reason: "strftime's first argument must be a string".into(),
                        })
                    }
                };
                let at_end = match next() {
                    Expr::Var(Var::TimeStart) => false,
                    Expr::Var(Var::TimeEnd) => true,
                    _ => {
                        return Err(ExprError {
                            offset: start,
                            reason: "strftime's second argument must be time.start or time.end"
                                .into(),
                        })
                    }
                };
                let tf = TimeFormat::parse(&fmt).map_err(|reason| ExprError {
                    offset: start,
                    reason,
                })?;
                Expr::Strftime(tf, at_end)
            }
        })
    }
}

impl Expr {
    /// Parses the inside of a `%{...}V`.
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let toks = tokens(text)?;
        let mut p = Parser {
            toks,
            at: 0,
            end: text.chars().count(),
        };
        let e = p.or()?;
        if p.at < p.toks.len() {
            return p.fail("expected the end of the expression (an operator missing?)");
        }
        Ok(e)
    }

    /// Writes the expression's value for `f` into the line.
    pub fn render(&self, out: &mut String, f: &Facts) {
        // The common cases, without building a value.
        match self {
            Expr::Var(v) => return write_value(out, v.value(f)),
            Expr::JsonEscape(inner) => {
                if let Expr::Var(v) = &**inner {
                    if let Value::Text(t) = v.value(f) {
                        push_json_escaped(out, &t);
                    }
                    return;
                }
            }
            _ => {}
        }
        match self.eval(f) {
            Val::NotSet => out.push('-'),
            Val::Bool(b) => out.push(if b { '1' } else { '0' }),
            Val::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Val::Float(x) => {
                let _ = write!(out, "{x}");
            }
            Val::Text(segs) => {
                for s in segs {
                    match s {
                        Seg::Safe(t) => out.push_str(&t),
                        Seg::Raw(t) => push_apache_escaped(out, &t),
                    }
                }
            }
        }
    }

    fn eval<'a>(&'a self, f: &'a Facts) -> Val<'a> {
        match self {
            Expr::Lit(s) => Val::Text(vec![Seg::Safe(Cow::Borrowed(s))]),
            Expr::Int(n) => Val::Int(*n),
            Expr::Var(v) => match v.value(f) {
                Value::Text(t) => Val::Text(vec![Seg::Raw(t)]),
                Value::Int(n) => Val::Int(n),
                Value::Float(x) => Val::Float(x),
                Value::NotSet => Val::NotSet,
            },
            Expr::Concat(parts) => {
                let mut segs = Vec::new();
                for p in parts {
                    p.eval(f).append_to(&mut segs);
                }
                Val::Text(segs)
            }
            Expr::Not(e) => Val::Bool(!e.eval(f).truthy()),
            Expr::And(a, b) => Val::Bool(a.eval(f).truthy() && b.eval(f).truthy()),
            Expr::Or(a, b) => Val::Bool(a.eval(f).truthy() || b.eval(f).truthy()),
            Expr::Compare(op, a, b) => Val::Bool(compare(*op, &a.eval(f), &b.eval(f))),
            Expr::If(c, a, b) => {
                if c.eval(f).truthy() {
                    a.eval(f)
                } else {
                    b.eval(f)
                }
            }
            Expr::JsonEscape(e) => {
                let mut escaped = String::new();
                push_json_escaped(&mut escaped, &e.eval(f).text());
                Val::Text(vec![Seg::Safe(Cow::Owned(escaped))])
            }
            Expr::Lower(e) => e.eval(f).map_text(|t| t.to_lowercase()),
            Expr::Upper(e) => e.eval(f).map_text(|t| t.to_uppercase()),
            Expr::Strftime(tf, at_end) => {
                let mut s = String::new();
                tf.render(&mut s, if *at_end { f.end } else { f.start });
                if s.contains(['\n', '\r', '\0']) {
                    s = single_line(&s);
                }
                Val::Text(vec![Seg::Safe(Cow::Owned(s))])
            }
        }
    }
}

/// A piece of text: written as it is, or escaped as request text.
#[derive(Debug, Clone)]
enum Seg<'a> {
    Safe(Cow<'a, str>),
    Raw(Cow<'a, str>),
}

impl Seg<'_> {
    fn as_str(&self) -> &str {
        match self {
            Seg::Safe(t) | Seg::Raw(t) => t,
        }
    }
}

/// A value while an expression is evaluated.
#[derive(Debug, Clone)]
enum Val<'a> {
    Text(Vec<Seg<'a>>),
    Int(i64),
    Float(f64),
    Bool(bool),
    NotSet,
}

impl<'a> Val<'a> {
    /// VCL's truthiness: set and not empty; a number is true when not 0.
    fn truthy(&self) -> bool {
        match self {
            Val::Text(segs) => segs.iter().any(|s| !s.as_str().is_empty()),
            Val::Int(n) => *n != 0,
            Val::Float(x) => *x != 0.0,
            Val::Bool(b) => *b,
            Val::NotSet => false,
        }
    }

    /// As text (not set: empty).
    fn text(&self) -> Cow<'_, str> {
        match self {
            Val::Text(segs) if segs.len() == 1 => Cow::Borrowed(segs[0].as_str()),
            Val::Text(segs) => Cow::Owned(segs.iter().map(Seg::as_str).collect()),
            Val::Int(n) => Cow::Owned(itoa::Buffer::new().format(*n).to_owned()),
            Val::Float(x) => Cow::Owned(x.to_string()),
            Val::Bool(b) => Cow::Borrowed(if *b { "1" } else { "0" }),
            Val::NotSet => Cow::Borrowed(""),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Val::Int(n) => Some(*n as f64),
            Val::Float(x) => Some(*x),
            Val::Bool(b) => Some(f64::from(u8::from(*b))),
            Val::Text(_) => self.text().trim().parse().ok(),
            Val::NotSet => None,
        }
    }

    fn append_to(self, segs: &mut Vec<Seg<'a>>) {
        match self {
            Val::Text(mut s) => segs.append(&mut s),
            Val::NotSet => {}
            other => segs.push(Seg::Safe(Cow::Owned(other.text().into_owned()))),
        }
    }

    fn map_text(self, f: impl Fn(&str) -> String) -> Val<'a> {
        match self {
            Val::Text(segs) => Val::Text(
                segs.into_iter()
                    .map(|s| match s {
                        Seg::Safe(t) => Seg::Safe(Cow::Owned(f(&t))),
                        Seg::Raw(t) => Seg::Raw(Cow::Owned(f(&t))),
                    })
                    .collect(),
            ),
            other => other,
        }
    }
}

/// Numbers compare as numbers (a text that reads as one too); anything else as text.
fn compare(op: Cmp, a: &Val<'_>, b: &Val<'_>) -> bool {
    let numeric =
        matches!(a, Val::Int(_) | Val::Float(_)) || matches!(b, Val::Int(_) | Val::Float(_));
    let ord = match (numeric, a.number(), b.number()) {
        (true, Some(x), Some(y)) => x.partial_cmp(&y),
        _ => Some(a.text().cmp(&b.text())),
    };
    let Some(ord) = ord else {
        return op == Cmp::Ne;
    };
    match op {
        Cmp::Eq => ord.is_eq(),
        Cmp::Ne => ord.is_ne(),
        Cmp::Lt => ord.is_lt(),
        Cmp::Gt => ord.is_gt(),
        Cmp::Le => ord.is_le(),
        Cmp::Ge => ord.is_ge(),
    }
}

/// A variable's value into the line: text escaped, not set as `-`.
fn write_value(out: &mut String, v: Value<'_>) {
    match v {
        Value::Text(t) => push_apache_escaped(out, &t),
        Value::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Float(x) => {
            let _ = write!(out, "{x}");
        }
        Value::NotSet => out.push('-'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::tests::sample;

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
}
