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
        self.matches(value.as_bytes())
    }

    /// Like [`TokenCheck::allows`], also taking the token as the password of HTTP Basic
    /// authentication (any user name), so a browser can present it.
    pub fn allows_header_or_basic(&self, headers: &HeaderMap) -> bool {
        if self.allows(headers) {
            return true;
        }
        let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return false;
        };
        let Some(encoded) = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Basic "))
            .map(str::trim)
        else {
            return false;
        };
        let Ok(decoded) = base64_simd::STANDARD.decode_to_vec(encoded) else {
            return false;
        };
        match decoded.iter().position(|&b| b == b':') {
            Some(colon) => self.matches(&decoded[colon + 1..]),
            None => false,
        }
    }

    fn matches(&self, candidate: &[u8]) -> bool {
        let candidate: [u8; 32] = Sha256::digest(candidate).into();
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

    #[test]
    fn basic_authentication_carries_the_token_as_its_password() {
        let check = TokenCheck::new(HeaderName::from_static("x-edgelog-token"), "s3cret");
        let basic = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                axum::http::header::AUTHORIZATION,
                HeaderValue::from_str(v).expect("value"),
            );
            h
        };
        // "admin:s3cret", ":s3cret", "admin:wrong", "s3cret" (no colon)
        assert!(check.allows_header_or_basic(&basic("Basic YWRtaW46czNjcmV0")));
        assert!(check.allows_header_or_basic(&basic("Basic OnMzY3JldA==")));
        assert!(!check.allows_header_or_basic(&basic("Basic YWRtaW46d3Jvbmc=")));
        assert!(!check.allows_header_or_basic(&basic("Basic czNjcmV0")));
        assert!(!check.allows_header_or_basic(&basic("Basic !!!")));
        assert!(!check.allows_header_or_basic(&basic("Bearer s3cret")));
        let mut h = HeaderMap::new();
        h.insert("x-edgelog-token", HeaderValue::from_static("s3cret"));
        assert!(check.allows_header_or_basic(&h));
    }
}
