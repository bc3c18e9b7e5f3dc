//! The configuration file as written: every key, its documentation and its default.
//!
//! Invariant: unknown keys are errors (`deny_unknown_fields` everywhere).

use super::limits::*;
use super::model::{
    Backoff, BufferKind, Framing, FsyncPolicy, LogFormat, PutRecordsClient, StreamMode, WhenFull,
};
use super::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

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
    /// Where lines go: one or more of `aws_kinesis`, `s3`, `stdout`, `file`; plus `retry`.
    pub output: RawOutput,
    /// The live tail's token: with it, the status page, `/status`, `/metrics` and the tail are
    /// also served on `listen`, to clients presenting it; absent, only on the admin listener.
    pub tail: Option<RawTail>,
    /// The admin listener: the status page, `/status`, `/metrics` and the tail, without a token.
    #[serde(default)]
    pub admin: RawAdmin,
    /// How long a graceful shutdown may take to flush before leaving the rest in the buffer.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: String,
    /// `/delivery` says "not delivering" once an output's oldest buffered line is older than
    /// this.
    #[serde(default = "default_delivery_alert_after")]
    pub delivery_alert_after: String,
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
    /// Remove the syslog-style prefix Fastly puts before each line (`message_type` classic,
    /// loggly or logplex) from the lines that have one exactly; true by default.
    pub strip_prefix: bool,
    /// Largest body accepted, after decompression (at most 1 GiB).
    pub max_body_bytes: usize,
    /// Longer lines go to the dead-letter file. Default, and most: the Kinesis output's
    /// `max_record_bytes` (1 MiB without a Kinesis output).
    pub max_line_bytes: Option<usize>,
    /// `auto`, `lines` or `json_array`.
    pub framing: Framing,
    /// Requests processed at once; more get 503 with Retry-After.
    pub max_in_flight: usize,
    /// Memory for bodies in flight (raw and decompressed); when spent, 503 with Retry-After.
    /// Default: 256 MiB, or `max_body_bytes` if that is larger.
    pub max_in_flight_bytes: Option<usize>,
    /// Time allowed to receive a whole body; slower clients get 408.
    pub request_timeout: String,
    /// Time allowed to send a request's headers (HTTP/1); slower clients are disconnected.
    pub header_timeout: String,
    /// A connection with no request in progress and no bytes moving for this long is closed
    /// (HTTP/1 and HTTP/2).
    pub idle_timeout: String,
    /// Connections open at once; beyond it a new connection is answered 503 and closed. Also
    /// held below the process's descriptor limit.
    pub max_connections: usize,
}

