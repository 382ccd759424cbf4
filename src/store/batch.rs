//! Gathers concurrent hot-path reads into one store round trip. While a
//! read is running, the reads that arrive queue up and go together in the
//! next one (`WHERE digest = ANY(…)` on Postgres), so a burst of cache
//! misses costs Postgres a few queries instead of one each. A read with
//! nothing else waiting goes alone, without waiting for company: batching
//! adds no delay, only the hop to the task that runs it.
//!
//! A caller waits for at most the batch running when it arrived and then
//! its own; each is bounded by the store's lookup timeout.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::oneshot;

use super::{KeyStore, StoreError};
use crate::{key::Digest, record::KeyRecord};

/// Batches in flight at once: a few, so one slow query does not hold up
/// every miss, and far fewer than the pool's connections.
const MAX_RUNNING: usize = 4;
/// Digests per query at the most.
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<Option<KeyRecord>, StoreError>>;

#[derive(Default)]
struct Pending {
    waiting: Vec<(Digest, Reply)>,
    running: usize,
}

pub struct BatchedReads {
    store: Arc<dyn KeyStore>,
    pending: Arc<Mutex<Pending>>,
}

impl BatchedReads {
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            store,
            pending: Arc::default(),
        }
    }

    /// The record for `digest`, read with whatever other reads are waiting.
    pub async fn find(&self, digest: &Digest) -> Result<Option<KeyRecord>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut pending = lock(&self.pending);
            pending.waiting.push((*digest, reply));
            let start = pending.running < MAX_RUNNING;
            if start {
                pending.running += 1;
            }
            start
        };
        // A task of its own, so a caller that gives up does not cancel the
        // read the others in its batch wait on.
        if start {
            tokio::spawn(run(self.store.clone(), self.pending.clone()));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Other("the batched read was dropped".into())))
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs batches until nothing waits. Taking the last batch and giving up
/// the running slot happen under the same lock as the callers' check, so
/// no read is left waiting with no batch to take it.
async fn run(store: Arc<dyn KeyStore>, pending: Arc<Mutex<Pending>>) {
    loop {
        let mut batch = {
            let mut pending = lock(&pending);
            if pending.waiting.is_empty() {
                pending.running -= 1;
                return;
            }
            let n = pending.waiting.len().min(MAX_BATCH);
            pending.waiting.drain(..n).collect::<Vec<_>>()
        };
        if batch.len() == 1 {
            let (digest, reply) = batch.pop().expect("one read");
            let _ = reply.send(store.find_by_digest(&digest).await);
            continue;
        }
        let digests: Vec<Digest> = batch.iter().map(|(d, _)| *d).collect();
        match store.find_by_digests(&digests).await {
            Ok(found) => {
                let found: HashMap<Digest, KeyRecord> = found.into_iter().collect();
                for (digest, reply) in batch {
                    let _ = reply.send(Ok(found.get(&digest).cloned()));
                }
            }
            Err(error) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicBool, AtomicUsize, Ordering},
        time::Duration,
    };

    use async_trait::async_trait;

    use super::*;
    use crate::store::fake::{Reads, ReadsOnly, record};

    /// Knows digests whose first byte is even; each read takes 20 ms and
    /// is counted, as are the digests it asked for.
    #[derive(Default)]
    struct Slow {
        reads: AtomicUsize,
        digests: AtomicUsize,
        fail: AtomicBool,
    }

    #[async_trait]
    impl Reads for Slow {
        async fn read(&self, digest: &Digest) -> Result<Option<KeyRecord>, StoreError> {
            Ok(self.read_many(&[*digest]).await?.pop().map(|(_, r)| r))
        }

        async fn read_many(
            &self,
            digests: &[Digest],
        ) -> Result<Vec<(Digest, KeyRecord)>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.digests.fetch_add(digests.len(), Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("down".into()));
            }
            Ok(digests
                .iter()
                .filter(|d| d.as_bytes()[0] % 2 == 0)
                .map(|d| (*d, record()))
                .collect())
        }
    }

    async fn find_all(
        reads: &Arc<BatchedReads>,
        n: u8,
    ) -> Vec<Result<Option<KeyRecord>, StoreError>> {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let reads = reads.clone();
                tokio::spawn(async move { reads.find(&Digest::from_bytes([i; 32])).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    }

    #[tokio::test]
    async fn concurrent_reads_share_round_trips_and_get_their_own_answers() {
        let store = Arc::new(ReadsOnly(Slow::default()));
        let reads = Arc::new(BatchedReads::new(store.clone()));
        let results = find_all(&reads, 100).await;
        for (i, result) in results.iter().enumerate() {
            let found = result.as_ref().unwrap().is_some();
            assert_eq!(found, i % 2 == 0, "digest {i}");
        }
        assert_eq!(
            store.digests.load(Ordering::SeqCst),
            100,
            "each digest read once"
        );
        let reads_made = store.reads.load(Ordering::SeqCst);
        assert!(
            reads_made < 20,
            "100 concurrent reads took {reads_made} round trips"
        );
        assert_eq!(lock(&reads.pending).running, 0, "no batch left running");
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_reads() {
        let store = Arc::new(ReadsOnly(Slow::default()));
        store.fail.store(true, Ordering::SeqCst);
        let reads = Arc::new(BatchedReads::new(store.clone()));
        let results = find_all(&reads, 20).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(StoreError::Unavailable(_))))
        );
        // And the next read, once the store is back, is answered.
        store.fail.store(false, Ordering::SeqCst);
        assert!(
            reads
                .find(&Digest::from_bytes([2; 32]))
                .await
                .unwrap()
                .is_some()
        );
    }
}
