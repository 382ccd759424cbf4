//! Writes counted usage to the store in batches, and keeps the tables in
//! shape: every flush interval, batches of about [`FLUSH_BATCH_ROWS`] rows
//! (a transaction each) per replica;
//! every hour, minute rows older than 48 hours are folded into hour rows
//! and hour rows older than 400 days are deleted.
//!
//! A failed flush puts its batch back, so an outage of the store loses
//! nothing (up to [`super::counter::DEFAULT_MAX_MINUTES`]); a flush that
//! times out after its commit went through is counted again by the next
//! one. A crash (kill -9) loses what was counted since the last flush: at
//! most one flush interval.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::UsageCounter;
use crate::store::{KeyStore, StoreError};

/// How long minute rows are kept before they are folded into hours.
pub const MINUTES_KEPT: chrono::Duration = chrono::Duration::hours(48);
/// How long hour rows are kept.
pub const HOURS_KEPT: chrono::Duration = chrono::Duration::days(400);
/// How often each replica runs the roll-up.
pub const ROLL_UP_EVERY: Duration = Duration::from_secs(3600);
/// Rows a flush writes per transaction, about: enough that a quiet
/// replica's flush is one statement, few enough that a busy one's rows,
/// bind arrays and SQL stay a few megabytes.
pub const FLUSH_BATCH_ROWS: usize = 10_000;

pub struct UsageWriter {
    counter: Arc<UsageCounter>,
    store: Arc<dyn KeyStore>,
    interval: Duration,
}

impl UsageWriter {
    pub fn new(counter: Arc<UsageCounter>, store: Arc<dyn KeyStore>, interval: Duration) -> Self {
        Self {
            counter,
            store,
            interval,
        }
    }

