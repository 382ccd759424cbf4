//! Known invalidations: which digests this replica knows were changed, and
//! when, for as long as a cached answer from before the change could still
//! be offered to it (by Redis, or as a stale answer while the store is down).
//!
//! The rule ([`Known::distrusts`]): an answer confirmed before an
//! invalidation of its digest plus the margin is never used. `confirmed_at`
//! comes from the clock of whichever replica read the store, `at` from the
//! clock of the replica that wrote, so the margin covers the worst clock
//! skew between replicas plus the longest a write can take from its time to
//! its commit (a read in between saw the old row but is stamped later than
//! `at`).
//!
//! Bounded: past capacity the oldest invalidation is forgotten and its time
//! becomes a floor below which nothing cached is trusted, for any digest:
//! forgetting costs store reads, never a wrong answer.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use crate::key::Digest;

#[derive(Debug)]
pub struct Known {
    inner: Mutex<Inner>,
    /// µs added to an invalidation's time before cached answers are trusted.
    margin: i64,
    /// µs an invalidation is remembered (past its time).
    window: i64,
    capacity: usize,
}

#[derive(Debug)]
struct Inner {
    latest: HashMap<Digest, i64>,
    /// In the order recorded, for expiry and the capacity bound.
    order: VecDeque<(i64, Digest)>,
    /// Nothing confirmed before this (+ margin) is trusted.
    floor: i64,
}

impl Known {
    pub fn new(margin: i64, window: i64, capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            margin,
            window,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers that `digest` changed at `at` (µs); `now` expires old ones.
    pub fn record(&self, digest: &Digest, at: i64, now: i64) {
        let mut inner = self.lock();
        let latest = inner.latest.entry(*digest).or_insert(at);
        *latest = (*latest).max(at);
        inner.order.push_back((at, *digest));
        while inner.order.len() > self.capacity {
            let (at, digest) = inner.order.pop_front().expect("longer than capacity");
            inner.floor = inner.floor.max(at);
            inner.forget(&digest, at);
        }
        inner.expire(now - self.window);
    }

    /// Distrusts everything confirmed before `at` (+ margin), for every
    /// digest: after the replica may have missed invalidations.
    pub fn raise_floor(&self, at: i64) {
        let mut inner = self.lock();
        inner.floor = inner.floor.max(at);
    }

    /// Whether an answer for `digest` confirmed at `confirmed_at` may predate
    /// a change this replica knows of.
    pub fn distrusts(&self, digest: &Digest, confirmed_at: i64) -> bool {
        let inner = self.lock();
        let changed = inner.latest.get(digest).copied().unwrap_or(i64::MIN);
        let changed = changed.max(inner.floor);
        changed != i64::MIN && confirmed_at < changed.saturating_add(self.margin)
    }

    pub fn len(&self) -> usize {
        self.lock().latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            latest: HashMap::new(),
            order: VecDeque::new(),
            floor: i64::MIN,
        }
    }
}

impl Inner {
    fn forget(&mut self, digest: &Digest, at: i64) {
        // A later invalidation of the same digest keeps it.
        if self.latest.get(digest) == Some(&at) {
            self.latest.remove(digest);
        }
    }

    fn expire(&mut self, before: i64) {
        while let Some(&(at, digest)) = self.order.front() {
            if at >= before {
                break;
            }
            self.order.pop_front();
            self.forget(&digest, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn d(n: u8) -> Digest {
        Digest::from_bytes([n; 32])
    }

    #[test]
    fn answers_confirmed_before_an_invalidation_and_its_margin_are_distrusted() {
        let known = Known::new(S, 100 * S, 10);
        assert!(
            !known.distrusts(&d(1), 0),
            "nothing known, nothing distrusted"
        );
        known.record(&d(1), 50 * S, 50 * S);
        assert!(known.distrusts(&d(1), 10 * S), "confirmed long before");
        assert!(known.distrusts(&d(1), 50 * S + S / 2), "within the margin");
        assert!(
            !known.distrusts(&d(1), 51 * S),
            "confirmed after the margin"
        );
        assert!(
            !known.distrusts(&d(2), 10 * S),
            "other digests are untouched"
        );
    }

    #[test]
    fn the_latest_invalidation_of_a_digest_counts_even_if_recorded_first() {
        let known = Known::new(0, 100 * S, 10);
        known.record(&d(1), 60 * S, 60 * S);
        known.record(&d(1), 40 * S, 60 * S);
        assert!(known.distrusts(&d(1), 59 * S));
    }

    #[test]
    fn invalidations_are_forgotten_after_the_window() {
        let known = Known::new(0, 10 * S, 10);
        known.record(&d(1), 0, 0);
        known.record(&d(2), 5 * S, 5 * S);
        assert_eq!(known.len(), 2);
        known.record(&d(3), 11 * S, 11 * S);
        assert!(!known.distrusts(&d(1), -S), "forgotten past the window");
        assert!(known.distrusts(&d(2), 4 * S), "still inside the window");
        assert_eq!(known.len(), 2);
    }

    #[test]
    fn past_capacity_forgotten_invalidations_become_a_floor_for_every_digest() {
        let known = Known::new(0, 100 * S, 2);
        known.record(&d(1), 10 * S, 10 * S);
        known.record(&d(2), 20 * S, 20 * S);
        known.record(&d(3), 30 * S, 30 * S);
        assert_eq!(known.len(), 2);
        assert!(
            known.distrusts(&d(1), 9 * S),
            "d1 forgotten, but under the floor"
        );
        assert!(
            known.distrusts(&d(9), 9 * S),
            "the floor holds for any digest"
        );
        assert!(!known.distrusts(&d(9), 11 * S));
        known.raise_floor(40 * S);
        assert!(known.distrusts(&d(9), 39 * S));
    }
}
