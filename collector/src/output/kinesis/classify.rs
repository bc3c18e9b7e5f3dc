//! The retry logic's one decision: what an error code means. Every answer Kinesis or the network
//! gives is classified here, once, where the client reads it; the sender only sees [`Fault`]s
//! and [`EntryFault`]s.
//!
//! Rules:
//! - an entry inside a PutRecords answer that was throttled (`ProvisionedThroughputExceeded`,
//!   `KMSThrottling`) or hit `InternalFailure` is a fault of the moment: it is sent again without
//!   limit, paced by its shard; only entries refused for any other reason count toward
//!   `max_retries` and can end in the dead-letter file;
//! - a whole call that fails is retried without limit (the lines wait in the buffer) unless
//!   Kinesis refused the request itself as invalid.

use super::api::{CallError, Fault};

/// What a failed entry inside a PutRecords answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryFault {
    /// The shard is over its limits: send again, slower.
    Throttled,
    /// Kinesis failed on this entry for the moment: send again.
    Transient,
    /// Refused for another reason: counts toward `max_retries`.
    Refused,
}

impl EntryFault {
    #[cfg(test)]
    pub fn counts_toward_max_retries(self) -> bool {
        self == EntryFault::Refused
    }
}

/// Classifies the error code of one entry of a PutRecords answer.
pub fn entry_fault(code: &str) -> EntryFault {
    match code {
        "ProvisionedThroughputExceededException" | "KMSThrottlingException" => {
            EntryFault::Throttled
        }
        "InternalFailure" | "InternalFailureException" | "ServiceUnavailable" => {
            EntryFault::Transient
        }
        _ => EntryFault::Refused,
    }
}

/// Classifies an error code of a whole call. `server_error`: the answer was an HTTP 5xx.
pub fn call_fault(code: &str, server_error: bool) -> Fault {
    match code {
        "ProvisionedThroughputExceededException"
        | "LimitExceededException"
        | "ThrottlingException"
        | "Throttling"
        | "KMSThrottlingException"
        | "SlowDown"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => Fault::Throttled,
        "AccessDeniedException" | "AccessDenied" => Fault::AccessDenied,
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "ExpiredToken"
        | "MissingAuthenticationToken"
        | "MissingAuthenticationTokenException"
        | "IncompleteSignature"
        | "IncompleteSignatureException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "NoCredentials" => Fault::Credentials,
        "ResourceNotFoundException" => Fault::NotFound,
        "KMSAccessDeniedException"
        | "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSNotFoundException"
        | "KMSOptInRequired" => Fault::Kms,
        "InvalidArgumentException"
        | "ValidationException"
        | "SerializationException"
        | "InvalidParameterValue"
        | "SigningError"
            if !server_error =>
        {
            Fault::Invalid
        }
        _ => Fault::Outage,
    }
}

/// What Kinesis says of a record over the stream's maximum record size, before the maximum:
/// `1 validation error detected: Value '...' at 'records.1.member.data' failed to satisfy
/// constraint: Member must have length less than or equal to 1048576` (PutRecords; the whole
/// call is refused).
const DATA_CONSTRAINT: &str =
    "member.data' failed to satisfy constraint: Member must have length less than or equal to ";

/// The stream's maximum record size a `ValidationException` names, if it is about a record's
/// data.
fn stream_record_limit(message: &str) -> Option<usize> {
    let (_, rest) = message.split_once(DATA_CONSTRAINT)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

/// A [`CallError`] for an error code Kinesis answered.
pub fn call_error(code: String, message: String, server_error: bool) -> CallError {
    let fault = match call_fault(&code, server_error) {
        Fault::Invalid if code == "ValidationException" => stream_record_limit(&message)
            .map_or(Fault::Invalid, |stream_limit| Fault::RecordTooLarge {
                stream_limit,
            }),
        fault => fault,
    };
    CallError {
        fault,
        code,
        message,
    }
}

/// A [`CallError`] for a failure before any answer (connection, timeout, unreadable answer).
pub fn outage(code: &str, message: impl Into<String>) -> CallError {
    CallError {
        fault: Fault::Outage,
        code: code.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_and_internal_entries_never_count_toward_max_retries() {
        for code in [
            "ProvisionedThroughputExceededException",
            "KMSThrottlingException",
            "InternalFailure",
        ] {
            assert!(
                !entry_fault(code).counts_toward_max_retries(),
                "{code} is a fault of the moment"
            );
        }
        assert_eq!(
            entry_fault("ProvisionedThroughputExceededException"),
            EntryFault::Throttled
        );
        assert_eq!(entry_fault("InternalFailure"), EntryFault::Transient);
        assert!(entry_fault("InvalidArgumentException").counts_toward_max_retries());
    }

    #[test]
    fn call_faults_name_what_is_wrong() {
        assert_eq!(
            call_fault("AccessDeniedException", false),
            Fault::AccessDenied
        );
        assert_eq!(
            call_fault("UnrecognizedClientException", false),
            Fault::Credentials
        );
        assert_eq!(
            call_fault("ResourceNotFoundException", false),
            Fault::NotFound
        );
        assert_eq!(
            call_fault("LimitExceededException", false),
            Fault::Throttled
        );
        assert_eq!(call_fault("KMSDisabledException", false), Fault::Kms);
        assert_eq!(call_fault("ValidationException", false), Fault::Invalid);
        assert_eq!(
            call_fault("ValidationException", true),
            Fault::Outage,
            "a 5xx is never the request's fault"
        );
        assert_eq!(call_fault("HTTP502", true), Fault::Outage);
        // A record over the stream's maximum record size, as Kinesis words it.
        let over = call_error(
            "ValidationException".into(),
            "1 validation error detected: Value 'java.nio.HeapByteBuffer[pos=0 lim=2097152 cap=2097152]' at 'records.1.member.data' failed to satisfy constraint: Member must have length less than or equal to 1048576".into(),
            false,
        );
        assert_eq!(
            over.fault,
            Fault::RecordTooLarge {
                stream_limit: 1_048_576
            }
        );
        assert!(!over.fault.retried_without_limit());
        // Other validation errors stay invalid requests.
        let other = call_error(
            "ValidationException".into(),
            "1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length less than or equal to 500".into(),
            false,
        );
        assert_eq!(other.fault, Fault::Invalid);
        assert!(!Fault::Invalid.retried_without_limit());
        for f in [
            Fault::Throttled,
            Fault::Outage,
            Fault::Credentials,
            Fault::AccessDenied,
            Fault::NotFound,
            Fault::Kms,
        ] {
            assert!(f.retried_without_limit(), "{f:?}");
        }
    }
}
