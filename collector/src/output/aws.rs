//! What every AWS client of the collector shares: the region and the credentials, from the
//! configuration or else the SDK's own chains (environment, profile, SSO, container and instance
//! roles), optionally exchanged for a role's through STS.
//!
//! Credentials that expire are renewed [`CREDENTIALS_REFRESH_BEFORE`] before they do, by one
//! cache every client of an output shares (the SDK clients and the direct PutRecords client).

use crate::config::{AssumeRole, Credentials, CREDENTIALS_REFRESH_BEFORE};
use aws_config::identity::IdentityCache;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use std::time::SystemTime;

/// What the region, the credentials and an assumed role could not give.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{key}.sts_region: not set, and the output has no region to assume the role in")]
    NoStsRegion { key: String },
    #[error("{key}.{setting}: cannot reach STS at {at} to assume {arn}: {detail}")]
    StsUnreachable {
        key: String,
        /// `sts_endpoint_url` or `sts_region`.
        setting: &'static str,
        at: String,
        arn: String,
        detail: String,
        #[source]
        source: CredentialsError,
    },
    #[error("{key}.role_arn: STS refused to assume {arn} (HTTP {status}): {detail}")]
    RoleRefusedWithoutCode {
        key: String,
        arn: String,
        status: u16,
        detail: String,
        #[source]
        source: CredentialsError,
    },
    #[error("{key}.role_arn: STS refused to assume {arn}: {code}: {message}{hint}")]
    RoleRefused {
        key: String,
        arn: String,
        code: String,
        message: String,
        /// What to check for this code, if anything.
        hint: &'static str,
        #[source]
        source: CredentialsError,
    },
    #[error("{key}.role_arn: cannot assume {arn}: {detail}")]
    CannotAssume {
        key: String,
        arn: String,
        detail: String,
        #[source]
        source: CredentialsError,
    },
}

/// The SDK configuration for a region and credentials as configured (either may be absent).
/// `key`: the output's block, named in errors (`output.aws_kinesis`).
///
/// With a role, the role is assumed once here, so a role that cannot be assumed stops the start
/// with an error naming the key, rather than failing every call later.
pub async fn shared_config(
    key: &str,
    region: Option<&str>,
    credentials: Option<&Credentials>,
) -> Result<aws_types::SdkConfig, AwsError> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).identity_cache(
        IdentityCache::lazy()
            .buffer_time(CREDENTIALS_REFRESH_BEFORE)
            .build(),
    );
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(k) = credentials.and_then(|c| c.keys.as_ref()) {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            k.access_key_id.expose(),
            k.secret_access_key.expose(),
            k.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "edgelog-config",
        ));
    }
    let base = loader.load().await;
    let renewing = match credentials.and_then(|c| c.assume_role.as_ref()) {
        Some(role) => {
            let (provider, first) = assume_role(&format!("{key}.credentials"), role, &base).await?;
            Renewing::new(SharedCredentialsProvider::new(provider), Some(first))
        }
        None => match base.credentials_provider() {
            Some(chain) => Renewing::new(chain, None),
            None => return Ok(base),
        },
    };
    Ok(base
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(renewing))
        .build())
}

/// Credentials kept until [`CREDENTIALS_REFRESH_BEFORE`] their expiry, then fetched again, one
/// fetch at a time. When a renewal fails while the kept ones are still valid, those are used
/// (and the renewal tried again on the next call), so a short STS outage costs nothing.
#[derive(Debug)]
struct Renewing {
    inner: SharedCredentialsProvider,
    kept: tokio::sync::Mutex<Option<aws_credential_types::Credentials>>,
}

impl Renewing {
    fn new(
        inner: SharedCredentialsProvider,
        first: Option<aws_credential_types::Credentials>,
    ) -> Self {
        Renewing {
            inner,
            kept: tokio::sync::Mutex::new(first),
        }
    }

    async fn get(&self) -> aws_credential_types::provider::Result {
        let mut kept = self.kept.lock().await;
        let now = SystemTime::now();
        if let Some(c) = kept.as_ref() {
            if c.expiry()
                .is_none_or(|exp| exp > now + CREDENTIALS_REFRESH_BEFORE)
            {
                return Ok(c.clone());
            }
        }
        match self.inner.provide_credentials().await {
            Ok(fresh) => {
                *kept = Some(fresh.clone());
                Ok(fresh)
            }
            Err(e) => match kept.as_ref() {
                Some(c) if c.expiry().is_some_and(|exp| exp > now) => {
                    tracing::warn!(error = %DisplayErrorContext(&e), "renewing AWS credentials failed; using the current ones until they expire");
                    Ok(c.clone())
                }
                _ => Err(e),
            },
        }
    }
}

impl ProvideCredentials for Renewing {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(self.get())
    }
}

/// A provider of the role's credentials, assumed with `base`'s credentials, and the first
/// ones: the role is assumed here once, to check it can be.
async fn assume_role(
    key: &str,
    role: &AssumeRole,
    base: &aws_types::SdkConfig,
) -> Result<(AssumeRoleProvider, aws_credential_types::Credentials), AwsError> {
    let mut sts = base.clone().into_builder();
    if let Some(r) = &role.sts_region {
        sts.set_region(Some(aws_config::Region::new(r.clone())));
    }
    if let Some(url) = &role.sts_endpoint_url {
        sts.set_endpoint_url(Some(url.clone()));
    }
    let sts = sts.build();
    if sts.region().is_none() {
        return Err(AwsError::NoStsRegion {
            key: key.to_string(),
        });
    }
    let mut builder = AssumeRoleProvider::builder(role.role_arn.clone())
        .session_name(role.session_name.clone())
        .session_length(role.session_duration)
        .configure(&sts);
    if let Some(id) = &role.external_id {
        builder = builder.external_id(id.clone());
    }
    let provider = builder.build().await;
    match provider.provide_credentials().await {
        Ok(first) => Ok((provider, first)),
        Err(e) => Err(refusal(key, role, &sts, e)),
    }
}

