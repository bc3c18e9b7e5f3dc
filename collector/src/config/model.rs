//! The validated configuration: typed values, what the collector runs with and what
//! `check-config` prints (secrets hidden).

#[cfg(test)]
use super::limits::DEFAULT_FSYNC_BYTES;
use super::limits::{DEFAULT_INITIAL_WAIT, DEFAULT_MAX_RETRIES, DEFAULT_MAX_WAIT};
use super::secret::Secret;
use serde::{Deserialize, Serialize, Serializer};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Deserialize, Serialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    Disk,
    Memory,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    Always,
    Interval,
    Never,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    Reject,
    Block,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PutRecordsClient {
    #[default]
    Direct,
    Sdk,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Constant,
    Linear,
    Exponential,
}

/// How the decompressed body is cut into lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// A JSON array when the body starts like one (`[` then `{`, `"`, `[` or `]`) or the
    /// Content-Type is JSON and the body starts with `[`; newline-delimited otherwise.
    #[default]
    Auto,
    /// Always newline-delimited (json_format 0 and 2).
    Lines,
    /// Always one JSON array of entries (json_format 1).
    JsonArray,
}

/// What kind of stream it is: how its shards are paced.
#[derive(Debug, Deserialize, Serialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StreamMode {
    /// Each shard is paced by what Kinesis answers (throttling), nothing assumed.
    #[default]
    OnDemand,
    /// Each shard is held to Kinesis' provisioned limits, and paced by what it answers.
    Provisioned,
}

/// The effective configuration; what `check-config` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub listen: String,
    pub log_format: LogFormat,
    pub tls: Option<TlsConfig>,
    pub service_ids: Vec<String>,
    pub ingest: IngestConfig,
    pub buffer: BufferConfig,
    pub dead_letter: DeadLetterConfig,
    /// The admin listener's address; `None`: off.
    pub admin_listen: Option<String>,
    /// The outputs, each fed from the buffer at its own pace, in a fixed order: `aws_kinesis`,
    /// `s3`, `stdout`, `file`.
    pub outputs: Vec<OutputConfig>,
    pub retry: RetryPolicy,
    pub tail: Option<TailConfig>,
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_timeout: Duration,
    /// `/delivery` is "not delivering" once an output's oldest buffered line is older.
    #[serde(serialize_with = "ser_duration")]
    pub delivery_alert_after: Duration,
    /// Values that were changed to fit a limit.
    pub warnings: Vec<String>,
}

impl Config {
    /// Every secret value the configuration holds (tokens, credentials), to keep out of logs.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(a) = &self.ingest.auth {
            out.push(a.token.expose().to_string());
        }
        if let Some(t) = &self.tail {
            out.push(t.token.expose().to_string());
        }
        for o in &self.outputs {
            let creds = match o {
                OutputConfig::AwsKinesis(k) => k.credentials.as_ref(),
                OutputConfig::S3(s) => s.credentials.as_ref(),
                _ => None,
            };
            if let Some(k) = creds.and_then(|c| c.keys.as_ref()) {
                out.push(k.access_key_id.expose().to_string());
                out.push(k.secret_access_key.expose().to_string());
                out.extend(k.session_token.as_ref().map(|t| t.expose().to_string()));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestConfig {
    pub path: String,
    pub auth: Option<AuthConfig>,
    pub strip_prefix: bool,
    pub max_body_bytes: usize,
    pub max_line_bytes: usize,
    pub framing: Framing,
    pub max_in_flight: usize,
    pub max_in_flight_bytes: usize,
    #[serde(serialize_with = "ser_duration")]
    pub request_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub header_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuthConfig {
    pub header: String,
    pub token: Secret,
}

#[derive(Debug, Clone, Serialize)]
pub struct BufferConfig {
    #[serde(rename = "type")]
    pub kind: BufferKind,
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub fsync: FsyncPolicy,
    #[serde(serialize_with = "ser_duration")]
    pub fsync_interval: Duration,
    pub fsync_bytes: u64,
    pub when_full: WhenFull,
    #[serde(serialize_with = "ser_duration")]
    pub block_timeout: Duration,
    pub segment_bytes: u64,
    #[serde(serialize_with = "ser_duration")]
    pub ack_save_interval: Duration,
}

#[cfg(test)]
impl BufferConfig {
    /// A bounded memory buffer for unit tests; disk tests override the fields they need.
    pub fn for_tests(max_bytes: u64) -> BufferConfig {
        BufferConfig {
            kind: BufferKind::Memory,
            dir: PathBuf::from("unused"),
            max_bytes,
            fsync: FsyncPolicy::Never,
            fsync_interval: Duration::from_millis(20),
            fsync_bytes: DEFAULT_FSYNC_BYTES,
            when_full: WhenFull::Reject,
            block_timeout: Duration::from_secs(1),
            segment_bytes: 1 << 20,
            ack_save_interval: Duration::from_millis(10),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputConfig {
    Stdout,
    File { path: PathBuf },
    AwsKinesis(Box<KinesisConfig>),
    S3(Box<S3Config>),
}

impl OutputConfig {
    /// The output's name: its key under `output`, in logs, metrics and file names.
    pub fn name(&self) -> &'static str {
        match self {
            OutputConfig::Stdout => "stdout",
            OutputConfig::File { .. } => "file",
            OutputConfig::AwsKinesis(_) => "aws_kinesis",
            OutputConfig::S3(_) => "s3",
        }
    }
}

/// How S3 objects are compressed.
#[derive(Debug, Deserialize, Serialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// What object names end in.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => ".log.gz",
            Compression::Zstd => ".log.zst",
            Compression::None => ".log",
        }
    }

    pub fn default_content_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/gzip",
            Compression::Zstd => "application/zstd",
            Compression::None => "text/plain; charset=utf-8",
        }
    }
}

