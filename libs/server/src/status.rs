//! The one mapping from Caseline's errors to gRPC statuses.
//!
//! Handlers return [`ApiError`]; its `From` impl is the only place a `Status` is made
//! from an error. Callers get a precise code and a message naming the field or id at
//! fault; internal detail (storage messages) is logged here, server-side, and never sent.
//!
//! Every answer is small whatever the request: at most [`MAX_VIOLATIONS`] field
//! violations (one more counts the rest), each field path, description and message cut
//! to a few hundred bytes. Standard gRPC clients accept 16 KiB of metadata; an answer
//! past that reaches them as RESOURCE_EXHAUSTED instead of the refusal.

use caseline_eventlog::Error as LogError;
use caseline_proto::tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Most field violations one answer lists; the rest are counted in one more
/// ([`FieldViolation::omitted`]).
pub const MAX_VIOLATIONS: usize = 10;
/// Longest field path an answer carries, in bytes.
const MAX_FIELD_BYTES: usize = 100;
/// Longest description of a violation an answer carries, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 200;
/// Longest status message, in bytes.
const MAX_MESSAGE_BYTES: usize = 300;

/// One bad field of a request, as `google.rpc.BadRequest.FieldViolation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `identity.date_of_birth`.
    pub field: String,
    /// What is wrong with it; never its value.
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// Stands for `n` faults an answer leaves out. It names no field: it is about the
    /// request as a whole.
    pub fn omitted(n: usize) -> Self {
        Self::new("", format!("and {n} more faults not listed"))
    }
}

/// Every way a Caseline call can fail, as the caller may learn it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    PermissionDenied(&'static str),
    /// Absent, or not visible to the caller: the two are indistinguishable on purpose.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// A rule of the domain refuses the command in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A `request_id` reused with a different payload.
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency other than the log (e.g. the key store) cannot serve now.
    #[error("{0}")]
    Unavailable(&'static str),
    /// A fault of the server itself; the message is fixed text, never internal detail.
    #[error("{0}")]
    Internal(&'static str),
    #[error(transparent)]
    Log(#[from] LogError),
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::InvalidArgument(violations) => bad_request(violations),
            ApiError::Unauthenticated(msg) => Status::unauthenticated(msg),
            ApiError::PermissionDenied(msg) => Status::permission_denied(msg),
            e @ ApiError::NotFound { .. } => {
                Status::not_found(clip(e.to_string(), MAX_MESSAGE_BYTES))
            }
            ApiError::FailedPrecondition(msg) => {
                Status::failed_precondition(clip(msg, MAX_MESSAGE_BYTES))
            }
            ApiError::AlreadyExists(msg) => Status::already_exists(clip(msg, MAX_MESSAGE_BYTES)),
            ApiError::ResourceExhausted(msg) => {
                Status::resource_exhausted(clip(msg, MAX_MESSAGE_BYTES))
            }
            ApiError::Unavailable(msg) => Status::unavailable(msg),
            ApiError::Internal(msg) => Status::internal(msg),
            ApiError::Log(e) => from_log(e),
        }
    }
}

fn bad_request(violations: Vec<FieldViolation>) -> Status {
    let total = violations.len();
    // A list from `Check` is bounded already, its last entry perhaps counting the rest.
    let listed = if total > MAX_VIOLATIONS + 1 {
        MAX_VIOLATIONS
    } else {
        total
    };
    let mut violations: Vec<FieldViolation> = violations
        .into_iter()
        .take(listed)
        .map(|v| FieldViolation {
            field: clip(v.field, MAX_FIELD_BYTES),
            description: clip(v.description, MAX_DESCRIPTION_BYTES),
        })
        .collect();
    if total > listed {
        violations.push(FieldViolation::omitted(total - listed));
    }
    let message = match violations.as_slice() {
        [one] => format!("invalid {}: {}", one.field, one.description),
        many => {
            let mut fields: Vec<&str> = Vec::new();
            for v in many.iter().filter(|v| !v.field.is_empty()) {
                if !fields.contains(&v.field.as_str()) {
                    fields.push(&v.field);
                }
            }
            let more = if many.iter().any(|v| v.field.is_empty()) {
                " and more"
            } else {
                ""
            };
            format!("invalid fields: {}{more}", fields.join(", "))
        }
    };
    let details = ErrorDetails::with_bad_request(
        violations
            .into_iter()
            .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
            .collect::<Vec<_>>(),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        clip(message, MAX_MESSAGE_BYTES),
        details,
    )
}

/// `text` cut to at most `max` bytes at a character boundary, an ellipsis marking a cut.
fn clip(mut text: String, max: usize) -> String {
    const ELLIPSIS: char = '…';
    if text.len() > max {
        let mut at = max.saturating_sub(ELLIPSIS.len_utf8());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push(ELLIPSIS);
    }
    text
}

fn from_log(error: LogError) -> Status {
    match error {
        LogError::WrongExpectedVersion { actual, .. } => {
            // The caller retries with the version that stands now.
            let actual = actual.map_or_else(|| "none".to_owned(), |v| v.to_string());
            Status::aborted(format!("version conflict: current version is {actual}"))
        }
        LogError::InvalidInput { field, reason } => {
            bad_request(vec![FieldViolation::new(field, reason)])
        }
        e @ LogError::TooLarge { .. } => Status::resource_exhausted(e.to_string()),
        LogError::EventIdConflict { .. } => {
            Status::already_exists("request_id was already used for a different request")
        }
        LogError::Unavailable(reason) => {
            tracing::error!(%reason, "event log unavailable");
            Status::unavailable("event log unavailable, retry later")
        }
        LogError::Closed => Status::unavailable("server is shutting down"),
        LogError::Corrupt { position, reason } => {
            tracing::error!(%position, %reason, "event log holds unreadable data");
            Status::data_loss("stored data failed integrity checks; an operator has been alerted")
        }
    }
}

