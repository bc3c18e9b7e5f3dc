//! The grammar: tokens into an expression, by precedence from `||` (lowest) through `&&`, `!`,
//! comparisons and `+` to values, parentheses and calls.

use super::ast::{Cmp, Expr, ExprError};
use super::functions;
use super::lexer::{tokens, Tok};
use crate::escape::single_line;
use crate::vars::lookup;

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
                        "unknown variable {name:?} (the supported set: https://github.com/edgelog/edgelog/blob/main/docs/edge-library.md#variables)"
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
                args.push(self.or()?);
                if self.eat(")") {
                    break;
                }
                self.expect(",", "or \")\" after an argument")?;
            }
        }
        functions::call(name, start, args)
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
}