/// Server-side encryption of S3 objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sse {
    Aes256,
    Kms { key_id: Option<String> },
}

#[derive(Debug, Clone, Serialize)]
pub struct S3Config {
    pub bucket: String,
    /// Empty, or ending in `/`.
    pub prefix: String,
    pub key: super::keytemplate::KeyTemplate,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub force_path_style: bool,
    pub credentials: Option<Credentials>,
    pub max_object_bytes: u64,
    #[serde(serialize_with = "ser_duration")]
    pub max_object_age: Duration,
    pub compression: Compression,
    pub content_type: String,
    pub storage_class: Option<String>,
    pub sse: Option<Sse>,
    #[serde(serialize_with = "ser_duration")]
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
}

#[derive(Debug, Clone, Serialize)]
pub struct KinesisConfig {
    pub stream_name: String,
    pub partition_key: PartitionKeySpec,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub credentials: Option<Credentials>,
    pub batch: BatchPolicy,
    pub aggregate: bool,
    pub max_in_flight: usize,
    #[serde(serialize_with = "ser_duration")]
    pub shard_refresh: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub request_timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub health_check_interval: Duration,
    pub max_in_flight_bytes: usize,
    /// The largest record sent (data and partition key).
    pub max_record_bytes: usize,
    pub put_records_client: PutRecordsClient,
    pub stream_mode: StreamMode,
}

/// Where an AWS output gets its credentials: keys, a role assumed with keys or with the SDK
/// chain, or (when the block is absent) the SDK chain alone.
#[derive(Debug, Clone, Serialize)]
pub struct Credentials {
    pub keys: Option<AccessKeys>,
    pub assume_role: Option<AssumeRole>,
}

/// Static AWS keys.
#[derive(Debug, Clone, Serialize)]
pub struct AccessKeys {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

/// A role the output assumes through STS.
#[derive(Debug, Clone, Serialize)]
pub struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: String,
    #[serde(serialize_with = "ser_duration")]
    pub session_duration: Duration,
    pub sts_region: Option<String>,
    pub sts_endpoint_url: Option<String>,
}

/// How records get their partition key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKeySpec {
    /// Spread evenly over the open shards with ExplicitHashKey (Fastly's own behaviour).
    ShardBalanced,
    /// A JSON field, by dotted path.
    Field(Vec<String>),
    Static(String),
    Random,
    Timestamp,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct BatchPolicy {
    pub size: usize,
    #[serde(serialize_with = "ser_duration")]
    pub duration: Duration,
    pub max_batch_bytes: usize,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    #[serde(serialize_with = "ser_duration")]
    pub initial_wait: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub max_wait: Duration,
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            initial_wait: DEFAULT_INITIAL_WAIT,
            max_wait: DEFAULT_MAX_WAIT,
            backoff: Backoff::Exponential,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterConfig {
    pub path: PathBuf,
    /// Rotated past this size.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: usize,
}

impl DeadLetterConfig {
    /// The file at `path`, rotated at the defaults.
    pub fn at(path: PathBuf) -> DeadLetterConfig {
        DeadLetterConfig {
            path,
            max_bytes: super::limits::DEFAULT_DEAD_LETTER_MAX_BYTES,
            keep: super::limits::DEFAULT_DEAD_LETTER_KEEP,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TailConfig {
    pub header: String,
    pub token: Secret,
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// `1s`, `250ms`, `1m 30s`-style text for a duration (the form the file accepts).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Parses a duration: `100ms`, `1s`, `5m`, `2h`, `1m 30s` (humantime's forms); a bare number
/// is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{text:?} is not a duration like 100ms, 1s, 5m ({e})"))
}
