//! Sealing, opening and shredding, per case, with a cache of unwrapped keys.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::cache::{Cached, KeyCache};
use crate::sealed::{Cipher, Purpose};
use crate::{Error, KeyState, KeyStore, MasterKey, Sealed, SecretBytes, SecretText, WrappedKey};

/// How long an unwrapped key is trusted without asking the store again: the longest a
/// shred by another process can go unnoticed here.
pub const DEFAULT_KEY_CACHE_TTL: Duration = Duration::from_secs(30);
/// Most cases whose keys (or tombstones) one vault keeps in memory.
pub const KEY_CACHE_CAPACITY: usize = 4096;

/// What opening a sealed value gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened<T> {
    /// The plaintext, in a wrapper that never prints it.
    Plain(T),
    /// The case's key was shredded: the value is gone for good.
    Erased,
}

impl<T> Opened<T> {
    /// The plaintext, or `None` when erased.
    pub fn into_plain(self) -> Option<T> {
        match self {
            Self::Plain(value) => Some(value),
            Self::Erased => None,
        }
    }

    pub fn is_erased(&self) -> bool {
        matches!(self, Self::Erased)
    }
}

/// Seals and opens values of a case under the case's data key; shreds keys.
///
/// Cheap to clone (clones share the key cache). `Debug` shows the store and the cache
/// size, never a key.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    master: MasterKey,
    store: Arc<dyn KeyStore>,
    cache: Mutex<KeyCache>,
    /// The time the cache's TTL is counted in.
    now: Box<dyn Fn() -> Instant + Send + Sync>,
}

impl Vault {
    /// A vault caching keys for [`DEFAULT_KEY_CACHE_TTL`].
    pub fn new(master: MasterKey, store: Arc<dyn KeyStore>) -> Self {
        Self::with_key_cache_ttl(master, store, DEFAULT_KEY_CACHE_TTL)
    }

    /// A vault trusting a cached key for `ttl` (zero: ask the store every time).
    pub fn with_key_cache_ttl(master: MasterKey, store: Arc<dyn KeyStore>, ttl: Duration) -> Self {
        Self::with_key_cache_clock(master, store, ttl, Instant::now)
    }

