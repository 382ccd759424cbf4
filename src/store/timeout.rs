//! Bounds every store call, so a hung database costs a caller milliseconds,
//! not its whole deadline. A call that runs out of time is `Unavailable`;
//! for a write that means it may or may not have committed, and keyward says
//! so by never reporting success.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AuditEvent, AuditQuery, KeyChanges, KeyStore, KeyTotals, ListQuery, NewKey, OutboxRow,
    RolledUp, Rotated, StoreError, StoredAudit, StoredKey, Successor, UsageBucket, UsageCount,
    UsageQuery, WriteBy,
};
use crate::{
    key::{Digest, KeyId},
    record::KeyRecord,
};

pub struct TimeoutStore {
    inner: Arc<dyn KeyStore>,
    /// For the hot-path read.
    lookup: Duration,
    /// For everything else but migrations.
    other: Duration,
}

impl TimeoutStore {
    pub fn wrap(inner: Arc<dyn KeyStore>, lookup: Duration, other: Duration) -> Arc<dyn KeyStore> {
        Arc::new(Self {
            inner,
            lookup,
            other,
        })
    }
}

async fn bounded<T>(
    op: &'static str,
    limit: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(StoreError::Unavailable(format!(
            "no answer within {limit:?}"
        )))
    });
    metrics::histogram!("keyward_store_query_duration_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl KeyStore for TimeoutStore {
    fn changed(&self, digest: &Digest, at: i64) {
        self.inner.changed(digest, at);
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<Option<KeyRecord>, StoreError> {
        bounded(
            "find_by_digest",
            self.lookup,
            self.inner.find_by_digest(digest),
        )
        .await
    }

    async fn find_by_digests(
        &self,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, KeyRecord)>, StoreError> {
        bounded(
            "find_by_digests",
            self.lookup,
            self.inner.find_by_digests(digests),
        )
        .await
    }

    async fn get(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        bounded("get", self.other, self.inner.get(id)).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<StoredKey>, StoreError> {
        bounded("list", self.other, self.inner.list(query)).await
    }

    async fn insert(&self, key: &NewKey, audit: &AuditEvent) -> Result<StoredKey, StoreError> {
        bounded("insert", self.other, self.inner.insert(key, audit)).await
    }

    async fn revoke(
        &self,
        id: &KeyId,
        at: DateTime<Utc>,
        reason: &str,
        by: &WriteBy,
    ) -> Result<StoredKey, StoreError> {
        bounded("revoke", self.other, self.inner.revoke(id, at, reason, by)).await
    }

    async fn rotate(
        &self,
        old: &KeyId,
        now: DateTime<Utc>,
        old_revoked_at: DateTime<Utc>,
        successor: &mut Successor<'_>,
        by: &WriteBy,
    ) -> Result<Rotated, StoreError> {
        bounded(
            "rotate",
            self.other,
            self.inner.rotate(old, now, old_revoked_at, successor, by),
        )
        .await
    }

    async fn update(
        &self,
        id: &KeyId,
        changes: &KeyChanges,
        now: DateTime<Utc>,
        by: &WriteBy,
    ) -> Result<StoredKey, StoreError> {
        bounded(
            "update",
            self.other,
            self.inner.update(id, changes, now, by),
        )
        .await
    }

    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<StoredAudit>, StoreError> {
        bounded("list_audit", self.other, self.inner.list_audit(query)).await
    }

    async fn record_usage(&self, counts: &[UsageCount]) -> Result<(), StoreError> {
        bounded("record_usage", self.other, self.inner.record_usage(counts)).await
    }

    async fn usage_series(
        &self,
        query: &UsageQuery,
        bucket_seconds: i64,
    ) -> Result<Vec<UsageBucket>, StoreError> {
        bounded(
            "usage_series",
            self.other,
            self.inner.usage_series(query, bucket_seconds),
        )
        .await
    }

    async fn busiest_keys(
        &self,
        query: &UsageQuery,
        limit: u32,
    ) -> Result<Vec<KeyTotals>, StoreError> {
        bounded(
            "busiest_keys",
            self.other,
            self.inner.busiest_keys(query, limit),
        )
        .await
    }

    /// Not bounded by the admin timeout: the first roll-up after a long
    /// pause can move many rows, and nothing waits on it.
    async fn roll_up_usage(
        &self,
        minutes_before: DateTime<Utc>,
        hours_before: DateTime<Utc>,
    ) -> Result<RolledUp, StoreError> {
        self.inner.roll_up_usage(minutes_before, hours_before).await
    }

    async fn invalidations_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        bounded(
            "invalidations_after",
            self.other,
            self.inner.invalidations_after(after, limit),
        )
        .await
    }

    async fn invalidations_start(&self, since: DateTime<Utc>) -> Result<i64, StoreError> {
        bounded(
            "invalidations_start",
            self.other,
            self.inner.invalidations_start(since),
        )
        .await
    }

    async fn prune_invalidations(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        bounded(
            "prune_invalidations",
            self.other,
            self.inner.prune_invalidations(before),
        )
        .await
    }

    fn pool_stats(&self) -> Option<super::PoolStats> {
        self.inner.pool_stats()
    }
}
