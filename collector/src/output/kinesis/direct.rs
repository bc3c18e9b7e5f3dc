//! PutRecords over the Kinesis JSON 1.1 protocol, written directly: the hot path.
//!
//! The request body is encoded straight from the lines' bytes into one buffer (base64 with SIMD,
//! no per-record allocation or copy), hashed for SigV4 in the same pass, and signed with the
//! official `aws-sigv4` signer; the response is read without building a value per entry.
//! Credentials, region and the endpoint come from `aws-config` and the SDK's endpoint rules (see
//! `connect.rs`); ListShards still goes through `aws-sdk-kinesis`. The SDK's own PutRecords stays
//! available (`put_records_client: sdk`); both are tested against kinesalite and benchmarked.
//!
//! Invariant: the encoder writes exactly what the SDK's serializer would accept as JSON 1.1
//! (`StreamName`, `Records[].Data|PartitionKey|ExplicitHashKey`), and the decoder reports one
//! outcome per entry, in order, or a [`CallError`].

use super::answer::{decode, decode_error};
use super::api::{CallError, PutEntry, PutResult};
use super::classify;
use super::error::{KinesisStartError, KinesisStartErrorSource};
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

const TARGET: &str = "Kinesis_20131202.PutRecords";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Whether `s` needs escaping inside a JSON string. Written without an early exit so the
/// compiler checks many bytes at once: keys are short and almost always clean.
fn needs_escape(s: &str) -> bool {
    s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Appends `s` as the inside of a JSON string.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// The size of the body [`encode`] writes when no key needs escaping (escapes only add).
fn encoded_len(stream: &str, entries: &[PutEntry]) -> usize {
    const FRAME: usize = r#"{"StreamName":"","Records":[]}"#.len();
    const RECORD: usize = r#",{"Data":"","PartitionKey":""}"#.len();
    const HASH_KEY: usize = r#"","ExplicitHashKey":""#.len();
    let records: usize = entries
        .iter()
        .map(|e| {
            RECORD
                + e.data.len().div_ceil(3) * 4
                + e.partition_key.len()
                + e.explicit_hash_key
                    .as_ref()
                    .map_or(0, |h| HASH_KEY + h.len())
        })
        .sum();
    // The first record has no comma before it.
    FRAME + stream.len() + records - usize::from(!entries.is_empty())
}

/// The PutRecords body and its SHA-256 (hex), computed in one pass.
pub fn encode(stream: &str, entries: &[PutEntry]) -> (Vec<u8>, String) {
    let mut body = Vec::with_capacity(encoded_len(stream, entries));
    let mut hasher = Sha256::new();
    body.extend_from_slice(b"{\"StreamName\":\"");
    push_json_str(&mut body, stream);
    body.extend_from_slice(b"\",\"Records\":[");
    let mut hashed = 0;
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"Data\":\"");
        base64_simd::STANDARD.encode_append(&e.data, &mut body);
        body.extend_from_slice(b"\",\"PartitionKey\":\"");
        push_json_str(&mut body, &e.partition_key);
        if let Some(h) = &e.explicit_hash_key {
            body.extend_from_slice(b"\",\"ExplicitHashKey\":\"");
            push_json_str(&mut body, h);
        }
        body.extend_from_slice(b"\"}");
        // Hash what was just written while it is still in cache.
        hasher.update(&body[hashed..]);
        hashed = body.len();
    }
    body.extend_from_slice(b"]}");
    hasher.update(&body[hashed..]);
    (body, hex::encode(hasher.finalize()))
}

/// The direct PutRecords client.
pub struct DirectPut {
    http: reqwest::Client,
    url: String,
    host: String,
    region: String,
    provider: aws_credential_types::provider::SharedCredentialsProvider,
}

