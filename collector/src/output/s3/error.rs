//! Why an S3 request failed ([`Failure`]), and why the archive could not start
//! ([`S3StartError`], each message naming the key or permission to fix).

use crate::output::aws::AwsError;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Why a request failed: the store's error code (or what kind of failure it was) and the detail.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Failure {
    pub code: String,
    pub detail: String,
    /// An HTTP answer came (as opposed to a timeout or a connection that failed).
    pub answered: bool,
}

impl<E, R> From<SdkError<E, R>> for Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn from(e: SdkError<E, R>) -> Self {
        let (code, answered) = match &e {
            SdkError::ServiceError(_) => (e.code().unwrap_or("Unknown").to_string(), true),
            SdkError::TimeoutError(_) => ("Timeout".to_string(), false),
            SdkError::DispatchFailure(_) => ("Unreachable".to_string(), false),
            SdkError::ResponseError(_) => ("BadResponse".to_string(), true),
            _ => ("RequestNotSent".to_string(), false),
        };
        Failure {
            code,
            detail: DisplayErrorContext(&e).to_string(),
            answered,
        }
    }
}

/// The S3 archive could not start.
#[derive(Debug, thiserror::Error)]
pub enum S3StartError {
    #[error(transparent)]
    Aws(Box<AwsError>),
    #[error(
        "output.s3.region: not set and none found in the environment (AWS_REGION, ~/.aws/config)"
    )]
    NoRegion,
    #[error(
        "output.s3.bucket: the bucket {bucket:?} does not exist (or the endpoint does not serve it)"
    )]
    NoSuchBucket {
        bucket: String,
        #[source]
        source: Failure,
    },
    #[error(
        "output.s3.credentials: refused by the store ({}): check access_key_id, secret_access_key and session_token, or the credential chain",
        source.code
    )]
    CredentialsRefused { source: Failure },
    #[error(
        "output.s3: the credentials lack the permission {permission} on arn:aws:s3:::{bucket}/{key} (the IAM policy in docs/operations.md lists what the archive needs)"
    )]
    PermissionMissing {
        permission: &'static str,
        bucket: String,
        key: String,
        #[source]
        source: Failure,
    },
    #[error("output.s3.region: the bucket {bucket:?} is in another region ({})", source.code)]
    WrongRegion { bucket: String, source: Failure },
    #[error("output.s3: the store refused the start-up check: {}", source.detail)]
    CheckRefused { source: Failure },
    #[error("output.s3: cannot reach the store: {}", source.detail)]
    Unreachable { source: Failure },
}

impl From<AwsError> for S3StartError {
    fn from(e: AwsError) -> Self {
        S3StartError::Aws(Box::new(e))
    }
}
