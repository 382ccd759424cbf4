//! The tiered lookup: digest → record, through the in-process L1 and Redis
//! (L2) to the store, filling the tiers on the way back. Callers see only
//! [`KeyLookup::find`] and [`KeyLookup::invalidate`].
//!
//! Failure policy (DESIGN.md, "When something is down"): Redis down → skip
//! it; store down → answer known keys from L1/L2 only if the store confirmed
//! them less than `max_staleness` ago, everything else is unavailable. An
//! unknown key is never allowed.
//!
//! Revocation must win (DESIGN.md): an answer for a known key confirmed
//! before an invalidation this replica knows of is never used (`known.rs`),
//! and no cached answer for a known key counts as fresh once the outbox
//! tail has not succeeded for the revocation bound (`outbox.rs`).

pub mod breaker;
pub mod bus;
mod clock;
mod invalidation;
pub mod known;
pub mod local;
pub mod outbox;
pub mod redis;
mod redis_bus;
pub mod redis_connect;
pub mod redis_preflight;
pub mod redis_target;
mod sentinel_watch;
mod sharded_bus;
pub mod tombstones;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::{
    key::Digest,
    record::KeyRecord,
    store::{BatchedReads, KeyStore, StoreError},
};

use self::{breaker::Breaker, invalidation::Invalidation, known::Known};
pub use self::{
    invalidation::{LocalBus, Publisher},
    local::{Entry, LocalCache, LocalOptions},
    outbox::{OutboxTail, RevocationOptions},
    redis::{RedisCache, RedisOptions},
    redis_connect::RedisAccess,
};

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
    l2: Option<Arc<RedisCache>>,
    store: Arc<dyn KeyStore>,
    /// Hot-path store reads, gathered while one is running.
    reads: BatchedReads,
    store_breaker: Arc<Breaker>,
    bus: Arc<dyn Publisher>,
    l1_ttl: i64,
    max_staleness: i64,
    /// Bumped by evictions, one counter per stripe of digests (and all of
    /// them by a clear). A read that overlaps an eviction of its digest may
    /// predate the write that caused it, so its result is not kept in L1.
    evictions: Box<[AtomicU64]>,
    /// Invalidations this replica knows of: its own writes, the bus, the
    /// outbox tail.
    known: Known,
    /// Cached answers for known keys count as fresh only before this (µs):
    /// the start of the last successful outbox tail plus the bound.
    /// `i64::MAX` when no tail runs (one process, tools and tests).
    fresh_until: AtomicI64,
    /// The revocation bound (µs).
    bound: i64,
}

/// Most invalidations remembered (see `known.rs` for what happens past it).
const KNOWN_CAPACITY: usize = 1_000_000;

const EVICTION_STRIPES: usize = 1024;

fn stripe(digest: &Digest) -> usize {
    let bytes = digest.as_bytes();
    usize::from(u16::from_le_bytes([bytes[0], bytes[1]])) % EVICTION_STRIPES
}

impl fmt::Debug for KeyLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLookup")
            .field("l1", &self.l1.is_some())
            .field("l2", &self.l2.is_some())
            .field("bus", &self.bus.kind())
            .finish()
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// What the tiers below L1 said.
enum Lower {
    /// A fresh answer, to keep in L1.
    Fresh(Entry, Tier),
    /// A stale answer served because the store is down; not kept.
    Stale(Entry, Tier),
}

