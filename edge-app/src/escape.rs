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
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => push_hex_escape(out, c as u8),
            c => out.push(c),
        }
    }
}

/// Appends `value` escaped for the inside of a JSON string (without the quotes).
pub fn push_json_escaped(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str("\\u00");
                push_hex_byte(out, c as u8);
            }
            c => out.push(c),
        }
    }
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
