//! Starting one configured output on its lane of the buffer: its accounting, the output itself
//! and its driver, as `run` and `collector dead-letter replay` both need them.

use super::acks::Acks;
use super::driver::{Driver, Output};
use super::error::OutputError;
use super::kinesis::output::KinesisOutput;
use super::s3::output::S3Output;
use super::stdio::StdioOutput;
use crate::buffer::Buffer;
use crate::config::{OutputConfig, RetryPolicy};
use crate::deadletter::DeadLetter;
use crate::health::Delivery;
use crate::metrics::Metrics;
use std::sync::Arc;

/// What every output started on one buffer shares.
pub struct Shared {
    pub buffer: Arc<Buffer>,
    pub dead: Arc<DeadLetter>,
    pub delivery: Arc<Delivery>,
    pub metrics: Arc<Metrics>,
    pub retry: RetryPolicy,
    /// Lines longer than this are dead-lettered before an output that cannot take them.
    pub max_line_bytes: usize,
    pub buffer_max_bytes: u64,
}

/// Starts `out` on lane `lane`; returns its driver (to spawn) and its accounting.
/// `read_ahead`: most bytes read from the buffer and not yet acknowledged (disk buffer).
pub async fn start(
    out: &OutputConfig,
    lane: usize,
    read_ahead: Option<usize>,
    s: &Shared,
) -> Result<(Driver, Output), OutputError> {
    let acks = Arc::new(Acks::new(
        s.buffer.clone(),
        lane,
        read_ahead,
        s.metrics.clone(),
    ));
    let output = match out {
        OutputConfig::Stdout => Output::Stdio(StdioOutput::stdout()),
        OutputConfig::File { path } => Output::Stdio(StdioOutput::file(path.clone())),
        OutputConfig::AwsKinesis(k) => {
            let api = super::kinesis::connect::connect(k).await?;
            Output::Kinesis(Box::new(
                KinesisOutput::start(
                    k,
                    api,
                    acks.clone(),
                    s.dead.clone(),
                    s.delivery.clone(),
                    s.retry,
                )
                .await?,
            ))
        }
        OutputConfig::S3(c) => Output::S3(Box::new(
            S3Output::start(
                Arc::new((**c).clone()),
                acks.clone(),
                s.buffer.clone(),
                s.buffer_max_bytes,
                s.metrics.clone(),
            )
            .await?,
        )),
    };
    let max_line_bytes = match out {
        // The archive keeps every line as received.
        OutputConfig::S3(_) => None,
        _ => Some(s.max_line_bytes),
    };
    Ok((
        Driver {
            buffer: s.buffer.clone(),
            acks,
            dead: s.dead.clone(),
            max_line_bytes,
        },
        output,
    ))
}