impl KeyLookup {
    pub fn new(
        store: Arc<dyn KeyStore>,
        l1: &LocalOptions,
        l2: Option<Arc<RedisCache>>,
        bus: Arc<dyn Publisher>,
    ) -> Self {
        let revocation = RevocationOptions::default();
        let kept = l2.as_ref().map_or(l1.keep, |l2| l2.ttl().max(l1.keep));
        Self {
            known: Known::new(
                micros(revocation.margin),
                micros(revocation.window(kept)),
                KNOWN_CAPACITY,
            ),
            fresh_until: AtomicI64::new(i64::MAX),
            bound: micros(revocation.bound),
            l1: (l1.capacity > 0).then(|| LocalCache::new(l1)),
            l2,
            reads: BatchedReads::new(store.clone()),
            store,
            store_breaker: Breaker::new("store"),
            bus,
            l1_ttl: micros(l1.ttl),
            max_staleness: micros(l1.keep),
            evictions: (0..EVICTION_STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Sets the revocation bound and margin, for a lookup whose caches an
    /// [`OutboxTail`] keeps honest: until the tail first succeeds, no cached
    /// answer for a known key is fresh.
    pub fn with_revocation(mut self, options: &RevocationOptions) -> Self {
        let kept =
            self.l2
                .as_ref()
                .map_or(Duration::from_micros(self.max_staleness as u64), |l2| {
                    l2.ttl()
                        .max(Duration::from_micros(self.max_staleness as u64))
                });
        self.known = Known::new(
            micros(options.margin),
            micros(options.window(kept)),
            KNOWN_CAPACITY,
        );
        self.bound = micros(options.bound);
        self.fresh_until = AtomicI64::new(0);
        self
    }

    /// A lookup with only L1 and the store, for tools and tests.
    pub fn local(store: Arc<dyn KeyStore>, l1: &LocalOptions) -> Self {
        Self::new(store, l1, None, Arc::new(LocalBus))
    }

    /// Finds the record for `digest` as of `now` (µs since the epoch).
    pub async fn find(&self, digest: &Digest, now: i64) -> Result<Found, LookupError> {
        let Some(l1) = &self.l1 else {
            let (Lower::Fresh(entry, tier) | Lower::Stale(entry, tier)) =
                self.load_lower(digest, now, None).await?;
            return Ok(Found {
                record: entry.record,
                tier,
            });
        };
        if let Some(entry) = l1.get(digest)
            && self.is_fresh(&entry, now)
        {
            return Ok(Found {
                record: entry.record,
                tier: Tier::L1,
            });
        }
        let evictions = &self.evictions[stripe(digest)];
        let before = evictions.load(Ordering::Acquire);
        let mut answer = None;
        let kept = l1
            .refresh(*digest, async |current| {
                if let Some(entry) = current.as_ref().filter(|e| self.is_fresh(e, now)) {
                    // Another caller refreshed it while we waited.
                    answer = Some((entry.clone(), Tier::L1));
                    return Ok(None);
                }
                let stale = current_usable(current, now, self.max_staleness);
                match self.load_lower(digest, now, stale).await? {
                    Lower::Fresh(entry, tier) => {
                        answer = Some((entry.clone(), tier));
                        Ok(Some(entry))
                    }
                    Lower::Stale(entry, tier) => {
                        answer = Some((entry, tier));
                        Ok(None)
                    }
                }
            })
            .await
            .map_err(|e: Arc<LookupError>| (*e).clone())?;
        let (entry, tier) = answer.expect("refresh ran or failed");
        if kept.is_some() && tier != Tier::L1 && evictions.load(Ordering::Acquire) != before {
            l1.evict(digest);
        }
        Ok(Found {
            record: entry.record,
            tier,
        })
    }

    fn is_fresh(&self, entry: &Entry, now: i64) -> bool {
        // Negative entries live only as long as they are fresh. The one
        // atomic load is all the hot path gained for the revocation bound.
        entry.record.is_none()
            || (now - entry.fetched_at < self.l1_ttl && self.tail_is_current(now))
    }

    fn tail_is_current(&self, now: i64) -> bool {
        now < self.fresh_until.load(Ordering::Acquire)
    }

    /// Whether a cached answer may predate a change this replica knows of.
    /// Only answers for known keys: "no such key" never allows anything.
    fn distrusted(&self, digest: &Digest, entry: &Entry) -> bool {
        entry.record.is_some() && self.known.distrusts(digest, entry.confirmed_at)
    }

    /// Asks L2, then the store. `stale` is what L1 may still offer if both
    /// fail.
    async fn load_lower(
        &self,
        digest: &Digest,
        now: i64,
        stale: Option<Entry>,
    ) -> Result<Lower, LookupError> {
        let mut fallback = stale
            .filter(|e| !self.distrusted(digest, e))
            .map(|e| (e, Tier::L1));
        if let Some(l2) = &self.l2
            && let Some(entry) = l2.get(digest).await
        {
            if self.distrusted(digest, &entry) {
                // Older than a change we know of (say, restored from an AOF
                // or left by a tombstone Redis never took): a miss.
                metrics::counter!("keyward_l2_distrusted_total").increment(1);
                return self.load_store(digest, now, fallback).await;
            }
            let fresh = entry.record.is_none()
                || (now - entry.confirmed_at < micros(l2.ttl()) && self.tail_is_current(now));
            if fresh {
                return Ok(Lower::Fresh(
                    Entry {
                        fetched_at: now,
                        ..entry
                    },
                    Tier::Redis,
                ));
            }
            let newer = fallback
                .as_ref()
                .is_none_or(|(f, _)| f.confirmed_at < entry.confirmed_at);
            if newer && current_usable(Some(entry.clone()), now, self.max_staleness).is_some() {
                fallback = Some((entry, Tier::Redis));
            }
        }
        self.load_store(digest, now, fallback).await
    }

    /// Reads the store, refilling L2; `fallback` answers if it cannot.
    async fn load_store(
        &self,
        digest: &Digest,
        now: i64,
        fallback: Option<(Entry, Tier)>,
    ) -> Result<Lower, LookupError> {
        let failure = if self.store_breaker.is_closed() {
            match self.reads.find(digest).await {
                Ok(record) => {
                    let entry = Entry {
                        record: record.map(Arc::new),
                        confirmed_at: now,
                        fetched_at: now,
                    };
                    if let Some(l2) = &self.l2 {
                        l2.fill(digest, &entry).await;
                    }
                    return Ok(Lower::Fresh(entry, Tier::Store));
                }
                Err(error) => {
                    self.trip_store(&error);
                    error.to_string()
                }
            }
        } else {
            "store unavailable".to_owned()
        };
        match fallback {
            Some((entry, tier)) => {
                metrics::counter!("keyward_stale_answers_total", "tier" => tier.as_str())
                    .increment(1);
                Ok(Lower::Stale(entry, tier))
            }
            None => Err(LookupError(failure)),
        }
    }

    fn trip_store(&self, error: &StoreError) {
        metrics::counter!("keyward_store_errors_total").increment(1);
        if !matches!(error, StoreError::Unavailable(_)) {
            return;
        }
        let store = self.store.clone();
        self.store_breaker.trip(error, move || {
            let store = store.clone();
            async move {
                store
                    .find_by_digest(&Digest::from_bytes([0; 32]))
                    .await
                    .is_ok()
            }
        });
    }

    /// After a write changed the key with this digest (at `at`, µs): forget
    /// it here, tombstone it in L2, and tell the other replicas.
    /// Recorded here first, so this replica never trusts an older answer
    /// again whatever Redis and the bus do (read your writes).
    pub async fn invalidate(&self, digest: &Digest, at: i64) {
        self.known.record(digest, at, now_micros());
        self.store.changed(digest, at);
        self.evict_local(digest).await;
        if let Some(l2) = &self.l2 {
            l2.tombstone(digest).await;
        }
        self.bus
            .publish(Invalidation {
                digest: *digest,
                at,
                created: false,
            })
            .await;
    }

    /// After a key was created: only a "no such key" answer can be cached
    /// for its digest, and no read can race the write with a stale record
    /// (nobody knew the key before it existed), so L2 drops the entry without
    /// a tombstone and the key is cacheable at once.
    pub async fn invalidate_created(&self, digest: &Digest, at: i64) {
        self.evict_local(digest).await;
        if let Some(l2) = &self.l2 {
            l2.forget(digest).await;
        }
        self.bus
            .publish(Invalidation {
                digest: *digest,
                at,
                created: true,
            })
            .await;
    }

    /// Applies an invalidation another replica made (bus or outbox).
    pub async fn apply(&self, invalidation: &Invalidation) {
        if !invalidation.created {
            self.known
                .record(&invalidation.digest, invalidation.at, now_micros());
            // Before the eviction: the read that refills L1 must not come
            // from a replica that has not replayed the change.
            self.store.changed(&invalidation.digest, invalidation.at);
        }
        self.evict_local(&invalidation.digest).await;
    }

    /// The outbox tail saw every write committed before `started` (µs).
    pub(crate) fn tail_succeeded(&self, started: i64) {
        self.fresh_until
            .fetch_max(started.saturating_add(self.bound), Ordering::AcqRel);
    }

    /// The replica may have missed invalidations it can no longer read:
    /// trust nothing cached before `now`.
    pub(crate) fn lost_track(&self, now: i64) {
        self.known.raise_floor(now);
        self.clear_local();
    }

    /// Invalidations this replica remembers.
    pub fn known_invalidations(&self) -> usize {
        self.known.len()
    }

    /// Forgets a digest in this replica only.
    pub async fn evict_local(&self, digest: &Digest) {
        self.evictions[stripe(digest)].fetch_add(1, Ordering::AcqRel);
        if let Some(l1) = &self.l1 {
            l1.evict(digest);
        }
    }

    /// Forgets everything this replica cached.
    pub fn clear_local(&self) {
        for stripe in &self.evictions {
            stripe.fetch_add(1, Ordering::AcqRel);
        }
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
    }

    pub fn l1_entries(&self) -> u64 {
        self.l1.as_ref().map_or(0, LocalCache::entry_count)
    }

    /// The Redis tier, if configured.
    pub fn l2(&self) -> Option<&Arc<RedisCache>> {
        self.l2.as_ref()
    }

    pub fn bus_kind(&self) -> &'static str {
        self.bus.kind()
    }
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A known key's entry that may still answer while the store is down.
fn current_usable(entry: Option<Entry>, now: i64, max_staleness: i64) -> Option<Entry> {
    entry.filter(|e| e.record.is_some() && now - e.confirmed_at < max_staleness)
}

#[cfg(test)]
mod tests;
