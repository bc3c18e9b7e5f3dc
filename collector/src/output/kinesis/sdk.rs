//! The Kinesis client built on the official `aws-sdk-kinesis`: ListShards always, and
//! PutRecords when `put_records_client: sdk` is chosen.
//!
//! Invariant: every SDK error becomes a [`CallError`] through `classify.rs`, here and only here.

use super::api::{CallError, KinesisApi, PutEntry, PutResult};
use super::classify;
use super::partition::Shard;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use futures::future::BoxFuture;

fn classify<E>(e: SdkError<E, HttpResponse>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match &e {
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code().unwrap_or("ServiceError").to_string();
            let message = ctx.err().message().unwrap_or("").to_string();
            let server_error = ctx.raw().status().is_server_error();
            classify::call_error(code, message, server_error)
        }
        SdkError::TimeoutError(_) => classify::outage("Timeout", "the call timed out"),
        SdkError::DispatchFailure(d) => classify::outage(
            "ConnectionError",
            d.as_connector_error()
                .map(|c| c.to_string())
                .unwrap_or_else(|| "dispatch failure".into()),
        ),
        SdkError::ResponseError(_) => classify::outage("ResponseError", "unreadable response"),
        SdkError::ConstructionFailure(_) => {
            classify::call_error("ConstructionFailure".into(), e.to_string(), false)
        }
        _ => classify::outage("Unknown", e.to_string()),
    }
}

/// The SDK client.
pub struct SdkKinesis {
    client: aws_sdk_kinesis::Client,
}

impl SdkKinesis {
    pub fn new(client: aws_sdk_kinesis::Client) -> SdkKinesis {
        SdkKinesis { client }
    }

    /// PutRecords through the SDK's own serializer.
    pub async fn put(&self, stream: &str, entries: &[PutEntry]) -> Result<PutResult, CallError> {
        let mut req = self.client.put_records().stream_name(stream);
        for e in entries {
            let mut b = PutRecordsRequestEntry::builder()
                .data(Blob::new(e.data.to_vec()))
                .partition_key(e.partition_key.as_ref());
            if let Some(h) = &e.explicit_hash_key {
                b = b.explicit_hash_key(h.as_ref());
            }
            let entry = b.build().map_err(|err| {
                classify::call_error("ValidationException".into(), err.to_string(), false)
            })?;
            req = req.records(entry);
        }
        let out = req.send().await.map_err(classify)?;
        if out.records().len() != entries.len() {
            return Err(classify::outage(
                "MismatchedResponse",
                format!(
                    "{} results for {} records",
                    out.records().len(),
                    entries.len()
                ),
            ));
        }
        Ok(PutResult::from_answers(
            out.records().iter().map(|r| (r.error_code(), r.shard_id())),
        ))
    }

    /// ListShards (all pages), open shards only.
    pub async fn shards(&self, stream: &str) -> Result<Vec<Shard>, CallError> {
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
        Box::pin(self.put(stream, entries))
    }

    fn list_shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<Shard>, CallError>> {
        Box::pin(self.shards(stream))
    }
}
