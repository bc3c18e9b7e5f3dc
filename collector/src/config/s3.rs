//! Validation of the `s3` output block: keys, limits and their defaults, checked once.

use super::error::{invalid, ConfigError};
use super::keytemplate::{KeyTemplate, KeyValues, MAX_KEY_BYTES};
use super::limits::*;
use super::model::{parse_duration, RetryPolicy, S3Config, Sse};
use super::schema::RawS3;

const KEY: &str = "output.s3";

/// The `s3` block as typed values; `retry` is its own block, or `output.retry`.
pub fn s3_config(s: RawS3, retry: RetryPolicy) -> Result<S3Config, ConfigError> {
    let bucket = s.bucket.trim().to_string();
    if bucket.len() < 3 || bucket.len() > 63 || bucket.contains(['/', ' ']) {
        return Err(invalid(
            &format!("{KEY}.bucket"),
            format!("{bucket:?} is not a bucket name (3 to 63 characters, no '/' or spaces)"),
        ));
    }
    let mut prefix = s.prefix.unwrap_or_else(|| DEFAULT_S3_PREFIX.into());
    if prefix.starts_with('/') {
        return Err(invalid(&format!("{KEY}.prefix"), "must not start with '/'"));
    }
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let key = KeyTemplate::parse(s.key.as_deref().unwrap_or(DEFAULT_S3_KEY))
        .map_err(|why| invalid(&format!("{KEY}.key"), why))?;
    let longest = key.render(&KeyValues {
        prefix: &prefix,
        time_ms: 0,
        id: &"f".repeat(OBJECT_ID_CHARS),
        ext: ".log.zst",
    });
    if longest.len() > MAX_KEY_BYTES {
        return Err(invalid(
            &format!("{KEY}.key"),
            format!(
                "makes keys of {} bytes; S3 takes {MAX_KEY_BYTES}",
                longest.len()
            ),
        ));
    }
    if let Some(url) = &s.endpoint_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid(
                &format!("{KEY}.endpoint_url"),
                "must start with http:// or https://",
            ));
        }
    }
    let max_object_bytes = s.max_object_bytes.unwrap_or(DEFAULT_S3_MAX_OBJECT_BYTES);
    let most = S3_PART_BYTES as u64 * S3_MAX_PARTS;
    if !(MIN_S3_MAX_OBJECT_BYTES..=most).contains(&max_object_bytes) {
        return Err(invalid(
            &format!("{KEY}.max_object_bytes"),
            format!("must be {MIN_S3_MAX_OBJECT_BYTES} (5 MiB) to {most}"),
        ));
    }
    let duration = |name: &str, text: Option<String>, default: &str| {
        parse_duration(text.as_deref().unwrap_or(default))
            .map_err(|e| invalid(&format!("{KEY}.{name}"), e))
    };
    let max_object_age = duration(
        "max_object_age",
        s.max_object_age,
        DEFAULT_S3_MAX_OBJECT_AGE,
    )?;
    if max_object_age.is_zero() {
        return Err(invalid(
            &format!("{KEY}.max_object_age"),
            "must be more than 0",
        ));
    }
    let request_timeout = duration(
        "request_timeout",
        s.request_timeout,
        DEFAULT_S3_REQUEST_TIMEOUT,
    )?;
    let compression = s.compression.unwrap_or_default();
    let sse = match (s.sse.as_deref(), s.sse_kms_key_id) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                &format!("{KEY}.sse_kms_key_id"),
                "needs sse: aws:kms",
            ))
        }
        (Some("AES256"), None) => Some(Sse::Aes256),
        (Some("AES256"), Some(_)) => {
            return Err(invalid(
                &format!("{KEY}.sse_kms_key_id"),
                "needs sse: aws:kms, not AES256",
            ))
        }
        (Some("aws:kms"), key_id) => Some(Sse::Kms { key_id }),
        (Some(other), _) => {
            return Err(invalid(
                &format!("{KEY}.sse"),
                format!("{other:?} is not AES256 or aws:kms"),
            ))
        }
    };
    if let Some(class) = &s.storage_class {
        if class.is_empty() || !class.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
            return Err(invalid(
                &format!("{KEY}.storage_class"),
                format!("{class:?} is not a storage class like STANDARD or STANDARD_IA"),
            ));
        }
    }
    let credentials = s
        .credentials
        .map(|c| super::credentials::credentials(&format!("{KEY}.credentials"), c))
        .transpose()?;
    Ok(S3Config {
        bucket,
        prefix,
        key,
        region: s.region,
        endpoint_url: s.endpoint_url,
        force_path_style: s.force_path_style,
        credentials,
        max_object_bytes,
        max_object_age,
        compression,
        content_type: s
            .content_type
            .unwrap_or_else(|| compression.default_content_type().into()),
        storage_class: s.storage_class,
        sse,
        request_timeout,
        retry,
    })
}
