//! The shared-token check (Fastly's `header_name` / `header_value`).
//!
//! Invariant: the comparison takes the same time whatever the token and the candidate are (both
//! are hashed, then compared in constant time, so neither content nor length leaks), and the
//! token is never logged.

use axum::http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone)]
pub struct TokenCheck {
    header: HeaderName,
    digest: [u8; 32],
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCheck")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl TokenCheck {
    pub fn new(header: HeaderName, token: &str) -> Self {
        TokenCheck {
            header,
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// True when the header is present exactly once and carries the token.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(&self.header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let candidate: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        candidate.ct_eq(&self.digest).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_exact_token_passes() {
        let check = TokenCheck::new(HeaderName::from_static("x-edgelog-token"), "s3cret");
        let mut h = HeaderMap::new();
        assert!(!check.allows(&h), "missing");
        h.insert("x-edgelog-token", HeaderValue::from_static("s3cret"));
        assert!(check.allows(&h));
        h.insert("x-edgelog-token", HeaderValue::from_static("s3cre"));
        assert!(!check.allows(&h), "prefix");
        h.insert("x-edgelog-token", HeaderValue::from_static("s3cret "));
        assert!(!check.allows(&h), "trailing space");
        h.insert("x-edgelog-token", HeaderValue::from_static("s3cret"));
        h.append("x-edgelog-token", HeaderValue::from_static("other"));
        assert!(!check.allows(&h), "repeated header");
        assert!(!format!("{check:?}").contains("s3cret"));
    }
}
