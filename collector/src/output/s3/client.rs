//! Talking to S3: the client the configuration asks for, the start-up check, and the requests an
//! upload is made of, each retried until it succeeds (an upload is never dropped).
//!
//! Errors are classified once, here: at start-up a missing bucket, refused credentials or a
//! missing permission stop the collector with a message naming the key or the permission; a
//! store that cannot be reached is only logged (uploads wait for it). While running, every failure
//! is counted by its code and retried after the configured backoff.

use super::error::{Failure, S3StartError};
use crate::config::{RetryPolicy, S3Config, Sse};
use crate::logging::ratelimit::Every;
use crate::metrics::Metrics;
use crate::output::retry::delay;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting to the store may take before the request counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The key the start-up check opens (and aborts) a multipart upload on, after the prefix.
const CHECK_KEY: &str = ".edgelog-permission-check";

/// An S3 client for one bucket, with the object settings of the configuration.
pub struct S3Client {
    client: aws_sdk_s3::Client,
    cfg: Arc<S3Config>,
    metrics: Arc<Metrics>,
}

impl S3Client {
    /// Builds the client; fails only when no region can be found.
    pub async fn connect(
        cfg: Arc<S3Config>,
        metrics: Arc<Metrics>,
    ) -> Result<S3Client, S3StartError> {
        let shared = crate::output::aws::shared_config(
            "output.s3",
            cfg.region.as_deref(),
            cfg.credentials.as_ref(),
        )
        .await?;
        if shared.region().is_none() {
            return Err(S3StartError::NoRegion);
        }
        let mut b = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(cfg.force_path_style)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(cfg.request_timeout)
                    .build(),
            );
        if let Some(url) = &cfg.endpoint_url {
            b = b.endpoint_url(url);
        }
        Ok(S3Client {
            client: aws_sdk_s3::Client::from_conf(b.build()),
            cfg,
            metrics,
        })
    }

    /// Checks that the bucket exists (HeadBucket) and the credentials may write to it: opens a
    /// multipart upload under the prefix and aborts it (nothing is left behind). A store that
    /// cannot be reached is not an error here: its failure is returned, to be logged (a start
    /// goes on; uploads wait for the store) or reported (`check-config --probe`).
    pub async fn check(&self) -> Result<Option<Failure>, S3StartError> {
        let key = format!("{}{CHECK_KEY}", self.cfg.prefix);
        let bucket = &self.cfg.bucket;
        // A missing bucket answers 404 here; other refusals (HeadBucket needs s3:ListBucket,
        // which the archive does not) are left to the check that follows.
        if let Err(e) = self.client.head_bucket().bucket(bucket).send().await {
            let f = Failure::from(e);
            if matches!(f.code.as_str(), "NotFound" | "NoSuchBucket") {
                return Err(self.explain(
                    Failure {
                        code: "NoSuchBucket".into(),
                        ..f
                    },
                    "s3:ListBucket",
                    &key,
                ));
            }
        }
        let id = match self.create(&key).await {
            Ok(id) => id,
            Err(f) if !f.answered => return Ok(Some(f)),
            Err(f) => return Err(self.explain(f, "s3:PutObject", &key)),
        };
        match self
            .client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(&key)
            .upload_id(&id)
            .send()
            .await
        {
            Ok(_) => Ok(None),
            Err(e) => {
                let f = Failure::from(e);
                if f.answered {
                    Err(self.explain(f, "s3:AbortMultipartUpload", &key))
                } else {
                    Ok(Some(f))
                }
            }
        }
    }

    /// The start-up error for a refusal: which key or permission to fix.
    fn explain(&self, f: Failure, permission: &'static str, key: &str) -> S3StartError {
        let bucket = self.cfg.bucket.clone();
        match f.code.as_str() {
            "NoSuchBucket" => S3StartError::NoSuchBucket { bucket, source: f },
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidToken"
            | "ExpiredToken"
            | "InvalidSecurity"
            | "TokenRefreshRequired"
            | "NotSignedUp" => S3StartError::CredentialsRefused { source: f },
            "AccessDenied" | "AllAccessDisabled" => S3StartError::PermissionMissing {
                permission,
                bucket,
                key: key.to_string(),
                source: f,
            },
            "PermanentRedirect"
            | "AuthorizationHeaderMalformed"
            | "IllegalLocationConstraintException" => {
                S3StartError::WrongRegion { bucket, source: f }
            }
            _ => S3StartError::CheckRefused { source: f },
        }
    }

    async fn create(&self, key: &str) -> Result<String, Failure> {
        let (sse, kms) = self.encryption();
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .content_type(&self.cfg.content_type)
            .set_storage_class(self.cfg.storage_class.as_deref().map(StorageClass::from))
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms)
            .send()
            .await?;
        out.upload_id().map(str::to_string).ok_or_else(|| Failure {
            code: "NoUploadId".into(),
            detail: "CreateMultipartUpload answered without an upload id".into(),
            answered: true,
        })
    }

    fn encryption(&self) -> (Option<ServerSideEncryption>, Option<String>) {
        match &self.cfg.sse {
            None => (None, None),
            Some(Sse::Aes256) => (Some(ServerSideEncryption::Aes256), None),
            Some(Sse::Kms { key_id }) => (Some(ServerSideEncryption::AwsKms), key_id.clone()),
        }
    }

    /// Opens a multipart upload; retried until it succeeds.
    pub async fn start_multipart(&self, key: &str) -> String {
        self.retrying("CreateMultipartUpload", key, || self.create(key))
            .await
    }

    /// Stores one part; returns its ETag. Retried until it succeeds.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Bytes,
    ) -> String {
        self.retrying("UploadPart", key, || async {
            let out = self
                .client
                .upload_part()
                .bucket(&self.cfg.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(body.len() as i64)
                .body(ByteStream::from(body.clone()))
                .send()
                .await?;
            Ok(out.e_tag().unwrap_or_default().to_string())
        })
        .await
    }

    /// Completes a multipart upload from its parts' ETags (in order); retried until it succeeds.
    pub async fn complete(&self, key: &str, upload_id: &str, etags: &[String]) {
        let parts: Vec<CompletedPart> = etags
            .iter()
            .enumerate()
            .map(|(i, t)| {
                CompletedPart::builder()
                    .part_number(i as i32 + 1)
                    .e_tag(t)
                    .build()
            })
            .collect();
        self.retrying("CompleteMultipartUpload", key, || async {
            self.client
                .complete_multipart_upload()
                .bucket(&self.cfg.bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts.clone()))
                        .build(),
                )
                .send()
                .await?;
            Ok(())
        })
        .await
    }

    /// Stores a whole (small) object in one request; retried until it succeeds.
    pub async fn put(&self, key: &str, body: Bytes) {
        let (sse, kms) = self.encryption();
        self.retrying("PutObject", key, || async {
            self.client
                .put_object()
                .bucket(&self.cfg.bucket)
                .key(key)
                .content_type(&self.cfg.content_type)
                .content_length(body.len() as i64)
                .set_storage_class(self.cfg.storage_class.as_deref().map(StorageClass::from))
                .set_server_side_encryption(sse.clone())
                .set_ssekms_key_id(kms.clone())
                .body(ByteStream::from(body.clone()))
                .send()
                .await?;
            Ok(())
        })
        .await
    }

    /// Runs `call` until it succeeds, waiting as `retry` says between attempts.
    async fn retrying<T, F, Fut>(&self, what: &str, key: &str, mut call: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let policy: &RetryPolicy = &self.cfg.retry;
        let errors = Every::default();
        let mut attempt = 0u32;
        loop {
            match call().await {
                Ok(v) => return v,
                Err(f) => {
                    attempt += 1;
                    self.metrics.s3_upload_errors.inc(&f.code);
                    if errors.allow() {
                        if attempt > policy.max_retries {
                            tracing::error!(request = what, key, attempt, error = %f.detail, repeats = errors.take_suppressed(), "s3: still failing; trying again");
                        } else {
                            tracing::warn!(request = what, key, attempt, error = %f.detail, "s3: request failed; trying again");
                        }
                    }
                    tokio::time::sleep(delay(policy, attempt)).await;
                }
            }
        }
    }
}
