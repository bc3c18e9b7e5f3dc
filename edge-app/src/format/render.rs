//! Pieces into a line: each piece's value for a request, request text escaped.

use super::template::{Piece, Template};
use crate::escape::{cut_line, push_apache_escaped, MAX_LINE_BYTES};
use crate::facts::Facts;
use crate::timefmt::clf;
use std::fmt::Write;

impl Template {
    /// Renders one line for a request, at most [`MAX_LINE_BYTES`] long.
    pub fn render(&self, f: &Facts) -> String {
        let mut out = String::with_capacity(256);
        for piece in &self.pieces {
            render_piece(&mut out, piece, f);
        }
        cut_line(&mut out, MAX_LINE_BYTES);
        out
    }
}

/// Request text, escaped; `-` when there is none.
fn push_text(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => push_apache_escaped(out, v),
        None => out.push('-'),
    }
}

fn push_num(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

fn render_piece(out: &mut String, piece: &Piece, f: &Facts) {
    match piece {
        Piece::Literal(s) => out.push_str(s),
        Piece::ClientIp => push_ip(out, f.client_ip),
        Piece::ServerIp => push_ip(out, f.server_ip),
        Piece::BodyBytes { dash_for_zero } => {
            if *dash_for_zero && f.response_body_bytes == 0 {
                out.push('-')
            } else {
                push_num(out, f.response_body_bytes)
            }
        }
        Piece::Cookie(name) => push_text(out, f.cookie(name).as_deref()),
        Piece::Field(name) => match f.field(name) {
            Some(serde_json::Value::String(s)) => push_apache_escaped(out, s),
            Some(v) => push_apache_escaped(out, &v.to_string()),
            None => out.push('-'),
        },
        Piece::ElapsedUs => push_num(out, f.elapsed_us),
        Piece::Path => push_apache_escaped(out, &f.path),
        Piece::Protocol => push_apache_escaped(out, &f.protocol),
        Piece::ReqHeader(name) => push_text(out, f.request_header(name).as_deref()),
        Piece::BytesIn => push_num(out, f.request_header_bytes + f.request_body_bytes),
        Piece::Method => push_apache_escaped(out, &f.method),
        Piece::RespHeader(name) => push_text(out, f.response_header(name).as_deref()),
        Piece::BytesOut => push_num(out, f.response_header_bytes + f.response_body_bytes),
        Piece::Port { remote } => out.push_str(if *remote { "-" } else { "80" }),
        Piece::Query => {
            if let Some(q) = &f.query {
                out.push('?');
                push_apache_escaped(out, q);
            }
        }
        Piece::RequestLine => {
            push_apache_escaped(out, &f.method);
            out.push(' ');
            push_apache_escaped(out, &f.url());
            out.push(' ');
            push_apache_escaped(out, &f.protocol);
        }
        Piece::Status => push_num(out, f.status),
        Piece::ClfTime => out.push_str(&clf(f.start)),
        Piece::Time(tf) => tf.render(out, if tf.at_end { f.end } else { f.start }),
        Piece::ElapsedSec => push_num(out, f.elapsed_us / 1_000_000),
        Piece::Host => push_apache_escaped(out, &f.host()),
        Piece::Const(c) => out.push_str(c),
        Piece::Expr(e) => e.render(out, f),
    }
}

fn push_ip(out: &mut String, ip: Option<std::net::IpAddr>) {
    match ip {
        // Writing to a String cannot fail.
        Some(ip) => {
            let _ = write!(out, "{ip}");
        }
        None => out.push('-'),
    }
}
