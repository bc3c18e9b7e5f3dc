//! The collector's own log: one subscriber writing through the secret scrubber (`redact`), and
//! rate limits for messages that repeat (`ratelimit`).

pub(crate) mod ratelimit;
pub(crate) mod redact;

use crate::config::LogFormat;
use redact::{RedactingStderr, Redactor};
use std::sync::Arc;

/// Installs the log for this process: `EDGELOG_LOG` filters (`info` by default), lines in
/// `format`, `secrets` and credential-shaped text scrubbed from every line.
pub fn init(format: LogFormat, secrets: Vec<String>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGELOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr(Arc::new(Redactor::with_env(secrets))));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// `message` with the secrets in the environment and credential-shaped text scrubbed, for what
/// the command line prints outside the log (its errors).
pub fn scrub(message: &str) -> String {
    Redactor::with_env([]).scrub(message).into_owned()
}