#[cfg(test)]
mod tests {
    use caseline_eventlog::{ExpectedVersion, StreamName};

    use super::*;

    #[test]
    fn invalid_argument_carries_bad_request_details() {
        let status = Status::from(ApiError::InvalidArgument(vec![FieldViolation::new(
            "identity.date_of_birth",
            "must be in the past",
        )]));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid identity.date_of_birth: must be in the past"
        );
        let details = status.get_error_details();
        let violations = &details
            .bad_request()
            .expect("bad request details")
            .field_violations;
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "identity.date_of_birth");
    }

    #[test]
    fn an_answer_stays_small_whatever_the_violations() {
        let violations: Vec<FieldViolation> = (0..100_000)
            .map(|i| FieldViolation::new(format!("statuses[{i}]"), "is not a known value"))
            .collect();
        let status = Status::from(ApiError::InvalidArgument(violations));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.details().len() < 4 * 1024,
            "details of {} bytes",
            status.details().len()
        );
        let details = status.get_error_details();
        let listed = &details.bad_request().unwrap().field_violations;
        assert_eq!(listed.len(), MAX_VIOLATIONS + 1);
        assert_eq!(listed[0].field, "statuses[0]");
        assert_eq!(
            listed[MAX_VIOLATIONS].description,
            format!("and {} more faults not listed", 100_000 - MAX_VIOLATIONS)
        );
        assert!(
            status
                .message()
                .starts_with("invalid fields: statuses[0], ")
        );
        assert!(
            status.message().ends_with(" and more"),
            "{}",
            status.message()
        );

        // Long paths and descriptions, in any script, are cut at a character boundary.
        let long = FieldViolation::new("é".repeat(100_000), "ü".repeat(100_000));
        let status = Status::from(ApiError::InvalidArgument(vec![long; 50]));
        assert!(
            status.details().len() < 4 * 1024,
            "details of {} bytes",
            status.details().len()
        );
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        let status = Status::from(ApiError::FailedPrecondition("x".repeat(1 << 20)));
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        let status = Status::from(ApiError::NotFound {
            kind: "stream",
            id: "y".repeat(1 << 20),
        });
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        assert!(status.message().starts_with("stream yyy"));
    }

    #[test]
    fn a_bounded_list_passes_unchanged() {
        let mut violations: Vec<FieldViolation> = (0..MAX_VIOLATIONS)
            .map(|i| FieldViolation::new(format!("f{i}"), "is required"))
            .collect();
        violations.push(FieldViolation::omitted(3));
        let status = Status::from(ApiError::InvalidArgument(violations.clone()));
        let details = status.get_error_details();
        let listed = &details.bad_request().unwrap().field_violations;
        let listed: Vec<FieldViolation> = listed
            .iter()
            .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
            .collect();
        assert_eq!(listed, violations);
    }

    #[test]
    fn version_conflict_is_aborted_with_the_current_version() {
        let status = Status::from(ApiError::from(LogError::WrongExpectedVersion {
            stream: StreamName::new("case-1").unwrap(),
            expected: ExpectedVersion::Exact(3),
            actual: Some(5),
        }));
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(status.message(), "version conflict: current version is 5");
    }

    #[test]
    fn storage_failures_never_leak_internal_text() {
        let status = Status::from(ApiError::from(LogError::Unavailable(
            "postgres 57P01: terminating connection on host db-7".into(),
        )));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(!status.message().contains("db-7"));
        let status = Status::from(ApiError::from(LogError::Corrupt {
            position: "42".into(),
            reason: "hash is not 32 bytes".into(),
        }));
        assert_eq!(status.code(), Code::DataLoss);
        assert!(!status.message().contains("hash"));
    }

    #[test]
    fn each_error_has_its_own_code() {
        let cases = [
            (
                ApiError::Unauthenticated("missing bearer token"),
                Code::Unauthenticated,
            ),
            (
                ApiError::PermissionDenied("role may not do this"),
                Code::PermissionDenied,
            ),
            (
                ApiError::NotFound {
                    kind: "case",
                    id: "c1".into(),
                },
                Code::NotFound,
            ),
            (
                ApiError::FailedPrecondition("referral is withdrawn".into()),
                Code::FailedPrecondition,
            ),
            (
                ApiError::AlreadyExists("request_id reused".into()),
                Code::AlreadyExists,
            ),
            (
                ApiError::ResourceExhausted("request too large".into()),
                Code::ResourceExhausted,
            ),
            (
                LogError::InvalidInput {
                    field: "stream",
                    reason: "must not be empty".into(),
                }
                .into(),
                Code::InvalidArgument,
            ),
            (
                LogError::EventIdConflict {
                    event_id: uuid_nil(),
                }
                .into(),
                Code::AlreadyExists,
            ),
            (LogError::Closed.into(), Code::Unavailable),
            (
                ApiError::Unavailable("key store unavailable"),
                Code::Unavailable,
            ),
            (
                ApiError::Internal("handler declared no access"),
                Code::Internal,
            ),
            (
                LogError::TooLarge {
                    field: "data",
                    limit: "1 MiB per event",
                }
                .into(),
                Code::ResourceExhausted,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
    }

    fn uuid_nil() -> caseline_eventlog::Uuid {
        caseline_eventlog::Uuid::nil()
    }
}
