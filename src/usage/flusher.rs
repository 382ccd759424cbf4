//! Writes counted usage to the store in batches, and keeps the tables in
//! shape: every flush interval one batch (one transaction) per replica;
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

    /// Writes what was counted so far; returns the rows written.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let batch = self.counter.take();
        if batch.is_empty() {
            return Ok(0);
        }
        match self.store.record_usage(&batch).await {
            Ok(()) => {
                metrics::counter!("keyward_usage_rows_written_total").increment(batch.len() as u64);
                Ok(batch.len())
            }
            Err(error) => {
                metrics::counter!("keyward_usage_flush_errors_total").increment(1);
                self.counter.restore(batch);
                Err(error)
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
        store::fake::{Reads, ReadsOnly, record},
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
        let key = record();
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
