//! `%XX` escapes, decoded one way for the two places that read them: the `"..."` strings of VCL
//! expressions and the query parameter names that redaction compares.
//!
//! `%` and two hex digits (either case) is the byte they name; any other `%` stays as it is; bytes
//! that do not form UTF-8 become U+FFFD.

use percent_encoding::percent_decode_str;

/// `text` with its `%XX` escapes decoded.
pub fn decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_invalid_escapes_and_bytes_that_are_not_utf8() {
        let cases: &[(&str, &str)] = &[
            ("%41%4a%4A", "AJJ"),
            ("", ""),
            ("%", "%"),
            ("a%", "a%"),
            ("%4", "%4"),
            ("%zz", "%zz"),
            ("%%41", "%A"),
            ("%+1", "%+1"),
            ("+%2B", "++"),
            ("%C3%A9", "\u{e9}"),
            ("%e9|%FF%FE", "\u{fffd}|\u{fffd}\u{fffd}"),
            ("%\u{e9}1", "%\u{e9}1"),
            ("%00", "\0"),
        ];
        for (text, want) in cases {
            assert_eq!(&decode(text), want, "{text:?}");
        }
    }
}
