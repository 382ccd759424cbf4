//! The failure policy of the tiered lookup, against a store that can be
//! switched off.

use std::sync::atomic::{AtomicBool, AtomicUsize};

use super::outbox::RevocationOptions;

use async_trait::async_trait;
use chrono::Utc;

use super::*;
use crate::store::fake::{Reads, ReadsOnly, record};

/// Knows one digest; `down` makes every read fail as unavailable.
struct Switchable {
    known: Digest,
    down: AtomicBool,
    reads: AtomicUsize,
}

#[async_trait]
impl Reads for Switchable {
    async fn read(&self, digest: &Digest) -> Result<Option<KeyRecord>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("switched off".into()));
        }
        Ok((*digest == self.known).then(record))
    }
}

const SECOND: i64 = 1_000_000;

fn setup() -> (Arc<ReadsOnly<Switchable>>, KeyLookup, Digest) {
    let known = Digest::from_bytes([7; 32]);
    let store = Arc::new(ReadsOnly(Switchable {
        known,
        down: AtomicBool::new(false),
        reads: AtomicUsize::new(0),
    }));
    let options = LocalOptions {
        capacity: 100,
        ttl: Duration::from_secs(1),
        negative_ttl: Duration::from_secs(60),
        keep: Duration::from_secs(10),
    };
    (store.clone(), KeyLookup::local(store, &options), known)
}

#[tokio::test]
async fn fresh_entries_are_answered_without_the_store() {
    let (store, lookup, known) = setup();
    let now = Utc::now().timestamp_micros();
    assert_eq!(lookup.find(&known, now).await.unwrap().tier, Tier::Store);
    let again = lookup.find(&known, now + SECOND / 2).await.unwrap();
    assert_eq!(again.tier, Tier::L1);
    assert!(again.record.is_some());
    assert_eq!(store.reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn stale_entries_are_refreshed_while_the_store_is_up() {
    let (store, lookup, known) = setup();
    let now = Utc::now().timestamp_micros();
    lookup.find(&known, now).await.unwrap();
    let later = lookup.find(&known, now + 2 * SECOND).await.unwrap();
    assert_eq!(later.tier, Tier::Store);
    assert_eq!(store.reads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn with_the_store_down_known_keys_answer_until_max_staleness() {
    let (store, lookup, known) = setup();
    let now = Utc::now().timestamp_micros();
    lookup.find(&known, now).await.unwrap();
    store.down.store(true, Ordering::SeqCst);

    let stale = lookup.find(&known, now + 5 * SECOND).await.unwrap();
    assert!(
        stale.record.is_some(),
        "confirmed 5 s ago, max staleness 10 s"
    );
    assert_eq!(stale.tier, Tier::L1);
    assert!(
        lookup.find(&known, now + 11 * SECOND).await.is_err(),
        "past max staleness"
    );
}

#[tokio::test]
async fn with_the_store_down_unknown_keys_are_unavailable_never_allowed() {
    let (store, lookup, _) = setup();
    store.down.store(true, Ordering::SeqCst);
    let now = Utc::now().timestamp_micros();
    for i in 0..20u8 {
        assert!(
            lookup
                .find(&Digest::from_bytes([i; 32]), now)
                .await
                .is_err()
        );
    }
    // The breaker spares the store the rest of the flood.
    assert!(
        store.reads.load(Ordering::SeqCst) < 5,
        "{}",
        store.reads.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn the_breaker_closes_when_the_store_answers_again() {
    let (store, lookup, known) = setup();
    store.down.store(true, Ordering::SeqCst);
    let now = Utc::now().timestamp_micros();
    assert!(lookup.find(&known, now).await.is_err());
    store.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(lookup.find(&known, now).await.unwrap().record.is_some());
}

#[tokio::test]
async fn an_eviction_during_a_read_keeps_its_result_out_of_l1() {
    let (_store, lookup, known) = setup();
    let now = Utc::now().timestamp_micros();
    lookup.find(&known, now).await.unwrap();
    lookup.evict_local(&known).await;
    assert_eq!(
        lookup.find(&known, now).await.unwrap().tier,
        Tier::Store,
        "evicted"
    );
    lookup.clear_local();
    assert_eq!(
        lookup.find(&known, now).await.unwrap().tier,
        Tier::Store,
        "cleared"
    );
}

#[tokio::test]
async fn an_answer_older_than_a_known_invalidation_is_not_served_stale() {
    let (store, lookup, known) = setup();
    let now = Utc::now().timestamp_micros();
    lookup.find(&known, now).await.unwrap();
    store.down.store(true, Ordering::SeqCst);
    // Known (say, from the outbox) while the entry was still in L1.
    lookup.known.record(&known, now + SECOND, now + SECOND);
    let answer = lookup.find(&known, now + 2 * SECOND).await;
    assert!(
        answer.is_err(),
        "confirmed before a change this replica knows of: no stale answer"
    );
}

#[tokio::test]
async fn cached_answers_expire_when_the_outbox_tail_lapses() {
    let (store, lookup, known) = setup();
    let lookup = lookup.with_revocation(&RevocationOptions {
        bound: Duration::from_millis(500),
        margin: Duration::ZERO,
    });
    let now = Utc::now().timestamp_micros();
    assert_eq!(lookup.find(&known, now).await.unwrap().tier, Tier::Store);
    assert_eq!(
        lookup.find(&known, now).await.unwrap().tier,
        Tier::Store,
        "before the tail first read the outbox, nothing cached is fresh"
    );
    lookup.tail_succeeded(now);
    let hit = lookup.find(&known, now + SECOND / 4).await.unwrap();
    assert_eq!(hit.tier, Tier::L1);
    let lapsed = lookup.find(&known, now + 3 * SECOND / 4).await.unwrap();
    assert_eq!(lapsed.tier, Tier::Store, "the tail last read 0.75 s ago");
    assert_eq!(store.reads.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_writing_replica_never_trusts_an_older_answer_again() {
    let (_store, lookup, known) = setup();
    let now = Utc::now().timestamp_micros();
    lookup.find(&known, now).await.unwrap();
    lookup.invalidate(&known, now + SECOND).await;
    assert!(lookup.l1.as_ref().unwrap().get(&known).is_none());
    let before = Entry {
        record: Some(Arc::new(record())),
        confirmed_at: now + SECOND / 2,
        fetched_at: now + SECOND / 2,
    };
    assert!(lookup.distrusted(&known, &before));
}
