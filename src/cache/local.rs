//! L1: the in-process cache of digest → record, negative entries included.
//!
//! Bounded (a CLOCK cache, `clock.rs`, evicts entries not read lately past
//! capacity). A known key is *fresh* for the L1 TTL, which bounds how long a
//! lost invalidation can matter; it is *kept* up to the max staleness so
//! that it can still answer while the tiers below are down. Unknown digests
//! are cached too, for their own shorter TTL, so a flood of random keys is
//! answered here.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::clock::Clock;
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

/// Refreshes in progress, one async lock per digest being refreshed, striped
/// so that misses of unrelated digests rarely meet on one mutex.
const FLIGHT_STRIPES: usize = 64;
type Flights = Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>;

#[derive(Clone)]
pub struct LocalCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Clock<Digest, Entry>,
    flights: Box<[Flights]>,
    known: Duration,
    unknown: Duration,
}

impl LocalCache {
    pub fn new(options: &LocalOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                entries: Clock::new(usize::try_from(options.capacity).unwrap_or(usize::MAX)),
                flights: (0..FLIGHT_STRIPES).map(|_| Flights::default()).collect(),
                known: options.keep.max(options.ttl),
                unknown: options.negative_ttl,
            }),
        }
    }

    pub fn get(&self, digest: &Digest) -> Option<Entry> {
        self.inner.entries.get(digest)
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
        let flights = &self.inner.flights[usize::from(digest.as_bytes()[0]) % FLIGHT_STRIPES];
        let flight = Flight::join(flights, digest);
        let _turn = flight.lock.lock().await;
        let current = self.get(&digest);
        match refresh(current.clone()).await {
            Ok(Some(entry)) => {
                self.inner
                    .entries
                    .insert(digest, entry.clone(), self.retention(&entry));
                Ok(Some(entry))
            }
            Ok(None) => Ok(current),
            Err(e) => Err(Arc::new(e)),
        }
    }

    fn retention(&self, entry: &Entry) -> Duration {
        if entry.record.is_some() {
            self.inner.known
        } else {
            self.inner.unknown
        }
    }

    pub fn evict(&self, digest: &Digest) {
        self.inner.entries.remove(digest);
    }

    /// Drops everything, e.g. after the invalidation bus reconnects and
    /// messages may have been lost.
    pub fn clear(&self) {
        self.inner.entries.clear();
    }

    pub fn entry_count(&self) -> u64 {
        self.inner.entries.len() as u64
    }
}

/// One caller's place in the refresh of a digest. Dropping it (also when the
/// caller's future is dropped mid-refresh) removes the digest's lock once
/// nobody else holds it, so the map only holds refreshes in progress.
struct Flight<'a> {
    flights: &'a Flights,
    digest: Digest,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> Flight<'a> {
    fn join(flights: &'a Flights, digest: Digest) -> Self {
        let lock = Arc::clone(
            lock(flights)
                .entry(digest)
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(()))),
        );
        Self {
            flights,
            digest,
            lock,
        }
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut waiting = lock(self.flights);
        // Ours and the map's: nobody else is waiting for this digest.
        if Arc::strong_count(&self.lock) == 2 {
            waiting.remove(&self.digest);
        }
    }
}

/// The map only ever holds complete insertions, so a panic elsewhere while
/// it was locked leaves nothing half-done.
fn lock(
    flights: &Flights,
) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<tokio::sync::Mutex<()>>>> {
    flights.lock().unwrap_or_else(|e| e.into_inner())
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
                scopes: Arc::from([]),
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
        assert!(matches!(l1.get(&u), Some(Entry { record: None, .. })));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(l1.get(&u).is_none(), "negative entry outlived its TTL");
        assert!(l1.get(&k).unwrap().record.is_some());
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
        assert!(l1.get(&d).is_none());
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
        l1.evict(&d);
        assert!(l1.get(&d).is_none());
        put(&l1, d, known()).await;
        l1.clear();
        assert!(l1.get(&d).is_none());
    }
}
