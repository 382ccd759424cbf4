//! L1: the in-process cache of digest → record, negative entries included.
//!
//! Bounded (moka evicts the least useful entries past capacity) and short
//! lived: the TTL bounds how long a lost invalidation can matter. Unknown
//! digests are cached too, with their own shorter TTL, so a flood of random
//! keys is answered here instead of by the store.

use std::{sync::Arc, time::Duration, time::Instant};

use moka::{Expiry, future::Cache};

use crate::{key::Digest, record::KeyRecord};

/// A cached answer: the record, or `None` for "no such key".
pub type Entry = Option<Arc<KeyRecord>>;

#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Most entries kept; 0 turns L1 off.
    pub capacity: u64,
    /// Lifetime of an entry for a known key.
    pub ttl: Duration,
    /// Lifetime of an entry for an unknown key.
    pub negative_ttl: Duration,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            capacity: 1_000_000,
            ttl: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
pub struct LocalCache {
    entries: Cache<Digest, Entry>,
}

struct Ttl {
    known: Duration,
    unknown: Duration,
}

impl Expiry<Digest, Entry> for Ttl {
    fn expire_after_create(&self, _: &Digest, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(if entry.is_some() {
            self.known
        } else {
            self.unknown
        })
    }
}

impl LocalCache {
    pub fn new(options: &LocalOptions) -> Self {
        let entries = Cache::builder()
            .max_capacity(options.capacity)
            .expire_after(Ttl {
                known: options.ttl,
                unknown: options.negative_ttl,
            })
            .build();
        Self { entries }
    }

    pub async fn get(&self, digest: &Digest) -> Option<Entry> {
        self.entries.get(digest).await
    }

    /// Returns the cached entry or runs `load` once, however many callers
    /// miss the same digest at the same time. The flag is true when this call
    /// loaded it.
    pub async fn get_or_load<F, E>(&self, digest: Digest, load: F) -> Result<(Entry, bool), Arc<E>>
    where
        F: Future<Output = Result<Entry, E>>,
        E: Send + Sync + 'static,
    {
        let entry = self.entries.entry(digest).or_try_insert_with(load).await?;
        let fresh = entry.is_fresh();
        Ok((entry.into_value(), fresh))
    }

    pub async fn insert(&self, digest: Digest, entry: Entry) {
        self.entries.insert(digest, entry).await;
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

    fn record() -> Arc<KeyRecord> {
        Arc::new(KeyRecord {
            id: KeyId::generate(),
            project: "p".into(),
            scopes: Box::new([]),
            expires_at: None,
            revoked_at: None,
        })
    }

    fn cache(ttl_ms: u64, negative_ms: u64) -> LocalCache {
        LocalCache::new(&LocalOptions {
            capacity: 100,
            ttl: Duration::from_millis(ttl_ms),
            negative_ttl: Duration::from_millis(negative_ms),
        })
    }

    #[tokio::test]
    async fn negative_entries_expire_sooner_than_positive_ones() {
        let l1 = cache(2_000, 50);
        let (known, unknown) = (Digest::from_bytes([1; 32]), Digest::from_bytes([2; 32]));
        l1.insert(known, Some(record())).await;
        l1.insert(unknown, None).await;
        assert!(matches!(l1.get(&unknown).await, Some(None)));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            l1.get(&unknown).await.is_none(),
            "negative entry outlived its TTL"
        );
        assert!(matches!(l1.get(&known).await, Some(Some(_))));
    }

    #[tokio::test]
    async fn concurrent_misses_load_once() {
        let l1 = cache(1_000, 1_000);
        let loads = std::sync::atomic::AtomicUsize::new(0);
        let digest = Digest::from_bytes([3; 32]);
        let load = || async {
            loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, std::convert::Infallible>(None)
        };
        let results = futures_join(
            l1.get_or_load(digest, load()),
            l1.get_or_load(digest, load()),
        )
        .await;
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            u8::from(results.0.unwrap().1) + u8::from(results.1.unwrap().1),
            1
        );
    }

    async fn futures_join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
        tokio::join!(a, b)
    }

    #[tokio::test]
    async fn evict_and_clear_remove_entries() {
        let l1 = cache(1_000, 1_000);
        let d = Digest::from_bytes([4; 32]);
        l1.insert(d, Some(record())).await;
        l1.evict(&d).await;
        assert!(l1.get(&d).await.is_none());
        l1.insert(d, Some(record())).await;
        l1.clear();
        assert!(l1.get(&d).await.is_none());
    }
}
