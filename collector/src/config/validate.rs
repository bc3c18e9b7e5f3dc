//! Validation: the file as written becomes typed values, once.
//!
//! Invariants: every error names the key it is about (never a secret or a value taken from the
//! environment); values above a Kinesis limit are capped with a warning; every combination of
//! defaults is a valid configuration.

use super::error::{invalid, ConfigError};
use super::interpolate::{interpolate, scrub};
use super::limits::*;
use super::model::*;
use super::schema::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
        let mut used = Vec::new();
        interpolate(&mut value, "", env, &mut used)?;
        let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let reason = scrub(&e.into_inner().to_string(), &used);
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

    fn validate(mut raw: RawConfig) -> Result<Config, ConfigError> {
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
            "/status",
            "/",
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
        if ing.max_body_bytes > MAX_BODY_BYTES_LIMIT {
            return Err(invalid(
                "ingest.max_body_bytes",
                format!(
                    "{} is more than the largest body the collector takes ({MAX_BODY_BYTES_LIMIT})",
                    ing.max_body_bytes
                ),
            ));
        }
        // The Kinesis output first: its largest record is the longest line worth taking.
        let kinesis = raw
            .output
            .aws_kinesis
            .take()
            .map(|k| kinesis_config(k, &mut warnings))
            .transpose()?;
        let line_cap = kinesis
            .as_ref()
            .map_or(DEFAULT_KINESIS_MAX_RECORD_BYTES, |k| k.max_record_bytes);
        let mut max_line_bytes = ing.max_line_bytes.unwrap_or(line_cap);
        if max_line_bytes == 0 {
            return Err(invalid("ingest.max_line_bytes", "must be more than 0"));
        }
        if max_line_bytes > line_cap {
            warnings.push(format!(
                "ingest.max_line_bytes {max_line_bytes} is above the largest Kinesis record (output.aws_kinesis.max_record_bytes); capped at {line_cap}"
            ));
            max_line_bytes = line_cap;
        }
        if ing.max_in_flight == 0 {
            return Err(invalid("ingest.max_in_flight", "must be more than 0"));
        }
        let max_in_flight_bytes = ing
            .max_in_flight_bytes
            .unwrap_or(DEFAULT_INGEST_MAX_IN_FLIGHT_BYTES.max(ing.max_body_bytes));
        if max_in_flight_bytes < ing.max_body_bytes {
            return Err(invalid(
                "ingest.max_in_flight_bytes",
                format!(
                    "{} is less than ingest.max_body_bytes ({}): the largest body could never be accepted",
                    max_in_flight_bytes, ing.max_body_bytes
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
            max_in_flight_bytes,
            request_timeout: duration("ingest.request_timeout", &ing.request_timeout)?,
            header_timeout: positive("ingest.header_timeout", &ing.header_timeout)?,
            idle_timeout: positive("ingest.idle_timeout", &ing.idle_timeout)?,
            max_connections: match ing.max_connections {
                0 => return Err(invalid("ingest.max_connections", "must be more than 0")),
                n => n,
            },
        };

        let b = raw.buffer;
        let default_max = match b.kind {
            BufferKind::Disk => DEFAULT_DISK_BUFFER_BYTES,
            BufferKind::Memory => DEFAULT_MEMORY_BUFFER_BYTES.max(ingest.max_body_bytes as u64),
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
        let segment_bytes = b.segment_bytes.unwrap_or_else(|| {
            (max_bytes / 8).clamp(MIN_DEFAULT_SEGMENT_BYTES, MAX_DEFAULT_SEGMENT_BYTES)
        });
        if segment_bytes == 0 {
            return Err(invalid("buffer.segment_bytes", "must be more than 0"));
        }
        let buffer = BufferConfig {
            kind: b.kind,
            dir: b.dir.unwrap_or_else(|| PathBuf::from(DEFAULT_BUFFER_DIR)),
            max_bytes,
            fsync: b.fsync,
            fsync_interval: duration("buffer.fsync_interval", &b.fsync_interval)?,
            fsync_bytes: b.fsync_bytes.unwrap_or(DEFAULT_FSYNC_BYTES),
            when_full: b.when_full,
            block_timeout: duration("buffer.block_timeout", &b.block_timeout)?,
            segment_bytes,
            ack_save_interval: duration("buffer.ack_save_interval", &b.ack_save_interval)?,
        };
        if buffer.ack_save_interval.is_zero() || buffer.ack_save_interval > MAX_ACK_SAVE_INTERVAL {
            return Err(invalid(
                "buffer.ack_save_interval",
                format!(
                    "must be more than 0 and at most {}",
                    humantime::format_duration(MAX_ACK_SAVE_INTERVAL)
                ),
            ));
        }
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

        let retry = retry_policy("output.retry", raw.output.retry.unwrap_or_default())?;
        let mut outputs = Vec::new();
        if let Some(k) = kinesis {
            outputs.push(OutputConfig::AwsKinesis(Box::new(k)));
        }
        if let Some(mut s) = raw.output.s3 {
            let own = match s.retry.take() {
                Some(r) => retry_policy("output.s3.retry", r)?,
                None => retry,
            };
            outputs.push(OutputConfig::S3(Box::new(super::s3::s3_config(s, own)?)));
        }
        if raw.output.stdout.is_some() {
            outputs.push(OutputConfig::Stdout);
        }
        if let Some(f) = raw.output.file {
            outputs.push(OutputConfig::File { path: f.path });
        }
        if outputs.is_empty() {
            return Err(invalid(
                "output",
                "set at least one of aws_kinesis, s3, stdout, file",
            ));
        }

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
            dead_letter: DeadLetterConfig {
                path: raw.dead_letter.path,
                max_bytes: match raw.dead_letter.max_bytes {
                    None => DEFAULT_DEAD_LETTER_MAX_BYTES,
                    Some(b) if b >= MIN_DEAD_LETTER_MAX_BYTES => b,
                    Some(b) => {
                        return Err(invalid(
                            "dead_letter.max_bytes",
                            format!("{b} is below the least, {MIN_DEAD_LETTER_MAX_BYTES}"),
                        ))
                    }
                },
                keep: match raw.dead_letter.keep {
                    None => DEFAULT_DEAD_LETTER_KEEP,
                    Some(k) if k <= MAX_DEAD_LETTER_KEEP => k,
                    Some(k) => {
                        return Err(invalid(
                            "dead_letter.keep",
                            format!("{k} is above the most, {MAX_DEAD_LETTER_KEEP}"),
                        ))
                    }
                },
            },
            admin_listen: match raw.admin.listen.trim() {
                ADMIN_LISTEN_OFF => None,
                a if a.parse::<std::net::SocketAddr>().is_ok() => Some(a.to_string()),
                a => {
                    return Err(invalid(
                        "admin.listen",
                        format!("{a:?} is not an address and port like 127.0.0.1:9180, or off"),
                    ))
                }
            },
            outputs,
            retry,
            tail,
            shutdown_timeout: duration("shutdown_timeout", &raw.shutdown_timeout)?,
            delivery_alert_after: duration("delivery_alert_after", &raw.delivery_alert_after)?,
            warnings,
        })
    }

    /// The configuration as YAML, secrets hidden.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

fn positive(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let d = duration(key, text)?;
    if d.is_zero() {
        return Err(invalid(key, "must be more than 0"));
    }
    Ok(d)
}

fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    parse_duration(text).map_err(|e| invalid(key, e))
}

fn retry_policy(key: &str, r: RawRetry) -> Result<RetryPolicy, ConfigError> {
    let d = RetryPolicy::default();
    let p = RetryPolicy {
        max_retries: r.max_retries.unwrap_or(d.max_retries),
        initial_wait: match r.initial_wait {
            Some(t) => duration(&format!("{key}.initial_wait"), &t)?,
            None => d.initial_wait,
        },
        max_wait: match r.max_wait {
            Some(t) => duration(&format!("{key}.max_wait"), &t)?,
            None => d.max_wait,
        },
        backoff: r.backoff.unwrap_or(d.backoff),
    };
    if p.max_wait < p.initial_wait {
        return Err(invalid(
            &format!("{key}.max_wait"),
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
    let max_record_bytes = k
        .max_record_bytes
        .unwrap_or(DEFAULT_KINESIS_MAX_RECORD_BYTES);
    if max_record_bytes == 0 || max_record_bytes > KINESIS_MAX_RECORD_BYTES {
        return Err(invalid(
            &format!("{key}.max_record_bytes"),
            format!(
                "{max_record_bytes} is not 1 to {KINESIS_MAX_RECORD_BYTES} (10 MiB, the largest record Kinesis takes)"
            ),
        ));
    }
    let max_in_flight = k.max_in_flight.unwrap_or(DEFAULT_KINESIS_MAX_IN_FLIGHT);
    if max_in_flight == 0 {
        return Err(invalid(
            &format!("{key}.max_in_flight"),
            "must be more than 0",
        ));
    }
    let credentials = k
        .credentials
        .map(|c| super::credentials::credentials(&format!("{key}.credentials"), c))
        .transpose()?;
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
                k.batch
                    .duration
                    .as_deref()
                    .unwrap_or(DEFAULT_BATCH_DURATION),
            )?,
            max_batch_bytes,
        },
        aggregate: k.aggregate,
        max_in_flight,
        shard_refresh: duration(
            &format!("{key}.shard_refresh"),
            k.shard_refresh.as_deref().unwrap_or(DEFAULT_SHARD_REFRESH),
        )?,
        request_timeout: duration(
            &format!("{key}.request_timeout"),
            k.request_timeout
                .as_deref()
                .unwrap_or(DEFAULT_KINESIS_REQUEST_TIMEOUT),
        )?,
        health_check_interval: duration(
            &format!("{key}.health_check_interval"),
            k.health_check_interval
                .as_deref()
                .unwrap_or(DEFAULT_HEALTH_CHECK_INTERVAL),
        )?,
        max_in_flight_bytes: k
            .max_in_flight_bytes
            .unwrap_or(DEFAULT_KINESIS_MAX_IN_FLIGHT_BYTES)
            .max(1),
        max_record_bytes,
        put_records_client: k.put_records_client,
        stream_mode: k.stream_mode,
    })
}
