//! Every limit and default of the configuration, in one place.

use std::time::Duration;

/// Kinesis PutRecords: records per call.
pub const KINESIS_MAX_RECORDS_PER_CALL: usize = 500;
/// Kinesis PutRecords: bytes per call (data and partition keys).
pub const KINESIS_MAX_BYTES_PER_CALL: usize = 10 * 1024 * 1024;
/// Kinesis: the most bytes a record can hold (data and partition key) on a stream whose maximum
/// record size is raised to its highest (`UpdateMaxRecordSize`, 10240 KiB); the most
/// `output.aws_kinesis.max_record_bytes` takes.
pub const KINESIS_MAX_RECORD_BYTES: usize = 10 * 1024 * 1024;
/// `output.aws_kinesis.max_record_bytes`: a stream's maximum record size unless it is raised
/// (1024 KiB), so the default sends nothing a new stream refuses.
pub const DEFAULT_KINESIS_MAX_RECORD_BYTES: usize = 1024 * 1024;
/// `aggregate: true`: an aggregated record is closed when the next line would take it (data and
/// partition key) past this size. Kinesis bills writes in 25 KB units, so any record this large
/// costs the same per byte as a 1 MiB one; a smaller record fills sooner (less waiting in the
/// buffer) and is still in the CPU cache while it is encoded, hashed (MD5, SHA-256) and sent.
/// Measured with `scripts/bench` (memory-aggregate, same run): 256 KiB delivered 185-194k lines/s
/// at 2.9-3.3 CPU-s per million lines, 1 MiB 153-159k at 3.6.
pub const AGGREGATE_RECORD_BYTES: usize = 256 * 1024;
/// Kinesis: characters in a partition key.
pub const KINESIS_MAX_PARTITION_KEY_CHARS: usize = 256;
/// Kinesis: records a shard takes per second (provisioned streams).
pub const KINESIS_SHARD_RECORDS_PER_SECOND: f64 = 1000.0;
/// Kinesis: bytes a shard takes per second (provisioned streams).
pub const KINESIS_SHARD_BYTES_PER_SECOND: f64 = 1024.0 * 1024.0;

/// `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `shutdown_timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: &str = "30s";
/// `delivery_alert_after`.
pub const DEFAULT_DELIVERY_ALERT_AFTER: &str = "5m";
/// `/delivery` says "not delivering" once an output has been throttled this long without a call
/// going through unthrottled.
pub const THROTTLED_ALERT_AFTER: Duration = Duration::from_secs(60);
/// `tail.header`.
pub const DEFAULT_TAIL_HEADER: &str = "X-Edgelog-Tail-Token";

/// `ingest.path`.
pub const DEFAULT_INGEST_PATH: &str = "/logs";
/// `ingest.max_body_bytes`: Fastly's largest request (`request_max_bytes` 0 means 100 MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 100 * 1024 * 1024;
/// The largest `ingest.max_body_bytes` accepted: line offsets are 32-bit.
pub const MAX_BODY_BYTES_LIMIT: usize = 1024 * 1024 * 1024;
/// `ingest.max_in_flight`.
pub const DEFAULT_INGEST_MAX_IN_FLIGHT: usize = 64;
/// `ingest.max_in_flight_bytes`, at least `max_body_bytes`.
pub const DEFAULT_INGEST_MAX_IN_FLIGHT_BYTES: usize = 256 * 1024 * 1024;
/// `ingest.header_timeout`: time to send a request's headers (HTTP/1).
pub const DEFAULT_HEADER_TIMEOUT: &str = "10s";
/// `ingest.idle_timeout`: a connection with no request in progress and no bytes moving for this
/// long is closed.
pub const DEFAULT_IDLE_TIMEOUT: &str = "60s";
/// `ingest.max_connections`: connections open at once (also held under the descriptor limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// `ingest.request_timeout`.
pub const DEFAULT_INGEST_REQUEST_TIMEOUT: &str = "30s";

