//! Turns one request body, as Fastly's HTTPS logging sends it, into a [`LineBatch`].
//!
//! Stages: pick the codec (Content-Encoding, else the magic bytes), decompress with a hard size
//! limit (a gzip bomb stops at the limit, never inflates further), then frame: newline-delimited
//! lines (json_format 0 and 2) or one JSON array (json_format 1), optionally without Fastly's
//! `classic` syslog prefix. Pure functions over bytes; this is the fuzzed surface.
//!
//! Invariants: every non-empty input line ends up either in the batch or in `oversized`, never
//! both and never lost; bytes are passed through unchanged (logs are bytes, not text) except for
//! a trailing `\r` and the prefix when asked; JSON-array elements become compact JSON lines.

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

/// How the decompressed body is cut into lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// A JSON array when the body starts like one (`[` then `{`, `"`, `[` or `]`) or the
    /// Content-Type is JSON and the body starts with `[`; newline-delimited otherwise.
    #[default]
    Auto,
    /// Always newline-delimited (json_format 0 and 2).
    Lines,
    /// Always one JSON array of entries (json_format 1).
    JsonArray,
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
    /// Remove Fastly's `classic` syslog-style prefix.
    pub strip_prefix: bool,
    /// Lines longer than this go to `oversized`.
    pub max_line_bytes: usize,
}