impl Default for RawIngest {
    fn default() -> Self {
        RawIngest {
            path: DEFAULT_INGEST_PATH.into(),
            auth: None,
            strip_prefix: true,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_line_bytes: None,
            framing: Framing::default(),
            max_in_flight: DEFAULT_INGEST_MAX_IN_FLIGHT,
            max_in_flight_bytes: None,
            request_timeout: DEFAULT_INGEST_REQUEST_TIMEOUT.into(),
            header_timeout: DEFAULT_HEADER_TIMEOUT.into(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT.into(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
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
    /// Most bytes buffered; default 1 GiB on disk, in memory 64 MiB or `ingest.max_body_bytes`
    /// if that is larger.
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
    /// With `when_full: block`, how long a batch may wait for room before its 503.
    pub block_timeout: String,
    /// Size at which the disk buffer starts a new segment file.
    pub segment_bytes: Option<u64>,
    /// How often the disk buffer saves how far the outputs have delivered (when it moved): a
    /// collector killed (kill -9) sends again what it delivered since the last save.
    pub ack_save_interval: String,
}

impl Default for RawBuffer {
    fn default() -> Self {
        RawBuffer {
            kind: BufferKind::Disk,
            dir: None,
            max_bytes: None,
            fsync: FsyncPolicy::Interval,
            fsync_interval: DEFAULT_FSYNC_INTERVAL.into(),
            fsync_bytes: None,
            when_full: WhenFull::Reject,
            block_timeout: DEFAULT_BLOCK_TIMEOUT.into(),
            segment_bytes: None,
            ack_save_interval: DEFAULT_ACK_SAVE_INTERVAL.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDeadLetter {
    /// NDJSON file for lines that cannot be delivered, each with its reason.
    pub path: PathBuf,
    /// Size past which the file is rotated (`path.1`, `path.2`, ...; the oldest beyond `keep`
    /// is deleted).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Rotated files kept beside the current one.
    #[serde(default)]
    pub keep: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address and port of the admin listener (plain HTTP, no token: keep it on localhost or a
    /// private network); `off` disables it.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            listen: default_admin_listen(),
        }
    }
}

impl Default for RawDeadLetter {
    fn default() -> Self {
        RawDeadLetter {
            path: PathBuf::from(DEFAULT_DEAD_LETTER_PATH),
            max_bytes: None,
            keep: None,
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
    /// Archive every line in objects of an S3-compatible bucket.
    pub s3: Option<RawS3>,
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
    /// The file lines are appended to.
    pub path: PathBuf,
}

/// The `aws_kinesis` block, as Fastly's Kinesis logging documents it, plus this collector's
/// extensions.
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
    /// How often ListShards checks the stream for `/readyz` (modes that use ListShards).
    pub health_check_interval: Option<String>,
    /// Most bytes of records in PutRecords calls being sent or waiting for a lane.
    pub max_in_flight_bytes: Option<usize>,
    /// The largest record sent (data and partition key): the stream's maximum record size. 1 MiB
    /// by default (a stream's own default); at most 10 MiB, for a stream raised with
    /// `UpdateMaxRecordSize`. A longer line goes to the dead-letter file.
    pub max_record_bytes: Option<usize>,
    /// `direct` (the JSON 1.1 encoder signed with aws-sigv4) or `sdk` (aws-sdk-kinesis).
    #[serde(default)]
    pub put_records_client: PutRecordsClient,
    /// `on_demand` (default: each shard is paced by what Kinesis answers) or `provisioned`
    /// (each shard is also held to 1,000 records and 1 MiB a second).
    #[serde(default)]
    pub stream_mode: StreamMode,
}

/// The `s3` output: objects of lines, as received, one per line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    /// The bucket objects are written to.
    pub bucket: String,
    /// Put before every key (a `/` is added if it does not end in one); default `edgelog/`.
    pub prefix: Option<String>,
    /// The object key: `{prefix}`, the UTC time of the object's first line (`{yyyy}`, `{mm}`,
    /// `{dd}`, `{hh}`, `{min}`), `{id}` (required: the collector's buffer and the positions
    /// the object covers) and `{ext}` (`.log` plus `.gz` or `.zst`).
    pub key: Option<String>,
    /// AWS region; absent: the SDK's region chain.
    pub region: Option<String>,
    /// Custom endpoint (an S3-compatible store).
    pub endpoint_url: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`.
    #[serde(default)]
    pub force_path_style: bool,
    /// Explicit credentials; absent: the SDK credential chain.
    pub credentials: Option<RawCredentials>,
    /// An object is closed once it holds this many bytes (as stored, compressed).
    pub max_object_bytes: Option<u64>,
    /// An object is closed once its first line has waited this long.
    pub max_object_age: Option<String>,
    /// `gzip` (default), `zstd` or `none`.
    pub compression: Option<super::model::Compression>,
    /// The objects' Content-Type; default by compression.
    pub content_type: Option<String>,
    /// The objects' storage class (`STANDARD`, `STANDARD_IA`, `GLACIER_IR`, ...); absent: the
    /// bucket's default.
    pub storage_class: Option<String>,
    /// Server-side encryption: `AES256` or `aws:kms`; absent: the bucket's default.
    pub sse: Option<String>,
    /// With `sse: aws:kms`, the KMS key; absent: the account's default key for S3.
    pub sse_kms_key_id: Option<String>,
    /// Timeout of one request (a part of up to 8 MiB, or a whole small object).
    pub request_timeout: Option<String>,
    /// Waits between attempts of a failed upload; absent: `output.retry`. Uploads are retried
    /// until they succeed; `max_retries` is how many failures in a row are logged as warnings
    /// before they are logged as errors.
    pub retry: Option<RawRetry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    /// AWS access key id; with `role_arn`, the key that assumes the role.
    pub access_key_id: Option<Secret>,
    /// AWS secret access key, given with `access_key_id`.
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// An IAM role to assume (`arn:aws:iam::<account>:role/<name>`): with the keys above, or
    /// without them with the SDK credential chain. Its sessions are renewed before they end.
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for.
    pub external_id: Option<String>,
    /// The role session's name, as CloudTrail shows it; default `edgelog-collector`.
    pub session_name: Option<String>,
    /// How long one role session lasts: 15m to 12h (and at most the role's own maximum);
    /// default 1h.
    pub session_duration: Option<String>,
    /// The region of the STS endpoint that assumes the role; default the output's region.
    pub sts_region: Option<String>,
    /// The STS endpoint; default the regional endpoint the SDK resolves for `sts_region`.
    pub sts_endpoint_url: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    /// Records per PutRecords call (max 500).
    pub size: Option<usize>,
    /// Longest a record waits for its batch to fill.
    pub duration: Option<String>,
    /// Bytes per PutRecords call (max and default 10 MiB).
    pub max_batch_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Times a record Kinesis refuses as invalid is sent again before it is dead-lettered.
    pub max_retries: Option<u32>,
    /// First wait before a retry.
    pub initial_wait: Option<String>,
    /// Longest wait before a retry.
    pub max_wait: Option<String>,
    /// `constant`, `linear` or `exponential`.
    pub backoff: Option<Backoff>,
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

fn default_admin_listen() -> String {
    DEFAULT_ADMIN_LISTEN.into()
}
fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}
fn default_shutdown_timeout() -> String {
    DEFAULT_SHUTDOWN_TIMEOUT.into()
}
fn default_delivery_alert_after() -> String {
    DEFAULT_DELIVERY_ALERT_AFTER.into()
}
fn default_tail_header() -> String {
    DEFAULT_TAIL_HEADER.into()
}
