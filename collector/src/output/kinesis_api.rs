//! The three Kinesis calls the output makes, behind a small trait, and their implementation with
//! the official `aws-sdk-kinesis`.
//!
//! Invariant: every failure is classified once, here: `Transient` failures (network, timeouts,
//! 5xx, throttling, credentials, a missing stream) are retried without limit, because the lines
//! are safe in the buffer meanwhile; `Permanent` ones (Kinesis refusing the request itself) count
//! toward `max_retries` and end in the dead-letter file.

use crate::config::KinesisConfig;
use crate::partition::Shard;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// One record as PutRecords takes it.
#[derive(Debug, Clone)]
pub struct PutEntry {
    pub data: Bytes,
    pub partition_key: Arc<str>,
    pub explicit_hash_key: Option<Arc<str>>,
}

/// What a PutRecords call did, short of failing as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutResult {
    /// The entries Kinesis refused: index in the request and error code.
    pub failed: Vec<(usize, String)>,
    /// The distinct shards that took entries (to notice resharding).
    pub shards: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{code}: {message}")]
    Transient {
        code: String,
        message: String,
        throttled: bool,
    },
    #[error("{code}: {message}")]
    Permanent { code: String, message: String },
}

impl CallError {
    pub fn code(&self) -> &str {
        match self {
            CallError::Transient { code, .. } | CallError::Permanent { code, .. } => code,
        }
    }
}

/// A stream as DescribeStreamSummary reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    pub status: String,
    pub open_shards: Option<i32>,
}

pub trait KinesisApi: Send + Sync + 'static {
    /// PutRecords.
    fn put_records<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [PutEntry],
    ) -> BoxFuture<'a, Result<PutResult, CallError>>;

    /// ListShards (all pages), open shards only.
    fn list_shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<Shard>, CallError>>;

    fn describe<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<StreamState, CallError>>;
}

/// Throttling codes: slow down.
pub fn is_throttle(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "LimitExceededException"
            | "ThrottlingException"
            | "KMSThrottlingException"
            | "SlowDown"
    )
}

/// Codes that mean the request itself is wrong, not the moment.
fn is_permanent(code: &str) -> bool {
    matches!(
        code,
        "InvalidArgumentException" | "ValidationException" | "SerializationException"
    )
}

/// Classifies an error code (`server_error`: an HTTP 5xx).
pub fn classify_code(code: String, message: String, server_error: bool) -> CallError {
    if is_permanent(&code) && !server_error {
        CallError::Permanent { code, message }
    } else {
        CallError::Transient {
            throttled: is_throttle(&code),
            code,
            message,
        }
    }
}

fn classify<E, R>(e: SdkError<E, R>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error,
    R: std::fmt::Debug,
{
    let (code, message) = match &e {
        SdkError::ServiceError(ctx) => (
            ctx.err().code().unwrap_or("ServiceError").to_string(),
            ctx.err().message().unwrap_or("").to_string(),
        ),
        SdkError::TimeoutError(_) => ("Timeout".to_string(), "the call timed out".to_string()),
        SdkError::DispatchFailure(d) => (
            "ConnectionError".to_string(),
            format!("{:?}", d.as_connector_error().map(|c| c.to_string())),
        ),
        SdkError::ResponseError(_) => (
            "ResponseError".to_string(),
            "unreadable response".to_string(),
        ),
        SdkError::ConstructionFailure(_) => ("ConstructionFailure".to_string(), format!("{e}")),
        _ => ("Unknown".to_string(), format!("{e}")),
    };
    classify_code(code, message, false)
}

/// The AWS SDK client for the control plane, and PutRecords either through the SDK or through
/// the direct encoder (`put_records_client`).
pub struct SdkKinesis {
    client: aws_sdk_kinesis::Client,
    direct: Option<super::kinesis_direct::DirectPut>,
}

impl SdkKinesis {
    /// Builds the client from the configuration: explicit credentials or the SDK chain, the
    /// region or the SDK chain, an optional endpoint; the SDK's own retries are off (the output
    /// retries with the configured policy).
    pub async fn new(cfg: &KinesisConfig) -> Result<SdkKinesis, String> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &cfg.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(c) = &cfg.credentials {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                c.access_key_id.expose(),
                c.secret_access_key.expose(),
                c.session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "edgelog-config",
            ));
        }
        let shared = loader.load().await;
        let Some(region) = shared.region().map(|r| r.to_string()) else {
            return Err(
                "output.aws_kinesis.region: not set and none found in the environment (AWS_REGION, ~/.aws/config)"
                    .to_string(),
            );
        };
        let direct = match cfg.put_records_client {
            crate::config::PutRecordsClient::Sdk => None,
            crate::config::PutRecordsClient::Direct => {
                let provider = shared.credentials_provider().ok_or_else(|| {
                    "output.aws_kinesis.credentials: none configured and none found by the SDK credential chain".to_string()
                })?;
                Some(super::kinesis_direct::DirectPut::new(
                    cfg.endpoint_url.as_deref(),
                    &region,
                    provider,
                    cfg.request_timeout,
                    cfg.max_in_flight,
                )?)
            }
        };
        let mut b = aws_sdk_kinesis::config::Builder::from(&shared)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_timeout(cfg.request_timeout)
                    .build(),
            );
        if let Some(url) = &cfg.endpoint_url {
            b = b.endpoint_url(url);
        }
        Ok(SdkKinesis {
            client: aws_sdk_kinesis::Client::from_conf(b.build()),
            direct,
        })
    }
}

