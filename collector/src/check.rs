//! `collector check-config`: what can be checked before serving. Always the TLS files (read and
//! matched, as a start would); with `--probe`, each AWS output's access, without sending a line:
//! the Kinesis stream answering ListShards with the configured credentials, and the archive's
//! start-up check (the bucket exists; a multipart upload opened under the prefix and aborted).

use crate::config::{Config, OutputConfig};
use crate::http::tls::{Tls, TlsError};
use crate::metrics::Metrics;
use crate::output::error::OutputError;
use crate::output::kinesis::{connect, output::start_error};
use crate::output::s3::client::S3Client;
use crate::output::s3::error::S3StartError;
use std::sync::Arc;

/// Reads the certificate, key and client CA as a start would.
pub fn tls_files(config: &Config) -> Result<(), TlsError> {
    if let Some(c) = &config.tls {
        Tls::load(c, Arc::new(Metrics::default()))?;
    }
    Ok(())
}

/// Checks each AWS output's access without sending a line; returns one line per output saying
/// what was found.
pub async fn probe(config: &Config) -> Result<Vec<String>, OutputError> {
    let mut found = Vec::new();
    for out in &config.outputs {
        match out {
            OutputConfig::AwsKinesis(k) => {
                let api = connect::connect(k).await?;
                let shards = api
                    .list_shards(&k.stream_name)
                    .await
                    .map_err(|e| start_error(k, e))?;
                found.push(format!(
                    "aws_kinesis: stream {:?} answers ListShards with these credentials ({} open shards); PutRecords is checked by the first line",
                    k.stream_name,
                    shards.len()
                ));
            }
            OutputConfig::S3(c) => {
                let client =
                    S3Client::connect(Arc::new((**c).clone()), Arc::new(Metrics::default()))
                        .await?;
                if let Some(f) = client.check().await? {
                    return Err(S3StartError::Unreachable { source: f }.into());
                }
                found.push(format!(
                    "s3: bucket {:?} exists and takes multipart uploads under {:?} (opened and aborted)",
                    c.bucket, c.prefix
                ));
            }
            OutputConfig::Stdout | OutputConfig::File { .. } => {}
        }
    }
    Ok(found)
}
