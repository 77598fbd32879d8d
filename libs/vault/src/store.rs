//! The key store contract: one mutable row per case, beside the event log and never in
//! it.
//!
//! Rules every backend keeps:
//! - A case has at most one key, ever. [`KeyStore::create`] stores a key only if the
//!   case has no row yet and returns whatever is stored afterwards, so racing first
//!   seals (tasks or processes) all end up with the one key that won.
//! - Shredding is final: the wrapped key is overwritten with NULL, the row stays as a
//!   tombstone, and a shredded case never gets a key again. The tables refuse any other
//!   change (and deletes) through triggers.
//! - Only wrapped keys are stored; they are useless without the master key.

use std::fmt;

use uuid::Uuid;

use crate::Error;

/// A case's data key encrypted under the master key, as the key store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey(Vec<u8>);

impl WrappedKey {
    /// Bytes read back from a store; checked when unwrapped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey(<{} bytes>)", self.0.len())
    }
}

/// What the store holds for a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// No row: the case has never had a key.
    Missing,
    /// The case's wrapped data key.
    Active(WrappedKey),
    /// The key was destroyed; the case's sealed fields read as erased, for good.
    Shredded,
}

/// Durable storage of wrapped case keys.
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug {
    /// The case's current state.
    async fn get(&self, case_id: Uuid) -> Result<KeyState, Error>;

    /// Stores `wrapped` as the case's key unless the case already has a row (a key or a
    /// tombstone), then returns the stored state: `Active` with the key that is now the
    /// case's (`wrapped` or an earlier one), or `Shredded`. Never `Missing`.
    async fn create(&self, case_id: Uuid, wrapped: WrappedKey) -> Result<KeyState, Error>;

    /// Destroys the case's key, leaving a tombstone (also for a case that never had a
    /// key, so it never gets one). Idempotent.
    async fn shred(&self, case_id: Uuid) -> Result<(), Error>;
}