/// A framed body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Framed {
    pub batch: LineBatch,
    /// Lines over `max_line_bytes`, for the dead-letter file.
    pub oversized: Vec<Bytes>,
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
    let mut oversized = Vec::new();
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
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if opts.strip_prefix {
            line = strip_classic_prefix(line);
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
            oversized.push(body.slice(line_start..line_start + line.len()));
            if rewritten.is_none() {
                rewritten = Some(builder_from(&body, &ends));
            }
            continue;
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

/// Removes `<134>2016-07-04T22:37:26Z cache-sjc3128 LogTest[62959]: ` (priority, time, cache
/// node, endpoint name and pid). A line without that exact shape is returned unchanged.
pub fn strip_classic_prefix(line: &[u8]) -> &[u8] {
    fn token(s: &[u8]) -> Option<(&[u8], &[u8])> {
        let sp = memchr::memchr(b' ', s)?;
        (sp > 0).then(|| (&s[..sp], &s[sp + 1..]))
    }
    let Some(rest) = line.strip_prefix(b"<") else {
        return line;
    };
    let Some(close) = rest.iter().take(4).position(|&b| b == b'>') else {
        return line;
    };
    if close == 0 || !rest[..close].iter().all(u8::is_ascii_digit) {
        return line;
    }
    let rest = &rest[close + 1..];
    let Some((time, rest)) = token(rest) else {
        return line;
    };
    if !time[0].is_ascii_digit() {
        return line;
    }
    let Some((_host, rest)) = token(rest) else {
        return line;
    };
    match token(rest) {
        Some((tag, msg)) if tag.ends_with(b":") => msg,
        _ => line,
    }
}

fn frame_json_array(body: &[u8], opts: &FrameOptions) -> Result<Framed, DecodeError> {
    let elements: Vec<&serde_json::value::RawValue> =
        serde_json::from_slice(body).map_err(|e| DecodeError::InvalidJsonArray(e.to_string()))?;
    let mut b = LineBatchBuilder::with_capacity(body.len());
    let mut oversized = Vec::new();
    let mut line = Vec::new();
    for e in elements {
        line.clear();
        minify_into(e.get().as_bytes(), &mut line);
        if line.len() > opts.max_line_bytes {
            oversized.push(Bytes::copy_from_slice(&line));
        } else {
            b.push(&line);
        }
    }
    Ok(Framed {
        batch: b.finish(),
        oversized,
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
            assert!(line.len() <= opts.max_line_bytes, "oversized line kept");
            total += line.len();
        }
        assert_eq!(total, framed.batch.line_bytes());
        for line in &framed.oversized {
            assert!(line.len() > opts.max_line_bytes, "short line dead-lettered");
        }
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
            assert_eq!(segments.len(), framed.batch.len() + framed.oversized.len());
            let kept: Vec<&[u8]> = segments
                .iter()
                .copied()
                .filter(|s| s.len() <= opts.max_line_bytes)
                .collect();
            assert_eq!(kept, framed.batch.iter().collect::<Vec<_>>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn opts() -> FrameOptions {
        FrameOptions {
            framing: Framing::Auto,
            json_content_type: false,
            strip_prefix: false,
            max_line_bytes: 1 << 20,
        }
    }

    fn lines(f: &Framed) -> Vec<String> {
        f.batch
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    fn yes(_: usize) -> bool {
        true
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    }

    #[test]
    fn clean_ndjson_is_zero_copy() {
        let body = Bytes::from_static(b"{\"a\":1}\n{\"b\":2}\n");
        let f = frame(body.clone(), &opts()).expect("frame");
        assert_eq!(lines(&f), vec!["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(f.batch.joined().as_ptr(), body.as_ptr(), "no copy");
        let f = frame(Bytes::from_static(b"x"), &opts()).expect("frame");
        assert_eq!(lines(&f), vec!["x"]);
    }

    #[test]
    fn empty_lines_and_crlf_are_handled() {
        let f = frame(Bytes::from_static(b"\n\na\r\n\r\nb\n\n"), &opts()).expect("frame");
        assert_eq!(lines(&f), vec!["a", "b"]);
        assert!(frame(Bytes::new(), &opts())
            .expect("empty")
            .batch
            .is_empty());
        assert!(frame(Bytes::from_static(b"\n\r\n"), &opts())
            .expect("blank")
            .batch
            .is_empty());
    }

    #[test]
    fn non_utf8_lines_pass_through_as_bytes() {
        let f = frame(Bytes::from_static(b"ok\n\xff\xfe\x00raw\n"), &opts()).expect("frame");
        assert_eq!(f.batch.line_ref(1), b"\xff\xfe\x00raw");
    }

    #[test]
    fn oversized_lines_are_set_aside_and_the_rest_kept() {
        let o = FrameOptions {
            max_line_bytes: 4,
            ..opts()
        };
        let f = frame(Bytes::from_static(b"abc\ntoolong\nxy\n"), &o).expect("frame");
        assert_eq!(lines(&f), vec!["abc", "xy"]);
        assert_eq!(f.oversized, vec![Bytes::from_static(b"toolong")]);
    }

    #[test]
    fn classic_prefix_is_stripped_when_asked() {
        let body = Bytes::from_static(
            b"<134>2016-07-04T22:37:26Z cache-sjc3128 LogTest[62959]: {\"a\":1}\n\
              no prefix here\n\
              <134>2016-07-04T22:37:26Z cache-sjc3128 LogTest[62959]: 1.2.3.4 - - [x] \"GET /\" 200 5\n",
        );
        let f = frame(
            body.clone(),
            &FrameOptions {
                strip_prefix: true,
                ..opts()
            },
        )
        .expect("frame");
        assert_eq!(
            lines(&f),
            vec![
                "{\"a\":1}",
                "no prefix here",
                "1.2.3.4 - - [x] \"GET /\" 200 5"
            ]
        );
        let kept = frame(body, &opts()).expect("frame");
        assert!(lines(&kept)[0].starts_with("<134>"));
        for not_prefix in [
            &b"<abc>x y z: m"[..],
            b"<134>",
            b"<134>2016 host",
            b"<134>T h tag m",
            b"<1234>2 h t: m",
        ] {
            assert_eq!(strip_classic_prefix(not_prefix), not_prefix);
        }
    }

    #[test]
    fn json_arrays_become_compact_lines() {
        let body = Bytes::from_static(
            b"[ {\"a\": 1, \"s\": \"x y\\\" z\"},\n {\"b\" : [1, 2]}, \"str\" ]",
        );
        let f = frame(body, &opts()).expect("frame");
        assert!(f.json_array);
        assert_eq!(
            lines(&f),
            vec!["{\"a\":1,\"s\":\"x y\\\" z\"}", "{\"b\":[1,2]}", "\"str\""]
        );
        assert!(frame(Bytes::from_static(b"[]"), &opts())
            .expect("empty")
            .batch
            .is_empty());
    }

    #[test]
    fn a_broken_json_array_is_an_error_but_clf_lines_are_not_arrays() {
        let err = frame(Bytes::from_static(b"[{\"a\":1},"), &opts()).unwrap_err();
        assert!(matches!(err, DecodeError::InvalidJsonArray(_)));
        let err = frame(
            Bytes::from_static(b"[1, 2"),
            &FrameOptions {
                json_content_type: true,
                ..opts()
            },
        )
        .unwrap_err();
        assert!(matches!(err, DecodeError::InvalidJsonArray(_)));
        // A text format that starts with %t is lines, not an array.
        let f = frame(
            Bytes::from_static(b"[10/Oct/2000:13:55:36 +0000] GET /\n"),
            &opts(),
        )
        .expect("frame");
        assert_eq!(f.batch.len(), 1);
        assert!(!f.json_array);
        let f = frame(
            Bytes::from_static(b"[\"x\"]\n"),
            &FrameOptions {
                framing: Framing::Lines,
                ..opts()
            },
        )
        .expect("frame");
        assert_eq!(lines(&f), vec!["[\"x\"]"]);
    }

    #[test]
    fn codecs_by_header_and_by_magic() {
        let data = b"line one\nline two\n";
        let gz = gzip(data);
        let zs = zstd::encode_all(&data[..], 1).expect("zstd");
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        framed.write_all(data).expect("snappy");
        let framed = framed.into_inner().expect("snappy");
        let raw = snap::raw::Encoder::new()
            .compress_vec(data)
            .expect("snappy raw");
        type Case<'a> = (Option<&'a [u8]>, Vec<u8>, Codec);
        let cases: Vec<Case> = vec![
            (Some(b"gzip"), gz.clone(), Codec::Gzip),
            (None, gz, Codec::Gzip),
            (Some(b"zstd"), zs.clone(), Codec::Zstd),
            (None, zs, Codec::Zstd),
            (Some(b"snappy"), framed.clone(), Codec::SnappyFramed),
            (None, framed, Codec::SnappyFramed),
            (Some(b"snappy"), raw, Codec::SnappyRaw),
            (Some(b"identity"), data.to_vec(), Codec::Identity),
            (None, data.to_vec(), Codec::Identity),
        ];
        for (header, body, want) in cases {
            assert_eq!(select_codec(header, &body).expect("codec"), want);
            let f =
                decode_body(header, Bytes::from(body), 1 << 20, &opts(), &mut yes).expect("decode");
            assert_eq!(lines(&f), vec!["line one", "line two"], "{want:?}");
        }
        assert_eq!(
            select_codec(Some(b"br"), b"x").unwrap_err(),
            DecodeError::UnsupportedEncoding("br".into())
        );
        assert!(select_codec(Some(b"gzip, zstd"), b"x").is_err());
    }

    #[test]
    fn corrupt_bodies_name_their_codec() {
        let mut gz = gzip(b"hello world, hello world, hello world\n");
        let n = gz.len();
        gz[n / 2] ^= 0xff;
        gz.truncate(n - 3);
        for (header, body, codec) in [
            (&b"gzip"[..], gz, "gzip"),
            (b"zstd", b"\x28\xb5\x2f\xfdgarbage".to_vec(), "zstd"),
            (
                b"snappy",
                b"\xff\x06\x00\x00sNaPpY\x01\x02".to_vec(),
                "snappy",
            ),
            (b"snappy", b"\x0a\xff\xff\xff".to_vec(), "snappy"),
            (b"gzip", b"not gzip at all".to_vec(), "gzip"),
        ] {
            match decode_body(Some(header), Bytes::from(body), 1 << 20, &opts(), &mut yes) {
                Err(DecodeError::Corrupt { codec: c, .. }) => assert_eq!(c, codec),
                other => panic!("{codec}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![b'a'; 50 << 20]); // 50 MiB of 'a', ~50 KiB compressed
        let mut reserved = 0usize;
        let err = decode_body(
            Some(b"gzip"),
            Bytes::from(bomb),
            1 << 20,
            &opts(),
            &mut |n| {
                reserved += n;
                true
            },
        )
        .unwrap_err();
        assert_eq!(err, DecodeError::TooLarge { limit: 1 << 20 });
        assert!(
            reserved <= (1 << 20) + 1,
            "inflated only up to the limit: {reserved}"
        );
        let err =
            decode_body(None, Bytes::from(vec![b'x'; 100]), 99, &opts(), &mut yes).unwrap_err();
        assert_eq!(err, DecodeError::TooLarge { limit: 99 });
        let raw = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 10_000])
            .expect("snappy");
        assert_eq!(
            decode_body(Some(b"snappy"), Bytes::from(raw), 1000, &opts(), &mut yes).unwrap_err(),
            DecodeError::TooLarge { limit: 1000 }
        );
    }

    #[test]
    fn the_memory_budget_can_refuse() {
        let gz = gzip(&vec![b'a'; 3 << 20]);
        let mut calls = 0;
        let err = decode_body(
            Some(b"gzip"),
            Bytes::from(gz),
            10 << 20,
            &opts(),
            &mut |_| {
                calls += 1;
                calls < 2
            },
        )
        .unwrap_err();
        assert_eq!(err, DecodeError::OverBudget);
    }

    #[test]
    fn exact_limit_is_accepted() {
        let data = vec![b'a'; 1000];
        let f = decode_body(
            Some(b"gzip"),
            Bytes::from(gzip(&data)),
            1000,
            &opts(),
            &mut yes,
        )
        .expect("fits");
        assert_eq!(f.batch.line_bytes(), 1000);
    }

    #[test]
    fn saved_fuzz_inputs_still_pass() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
            let path = entry.expect("entry").path();
            let data = std::fs::read(&path).expect("read input");
            fuzzing::check(&data);
            n += 1;
        }
        assert!(n > 0, "no regression inputs in {}", dir.display());
    }
}
