//! Escaping and size limits for log lines.
//!
//! Invariants: every line that leaves the edge app is a single line (no CR, LF or NUL byte) of at
//! most [`MAX_LINE_BYTES`] bytes, and text from the request (which may be hostile) never breaks
//! the line's syntax: Apache-style escaping for text formats, JSON escaping inside JSON.

/// Compute's limit on one log message: 64 KB.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Appended where a text line was cut to fit [`MAX_LINE_BYTES`].
pub const CUT_MARKER: &str = "...[cut]";

/// Appends `value` to `out` escaped the way Apache's mod_log_config escapes `%r`, `%i` and `%o`:
/// `"` and `\` get a backslash, control bytes become `\n`, `\r`, `\t` or `\xhh`.
pub fn push_apache_escaped(out: &mut String, value: &str) {
    push_runs(out, value, true, push_hex_escape);
}

/// Appends `value` escaped for the inside of a JSON string (without the quotes), DEL included.
pub fn push_json_escaped(out: &mut String, value: &str) {
    push_runs(out, value, true, push_unicode_escape);
}

/// JSON string escaping exactly as serde_json does it: `"` and `\` with a backslash, `\b`,
/// `\f`, `\n`, `\r`, `\t`, other control bytes as `\u00xx`; everything else (DEL too) as it is.
pub fn push_serde_json_escaped(out: &mut String, value: &str) {
    push_runs(out, value, false, |out, b| match b {
        0x08 => out.push_str("\\b"),
        0x0c => out.push_str("\\f"),
        b => push_unicode_escape(out, b),
    });
}

/// Copies `value` to `out`, whole runs at a time. `"`, `\`, LF, CR and tab get their backslash
/// escapes; every other control byte (and DEL, with `del`) goes to `other`. The bytes escaped
/// are ASCII, so every run ends on a character boundary.
fn push_runs(out: &mut String, value: &str, del: bool, other: impl Fn(&mut String, u8)) {
    let bytes = value.as_bytes();
    let mut start = 0;
    loop {
        let i = next_special(bytes, start, del);
        out.push_str(&value[start..i]);
        let Some(&b) = bytes.get(i) else {
            return;
        };
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b => other(out, b),
        }
        start = i + 1;
    }
}

fn push_unicode_escape(out: &mut String, byte: u8) {
    out.push_str("\\u00");
    push_hex_byte(out, byte);
}

/// The index of the first byte at or after `from` that is a control byte, `"` or `\` (or DEL,
/// with `del`), or `bytes.len()` when there is none. Eight bytes at a time while none is found
/// (each of the three tests is exact for a word with no special byte, so a flagged word is
/// rescanned byte by byte): text is mostly plain, and this loop is on every logged byte.
fn next_special(bytes: &[u8], mut from: usize, del: bool) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    while let Some(chunk) = bytes.get(from..from + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let quote = has_zero(w ^ (ONES * u64::from(b'"')));
        let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
        let delete = if del { has_zero(w ^ (ONES * 0x7f)) } else { 0 };
        if control | quote | backslash | delete != 0 {
            break;
        }
        from += 8;
    }
    bytes[from..]
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\' || (del && b == 0x7f))
        .map_or(bytes.len(), |p| from + p)
}

/// Replaces the bytes that would end a log message (CR, LF, NUL) in text the operator wrote
/// (format literals), so a format string cannot split a record into two lines.
pub fn single_line(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\x00"),
            c => out.push(c),
        }
    }
    out
}

/// Cuts a text line to at most `max` bytes on a character boundary, ending it with
/// [`CUT_MARKER`] when anything was removed.
pub fn cut_line(line: &mut String, max: usize) {
    if line.len() <= max {
        return;
    }
    let keep = floor_char_boundary(line, max.saturating_sub(CUT_MARKER.len()));
    line.truncate(keep);
    line.push_str(CUT_MARKER);
}

/// Cuts a field value to at most `max` bytes (marker included) on a character boundary.
pub fn cut_field(value: &mut String, max: usize) {
    cut_line(value, max)
}

/// The largest index `<= i` that lies on a character boundary of `s`.
pub fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn push_hex_escape(out: &mut String, byte: u8) {
    out.push_str("\\x");
    push_hex_byte(out, byte);
}

fn push_hex_byte(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(HEX[(byte >> 4) as usize] as char);
    out.push(HEX[(byte & 0xf) as usize] as char);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apache(s: &str) -> String {
        let mut out = String::new();
        push_apache_escaped(&mut out, s);
        out
    }

    fn json(s: &str) -> String {
        let mut out = String::new();
        push_json_escaped(&mut out, s);
        out
    }

    #[test]
    fn next_special_finds_every_special_byte_at_every_offset() {
        for special in (0u8..0x20).chain([b'"', b'\\', 0x7f]) {
            for len in 0..20 {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    // A plain multi-byte character before it, and high bytes around.
                    if at > 2 {
                        bytes[0] = 0xc3;
                        bytes[1] = 0xbc;
                    }
                    let want_del = special == 0x7f;
                    assert_eq!(
                        next_special(&bytes, 0, true),
                        at,
                        "{special:#x} at {at} of {len}"
                    );
                    let expected = if want_del { len } else { at };
                    assert_eq!(next_special(&bytes, 0, false), expected);
                }
            }
        }
        let plain: Vec<u8> = (0x20u8..=0xff)
            .filter(|b| *b != b'"' && *b != b'\\')
            .collect();
        assert_eq!(next_special(&plain, 0, false), plain.len());
        assert_eq!(
            next_special(&plain, 0, true),
            plain.iter().position(|b| *b == 0x7f).unwrap_or(0)
        );
        assert_eq!(next_special(b"ab\"cd", 3, true), 5);
    }

    #[test]
    fn apache_escaping_covers_quotes_backslashes_and_controls() {
        assert_eq!(apache("a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(apache("x\r\ny\tz"), "x\\r\\ny\\tz");
        assert_eq!(apache("\0\x1b\x7f"), "\\x00\\x1b\\x7f");
        assert_eq!(apache("caf\u{e9} \u{1f600}"), "caf\u{e9} \u{1f600}");
    }

    #[test]
    fn json_escaping_round_trips_through_a_parser() {
        let hostile = "q\"\\\n\r\t\0\x01\x7f\u{2028}end";
        let quoted = format!("\"{}\"", json(hostile));
        let back: String = serde_json::from_str(&quoted).expect("valid JSON string");
        assert_eq!(back, hostile);
        assert!(!quoted.contains('\n') && !quoted.contains('\r') && !quoted.contains('\0'));
    }

    #[test]
    fn single_line_removes_line_breaks_and_nul() {
        assert_eq!(single_line("a\nb\rc\0d"), "a\\nb\\rc\\x00d");
    }

    #[test]
    fn cut_line_respects_limit_and_char_boundaries() {
        let mut s = "\u{e9}".repeat(100); // 200 bytes, 2 per char
        cut_line(&mut s, 51);
        assert!(s.len() <= 51, "{}", s.len());
        assert!(s.ends_with(CUT_MARKER));
        let mut short = String::from("short");
        cut_line(&mut short, 51);
        assert_eq!(short, "short");
    }
}
