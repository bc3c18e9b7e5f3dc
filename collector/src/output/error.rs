//! Why an output could not start: the Kinesis output's reasons (`kinesis/error.rs`) or the S3
//! archive's (`s3/error.rs`), each of which may be the AWS configuration they share (`aws.rs`).
//! Each message names the configuration key (or the permission) to fix; the error it came from,
//! when there is one, is kept as its source.

use super::kinesis::error::KinesisStartError;
use super::s3::error::S3StartError;

/// An output that could not start.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output failed to start: {0}")]
    Kinesis(Box<KinesisStartError>),
    #[error("output failed to start: {0}")]
    S3(Box<S3StartError>),
}

impl From<KinesisStartError> for OutputError {
    fn from(e: KinesisStartError) -> Self {
        OutputError::Kinesis(Box::new(e))
    }
}

impl From<S3StartError> for OutputError {
    fn from(e: S3StartError) -> Self {
        OutputError::S3(Box::new(e))
    }
}