/// `buffer.dir`.
pub const DEFAULT_BUFFER_DIR: &str = "data";
/// `buffer.max_bytes` for the disk buffer.
pub const DEFAULT_DISK_BUFFER_BYTES: u64 = 1 << 30;
/// `buffer.max_bytes` for the memory buffer, at least `max_body_bytes`.
pub const DEFAULT_MEMORY_BUFFER_BYTES: u64 = 64 << 20;
/// `buffer.fsync_interval`.
pub const DEFAULT_FSYNC_INTERVAL: &str = "100ms";
/// `fsync: interval`: unsynced bytes that trigger a sync before the period ends. One sync per
/// MiB costs little on any disk and keeps a busy collector from waiting out the period.
pub const DEFAULT_FSYNC_BYTES: u64 = 1024 * 1024;
/// `buffer.ack_save_interval`: a save is one small write without a sync (a sync comes at most
/// every second, and before segments are deleted), so saving often costs little.
pub const DEFAULT_ACK_SAVE_INTERVAL: &str = "10ms";
/// The longest `buffer.ack_save_interval` accepted.
pub const MAX_ACK_SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// `buffer.block_timeout`.
pub const DEFAULT_BLOCK_TIMEOUT: &str = "5s";
/// `buffer.segment_bytes`: an eighth of `max_bytes`, within these bounds.
pub const MIN_DEFAULT_SEGMENT_BYTES: u64 = 1 << 20;
pub const MAX_DEFAULT_SEGMENT_BYTES: u64 = 128 << 20;

/// `dead_letter.path`.
pub const DEFAULT_DEAD_LETTER_PATH: &str = "dead-letter.ndjson";
/// `dead_letter.max_bytes`: the size past which the file is rotated, and its least.
pub const DEFAULT_DEAD_LETTER_MAX_BYTES: u64 = 100 << 20;
pub const MIN_DEAD_LETTER_MAX_BYTES: u64 = 4096;
/// `dead_letter.keep`: rotated files kept, and the most.
pub const DEFAULT_DEAD_LETTER_KEEP: usize = 5;
pub const MAX_DEAD_LETTER_KEEP: usize = 1000;

/// `admin.listen`; `off` disables the admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9180";
pub const ADMIN_LISTEN_OFF: &str = "off";
/// Longest tail filter accepted.
pub const MAX_TAIL_FILTER_BYTES: usize = 1024;

/// `output.aws_kinesis.batch.duration`.
pub const DEFAULT_BATCH_DURATION: &str = "5s";
/// `output.aws_kinesis.max_in_flight`.
pub const DEFAULT_KINESIS_MAX_IN_FLIGHT: usize = 4;
/// `output.aws_kinesis.shard_refresh`.
pub const DEFAULT_SHARD_REFRESH: &str = "60s";
/// `output.aws_kinesis.request_timeout`.
pub const DEFAULT_KINESIS_REQUEST_TIMEOUT: &str = "30s";
/// `output.aws_kinesis.health_check_interval`.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: &str = "10s";
/// `output.aws_kinesis.max_in_flight_bytes`.
pub const DEFAULT_KINESIS_MAX_IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;

/// `output.retry`.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
pub const DEFAULT_INITIAL_WAIT: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// S3: the prefix before every key.
pub const DEFAULT_S3_PREFIX: &str = "edgelog/";
/// S3: the key, Hive-style partitions by the UTC hour of the object's first line.
pub const DEFAULT_S3_KEY: &str = "{prefix}dt={yyyy}-{mm}-{dd}/hour={hh}/{id}{ext}";
/// S3: objects are closed at this size (as stored).
pub const DEFAULT_S3_MAX_OBJECT_BYTES: u64 = 64 * 1024 * 1024;
/// S3: the smallest `max_object_bytes` (S3's smallest multipart part).
pub const MIN_S3_MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024;
/// S3: objects are closed once their first line is this old.
pub const DEFAULT_S3_MAX_OBJECT_AGE: &str = "5m";
/// S3: timeout of one request.
pub const DEFAULT_S3_REQUEST_TIMEOUT: &str = "60s";
/// S3: size of a multipart upload's parts (S3 takes 5 MiB to 5 GiB, and 10,000 parts).
pub const S3_PART_BYTES: usize = 8 * 1024 * 1024;
/// S3: parts of one output being uploaded at once.
pub const S3_PARTS_IN_FLIGHT: usize = 4;
/// S3: most parts in one object.
pub const S3_MAX_PARTS: u64 = 10_000;
/// S3: characters of an object's `{id}` (buffer id, then the position of its first line).
pub const OBJECT_ID_CHARS: usize = 16 + 1 + 28;

/// `credentials.session_name`.
pub const DEFAULT_ROLE_SESSION_NAME: &str = "edgelog-collector";
/// `credentials.session_duration`.
pub const DEFAULT_ROLE_SESSION_DURATION: &str = "1h";
/// STS: the shortest role session.
pub const MIN_ROLE_SESSION: Duration = Duration::from_secs(15 * 60);
/// STS: the longest role session (a role's own maximum may be lower).
pub const MAX_ROLE_SESSION: Duration = Duration::from_secs(12 * 3600);
/// Credentials that expire (assumed roles, SSO, instance roles) are renewed this long before.
pub const CREDENTIALS_REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);
