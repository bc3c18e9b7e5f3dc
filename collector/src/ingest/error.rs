//! Why an ingest request was refused, and how that maps to an HTTP answer.
//!
//! Invariant: the body of an error answer says what was wrong with the request, never anything
//! about the collector's internals (paths, OS errors); those go to the collector's own log.

use super::decode::DecodeError;
use crate::buffer::BufferError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("missing or wrong token")]
    Unauthorized,
    #[error("too many requests in flight")]
    Overloaded,
    #[error("memory for bodies in flight is exhausted")]
    OverBudget,
    #[error("body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("body not received in time")]
    Timeout,
    #[error("reading the body failed")]
    BodyRead,
    #[error(transparent)]
    Decode(DecodeError),
    #[error("buffer is full")]
    BufferFull,
    #[error("buffer disk is full")]
    DiskFull,
    #[error("shutting down")]
    ShuttingDown,
    #[error("draining: this collector takes no more batches; send them to another")]
    Draining,
    #[error("storage error")]
    Storage(#[source] Internal),
}

/// What failed inside the collector while it took a batch: answered 500 (without the detail),
/// logged, and counted as `storage`.
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    #[error(transparent)]
    Buffer(BufferError),
    #[error("the body decoder failed unexpectedly")]
    DecoderPanicked,
    #[error("the body decoder's task failed: {0}")]
    DecoderTask(#[source] tokio::task::JoinError),
}

impl IngestError {
    /// The label of `edgelog_ingest_rejections_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Unauthorized => "unauthorized",
            IngestError::Overloaded => "too_many_in_flight",
            IngestError::OverBudget => "memory_budget",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::Timeout => "timeout",
            IngestError::BodyRead => "body_read",
            IngestError::Decode(DecodeError::UnsupportedEncoding(_)) => "unsupported_encoding",
            IngestError::Decode(DecodeError::Corrupt { .. }) => "corrupt_body",
            IngestError::Decode(DecodeError::InvalidJsonArray(_)) => "invalid_json",
            IngestError::Decode(DecodeError::TooLarge { .. }) => "too_large",
            IngestError::Decode(DecodeError::OverBudget) => "memory_budget",
            IngestError::BufferFull => "buffer_full",
            IngestError::DiskFull => "disk_full",
            IngestError::ShuttingDown => "shutting_down",
            IngestError::Draining => "draining",
            IngestError::Storage(_) => "storage",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::Unauthorized => StatusCode::UNAUTHORIZED,
            IngestError::Overloaded
            | IngestError::OverBudget
            | IngestError::Decode(DecodeError::OverBudget)
            | IngestError::BufferFull
            | IngestError::DiskFull
            | IngestError::ShuttingDown
            | IngestError::Draining => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::TooLarge { .. } | IngestError::Decode(DecodeError::TooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            IngestError::Timeout => StatusCode::REQUEST_TIMEOUT,
            IngestError::BodyRead => StatusCode::BAD_REQUEST,
            IngestError::Decode(DecodeError::UnsupportedEncoding(_)) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::Decode(_) => StatusCode::BAD_REQUEST,
            IngestError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before trying again, for the refusals that pass.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            IngestError::Overloaded
            | IngestError::OverBudget
            | IngestError::Decode(DecodeError::OverBudget) => Some(1),
            IngestError::BufferFull
            | IngestError::DiskFull
            | IngestError::ShuttingDown
            | IngestError::Draining => Some(5),
            _ => None,
        }
    }
}

impl From<DecodeError> for IngestError {
    fn from(e: DecodeError) -> Self {
        IngestError::Decode(e)
    }
}

impl From<BufferError> for IngestError {
    fn from(e: BufferError) -> Self {
        match e {
            BufferError::Full => IngestError::BufferFull,
            BufferError::Closed => IngestError::ShuttingDown,
            BufferError::NoRoom(_) => IngestError::DiskFull,
            e @ BufferError::Io(_) => IngestError::Storage(Internal::Buffer(e)),
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let mut resp = (self.status(), format!("{self}\n")).into_response();
        if let Some(secs) = self.retry_after() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_do_not_leak_details() {
        let e = IngestError::from(BufferError::Io(std::sync::Arc::new(std::io::Error::other(
            "/secret/path: disk full",
        ))));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(e.to_string(), "storage error");
    }

    #[test]
    fn refusals_that_pass_say_when_to_retry() {
        for e in [
            IngestError::Overloaded,
            IngestError::BufferFull,
            IngestError::from(BufferError::NoRoom(std::sync::Arc::new(
                std::io::Error::other("ENOSPC /var/lib/edgelog"),
            ))),
            IngestError::ShuttingDown,
        ] {
            assert!(!e.to_string().contains("/var"), "{e}");
            let r = e.into_response();
            assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(r.headers().contains_key(header::RETRY_AFTER));
        }
        let corrupt = IngestError::from(DecodeError::Corrupt {
            codec: "zstd",
            detail: "bad frame".into(),
        });
        assert_eq!(corrupt.status(), StatusCode::BAD_REQUEST);
        assert!(corrupt.to_string().contains("zstd"));
    }
}
