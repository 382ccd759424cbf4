//! L1: the in-process cache of digest → record, negative entries included.
//!
//! Bounded (moka evicts the least useful entries past capacity). A known key
//! is *fresh* for the L1 TTL, which bounds how long a lost invalidation can
//! matter; it is *kept* up to the max staleness so that it can still answer
//! while the tiers below are down. Unknown digests are cached too, for their
//! own shorter TTL, so a flood of random keys is answered here.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use moka::{
    Expiry,
    future::Cache,
    ops::compute::{CompResult, Op},
};

use crate::{key::Digest, record::KeyRecord};

/// A cached answer, with the times that decide whether it may be used.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record, or `None` for "no such key".
    pub record: Option<Arc<KeyRecord>>,
    /// When the store last confirmed this answer (µs since the epoch).
    pub confirmed_at: i64,
    /// When this tier got it (µs since the epoch).
    pub fetched_at: i64,
}

#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Most entries kept; 0 turns L1 off.
    pub capacity: u64,
    /// How long a known key is answered without asking the tiers below.
    pub ttl: Duration,
    /// Lifetime of an entry for an unknown key.
    pub negative_ttl: Duration,
    /// How long a known key is kept for answering while the tiers below are
    /// down (at least `ttl`).
    pub keep: Duration,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            capacity: 1_000_000,
            ttl: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(5),
            keep: Duration::from_secs(120),
        }
    }
}

/// Digests are SHA-256 outputs, so a fast seeded hash is enough; moka's
/// default SipHash showed in profiles of the hot path.
type Hasher = foldhash::fast::RandomState;

#[derive(Clone)]
pub struct LocalCache {
    entries: Cache<Digest, Entry, Hasher>,
}

struct Retention {
    known: Duration,
    unknown: Duration,
}

impl Retention {
    fn of(&self, entry: &Entry) -> Option<Duration> {
        Some(if entry.record.is_some() {
            self.known
        } else {
            self.unknown
        })
    }
}

impl Expiry<Digest, Entry> for Retention {
    fn expire_after_create(&self, _: &Digest, entry: &Entry, _: Instant) -> Option<Duration> {
        self.of(entry)
    }

    /// A refreshed entry is kept for its full retention again.
    fn expire_after_update(
        &self,
        _: &Digest,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.of(entry)
    }
}

impl LocalCache {
    pub fn new(options: &LocalOptions) -> Self {
        let entries = Cache::builder()
            .max_capacity(options.capacity)
            .expire_after(Retention {
                known: options.keep.max(options.ttl),
                unknown: options.negative_ttl,
            })
            .build_with_hasher(Hasher::default());
        Self { entries }
    }

    pub async fn get(&self, digest: &Digest) -> Option<Entry> {
        self.entries.get(digest).await
    }

    /// Runs `refresh` with the current entry, one caller per digest at a
    /// time, so concurrent misses of one digest load it once: the second
    /// caller sees what the first stored. `refresh` returns the entry to
    /// store, or `None` to leave the cache as it is. Returns the entry now
    /// cached, if any.
    pub async fn refresh<F, Fut, E>(
        &self,
        digest: Digest,
        refresh: F,
    ) -> Result<Option<Entry>, Arc<E>>
    where
        F: FnOnce(Option<Entry>) -> Fut,
        Fut: Future<Output = Result<Option<Entry>, E>>,
        E: Send + Sync + 'static,
    {
        let result = self
            .entries
            .entry(digest)
            .and_try_compute_with(|current| {
                let current = current.map(|e| e.into_value());
                let pending = refresh(current);
                async move {
                    match pending.await {
                        Ok(Some(entry)) => Ok(Op::Put(entry)),
                        Ok(None) => Ok(Op::Nop),
                        Err(e) => Err(Arc::new(e)),
                    }
                }
            })
            .await;
        match result {
            Ok(CompResult::StillNone(_)) | Ok(CompResult::Removed(_)) => Ok(None),
            Ok(r) => Ok(r.into_entry().map(|e| e.into_value())),
            Err(e) => Err(e),
        }
    }

    pub async fn evict(&self, digest: &Digest) {
        self.entries.invalidate(digest).await;
    }

    /// Drops everything, e.g. after the invalidation bus reconnects and
    /// messages may have been lost.
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyId;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn known() -> Entry {
        Entry {
            record: Some(Arc::new(KeyRecord {
                id: KeyId::generate(),
                project: "p".into(),
                scopes: Box::new([]),
                expires_at: None,
                revoked_at: None,
                limits: None,
                cidrs: Box::new([]),
            })),
            confirmed_at: 0,
            fetched_at: 0,
        }
    }

    fn unknown() -> Entry {
        Entry {
            record: None,
            confirmed_at: 0,
            fetched_at: 0,
        }
    }

    fn cache(keep_ms: u64, negative_ms: u64) -> LocalCache {
        LocalCache::new(&LocalOptions {
            capacity: 100,
            ttl: Duration::from_millis(keep_ms),
            negative_ttl: Duration::from_millis(negative_ms),
            keep: Duration::from_millis(keep_ms),
        })
    }

    async fn put(l1: &LocalCache, digest: Digest, entry: Entry) {
        l1.refresh(digest, |_| async {
            Ok::<_, std::convert::Infallible>(Some(entry))
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn negative_entries_expire_sooner_than_positive_ones() {
        let l1 = cache(2_000, 50);
        let (k, u) = (Digest::from_bytes([1; 32]), Digest::from_bytes([2; 32]));
        put(&l1, k, known()).await;
        put(&l1, u, unknown()).await;
        assert!(matches!(l1.get(&u).await, Some(Entry { record: None, .. })));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            l1.get(&u).await.is_none(),
            "negative entry outlived its TTL"
        );
        assert!(l1.get(&k).await.unwrap().record.is_some());
    }

    #[tokio::test]
    async fn concurrent_refreshes_of_one_digest_are_serialised() {
        let l1 = cache(1_000, 1_000);
        let loads = AtomicUsize::new(0);
        let digest = Digest::from_bytes([3; 32]);
        let refresh = |current: Option<Entry>| {
            let loads = &loads;
            async move {
                if current.is_some() {
                    return Ok::<_, std::convert::Infallible>(None);
                }
                loads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Some(unknown()))
            }
        };
        let (a, b) = tokio::join!(l1.refresh(digest, refresh), l1.refresh(digest, refresh));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(a.unwrap().is_some() && b.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_refresh_that_keeps_nothing_leaves_the_cache_alone() {
        let l1 = cache(1_000, 1_000);
        let d = Digest::from_bytes([5; 32]);
        let kept = l1
            .refresh(d, |_| async { Ok::<_, std::convert::Infallible>(None) })
            .await;
        assert!(kept.unwrap().is_none());
        assert!(l1.get(&d).await.is_none());
        let failed = l1
            .refresh(d, |_| async { Err::<Option<Entry>, _>("down") })
            .await;
        assert!(failed.is_err());
    }

    #[tokio::test]
    async fn evict_and_clear_remove_entries() {
        let l1 = cache(1_000, 1_000);
        let d = Digest::from_bytes([4; 32]);
        put(&l1, d, known()).await;
        l1.evict(&d).await;
        assert!(l1.get(&d).await.is_none());
        put(&l1, d, known()).await;
        l1.clear();
        assert!(l1.get(&d).await.is_none());
    }
}
