//! The contract between the Kinesis output and a Kinesis client: the records it sends, what a
//! call answers, and the typed error a call fails with. Types and traits only; the SDK client
//! (`sdk.rs`) and the direct PutRecords client (`direct.rs`) implement it, and the wiring
//! (`connect.rs`) picks one.
//!
//! Invariant: a [`CallError`] carries its [`Fault`], decided once by `classify.rs` where the
//! answer is read; nothing downstream looks at error codes as text to decide what to do.

use super::partition::Shard;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;

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

impl PutResult {
    /// Builds the result from each entry's answer, in request order: its error code, or the
    /// shard that took it (an entry with neither counts as failed, `MissingShardId`).
    pub fn from_answers<'a>(
        answers: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
    ) -> PutResult {
        let mut out = PutResult::default();
        for (i, (code, shard)) in answers.into_iter().enumerate() {
            match (code, shard) {
                (Some(code), _) => out.failed.push((i, code.to_string())),
                (None, Some(shard)) => {
                    if !out.shards.iter().any(|s| s == shard) {
                        out.shards.push(shard.to_string());
                    }
                }
                (None, None) => out.failed.push((i, "MissingShardId".into())),
            }
        }
        out
    }
}

/// What kind of failure a whole call met: decides whether and how it is retried, and what
/// `/readyz` says meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Kinesis asked to slow down (the call rate or the account's limits).
    Throttled,
    /// Kinesis or the network failed for the moment: no connection, a timeout, a 5xx.
    Outage,
    /// The credentials were refused (unknown key, bad signature, expired token).
    Credentials,
    /// The credentials are valid but lack a permission (the IAM policy).
    AccessDenied,
    /// The stream does not exist (or not in this region or account).
    NotFound,
    /// The stream's encryption key cannot be used (disabled, missing, not allowed).
    Kms,
    /// Kinesis refused the request itself as invalid: retrying the same bytes cannot help, so
    /// it counts toward `max_retries`.
    Invalid,
    /// Kinesis refused the request because a record is over the stream's maximum record size
    /// (`ValidationException`), lower than `max_record_bytes`: the records over it can never
    /// be sent, the others can.
    RecordTooLarge {
        /// The stream's maximum, in bytes of a record's data, as Kinesis named it.
        stream_limit: usize,
    },
}

impl Fault {
    /// Whether the lines wait in the buffer and the call is retried without limit: true for
    /// everything that is about the moment or the setup, false only for an invalid request.
    pub fn retried_without_limit(self) -> bool {
        !matches!(self, Fault::Invalid | Fault::RecordTooLarge { .. })
    }

    /// A short, stable name for logs and `/readyz`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Throttled => "throttled",
            Fault::Outage => "unreachable",
            Fault::Credentials => "credentials refused",
            Fault::AccessDenied => "permission missing",
            Fault::NotFound => "stream not found",
            Fault::Kms => "encryption key unusable",
            Fault::Invalid => "request refused as invalid",
            Fault::RecordTooLarge { .. } => "record over the stream's maximum record size",
        }
    }
}

/// A call that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CallError {
    pub fault: Fault,
    /// The error code as Kinesis (or the client) named it, for metrics and messages.
    pub code: String,
    pub message: String,
}

impl CallError {
    pub fn code(&self) -> &str {
        &self.code
    }
}

/// The Kinesis actions the output uses. Only these two: the IAM policy needs
/// `kinesis:PutRecords`, plus `kinesis:ListShards` for shard-balanced and aggregated sending.
pub trait KinesisApi: Send + Sync + 'static {
    /// PutRecords.
    fn put_records<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [PutEntry],
    ) -> BoxFuture<'a, Result<PutResult, CallError>>;

    /// ListShards (all pages), open shards only.
    fn list_shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<Shard>, CallError>>;
}
