//! The collector's configuration: one YAML file, read once and validated into typed values.
//!
//! Invariants: unknown keys are errors; `${VAR}` in any string value is replaced from the
//! environment before anything else looks at it (an unset variable is an error naming it);
//! every error names the key it is about; values above a Kinesis limit are capped with a warning;
//! secrets are [`Secret`]s, which never print.

use serde::{Deserialize, Serialize, Serializer};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Kinesis PutRecords: records per call.
pub const KINESIS_MAX_RECORDS_PER_CALL: usize = 500;
/// Kinesis PutRecords: bytes per call (data and partition keys).
pub const KINESIS_MAX_BYTES_PER_CALL: usize = 5 * 1024 * 1024;
/// Kinesis: bytes per record (data and partition key).
pub const KINESIS_MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Kinesis: characters in a partition key.
pub const KINESIS_MAX_PARTITION_KEY_CHARS: usize = 256;
/// `fsync: interval`: unsynced bytes that trigger a sync before the period ends. One sync per
/// MiB costs little on any disk and keeps a busy collector from waiting out the period.
pub const DEFAULT_FSYNC_BYTES: u64 = 1024 * 1024;

/// A value that must never be printed: Debug and Serialize show a placeholder.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<hidden>")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written.

/// The configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address and port the HTTP(S) server listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The collector's own log on stderr: `text` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Serve HTTPS; absent means plain HTTP (e.g. behind a TLS-terminating proxy).
    pub tls: Option<RawTls>,
    /// Which Fastly services may post here (answered on the challenge endpoint).
    pub fastly: RawFastly,
    #[serde(default)]
    pub ingest: RawIngest,
    #[serde(default)]
    pub buffer: RawBuffer,
    #[serde(default)]
    pub dead_letter: RawDeadLetter,
    /// Where lines go: exactly one of `stdout`, `file`, `aws_kinesis`; plus `retry`.
    pub output: RawOutput,
    /// The live tail endpoint (`collector tail`); absent means disabled.
    pub tail: Option<RawTail>,
    /// How long a graceful shutdown may take to flush before leaving the rest in the buffer.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: String,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate it signed (Fastly's
    /// `tls_client_cert`).
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFastly {
    /// Service ids allowed to post, or `["*"]` for any.
    pub service_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIngest {
    /// Path batches are posted to (POST and PUT).
    pub path: String,
    /// Fastly's `header_name` / `header_value`: a shared token.
    pub auth: Option<RawAuth>,
    /// Remove Fastly's `classic` syslog-style prefix from each line.
    pub strip_prefix: bool,
    /// Largest body accepted, after decompression.
    pub max_body_bytes: usize,
    /// Longer lines go to the dead-letter file; capped at the Kinesis record limit.
    pub max_line_bytes: usize,
    /// `auto`, `lines` or `json_array`.
    pub framing: crate::ingest::decode::Framing,
    /// Requests processed at once; more get 503 with Retry-After.
    pub max_in_flight: usize,
    /// Memory for bodies in flight (raw and decompressed); when spent, 503 with Retry-After.
    pub max_in_flight_bytes: usize,
    /// Time allowed to receive a whole body; slower clients get 408.
    pub request_timeout: String,
}

impl Default for RawIngest {
    fn default() -> Self {
        RawIngest {
            path: "/logs".into(),
            auth: None,
            strip_prefix: false,
            max_body_bytes: 100 * 1024 * 1024,
            max_line_bytes: KINESIS_MAX_RECORD_BYTES,
            framing: Default::default(),
            max_in_flight: 64,
            max_in_flight_bytes: 256 * 1024 * 1024,
            request_timeout: "30s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Header carrying the token.
    pub header: String,
    /// The token; compare is constant-time, and it is never logged.
    pub token: Secret,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBuffer {
    /// `disk` (durable, the default) or `memory` (bounded, lost on exit).
    #[serde(rename = "type")]
    pub kind: BufferKind,
    /// Directory of the disk buffer's segment files.
    pub dir: Option<PathBuf>,
    /// Most bytes buffered; default 1 GiB on disk, 64 MiB in memory.
    pub max_bytes: Option<u64>,
    /// `always`, `interval` or `never`.
    pub fsync: FsyncPolicy,
    /// Group-commit period for `fsync: interval`.
    pub fsync_interval: String,
    /// `fsync: interval` also syncs once this many bytes wait for it, so heavy load is not held
    /// to one group per period; default 1 MiB.
    pub fsync_bytes: Option<u64>,
    /// `reject` (503 at once) or `block` (wait up to `block_timeout`, then 503).
    pub when_full: WhenFull,
    pub block_timeout: String,
    /// Size at which the disk buffer starts a new segment file.
    pub segment_bytes: Option<u64>,
}

impl Default for RawBuffer {
    fn default() -> Self {
        RawBuffer {
            kind: BufferKind::Disk,
            dir: None,
            max_bytes: None,
            fsync: FsyncPolicy::Interval,
            fsync_interval: "100ms".into(),
            fsync_bytes: None,
            when_full: WhenFull::Reject,
            block_timeout: "5s".into(),
            segment_bytes: None,
        }
    }
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDeadLetter {
    /// NDJSON file for lines that cannot be delivered, each with its reason.
    pub path: PathBuf,
}

impl Default for RawDeadLetter {
    fn default() -> Self {
        RawDeadLetter {
            path: PathBuf::from("dead-letter.ndjson"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Print each line on stdout.
    pub stdout: Option<Empty>,
    /// Append each line to a file.
    pub file: Option<RawFileOutput>,
    /// Put each line to a Kinesis data stream.
    pub aws_kinesis: Option<RawKinesis>,
    /// Retry policy for failed writes.
    pub retry: Option<RawRetry>,
}

/// `{}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileOutput {
    pub path: PathBuf,
}

/// The `aws_kinesis` block of seed 003, plus this collector's extensions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKinesis {
    /// The stream to write to.
    pub stream_name: String,
    /// Absent: shard-balanced. A field name (dotted path into JSON lines), `static:VALUE`,
    /// `random` or `timestamp`.
    pub partition_key: Option<String>,
    /// AWS region; absent: the SDK's region chain.
    pub region: Option<String>,
    /// Custom endpoint (emulator, LocalStack).
    pub endpoint_url: Option<String>,
    /// Explicit credentials; absent: the SDK credential chain.
    pub credentials: Option<RawCredentials>,
    #[serde(default)]
    pub batch: RawBatch,
    /// Pack many lines per Kinesis record (KPL aggregated format).
    #[serde(default)]
    pub aggregate: bool,
    /// PutRecords calls in flight at once.
    pub max_in_flight: Option<usize>,
    /// How often the shard map is refreshed (shard-balanced and aggregated modes).
    pub shard_refresh: Option<String>,
    /// Timeout of one PutRecords call.
    pub request_timeout: Option<String>,
    /// How often DescribeStreamSummary checks the stream for `/readyz`.
    pub health_check_interval: Option<String>,
    /// Most bytes of records in PutRecords calls being sent or waiting for a lane.
    pub max_in_flight_bytes: Option<usize>,
    /// `direct` (the JSON 1.1 encoder signed with aws-sigv4) or `sdk` (aws-sdk-kinesis).
    #[serde(default)]
    pub put_records_client: PutRecordsClient,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PutRecordsClient {
    #[default]
    Direct,
    Sdk,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    /// Records per PutRecords call (max 500).
    pub size: Option<usize>,
    /// Longest a record waits for its batch to fill.
    pub duration: Option<String>,
    /// Bytes per PutRecords call (max 5 MiB).
    pub max_batch_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_retries: Option<u32>,
    pub initial_wait: Option<String>,
    pub max_wait: Option<String>,
    pub backoff: Option<Backoff>,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Constant,
    Linear,
    Exponential,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTail {
    /// Header carrying the tail token.
    #[serde(default = "default_tail_header")]
    pub header: String,
    /// Token a `collector tail` client must present.
    pub token: Secret,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_shutdown_timeout() -> String {
    "30s".into()
}
fn default_tail_header() -> String {
    "X-Edgelog-Tail-Token".into()
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.

/// The effective configuration; what `check-config` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub listen: String,
    pub log_format: LogFormat,
    pub tls: Option<TlsConfig>,
    pub service_ids: Vec<String>,
    pub ingest: IngestConfig,
    pub buffer: BufferConfig,
    pub dead_letter: PathBuf,
    pub output: OutputConfig,
    pub retry: RetryPolicy,
    pub tail: Option<TailConfig>,
    #[serde(serialize_with = "ser_duration")]
    pub shutdown_timeout: Duration,
    /// Values that were changed to fit a limit.
    pub warnings: Vec<String>,
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
    pub framing: crate::ingest::decode::Framing,
    pub max_in_flight: usize,
    pub max_in_flight_bytes: usize,
    #[serde(serialize_with = "ser_duration")]
    pub request_timeout: Duration,
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
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputConfig {
    Stdout,
    File { path: PathBuf },
    AwsKinesis(Box<KinesisConfig>),
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
    pub put_records_client: PutRecordsClient,
}

#[derive(Debug, Clone, Serialize)]
pub struct Credentials {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
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
            max_retries: 3,
            initial_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
            backoff: Backoff::Exponential,
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

/// `1s`, `250ms`, `1m30s`-style text for a duration (the form the file accepts).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Parses `100ms`, `1s`, `1.5s`, `5m`, `2h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 100ms, 1s, 5m"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m, h)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{text:?} is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Config {
    /// Reads, interpolates and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_yaml(&text, &|name| std::env::var(name).ok())
    }

    /// Parses a configuration from YAML text, looking variables up with `env`.
    pub fn from_yaml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut value: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| invalid("(file)", e.to_string()))?;
        interpolate(&mut value, "", env)?;
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let reason = e.into_inner().to_string();
            // For a missing key the path is its parent; name the key itself.
            let missing = reason
                .strip_prefix("missing field `")
                .and_then(|r| r.split('`').next());
            let key = match (path.as_str(), missing) {
                (".", Some(m)) => m.to_string(),
                (".", None) => "(top level)".to_string(),
                (p, Some(m)) => format!("{p}.{m}"),
                (p, None) => p.to_string(),
            };
            invalid(&key, reason)
        })?;
        Config::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        if raw.listen.trim().is_empty() {
            return Err(invalid(
                "listen",
                "must be an address such as 127.0.0.1:8080",
            ));
        }
        if raw.fastly.service_ids.is_empty() {
            return Err(invalid(
                "fastly.service_ids",
                "list at least one service id, or \"*\" for any",
            ));
        }
        for id in &raw.fastly.service_ids {
            if id.trim().is_empty() || id.contains(char::is_whitespace) {
                return Err(invalid(
                    "fastly.service_ids",
                    format!("{id:?} is not a service id"),
                ));
            }
        }

        let ing = raw.ingest;
        if !ing.path.starts_with('/') {
            return Err(invalid("ingest.path", "must start with /"));
        }
        let reserved = [
            "/healthz",
            "/readyz",
            "/metrics",
            "/tail",
            "/.well-known/fastly/logging/challenge",
        ];
        if reserved.contains(&ing.path.as_str()) {
            return Err(invalid(
                "ingest.path",
                format!("{} is used by the collector itself", ing.path),
            ));
        }
        if let Some(a) = &ing.auth {
            if a.header.parse::<axum::http::HeaderName>().is_err() {
                return Err(invalid(
                    "ingest.auth.header",
                    format!("{:?} is not a header name", a.header),
                ));
            }
            if a.token.expose().is_empty() {
                return Err(invalid("ingest.auth.token", "is empty"));
            }
        }
        if ing.max_body_bytes == 0 {
            return Err(invalid("ingest.max_body_bytes", "must be more than 0"));
        }
        let mut max_line_bytes = ing.max_line_bytes;
        if max_line_bytes == 0 {
            return Err(invalid("ingest.max_line_bytes", "must be more than 0"));
        }
        if max_line_bytes > KINESIS_MAX_RECORD_BYTES {
            warnings.push(format!(
                "ingest.max_line_bytes {max_line_bytes} is above the Kinesis record limit; capped at {KINESIS_MAX_RECORD_BYTES}"
            ));
            max_line_bytes = KINESIS_MAX_RECORD_BYTES;
        }
        if ing.max_in_flight == 0 {
            return Err(invalid("ingest.max_in_flight", "must be more than 0"));
        }
        if ing.max_in_flight_bytes < ing.max_body_bytes {
            return Err(invalid(
                "ingest.max_in_flight_bytes",
                format!(
                    "{} is less than ingest.max_body_bytes ({}): the largest body could never be accepted",
                    ing.max_in_flight_bytes, ing.max_body_bytes
                ),
            ));
        }
        let ingest = IngestConfig {
            path: ing.path,
            auth: ing.auth.map(|a| AuthConfig {
                header: a.header,
                token: a.token,
            }),
            strip_prefix: ing.strip_prefix,
            max_body_bytes: ing.max_body_bytes,
            max_line_bytes,
            framing: ing.framing,
            max_in_flight: ing.max_in_flight,
            max_in_flight_bytes: ing.max_in_flight_bytes,
            request_timeout: duration("ingest.request_timeout", &ing.request_timeout)?,
        };

        let b = raw.buffer;
        let default_max = match b.kind {
            BufferKind::Disk => 1 << 30,
            BufferKind::Memory => 64 << 20,
        };
        let max_bytes = b.max_bytes.unwrap_or(default_max);
        if max_bytes < ingest.max_body_bytes as u64 {
            return Err(invalid(
                "buffer.max_bytes",
                format!(
                    "{max_bytes} is less than ingest.max_body_bytes ({}): the largest body could never be buffered",
                    ingest.max_body_bytes
                ),
            ));
        }
        let segment_bytes = b
            .segment_bytes
            .unwrap_or_else(|| (max_bytes / 8).clamp(1 << 20, 128 << 20));
        if segment_bytes == 0 {
            return Err(invalid("buffer.segment_bytes", "must be more than 0"));
        }
        let buffer = BufferConfig {
            kind: b.kind,
            dir: b.dir.unwrap_or_else(|| PathBuf::from("data")),
            max_bytes,
            fsync: b.fsync,
            fsync_interval: duration("buffer.fsync_interval", &b.fsync_interval)?,
            fsync_bytes: b.fsync_bytes.unwrap_or(DEFAULT_FSYNC_BYTES),
            when_full: b.when_full,
            block_timeout: duration("buffer.block_timeout", &b.block_timeout)?,
            segment_bytes,
        };
        if buffer.fsync_bytes == 0 {
            return Err(invalid(
                "buffer.fsync_bytes",
                "must be more than 0 (or use fsync: always)",
            ));
        }
        if buffer.fsync == FsyncPolicy::Interval && buffer.fsync_interval.is_zero() {
            return Err(invalid(
                "buffer.fsync_interval",
                "must be more than 0 (or use fsync: always)",
            ));
        }

        let retry = retry_policy(raw.output.retry.unwrap_or_default())?;
        let chosen = [
            raw.output.stdout.is_some(),
            raw.output.file.is_some(),
            raw.output.aws_kinesis.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if chosen != 1 {
            return Err(invalid(
                "output",
                "set exactly one of stdout, file, aws_kinesis",
            ));
        }
        let output = if raw.output.stdout.is_some() {
            OutputConfig::Stdout
        } else if let Some(f) = raw.output.file {
            OutputConfig::File { path: f.path }
        } else if let Some(k) = raw.output.aws_kinesis {
            OutputConfig::AwsKinesis(Box::new(kinesis_config(k, &mut warnings)?))
        } else {
            unreachable!("exactly one output was checked above")
        };

        let tail = match raw.tail {
            Some(t) => {
                if t.token.expose().is_empty() {
                    return Err(invalid("tail.token", "is empty"));
                }
                if t.header.parse::<axum::http::HeaderName>().is_err() {
                    return Err(invalid(
                        "tail.header",
                        format!("{:?} is not a header name", t.header),
                    ));
                }
                Some(TailConfig {
                    header: t.header,
                    token: t.token,
                })
            }
            None => None,
        };

        Ok(Config {
            listen: raw.listen,
            log_format: raw.log_format,
            tls: raw.tls.map(|t| TlsConfig {
                cert: t.cert,
                key: t.key,
                client_ca: t.client_ca,
            }),
            service_ids: raw.fastly.service_ids,
            ingest,
            buffer,
            dead_letter: raw.dead_letter.path,
            output,
            retry,
            tail,
            shutdown_timeout: duration("shutdown_timeout", &raw.shutdown_timeout)?,
            warnings,
        })
    }

    /// The configuration as YAML, secrets hidden.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    parse_duration(text).map_err(|e| invalid(key, e))
}

fn retry_policy(r: RawRetry) -> Result<RetryPolicy, ConfigError> {
    let d = RetryPolicy::default();
    let p = RetryPolicy {
        max_retries: r.max_retries.unwrap_or(d.max_retries),
        initial_wait: match r.initial_wait {
            Some(t) => duration("output.retry.initial_wait", &t)?,
            None => d.initial_wait,
        },
        max_wait: match r.max_wait {
            Some(t) => duration("output.retry.max_wait", &t)?,
            None => d.max_wait,
        },
        backoff: r.backoff.unwrap_or(d.backoff),
    };
    if p.max_wait < p.initial_wait {
        return Err(invalid(
            "output.retry.max_wait",
            "is less than initial_wait",
        ));
    }
    Ok(p)
}

fn kinesis_config(k: RawKinesis, warnings: &mut Vec<String>) -> Result<KinesisConfig, ConfigError> {
    let key = "output.aws_kinesis";
    if k.stream_name.trim().is_empty() {
        return Err(invalid(&format!("{key}.stream_name"), "is empty"));
    }
    let partition_key = match k.partition_key.as_deref().map(str::trim) {
        None | Some("") => PartitionKeySpec::ShardBalanced,
        Some("random") => PartitionKeySpec::Random,
        Some("timestamp") => PartitionKeySpec::Timestamp,
        Some(p) if p.starts_with("static:") => {
            let v = &p["static:".len()..];
            if v.is_empty() || v.chars().count() > KINESIS_MAX_PARTITION_KEY_CHARS {
                return Err(invalid(
                    &format!("{key}.partition_key"),
                    format!(
                        "static value must be 1 to {KINESIS_MAX_PARTITION_KEY_CHARS} characters"
                    ),
                ));
            }
            PartitionKeySpec::Static(v.to_string())
        }
        Some(field) => {
            let path: Vec<String> = field.split('.').map(str::to_string).collect();
            if path.iter().any(|s| s.is_empty()) {
                return Err(invalid(
                    &format!("{key}.partition_key"),
                    format!("{field:?} is not a field path like client_ip or geo.country_code"),
                ));
            }
            PartitionKeySpec::Field(path)
        }
    };
    if let Some(url) = &k.endpoint_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                &format!("{key}.endpoint_url"),
                "must start with http:// or https://",
            ));
        }
    }
    let mut size = k.batch.size.unwrap_or(KINESIS_MAX_RECORDS_PER_CALL);
    if size == 0 {
        return Err(invalid(&format!("{key}.batch.size"), "must be more than 0"));
    }
    if size > KINESIS_MAX_RECORDS_PER_CALL {
        warnings.push(format!(
            "{key}.batch.size {size} is above the PutRecords limit; capped at {KINESIS_MAX_RECORDS_PER_CALL}"
        ));
        size = KINESIS_MAX_RECORDS_PER_CALL;
    }
    let mut max_batch_bytes = k
        .batch
        .max_batch_bytes
        .unwrap_or(KINESIS_MAX_BYTES_PER_CALL);
    if max_batch_bytes == 0 {
        return Err(invalid(
            &format!("{key}.batch.max_batch_bytes"),
            "must be more than 0",
        ));
    }
    if max_batch_bytes > KINESIS_MAX_BYTES_PER_CALL {
        warnings.push(format!(
            "{key}.batch.max_batch_bytes {max_batch_bytes} is above the PutRecords limit; capped at {KINESIS_MAX_BYTES_PER_CALL}"
        ));
        max_batch_bytes = KINESIS_MAX_BYTES_PER_CALL;
    }
    let max_in_flight = k.max_in_flight.unwrap_or(4);
    if max_in_flight == 0 {
        return Err(invalid(
            &format!("{key}.max_in_flight"),
            "must be more than 0",
        ));
    }
    let credentials = k.credentials.map(|c| Credentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: c.session_token,
    });
    Ok(KinesisConfig {
        stream_name: k.stream_name,
        partition_key,
        region: k.region,
        endpoint_url: k.endpoint_url,
        credentials,
        batch: BatchPolicy {
            size,
            duration: duration(
                &format!("{key}.batch.duration"),
                k.batch.duration.as_deref().unwrap_or("5s"),
            )?,
            max_batch_bytes,
        },
        aggregate: k.aggregate,
        max_in_flight,
        shard_refresh: duration(
            &format!("{key}.shard_refresh"),
            k.shard_refresh.as_deref().unwrap_or("60s"),
        )?,
        request_timeout: duration(
            &format!("{key}.request_timeout"),
            k.request_timeout.as_deref().unwrap_or("30s"),
        )?,
        health_check_interval: duration(
            &format!("{key}.health_check_interval"),
            k.health_check_interval.as_deref().unwrap_or("10s"),
        )?,
        max_in_flight_bytes: k.max_in_flight_bytes.unwrap_or(8 * 1024 * 1024).max(1),
        put_records_client: k.put_records_client,
    })
}

/// Replaces `${VAR}` in every string of the tree (`$$` is a literal `$`), naming the key and the
/// variable when one is unset.
fn interpolate(
    value: &mut serde_norway::Value,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    use serde_norway::Value;
    match value {
        Value::String(s) if s.contains('$') => {
            *s = substitute(s, env).map_err(|reason| invalid(key, reason))?;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{key}[{i}]"), env)?;
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let name = match k {
                    Value::String(s) => s.clone(),
                    other => format!("{other:?}"),
                };
                let child = if key.is_empty() {
                    name
                } else {
                    format!("{key}.{name}")
                };
                interpolate(v, &child, env)?;
            }
        }
        Value::Tagged(t) => interpolate(&mut t.value, key, env)?,
        _ => {}
    }
    Ok(())
}

