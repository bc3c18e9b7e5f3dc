//! VCL expressions, as VCL `format` strings write them inside `%{...}V`: variables, string
//! literals (`"..."` with `%XX` escapes, `{"..."}` long strings), `+` concatenation, comparisons,
//! `&&`, `||`, `!`, the truthiness of a variable (set and not empty), and the functions `if`,
//! `strftime`, `json.escape`, `std.tolower`, `std.toupper`.
//!
//! An expression is parsed once; evaluating it for a request allocates only for what it builds.
//! Invariant: request text reaches the line escaped (Apache-style) unless an expression escaped
//! it itself with `json.escape`; literals and function results are written as they are, minus
//! line breaks, so a line stays one line whatever the expression.

mod ast;
mod eval;
mod functions;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

pub use ast::Expr;
