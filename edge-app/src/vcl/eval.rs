//! An expression's value for a request, and how it is written into the line: request text
//! escaped, text the expression made itself as it is.

use super::ast::{Cmp, Expr};
use crate::escape::{push_apache_escaped, push_json_escaped, single_line};
use crate::facts::Facts;
use crate::vars::Value;
use std::borrow::Cow;
use std::fmt::Write;

impl Expr {
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
