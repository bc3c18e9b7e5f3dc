//! What every AWS client of the collector shares: the region and the credentials, from the
//! configuration or else the SDK's own chains (environment, profile, SSO, container and instance
//! roles).

use crate::config::Credentials;

/// The SDK configuration for a region and credentials as configured (either may be absent).
pub async fn shared_config(
    region: Option<&str>,
    credentials: Option<&Credentials>,
) -> aws_types::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(c) = credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            c.access_key_id.expose(),
            c.secret_access_key.expose(),
            c.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "edgelog-config",
        ));
    }
    loader.load().await
}
