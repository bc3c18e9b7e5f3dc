//! Fastly's domain proof: `GET /.well-known/fastly/logging/challenge` must answer, each on its own
//! line, hex(sha256(service_id)) for every service allowed to post, or `*` for any.

use sha2::{Digest, Sha256};

pub const PATH: &str = "/.well-known/fastly/logging/challenge";

/// The lines the challenge endpoint answers, in configuration order.
pub fn lines(service_ids: &[String]) -> Vec<String> {
    service_ids
        .iter()
        .map(|id| {
            if id == "*" {
                "*".to_string()
            } else {
                hex::encode(Sha256::digest(id.as_bytes()))
            }
        })
        .collect()
}

/// The response body: one line each, newline-terminated.
pub fn body(service_ids: &[String]) -> String {
    let mut out = lines(service_ids).join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_as_sha256sum_prints_them() {
        // `echo -n "YOUR_FASTLY_SERVICE_ID" | sha256sum`, as Fastly says to compute it. (The
        // value Fastly prints under that command is illustrative, not this string's hash.)
        assert_eq!(
            lines(&["YOUR_FASTLY_SERVICE_ID".into()]),
            vec!["10f7dcc09e27646645057d43e589f9786f510ac57fce19f75937ff666d1d09af"]
        );
        assert_eq!(body(&["*".into(), "a".into()]).lines().count(), 2);
        assert!(body(&["*".into()]).ends_with("*\n"));
    }
}
