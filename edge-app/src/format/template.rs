//! What a parsed format string is: the pieces a line is rendered from, in order.

use crate::timefmt::TimeFormat;
use crate::vcl::Expr;

/// One piece of a line: text of the format string's own, or a value of the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Literal(String),
    ClientIp,
    ServerIp,
    /// `%B` (0 as 0) and `%b` (0 as `-`).
    BodyBytes {
        dash_for_zero: bool,
    },
    Cookie(String),
    /// `%{name}n`: one of the app's own fields.
    Field(String),
    ElapsedUs,
    Path,
    Protocol,
    ReqHeader(String),
    BytesIn,
    Method,
    RespHeader(String),
    BytesOut,
    Port {
        remote: bool,
    },
    Query,
    RequestLine,
    Status,
    ClfTime,
    Time(TimeFormat),
    ElapsedSec,
    Host,
    Const(&'static str),
    /// `%{...}V`: a VCL expression.
    Expr(Expr),
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub(super) pieces: Vec<Piece>,
}
