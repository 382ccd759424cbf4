//! The tiered lookup: digest → record, through the in-process L1 to the
//! store, filling the tiers on the way back. Callers only see
//! [`KeyLookup::find`] and [`KeyLookup::invalidate`], so tiers can be added
//! (Redis, issue 3) without touching them.

pub mod local;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{
    key::Digest,
    record::KeyRecord,
    store::{KeyStore, StoreError},
};

pub use local::{LocalCache, LocalOptions};

/// Which tier answered a lookup (the `keyward.cache` span attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    L1,
    Redis,
    Store,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::Redis => "redis",
            Tier::Store => "store",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Found {
    /// The record, or `None` for a digest no key has.
    pub record: Option<Arc<KeyRecord>>,
    pub tier: Tier,
}

/// No tier could answer: the caller must not guess.
#[derive(Debug, Clone, thiserror::Error)]
#[error("key store unavailable: {0}")]
pub struct LookupError(pub String);

pub struct KeyLookup {
    l1: Option<LocalCache>,
    store: Arc<dyn KeyStore>,
    /// Bumped by every eviction. A store read that overlaps an eviction may
    /// predate the write that caused it, so its result is not kept.
    evictions: AtomicU64,
}

impl fmt::Debug for KeyLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLookup")
            .field("l1", &self.l1.is_some())
            .finish()
    }
}

impl KeyLookup {
    pub fn new(store: Arc<dyn KeyStore>, l1: &LocalOptions) -> Self {
        Self {
            l1: (l1.capacity > 0).then(|| LocalCache::new(l1)),
            store,
            evictions: AtomicU64::new(0),
        }
    }

    pub async fn find(&self, digest: &Digest) -> Result<Found, LookupError> {
        let Some(l1) = &self.l1 else {
            let record = self.load(digest).await?;
            return Ok(Found {
                record,
                tier: Tier::Store,
            });
        };
        if let Some(record) = l1.get(digest).await {
            return Ok(Found {
                record,
                tier: Tier::L1,
            });
        }
        let before = self.evictions.load(Ordering::Acquire);
        let (record, loaded) = l1
            .get_or_load(*digest, self.load(digest))
            .await
            .map_err(|e| (*e).clone())?;
        if loaded && self.evictions.load(Ordering::Acquire) != before {
            l1.evict(digest).await;
        }
        // Callers that waited on another's load got it from L1 in effect.
        let tier = if loaded { Tier::Store } else { Tier::L1 };
        Ok(Found { record, tier })
    }

    async fn load(&self, digest: &Digest) -> Result<Option<Arc<KeyRecord>>, LookupError> {
        match self.store.find_by_digest(digest).await {
            Ok(record) => Ok(record.map(Arc::new)),
            Err(StoreError::Unavailable(e)) => Err(LookupError(e)),
            Err(other) => Err(LookupError(other.to_string())),
        }
    }

    /// Forgets a digest after a write changed its key. (With one tier, in
    /// this replica only; the Redis tier and the bus extend this.)
    pub async fn invalidate(&self, digest: &Digest) {
        self.evictions.fetch_add(1, Ordering::AcqRel);
        if let Some(l1) = &self.l1 {
            l1.evict(digest).await;
        }
    }

    /// Forgets everything this replica cached.
    pub fn clear(&self) {
        self.evictions.fetch_add(1, Ordering::AcqRel);
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
    }

    pub fn l1_entries(&self) -> u64 {
        self.l1.as_ref().map_or(0, LocalCache::entry_count)
    }
}