impl DirectPut {
    /// `endpoint`: the URL the SDK's endpoint rules resolved (or the configured one).
    pub fn new(
        endpoint: &str,
        region: &str,
        provider: aws_credential_types::provider::SharedCredentialsProvider,
        timeout: Duration,
        connect_timeout: Duration,
        connections: usize,
    ) -> Result<DirectPut, KinesisStartError> {
        let url = endpoint.trim_end_matches('/').to_string() + "/";
        let parsed: reqwest::Url = url
            .parse()
            .map_err(|e| KinesisStartError::Endpoint(KinesisStartErrorSource(Box::new(e))))?;
        let host = match parsed.port() {
            Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or("")),
            None => parsed.host_str().unwrap_or("").to_string(),
        };
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(connections.max(1))
            .tcp_nodelay(true)
            .build()
            .map_err(KinesisStartError::HttpClient)?;
        Ok(DirectPut {
            http,
            url,
            host,
            region: region.to_string(),
            provider,
        })
    }

    /// The provider keeps and renews them (see `output::aws`).
    async fn credentials(&self) -> Result<Credentials, CallError> {
        self.provider
            .provide_credentials()
            .await
            .map_err(|e| classify::call_error("NoCredentials".into(), e.to_string(), false))
    }

    pub async fn put(&self, stream: &str, entries: &[PutEntry]) -> Result<PutResult, CallError> {
        let (body, hash) = encode(stream, entries);
        let creds = self.credentials().await?;
        let identity: Identity = creds.into();
        let signing_err = |e: &dyn std::fmt::Display| {
            classify::call_error("SigningError".into(), e.to_string(), false)
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("kinesis")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing_err(&e))?
            .into();
        let headers = [
            ("content-type", CONTENT_TYPE),
            ("host", self.host.as_str()),
            ("x-amz-target", TARGET),
        ];
        let signable = SignableRequest::new(
            "POST",
            self.url.as_str(),
            headers.iter().copied(),
            SignableBody::Precomputed(hash),
        )
        .map_err(|e| signing_err(&e))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| signing_err(&e))?
            .into_parts();
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", CONTENT_TYPE)
            .header("x-amz-target", TARGET);
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let resp = req.body(body).send().await.map_err(|e| {
            classify::outage(
                if e.is_timeout() {
                    "Timeout"
                } else {
                    "ConnectionError"
                },
                e.to_string(),
            )
        })?;
        let status = resp.status().as_u16();
        let header_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| classify::outage("ConnectionError", e.to_string()))?;
        if status == 200 {
            decode(&bytes, entries.len())
        } else {
            Err(decode_error(status, header_type.as_deref(), &bytes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;

    fn entry(data: &[u8], key: &str, hash: Option<&str>) -> PutEntry {
        PutEntry {
            data: Bytes::copy_from_slice(data),
            partition_key: Arc::from(key),
            explicit_hash_key: hash.map(Arc::from),
        }
    }

    #[test]
    fn the_body_is_json_the_protocol_reads_and_the_hash_matches() {
        let entries = vec![
            entry(b"{\"a\":1}", "k\"ey\\\u{1}", None),
            entry(
                b"\xff\x00raw",
                "shardId-000000000001",
                Some("170141183460469231731687303715884105727"),
            ),
            entry(b"", "e", None),
        ];
        let (body, hash) = encode("my\"stream", &entries);
        assert_eq!(hash, hex::encode(Sha256::digest(&body)));
        // `"` in the stream name; `"`, `\` and U+0001 (as `\u0001`) in the first key.
        let escapes = 1 + 1 + 1 + 5;
        assert_eq!(body.len(), encoded_len("my\"stream", &entries) + escapes);
        let clean = &entries[1..];
        assert_eq!(
            encode("s", clean).0.len(),
            encoded_len("s", clean),
            "sized exactly"
        );
        let v: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(v["StreamName"], "my\"stream");
        let recs = v["Records"].as_array().expect("records");
        assert_eq!(recs.len(), 3);
        let b64 = base64_simd::STANDARD;
        assert_eq!(
            b64.decode_to_vec(recs[0]["Data"].as_str().expect("data"))
                .expect("b64"),
            b"{\"a\":1}"
        );
        assert_eq!(recs[0]["PartitionKey"], "k\"ey\\\u{1}");
        assert!(recs[0].get("ExplicitHashKey").is_none());
        assert_eq!(
            b64.decode_to_vec(recs[1]["Data"].as_str().expect("data"))
                .expect("b64"),
            b"\xff\x00raw"
        );
        assert_eq!(
            recs[1]["ExplicitHashKey"],
            "170141183460469231731687303715884105727"
        );
        assert_eq!(recs[2]["Data"], "");
    }
}
