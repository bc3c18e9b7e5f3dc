//! Turns one request body, as Fastly's HTTPS logging sends it, into a [`LineBatch`].
//!
//! Stages: pick the codec (Content-Encoding, else the magic bytes), decompress with a hard size
//! limit (a gzip bomb stops at the limit, never inflates further), then frame: newline-delimited
//! lines (json_format 0 and 2) or one JSON array (json_format 1), without the syslog-style
//! prefix Fastly puts before each line for `message_type` classic, loggly or logplex (unless
//! `strip_prefix: false`). Pure functions over bytes; this is the fuzzed surface.
//!
//! Invariants: every non-empty input line ends up in the batch, in order (lines over
//! `max_line_bytes` too: they are counted in `oversized`, and set aside later, on the output
//! side); bytes are passed through unchanged (logs are bytes, not text) except for a trailing
//! `\r` and a prefix of exactly one of the known shapes; JSON-array elements become compact JSON
//! lines.

pub use crate::config::Framing;
use crate::lines::{LineBatch, LineBatchBuilder};
use bytes::Bytes;
use std::io::Read;

/// gzip member header.
pub const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// zstd frame header.
pub const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Snappy framing format stream identifier.
pub const SNAPPY_FRAMED_MAGIC: &[u8] =
    &[0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59];

/// Decompression grows the output in steps of this size, asking the memory budget each time.
const GROW_STEP: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Identity,
    Gzip,
    Zstd,
    SnappyFramed,
    SnappyRaw,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Identity => "identity",
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::SnappyFramed | Codec::SnappyRaw => "snappy",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unsupported Content-Encoding {0:?} (supported: gzip, zstd, snappy, identity)")]
    UnsupportedEncoding(String),
    #[error("corrupt {codec} body: {detail}")]
    Corrupt { codec: &'static str, detail: String },
    #[error("body is larger than {limit} bytes after decompression")]
    TooLarge { limit: usize },
    #[error("body is not a valid JSON array: {0}")]
    InvalidJsonArray(String),
    #[error("memory budget for bodies in flight is exhausted")]
    OverBudget,
}

/// Options for cutting a body into lines.
#[derive(Debug, Clone, Copy)]
pub struct FrameOptions {
    pub framing: Framing,
    /// The request's Content-Type says JSON.
    pub json_content_type: bool,
    /// Remove Fastly's syslog-style prefix (classic, loggly, logplex) where a line has one.
    pub strip_prefix: bool,
    /// Lines longer than this are counted in `oversized`.
    pub max_line_bytes: usize,
}

/// A framed body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Framed {
    pub batch: LineBatch,
    /// Lines over `max_line_bytes` (kept in the batch; the output side dead-letters them).
    pub oversized: usize,
    /// Lines whose prefix was removed.
    pub stripped: usize,
    /// Whether the body was a JSON array.
    pub json_array: bool,
}

/// Picks the codec from the Content-Encoding header, or from the magic bytes when there is none.
pub fn select_codec(content_encoding: Option<&[u8]>, body: &[u8]) -> Result<Codec, DecodeError> {
    let Some(raw) = content_encoding else {
        return Ok(sniff(body));
    };
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    let mut codec = Codec::Identity;
    for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let this = match token {
            "identity" => continue,
            "gzip" | "x-gzip" => Codec::Gzip,
            "zstd" => Codec::Zstd,
            "snappy" | "x-snappy" => {
                if body.starts_with(SNAPPY_FRAMED_MAGIC) {
                    Codec::SnappyFramed
                } else {
                    Codec::SnappyRaw
                }
            }
            "x-snappy-framed" | "snappy-framed" => Codec::SnappyFramed,
            other => return Err(DecodeError::UnsupportedEncoding(other.to_string())),
        };
        if codec != Codec::Identity {
            return Err(DecodeError::UnsupportedEncoding(text.clone()));
        }
        codec = this;
    }
    Ok(codec)
}

fn sniff(body: &[u8]) -> Codec {
    if body.starts_with(GZIP_MAGIC) {
        Codec::Gzip
    } else if body.starts_with(ZSTD_MAGIC) {
        Codec::Zstd
    } else if body.starts_with(SNAPPY_FRAMED_MAGIC) {
        Codec::SnappyFramed
    } else {
        Codec::Identity
    }
}

