//! The bounded in-memory cache of unwrapped case keys.
//!
//! Rules: a cached key is trusted for at most the TTL after it was read from the store,
//! so a shred by another process takes effect here within the TTL. A shred by this
//! process replaces the key with a tombstone at once, and a key read before the shred
//! never overwrites that tombstone. Tombstones never expire: shredding is final.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::sealed::Cipher;

/// What the cache knows about a case.
pub(crate) enum Cached {
    Key(Cipher),
    Shredded,
}

struct Entry {
    /// `None` for a tombstone.
    key: Option<Cipher>,
    at: Instant,
}

pub(crate) struct KeyCache {
    entries: HashMap<Uuid, Entry>,
    ttl: Duration,
    capacity: usize,
}

impl KeyCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            ttl,
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    pub(crate) fn get(&mut self, case_id: Uuid, now: Instant) -> Option<Cached> {
        let entry = self.entries.get(&case_id)?;
        match &entry.key {
            None => Some(Cached::Shredded),
            Some(key) if now.saturating_duration_since(entry.at) < self.ttl => {
                Some(Cached::Key(key.clone()))
            }
            Some(_) => {
                self.entries.remove(&case_id);
                None
            }
        }
    }

    /// Remembers a key read from the store at `read_at`, unless the case is known shredded.
    pub(crate) fn insert_key(&mut self, case_id: Uuid, key: Cipher, read_at: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        if let Some(entry) = self.entries.get_mut(&case_id) {
            if entry.key.is_some() {
                *entry = Entry {
                    key: Some(key),
                    at: read_at,
                };
            }
            return;
        }
        self.make_room(read_at);
        self.entries.insert(
            case_id,
            Entry {
                key: Some(key),
                at: read_at,
            },
        );
    }

    /// Drops the case's key, for good.
    pub(crate) fn insert_shredded(&mut self, case_id: Uuid, now: Instant) {
        if !self.entries.contains_key(&case_id) {
            self.make_room(now);
        }
        self.entries.insert(case_id, Entry { key: None, at: now });
    }

    fn make_room(&mut self, now: Instant) {
        if self.entries.len() < self.capacity {
            return;
        }
        let ttl = self.ttl;
        self.entries
            .retain(|_, e| e.key.is_none() || now.saturating_duration_since(e.at) < ttl);
        if self.entries.len() >= self.capacity {
            // Full of live entries: forget the oldest (a tombstone forgotten is
            // re-read from the store, which still says shredded).
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.at)
                .map(|(id, _)| *id)
            {
                self.entries.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Cipher {
        Cipher::new(&[1; 32])
    }

    fn is_key(c: Option<Cached>) -> bool {
        matches!(c, Some(Cached::Key(_)))
    }

    #[test]
    fn keys_expire_after_the_ttl() {
        let mut cache = KeyCache::new(Duration::from_secs(30), 8);
        let (case, t0) = (Uuid::new_v4(), Instant::now());
        cache.insert_key(case, key(), t0);
        assert!(is_key(cache.get(case, t0 + Duration::from_secs(29))));
        assert!(cache.get(case, t0 + Duration::from_secs(30)).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_zero_ttl_caches_no_keys() {
        let mut cache = KeyCache::new(Duration::ZERO, 8);
        let case = Uuid::new_v4();
        cache.insert_key(case, key(), Instant::now());
        assert!(cache.get(case, Instant::now()).is_none());
    }

    #[test]
    fn a_tombstone_wins_over_a_late_key_and_never_expires() {
        let mut cache = KeyCache::new(Duration::from_secs(30), 8);
        let (case, t0) = (Uuid::new_v4(), Instant::now());
        cache.insert_key(case, key(), t0);
        cache.insert_shredded(case, t0);
        cache.insert_key(case, key(), t0);
        let later = t0 + Duration::from_secs(3600);
        assert!(matches!(cache.get(case, later), Some(Cached::Shredded)));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = KeyCache::new(Duration::from_secs(30), 4);
        let t0 = Instant::now();
        let cases: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
        for (i, case) in cases.iter().enumerate() {
            cache.insert_key(*case, key(), t0 + Duration::from_millis(i as u64));
            assert!(cache.len() <= 4);
        }
        let now = t0 + Duration::from_secs(1);
        // The newest survive; the oldest were evicted.
        assert!(is_key(cache.get(cases[9], now)));
        assert!(cache.get(cases[0], now).is_none());
        cache.insert_shredded(Uuid::new_v4(), now);
        assert!(cache.len() <= 4);
    }
}
