//! The vault's one error type.
//!
//! Rule: no message ever carries plaintext, key bytes or sealed bytes. Case ids, field
//! names, paths and database error codes are all a message may name.

use uuid::Uuid;

/// Everything that can go wrong sealing, opening or shredding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The case's key was shredded: nothing can be sealed for it any more.
    #[error("case {case_id} was erased: its key is shredded")]
    Shredded { case_id: Uuid },
    /// Authentication failed: the sealed value belongs to another case, was altered,
    /// or was sealed under another key.
    #[error("sealed value does not belong to case {case_id} or was altered")]
    Tampered { case_id: Uuid },
    /// The bytes are not a sealed value this vault can read (length or format version).
    #[error("sealed value is malformed: {reason}")]
    Corrupt { reason: &'static str },
    /// A sealed value names a case for which the key store holds no key at all.
    #[error("case {case_id} has no key in the key store")]
    MissingKey { case_id: Uuid },
    /// The master key cannot unwrap the stored key of a case.
    #[error(
        "the master key cannot unwrap the key of case {case_id}: wrong master key or altered key store"
    )]
    WrongMasterKey { case_id: Uuid },
    /// The configured master key is unusable (syntax, length, unreadable file).
    #[error("invalid master key: {reason}")]
    InvalidMasterKey { reason: String },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Random,
    /// The key store cannot be reached or refused the operation.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    pub(crate) fn invalid_master_key(reason: impl Into<String>) -> Self {
        Self::InvalidMasterKey {
            reason: reason.into(),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        // SQLite's messages name tables and constraints, never bound values.
        Self::Unavailable(format!("sqlite: {e}"))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        // A server error's DETAIL may quote the failing row (a wrapped key): keep only
        // the message and the SQLSTATE.
        match e.as_db_error() {
            Some(db) => Self::Unavailable(format!(
                "postgres: {} (sqlstate {})",
                db.message(),
                db.code().code()
            )),
            None => Self::Unavailable(format!("postgres: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            e => Self::Unavailable(format!("postgres pool: {e}")),
        }
    }
}
