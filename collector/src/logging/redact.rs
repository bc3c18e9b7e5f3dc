//! Keeps secrets out of the collector's own log, at every level.
//!
//! Libraries log what they hold: at `debug` and `trace` the AWS SDK prints the resolved
//! credentials (`access_key_id: "…"`) and the signed request (`Credential=…/`, the session token
//! header). [`Redactor`] scrubs each formatted log line before it is written: the configured
//! secrets and the AWS credential variables by value, and credential-shaped text by pattern
//! (wherever the credentials came from: a profile, a role, a process).
//!
//! Invariant: every log line goes through [`RedactingStderr`]; nothing else writes the log.

use memchr::memmem;
use std::borrow::Cow;
use std::sync::Arc;

/// What replaces a secret.
pub const REDACTED: &str = "** redacted **";

/// Secrets shorter than this are not searched for by value (they would match ordinary words).
pub const MIN_SECRET_LEN: usize = 4;

/// Environment variables whose values are credentials.
pub const SECRET_ENV_VARS: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Text after which a credential follows, up to the byte that ends it.
const MARKERS: [(&str, u8); 7] = [
    ("access_key_id: \"", b'"'),
    ("secret_access_key: \"", b'"'),
    ("session_token: \"", b'"'),
    ("Credential=", b'/'),
    ("(\"authorization\", \"", b'"'),
    ("(\"x-amz-security-token\", \"", b'"'),
    ("X-Amz-Security-Token=", b'&'),
];

/// Prefixes of AWS access key ids (long-term, temporary, role and user ids).
const KEY_ID_PREFIXES: [&str; 4] = ["AKIA", "ASIA", "AROA", "AIDA"];
/// Characters after the prefix of an access key id.
const KEY_ID_TAIL: usize = 16;

/// Scrubs secrets out of text.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for these secret values (too-short and empty ones are left out).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `secrets` plus the credential variables of this process's environment.
    pub fn with_env(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let env = SECRET_ENV_VARS.iter().filter_map(|v| std::env::var(v).ok());
        Redactor::new(secrets.into_iter().chain(env))
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        for (marker, end) in MARKERS {
            if out.contains(marker) {
                out = Cow::Owned(redact_after(&out, marker, end));
            }
        }
        if KEY_ID_PREFIXES.iter().any(|p| out.contains(p)) {
            out = Cow::Owned(redact_key_ids(&out));
        }
        out
    }
}

/// Replaces what follows each `marker`, up to `end` (or the end of the text).
fn redact_after(text: &str, marker: &str, end: u8) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = memmem::find(rest.as_bytes(), marker.as_bytes()) {
        let value_start = i + marker.len();
        out.push_str(&rest[..value_start]);
        let value_len = memchr::memchr(end, &rest.as_bytes()[value_start..])
            .unwrap_or(rest.len() - value_start);
        if value_len > 0 && !rest[value_start..].starts_with(REDACTED) {
            out.push_str(REDACTED);
        } else {
            out.push_str(&rest[value_start..value_start + value_len]);
        }
        rest = &rest[value_start + value_len..];
    }
    out.push_str(rest);
    out
}

/// Replaces access-key-id-shaped words: a known prefix and 16 upper-case letters or digits.
fn redact_key_ids(text: &str) -> String {
    let bytes = text.as_bytes();
    let is_key_char = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 4 + KEY_ID_TAIL <= bytes.len() {
        let starts_word = i == 0 || !is_key_char(bytes[i - 1]);
        let candidate = starts_word
            && KEY_ID_PREFIXES
                .iter()
                .any(|p| bytes[i..].starts_with(p.as_bytes()))
            && bytes[i + 4..i + 4 + KEY_ID_TAIL]
                .iter()
                .all(|&b| is_key_char(b))
            && bytes
                .get(i + 4 + KEY_ID_TAIL)
                .is_none_or(|&b| !is_key_char(b));
        if candidate {
            out.push_str(&text[copied..i]);
            out.push_str(REDACTED);
            i += 4 + KEY_ID_TAIL;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Standard error, each write scrubbed. The log formatter writes one whole event per call, so a
/// secret is never split across two writes.
#[derive(Clone)]
pub struct RedactingStderr(pub Arc<Redactor>);

impl std::io::Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr()
            .lock()
            .write_all(self.0.scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_are_replaced_longest_first() {
        let r = Redactor::new([
            "s3cr3t-token".to_string(),
            "s3cr3t".to_string(),
            "ab".into(),
        ]);
        assert_eq!(
            r.scrub("token s3cr3t-token and s3cr3t, ab"),
            format!("token {REDACTED} and {REDACTED}, ab")
        );
        assert!(matches!(r.scrub("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn sdk_credential_debug_output_is_scrubbed() {
        let r = Redactor::default();
        let line = r#"resolved identity identity=Identity { data: Credentials { provider_name: "Profile", access_key_id: "someKeyFromAFile", secret_access_key: "** redacted **", session_token: "FwoGZXIvYXdzEJr" } }"#;
        let out = r.scrub(line);
        assert!(!out.contains("someKeyFromAFile"), "{out}");
        assert!(!out.contains("FwoGZXIvYXdzEJr"), "{out}");
        assert!(out.contains("provider_name: \"Profile\""), "{out}");
    }

    #[test]
    fn signed_request_headers_are_scrubbed() {
        let r = Redactor::default();
        let line = r#"headers: [("authorization", "AWS4-HMAC-SHA256 Credential=keyid123/20260101/us-east-1/kinesis/aws4_request, Signature=abc"), ("x-amz-security-token", "tok123"), ("content-type", "x")] url?X-Amz-Security-Token=tok456&X-Amz-Date=1"#;
        let out = r.scrub(line);
        for s in ["keyid123", "tok123", "tok456", "Signature=abc"] {
            assert!(!out.contains(s), "{s} in {out}");
        }
        assert!(out.contains("(\"content-type\", \"x\")"), "{out}");
        assert!(out.contains("X-Amz-Date=1"), "{out}");
    }

    #[test]
    fn access_key_id_shapes_are_scrubbed_but_not_longer_words() {
        let r = Redactor::default();
        let out = r.scrub("key=AKIAIOSFODNN7EXAMPLE, temp ASIA1234567890ABCDEF.");
        assert_eq!(out, format!("key={REDACTED}, temp {REDACTED}."));
        let word = "XAKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLEX AKIAshort";
        assert_eq!(r.scrub(word), word);
    }
}
