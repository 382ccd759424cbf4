//! The outbox tail: why a revocation cannot be lost.
//!
//! Every write that can narrow a key (revoke, rotate's old key, update)
//! inserts `(seq, digest, at)` into the `invalidations` table in the same
//! transaction as the change (`store/outbox.rs`), so the invalidation exists
//! exactly when the change does, and seqs become visible in order. Every
//! replica reads the rows after the last seq it saw, one indexed query per
//! interval (a quarter of the revocation bound), and for each row evicts the
//! digest from L1 and remembers it in its known invalidations (`known.rs`).
//! The bus and the Redis tombstone stay, for speed; this is the guarantee.
//!
//! The argument, for a write committed at time C on replica W, and a replica
//! R with revocation bound B:
//! - W itself recorded the invalidation and evicted L1 before the RPC
//!   returned, so W never uses an older answer again (read your writes).
//! - A tail query R starts at S ≥ C sees the row. R counts a cached answer
//!   for a known key as fresh at time t only while t < S' + B, where S' is
//!   the start of R's last tail that read everything up to its end. So at
//!   t ≥ C + B either R has applied the row (S' ≥ C), or S' < C and the cache
//!   is not trusted at all: the lookup reads the store, and if that is down
//!   too, the documented stale-if-error policy (`--max-staleness`) applies.
//! - Once R knows the invalidation, L1 no longer holds the digest (a read
//!   overlapping the eviction is not kept, see `KeyLookup::find`), and an L2
//!   entry, or a stale L1 or L2 answer, confirmed before the write's time
//!   plus the margin is refused, whatever Redis kept, lost or brought back.
//! - R remembers invalidations for the longest an older answer can be offered
//!   (max of the L2 TTL and the max staleness) plus the margin and the bound.
//!
//! Assumptions: replica clocks agree within the clock-skew margin (an L2
//! entry's `confirmed_at` and an invalidation's `at` come from different
//! replicas), and no clock steps back by more than the margin. A replica
//! whose tail could not read for half the outbox retention may have missed
//! pruned rows; it clears L1 and trusts nothing cached before that moment.
//!
//! Cost: one query per interval per replica that returns nothing when
//! nothing changed, and a periodic `DELETE` of rows older than the retention.
//! The hot path gained one atomic load (`KeyLookup::is_fresh`).

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::{KeyLookup, invalidation::Invalidation};
use crate::store::{KeyStore, StoreError};

/// The revocation bound and what follows from it.
#[derive(Debug, Clone)]
pub struct RevocationOptions {
    /// After a write returns OK, no replica uses an answer it forbids after
    /// this long.
    pub bound: Duration,
    /// Added to an invalidation's time before cached answers are trusted
    /// again: the clock skew between replicas plus the longest a write takes
    /// from its time to its commit.
    pub margin: Duration,
}

impl Default for RevocationOptions {
    fn default() -> Self {
        Self {
            bound: Duration::from_secs(1),
            margin: Duration::from_secs(4),
        }
    }
}

/// Rows are kept this much longer than any replica needs them, so a tail
/// that stalls for a while still finds them.
const RETENTION_SLACK: Duration = Duration::from_secs(3600);
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Rows per query; a tail loops until it gets fewer.
const BATCH: u32 = 1000;
/// Queries per round at most; a round that did not drain does not count as
/// a success.
const MAX_BATCHES: usize = 50;

impl RevocationOptions {
    /// How often each replica reads the outbox.
    pub fn interval(&self) -> Duration {
        (self.bound / 4).max(Duration::from_millis(10))
    }

    /// How long an invalidation must be remembered, given that an older
    /// answer may be offered for up to `kept`.
    pub fn window(&self, kept: Duration) -> Duration {
        kept + self.margin + self.bound
    }

    fn retention(&self, kept: Duration) -> Duration {
        self.window(kept) + RETENTION_SLACK
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub struct OutboxTail {
    store: Arc<dyn KeyStore>,
    lookup: Arc<KeyLookup>,
    options: RevocationOptions,
    /// The longest an older answer can be offered (L2 TTL, max staleness).
    kept: Duration,
    /// The last seq applied; `None` until the tail has found its start.
    last: Option<i64>,
    /// Start of the last round that read everything (µs).
    last_success: Option<i64>,
}

impl OutboxTail {
    pub fn new(
        store: Arc<dyn KeyStore>,
        lookup: Arc<KeyLookup>,
        options: RevocationOptions,
        kept: Duration,
    ) -> Self {
        Self {
            store,
            lookup,
            options,
            kept,
            last: None,
            last_success: None,
        }
    }

    /// One round: find the start if needed (every row of the window, so
    /// known invalidations are seeded), then read until drained.
    pub async fn round(&mut self) -> Result<(), StoreError> {
        let started = now_micros();
        let mut last = match self.last {
            Some(last) => last,
            None => {
                let since = Utc::now()
                    - chrono::Duration::from_std(self.options.window(self.kept))
                        .unwrap_or_else(|_| chrono::Duration::days(3650));
                self.store.invalidations_start(since).await?
            }
        };
        self.last = Some(last);
        for _ in 0..MAX_BATCHES {
            let rows = self.store.invalidations_after(last, BATCH).await?;
            for row in &rows {
                let invalidation = Invalidation {
                    digest: row.digest,
                    at: row.at,
                    created: false,
                };
                self.lookup.apply(&invalidation).await;
                let lag = (now_micros() - row.at).max(0);
                metrics::histogram!("keyward_revocation_lag_seconds", "bus" => "outbox")
                    .record(lag as f64 / 1e6);
                last = row.seq;
                self.last = Some(last);
            }
            if rows.len() < BATCH as usize {
                self.succeeded(started);
                return Ok(());
            }
        }
        Ok(())
    }

    fn succeeded(&mut self, started: i64) {
        let gap_limit = micros(self.options.retention(self.kept)) / 2;
        if let Some(previous) = self.last_success
            && started - previous > gap_limit
        {
            tracing::warn!(
                "outbox unread for longer than half its retention; distrusting every cached answer"
            );
            self.lookup.lost_track(started);
        }
        self.last_success = Some(started);
        self.lookup.tail_succeeded(started);
    }

    /// Tails the outbox every interval and prunes it now and then, until
    /// `stop`.
    pub fn spawn(mut self, stop: CancellationToken) {
        tokio::spawn(async move {
            let interval = self.options.interval();
            let mut last_prune = tokio::time::Instant::now();
            let mut failing = false;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(interval) => {}
                }
                match self.round().await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!("outbox tail reads again");
                    }
                    Ok(()) => {}
                    Err(error) => {
                        metrics::counter!("keyward_outbox_tail_errors_total").increment(1);
                        if !failing {
                            failing = true;
                            tracing::warn!(%error, "cannot read the invalidation outbox; cached answers expire after the revocation bound");
                        }
                    }
                }
                if last_prune.elapsed() >= PRUNE_EVERY {
                    last_prune = tokio::time::Instant::now();
                    self.prune().await;
                }
            }
        });
    }

    async fn prune(&self) {
        let before = Utc::now()
            - chrono::Duration::from_std(self.options.retention(self.kept))
                .unwrap_or_else(|_| chrono::Duration::days(3650));
        match self.store.prune_invalidations(before).await {
            Ok(rows) => tracing::debug!(rows, "outbox pruned"),
            Err(error) => tracing::debug!(%error, "outbox not pruned this time"),
        }
    }
}
