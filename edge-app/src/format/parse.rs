//! A format string into pieces: each placeholder checked and its argument read, the text between
//! kept as literals.

use super::template::{Piece, Template};
use crate::escape::single_line;
use crate::timefmt::TimeFormat;
use crate::vcl::Expr;
use std::fmt;

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
