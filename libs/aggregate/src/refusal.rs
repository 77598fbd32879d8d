//! Why a domain refuses a command, in the domain's words: no transport status in the
//! domain. The command path turns it into the answer's status, naming the aggregate.

use caseline_eventlog::Uuid;
use caseline_server::{ApiError, FieldViolation};

/// Why the rules refuse a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// There is no such aggregate (NOT_FOUND, under its kind and id).
    #[error("no such aggregate")]
    Missing,
    /// A field of the command breaks a rule (INVALID_ARGUMENT naming the field).
    #[error("{field} {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    /// A rule of the aggregate's life refuses the command now (FAILED_PRECONDITION).
    #[error("{0}")]
    Precondition(&'static str),
}

impl Refusal {
    /// The answer to the caller: `kind` and `id` name the aggregate.
    pub fn status(self, kind: &'static str, id: Uuid) -> ApiError {
        match self {
            Refusal::Missing => ApiError::NotFound {
                kind,
                id: id.to_string(),
            },
            Refusal::Invalid { field, reason } => {
                ApiError::InvalidArgument(vec![FieldViolation::new(field, reason)])
            }
            Refusal::Precondition(why) => ApiError::FailedPrecondition(why.to_owned()),
        }
    }
}