/// Why the role could not be assumed, naming the key to look at.
fn refusal(
    key: &str,
    role: &AssumeRole,
    sts: &aws_types::SdkConfig,
    e: CredentialsError,
) -> AwsError {
    let key = key.to_string();
    let arn = role.role_arn.clone();
    let detail = DisplayErrorContext(&e).to_string();
    let call = std::error::Error::source(&e).and_then(|s| {
        s.downcast_ref::<SdkError<AssumeRoleError, aws_sdk_sts::config::http::HttpResponse>>()
    });
    match call {
        Some(SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) => {
            let (setting, at) = match &role.sts_endpoint_url {
                Some(url) => ("sts_endpoint_url", url.clone()),
                None => (
                    "sts_region",
                    format!(
                        "the endpoint of {}",
                        sts.region().map(|r| r.to_string()).unwrap_or_default()
                    ),
                ),
            };
            AwsError::StsUnreachable {
                key,
                setting,
                at,
                arn,
                detail,
                source: e,
            }
        }
        Some(SdkError::ServiceError(s)) => {
            let status = s.raw().status().as_u16();
            let Some(code) = s.err().code().map(str::to_string) else {
                return AwsError::RoleRefusedWithoutCode {
                    key,
                    arn,
                    status,
                    detail,
                    source: e,
                };
            };
            let message = s.err().message().unwrap_or("").to_string();
            let hint = match code.as_str() {
                "AccessDenied" if role.external_id.is_some() => {
                    " (the role's trust policy must allow these credentials with this external_id, and their own policy sts:AssumeRole on the role)"
                }
                "AccessDenied" => {
                    " (the role's trust policy must allow these credentials, and their own policy sts:AssumeRole on the role)"
                }
                "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" => {
                    " (the credentials that assume the role were refused: access_key_id and secret_access_key, or the SDK chain's)"
                }
                _ => "",
            };
            AwsError::RoleRefused {
                key,
                arn,
                code,
                message,
                hint,
                source: e,
            }
        }
        _ => AwsError::CannotAssume {
            key,
            arn,
            detail,
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Hands out credentials expiring `lifetime` from now, numbered; fails when `down`.
    #[derive(Debug)]
    struct Numbered {
        calls: Arc<AtomicUsize>,
        lifetime: Duration,
        down: Arc<std::sync::atomic::AtomicBool>,
    }

    impl ProvideCredentials for Numbered {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let result = if self.down.load(Ordering::SeqCst) {
                Err(CredentialsError::provider_timed_out(Duration::from_secs(1)))
            } else {
                Ok(aws_credential_types::Credentials::new(
                    format!("KEY{n}"),
                    "secret",
                    None,
                    Some(SystemTime::now() + self.lifetime),
                    "test",
                ))
            };
            aws_credential_types::provider::future::ProvideCredentials::ready(result)
        }
    }

    fn renewing(
        lifetime: Duration,
    ) -> (
        Renewing,
        Arc<AtomicUsize>,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let inner = Numbered {
            calls: calls.clone(),
            lifetime,
            down: down.clone(),
        };
        (
            Renewing::new(SharedCredentialsProvider::new(inner), None),
            calls,
            down,
        )
    }

    #[tokio::test]
    async fn credentials_are_kept_until_the_margin_before_expiry() {
        let (r, calls, _) = renewing(CREDENTIALS_REFRESH_BEFORE + Duration::from_secs(3600));
        for _ in 0..5 {
            assert_eq!(r.get().await.expect("creds").access_key_id(), "KEY0");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_inside_the_margin_are_renewed() {
        let (r, calls, _) = renewing(CREDENTIALS_REFRESH_BEFORE - Duration::from_secs(60));
        assert_eq!(r.get().await.expect("creds").access_key_id(), "KEY0");
        assert_eq!(r.get().await.expect("creds").access_key_id(), "KEY1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_renewal_keeps_valid_credentials_and_tries_again() {
        let (r, calls, down) = renewing(CREDENTIALS_REFRESH_BEFORE - Duration::from_secs(60));
        assert_eq!(r.get().await.expect("creds").access_key_id(), "KEY0");
        down.store(true, Ordering::SeqCst);
        assert_eq!(r.get().await.expect("kept").access_key_id(), "KEY0");
        assert_eq!(r.get().await.expect("kept").access_key_id(), "KEY0");
        assert_eq!(calls.load(Ordering::SeqCst), 3, "each call tries again");
        down.store(false, Ordering::SeqCst);
        assert_eq!(r.get().await.expect("renewed").access_key_id(), "KEY3");
    }

    #[tokio::test]
    async fn expired_credentials_are_not_used_when_renewal_fails() {
        let (r, _, down) = renewing(Duration::ZERO);
        r.get().await.expect("first");
        down.store(true, Ordering::SeqCst);
        assert!(r.get().await.is_err());
    }
}