fn parse_hash(s: &str) -> Option<u128> {
    s.parse::<u128>().ok()
}

impl KinesisApi for SdkKinesis {
    fn put_records<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [PutEntry],
    ) -> BoxFuture<'a, Result<PutResult, CallError>> {
        Box::pin(async move {
            if let Some(direct) = &self.direct {
                return direct.put(stream, entries).await;
            }
            let mut req = self.client.put_records().stream_name(stream);
            for e in entries {
                let mut b = PutRecordsRequestEntry::builder()
                    .data(Blob::new(e.data.to_vec()))
                    .partition_key(e.partition_key.as_ref());
                if let Some(h) = &e.explicit_hash_key {
                    b = b.explicit_hash_key(h.as_ref());
                }
                let entry = b.build().map_err(|err| CallError::Permanent {
                    code: "ValidationException".into(),
                    message: err.to_string(),
                })?;
                req = req.records(entry);
            }
            let out = req.send().await.map_err(classify)?;
            if out.records().len() != entries.len() {
                return Err(CallError::Transient {
                    code: "MismatchedResponse".into(),
                    message: format!(
                        "{} results for {} records",
                        out.records().len(),
                        entries.len()
                    ),
                    throttled: false,
                });
            }
            let mut result = PutResult::default();
            for (i, r) in out.records().iter().enumerate() {
                match (r.error_code(), r.shard_id()) {
                    (Some(code), _) => result.failed.push((i, code.to_string())),
                    (None, Some(shard)) => {
                        if !result.shards.iter().any(|s| s == shard) {
                            result.shards.push(shard.to_string());
                        }
                    }
                    (None, None) => result.failed.push((i, "MissingShardId".into())),
                }
            }
            Ok(result)
        })
    }

    fn list_shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<Shard>, CallError>> {
        Box::pin(async move {
            let mut shards = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let req = match &token {
                    Some(t) => self.client.list_shards().next_token(t),
                    None => self.client.list_shards().stream_name(stream),
                };
                let out = req.send().await.map_err(classify)?;
                for s in out.shards() {
                    let open = s
                        .sequence_number_range()
                        .is_none_or(|r| r.ending_sequence_number().is_none());
                    let range = s.hash_key_range().and_then(|r| {
                        Some((
                            parse_hash(r.starting_hash_key())?,
                            parse_hash(r.ending_hash_key())?,
                        ))
                    });
                    if let (true, Some((start, end))) = (open, range) {
                        shards.push(Shard::new(s.shard_id(), start, end));
                    }
                }
                match out.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
            Ok(shards)
        })
    }

    fn describe<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<StreamState, CallError>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_stream_summary()
                .stream_name(stream)
                .send()
                .await
                .map_err(classify)?;
            let s = out.stream_description_summary();
            Ok(StreamState {
                status: s
                    .map(|s| s.stream_status().as_str().to_string())
                    .unwrap_or_default(),
                open_shards: s.map(|s| s.open_shard_count()),
            })
        })
    }
}
