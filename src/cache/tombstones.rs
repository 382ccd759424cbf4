//! Tombstones Redis did not take (it was down, slow or unreachable), kept
//! to be written once it answers again, so an old entry it still holds, or
//! brings back from its AOF, is replaced rather than read until its TTL.
//!
//! Bounded: past capacity the oldest is dropped and counted
//! (`keyward_tombstones_dropped_total`). Dropping is safe: every replica
//! that knows the invalidation (from the outbox tail, within the revocation
//! bound) refuses an entry confirmed before it (see `known.rs`); the
//! tombstone only saves the store reads that refusal costs.

use std::{collections::VecDeque, sync::Mutex};

use crate::key::Digest;

#[derive(Debug)]
pub struct Pending {
    queue: Mutex<VecDeque<Digest>>,
    capacity: usize,
}

impl Pending {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Digest>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `digest` for another try.
    pub fn push(&self, digest: Digest) {
        let mut queue = self.lock();
        if queue.contains(&digest) {
            return;
        }
        if queue.len() >= self.capacity {
            queue.pop_front();
            metrics::counter!("keyward_tombstones_dropped_total").increment(1);
        }
        queue.push_back(digest);
    }

    /// Everything queued, oldest first; the queue is left empty.
    pub fn take(&self) -> Vec<Digest> {
        self.lock().drain(..).collect()
    }

    /// Puts back what a retry could not write, ahead of anything newer.
    pub fn put_back(&self, digests: Vec<Digest>) {
        let mut queue = self.lock();
        for digest in digests.into_iter().rev() {
            if !queue.contains(&digest) {
                queue.push_front(digest);
            }
        }
        while queue.len() > self.capacity {
            queue.pop_front();
            metrics::counter!("keyward_tombstones_dropped_total").increment(1);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::from_bytes([n; 32])
    }

    #[test]
    fn keeps_the_newest_within_capacity_and_each_digest_once() {
        let pending = Pending::new(2);
        pending.push(d(1));
        pending.push(d(1));
        pending.push(d(2));
        pending.push(d(3));
        assert_eq!(pending.take(), vec![d(2), d(3)]);
        assert!(pending.is_empty());
    }

    #[test]
    fn what_a_retry_could_not_write_goes_back_first() {
        let pending = Pending::new(3);
        pending.push(d(1));
        pending.push(d(2));
        let taken = pending.take();
        pending.push(d(3));
        pending.put_back(taken);
        assert_eq!(pending.take(), vec![d(1), d(2), d(3)]);
    }
}
