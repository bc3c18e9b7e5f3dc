//! The format-string engine: the placeholders of Fastly's VCL log `format`, for Compute.
//!
//! A format string is parsed once into [`Template`] pieces; rendering a request is then a walk
//! over the pieces with no parsing. Invariants: a template renders to exactly one line (literals
//! lose their line breaks at parse time, request text is escaped at render time), and a bad format
//! string is an error that names the placeholder and its position, never a panic.

mod invariants;
mod parse;
mod render;
mod template;
#[cfg(test)]
mod tests;

pub use invariants::check_invariants;
pub use parse::FormatError;
pub use template::Template;
