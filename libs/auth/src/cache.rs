//! Remembering tokens that passed every check, so a client's repeated calls cost one
//! hash instead of a signature verification.
//!
//! Rules: entries are keyed by the SHA-256 of the exact token text (the token itself is
//! not stored); an entry is served only strictly before the token's `exp`, never inside
//! the leeway (a token accepted within the leeway is not cached at all), so the cache
//! never lengthens a token's life; the cache is bounded, and a full cache drops expired
//! entries first, then the entry closest to expiry.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// Enough for every active session of a large deployment; about 2 MB when full.
pub(crate) const DEFAULT_CAPACITY: usize = 10_000;

pub(crate) type CacheKey = [u8; 32];

pub(crate) fn key(token: &str) -> CacheKey {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Debug)]
pub(crate) struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<CacheKey, Principal>>,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The principal of a token validated before, if it has not expired by `now`.
    pub(crate) fn get(&self, key: &CacheKey, now: SystemTime) -> Option<Principal> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let found = match entries.get(key) {
            Some(p) if now < p.expires_at => Some(p.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        };
        if self.capacity > 0 {
            caseline_telemetry::metrics::cache_lookup("tokens", found.is_some());
        }
        found
    }

    pub(crate) fn insert(&self, key: CacheKey, principal: &Principal, now: SystemTime) {
        if self.capacity == 0 || now >= principal.expires_at {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, p| now < p.expires_at);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, p)| p.expires_at)
                    .map(|(k, _)| *k);
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key, principal.clone());
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn principal(sub: &str, expires_at: SystemTime) -> Principal {
        Principal {
            subject: sub.into(),
            issuer: "iss".into(),
            roles: vec![],
            agency: "a".into(),
            agency_type: None,
            expires_at,
        }
    }

    #[test]
    fn served_strictly_before_exp_and_never_after() {
        let now = SystemTime::now();
        let exp = now + Duration::from_secs(10);
        let cache = TokenCache::new(4);
        let k = key("token");
        cache.insert(k, &principal("u", exp), now);
        assert_eq!(cache.get(&k, now).unwrap().subject, "u");
        assert_eq!(
            cache
                .get(&k, exp - Duration::from_millis(1))
                .unwrap()
                .subject,
            "u"
        );
        assert!(cache.get(&k, exp).is_none());
        assert_eq!(cache.len(), 0, "an expired entry is dropped when met");
    }

    #[test]
    fn expired_or_leeway_tokens_are_not_stored() {
        let now = SystemTime::now();
        let cache = TokenCache::new(4);
        cache.insert(key("a"), &principal("a", now), now);
        cache.insert(key("b"), &principal("b", now - Duration::from_secs(5)), now);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn bounded_dropping_expired_then_soonest() {
        let now = SystemTime::now();
        let cache = TokenCache::new(3);
        let secs = Duration::from_secs;
        cache.insert(key("a"), &principal("a", now + secs(1)), now);
        cache.insert(key("b"), &principal("b", now + secs(100)), now);
        cache.insert(key("c"), &principal("c", now + secs(50)), now);
        // Later, "a" has expired: it goes first.
        let later = now + secs(2);
        cache.insert(key("d"), &principal("d", now + secs(200)), later);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key("a"), later).is_none());
        // Full of live entries: the one closest to expiry ("c") makes room.
        cache.insert(key("e"), &principal("e", now + secs(300)), later);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key("c"), later).is_none());
        for live in ["b", "d", "e"] {
            assert!(cache.get(&key(live), later).is_some(), "{live}");
        }
    }

    #[test]
    fn keys_are_sha256_of_the_exact_text() {
        assert_ne!(key("a.b.c"), key("a.b.c "));
        assert_eq!(key("x"), key("x"));
    }
}
