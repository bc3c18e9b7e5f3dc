//! What a parsed expression is: its nodes, its comparison operators, and its parse error.

use crate::timefmt::TimeFormat;
use crate::vars::Var;

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
