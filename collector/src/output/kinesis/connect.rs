//! Wiring: builds the Kinesis client the configuration asks for.
//!
//! Credentials and region come from the configuration or the SDK's chains; the endpoint comes
//! from the SDK's own endpoint rules, so FIPS (`AWS_USE_FIPS_ENDPOINT`), dual-stack
//! (`AWS_USE_DUALSTACK_ENDPOINT`), the China and GovCloud partitions, and the `AWS_ENDPOINT_URL`
//! / `AWS_ENDPOINT_URL_KINESIS` variables resolve the same for the SDK client and the direct
//! PutRecords client. The SDK's own retries are off: the output retries with its own policy.

use super::api::{CallError, KinesisApi, PutEntry, PutResult};
use super::direct::DirectPut;
use super::error::{KinesisStartError, KinesisStartErrorSource};
use super::partition::Shard;
use super::sdk::SdkKinesis;
use crate::config::{KinesisConfig, PutRecordsClient};
use aws_sdk_kinesis::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting to Kinesis may take before the call counts as an outage.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// PutRecords through the direct encoder; ListShards through the SDK.
struct DirectKinesis {
    put: DirectPut,
    control: SdkKinesis,
}

impl KinesisApi for DirectKinesis {
    fn put_records<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [PutEntry],
    ) -> BoxFuture<'a, Result<PutResult, CallError>> {
        Box::pin(self.put.put(stream, entries))
    }

    fn list_shards<'a>(&'a self, stream: &'a str) -> BoxFuture<'a, Result<Vec<Shard>, CallError>> {
        Box::pin(self.control.shards(stream))
    }
}

/// The endpoint the SDK would call for this configuration (before any per-request rules).
async fn resolve_endpoint(
    shared: &aws_types::SdkConfig,
    configured: Option<&str>,
    region: &str,
) -> Result<String, KinesisStartError> {
    let from_env = shared.service_config().and_then(|c| {
        c.load_config(
            aws_types::service_config::ServiceConfigKey::builder()
                .service_id("Kinesis")
                .env("AWS_ENDPOINT_URL")
                .profile("endpoint_url")
                .build()
                .ok()?,
        )
    });
    let endpoint = configured
        .map(str::to_string)
        .or(from_env)
        .or_else(|| shared.endpoint_url().map(str::to_string));
    let params = Params::builder()
        .region(region)
        .use_fips(shared.use_fips().unwrap_or(false))
        .use_dual_stack(shared.use_dual_stack().unwrap_or(false))
        .set_endpoint(endpoint)
        .build()
        .map_err(|e| KinesisStartError::Endpoint(KinesisStartErrorSource(Box::new(e))))?;
    let resolved = DefaultResolver::new()
        .resolve_endpoint(&params)
        .await
        .map_err(|e| KinesisStartError::NoEndpoint {
            region: region.to_string(),
            source: KinesisStartErrorSource(e),
        })?;
    Ok(resolved.url().to_string())
}

/// Builds the client: the SDK for everything, or the direct encoder for PutRecords.
pub async fn connect(cfg: &KinesisConfig) -> Result<Arc<dyn KinesisApi>, KinesisStartError> {
    let shared = crate::output::aws::shared_config(
        "output.aws_kinesis",
        cfg.region.as_deref(),
        cfg.credentials.as_ref(),
    )
    .await?;
    let Some(region) = shared.region().map(|r| r.to_string()) else {
        return Err(KinesisStartError::NoRegion);
    };
    let mut b = aws_sdk_kinesis::config::Builder::from(&shared)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_timeout(cfg.request_timeout)
                .build(),
        );
    if let Some(url) = &cfg.endpoint_url {
        b = b.endpoint_url(url);
    }
    let control = SdkKinesis::new(aws_sdk_kinesis::Client::from_conf(b.build()));
    Ok(match cfg.put_records_client {
        PutRecordsClient::Sdk => Arc::new(control),
        PutRecordsClient::Direct => {
            let provider = shared
                .credentials_provider()
                .ok_or(KinesisStartError::NoCredentials)?;
            let url = resolve_endpoint(&shared, cfg.endpoint_url.as_deref(), &region).await?;
            let put = DirectPut::new(
                &url,
                &region,
                provider,
                cfg.request_timeout,
                CONNECT_TIMEOUT,
                cfg.max_in_flight,
            )?;
            Arc::new(DirectKinesis { put, control })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn resolved(region: &str, fips: bool, dual: bool, url: Option<&str>) -> String {
        let shared = aws_types::SdkConfig::builder()
            .use_fips(fips)
            .use_dual_stack(dual)
            .build();
        resolve_endpoint(&shared, url, region)
            .await
            .expect("resolves")
    }

    #[tokio::test]
    async fn endpoints_follow_the_sdk_rules() {
        assert_eq!(
            resolved("eu-west-1", false, false, None).await,
            "https://kinesis.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            resolved("cn-north-1", false, false, None).await,
            "https://kinesis.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            resolved("us-east-1", true, false, None).await,
            "https://kinesis-fips.us-east-1.amazonaws.com"
        );
        assert_eq!(
            resolved("us-east-1", false, true, None).await,
            "https://kinesis.us-east-1.api.aws"
        );
        assert_eq!(
            resolved("us-gov-west-1", false, false, None).await,
            "https://kinesis.us-gov-west-1.amazonaws.com"
        );
        assert_eq!(
            resolved("eu-west-1", false, false, Some("http://127.0.0.1:4567")).await,
            "http://127.0.0.1:4567"
        );
    }
}
