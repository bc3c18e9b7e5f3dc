//! The functions an expression can call: their names (any case), how many arguments each takes
//! and what those must be; a call becomes a node of its own.

use super::ast::{Expr, ExprError};
use crate::timefmt::TimeFormat;
use crate::vars::Var;

/// The node for a call of `name` with `args`; `start` (where the call starts) is the offset of
/// its errors.
pub fn call(name: &str, start: usize, args: Vec<Expr>) -> Result<Expr, ExprError> {
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
    let mut next = || args.next().unwrap_or(Expr::Int(0));
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
                        reason: "strftime's second argument must be time.start or time.end".into(),
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