    /// As [`Vault::with_key_cache_ttl`], counting the TTL on `now` instead of the
    /// monotonic clock, so that a test can move time past the TTL rather than wait.
    pub fn with_key_cache_clock(
        master: MasterKey,
        store: Arc<dyn KeyStore>,
        ttl: Duration,
        now: impl Fn() -> Instant + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                master,
                store,
                cache: Mutex::new(KeyCache::new(ttl, KEY_CACHE_CAPACITY)),
                now: Box::new(now),
            }),
        }
    }

    /// Seals `plaintext` for `case_id`, creating the case's key on first use. Refused
    /// with [`Error::Shredded`] once the case's key is shredded.
    pub async fn seal(&self, case_id: Uuid, plaintext: &[u8]) -> Result<Sealed, Error> {
        let key = self.key_for_sealing(case_id).await?;
        key.encrypt(Purpose::Field, case_id, plaintext)
            .map(Sealed::from_trusted)
    }

    /// Seals a text field (a name, a date of birth, a note).
    pub async fn seal_text(&self, case_id: Uuid, text: &SecretText) -> Result<Sealed, Error> {
        self.seal(case_id, text.expose().as_bytes()).await
    }

    /// Opens a value sealed for `case_id`: the plaintext, or [`Opened::Erased`] once the
    /// case's key is shredded. A value of another case, or altered, is
    /// [`Error::Tampered`].
    pub async fn open(&self, case_id: Uuid, sealed: &Sealed) -> Result<Opened<SecretBytes>, Error> {
        let Some(key) = self.key_for_opening(case_id).await? else {
            return Ok(Opened::Erased);
        };
        let plain = key
            .decrypt(Purpose::Field, case_id, sealed.as_bytes())
            .ok_or(Error::Tampered { case_id })?;
        Ok(Opened::Plain(SecretBytes::from_zeroizing(plain)))
    }

    /// Opens a text field sealed with [`Vault::seal_text`].
    pub async fn open_text(
        &self,
        case_id: Uuid,
        sealed: &Sealed,
    ) -> Result<Opened<SecretText>, Error> {
        Ok(match self.open(case_id, sealed).await? {
            Opened::Erased => Opened::Erased,
            Opened::Plain(bytes) => Opened::Plain(bytes.into_text().ok_or(Error::Corrupt {
                reason: "sealed text is not utf-8",
            })?),
        })
    }

    /// A digest of `data` keyed by the case's data key: equal for equal data of the
    /// same case, unguessable without the key (so storing it reveals nothing of the
    /// data, even of a short or guessable one), and impossible to recompute once the
    /// key is shredded ([`Error::Shredded`]). Creates the case's key on first use.
    pub async fn keyed_digest(&self, case_id: Uuid, data: &[u8]) -> Result<[u8; 32], Error> {
        let key = self.key_for_sealing(case_id).await?;
        key.digest(case_id, data)
    }

    /// Seals an optional text field of an event payload, as payloads store them: no
    /// text is no bytes (and makes no key), any text is a sealed value.
    pub async fn seal_field(&self, case_id: Uuid, text: &str) -> Result<Vec<u8>, Error> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.seal(case_id, text.as_bytes()).await?.into_bytes())
    }

    /// Opens a field stored by [`Vault::seal_field`]: no bytes is no text.
    pub async fn open_field(
        &self,
        case_id: Uuid,
        bytes: &[u8],
    ) -> Result<Opened<SecretText>, Error> {
        if bytes.is_empty() {
            return Ok(Opened::Plain(SecretText::new(String::new())));
        }
        self.open_text(case_id, &Sealed::from_bytes(bytes.to_vec())?)
            .await
    }

    /// Destroys the case's key (crypto-shredding): every value sealed for the case
    /// reads as [`Opened::Erased`] from then on, and nothing more can be sealed for it.
    /// Idempotent. This vault forgets the key at once; other processes' vaults within
    /// their key cache TTL.
    pub async fn shred(&self, case_id: Uuid) -> Result<(), Error> {
        self.inner.store.shred(case_id).await?;
        self.shredded(case_id);
        tracing::info!(case_id = %case_id, "case key shredded");
        Ok(())
    }

    fn cache(&self) -> MutexGuard<'_, KeyCache> {
        // The cache holds no invariant a panicking holder could break halfway.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Instant {
        (self.inner.now)()
    }

    fn cached(&self, case_id: Uuid) -> Option<Cached> {
        let now = self.now();
        self.cache().get(case_id, now)
    }

    /// Unwraps a stored key and remembers it as read at `read_at`.
    fn unwrap_and_cache(
        &self,
        case_id: Uuid,
        wrapped: &WrappedKey,
        read_at: Instant,
    ) -> Result<Cipher, Error> {
        let key = self.inner.master.unwrap_case_key(case_id, wrapped)?;
        self.cache().insert_key(case_id, key.clone(), read_at);
        Ok(key)
    }

    /// Remembers that the case's key is gone (final, so never expires).
    fn shredded(&self, case_id: Uuid) {
        let now = self.now();
        self.cache().insert_shredded(case_id, now);
    }

    async fn key_for_sealing(&self, case_id: Uuid) -> Result<Cipher, Error> {
        match self.cached(case_id) {
            Some(Cached::Key(key)) => return Ok(key),
            Some(Cached::Shredded) => return Err(Error::Shredded { case_id }),
            None => {}
        }
        let read_at = self.now();
        let state = match self.inner.store.get(case_id).await? {
            KeyState::Missing => {
                let (key, wrapped) = self.inner.master.new_case_key(case_id)?;
                match self.inner.store.create(case_id, wrapped.clone()).await? {
                    KeyState::Active(stored) if stored == wrapped => {
                        tracing::debug!(case_id = %case_id, "case key created");
                        self.cache().insert_key(case_id, key.clone(), read_at);
                        return Ok(key);
                    }
                    // Another task or process created the case's key first: use theirs.
                    other => other,
                }
            }
            state => state,
        };
        match state {
            KeyState::Active(wrapped) => self.unwrap_and_cache(case_id, &wrapped, read_at),
            KeyState::Shredded => {
                self.shredded(case_id);
                Err(Error::Shredded { case_id })
            }
            KeyState::Missing => Err(Error::Unavailable(format!(
                "key store lost the new key of case {case_id}"
            ))),
        }
    }

    /// The case's key, or `None` once shredded. Never creates a key.
    async fn key_for_opening(&self, case_id: Uuid) -> Result<Option<Cipher>, Error> {
        match self.cached(case_id) {
            Some(Cached::Key(key)) => return Ok(Some(key)),
            Some(Cached::Shredded) => return Ok(None),
            None => {}
        }
        let read_at = self.now();
        match self.inner.store.get(case_id).await? {
            KeyState::Active(wrapped) => {
                self.unwrap_and_cache(case_id, &wrapped, read_at).map(Some)
            }
            KeyState::Shredded => {
                self.shredded(case_id);
                Ok(None)
            }
            KeyState::Missing => Err(Error::MissingKey { case_id }),
        }
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cache = self.cache();
        f.debug_struct("Vault")
            .field("store", &self.inner.store)
            .field("cached_cases", &cache.len())
            .field("key_cache_ttl", &cache.ttl())
            .finish_non_exhaustive()
    }
}
