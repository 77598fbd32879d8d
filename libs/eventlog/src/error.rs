//! Errors of the event log. Messages name the field or stream at fault, never an
//! event's content.

use uuid::Uuid;

use crate::{ExpectedVersion, StreamName};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stream was not at the version the appender expected. `actual` is `None` when
    /// the stream does not exist. Retryable after re-reading.
    #[error("wrong expected version on stream {stream}: expected {expected}, actual {}",
        .actual.map_or_else(|| "no stream".to_owned(), |v| v.to_string()))]
    WrongExpectedVersion {
        stream: StreamName,
        expected: ExpectedVersion,
        actual: Option<u64>,
    },

    /// The request itself is malformed; nothing was stored.
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: &'static str, reason: String },

    /// The request exceeds a size limit; nothing was stored.
    #[error("{field} too large: at most {limit}")]
    TooLarge {
        field: &'static str,
        limit: &'static str,
    },

    /// An event id is already stored for a different event (another stream, type or
    /// payload), or a retried batch only partly matches what was stored.
    #[error("event id {event_id} is already stored with different content")]
    EventIdConflict { event_id: Uuid },

    /// The storage cannot be reached or failed. An append that ends so may or may not
    /// have been stored: retry it with the same event ids, which is always safe.
    #[error("event log unavailable: {0}")]
    Unavailable(String),

    /// Stored data cannot be decoded: the storage was altered outside the log.
    #[error("stored event at position {position} is unreadable: {reason}")]
    Corrupt { position: String, reason: String },

    /// The log has been closed.
    #[error("event log is closed")]
    Closed,
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::WrongExpectedVersion { .. } | Self::Unavailable(_)
        )
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Self::Unavailable(format!("sqlite: {e}"))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        // Only the SQLSTATE and the server's one-line message: a DETAIL can echo a whole
        // failing row, payload included, and must never reach a log or a caller.
        match e.as_db_error() {
            Some(db) => {
                Self::Unavailable(format!("postgres {}: {}", db.code().code(), db.message()))
            }
            None => Self::Unavailable(format!("postgres: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable(format!("postgres pool: {e}"))
    }
}