/// Decompresses `body` to at most `limit` bytes. `reserve(n)` is asked before the output grows
/// by `n` bytes and may refuse (memory budget); identity bodies are returned as they are.
pub fn decompress(
    codec: Codec,
    body: Bytes,
    limit: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Bytes, DecodeError> {
    let corrupt = |e: &dyn std::fmt::Display| DecodeError::Corrupt {
        codec: codec.name(),
        detail: e.to_string(),
    };
    match codec {
        Codec::Identity => {
            if body.len() > limit {
                return Err(DecodeError::TooLarge { limit });
            }
            Ok(body)
        }
        Codec::Gzip => read_limited(
            flate2::read::MultiGzDecoder::new(&body[..]),
            limit,
            reserve,
            codec,
        ),
        Codec::Zstd => {
            let dec =
                zstd::stream::read::Decoder::with_buffer(&body[..]).map_err(|e| corrupt(&e))?;
            read_limited(dec, limit, reserve, codec)
        }
        Codec::SnappyFramed => read_limited(
            snap::read::FrameDecoder::new(&body[..]),
            limit,
            reserve,
            codec,
        ),
        Codec::SnappyRaw => {
            let n = snap::raw::decompress_len(&body).map_err(|e| corrupt(&e))?;
            if n > limit {
                return Err(DecodeError::TooLarge { limit });
            }
            if !reserve(n) {
                return Err(DecodeError::OverBudget);
            }
            let out = snap::raw::Decoder::new()
                .decompress_vec(&body)
                .map_err(|e| corrupt(&e))?;
            Ok(Bytes::from(out))
        }
    }
}

/// Reads a decoder to the end, stopping with `TooLarge` as soon as the output passes `limit`.
fn read_limited(
    mut reader: impl Read,
    limit: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
    codec: Codec,
) -> Result<Bytes, DecodeError> {
    let mut out: Vec<u8> = Vec::new();
    let mut reserved = 0usize;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(Bytes::from(out)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(DecodeError::Corrupt {
                    codec: codec.name(),
                    detail: e.to_string(),
                })
            }
        };
        let need = out.len() + n;
        if need > limit {
            return Err(DecodeError::TooLarge { limit });
        }
        if need > reserved {
            let step = (need - reserved).max(GROW_STEP).min(limit - reserved);
            if !reserve(step) {
                return Err(DecodeError::OverBudget);
            }
            reserved += step;
            out.reserve_exact(reserved - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Cuts a decompressed body into lines.
pub fn frame(body: Bytes, opts: &FrameOptions) -> Result<Framed, DecodeError> {
    if looks_like_json_array(&body, opts) {
        frame_json_array(&body, opts)
    } else {
        Ok(frame_lines(body, opts))
    }
}

fn looks_like_json_array(body: &[u8], opts: &FrameOptions) -> bool {
    match opts.framing {
        Framing::Lines => false,
        Framing::JsonArray => true,
        Framing::Auto => {
            let mut it = body.iter().copied().filter(|b| !b.is_ascii_whitespace());
            match it.next() {
                Some(b'[') => {
                    opts.json_content_type || matches!(it.next(), Some(b'{' | b'"' | b'[' | b']'))
                }
                _ => false,
            }
        }
    }
}

fn frame_lines(body: Bytes, opts: &FrameOptions) -> Framed {
    let mut ends: Vec<u32> = Vec::with_capacity(body.len() / 256 + 1);
    let mut oversized = 0usize;
    let mut stripped = 0usize;
    // Until the first line that needs rewriting, the body itself is the batch (zero copy).
    let mut rewritten: Option<LineBatchBuilder> = None;
    let mut start = 0usize;
    let len = body.len();
    let mut pos_iter = memchr::memchr_iter(b'\n', &body).chain(std::iter::once(len));
    let mut last_kept_end = 0usize;
    while start <= len {
        let Some(nl) = pos_iter.next() else { break };
        let raw = &body[start..nl];
        let mut line = raw;
        if let Some(s) = line.strip_suffix(b"\r") {
            line = s;
        }
        if opts.strip_prefix {
            if let Some(s) = strip_syslog_prefix(line) {
                line = s;
                stripped += 1;
            }
        }
        let line_start = start + (line.as_ptr() as usize - raw.as_ptr() as usize);
        start = nl + 1;
        if line.is_empty() {
            if rewritten.is_none() && !(nl == len && raw.is_empty()) {
                rewritten = Some(builder_from(&body, &ends));
            }
            continue;
        }
        if line.len() > opts.max_line_bytes {
            oversized += 1;
        }
        match &mut rewritten {
            Some(b) => b.push(line),
            None => {
                let expected_start = if ends.is_empty() {
                    0
                } else {
                    last_kept_end + 1
                };
                if line_start == expected_start && line.len() == raw.len() {
                    ends.push((line_start + line.len()) as u32);
                    last_kept_end = line_start + line.len();
                } else {
                    let mut b = builder_from(&body, &ends);
                    b.push(line);
                    rewritten = Some(b);
                }
            }
        }
    }
    let batch = match rewritten {
        Some(b) => b.finish(),
        None => {
            let end = ends.last().map_or(0, |&e| e as usize);
            LineBatch::from_parts(body.slice(0..end), ends)
        }
    };
    Framed {
        batch,
        oversized,
        stripped,
        json_array: false,
    }
}

/// A builder holding the lines accepted so far from the untouched body.
fn builder_from(body: &[u8], ends: &[u32]) -> LineBatchBuilder {
    let kept = ends.last().map_or(0, |&e| e as usize);
    let mut b = LineBatchBuilder::with_capacity(body.len());
    let mut s = 0usize;
    for &e in ends {
        b.push(&body[s..e as usize]);
        s = e as usize + 1;
    }
    debug_assert!(s == kept + 1 || ends.is_empty());
    b
}

/// Most bytes an endpoint name (with `[pid]: `) may take in a classic prefix.
const MAX_ENDPOINT_NAME: usize = 512;

/// Removes the syslog-style prefix Fastly puts before a line, when the line starts with exactly
/// one of these shapes, and returns the rest; `None` leaves the line as it is.
/// - classic: `<134>2016-07-04T22:37:26Z cache-sjc3128 LogTest[62959]: ` (priority, RFC 3339
///   time, cache node, endpoint name, which may contain spaces, and pid);
/// - loggly (RFC 5424 with structured data):
///   `<134>1 2016-07-04T22:37:26Z cache-sjc3128 LogTest 62959 - [token@41058] ` or with `-`
///   for no structured data;
/// - logplex (RFC 5424 without structured data):
///   `<134>1 2016-07-04T22:37:26Z cache-sjc3128 LogTest 62959 - `.
pub fn strip_syslog_prefix(line: &[u8]) -> Option<&[u8]> {
    fn token(s: &[u8]) -> Option<(&[u8], &[u8])> {
        let sp = memchr::memchr(b' ', s)?;
        (sp > 0).then(|| (&s[..sp], &s[sp + 1..]))
    }
    fn is_time(t: &[u8]) -> bool {
        t.len() >= 20
            && t[..4].iter().all(u8::is_ascii_digit)
            && t[4] == b'-'
            && t[7] == b'-'
            && t[10] == b'T'
            && t[13] == b':'
    }
    let rest = line.strip_prefix(b"<")?;
    let close = rest.iter().take(4).position(|&b| b == b'>')?;
    if close == 0 || !rest[..close].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let rest = &rest[close + 1..];
    if let Some(r5424) = rest.strip_prefix(b"1 ") {
        let (time, r) = token(r5424)?;
        if !is_time(time) {
            return None;
        }
        let (_host, r) = token(r)?;
        let (_app, r) = token(r)?;
        let (_procid, r) = token(r)?;
        let (_msgid, r) = token(r)?;
        // Structured data: `-`, or one or more `[id ...]` elements.
        if let Some(m) = r.strip_prefix(b"- ") {
            return Some(m);
        }
        if r.first() == Some(&b'[') {
            let mut i = 0;
            while r.get(i) == Some(&b'[') {
                let end = r[i..]
                    .iter()
                    .scan(false, |esc, &b| {
                        let stop = b == b']' && !*esc;
                        *esc = b == b'\\' && !*esc;
                        Some(stop)
                    })
                    .position(|stop| stop)?;
                i += end + 1;
            }
            return r[i..].strip_prefix(b" ");
        }
        return Some(r);
    }
    let (time, r) = token(rest)?;
    if !is_time(time) {
        return None;
    }
    let (_host, r) = token(r)?;
    // The endpoint name may hold spaces: the prefix ends at the first `[digits]: `.
    let window = &r[..r.len().min(MAX_ENDPOINT_NAME)];
    for at in memchr::memmem::find_iter(window, b"]: ") {
        let open = window[..at].iter().rposition(|&b| b == b'[')?;
        let pid = &window[open + 1..at];
        if open > 0 && !pid.is_empty() && pid.iter().all(u8::is_ascii_digit) {
            return Some(&r[at + 3..]);
        }
    }
    None
}

fn frame_json_array(body: &[u8], opts: &FrameOptions) -> Result<Framed, DecodeError> {
    let elements: Vec<&serde_json::value::RawValue> =
        serde_json::from_slice(body).map_err(|e| DecodeError::InvalidJsonArray(e.to_string()))?;
    let mut b = LineBatchBuilder::with_capacity(body.len());
    let mut oversized = 0;
    let mut line = Vec::new();
    for e in elements {
        line.clear();
        minify_into(e.get().as_bytes(), &mut line);
        if line.len() > opts.max_line_bytes {
            oversized += 1;
        }
        b.push(&line);
    }
    Ok(Framed {
        batch: b.finish(),
        oversized,
        stripped: 0,
        json_array: true,
    })
}

/// Removes the whitespace outside strings from valid JSON text.
pub fn minify_into(json: &[u8], out: &mut Vec<u8>) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => {}
                b'"' => {
                    in_string = true;
                    out.push(b);
                }
                _ => out.push(b),
            }
        }
    }
}