fn substitute(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| "unterminated ${ in value".to_string())?;
            let name = &r[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("${{{name}}} is not a valid variable name"));
            }
            let v = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&v);
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const MINIMAL: &str = "fastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\n";

    fn load(yaml: &str) -> Result<Config, ConfigError> {
        let env: HashMap<&str, &str> = [
            ("TOKEN", "t0k3n"),
            ("AKID", "AKIAEXAMPLE"),
            ("SECRET", "s3cr3t"),
        ]
        .into_iter()
        .collect();
        Config::from_yaml(yaml, &|k| env.get(k).map(|v| v.to_string()))
    }

    fn err(yaml: &str) -> String {
        load(yaml).expect_err("should fail").to_string()
    }

    #[test]
    fn defaults() {
        let c = load(MINIMAL).expect("valid");
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.ingest.path, "/logs");
        assert_eq!(c.ingest.max_body_bytes, 104_857_600);
        assert_eq!(c.ingest.max_line_bytes, 1_048_576);
        assert_eq!(c.buffer.kind, BufferKind::Disk);
        assert_eq!(c.buffer.dir, PathBuf::from("data"));
        assert_eq!(c.buffer.fsync, FsyncPolicy::Interval);
        assert_eq!(c.buffer.fsync_interval, Duration::from_millis(100));
        assert_eq!(c.buffer.fsync_bytes, DEFAULT_FSYNC_BYTES);
        assert_eq!(c.retry, RetryPolicy::default());
        assert!(matches!(c.output, OutputConfig::Stdout));
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn the_issue_example_and_seed_003_block_are_accepted() {
        let yaml = r#"
listen: "127.0.0.1:9000"
fastly:
  service_ids: ["SERVICEID1", "SERVICEID2"]
ingest:
  path: /logs
  auth:
    header: X-Edgelog-Token
    token: "${TOKEN}"
  strip_prefix: false
  max_body_bytes: 104857600
  max_line_bytes: 1048576
dead_letter:
  path: dead-letter.ndjson
output:
  aws_kinesis:
    stream_name: "logs"
    partition_key: "client_ip"
    region: "us-east-1"
    endpoint_url: "http://127.0.0.1:4567"
    credentials:
      access_key_id: "${AKID}"
      secret_access_key: "${SECRET}"
      session_token: "..."
    batch: { size: 500, duration: "1s", max_batch_bytes: 5242880 }
  retry: { max_retries: 3, initial_wait: "1s", max_wait: "30s", backoff: exponential }
"#;
        let c = load(yaml).expect("valid");
        assert_eq!(
            c.ingest.auth.as_ref().expect("auth").token.expose(),
            "t0k3n"
        );
        let OutputConfig::AwsKinesis(k) = &c.output else {
            panic!("kinesis")
        };
        assert_eq!(k.stream_name, "logs");
        assert_eq!(
            k.partition_key,
            PartitionKeySpec::Field(vec!["client_ip".into()])
        );
        assert_eq!(k.batch.duration, Duration::from_secs(1));
        assert_eq!(
            k.credentials
                .as_ref()
                .expect("creds")
                .secret_access_key
                .expose(),
            "s3cr3t"
        );
        let printed = c.to_yaml();
        assert!(
            !printed.contains("t0k3n")
                && !printed.contains("s3cr3t")
                && !printed.contains("AKIAEXAMPLE")
        );
        assert!(printed.contains("<hidden>"));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = err("fastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\ningest: {pathh: /x}\n");
        assert!(e.starts_with("ingest.pathh: unknown field `pathh`"), "{e}");
        let e = err("fastly: {service_ids: [\"*\"]}\noutput: {aws_kinesis: {stream_name: s, batch: {sise: 1}}}\n");
        assert!(
            e.starts_with("output.aws_kinesis.batch.sise: unknown field `sise`"),
            "{e}"
        );
        let e = err("fastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\nextra: 1\n");
        assert!(e.contains("unknown field `extra`"), "{e}");
    }

    #[test]
    fn unset_variables_name_variable_and_key() {
        let e = err("fastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\ningest: {auth: {header: X-T, token: \"${NOPE}\"}}\n");
        assert_eq!(e, "ingest.auth.token: environment variable NOPE is not set");
        let c =
            load("fastly: {service_ids: [\"a$$b\"]}\noutput: {stdout: {}}\n").expect("escaped $");
        assert_eq!(c.service_ids, vec!["a$b"]);
        assert!(
            err("fastly: {service_ids: [\"${bad-name}\"]}\noutput: {stdout: {}}\n")
                .contains("not a valid variable")
        );
    }

    #[test]
    fn kinesis_limits_are_capped_with_a_warning() {
        let c = load("fastly: {service_ids: [\"*\"]}\ningest: {max_line_bytes: 2000000}\noutput: {aws_kinesis: {stream_name: s, batch: {size: 1000, max_batch_bytes: 10000000}}}\n")
            .expect("valid");
        let OutputConfig::AwsKinesis(k) = &c.output else {
            panic!("kinesis")
        };
        assert_eq!(k.batch.size, KINESIS_MAX_RECORDS_PER_CALL);
        assert_eq!(k.batch.max_batch_bytes, KINESIS_MAX_BYTES_PER_CALL);
        assert_eq!(c.ingest.max_line_bytes, KINESIS_MAX_RECORD_BYTES);
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    }

    #[test]
    fn partition_key_strategies() {
        let pk = |v: &str| {
            let c = load(&format!(
                "fastly: {{service_ids: [\"*\"]}}\noutput: {{aws_kinesis: {{stream_name: s, partition_key: \"{v}\"}}}}\n"
            ))
            .expect("valid");
            match c.output {
                OutputConfig::AwsKinesis(k) => k.partition_key,
                _ => panic!("kinesis"),
            }
        };
        assert_eq!(pk("random"), PartitionKeySpec::Random);
        assert_eq!(pk("timestamp"), PartitionKeySpec::Timestamp);
        assert_eq!(pk("static:abc"), PartitionKeySpec::Static("abc".into()));
        assert_eq!(
            pk("geo.country_code"),
            PartitionKeySpec::Field(vec!["geo".into(), "country_code".into()])
        );
        assert_eq!(pk(""), PartitionKeySpec::ShardBalanced);
        assert!(err("fastly: {service_ids: [\"*\"]}\noutput: {aws_kinesis: {stream_name: s, partition_key: \"a..b\"}}\n").contains("partition_key"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(String, &str)> = vec![
            (
                "fastly: {service_ids: []}\noutput: {stdout: {}}\n".to_string(),
                "fastly.service_ids",
            ),
            ("output: {stdout: {}}\n".to_string(), "fastly"),
            (
                MINIMAL.replace("{stdout: {}}", "{stdout: {}, file: {path: x}}"),
                "output",
            ),
            (format!("{MINIMAL}ingest: {{path: logs}}\n"), "ingest.path"),
            (
                format!("{MINIMAL}ingest: {{path: /metrics}}\n"),
                "ingest.path",
            ),
            (
                format!("{MINIMAL}ingest: {{request_timeout: 5 parsecs}}\n"),
                "ingest.request_timeout",
            ),
            (
                format!("{MINIMAL}ingest: {{auth: {{header: \"bad header\", token: x}}}}\n"),
                "ingest.auth.header",
            ),
            (format!("{MINIMAL}buffer: {{type: tape}}\n"), "buffer.type"),
            (
                format!("{MINIMAL}buffer: {{fsync_bytes: 0}}\n"),
                "buffer.fsync_bytes",
            ),
            (
                format!("{MINIMAL}buffer: {{fsync_interval: 0s}}\n"),
                "buffer.fsync_interval",
            ),
            (
                format!("{MINIMAL}buffer: {{max_bytes: 10}}\n"),
                "buffer.max_bytes",
            ),
            (
                format!("{MINIMAL}ingest: {{max_in_flight_bytes: 10}}\n"),
                "ingest.max_in_flight_bytes",
            ),
            (
                MINIMAL.replace("{stdout: {}}", "{stdout: {}, retry: {backoff: random}}"),
                "output.retry.backoff",
            ),
            (
                MINIMAL.replace(
                    "{stdout: {}}",
                    "{stdout: {}, retry: {initial_wait: 10s, max_wait: 1s}}",
                ),
                "output.retry.max_wait",
            ),
            (
                MINIMAL.replace(
                    "{stdout: {}}",
                    "{aws_kinesis: {stream_name: s, endpoint_url: \"localhost:1\"}}",
                ),
                "output.aws_kinesis.endpoint_url",
            ),
            (
                MINIMAL.replace("{stdout: {}}", "{aws_kinesis: {region: x}}"),
                "output.aws_kinesis.stream_name",
            ),
            (
                "listen: [1]\nfastly: {service_ids: [\"*\"]}\noutput: {stdout: {}}\n".to_string(),
                "listen",
            ),
        ];
        for (yaml, key) in cases {
            let e = err(&yaml);
            assert!(
                e.starts_with(&format!("{key}:")),
                "want key {key}, got: {e}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("1d").is_err());
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
    }
}