    /// Writes what was counted so far, a transaction per batch; returns the
    /// rows written. A failed batch is put back and ends the flush, with
    /// the batches not yet taken still counted: the next flush writes both.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let mut written = 0;
        for batch in self.counter.batches(FLUSH_BATCH_ROWS) {
            if let Err(error) = self.store.record_usage(&batch).await {
                metrics::counter!("keyward_usage_flush_errors_total").increment(1);
                self.counter.restore(batch);
                return Err(error);
            }
            metrics::counter!("keyward_usage_rows_written_total").increment(batch.len() as u64);
            written += batch.len();
        }
        Ok(written)
    }

    /// The last flush, when the server stops: a failure that may pass (a
    /// deadlock with another replica's last flush, a dropped connection) is
    /// retried until the batch is written or `budget` has run out, since
    /// nothing flushes after this one.
    pub async fn flush_final(&self, budget: Duration) -> Result<usize, StoreError> {
        let deadline = Instant::now() + budget;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.flush().await {
                Ok(rows) => return Ok(rows),
                Err(error) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(error);
                    }
                    tracing::warn!(%error, "last usage flush failed; retrying");
                    tokio::time::sleep(pause.min(left)).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    pub async fn roll_up(&self) -> Result<(), StoreError> {
        let now = Utc::now();
        let done = self
            .store
            .roll_up_usage(now - MINUTES_KEPT, now - HOURS_KEPT)
            .await?;
        if done.minutes > 0 || done.hours_pruned > 0 {
            tracing::info!(
                minutes_folded = done.minutes,
                hours_pruned = done.hours_pruned,
                "usage rolled up"
            );
        }
        Ok(())
    }

    /// Flushes every interval and rolls up every hour (first at start)
    /// until `stopping`; the final flush is the server's, after it drained.
    pub fn spawn(self: &Arc<Self>, stopping: CancellationToken) {
        let writer = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(writer.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut rolled_up: Option<Instant> = None;
            loop {
                if rolled_up.is_none_or(|at| at.elapsed() >= ROLL_UP_EVERY) {
                    match writer.roll_up().await {
                        Ok(()) => rolled_up = Some(Instant::now()),
                        Err(error) => {
                            tracing::warn!(%error, "usage roll-up failed; retrying at the next flush")
                        }
                    }
                }
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = stopping.cancelled() => return,
                }
                if let Err(error) = writer.flush().await {
                    tracing::warn!(%error, held = writer.counter.minutes_held(), "usage flush failed; kept for the next one");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::{
        decision::Reason,
        key::Digest,
        record::KeyRecord,
        store::{
            UsageCount,
            fake::{Reads, ReadsOnly, record},
        },
    };

    /// A store whose usage writes always fail (ReadsOnly answers only reads).
    struct NoWrites;

    #[async_trait]
    impl Reads for NoWrites {
        async fn read(&self, _: &Digest) -> Result<Option<KeyRecord>, StoreError> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_its_batch_for_the_next() {
        let counter = Arc::new(UsageCounter::default());
        let key = Arc::new(record());
        for _ in 0..3 {
            counter.record(&key, Reason::Ok, 0);
        }
        counter.record(&key, Reason::Revoked, 0);
        let writer = UsageWriter::new(
            counter.clone(),
            Arc::new(ReadsOnly(NoWrites)),
            Duration::from_secs(10),
        );
        assert!(writer.flush().await.is_err());
        let kept = counter.take();
        let calls: Vec<_> = kept.iter().map(|c| (c.outcome, c.calls)).collect();
        assert_eq!(calls.len(), 2);
        assert!(calls.contains(&("ok", 3)) && calls.contains(&("revoked", 1)));
    }

    /// Refuses the usage writes `fails` picks (by their number, from 0) as
    /// a deadlock would, and keeps what the others are given.
    struct Scripted {
        fails: fn(usize) -> bool,
        calls: std::sync::atomic::AtomicUsize,
        written: std::sync::Mutex<Vec<UsageCount>>,
    }

    #[async_trait]
    impl Reads for Scripted {
        async fn read(&self, _: &Digest) -> Result<Option<KeyRecord>, StoreError> {
            Ok(None)
        }

        async fn write_usage(&self, counts: &[UsageCount]) -> Result<(), StoreError> {
            let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if (self.fails)(call) {
                return Err(StoreError::Unavailable("deadlock detected".into()));
            }
            self.written.lock().unwrap().extend_from_slice(counts);
            Ok(())
        }
    }

    fn scripted(fails: fn(usize) -> bool) -> Arc<ReadsOnly<Scripted>> {
        Arc::new(ReadsOnly(Scripted {
            fails,
            calls: 0.into(),
            written: Default::default(),
        }))
    }

    #[tokio::test]
    async fn a_big_flush_writes_in_batches_and_a_failed_one_loses_and_repeats_nothing() {
        let counter = Arc::new(UsageCounter::default());
        let keys = 3 * FLUSH_BATCH_ROWS;
        for _ in 0..keys {
            let key = Arc::new(KeyRecord::identity(crate::key::KeyId::generate(), "p"));
            counter.record(&key, Reason::Ok, 0);
        }
        // The second batch fails; every write after it goes through.
        let store = scripted(|call| call == 1);
        let writer = UsageWriter::new(counter.clone(), store.clone(), Duration::from_secs(10));
        assert!(writer.flush().await.is_err());
        let first = store.written.lock().unwrap().len();
        assert!(first > 0 && first < keys, "one batch written: {first}");
        assert_eq!(counter.minutes_held(), keys - first, "the rest still held");
        assert_eq!(writer.flush().await.unwrap(), keys - first);
        let written = store.written.lock().unwrap();
        let ids: std::collections::HashSet<_> = written.iter().map(|c| c.key_id.clone()).collect();
        assert_eq!((written.len(), ids.len()), (keys, keys), "each key once");
    }

    #[tokio::test]
    async fn the_last_flush_retries_until_the_batch_is_written() {
        let counter = Arc::new(UsageCounter::default());
        let key = Arc::new(record());
        for _ in 0..5 {
            counter.record(&key, Reason::Ok, 0);
        }
        let store = scripted(|call| call < 3);
        let writer = UsageWriter::new(counter.clone(), store.clone(), Duration::from_secs(10));
        assert_eq!(writer.flush_final(Duration::from_secs(5)).await.unwrap(), 1);
        let written = store.written.lock().unwrap().clone();
        assert_eq!(written.len(), 1);
        assert_eq!((written[0].outcome, written[0].calls), ("ok", 5));
        assert!(counter.take().is_empty(), "nothing left behind");
    }

    #[tokio::test]
    async fn the_last_flush_gives_up_when_its_budget_is_spent() {
        let counter = Arc::new(UsageCounter::default());
        counter.record(&Arc::new(record()), Reason::Ok, 0);
        let store = scripted(|_| true);
        let writer = UsageWriter::new(counter.clone(), store, Duration::from_secs(10));
        let started = Instant::now();
        assert!(
            writer
                .flush_final(Duration::from_millis(300))
                .await
                .is_err()
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(counter.take().len(), 1, "the batch is still held");
    }

    #[tokio::test]
    async fn nothing_counted_writes_nothing() {
        let writer = UsageWriter::new(
            Arc::new(UsageCounter::default()),
            Arc::new(ReadsOnly(NoWrites)),
            Duration::from_secs(10),
        );
        assert_eq!(
            writer.flush().await.unwrap(),
            0,
            "no store call, so no error"
        );
    }
}
