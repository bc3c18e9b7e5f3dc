//! An expression's text as tokens: strings (their `%XX` escapes decoded), numbers, names and
//! operators, each with its character offset.

use super::ast::ExprError;
use crate::percent;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    Str(String),
    Int(i64),
    Ident(String),
    Op(&'static str),
}

const OPS: [&str; 13] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "(", ")", ",",
];

/// Splits an expression into tokens, each with its character offset.
pub fn tokens(text: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
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
