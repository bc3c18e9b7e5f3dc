//! Why the Kinesis output could not start; each message names the key to fix.

use super::api::CallError;
use crate::output::aws::AwsError;

/// The Kinesis output could not start.
#[derive(Debug, thiserror::Error)]
pub enum KinesisStartError {
    #[error(transparent)]
    Aws(Box<AwsError>),
    #[error(
        "output.aws_kinesis.region: not set and none found in the environment (AWS_REGION, ~/.aws/config)"
    )]
    NoRegion,
    #[error(
        "output.aws_kinesis.credentials: none configured and none found by the SDK credential chain"
    )]
    NoCredentials,
    #[error("output.aws_kinesis.endpoint_url: {0}")]
    Endpoint(#[source] KinesisStartErrorSource),
    #[error("output.aws_kinesis: no Kinesis endpoint for region {region:?}: {source}")]
    NoEndpoint {
        region: String,
        source: KinesisStartErrorSource,
    },
    #[error("output.aws_kinesis: cannot make the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    #[error("output.aws_kinesis.stream_name: stream {stream:?} does not exist ({source})")]
    StreamMissing { stream: String, source: CallError },
    #[error("output.aws_kinesis.credentials: Kinesis refused the credentials ({0})")]
    CredentialsRefused(#[source] CallError),
    #[error(
        "output.aws_kinesis: the credentials are not allowed kinesis:ListShards on stream {stream:?}, which shard-balanced and aggregated sending need ({source})"
    )]
    ListShardsDenied { stream: String, source: CallError },
    #[error("output.aws_kinesis: ListShards on stream {stream:?} failed ({source})")]
    ListShards { stream: String, source: CallError },
}

/// The error a library gave for the endpoint's parameters or URL, kept as it said it.
#[derive(Debug)]
pub struct KinesisStartErrorSource(pub Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for KinesisStartErrorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for KinesisStartErrorSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<AwsError> for KinesisStartError {
    fn from(e: AwsError) -> Self {
        KinesisStartError::Aws(Box::new(e))
    }
}
