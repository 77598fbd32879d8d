//! Per-case data keys, sealed values and crypto-shredding.
//!
//! The job: identifying fields (names, dates of birth, contact details) and all free
//! text are stored in event payloads only as [`Sealed`] values, encrypted
//! (XChaCha20-Poly1305) with their case's data key. Each data key is 32 random bytes,
//! wrapped by the [`MasterKey`] from configuration with the case id as associated data,
//! and kept in a small mutable [`KeyStore`] beside the event log ([`SqliteKeyStore`],
//! [`PostgresKeyStore`]). Erasing a case shreds its key: the events and their hashes
//! remain and still verify, and their sealed fields open as [`Opened::Erased`].
//!
//! The rules:
//! - Keys never go into the event log; the key store holds only wrapped keys.
//! - Plaintext lives in [`SecretText`] / [`SecretBytes`], whose `Debug` and `Display`
//!   print `<redacted>`; the value comes out only through `expose()`. [`Sealed`],
//!   [`MasterKey`], [`WrappedKey`] and [`Vault`] never print key or content bytes, and
//!   no [`Error`] message carries them: errors name case ids only.
//! - A sealed value opens only under its own case id: one copied into another case's
//!   event, or altered, is [`Error::Tampered`], never a panic.
//! - A case has one key for life. Racing first seals, in one process or several, agree
//!   on the key the store kept first. A shredded case never gets a key again; sealing
//!   for it is [`Error::Shredded`].
//! - Unwrapped keys are cached in memory (bounded, [`KEY_CACHE_CAPACITY`] cases) and
//!   zeroed when dropped. [`Vault::shred`] drops the key from its own cache at once;
//!   a vault in another process may keep using a cached key for at most its TTL
//!   ([`DEFAULT_KEY_CACHE_TTL`], 30 s) before it asks the store again.
//! - Shredding destroys the live copy of the wrapped key. Copies in backups of the key
//!   store (and PostgreSQL's old row versions until vacuum) remain until those are
//!   rotated; they are useless without the master key.
//!
//! ```
//! use std::sync::Arc;
//!
//! use caseline_vault::{
//!     Error, KEY_STORE_FILE, MasterKey, Opened, SecretText, SqliteKeyStore, Vault,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! # let dir = tempfile::tempdir().map_err(|e| Error::Unavailable(e.to_string()))?;
//! # let data_dir = dir.path();
//! let master = MasterKey::load_or_create(data_dir)?; // production: MasterKey::from_file
//! let store = Arc::new(SqliteKeyStore::open(data_dir.join(KEY_STORE_FILE)).await?);
//! let vault = Vault::new(master, store);
//!
//! let case_id = uuid::Uuid::new_v4();
//! let name = vault.seal_text(case_id, &SecretText::new("Ada Example")).await?;
//! // `name.as_bytes()` goes into the event payload.
//! match vault.open_text(case_id, &name).await? {
//!     Opened::Plain(text) => assert_eq!(text.expose(), "Ada Example"),
//!     Opened::Erased => unreachable!("not shredded yet"),
//! }
//!
//! vault.shred(case_id).await?;
//! assert!(vault.open_text(case_id, &name).await?.is_erased());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod cache;
mod error;
mod master;
pub mod postgres;
mod sealed;
mod secret;
pub mod sqlite;
mod store;
mod vault;

pub use error::Error;
pub use master::{MASTER_KEY_FILE, MasterKey};
pub use postgres::PostgresKeyStore;
pub use sealed::{SEALED_OVERHEAD, Sealed};
pub use secret::{SecretBytes, SecretText};
pub use sqlite::{KEY_STORE_FILE, SqliteKeyStore};
pub use store::{KeyState, KeyStore, WrappedKey};
pub use vault::{DEFAULT_KEY_CACHE_TTL, KEY_CACHE_CAPACITY, Opened, Vault};