/// The whole decoding of one body: codec, decompression, framing.
pub fn decode_body(
    content_encoding: Option<&[u8]>,
    body: Bytes,
    max_body_bytes: usize,
    opts: &FrameOptions,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Framed, DecodeError> {
    let codec = select_codec(content_encoding, &body)?;
    let plain = decompress(codec, body, max_body_bytes, reserve)?;
    frame(plain, opts)
}

/// The fuzz target's body: decodes one fuzzer-chosen request and checks the decoder's invariants
/// (panics on a violation). Shared by `fuzz/` and the regression test of saved fuzz inputs.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// The first byte picks the Content-Encoding header and the framing options; the rest is the
    /// body.
    pub fn check(data: &[u8]) {
        let Some((&selector, body)) = data.split_first() else {
            return;
        };
        let encoding: Option<&[u8]> = match selector & 7 {
            0 => None,
            1 => Some(b"gzip"),
            2 => Some(b"zstd"),
            3 => Some(b"snappy"),
            4 => Some(b"identity"),
            5 => Some(b"x-snappy-framed"),
            6 => Some(b"gzip, identity"),
            _ => Some(b"br"),
        };
        let framing = match (selector >> 3) & 3 {
            0 => Framing::Auto,
            1 => Framing::Lines,
            _ => Framing::JsonArray,
        };
        let opts = FrameOptions {
            framing,
            json_content_type: selector & 0x20 != 0,
            strip_prefix: selector & 0x40 != 0,
            max_line_bytes: if selector & 0x80 != 0 { 16 } else { 1 << 20 },
        };
        let limit = 1 << 20;
        let mut reserved = 0usize;
        let result = decode_body(
            encoding,
            Bytes::copy_from_slice(body),
            limit,
            &opts,
            &mut |n| {
                reserved += n;
                true
            },
        );
        assert!(
            reserved <= limit + (1 << 20),
            "reserved {reserved} for a {limit}-byte limit"
        );
        let Ok(framed) = result else { return };
        let mut total = 0usize;
        for line in framed.batch.iter() {
            assert!(!line.is_empty(), "empty line kept");
            assert!(!line.contains(&b'\n'), "newline inside a line");
            total += line.len();
        }
        assert_eq!(total, framed.batch.line_bytes());
        let long = framed
            .batch
            .iter()
            .filter(|l| l.len() > opts.max_line_bytes)
            .count();
        assert_eq!(long, framed.oversized, "over-long lines counted");
        // Plain newline-delimited text: every non-empty segment is kept or set aside, in order.
        let plain = matches!(encoding, None | Some(b"identity"))
            && !body.starts_with(&[0x1f, 0x8b])
            && !body.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
            && !body.starts_with(&[0xff, 0x06, 0x00, 0x00])
            && !framed.json_array
            && !opts.strip_prefix;
        if plain {
            let segments: Vec<&[u8]> = body
                .split(|b| *b == b'\n')
                .map(|s| s.strip_suffix(b"\r").unwrap_or(s))
                .filter(|s| !s.is_empty())
                .collect();
            assert_eq!(segments, framed.batch.iter().collect::<Vec<_>>());
        }
    }
}

#[cfg(test)]
mod tests;
