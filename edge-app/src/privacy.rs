//! IP anonymization and query-parameter redaction.
//!
//! Invariant: redaction never changes anything but the values of the named parameters, so a
//! redacted URL still parses the same way; names match case-insensitively after percent-decoding,
//! so `%74oken=` cannot slip past a rule for `token`.

use crate::percent;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a redacted value becomes.
pub const REDACTED: &str = "REDACTED";

/// Zeroes the last octet of an IPv4 address and the last 80 bits of an IPv6 address.
pub fn anonymize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            for o in &mut octets[6..] {
                *o = 0;
            }
            IpAddr::V6(Ipv6Addr::from(octets))
        }
    }
}

/// Anonymizes every address in a comma-separated header value (`X-Forwarded-For`); anything
/// that is not an address is left as it is.
pub fn anonymize_ip_list(value: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(value);
    text.split(',')
        .map(|part| {
            let trimmed = part.trim();
            match trimmed.parse::<IpAddr>() {
                Ok(ip) => part.replacen(trimmed, &anonymize_ip(ip).to_string(), 1),
                Err(_) => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes()
}

/// Redacts the values of the named parameters in a query string (without its `?`).
pub fn redact_query(query: &str, names: &[String]) -> String {
    if names.is_empty() {
        return query.to_string();
    }
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let (name, has_value) = match pair.split_once('=') {
            Some((n, _)) => (n, true),
            None => (pair, false),
        };
        let decoded = decode_name(name);
        if has_value && names.iter().any(|n| n.eq_ignore_ascii_case(&decoded)) {
            out.push_str(name);
            out.push('=');
            out.push_str(REDACTED);
        } else {
            out.push_str(pair);
        }
    }
    out
}

/// Redacts the query of a full or relative URL, keeping any fragment.
pub fn redact_url(url: &str, names: &[String]) -> String {
    let Some((before, rest)) = url.split_once('?') else {
        return url.to_string();
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let mut out = format!("{before}?{}", redact_query(query, names));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// A parameter name as a form decoder reads it: `+` is a space, then `%XX` escapes are decoded.
/// `%+X` (a plus sign, then one hex digit) is the byte 0X.
fn decode_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let form: String = name
        .char_indices()
        .map(|(i, c)| match c {
            '+' if i > 0
                && bytes[i - 1] == b'%'
                && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit) =>
            {
                '0'
            }
            '+' => ' ',
            c => c,
        })
        .collect();
    percent::decode(&form)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ipv4_and_ipv6_anonymization() {
        assert_eq!(
            anonymize_ip("192.0.2.200".parse().expect("ip")).to_string(),
            "192.0.2.0"
        );
        assert_eq!(
            anonymize_ip(
                "2001:db8:abcd:1234:5678:9abc:def0:1234"
                    .parse()
                    .expect("ip")
            )
            .to_string(),
            "2001:db8:abcd::"
        );
    }

    #[test]
    fn ip_lists_keep_their_shape() {
        assert_eq!(
            anonymize_ip_list(b"198.51.100.7, unknown,2001:db8::1"),
            b"198.51.100.0, unknown,2001:db8::".to_vec()
        );
    }

    /// How a parameter name is read before it is compared: `+` is a space, `%XX` (either case)
    /// the byte it names, `%+X` the byte 0X; a `%` without two hex digits after it stays; bytes
    /// that are not UTF-8 become U+FFFD.
    #[test]
    fn names_are_decoded_like_a_form() {
        let redacted = |name: &str, query: &str| redact_query(query, &names(&[name])) != query;
        let matching: &[(&str, &str)] = &[
            ("token", "%74%6F%6b%65%6E=1"),
            ("a b", "a+b=1"),
            ("a+b", "a%2Bb=1"),
            ("a b", "a%20b=1"),
            ("%zz", "%zz=1"),
            ("%", "%=1"),
            ("a%4", "a%4=1"),
            ("%A", "%%41=1"),
            ("% x", "%+x=1"),
            ("\u{1}", "%+1=1"),
            ("%\u{1}", "%%+1=1"),
            ("% 1", "%25+1=1"),
            ("%-1", "%-1=1"),
            ("é", "%C3%A9=1"),
            ("\u{fffd}", "%e9=1"),
            ("\u{fffd}\u{fffd}", "%FF%FE=1"),
            ("%é1", "%é1=1"),
            ("\0", "%00=1"),
        ];
        for (name, query) in matching {
            assert!(redacted(name, query), "{name:?} should match {query:?}");
        }
        let different: &[(&str, &str)] = &[
            ("a b", "a%2Bb=1"),
            ("a+b", "a+b=1"),
            ("%2B", "%2B=1"),
            ("% 1", "%+1=1"),
            ("%+1", "%+1=1"),
            ("%e9", "%e9=1"),
        ];
        for (name, query) in different {
            assert!(
                !redacted(name, query),
                "{name:?} should not match {query:?}"
            );
        }
    }

    #[test]
    fn redaction_touches_only_named_values() {
        let n = names(&["token", "Email"]);
        assert_eq!(
            redact_query("a=1&token=abc&b&email=x%40y&token", &n),
            "a=1&token=REDACTED&b&email=REDACTED&token"
        );
        assert_eq!(redact_query("%74oken=abc", &n), "%74oken=REDACTED");
        assert_eq!(redact_query("tokens=abc", &n), "tokens=abc");
        assert_eq!(redact_query("", &n), "");
        assert_eq!(redact_query("a=%", &n), "a=%");
        assert_eq!(
            redact_url("https://x.test/p?token=1#frag", &n),
            "https://x.test/p?token=REDACTED#frag"
        );
        assert_eq!(redact_url("https://x.test/p", &n), "https://x.test/p");
    }
}
